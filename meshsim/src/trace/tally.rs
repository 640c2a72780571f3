//! Whole-trace counts and the delivery-delay CDF, as go-libp2p-pubsub's `tracestat` reports
//! them, so figures from meshsim runs and from go traces can be compared side by side.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{EventKind, MsgId, Trace};
use crate::topology::NodeId;

/// How many events of each kind one node (or the whole trace) recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EventCounts {
    /// Messages published.
    pub publish: usize,
    /// First deliveries.
    pub deliver: usize,
    /// Duplicate copies received.
    pub duplicate: usize,
    /// Peers grafted into a mesh.
    pub graft: usize,
    /// Peers pruned from a mesh.
    pub prune: usize,
    /// Connections made.
    pub connect: usize,
    /// Connections lost.
    pub disconnect: usize,
}

impl EventCounts {
    fn add(&mut self, kind: &EventKind) {
        match kind {
            EventKind::Published { .. } => self.publish += 1,
            EventKind::Delivered { .. } => self.deliver += 1,
            EventKind::Duplicate { .. } => self.duplicate += 1,
            EventKind::Graft { .. } => self.graft += 1,
            EventKind::Prune { .. } => self.prune += 1,
            EventKind::PeerConnected { .. } => self.connect += 1,
            EventKind::PeerDisconnected { .. } => self.disconnect += 1,
            _ => {}
        }
    }
}

/// One point of the delay CDF: `count` deliveries arrived within `millis` of publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CdfPoint {
    /// Milliseconds after the publish, rounded as `tracestat` rounds (`(ns + 499_999) / 1e6`).
    pub millis: u64,
    /// Deliveries at or below `millis`, all messages together.
    pub count: usize,
}

/// The figures `meshsim stats` prints: event counts per node and in total, and the
/// delivery delays, per message and as a cumulative distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tally {
    /// Counts per node.
    pub per_node: BTreeMap<NodeId, EventCounts>,
    /// Counts over the whole trace.
    pub totals: EventCounts,
    /// Each message's first-delivery delays from its publish, in rounded ms, sorted.
    pub delays: BTreeMap<MsgId, Vec<u64>>,
    /// The cumulative count of first deliveries by delay, one point per distinct delay.
    pub cdf: Vec<CdfPoint>,
}

/// `tracestat`'s rounding of a delay to milliseconds.
fn round_ms(ns: u64) -> u64 {
    ns.saturating_add(499_999) / 1_000_000
}

impl Trace {
    /// Counts every event per node and in total, and the delivery delays of every message,
    /// in one pass over the events.
    pub fn tally(&self) -> Tally {
        let published: BTreeMap<MsgId, u64> = self
            .messages
            .iter()
            .map(|m| (m.id, m.published_ns))
            .collect();
        let mut per_node: BTreeMap<NodeId, EventCounts> = BTreeMap::new();
        let mut totals = EventCounts::default();
        let mut delays: BTreeMap<MsgId, Vec<u64>> = BTreeMap::new();
        for e in &self.events {
            totals.add(&e.kind);
            if let Some(n) = e.node {
                per_node.entry(n).or_default().add(&e.kind);
            }
            if let EventKind::Delivered { msg, .. } = e.kind
                && let Some(&t0) = published.get(&msg)
            {
                delays
                    .entry(msg)
                    .or_default()
                    .push(round_ms(e.t_ns.saturating_sub(t0)));
            }
        }
        let mut all: Vec<u64> = Vec::new();
        for d in delays.values_mut() {
            d.sort_unstable();
            all.extend_from_slice(d);
        }
        all.sort_unstable();
        let mut cdf: Vec<CdfPoint> = Vec::new();
        for (i, &millis) in all.iter().enumerate() {
            match cdf.last_mut() {
                Some(p) if p.millis == millis => p.count = i + 1,
                _ => cdf.push(CdfPoint {
                    millis,
                    count: i + 1,
                }),
            }
        }
        Tally {
            per_node,
            totals,
            delays,
            cdf,
        }
    }
}

impl Tally {
    /// A table of the event counts: the totals, and one row per node when `per_node`.
    pub fn counts_table(&self, trace: &Trace, per_node: bool) -> String {
        let mut s = String::new();
        let row = |s: &mut String, name: &str, c: &EventCounts| {
            let _ = writeln!(
                s,
                "{:<16} {:>8} {:>8} {:>9} {:>7} {:>7} {:>8} {:>10}",
                name, c.publish, c.deliver, c.duplicate, c.graft, c.prune, c.connect, c.disconnect
            );
        };
        let _ = writeln!(
            s,
            "{:<16} {:>8} {:>8} {:>9} {:>7} {:>7} {:>8} {:>10}",
            "node", "publish", "deliver", "duplicate", "graft", "prune", "connect", "disconnect"
        );
        if per_node {
            let names: BTreeMap<NodeId, &str> = trace
                .topology
                .nodes
                .iter()
                .map(|s| (s.id, s.name.as_str()))
                .collect();
            for (n, c) in &self.per_node {
                let name = names.get(n).copied().unwrap_or("?");
                let label = if name == n.to_string() {
                    name.to_string()
                } else {
                    format!("{n} ({name})")
                };
                row(&mut s, &label, c);
            }
        }
        row(&mut s, "total", &self.totals);
        s
    }

    /// The delay CDF as a table: delay in ms, cumulative deliveries, and their fraction.
    pub fn cdf_table(&self) -> String {
        let total = self.cdf.last().map(|p| p.count).unwrap_or(0).max(1);
        let mut s = format!("{:>8} {:>8} {:>8}\n", "ms", "count", "fraction");
        for p in &self.cdf {
            let _ = writeln!(
                s,
                "{:>8} {:>8} {:>7.1}%",
                p.millis,
                p.count,
                p.count as f64 * 100.0 / total as f64
            );
        }
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::{Event, MessageInfo};

    fn trace_with(events: Vec<Event>) -> Trace {
        let mut t: Trace = serde_json::from_value(serde_json::json!({
            "format": "meshsim-trace", "version": 1,
            "meta": {"test": "t", "backend": "in-process", "shaping": "s", "seed": 0,
                     "node_software": "x", "params": null,
                     "started_at_unix_ns": 0, "meshsim_version": "0"},
            "topology": {"description": "", "nodes": [], "links": [], "overlay": []},
            "messages": [], "events": []
        }))
        .unwrap();
        t.messages.push(MessageInfo {
            id: MsgId(0),
            origin: NodeId(0),
            topic: "t".into(),
            size: 1,
            published_ns: 1_000_000,
            expected: vec![NodeId(1), NodeId(2)],
        });
        t.events = events;
        t
    }

    fn ev(t_ns: u64, node: u32, kind: EventKind) -> Event {
        Event {
            t_ns,
            node: Some(NodeId(node)),
            kind,
        }
    }

    /// One message from n0: delivered to n1 after 10.4 ms and to n2 after 20.6 ms, and a
    /// duplicate at n1.
    pub(crate) fn sample() -> Trace {
        let delivered = |from| EventKind::Delivered {
            msg: MsgId(0),
            from: NodeId(from),
        };
        trace_with(vec![
            ev(
                1_000_000,
                0,
                EventKind::Published {
                    msg: MsgId(0),
                    topic: "t".into(),
                    size: 1,
                },
            ),
            // 10.4 ms after publish rounds to 10; 20.6 ms rounds to 21.
            ev(11_400_000, 1, delivered(0)),
            ev(21_600_000, 2, delivered(1)),
            ev(
                22_000_000,
                1,
                EventKind::Duplicate {
                    msg: MsgId(0),
                    from: NodeId(2),
                },
            ),
        ])
    }

    #[test]
    fn counts_and_cdf_follow_the_events() {
        let t = sample();
        let tally = t.tally();
        assert_eq!(tally.totals.publish, 1);
        assert_eq!(tally.totals.deliver, 2);
        assert_eq!(tally.totals.duplicate, 1);
        assert_eq!(tally.per_node[&NodeId(1)].duplicate, 1);
        assert_eq!(tally.per_node[&NodeId(2)].deliver, 1);
        assert_eq!(tally.delays[&MsgId(0)], vec![10, 21]);
        assert_eq!(
            tally.cdf,
            vec![
                CdfPoint {
                    millis: 10,
                    count: 1
                },
                CdfPoint {
                    millis: 21,
                    count: 2
                }
            ]
        );
        assert!(tally.cdf_table().contains("100.0%"));
        assert!(tally.counts_table(&t, true).lines().count() == 5);
    }
}
