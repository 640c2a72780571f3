//! Questions a test asks of a trace, and assertions that explain themselves.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{EventKind, MessageInfo, MsgId, Trace};
use crate::error::{AssertionError, Error, Result, list_nodes};
use crate::topology::NodeId;

/// Summary figures of one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStats {
    /// The message.
    pub msg: MsgId,
    /// Nodes that should have received it (subscribed at publish, origin excluded).
    pub expected: usize,
    /// Of those, how many received it.
    pub delivered: usize,
    /// `delivered / expected` (1.0 when nothing was expected).
    pub reach: f64,
    /// Median delivery latency from publish.
    pub p50: Option<Duration>,
    /// 99th-percentile delivery latency from publish (nearest rank).
    pub p99: Option<Duration>,
    /// Publish to the last delivery.
    pub dissemination: Option<Duration>,
    /// Duplicate copies received, all nodes together.
    pub duplicates: usize,
    /// `duplicates` divided by the nodes counted: the expected ones, the origin, and any
    /// other node that received copies.
    pub duplicates_per_node: f64,
    /// The largest hop count in the propagation tree.
    pub max_hops: Option<usize>,
}

/// One message's fate in a trace: reach, latencies, duplicates, the propagation tree, and
/// assertions on them. Returned by [`crate::Simulation::wait_delivered`] and [`Trace::delivery`].
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Shared: a trace's deliveries all look at one copy of it.
    trace: Arc<Trace>,
    info: MessageInfo,
    saved_to: Option<PathBuf>,
}

impl Trace {
    /// When the links lagged above the threshold, the time dilation to run again with
    /// ([`LinkLag::suggested_dilation`](super::LinkLag::suggested_dilation) at this trace's
    /// dilation).
    pub fn suggested_dilation(&self) -> Option<f64> {
        self.lag.as_ref()?.suggested_dilation(self.meta.dilation)
    }

    /// The message's record, if it was published in this trace.
    pub fn message(&self, msg: MsgId) -> Option<&MessageInfo> {
        self.messages.iter().find(|m| m.id == msg)
    }

    /// A view of one message for queries and assertions.
    pub fn delivery(&self, msg: MsgId) -> Result<Delivery> {
        Delivery::of(Arc::new(self.clone()), msg)
    }

    /// Copies of messages (first deliveries and duplicates) sent over each directed peer
    /// connection `(from, to)`.
    pub fn per_link_copies(&self) -> BTreeMap<(NodeId, NodeId), usize> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            if let (
                Some(to),
                EventKind::Delivered { from, .. } | EventKind::Duplicate { from, .. },
            ) = (e.node, &e.kind)
            {
                *out.entry((*from, to)).or_insert(0) += 1;
            }
        }
        out
    }

    /// A text table with one row per message: reach, p50/p99 latency, dissemination time,
    /// duplicates per node.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>4} {:>6} {:>8} {:>7} {:>10} {:>10} {:>10} {:>9} {:>5}",
            "msg", "origin", "bytes", "reach", "p50", "p99", "spread", "dups/node", "hops"
        );
        let shared = Arc::new(self.clone());
        for m in &self.messages {
            let Ok(d) = Delivery::of(shared.clone(), m.id) else {
                continue;
            };
            let st = d.stats();
            let ms = |d: Option<Duration>| {
                d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
                    .unwrap_or("-".into())
            };
            let _ = writeln!(
                s,
                "{:>4} {:>6} {:>8} {:>6.1}% {:>10} {:>10} {:>10} {:>9.2} {:>5}",
                m.id.0,
                m.origin.to_string(),
                m.size,
                st.reach * 100.0,
                ms(st.p50),
                ms(st.p99),
                ms(st.dissemination),
                st.duplicates_per_node,
                st.max_hops.map(|h| h.to_string()).unwrap_or("-".into()),
            );
        }
        s
    }
}

impl Delivery {
    fn of(trace: Arc<Trace>, msg: MsgId) -> Result<Self> {
        let info = trace
            .message(msg)
            .cloned()
            .ok_or(Error::UnknownMessage(msg.0))?;
        Ok(Delivery {
            trace,
            info,
            saved_to: None,
        })
    }

    pub(crate) fn with_saved_to(mut self, path: Option<PathBuf>) -> Self {
        self.saved_to = path;
        self
    }

    /// The message.
    pub fn msg(&self) -> MsgId {
        self.info.id
    }

    /// The message's record.
    pub fn info(&self) -> &MessageInfo {
        &self.info
    }

    /// The whole trace this view is part of.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The first delivery at each node: `(time since start in ns, from)`.
    pub fn first_deliveries(&self) -> BTreeMap<NodeId, (u64, NodeId)> {
        let mut out = BTreeMap::new();
        for e in &self.trace.events {
            if let (Some(n), EventKind::Delivered { msg, from }) = (e.node, &e.kind)
                && *msg == self.info.id
            {
                out.entry(n).or_insert((e.t_ns, *from));
            }
        }
        out
    }

    /// Delivery latency from publish at each node that received the message.
    pub fn latencies(&self) -> BTreeMap<NodeId, Duration> {
        self.first_deliveries()
            .into_iter()
            .map(|(n, (t, _))| {
                (
                    n,
                    Duration::from_nanos(t.saturating_sub(self.info.published_ns)),
                )
            })
            .collect()
    }

    /// Delivery latency at one node, if it received the message.
    pub fn latency_of(&self, node: NodeId) -> Option<Duration> {
        self.latencies().get(&node).copied()
    }

    /// The `p`-th percentile (0-100, nearest rank) of delivery latencies over expected nodes
    /// that received the message.
    pub fn latency_percentile(&self, p: f64) -> Option<Duration> {
        let expected: HashSet<NodeId> = self.info.expected.iter().copied().collect();
        let mut v: Vec<Duration> = self
            .latencies()
            .into_iter()
            .filter(|(n, _)| expected.contains(n))
            .map(|(_, d)| d)
            .collect();
        percentile(&mut v, p)
    }

    /// Expected nodes that did not receive the message.
    pub fn missing(&self) -> Vec<NodeId> {
        let got = self.first_deliveries();
        self.info
            .expected
            .iter()
            .copied()
            .filter(|n| !got.contains_key(n))
            .collect()
    }

    /// Fraction of expected nodes that received the message (1.0 when none were expected).
    pub fn reach(&self) -> f64 {
        let expected = self.info.expected.len();
        if expected == 0 {
            return 1.0;
        }
        (expected - self.missing().len()) as f64 / expected as f64
    }

    /// Publish to the last first-delivery among expected nodes.
    pub fn dissemination_time(&self) -> Option<Duration> {
        self.latency_percentile(100.0)
    }

    /// Duplicate copies received per node (every expected node and the origin, zeros included).
    pub fn duplicates_per_node(&self) -> BTreeMap<NodeId, usize> {
        let mut out: BTreeMap<NodeId, usize> = self.info.expected.iter().map(|&n| (n, 0)).collect();
        out.insert(self.info.origin, 0);
        for e in &self.trace.events {
            if let (Some(n), EventKind::Duplicate { msg, .. }) = (e.node, &e.kind)
                && *msg == self.info.id
            {
                *out.entry(n).or_insert(0) += 1;
            }
        }
        out
    }

    /// Who each node first got the message from: the propagation tree, as child -> parent.
    pub fn propagation_tree(&self) -> BTreeMap<NodeId, NodeId> {
        self.first_deliveries()
            .into_iter()
            .map(|(n, (_, from))| (n, from))
            .collect()
    }

    /// Hops from the origin to `node` along the propagation tree (0 for the origin).
    pub fn hops(&self, node: NodeId) -> Option<usize> {
        hops_in(&self.propagation_tree(), self.info.origin, node)
    }

    /// Summary figures.
    pub fn stats(&self) -> MessageStats {
        let expected = self.info.expected.len();
        let missing = self.missing().len();
        let dups = self.duplicates_per_node();
        let duplicates: usize = dups.values().sum();
        // One tree for every node's hops (each `hops` call would rebuild it).
        let tree = self.propagation_tree();
        let origin = self.info.origin;
        MessageStats {
            msg: self.info.id,
            expected,
            delivered: expected - missing,
            reach: self.reach(),
            p50: self.latency_percentile(50.0),
            p99: self.latency_percentile(99.0),
            dissemination: self.dissemination_time(),
            duplicates,
            duplicates_per_node: duplicates as f64 / dups.len().max(1) as f64,
            max_hops: tree.keys().filter_map(|&n| hops_in(&tree, origin, n)).max(),
        }
    }

    /// Fails unless at least `min_fraction` of the expected nodes received the message; the
    /// error names the missing nodes and what the trace says about them.
    pub fn assert_reach(&self, min_fraction: f64) -> Result<&Self> {
        let reach = self.reach();
        if reach + 1e-12 >= min_fraction {
            return Ok(self);
        }
        let expected = self.info.expected.len();
        let missing = self.missing();
        let last = self.trace.events.last().map(|e| e.t_ns).unwrap_or(0);
        Err(self.fail(format!(
            "{} from {} reached {}/{} nodes ({:.1}%, wanted at least {:.1}%) within {:.2} s of publishing; missing: {}",
            self.info.id,
            self.info.origin,
            expected - missing.len(),
            expected,
            reach * 100.0,
            min_fraction * 100.0,
            last.saturating_sub(self.info.published_ns) as f64 / 1e9,
            explain_missing(&self.trace, &self.info, &missing),
        )))
    }

    /// Fails unless the `p`-th percentile delivery latency is below `limit`.
    pub fn assert_latency_percentile_below(&self, p: f64, limit: Duration) -> Result<&Self> {
        match self.latency_percentile(p) {
            Some(v) if v < limit => Ok(self),
            Some(v) => {
                let slowest: Vec<String> = {
                    let mut l: Vec<(NodeId, Duration)> = self.latencies().into_iter().collect();
                    l.sort_by_key(|&(_, d)| std::cmp::Reverse(d));
                    l.iter()
                        .take(5)
                        .map(|(n, d)| {
                            format!(
                                "{n} {:.1} ms ({} hops)",
                                d.as_secs_f64() * 1e3,
                                self.hops(*n).map_or("?".into(), |h| h.to_string())
                            )
                        })
                        .collect()
                };
                Err(self.fail(format!(
                    "{}: p{p} delivery latency is {:.1} ms, not below {:.1} ms; slowest: {}",
                    self.info.id,
                    v.as_secs_f64() * 1e3,
                    limit.as_secs_f64() * 1e3,
                    slowest.join(", ")
                )))
            }
            None => Err(self.fail(format!(
                "{}: no delivery recorded, so there is no p{p} latency; missing: {}",
                self.info.id,
                explain_missing(&self.trace, &self.info, &self.missing())
            ))),
        }
    }

    /// Fails unless the median delivery latency is below `limit`.
    pub fn assert_p50_latency_below(&self, limit: Duration) -> Result<&Self> {
        self.assert_latency_percentile_below(50.0, limit)
    }

    /// Fails unless the 99th-percentile delivery latency is below `limit`.
    pub fn assert_p99_latency_below(&self, limit: Duration) -> Result<&Self> {
        self.assert_latency_percentile_below(99.0, limit)
    }

    /// The configured latency along the path the message took to `node` (its propagation
    /// tree from the origin: each hop's link latency in the direction it was crossed), and
    /// the number of hops; `None` when `node` was not reached or a hop is not a link (peers
    /// connected across the underlay).
    pub fn path_latency(&self, node: NodeId) -> Option<(Duration, usize)> {
        let tree = self.propagation_tree();
        let links = &self.trace.topology.links;
        let (mut cur, mut total, mut hops) = (node, Duration::ZERO, 0);
        while cur != self.info.origin {
            let from = *tree.get(&cur)?;
            let link = links
                .iter()
                .find(|l| (l.a, l.b) == (from.min(cur), from.max(cur)))?;
            total += link.shape_from(from).latency;
            cur = from;
            hops += 1;
        }
        Some((total, hops))
    }

    /// Fails unless every first delivery came no earlier than the configured latency along
    /// its path ([`Delivery::path_latency`]) and no later than `per_hop` per hop plus
    /// `slack` after it: the links delivered what they were configured to. The error names
    /// every node off the mark.
    pub fn assert_path_latency_within(&self, per_hop: Duration, slack: Duration) -> Result<&Self> {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut off = Vec::new();
        for (node, measured) in self.latencies() {
            let Some((expected, hops)) = self.path_latency(node) else {
                off.push(format!(
                    "{node}: its propagation path does not follow links"
                ));
                continue;
            };
            let limit = expected + per_hop * hops as u32 + slack;
            if measured < expected || measured > limit {
                off.push(format!(
                    "{node}: {:.2} ms measured, {:.2} ms configured over {hops} hops (allowed up to {:.2} ms)",
                    ms(measured),
                    ms(expected),
                    ms(limit)
                ));
            }
        }
        if off.is_empty() {
            return Ok(self);
        }
        Err(self.fail(format!(
            "{}: first deliveries off the configured path latency:\n  {}",
            self.info.id,
            off.join("\n  ")
        )))
    }

    /// Fails unless no node received more than `max` duplicates.
    pub fn assert_duplicates_per_node_at_most(&self, max: usize) -> Result<&Self> {
        let over: Vec<String> = self
            .duplicates_per_node()
            .into_iter()
            .filter(|&(_, d)| d > max)
            .map(|(n, d)| format!("{n} ({d})"))
            .collect();
        if over.is_empty() {
            Ok(self)
        } else {
            Err(self.fail(format!(
                "{}: {} nodes received more than {max} duplicates: {}",
                self.info.id,
                over.len(),
                over.join(", ")
            )))
        }
    }

    fn fail(&self, mut message: String) -> Error {
        if let Some(lag) = self.trace.lag.filter(|l| l.exceeded) {
            message.push_str(&format!("\n  note: {lag}"));
        }
        Error::Assertion(AssertionError {
            message,
            saved_to: self.saved_to.clone(),
        })
    }
}

/// Nearest-rank percentile; sorts `v`.
pub(crate) fn percentile(v: &mut [Duration], p: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    // Multiply before dividing, and forgive rounding, so p99 of 100 values is the 99th.
    let rank = (p * v.len() as f64 / 100.0 - 1e-9).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// Names the missing nodes grouped by what the trace says about them: stopped, behind a
/// partition that was still in force, or nothing recorded.
pub(crate) fn explain_missing(trace: &Trace, info: &MessageInfo, missing: &[NodeId]) -> String {
    if missing.is_empty() {
        return "none".into();
    }
    let secs = |t: u64| format!("{:.2} s", t as f64 / 1e9);
    let mut groups: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
    for &n in missing {
        let mut reason = None;
        // Last up/down state of the node.
        for e in trace.events.iter().rev() {
            if e.node == Some(n) {
                match &e.kind {
                    EventKind::NodeDown { reason: why } => {
                        reason = Some(format!("stopped at {}: {why}", secs(e.t_ns)));
                        break;
                    }
                    EventKind::NodeUp => break,
                    _ => {}
                }
            }
        }
        if reason.is_none() {
            // Partitions still in force that separate n from the origin.
            let mut active: Vec<(u64, &Vec<NodeId>, &Vec<NodeId>)> = Vec::new();
            for e in &trace.events {
                match &e.kind {
                    EventKind::Partition { a, b } => active.push((e.t_ns, a, b)),
                    EventKind::Heal { a, b } => {
                        active.retain(|(_, x, y)| !((*x == a && *y == b) || (*x == b && *y == a)))
                    }
                    _ => {}
                }
            }
            let o = info.origin;
            if let Some((t, _, _)) = active.iter().find(|(_, a, b)| {
                (a.contains(&n) && b.contains(&o)) || (b.contains(&n) && a.contains(&o))
            }) {
                reason = Some(format!("behind the partition made at {}", secs(*t)));
            }
        }
        groups
            .entry(reason.unwrap_or_else(|| "with nothing in the trace to explain why".into()))
            .or_default()
            .push(n);
    }
    let all = groups.len() == 1;
    groups
        .into_iter()
        .map(|(reason, nodes)| {
            if all && nodes.len() > 1 {
                format!("{}, all {reason}", list_nodes(&nodes, 12))
            } else {
                format!("{} ({reason})", list_nodes(&nodes, 12))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Hops from `origin` to `node` along a propagation tree (child -> parent).
fn hops_in(tree: &BTreeMap<NodeId, NodeId>, origin: NodeId, node: NodeId) -> Option<usize> {
    let mut cur = node;
    let mut hops = 0;
    while cur != origin {
        cur = *tree.get(&cur)?;
        hops += 1;
        if hops > tree.len() {
            return None; // a cycle would mean a corrupt trace
        }
    }
    Some(hops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&mut v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&mut v, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&mut v, 0.0), Some(Duration::from_millis(1)));
        let mut w: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut w, 99.9), Some(Duration::from_millis(999)));
        for p in [7.0, 14.0, 28.0, 55.0] {
            assert_eq!(
                percentile(&mut v, p),
                Some(Duration::from_millis(p as u64)),
                "p{p}"
            );
        }
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
