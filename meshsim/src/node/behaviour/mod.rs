//! The rust-libp2p family: any `NetworkBehaviour` on its own `Swarm` over meshsim's links
//! ([`Libp2p`]), and meshsim's observed [`Gossipsub`] to put in it.

mod gossipsub;
mod transport;

pub use gossipsub::{CopyTap, Gossipsub, ObservedBehaviour};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use libp2p::core::transport::Transport;
use libp2p::core::upgrade::Version;
use libp2p::gossipsub::MessageAuthenticity;
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId, noise, yamux};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use super::context::{Command, Commands, NodeContext, Readiness};
use super::events::NodeEvents;
use super::network::NetKind;
use super::{BoxError, NodeSoftware, NodeTask};
use crate::topology::NodeId;
use crate::trace::SoftwareInfo;

use transport::SimTransport;
pub(crate) use transport::addr_of;

/// How libp2p nodes secure their connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// Noise XX, as real deployments run (the default).
    #[default]
    Noise,
    /// libp2p's plaintext upgrade: peers exchange public keys and nothing is encrypted.
    /// Start-up of large in-process networks is dominated by noise handshakes; this skips
    /// them. In-process backend only.
    Plaintext,
}

impl Security {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Security::Noise => "noise",
            Security::Plaintext => "plaintext",
        }
    }
}

/// A `NetworkBehaviour` meshsim can drive: how the harness's subscribe, unsubscribe and
/// publish reach it, and what it does with the events it emits.
///
/// A behaviour with meshsim's [`Gossipsub`] in it only has to say where it is
/// ([`Libp2pBehaviour::gossipsub`]): subscribe and publish go to it, and every copy, graft
/// and prune is recorded. Any other behaviour implements the three calls itself and reports
/// what it receives through [`NodeEvents`].
pub trait Libp2pBehaviour: NetworkBehaviour + Send + 'static
where
    Self::ToSwarm: Send,
{
    /// meshsim's gossipsub inside this behaviour, if it has one.
    fn gossipsub(&mut self) -> Option<&mut Gossipsub> {
        None
    }

    /// Subscribes to `topic` (default: on [`Libp2pBehaviour::gossipsub`]).
    fn subscribe(&mut self, topic: &str) -> Result<(), String> {
        match self.gossipsub() {
            Some(g) => g.subscribe_to(topic),
            None => Err(no_gossipsub("subscribe")),
        }
    }

    /// Unsubscribes from `topic` (default: on [`Libp2pBehaviour::gossipsub`]).
    fn unsubscribe(&mut self, topic: &str) -> Result<(), String> {
        match self.gossipsub() {
            Some(g) => {
                g.unsubscribe_from(topic);
                Ok(())
            }
            None => Err(no_gossipsub("unsubscribe")),
        }
    }

    /// Publishes `data` (meshsim's message number first: send it unchanged) on `topic`
    /// (default: on [`Libp2pBehaviour::gossipsub`]).
    fn publish(&mut self, topic: &str, data: Vec<u8>) -> Result<(), String> {
        match self.gossipsub() {
            Some(g) => g.publish_to(topic, data),
            None => Err(no_gossipsub("publish")),
        }
    }

    /// Handles an event the behaviour emitted (validate a message, answer a request, ...).
    fn on_event(&mut self, event: Self::ToSwarm, events: &NodeEvents) {
        let _ = (event, events);
    }
}

fn no_gossipsub(what: &str) -> String {
    format!("this behaviour has no meshsim Gossipsub; implement Libp2pBehaviour::{what} to {what}")
}

impl Libp2pBehaviour for Gossipsub {
    fn gossipsub(&mut self) -> Option<&mut Gossipsub> {
        Some(self)
    }
}

/// What building one node's behaviour can use, handed to the function given to
/// [`Libp2p::new`].
pub struct Libp2pContext {
    node: NodeId,
    keypair: Keypair,
    seed: u64,
    dilation: f64,
    events: NodeEvents,
}

impl std::fmt::Debug for Libp2pContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libp2pContext")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Libp2pContext {
    /// The node being built.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Its identity (derived from the seed).
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// Its peer id.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The simulation's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// `d` in the network's time: times the time dilation
    /// ([`Sim::with_dilation`](crate::Sim::with_dilation)). Apply it to the durations in
    /// your behaviour's configuration (heartbeats, timeouts) to keep them in step.
    pub fn dilate(&self, d: Duration) -> Duration {
        super::context::dilate(d, self.dilation)
    }

    /// Where the node reports events.
    pub fn events(&self) -> &NodeEvents {
        &self.events
    }

    /// meshsim's observed gossipsub with `config`, signing with the node's key.
    pub fn gossipsub(&self, config: libp2p::gossipsub::Config) -> Result<Gossipsub, BoxError> {
        self.gossipsub_with(MessageAuthenticity::Signed(self.keypair.clone()), config)
    }

    /// meshsim's observed gossipsub with `config` and another authenticity.
    pub fn gossipsub_with(
        &self,
        authenticity: MessageAuthenticity,
        config: libp2p::gossipsub::Config,
    ) -> Result<Gossipsub, BoxError> {
        Ok(Gossipsub::new(
            self.events.clone(),
            self.peer_id(),
            authenticity,
            config,
        )?)
    }
}

type Build<B> = dyn Fn(&Libp2pContext) -> Result<B, BoxError> + Send + Sync;

/// Node software made of a rust-libp2p `NetworkBehaviour` you write: each node runs it on
/// its own `Swarm` over meshsim's links (noise or plaintext, then yamux), and meshsim
/// records its connections.
///
/// ```
/// use meshsim::node::{Libp2p, Readiness};
///
/// // Gossipsub alone, as a user-defined behaviour: meshsim's built-in node is the same.
/// let software = Libp2p::new("my-gossip", "0.1", |ctx| {
///     let config = libp2p::gossipsub::ConfigBuilder::default().build()?;
///     ctx.gossipsub(config)
/// })
/// .with_readiness(Readiness::Mesh { d_lo: 5 });
/// let sim = meshsim::Sim::new("doc")?.with_software(software);
/// # Ok::<(), meshsim::Error>(())
/// ```
pub struct Libp2p<B> {
    info: SoftwareInfo,
    build: Arc<Build<B>>,
    security: Security,
    readiness: Readiness,
}

impl<B> std::fmt::Debug for Libp2p<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libp2p")
            .field("info", &self.info)
            .field("security", &self.security)
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

impl<B> Clone for Libp2p<B> {
    fn clone(&self) -> Self {
        Libp2p {
            info: self.info.clone(),
            build: self.build.clone(),
            security: self.security,
            readiness: self.readiness,
        }
    }
}

impl<B: Libp2pBehaviour> Libp2p<B>
where
    B::ToSwarm: Send,
{
    /// Software called `name` at `version` (as the trace records it), whose nodes each run
    /// the behaviour `build` makes. Ready when connected to its overlay peers unless
    /// [`Libp2p::with_readiness`] says otherwise (use [`Readiness::Mesh`] for gossipsub).
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        build: impl Fn(&Libp2pContext) -> Result<B, BoxError> + Send + Sync + 'static,
    ) -> Self {
        Libp2p {
            info: SoftwareInfo::new(name, version),
            build: Arc::new(build),
            security: Security::Noise,
            readiness: Readiness::Connected,
        }
    }

    /// How connections are secured (default [`Security::Noise`]).
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// When a node counts as ready.
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// The parameters to record in the trace for this software.
    pub fn with_params(mut self, params: impl serde::Serialize) -> Self {
        self.info = self.info.with_params(params);
        self
    }
}

impl<B: Libp2pBehaviour> NodeSoftware for Libp2p<B>
where
    B::ToSwarm: Send,
{
    fn info(&self) -> SoftwareInfo {
        self.info.clone()
    }

    fn readiness(&self) -> Readiness {
        self.readiness
    }

    fn start(&self, ctx: NodeContext) -> Result<NodeTask, BoxError> {
        let behaviour = (self.build)(&Libp2pContext {
            node: ctx.node,
            keypair: ctx.keypair.clone(),
            seed: ctx.seed,
            dilation: ctx.dilation,
            events: ctx.events.clone(),
        })?;
        start_swarm(ctx, behaviour, self.security)
    }
}

/// Builds the node's swarm over its network and returns the task that drives it; the node
/// is listening when this returns.
pub(crate) fn start_swarm<B: Libp2pBehaviour>(
    ctx: NodeContext,
    behaviour: B,
    security: Security,
) -> Result<NodeTask, BoxError>
where
    B::ToSwarm: Send,
{
    let NodeContext {
        node,
        keypair,
        network,
        commands,
        events,
        ..
    } = ctx;
    let peer = keypair.public().to_peer_id();
    let noise = noise::Config::new(&keypair).map_err(|e| format!("noise: {e}"))?;
    let (transport, listen) = match (&network.kind, security) {
        (NetKind::Sim { links, .. }, security) => {
            let sim = SimTransport::new(links.clone(), node, network.take_listener())
                .upgrade(Version::V1);
            let transport = match security {
                Security::Noise => sim
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .boxed(),
                Security::Plaintext => sim
                    .authenticate(libp2p::plaintext::Config::new(&keypair))
                    .multiplex(yamux::Config::default())
                    .boxed(),
            };
            (transport, addr_of(node))
        }
        // Containers always run noise (the harness refuses plaintext there).
        (NetKind::Tcp { port, .. }, _) => (
            libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default())
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .boxed(),
            format!("/ip4/0.0.0.0/tcp/{port}")
                .parse()
                .expect("valid address"),
        ),
    };
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let swarm_config = libp2p::swarm::Config::with_executor(
        move |fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            tokio::spawn(
                fut.instrument(span.clone())
                    .with_subscriber(dispatch.clone()),
            );
        },
    )
    .with_idle_connection_timeout(Duration::from_secs(24 * 3600));
    let mut swarm = Swarm::new(transport, behaviour, peer, swarm_config);
    swarm
        .listen_on(listen.clone())
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(target: "meshsim", %peer, "node up, listening on {listen}");
    let driver = Driver {
        swarm,
        events,
        network,
        pending_dials: HashMap::new(),
    };
    Ok(Box::pin(driver.run(commands)))
}

/// Runs one node's swarm: the harness's commands in, swarm events out to the trace.
struct Driver<B: Libp2pBehaviour>
where
    B::ToSwarm: Send,
{
    swarm: Swarm<B>,
    events: NodeEvents,
    network: super::network::Network,
    pending_dials: HashMap<PeerId, OwnedSemaphorePermit>,
}

impl<B: Libp2pBehaviour> Driver<B>
where
    B::ToSwarm: Send,
{
    fn run(mut self, mut commands: Commands) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                tokio::select! {
                    cmd = commands.recv() => match cmd {
                        Some(cmd) => self.command(cmd),
                        None => break,
                    },
                    event = self.swarm.select_next_some() => self.event(event),
                }
            }
            self.close().await;
        })
    }

    /// A graceful stop: every connection closed by the protocol (yamux says goodbye), then
    /// the swarm dropped. Bounded, in case a peer never answers.
    async fn close(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        let closing = async {
            while self.swarm.connected_peers().next().is_some() {
                let event = self.swarm.select_next_some().await;
                self.event(event);
            }
        };
        let _ = crate::time::timeout(Duration::from_secs(1), closing).await;
    }

    fn dial_addr(&self, peer: NodeId) -> Option<Multiaddr> {
        match &self.network.kind {
            NetKind::Sim { .. } => Some(addr_of(peer)),
            NetKind::Tcp { addrs, .. } => addrs
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&peer)
                .cloned(),
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect(c) => {
                let peer = c.peer;
                let (Some(pid), Some(addr)) =
                    (self.events.peers().peer(peer), self.dial_addr(peer))
                else {
                    tracing::warn!(target: "meshsim", %peer, "cannot dial: unknown peer or address");
                    return;
                };
                let opts = DialOpts::peer_id(pid)
                    .addresses(vec![addr])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        if let Some(permit) = c.permit {
                            self.pending_dials.insert(pid, permit);
                        }
                    }
                    Err(e) => tracing::warn!(target: "meshsim", %peer, "dial failed: {e}"),
                }
            }
            Command::Disconnect(peer) => {
                if let Some(pid) = self.events.peers().peer(peer) {
                    let _ = self.swarm.disconnect_peer_id(pid);
                }
            }
            Command::Subscribe(req) => {
                let res = self.swarm.behaviour_mut().subscribe(req.topic());
                req.done(res);
            }
            Command::Unsubscribe(req) => {
                let res = self.swarm.behaviour_mut().unsubscribe(req.topic());
                req.done(res);
            }
            Command::Publish(mut req) => {
                let data = req.take_data();
                let res = self.swarm.behaviour_mut().publish(req.topic(), data);
                req.done(res);
            }
        }
    }

    fn event(&mut self, event: SwarmEvent<B::ToSwarm>) {
        let peers = self.events.peers().clone();
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                self.pending_dials.remove(&peer_id);
                if num_established.get() == 1
                    && let Some(peer) = peers.node(&peer_id)
                {
                    self.events.connected(peer);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0
                    && let Some(peer) = peers.node(&peer_id)
                {
                    self.events.disconnected(peer);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let Some(p) = peer_id {
                    self.pending_dials.remove(&p);
                }
                tracing::warn!(target: "meshsim", peer = ?peer_id.and_then(|p| peers.node(&p)), "connection failed: {error}");
            }
            SwarmEvent::Behaviour(event) => {
                self.swarm.behaviour_mut().on_event(event, &self.events);
            }
            _ => {}
        }
    }
}
