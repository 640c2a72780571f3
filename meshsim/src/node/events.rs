//! How node software reports what happened: [`NodeEvents`], one per node, and [`Peers`],
//! which names the libp2p peer id of every node.

use std::collections::{HashMap, hash_map::Entry};
use std::sync::{Arc, Mutex, RwLock};

use libp2p::PeerId;

use crate::topology::NodeId;
use crate::trace::recorder::Report;
use crate::trace::{EventKind, MsgId};

/// The libp2p peer id of every node of the simulation, and back.
///
/// Every node's identity derives from the seed, so this knows the peers of nodes that have
/// not started yet.
#[derive(Default)]
pub struct Peers {
    by_peer: RwLock<HashMap<PeerId, NodeId>>,
    by_node: RwLock<HashMap<NodeId, PeerId>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.by_node.read().unwrap_or_else(|e| e.into_inner()).len();
        f.debug_struct("Peers").field("known", &n).finish()
    }
}

impl Peers {
    pub(crate) fn insert(&self, peer: PeerId, node: NodeId) {
        self.by_peer
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, node);
        self.by_node
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node, peer);
    }

    /// The peer id of `node`, if it is known.
    pub fn peer(&self, node: NodeId) -> Option<PeerId> {
        self.by_node
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .copied()
    }

    /// The node whose peer id is `peer`, if it is one of the simulation's.
    pub fn node(&self, peer: &PeerId) -> Option<NodeId> {
        self.by_peer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(peer)
            .copied()
    }
}

/// Where one node's software reports what it sees. Cheap to clone; every clone reports for
/// the same node.
///
/// Connections, subscriptions and publishes are reported for you where meshsim can see them
/// (the [`Network`](super::Network)'s connections, a
/// [`TopicRequest`](super::TopicRequest) or [`PublishRequest`](super::PublishRequest) you
/// complete, the [`Libp2p`](super::Libp2p) family's swarm events, meshsim's
/// [`Gossipsub`](super::Gossipsub)); the rest is yours to report: every copy of a message
/// the node receives ([`NodeEvents::received`]) and, where the protocol has a mesh, its
/// grafts and prunes.
#[derive(Clone)]
pub struct NodeEvents(Arc<Inner>);

struct Inner {
    node: NodeId,
    report: Arc<dyn Report>,
    peers: Arc<Peers>,
    /// Messages this node has had, and whether it published them.
    seen: Mutex<HashMap<MsgId, bool>>,
}

impl std::fmt::Debug for NodeEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeEvents")
            .field("node", &self.0.node)
            .finish_non_exhaustive()
    }
}

impl NodeEvents {
    pub(crate) fn new(node: NodeId, report: Arc<dyn Report>, peers: Arc<Peers>) -> Self {
        NodeEvents(Arc::new(Inner {
            node,
            report,
            peers,
            seen: Mutex::new(HashMap::new()),
        }))
    }

    /// The node these events are about.
    pub fn node(&self) -> NodeId {
        self.0.node
    }

    /// Every node's peer id.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.0.peers
    }

    fn record(&self, kind: EventKind) {
        self.0.report.record(Some(self.0.node), kind);
    }

    /// A copy of message `msg` arrived from `from`. The first copy is recorded as its
    /// delivery, later ones as duplicates; copies of the node's own messages are not
    /// recorded. Returns whether this was the first copy. Take `msg` from the payload with
    /// [`MsgId::from_payload`].
    pub fn received(&self, msg: MsgId, from: NodeId) -> bool {
        let first = match self
            .0
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(msg)
        {
            Entry::Occupied(own) if *own.get() => return false,
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(false);
                true
            }
        };
        self.record(if first {
            EventKind::Delivered { msg, from }
        } else {
            EventKind::Duplicate { msg, from }
        });
        first
    }

    /// Whether the node has had `msg` (received or published it).
    pub fn has(&self, msg: MsgId) -> bool {
        self.0
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&msg)
    }

    /// The node published `msg`: recorded, and later copies of it are not counted.
    pub(crate) fn published(&self, msg: MsgId, topic: &str, size: usize) {
        self.0
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(msg, true);
        self.0.report.published(msg, self.0.node, topic, size);
    }

    pub(crate) fn subscribed(&self, topic: &str, subscribed: bool) {
        let topic = topic.to_string();
        self.record(if subscribed {
            EventKind::Subscribed { topic }
        } else {
            EventKind::Unsubscribed { topic }
        });
    }

    /// A connection to `peer` opened (report it once per peer, when the first one does).
    pub fn connected(&self, peer: NodeId) {
        self.record(EventKind::PeerConnected { peer });
    }

    /// The last connection to `peer` closed.
    pub fn disconnected(&self, peer: NodeId) {
        self.record(EventKind::PeerDisconnected { peer });
    }

    /// `peer` entered the node's mesh for `topic`.
    pub fn graft(&self, peer: NodeId, topic: &str) {
        self.record(EventKind::Graft {
            peer,
            topic: topic.into(),
        });
    }

    /// `peer` left the node's mesh for `topic`.
    pub fn prune(&self, peer: NodeId, topic: &str) {
        self.record(EventKind::Prune {
            peer,
            topic: topic.into(),
        });
    }

    /// The node learned that `peer` is (or no longer is) subscribed to `topic`. Not a trace
    /// event: the mesh readiness rule ([`Readiness::Mesh`](super::Readiness::Mesh)) waits
    /// for it.
    pub fn peer_subscribed(&self, peer: NodeId, topic: &str, subscribed: bool) {
        self.0
            .report
            .peer_subscription(self.0.node, peer, topic, subscribed);
    }

    /// The node counts itself ready ([`Readiness::Reported`](super::Readiness::Reported)).
    pub fn ready(&self) {
        self.0.report.ready(self.0.node);
    }

    /// A note in the trace, at this node.
    pub fn note(&self, text: impl Into<String>) {
        self.record(EventKind::Annotation { text: text.into() });
    }
}
