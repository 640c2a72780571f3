//! The node: a rust-libp2p gossipsub node (noise, yamux) driven by the harness, reporting
//! every event to the trace.

pub(crate) mod agent;
mod observe;
mod params;

pub use params::{GossipsubParams, MessageIdFn, Validation};

pub(crate) use observe::PeerBook;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::core::transport::Transport;
use libp2p::core::upgrade::Version;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId};
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::{PeerId, noise, yamux};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use crate::backend::inprocess::{SimNet, SimTransport, addr_of};
use crate::error::{Error, Result};
use crate::topology::NodeId;
use crate::trace::recorder::Report;
use crate::trace::{EventKind, MsgId};
use libp2p::Multiaddr;
use observe::{CopyTap, Observed, Tap};
use std::sync::RwLock;

/// How in-process nodes secure their connections.
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
    fn name(self) -> &'static str {
        match self {
            Security::Noise => "noise",
            Security::Plaintext => "plaintext",
        }
    }
}

/// The node software, as recorded in traces.
pub(crate) fn software(security: Security) -> String {
    format!(
        "rust-libp2p 0.57 gossipsub 0.50 ({}, yamux)",
        security.name()
    )
}

/// The node's key, derived from the simulation seed so peer ids repeat across runs.
pub(crate) fn keypair(seed: u64, node: NodeId) -> Keypair {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (u64::from(node.0).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    Keypair::ed25519_from_bytes(bytes).expect("32 bytes make an ed25519 key")
}

/// What the harness asks of a node.
pub(crate) enum Command {
    Dial {
        peer: NodeId,
        /// Held until the dial succeeds or fails, to cap dials in flight.
        permit: OwnedSemaphorePermit,
    },
    Disconnect(NodeId),
    Subscribe(String, oneshot::Sender<Result<(), String>>),
    Unsubscribe(String, oneshot::Sender<Result<(), String>>),
    Publish {
        msg: MsgId,
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// A running node.
pub(crate) struct NodeHandle {
    pub commands: mpsc::UnboundedSender<Command>,
    pub task: JoinHandle<()>,
}

impl NodeHandle {
    /// Stops the node and waits until its task (and with it its swarm and listener) is gone.
    pub(crate) async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a node reaches its peers.
#[derive(Clone)]
pub(crate) enum Wire {
    /// The in-process backend's simulated links.
    Sim(Arc<SimNet>),
    /// Real TCP (inside a container): listen on `port`, dial the addresses in `addrs`.
    Tcp {
        port: u16,
        addrs: Arc<RwLock<HashMap<NodeId, Multiaddr>>>,
    },
}

impl Wire {
    fn listen_addr(&self, node: NodeId) -> Multiaddr {
        match self {
            Wire::Sim(_) => addr_of(node),
            Wire::Tcp { port, .. } => format!("/ip4/0.0.0.0/tcp/{port}")
                .parse()
                .expect("valid address"),
        }
    }

    fn dial_addr(&self, peer: NodeId) -> Option<Multiaddr> {
        match self {
            Wire::Sim(_) => Some(addr_of(peer)),
            Wire::Tcp { addrs, .. } => addrs
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&peer)
                .cloned(),
        }
    }
}

/// Everything a node needs to start.
pub(crate) struct NodeSetup {
    pub node: NodeId,
    pub keypair: Keypair,
    pub params: GossipsubParams,
    pub topics: Vec<String>,
    pub wire: Wire,
    pub security: Security,
    pub recorder: Arc<dyn Report>,
    pub book: Arc<PeerBook>,
}

/// Builds the node's swarm and starts its task; the node is listening and subscribed to its
/// topics when this returns.
pub(crate) fn spawn(setup: NodeSetup) -> Result<NodeHandle> {
    let NodeSetup {
        node,
        keypair,
        params,
        topics,
        wire,
        security,
        recorder,
        book,
    } = setup;
    let peer = keypair.public().to_peer_id();
    book.insert(peer, node);
    let config = params.to_config()?;
    let tap = Arc::new(Tap {
        node,
        me: peer,
        book: book.clone(),
        recorder: recorder.clone(),
        current: Mutex::new(None),
        topics: Mutex::new(BTreeSet::new()),
        seen: Mutex::new(Default::default()),
    });
    let fail = |reason: String| Error::Node { node, reason };
    let gossipsub = gossipsub::Behaviour::new_with_transform(
        MessageAuthenticity::Signed(keypair.clone()),
        config,
        CopyTap(tap.clone()),
    )
    .map_err(|e| fail(format!("gossipsub refused to start: {e}")))?;
    let noise = noise::Config::new(&keypair).map_err(|e| fail(format!("noise: {e}")))?;
    let transport = match (&wire, security) {
        (Wire::Sim(net), Security::Noise) => SimTransport::new(net.clone(), node)
            .upgrade(Version::V1)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .boxed(),
        (Wire::Sim(net), Security::Plaintext) => SimTransport::new(net.clone(), node)
            .upgrade(Version::V1)
            .authenticate(libp2p::plaintext::Config::new(&keypair))
            .multiplex(yamux::Config::default())
            .boxed(),
        // Containers always run noise (the harness refuses plaintext there).
        (Wire::Tcp { .. }, _) => libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default())
            .upgrade(Version::V1)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .boxed(),
    };
    let listen = wire.listen_addr(node);
    let span = tracing::info_span!(target: "meshsim", "node", name = %node);
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let (exec_span, exec_dispatch) = (span.clone(), dispatch.clone());
    let swarm_config = libp2p::swarm::Config::with_executor(
        move |fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            tokio::spawn(
                fut.instrument(exec_span.clone())
                    .with_subscriber(exec_dispatch.clone()),
            );
        },
    )
    .with_idle_connection_timeout(Duration::from_secs(24 * 3600));
    let mut swarm = Swarm::new(
        transport,
        Observed::new(gossipsub, tap.clone()),
        peer,
        swarm_config,
    );
    swarm
        .listen_on(listen.clone())
        .map_err(|e| fail(format!("cannot listen: {e}")))?;
    tracing::info!(target: "meshsim", parent: &span, %peer, "node up, listening on {listen}");
    recorder.record(Some(node), EventKind::NodeUp);
    let mut state = NodeState {
        node,
        swarm,
        tap,
        recorder,
        book,
        params,
        wire,
        pending_dials: HashMap::new(),
    };
    for t in &topics {
        state.subscribe(t).map_err(fail)?;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(state.run(rx).instrument(span).with_subscriber(dispatch));
    Ok(NodeHandle { commands: tx, task })
}

struct NodeState {
    node: NodeId,
    swarm: Swarm<Observed>,
    tap: Arc<Tap>,
    recorder: Arc<dyn Report>,
    book: Arc<PeerBook>,
    params: GossipsubParams,
    wire: Wire,
    pending_dials: HashMap<PeerId, OwnedSemaphorePermit>,
}

impl NodeState {
    fn gossipsub(&mut self) -> &mut observe::Gossipsub {
        &mut self.swarm.behaviour_mut().inner
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut validations = FuturesUnordered::new();
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                event = self.swarm.select_next_some() => {
                    if let Some((id, from)) = self.event(event) {
                        let delay = self.params.validation_delay.unwrap_or_default();
                        validations.push(async move {
                            tokio::time::sleep(delay).await;
                            (id, from)
                        });
                    }
                }
                Some((id, from)) = validations.next(), if !validations.is_empty() => {
                    self.gossipsub().report_message_validation_result(&id, &from, gossipsub::MessageAcceptance::Accept);
                }
            }
        }
    }

    fn subscribe(&mut self, topic: &str) -> Result<(), String> {
        let t = IdentTopic::new(topic);
        self.gossipsub()
            .subscribe(&t)
            .map_err(|e| format!("cannot subscribe to {topic:?}: {e}"))?;
        self.tap
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t.hash());
        self.recorder.record(
            Some(self.node),
            EventKind::Subscribed {
                topic: topic.into(),
            },
        );
        Ok(())
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { peer, permit } => {
                let (Some(pid), Some(addr)) = (self.peer_of(peer), self.wire.dial_addr(peer))
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
                        self.pending_dials.insert(pid, permit);
                    }
                    Err(e) => tracing::warn!(target: "meshsim", %peer, "dial failed: {e}"),
                }
            }
            Command::Disconnect(peer) => {
                if let Some(pid) = self.peer_of(peer) {
                    let _ = self.swarm.disconnect_peer_id(pid);
                }
            }
            Command::Subscribe(topic, reply) => {
                let _ = reply.send(self.subscribe(&topic));
            }
            Command::Unsubscribe(topic, reply) => {
                let t = IdentTopic::new(topic.clone());
                self.gossipsub().unsubscribe(&t);
                self.tap
                    .topics
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&t.hash());
                self.recorder
                    .record(Some(self.node), EventKind::Unsubscribed { topic });
                let _ = reply.send(Ok(()));
            }
            Command::Publish {
                msg,
                topic,
                data,
                reply,
            } => {
                let size = data.len();
                let res = match self
                    .gossipsub()
                    .publish(IdentTopic::new(topic.clone()), data)
                {
                    Ok(_) => {
                        // Only now is it this node's own message: a failed publish reuses the number.
                        self.tap
                            .seen
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(msg);
                        self.recorder.published(msg, self.node, &topic, size);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(res);
            }
        }
    }

    fn peer_of(&self, n: NodeId) -> Option<PeerId> {
        self.book.peer(n)
    }

    /// Handles a swarm event; returns a message awaiting validation, if any.
    fn event(&mut self, event: SwarmEvent<gossipsub::Event>) -> Option<(MessageId, PeerId)> {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                self.pending_dials.remove(&peer_id);
                if num_established.get() == 1
                    && let Some(peer) = self.book.node(&peer_id)
                {
                    self.recorder
                        .record(Some(self.node), EventKind::PeerConnected { peer });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0
                    && let Some(peer) = self.book.node(&peer_id)
                {
                    self.recorder
                        .record(Some(self.node), EventKind::PeerDisconnected { peer });
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let Some(p) = peer_id {
                    self.pending_dials.remove(&p);
                }
                tracing::warn!(target: "meshsim", peer = ?peer_id.and_then(|p| self.book.node(&p)), "connection failed: {error}");
            }
            SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, topic }) => {
                if let Some(peer) = self.book.node(&peer_id) {
                    self.recorder
                        .peer_subscription(self.node, peer, topic.as_str(), true);
                }
            }
            SwarmEvent::Behaviour(gossipsub::Event::Unsubscribed { peer_id, topic }) => {
                if let Some(peer) = self.book.node(&peer_id) {
                    self.recorder
                        .peer_subscription(self.node, peer, topic.as_str(), false);
                }
            }
            SwarmEvent::Behaviour(gossipsub::Event::Message {
                propagation_source,
                message_id,
                ..
            }) if self.params.validation_delay.is_some() => {
                return Some((message_id, propagation_source));
            }
            _ => {}
        }
        None
    }
}
