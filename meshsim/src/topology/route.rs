//! Overlay pairs and underlay paths (lowest latency, per direction).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::time::Duration;

use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use rand::seq::IndexedRandom;
use rand::{SeedableRng, rngs::StdRng};

use super::{LinkShape, NodeId, Overlay, Topology};
use crate::error::TopologyError;

pub(super) fn overlay_pairs(t: &Topology) -> Result<Vec<(NodeId, NodeId)>, TopologyError> {
    let n = t.node_count();
    match t.overlay() {
        Overlay::Links => Ok(t.links().map(|l| (l.a, l.b)).collect()),
        Overlay::Explicit { pairs } => {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for &(a, b) in pairs {
                t.check_node(a)?;
                t.check_node(b)?;
                if a == b {
                    return Err(TopologyError::SelfLoop(a));
                }
                if !seen.insert((a.min(b), a.max(b))) {
                    return Err(TopologyError::DuplicateLink(a.min(b), a.max(b)));
                }
                out.push((a, b));
            }
            Ok(out)
        }
        Overlay::RandomPeers { k, seed } => {
            if *k == 0 || *k >= n {
                return Err(TopologyError::InvalidParameter {
                    generator: "RandomPeers overlay",
                    param: "k",
                    value: k.to_string(),
                    why: format!("must be between 1 and nodes - 1 = {}", n.saturating_sub(1)),
                });
            }
            let mut rng = StdRng::seed_from_u64(*seed);
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            let all: Vec<u32> = (0..n as u32).collect();
            for i in 0..n as u32 {
                let others: Vec<u32> = all.iter().copied().filter(|&j| j != i).collect();
                for &j in others.sample(&mut rng, *k) {
                    if seen.insert((i.min(j), i.max(j))) {
                        out.push((NodeId(i), NodeId(j)));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Nodes not reachable from n0 through `pairs`, in order.
pub(super) fn unreachable_from_first(n: usize, pairs: &[(NodeId, NodeId)]) -> Vec<NodeId> {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in pairs {
        adj[a.index()].push(b.index());
        adj[b.index()].push(a.index());
    }
    let mut seen = vec![false; n];
    let mut stack = vec![0];
    seen[0] = true;
    while let Some(i) = stack.pop() {
        for &j in &adj[i] {
            if !seen[j] {
                seen[j] = true;
                stack.push(j);
            }
        }
    }
    (0..n)
        .filter(|&i| !seen[i])
        .map(|i| NodeId(i as u32))
        .collect()
}

/// Combines the shapes of consecutive hops into the shape of the whole path.
pub(crate) fn combine(hops: &[LinkShape]) -> LinkShape {
    let mut out = LinkShape::default();
    let mut delivered = 1.0;
    for h in hops {
        out.latency += h.latency;
        out.jitter += h.jitter;
        delivered *= 1.0 - h.loss;
        out.bandwidth = match (out.bandwidth, h.bandwidth) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    out.loss = 1.0 - delivered;
    out
}

pub(super) fn path_shape(t: &Topology, from: NodeId, to: NodeId) -> Option<LinkShape> {
    if from.index() >= t.node_count() || to.index() >= t.node_count() {
        return None;
    }
    if from == to {
        return Some(LinkShape::default());
    }
    if let Some(l) = t.get_link(from, to) {
        return Some(l.shape_from(from));
    }
    // Dijkstra on latency, following each link in the direction of travel.
    let g = t.graph();
    let n = t.node_count();
    let mut dist = vec![Duration::MAX; n];
    let mut prev: Vec<Option<(usize, LinkShape)>> = vec![None; n];
    let mut heap = BinaryHeap::new();
    dist[from.index()] = Duration::ZERO;
    heap.push(Reverse((Duration::ZERO, from.index())));
    while let Some(Reverse((d, u))) = heap.pop() {
        if d > dist[u] {
            continue;
        }
        if u == to.index() {
            break;
        }
        for e in g.edges(NodeIndex::new(u)) {
            let v = if e.source().index() == u {
                e.target().index()
            } else {
                e.source().index()
            };
            let shape = e.weight().shape_from(NodeId(u as u32));
            let nd = d + shape.latency;
            if nd < dist[v] {
                dist[v] = nd;
                prev[v] = Some((u, shape));
                heap.push(Reverse((nd, v)));
            }
        }
    }
    if dist[to.index()] == Duration::MAX {
        return None;
    }
    let mut hops = Vec::new();
    let mut cur = to.index();
    while let Some((p, shape)) = prev[cur] {
        hops.push(shape);
        cur = p;
    }
    hops.reverse();
    Some(combine(&hops))
}
