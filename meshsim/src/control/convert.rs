//! Between the protocol's messages and the trace's types.

use std::time::Duration;

use super::proto::{self, telemetry::Kind};
use crate::topology::{LinkShape, NodeId};
use crate::trace::{EventKind, MsgId};

/// A link shape on the wire.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
pub fn shape_to(s: &LinkShape) -> proto::Shape {
    proto::Shape {
        latency_ns: s.latency.as_nanos() as u64,
        jitter_ns: s.jitter.as_nanos() as u64,
        loss: s.loss,
        bandwidth_bps: s.bandwidth.unwrap_or(0),
    }
}

/// A link shape from the wire (absent is unshaped).
pub fn shape_of(s: Option<&proto::Shape>) -> LinkShape {
    s.map(|s| LinkShape {
        latency: Duration::from_nanos(s.latency_ns),
        jitter: Duration::from_nanos(s.jitter_ns),
        loss: s.loss,
        bandwidth: (s.bandwidth_bps > 0).then_some(s.bandwidth_bps),
    })
    .unwrap_or_default()
}

/// What the node reports, as the agent sends it. `None` for kinds nodes never report.
pub fn telemetry_of(unix_ns: u64, mono_ns: u64, kind: &EventKind) -> Option<proto::Telemetry> {
    let copy = |msg: &MsgId, from: &NodeId| proto::Copy {
        msg: msg.0,
        from: from.0,
    };
    let mesh = |peer: &NodeId, topic: &str| proto::Mesh {
        peer: peer.0,
        topic: topic.into(),
    };
    let kind = match kind {
        EventKind::NodeUp => Kind::NodeUp(proto::Empty {}),
        EventKind::PeerConnected { peer } => Kind::PeerConnected(peer.0),
        EventKind::PeerDisconnected { peer } => Kind::PeerDisconnected(peer.0),
        EventKind::Subscribed { topic } => Kind::Subscribed(topic.clone()),
        EventKind::Unsubscribed { topic } => Kind::Unsubscribed(topic.clone()),
        EventKind::Published { msg, topic, size } => Kind::Published(proto::Published {
            msg: msg.0,
            topic: topic.clone(),
            size: *size as u64,
        }),
        EventKind::Delivered { msg, from } => Kind::Delivered(copy(msg, from)),
        EventKind::Duplicate { msg, from } => Kind::Duplicate(copy(msg, from)),
        EventKind::Graft { peer, topic } => Kind::Graft(mesh(peer, topic)),
        EventKind::Prune { peer, topic } => Kind::Prune(mesh(peer, topic)),
        _ => return None,
    };
    Some(proto::Telemetry {
        unix_ns,
        mono_ns,
        kind: Some(kind),
    })
}

/// A trace event from the agent's report. `Published` and peer subscriptions are not plain
/// events (the recorder handles them apart) and give `None`, as does an empty report.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
pub fn event_of(kind: &Kind) -> Option<EventKind> {
    Some(match kind {
        Kind::NodeUp(_) => EventKind::NodeUp,
        Kind::PeerConnected(p) => EventKind::PeerConnected { peer: NodeId(*p) },
        Kind::PeerDisconnected(p) => EventKind::PeerDisconnected { peer: NodeId(*p) },
        Kind::Subscribed(topic) => EventKind::Subscribed {
            topic: topic.clone(),
        },
        Kind::Unsubscribed(topic) => EventKind::Unsubscribed {
            topic: topic.clone(),
        },
        Kind::Delivered(c) => EventKind::Delivered {
            msg: MsgId(c.msg),
            from: NodeId(c.from),
        },
        Kind::Duplicate(c) => EventKind::Duplicate {
            msg: MsgId(c.msg),
            from: NodeId(c.from),
        },
        Kind::Graft(m) => EventKind::Graft {
            peer: NodeId(m.peer),
            topic: m.topic.clone(),
        },
        Kind::Prune(m) => EventKind::Prune {
            peer: NodeId(m.peer),
            topic: m.topic.clone(),
        },
        Kind::Published(_) | Kind::PeerSubscription(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_events_survive_the_wire() {
        let kinds = [
            EventKind::NodeUp,
            EventKind::PeerConnected { peer: NodeId(3) },
            EventKind::PeerDisconnected { peer: NodeId(4) },
            EventKind::Subscribed { topic: "a".into() },
            EventKind::Unsubscribed { topic: "b".into() },
            EventKind::Delivered {
                msg: MsgId(7),
                from: NodeId(1),
            },
            EventKind::Duplicate {
                msg: MsgId(8),
                from: NodeId(2),
            },
            EventKind::Graft {
                peer: NodeId(5),
                topic: "c".into(),
            },
            EventKind::Prune {
                peer: NodeId(6),
                topic: "d".into(),
            },
        ];
        for k in kinds {
            let t = telemetry_of(5, 6, &k).expect("a node event");
            assert_eq!(t.unix_ns, 5);
            assert_eq!(event_of(t.kind.as_ref().expect("kind")), Some(k));
        }
        let shape = LinkShape {
            latency: Duration::from_millis(50),
            jitter: Duration::from_micros(300),
            loss: 0.01,
            bandwidth: Some(1_000_000),
        };
        assert_eq!(shape_of(Some(&shape_to(&shape))), shape);
    }
}
