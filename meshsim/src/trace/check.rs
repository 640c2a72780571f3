//! Consistency checks of a parsed trace: what JSON parsing alone cannot catch (events out of
//! order, ids that name no node or message, invalid link shapes).

use std::collections::HashSet;

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
    /// topology or the message list, events out of time order, invalid link shapes.
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
        }
        let node_ok = |n: NodeId| nodes.contains(&n);
        for (i, l) in self.topology.links.iter().enumerate() {
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
        let mut msgs = HashSet::new();
        for (i, m) in self.messages.iter().enumerate() {
            if !msgs.insert(m.id) {
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
        let msg_ok = |m: MsgId| msgs.contains(&m);
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
