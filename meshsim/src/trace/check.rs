//! Consistency checks of a parsed trace: what JSON parsing alone cannot catch (events out of
//! order, ids that name no node or message, links listed twice or backwards, invalid link
//! shapes and peer ids).

use std::collections::{HashMap, HashSet};

use super::{EventKind, MsgId, Trace};
use crate::topology::NodeId;

/// One inconsistency in a trace, located by its JSON path (`events[12].from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, as a JSON path from the root of the trace file.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl Trace {
    /// Checks the trace for inconsistencies: node, message and peer ids that are not in the
    /// topology or the message list, events out of time order or missing their node, a
    /// publish at another node than the message's origin, links backwards or listed twice,
    /// invalid link shapes and peer ids.
    /// Returns every problem found, in file order (empty when the trace is consistent).
    pub fn check(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut problem = |at: String, message: String| out.push(Problem { at, message });
        let mut nodes = HashSet::new();
        for (i, n) in self.topology.nodes.iter().enumerate() {
            if !nodes.insert(n.id) {
                problem(
                    format!("topology.nodes[{i}].id"),
                    format!("node {} is listed twice", n.id.0),
                );
            }
            if let Some(p) = &n.peer_id
                && let Err(e) = p.parse::<libp2p::PeerId>()
            {
                problem(
                    format!("topology.nodes[{i}].peer_id"),
                    format!("{p:?} is not a libp2p peer id: {e}"),
                );
            }
        }
        let node_ok = |n: NodeId| nodes.contains(&n);
        let mut links = HashSet::new();
        for (i, l) in self.topology.links.iter().enumerate() {
            if l.a >= l.b {
                problem(
                    format!("topology.links[{i}]"),
                    format!(
                        "a ({}) must be the lower-numbered end, below b ({})",
                        l.a.0, l.b.0
                    ),
                );
            }
            if !links.insert((l.a.min(l.b), l.a.max(l.b))) {
                problem(
                    format!("topology.links[{i}]"),
                    format!("the link {} - {} is listed twice", l.a.0, l.b.0),
                );
            }
            for (field, n) in [("a", l.a), ("b", l.b)] {
                if !node_ok(n) {
                    problem(
                        format!("topology.links[{i}].{field}"),
                        format!("node {} is not in topology.nodes", n.0),
                    );
                }
            }
            for (field, from, to, shape) in [
                ("a_to_b", l.a, l.b, l.a_to_b),
                ("b_to_a", l.b, l.a, l.b_to_a),
            ] {
                if let Err(e) = shape.validate(from, to) {
                    problem(format!("topology.links[{i}].{field}"), e.to_string());
                }
            }
        }
        for (i, (a, b)) in self.topology.overlay.iter().enumerate() {
            for n in [a, b] {
                if !node_ok(*n) {
                    problem(
                        format!("topology.overlay[{i}]"),
                        format!("node {} is not in topology.nodes", n.0),
                    );
                }
            }
        }
        let mut msgs = HashMap::new();
        for (i, m) in self.messages.iter().enumerate() {
            if msgs.insert(m.id, m.origin).is_some() {
                problem(
                    format!("messages[{i}].id"),
                    format!("message {} is listed twice", m.id.0),
                );
            }
            if !node_ok(m.origin) {
                problem(
                    format!("messages[{i}].origin"),
                    format!("node {} is not in topology.nodes", m.origin.0),
                );
            }
            for (j, n) in m.expected.iter().enumerate() {
                if !node_ok(*n) {
                    problem(
                        format!("messages[{i}].expected[{j}]"),
                        format!("node {} is not in topology.nodes", n.0),
                    );
                }
            }
        }
        let msg_ok = |m: MsgId| msgs.contains_key(&m);
        let mut published = std::collections::HashSet::new();
        let mut last = 0;
        for (i, e) in self.events.iter().enumerate() {
            if e.t_ns < last {
                problem(
                    format!("events[{i}].t_ns"),
                    format!(
                        "{} ns is earlier than the event before it ({last} ns)",
                        e.t_ns
                    ),
                );
            }
            last = last.max(e.t_ns);
            if let Some(n) = e.node.filter(|n| !node_ok(*n)) {
                problem(
                    format!("events[{i}].node"),
                    format!("node {} is not in topology.nodes", n.0),
                );
            }
            let needs_node = matches!(
                e.kind,
                EventKind::Published { .. }
                    | EventKind::Delivered { .. }
                    | EventKind::Duplicate { .. }
                    | EventKind::NodeUp
                    | EventKind::NodeDown { .. }
            );
            if needs_node && e.node.is_none() {
                problem(
                    format!("events[{i}].node"),
                    "missing: this kind of event happens at a node".to_string(),
                );
            }
            if let EventKind::Partition { a, b } | EventKind::Heal { a, b } = &e.kind {
                for (side, group) in [("a", a), ("b", b)] {
                    for (j, n) in group.iter().enumerate() {
                        if !node_ok(*n) {
                            problem(
                                format!("events[{i}].{side}[{j}]"),
                                format!("node {} is not in topology.nodes", n.0),
                            );
                        }
                    }
                }
            }
            // The first publish is the origin's; another node may publish it again later.
            if let (EventKind::Published { msg, .. }, Some(n)) = (&e.kind, e.node)
                && published.insert(*msg)
                && let Some(&origin) = msgs.get(msg)
                && origin != n
            {
                problem(
                    format!("events[{i}].node"),
                    format!(
                        "message {} was published by node {}, but messages says its origin is node {}",
                        msg.0, n.0, origin.0
                    ),
                );
            }
            let (peer_field, peer, msg) = match &e.kind {
                EventKind::PeerConnected { peer }
                | EventKind::PeerDisconnected { peer }
                | EventKind::Graft { peer, .. }
                | EventKind::Prune { peer, .. } => ("peer", Some(*peer), None),
                EventKind::Delivered { msg, from } | EventKind::Duplicate { msg, from } => {
                    ("from", Some(*from), Some(*msg))
                }
                EventKind::LinkChanged { to, .. } => ("to", Some(*to), None),
                EventKind::Published { msg, .. } => ("", None, Some(*msg)),
                _ => ("", None, None),
            };
            if let Some(p) = peer.filter(|p| !node_ok(*p)) {
                problem(
                    format!("events[{i}].{peer_field}"),
                    format!("node {} is not in topology.nodes", p.0),
                );
            }
            if let Some(m) = msg.filter(|m| !msg_ok(*m)) {
                problem(
                    format!("events[{i}].msg"),
                    format!("message {} is not in messages", m.0),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> Trace {
        let shape = serde_json::json!({"latency_ns": 1000, "jitter_ns": 0, "loss": 0.0, "bandwidth_bps": null});
        serde_json::from_value(serde_json::json!({
            "format": "meshsim-trace", "version": 1,
            "meta": {"test": "t", "backend": "in-process", "shaping": "s", "seed": 0,
                     "node_software": "x", "params": crate::GossipsubParams::default(),
                     "started_at_unix_ns": 0, "meshsim_version": "0"},
            "topology": {"description": "", "nodes": [{"id": 0, "name": "n0"}, {"id": 1, "name": "n1"}],
                         "links": [{"a": 0, "b": 1, "a_to_b": shape, "b_to_a": shape}], "overlay": [[0, 1]]},
            "messages": [{"id": 0, "origin": 0, "topic": "t", "size": 1, "published_ns": 10, "expected": [1]}],
            "events": [
                {"t_ns": 10, "node": 0, "type": "published", "msg": 0, "topic": "t", "size": 1},
                {"t_ns": 20, "node": 1, "type": "delivered", "msg": 0, "from": 0},
                {"t_ns": 30, "type": "partition", "a": [0], "b": [1]}
            ]
        }))
        .unwrap()
    }

    fn at(t: &Trace) -> Vec<String> {
        t.check().into_iter().map(|p| p.at).collect()
    }

    #[test]
    fn a_consistent_trace_has_no_problems() {
        assert_eq!(trace().check(), vec![]);
    }

    #[test]
    fn every_problem_is_located() {
        let mut t = trace();
        t.events[1].t_ns = 5;
        assert_eq!(at(&t), ["events[1].t_ns"]);

        let mut t = trace();
        t.events[1].kind = EventKind::Delivered {
            msg: MsgId(7),
            from: NodeId(9),
        };
        assert_eq!(at(&t), ["events[1].from", "events[1].msg"]);

        let mut t = trace();
        t.events[1].node = None;
        assert_eq!(at(&t), ["events[1].node"]);

        let mut t = trace();
        t.events[0].node = Some(NodeId(1));
        assert_eq!(at(&t), ["events[0].node"], "published away from its origin");

        let mut t = trace();
        t.events[2].kind = EventKind::Heal {
            a: vec![NodeId(0)],
            b: vec![NodeId(4)],
        };
        assert_eq!(at(&t), ["events[2].b[0]"]);

        let mut t = trace();
        let l = t.topology.links[0];
        t.topology.links.push(crate::topology::Link {
            a: l.b,
            b: l.a,
            ..l
        });
        assert_eq!(at(&t), ["topology.links[1]", "topology.links[1]"]);

        let mut t = trace();
        t.topology.nodes[1].peer_id = Some("not-a-peer".into());
        t.topology.links[0].a_to_b.loss = 2.0;
        assert_eq!(
            at(&t),
            ["topology.nodes[1].peer_id", "topology.links[0].a_to_b"]
        );
    }
}
