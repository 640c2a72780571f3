//! meshsim's gossipsub: rust-libp2p's gossipsub behaviour, observed, so that every copy of
//! every message is recorded with the peer it came from, and every graft and prune.
//!
//! rust-libp2p's gossipsub reports only the first delivery of a message. Two pieces together
//! see all of them, exactly:
//! - [`Gossipsub`] wraps the gossipsub behaviour and notes which peer's handler event is
//!   being processed before passing it on;
//! - [`CopyTap`], gossipsub's `DataTransform`, is called for every received copy *before*
//!   the duplicate check, inside that same call, so it can pair the copy with that peer.
//!
//! The first copy of a message at a node is its delivery, the rest are duplicates. Copies of
//! messages on topics the node is not subscribed to, and copies of its own messages, are not
//! counted (gossipsub drops them too).

use std::collections::{BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::gossipsub::{self, DataTransform, MessageId, RawMessage, TopicHash};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

use crate::node::events::NodeEvents;
use crate::topology::NodeId;
use crate::trace::MsgId;

/// State shared by [`Gossipsub`] and its [`CopyTap`].
struct Tap {
    events: NodeEvents,
    me: PeerId,
    /// The peer whose handler event gossipsub is processing right now.
    current: Mutex<Option<PeerId>>,
    /// Topics the node is subscribed to, as of the last look at the behaviour.
    topics: Mutex<BTreeSet<TopicHash>>,
}

/// gossipsub's data transform in meshsim's [`Gossipsub`]: passes data through unchanged and
/// records every received copy. Not useful on its own.
#[derive(Clone)]
pub struct CopyTap(Arc<Tap>);

impl std::fmt::Debug for CopyTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyTap")
            .field("node", &self.0.events.node())
            .finish_non_exhaustive()
    }
}

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
            .and_then(|p| tap.events.peers().node(&p));
        if let (true, false, Some(msg), Some(from)) =
            (subscribed, own, MsgId::from_payload(&raw.data), from)
        {
            tap.events.received(msg, from);
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

/// rust-libp2p's gossipsub behaviour as meshsim observes it.
pub type ObservedBehaviour = gossipsub::Behaviour<CopyTap>;

/// rust-libp2p's gossipsub, observed: put it in your `NetworkBehaviour` in place of
/// `gossipsub::Behaviour` (make one with
/// [`Libp2pContext::gossipsub`](crate::node::Libp2pContext::gossipsub)) and meshsim records
/// every copy of every message with the peer it came from (first delivery or duplicate),
/// every graft and prune, and what the node learns of its peers' subscriptions. It
/// dereferences to the gossipsub behaviour: subscribe, publish and report validation
/// results on it as usual.
pub struct Gossipsub {
    inner: ObservedBehaviour,
    tap: Arc<Tap>,
    /// The mesh per topic as last recorded.
    mesh: HashMap<TopicHash, BTreeSet<NodeId>>,
    /// Accept every message after this long (`validate_messages` must be on).
    validation_delay: Option<Duration>,
    validating: FuturesUnordered<BoxFuture<'static, (MessageId, PeerId)>>,
}

impl std::fmt::Debug for Gossipsub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossipsub")
            .field("node", &self.tap.events.node())
            .finish_non_exhaustive()
    }
}

impl Deref for Gossipsub {
    type Target = ObservedBehaviour;

    fn deref(&self) -> &ObservedBehaviour {
        &self.inner
    }
}

impl DerefMut for Gossipsub {
    fn deref_mut(&mut self) -> &mut ObservedBehaviour {
        &mut self.inner
    }
}

impl Gossipsub {
    /// Gossipsub for the node `events` reports for, whose own peer id is `me`.
    pub(crate) fn new(
        events: NodeEvents,
        me: PeerId,
        authenticity: gossipsub::MessageAuthenticity,
        config: gossipsub::Config,
    ) -> Result<Self, &'static str> {
        let tap = Arc::new(Tap {
            events,
            me,
            current: Mutex::new(None),
            topics: Mutex::new(BTreeSet::new()),
        });
        let inner =
            gossipsub::Behaviour::new_with_transform(authenticity, config, CopyTap(tap.clone()))?;
        Ok(Gossipsub {
            inner,
            tap,
            mesh: HashMap::new(),
            validation_delay: None,
            validating: FuturesUnordered::new(),
        })
    }

    /// Accepts every received message `delay` after it arrived, modelling the cost of
    /// validating it (gossipsub-interop's `setTopicValidationDelay`). The gossipsub config
    /// must have `validate_messages()` on. Without it, validation is yours: answer each
    /// `Event::Message` with `report_message_validation_result`.
    pub fn with_validation_delay(mut self, delay: Duration) -> Self {
        self.validation_delay = Some(delay);
        self
    }

    /// Subscribes to `topic` by name (an `IdentTopic`).
    pub fn subscribe_to(&mut self, topic: &str) -> Result<(), String> {
        self.inner
            .subscribe(&gossipsub::IdentTopic::new(topic))
            .map(drop)
            .map_err(|e| format!("cannot subscribe to {topic:?}: {e}"))?;
        self.sync_topics();
        Ok(())
    }

    /// Unsubscribes from `topic` by name.
    pub fn unsubscribe_from(&mut self, topic: &str) {
        self.inner.unsubscribe(&gossipsub::IdentTopic::new(topic));
        self.sync_topics();
    }

    /// Publishes `data` on `topic` by name.
    pub fn publish_to(&mut self, topic: &str, data: Vec<u8>) -> Result<(), String> {
        self.inner
            .publish(gossipsub::IdentTopic::new(topic), data)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Copies the behaviour's subscriptions for the tap (they change only through calls on
    /// this value, but those can go through `DerefMut`).
    fn sync_topics(&self) {
        let mut topics = self.tap.topics.lock().unwrap_or_else(|e| e.into_inner());
        if topics.len() != self.inner.topics().count()
            || self.inner.topics().any(|t| !topics.contains(t))
        {
            *topics = self.inner.topics().cloned().collect();
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
        let peers = tap.events.peers();
        for topic in subscribed.iter().chain(&left) {
            let mut now = BTreeSet::new();
            for p in self.inner.mesh_peers(topic) {
                now.extend(peers.node(p));
            }
            let before = match self.mesh.get_mut(topic) {
                Some(before) if *before == now => continue,
                Some(before) => before,
                None if now.is_empty() => continue,
                None => self.mesh.entry(topic.clone()).or_default(),
            };
            for &peer in now.difference(before) {
                tap.events.graft(peer, topic.as_str());
            }
            for &peer in before.difference(&now) {
                tap.events.prune(peer, topic.as_str());
            }
            *before = now;
        }
        drop(subscribed);
        for topic in left {
            self.mesh.remove(&topic);
        }
    }

    /// Notes what an event tells meshsim before it goes to the swarm.
    fn observe(&mut self, event: &gossipsub::Event) {
        let peers = self.tap.events.peers();
        match event {
            gossipsub::Event::Subscribed { peer_id, topic } => {
                if let Some(peer) = peers.node(peer_id) {
                    self.tap.events.peer_subscribed(peer, topic.as_str(), true);
                }
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                if let Some(peer) = peers.node(peer_id) {
                    self.tap.events.peer_subscribed(peer, topic.as_str(), false);
                }
            }
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                ..
            } => {
                if let Some(delay) = self.validation_delay {
                    let (id, from) = (message_id.clone(), *propagation_source);
                    self.validating.push(Box::pin(async move {
                        crate::time::sleep(delay).await;
                        (id, from)
                    }));
                }
            }
            _ => {}
        }
    }
}

impl NetworkBehaviour for Gossipsub {
    type ConnectionHandler = <ObservedBehaviour as NetworkBehaviour>::ConnectionHandler;
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
        self.sync_topics();
        *self.tap.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(peer);
        self.inner.on_connection_handler_event(peer, id, event);
        *self.tap.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        while let Poll::Ready(Some((id, from))) = self.validating.poll_next_unpin(cx) {
            self.inner.report_message_validation_result(
                &id,
                &from,
                gossipsub::MessageAcceptance::Accept,
            );
        }
        // gossipsub 0.50.1 resets its heartbeat timer after it fires without polling it again,
        // and returns Pending with the heartbeat's GRAFT/PRUNE/IHAVE still queued. Polling a
        // second time registers the timer's waker and hands out what the heartbeat queued, so
        // heartbeats keep running in a quiet network.
        let polled = match self.inner.poll(cx) {
            Poll::Pending => self.inner.poll(cx),
            ready => ready,
        };
        self.sync_topics();
        self.record_mesh_changes();
        if let Poll::Ready(ToSwarm::GenerateEvent(event)) = &polled {
            self.observe(event);
        }
        polled
    }
}
