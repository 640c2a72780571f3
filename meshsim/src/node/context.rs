//! What a node is given when it starts ([`NodeContext`]) and what the harness asks of it
//! ([`Command`]).

use std::time::Duration;

use libp2p::identity::Keypair;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::events::NodeEvents;
use super::network::Network;
use crate::topology::NodeId;
use crate::trace::MsgId;

/// Commands queued per node before the harness waits for room: a node that stops reading
/// its commands slows the harness down rather than filling memory.
pub(crate) const COMMAND_QUEUE: usize = 1024;

/// Everything one node is built from and driven with, handed to
/// [`NodeSoftware::start`](super::NodeSoftware::start).
#[non_exhaustive]
pub struct NodeContext {
    /// The node.
    pub node: NodeId,
    /// Its identity, derived from the seed: the same node has the same key in every run.
    pub keypair: Keypair,
    /// The simulation's seed, for whatever randomness the node software draws.
    pub seed: u64,
    /// Time dilation ([`Sim::with_dilation`](crate::Sim::with_dilation)): the network runs
    /// this many times slower than simulated time. Multiply the node software's own
    /// durations (timers, timeouts) by it ([`NodeContext::dilate`]) to keep them in step.
    pub dilation: f64,
    /// The simulated network: dial peers, accept their connections.
    pub network: Network,
    /// What the harness asks of the node, in order. When it closes, stop (gracefully).
    pub commands: Commands,
    /// Where the node reports what it sees.
    pub events: NodeEvents,
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("node", &self.node)
            .field("seed", &self.seed)
            .field("dilation", &self.dilation)
            .finish_non_exhaustive()
    }
}

impl NodeContext {
    /// `d` in the network's time: `d` times the dilation.
    pub fn dilate(&self, d: Duration) -> Duration {
        dilate(d, self.dilation)
    }
}

pub(crate) fn dilate(d: Duration, k: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * k).unwrap_or(Duration::MAX)
}

/// The node's queue of [`Command`]s.
#[derive(Debug)]
pub struct Commands(pub(crate) mpsc::Receiver<Command>);

impl Commands {
    /// The next command; `None` once the harness has stopped the node.
    pub async fn recv(&mut self) -> Option<Command> {
        self.0.recv().await
    }

    /// Polls for the next command (for hand-written futures).
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Command>> {
        self.0.poll_recv(cx)
    }
}

/// What the harness asks of a node. Requests that answer (`Subscribe`, `Unsubscribe`,
/// `Publish`) record their event in the trace when the node completes them.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// Open a connection to a peer (the overlay, or a test's redial).
    Connect(Connect),
    /// Close every connection to a peer.
    Disconnect(NodeId),
    /// Subscribe to a topic.
    Subscribe(TopicRequest),
    /// Unsubscribe from a topic.
    Unsubscribe(TopicRequest),
    /// Publish a message.
    Publish(PublishRequest),
}

/// A request to connect to a peer. Keep it until the connection is up or has failed: the
/// harness caps the connections being opened at once (a start-up of thousands of nodes would
/// otherwise time out its handshakes), and dropping this frees the node's place.
#[derive(Debug)]
pub struct Connect {
    pub(crate) peer: NodeId,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

impl Connect {
    /// The peer to connect to.
    pub fn peer(&self) -> NodeId {
        self.peer
    }
}

/// A request to subscribe or unsubscribe; answer it with [`TopicRequest::done`].
#[derive(Debug)]
pub struct TopicRequest {
    pub(crate) topic: String,
    pub(crate) subscribe: bool,
    pub(crate) reply: Option<oneshot::Sender<Result<(), String>>>,
    pub(crate) events: NodeEvents,
}

impl TopicRequest {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Answers the request: on success the (un)subscription is recorded now; an error is
    /// returned to the test as [`Error::Node`](crate::Error::Node).
    pub fn done(mut self, result: Result<(), String>) {
        if result.is_ok() {
            self.events.subscribed(&self.topic, self.subscribe);
        }
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
    }
}

impl Drop for TopicRequest {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err("the node dropped the request unanswered".into()));
        }
    }
}

/// A request to publish a message; answer it with [`PublishRequest::done`].
///
/// The payload starts with meshsim's 8-byte message number ([`MsgId::from_payload`]): send
/// it unchanged, so that every node can report the copies it receives.
#[derive(Debug)]
pub struct PublishRequest {
    pub(crate) msg: MsgId,
    pub(crate) topic: String,
    pub(crate) data: Vec<u8>,
    /// The payload's size as handed over.
    pub(crate) size: usize,
    pub(crate) reply: Option<oneshot::Sender<Result<(), String>>>,
    pub(crate) events: NodeEvents,
}

impl PublishRequest {
    /// The message's number.
    pub fn msg(&self) -> MsgId {
        self.msg
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The payload.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the payload out (leaving it empty; the recorded size stays that of the
    /// payload as it was handed over).
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// Answers the request. On success the publish is recorded now (call it once the node
    /// has taken the message and before it can reach any peer) and later copies of the
    /// message at this node are not counted; an error is returned to the test as
    /// [`Error::Publish`](crate::Error::Publish) and must mean nothing was sent (the message
    /// number may be used again).
    pub fn done(mut self, result: Result<(), String>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<(), String>) {
        if let Some(reply) = self.reply.take() {
            if result.is_ok() {
                self.events.published(self.msg, &self.topic, self.size);
            }
            let _ = reply.send(result);
        }
    }
}

impl Drop for PublishRequest {
    fn drop(&mut self) {
        self.finish(Err("the node dropped the request unanswered".into()));
    }
}

/// When a node counts as ready, for [`Sim::start`](crate::Sim::start) and
/// [`Simulation::wait_ready`](crate::Simulation::wait_ready). Every rule also waits for
/// the node's start-up subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// Connected to every running overlay peer.
    Connected,
    /// Connected to every running overlay peer, aware of each connected peer's
    /// subscriptions ([`NodeEvents::peer_subscribed`]), and with at least `min(d_lo,
    /// subscribed peers)` mesh peers per topic (gossipsub's rule; grafts and prunes
    /// reported).
    Mesh {
        /// The mesh size to wait for (gossipsub's `D_lo`).
        d_lo: usize,
    },
    /// When the node says so ([`NodeEvents::ready`]).
    Reported,
}
