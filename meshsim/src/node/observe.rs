//! Seeing every copy of every message, with the peer it came from.
//!
//! rust-libp2p's gossipsub reports only the first delivery of a message. Two pieces together
//! see all of them, exactly:
//! - [`Observed`] wraps the gossipsub behaviour and notes which peer's handler event is being
//!   processed before passing it on;
//! - [`CopyTap`], gossipsub's `DataTransform`, is called for every received copy *before* the
//!   duplicate check, inside that same call, so it can pair the copy with that peer.
//!
//! The first copy of a message at a node is its delivery, the rest are duplicates. Copies of
//! messages on topics the node is not subscribed to, and copies of its own messages, are not
//! counted (gossipsub drops them too).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::gossipsub::{self, DataTransform, RawMessage, TopicHash};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

use crate::topology::NodeId;
use crate::trace::recorder::Report;
use crate::trace::{EventKind, MsgId};

/// Maps peer ids to nodes, for everything a simulation runs.
#[derive(Default)]
pub(crate) struct PeerBook {
    by_peer: RwLock<HashMap<PeerId, NodeId>>,
    by_node: RwLock<HashMap<NodeId, PeerId>>,
}

impl PeerBook {
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

    pub(crate) fn peer(&self, node: NodeId) -> Option<PeerId> {
        self.by_node
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .copied()
    }

    pub(crate) fn node(&self, peer: &PeerId) -> Option<NodeId> {
        self.by_peer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(peer)
            .copied()
    }
}

/// meshsim payloads begin with the message number, 8 bytes big-endian.
pub(crate) fn msg_of(data: &[u8]) -> Option<MsgId> {
    data.get(..8)
        .map(|b| MsgId(u64::from_be_bytes(b.try_into().expect("8 bytes"))))
}

/// State shared by [`Observed`] and [`CopyTap`] of one node.
pub(crate) struct Tap {
    pub node: NodeId,
    pub me: PeerId,
    pub book: Arc<PeerBook>,
    pub recorder: Arc<dyn Report>,
    /// The peer whose handler event gossipsub is processing right now.
    pub current: Mutex<Option<PeerId>>,
    /// Topics the node is subscribed to.
    pub topics: Mutex<BTreeSet<TopicHash>>,
    /// Messages this node has had a copy of.
    pub seen: Mutex<HashSet<MsgId>>,
}

/// gossipsub's data transform: identity, plus a note of every copy.
#[derive(Clone)]
pub(crate) struct CopyTap(pub Arc<Tap>);

impl DataTransform for CopyTap {
    fn inbound_transform(&self, raw: RawMessage) -> Result<gossipsub::Message, std::io::Error> {
        let tap = &self.0;
        let subscribed = tap
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&raw.topic);
        let own = raw.source == Some(tap.me);
        let from = tap
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .and_then(|p| tap.book.node(&p));
        if let (true, false, Some(msg), Some(from)) = (subscribed, own, msg_of(&raw.data), from) {
            let first = tap
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(msg);
            let kind = if first {
                EventKind::Delivered { msg, from }
            } else {
                EventKind::Duplicate { msg, from }
            };
            tap.recorder.record(Some(tap.node), kind);
        }
        Ok(gossipsub::Message {
            source: raw.source,
            data: raw.data,
            sequence_number: raw.sequence_number,
            topic: raw.topic,
        })
    }

    fn outbound_transform(
        &self,
        _topic: &TopicHash,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, std::io::Error> {
        Ok(data)
    }
}

/// The gossipsub behaviour the node runs.
pub(crate) type Gossipsub = gossipsub::Behaviour<CopyTap>;

/// gossipsub, observed; see the module docs.
pub(crate) struct Observed {
    pub inner: Gossipsub,
    tap: Arc<Tap>,
    /// The mesh per topic as last recorded.
    mesh: HashMap<TopicHash, BTreeSet<NodeId>>,
}

impl Observed {
    pub(crate) fn new(inner: Gossipsub, tap: Arc<Tap>) -> Self {
        Observed {
            inner,
            tap,
            mesh: HashMap::new(),
        }
    }

    /// Records grafts and prunes by comparing each topic's mesh with the last one recorded.
    /// Runs on every poll of the behaviour, so changes made by heartbeats, by peers' GRAFT
    /// and PRUNE, and by subscriptions are all stamped when they happen.
    fn record_mesh_changes(&mut self) {
        let tap = &self.tap;
        let subscribed = tap.topics.lock().unwrap_or_else(|e| e.into_inner());
        // Topics left since the last poll: their mesh is gone, so their prunes are recorded too.
        let left: Vec<TopicHash> = if self.mesh.len() > subscribed.len()
            || self.mesh.keys().any(|t| !subscribed.contains(t))
        {
            self.mesh
                .keys()
                .filter(|t| !subscribed.contains(*t))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        for topic in subscribed.iter().chain(&left) {
            let mut now = BTreeSet::new();
            for p in self.inner.mesh_peers(topic) {
                now.extend(tap.book.node(p));
            }
            let before = match self.mesh.get_mut(topic) {
                Some(before) if *before == now => continue,
                Some(before) => before,
                None if now.is_empty() => continue,
                None => self.mesh.entry(topic.clone()).or_default(),
            };
            for &peer in now.difference(before) {
                tap.recorder.record(
                    Some(tap.node),
                    EventKind::Graft {
                        peer,
                        topic: topic.to_string(),
                    },
                );
            }
            for &peer in before.difference(&now) {
                tap.recorder.record(
                    Some(tap.node),
                    EventKind::Prune {
                        peer,
                        topic: topic.to_string(),
                    },
                );
            }
            *before = now;
        }
        drop(subscribed);
        for topic in left {
            self.mesh.remove(&topic);
        }
    }
}

impl NetworkBehaviour for Observed {
    type ConnectionHandler = <Gossipsub as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = gossipsub::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        *self.tap.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(peer);
        self.inner.on_connection_handler_event(peer, id, event);
        *self.tap.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        // gossipsub 0.50.1 resets its heartbeat timer after it fires without polling it again,
        // and returns Pending with the heartbeat's GRAFT/PRUNE/IHAVE still queued. Polling a
        // second time registers the timer's waker and hands out what the heartbeat queued, so
        // heartbeats keep running in a quiet network.
        let polled = match self.inner.poll(cx) {
            Poll::Pending => self.inner.poll(cx),
            ready => ready,
        };
        self.record_mesh_changes();
        polled
    }
}
