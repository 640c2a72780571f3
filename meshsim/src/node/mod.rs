//! Node software: what runs on each node, and how meshsim drives it.
//!
//! [`NodeSoftware`] describes node software the way a testcontainers `Image` describes a
//! container: a value the test hands over ([`Sim::with_software`](crate::Sim::with_software),
//! [`Sim::with_software_on`](crate::Sim::with_software_on) for a mixed network), which meshsim
//! starts once per node with a [`NodeContext`]: the node's identity (derived from the seed),
//! the seed, the time dilation, its [`Network`], the harness's [`Commands`] (connect,
//! disconnect, subscribe, unsubscribe, publish) and [`NodeEvents`] to report what it sees.
//! When a node counts as ready is the software's to say ([`Readiness`]).
//!
//! Three ways to get node software:
//! - [`GossipsubNode`]: meshsim's built-in rust-libp2p gossipsub node, the default.
//! - [`Libp2p`]: any rust-libp2p `NetworkBehaviour` you write, each node on its own `Swarm`
//!   over meshsim's links. Put meshsim's observed [`Gossipsub`] in it (made by
//!   [`Libp2pContext::gossipsub`]) and every copy, graft and prune is recorded exactly,
//!   without changing your protocol.
//! - Your own implementation of [`NodeSoftware`], for protocols not built on libp2p: dial
//!   and accept plain byte streams ([`Connection`]) over the same shaped links, and report
//!   deliveries with [`NodeEvents::received`].
//!
//! Whatever runs, the trace records the same events, and everything downstream of it
//! (queries, assertions, viewer, exports) works the same.

pub(crate) mod agent;
mod behaviour;
mod builtin;
mod context;
mod events;
pub(crate) mod handle;
pub(crate) mod network;
mod params;

pub use behaviour::{
    CopyTap, Gossipsub, Libp2p, Libp2pBehaviour, Libp2pContext, ObservedBehaviour, Security,
};
pub use builtin::GossipsubNode;
pub use context::{
    Command, Commands, Connect, NodeContext, PublishRequest, Readiness, TopicRequest,
};
pub use events::{NodeEvents, Peers};
pub use network::{Connection, LISTEN_BACKLOG, Listener, Network};
pub use params::{GossipsubParams, MessageIdFn, Validation};

use futures::future::BoxFuture;
use libp2p::identity::Keypair;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::topology::NodeId;
pub use crate::trace::SoftwareInfo;

/// An error from node software, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running node: the future [`NodeSoftware::start`] returns. meshsim spawns it; it should
/// end when the node's [`Commands`] close.
pub type NodeTask = BoxFuture<'static, ()>;

/// Node software: a description of what runs on each node, which meshsim starts once per
/// node (and again for each restart).
///
/// A protocol that is not built on libp2p implements it directly:
///
/// ```
/// use futures::{AsyncReadExt, AsyncWriteExt};
/// use meshsim::node::{BoxError, Command, NodeContext, NodeSoftware, NodeTask, SoftwareInfo};
///
/// /// Sends each message straight to every peer it dialled; receivers do not forward.
/// struct Shout;
///
/// impl NodeSoftware for Shout {
///     fn info(&self) -> SoftwareInfo {
///         SoftwareInfo::new("shout", "0.1")
///     }
///
///     fn start(&self, ctx: NodeContext) -> Result<NodeTask, BoxError> {
///         let NodeContext { network, mut commands, events, .. } = ctx;
///         let mut listener = network.listen()?;
///         Ok(Box::pin(async move {
///             let mut peers = Vec::new();
///             loop {
///                 tokio::select! {
///                     cmd = commands.recv() => match cmd {
///                         None => break,
///                         Some(Command::Connect(c)) => {
///                             if let Ok(conn) = network.dial(c.peer()).await {
///                                 peers.push(conn);
///                             }
///                         }
///                         Some(Command::Publish(p)) => {
///                             let frame = [&(p.data().len() as u32).to_be_bytes()[..], p.data()].concat();
///                             for conn in &mut peers {
///                                 let _ = conn.write_all(&frame).await;
///                             }
///                             p.done(Ok(()));
///                         }
///                         Some(Command::Subscribe(r) | Command::Unsubscribe(r)) => r.done(Ok(())),
///                         Some(_) => {}
///                     },
///                     Some(mut conn) = listener.accept() => {
///                         let events = events.clone();
///                         tokio::spawn(async move {
///                             let mut len = [0u8; 4];
///                             while conn.read_exact(&mut len).await.is_ok() {
///                                 let mut data = vec![0; u32::from_be_bytes(len) as usize];
///                                 if conn.read_exact(&mut data).await.is_err() {
///                                     break;
///                                 }
///                                 if let Some(msg) = meshsim::MsgId::from_payload(&data) {
///                                     events.received(msg, conn.peer());
///                                 }
///                             }
///                         });
///                     }
///                 }
///             }
///         }))
///     }
/// }
///
/// let sim = meshsim::Sim::new("doc")?.with_software(Shout);
/// # Ok::<(), meshsim::Error>(())
/// ```
pub trait NodeSoftware: Send + Sync + 'static {
    /// Its name, version and parameters, as the trace records them.
    fn info(&self) -> SoftwareInfo;

    /// When a node counts as ready (default: connected to its overlay peers).
    fn readiness(&self) -> Readiness {
        Readiness::Connected
    }

    /// The largest message, in bytes, the software can publish, if it has a limit: a larger
    /// publish is refused with [`Error::Publish`](crate::Error::Publish) before meshsim
    /// builds its payload.
    fn max_message_size(&self) -> Option<usize> {
        None
    }

    /// Checks the description before any node starts (parameters out of range, ...); the
    /// error is what [`Sim::start`](crate::Sim::start) returns.
    fn check(&self) -> crate::Result<()> {
        Ok(())
    }

    /// Builds node `ctx.node` and returns the task that runs it. The node is listening from
    /// the start; meshsim records it up, then sends its start-up subscriptions and the
    /// overlay's connects as [`Command`]s. An error here fails the start with
    /// [`Error::Node`](crate::Error::Node).
    fn start(&self, ctx: NodeContext) -> Result<NodeTask, BoxError>;
}

/// The node's key, derived from the simulation seed so peer ids repeat across runs.
pub(crate) fn keypair(seed: u64, node: NodeId) -> Keypair {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (u64::from(node.0).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    Keypair::ed25519_from_bytes(bytes).expect("32 bytes make an ed25519 key")
}
