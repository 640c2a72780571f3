//! Generators for the usual graphs. Every random choice takes a seed.
//! Links start with the default shape (no latency, no loss, unlimited bandwidth);
//! shape them with [`Topology::with_latency`] and friends.

use std::collections::HashSet;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::{LinkShape, NodeId, Topology};
use crate::error::TopologyError;

fn param(
    generator: &'static str,
    param: &'static str,
    value: impl ToString,
    why: impl Into<String>,
) -> TopologyError {
    TopologyError::InvalidParameter {
        generator,
        param,
        value: value.to_string(),
        why: why.into(),
    }
}

fn need(ok: bool, err: impl FnOnce() -> TopologyError) -> Result<(), TopologyError> {
    if ok { Ok(()) } else { Err(err()) }
}

fn from_pairs(
    n: usize,
    pairs: impl IntoIterator<Item = (usize, usize)>,
    description: String,
) -> Topology {
    let mut t = Topology::with_nodes(n);
    for (a, b) in pairs {
        t.link(NodeId(a as u32), NodeId(b as u32), LinkShape::default())
            .expect("generators produce valid, distinct pairs");
    }
    t.described(description)
}

/// Parameters of [`Topology::geographic`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoParams {
    /// Width of the area, in units.
    pub width: f64,
    /// Height of the area, in units.
    pub height: f64,
    /// Latency per unit of distance (the original meshsim: one pixel = 1 ms).
    pub latency_per_unit: Duration,
    /// Each node links to its `k` nearest candidates (the original used 4).
    pub k: usize,
    /// Only nodes closer than this latency are candidates (the original used 300 ms).
    pub max_latency: Duration,
}

impl Default for GeoParams {
    /// The original meshsim's wiring on a 1000 x 600 canvas: 1 ms per unit, nearest 4 within 300 ms.
    fn default() -> Self {
        GeoParams {
            width: 1000.0,
            height: 600.0,
            latency_per_unit: Duration::from_millis(1),
            k: 4,
            max_latency: Duration::from_millis(300),
        }
    }
}

impl Topology {
    /// `n0 - n1 - ... - n(n-1)`.
    pub fn line(n: usize) -> Result<Topology, TopologyError> {
        need(n >= 1, || param("line", "n", n, "need at least 1 node"))?;
        Ok(from_pairs(
            n,
            (1..n).map(|i| (i - 1, i)),
            format!("line(n={n})"),
        ))
    }

    /// A line closed into a cycle.
    pub fn ring(n: usize) -> Result<Topology, TopologyError> {
        need(n >= 3, || param("ring", "n", n, "need at least 3 nodes"))?;
        Ok(from_pairs(
            n,
            (0..n).map(|i| (i, (i + 1) % n)),
            format!("ring(n={n})"),
        ))
    }

    /// `n0` linked to every other node.
    pub fn star(n: usize) -> Result<Topology, TopologyError> {
        need(n >= 2, || param("star", "n", n, "need at least 2 nodes"))?;
        Ok(from_pairs(
            n,
            (1..n).map(|i| (0, i)),
            format!("star(n={n})"),
        ))
    }

    /// Every pair linked.
    pub fn full_mesh(n: usize) -> Result<Topology, TopologyError> {
        need(n >= 1, || {
            param("full_mesh", "n", n, "need at least 1 node")
        })?;
        let pairs = (0..n).flat_map(|a| (a + 1..n).map(move |b| (a, b)));
        Ok(from_pairs(n, pairs, format!("full_mesh(n={n})")))
    }

    /// A `width x height` grid, node `y * width + x`, linked to its right and lower neighbours.
    /// Positions are the grid coordinates.
    pub fn grid(width: usize, height: usize) -> Result<Topology, TopologyError> {
        need(width >= 1, || {
            param("grid", "width", width, "must be at least 1")
        })?;
        need(height >= 1, || {
            param("grid", "height", height, "must be at least 1")
        })?;
        let mut pairs = Vec::new();
        for y in 0..height {
            for x in 0..width {
                let i = y * width + x;
                if x + 1 < width {
                    pairs.push((i, i + 1));
                }
                if y + 1 < height {
                    pairs.push((i, i + width));
                }
            }
        }
        let mut t = from_pairs(
            width * height,
            pairs,
            format!("grid(width={width}, height={height})"),
        );
        for y in 0..height {
            for x in 0..width {
                t.set_position(NodeId((y * width + x) as u32), (x as f64, y as f64));
            }
        }
        Ok(t)
    }

    /// A random `d`-regular graph on `n` nodes (every node has exactly `d` links).
    ///
    /// Pairs free link ends at random, avoiding self-loops and repeats, and restarts when it
    /// paints itself into a corner (Steger and Wormald's method).
    pub fn random_regular(n: usize, d: usize, seed: u64) -> Result<Topology, TopologyError> {
        need(d >= 1 && d < n, || {
            param(
                "random_regular",
                "d",
                d,
                format!("must be between 1 and n - 1 = {}", n.saturating_sub(1)),
            )
        })?;
        need((n * d).is_multiple_of(2), || {
            param(
                "random_regular",
                "d",
                d,
                format!("n * d must be even (n = {n})"),
            )
        })?;
        let mut rng = StdRng::seed_from_u64(seed);
        for _attempt in 0..100 {
            if let Some(pairs) = try_regular(n, d, &mut rng) {
                return Ok(from_pairs(
                    n,
                    pairs,
                    format!("random_regular(n={n}, d={d}, seed={seed})"),
                ));
            }
        }
        Err(param(
            "random_regular",
            "d",
            d,
            "no simple regular graph found in 100 attempts",
        ))
    }

    /// Erdos-Renyi G(n, p): each pair linked with probability `p`. May be disconnected;
    /// [`crate::Sim::start`] refuses a disconnected overlay unless allowed.
    pub fn erdos_renyi(n: usize, p: f64, seed: u64) -> Result<Topology, TopologyError> {
        need(n >= 1, || {
            param("erdos_renyi", "n", n, "need at least 1 node")
        })?;
        need(p.is_finite() && (0.0..=1.0).contains(&p), || {
            param("erdos_renyi", "p", p, "must be a probability in [0, 1]")
        })?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pairs = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                if rng.random_bool(p) {
                    pairs.push((a, b));
                }
            }
        }
        Ok(from_pairs(
            n,
            pairs,
            format!("erdos_renyi(n={n}, p={p}, seed={seed})"),
        ))
    }

    /// Barabasi-Albert preferential attachment: start from `m + 1` fully linked nodes,
    /// then each new node links to `m` distinct nodes chosen in proportion to their degree.
    pub fn barabasi_albert(n: usize, m: usize, seed: u64) -> Result<Topology, TopologyError> {
        need(m >= 1, || {
            param("barabasi_albert", "m", m, "must be at least 1")
        })?;
        need(n > m, || {
            param("barabasi_albert", "n", n, format!("must exceed m = {m}"))
        })?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pairs = Vec::new();
        let mut ends: Vec<usize> = Vec::new(); // every link end, so a uniform pick is degree-weighted
        for a in 0..=m {
            for b in a + 1..=m {
                pairs.push((a, b));
                ends.extend([a, b]);
            }
        }
        for new in m + 1..n {
            let mut targets = HashSet::new();
            while targets.len() < m {
                targets.insert(ends[rng.random_range(0..ends.len())]);
            }
            let mut targets: Vec<usize> = targets.into_iter().collect();
            targets.sort_unstable();
            for t in targets {
                pairs.push((t, new));
                ends.extend([t, new]);
            }
        }
        Ok(from_pairs(
            n,
            pairs,
            format!("barabasi_albert(n={n}, m={m}, seed={seed})"),
        ))
    }

    /// Nodes placed uniformly at random on a plane; latency proportional to distance; each
    /// node links to its `k` nearest nodes within `max_latency`, and a node that already has
    /// more than `k` links refuses more (so degrees stay at most `k + 1`), as the original
    /// meshsim wired servers. Links get the distance latency in both directions.
    pub fn geographic(n: usize, params: GeoParams, seed: u64) -> Result<Topology, TopologyError> {
        need(n >= 1, || {
            param("geographic", "n", n, "need at least 1 node")
        })?;
        need(params.k >= 1, || {
            param("geographic", "k", params.k, "must be at least 1")
        })?;
        for (name, v) in [("width", params.width), ("height", params.height)] {
            need(v.is_finite() && v > 0.0, || {
                param("geographic", name, v, "must be positive and finite")
            })?;
        }
        let diagonal = params.width.hypot(params.height);
        let longest = params.latency_per_unit.as_secs_f64() * diagonal;
        need(longest.is_finite() && longest <= 3600.0, || {
            param(
                "geographic",
                "latency_per_unit",
                format!("{:?}", params.latency_per_unit),
                format!("times the area's diagonal ({diagonal}) must stay within an hour"),
            )
        })?;
        let mut rng = StdRng::seed_from_u64(seed);
        let pos: Vec<(f64, f64)> = (0..n)
            .map(|_| {
                (
                    rng.random::<f64>() * params.width,
                    rng.random::<f64>() * params.height,
                )
            })
            .collect();
        let latency = |a: usize, b: usize| {
            let d = ((pos[a].0 - pos[b].0).powi(2) + (pos[a].1 - pos[b].1).powi(2)).sqrt();
            params.latency_per_unit.mul_f64(d)
        };
        let mut t = Topology::with_nodes(n);
        for (i, p) in pos.iter().enumerate() {
            t.set_position(NodeId(i as u32), *p);
        }
        let mut degree = vec![0usize; n];
        for a in 0..n {
            let mut candidates: Vec<(Duration, usize)> = (0..n)
                .filter(|&b| b != a)
                .map(|b| (latency(a, b), b))
                .filter(|(l, _)| *l < params.max_latency)
                .collect();
            candidates.sort();
            for &(l, b) in candidates.iter().take(params.k) {
                let (a_, b_) = (NodeId(a as u32), NodeId(b as u32));
                if t.get_link(a_, b_).is_some() || degree[a] > params.k || degree[b] > params.k {
                    continue;
                }
                t.link(a_, b_, LinkShape::latency(l))
                    .expect("distinct new pair");
                degree[a] += 1;
                degree[b] += 1;
            }
        }
        Ok(t.described(format!(
            "geographic(n={n}, width={}, height={}, latency_per_unit={:?}, k={}, max_latency={:?}, seed={seed})",
            params.width, params.height, params.latency_per_unit, params.k, params.max_latency
        )))
    }
}

fn try_regular(n: usize, d: usize, rng: &mut StdRng) -> Option<Vec<(usize, usize)>> {
    let mut stubs: Vec<usize> = (0..n).flat_map(|i| std::iter::repeat_n(i, d)).collect();
    let mut edges = HashSet::new();
    while !stubs.is_empty() {
        stubs.shuffle(rng);
        let mut rest = Vec::new();
        let mut progress = false;
        let mut it = stubs.chunks_exact(2);
        for pair in &mut it {
            let (a, b) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
            if a != b && edges.insert((a, b)) {
                progress = true;
            } else {
                rest.extend_from_slice(pair);
            }
        }
        if !progress {
            // Only unusable pairs are left; check whether any usable pair exists at all.
            let usable = rest.iter().enumerate().any(|(i, &a)| {
                rest[i + 1..]
                    .iter()
                    .any(|&b| a != b && !edges.contains(&(a.min(b), a.max(b))))
            });
            if !usable {
                return None;
            }
        }
        stubs = rest;
    }
    let mut v: Vec<_> = edges.into_iter().collect();
    v.sort_unstable();
    Some(v)
}
