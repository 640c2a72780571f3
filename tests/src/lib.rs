//! Shared helpers for meshsim's integration tests.

use std::time::Duration;

use meshsim::{Delivery, NodeId};

/// The sum of configured link latencies along the propagation tree from the origin to
/// `node`, and the number of hops; `None` if the node was not reached.
pub fn tree_latency(d: &Delivery, node: NodeId) -> Option<(Duration, usize)> {
    let tree = d.propagation_tree();
    let links = &d.trace().topology.links;
    let mut cur = node;
    let mut total = Duration::ZERO;
    let mut hops = 0;
    while cur != d.info().origin {
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

/// Checks every reached node's first-delivery latency against the configured latency along
/// its propagation path: never earlier, and late by at most `per_hop` per hop plus `slack`.
/// Returns a description of every violation.
pub fn check_path_latencies(d: &Delivery, per_hop: Duration, slack: Duration) -> Vec<String> {
    let mut bad = Vec::new();
    for (node, measured) in d.latencies() {
        let Some((expected, hops)) = tree_latency(d, node) else {
            bad.push(format!("{node}: propagation path does not follow links"));
            continue;
        };
        let limit = expected + per_hop * hops as u32 + slack;
        if measured < expected || measured > limit {
            bad.push(format!(
                "{node}: {:.2} ms measured, {:.2} ms configured over {hops} hops (allowed up to {:.2} ms)",
                measured.as_secs_f64() * 1e3,
                expected.as_secs_f64() * 1e3,
                limit.as_secs_f64() * 1e3
            ));
        }
    }
    bad
}
