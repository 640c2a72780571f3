//! What the network is: nodes, links with a shape per direction, and the overlay rule.
//!
//! A [`Topology`] is the *underlay*: the links that shape traffic. The *overlay* is the set
//! of peer connections the protocol makes; by default it is the links themselves
//! ([`Overlay::Links`]). When the overlay pairs nodes that are not directly linked
//! ([`Overlay::RandomPeers`], [`Overlay::Explicit`]), each pair's traffic follows the
//! lowest-latency path through the underlay and gets that path's combined shape
//! (see [`Topology::path_shape`]), as the original meshsim routed with Dijkstra.

mod generate;
mod import;
mod route;

pub use generate::GeoParams;

use std::fmt;
use std::time::Duration;

use petgraph::graph::{EdgeIndex, NodeIndex, UnGraph};
use serde::{Deserialize, Serialize};

use crate::error::TopologyError;

/// A node of the simulation, shown as `n0`, `n1`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The node's index in the topology.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// Shorthand for [`NodeId`]: `node(3)` is `n3`.
pub fn node(i: u32) -> NodeId {
    NodeId(i)
}

/// How one direction of a link treats traffic.
///
/// Values are checked when the topology is validated (at [`crate::Sim::start`] or
/// [`Topology::validate`]), so a chain of setters never panics.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LinkShape {
    /// One-way delay.
    #[serde(rename = "latency_ns", with = "crate::trace::nanos")]
    pub latency: Duration,
    /// Each chunk's delay varies uniformly in `latency ± jitter` (never below zero).
    #[serde(rename = "jitter_ns", with = "crate::trace::nanos")]
    pub jitter: Duration,
    /// Probability that a packet is lost, in `[0, 1)`.
    pub loss: f64,
    /// Capacity in bits per second; `None` is unlimited.
    #[serde(rename = "bandwidth_bps")]
    pub bandwidth: Option<u64>,
}

impl LinkShape {
    /// A shape with the given latency and nothing else.
    pub fn latency(latency: Duration) -> Self {
        LinkShape {
            latency,
            ..Default::default()
        }
    }

    /// Sets the jitter.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the loss probability.
    pub fn with_loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }

    /// Sets the bandwidth in bits per second.
    pub fn with_bandwidth(mut self, bits_per_second: u64) -> Self {
        self.bandwidth = Some(bits_per_second);
        self
    }

    /// The shape `k` times slower: latency and jitter multiplied by `k`, bandwidth divided by
    /// it (at least 1 bit/s), loss unchanged (time dilation: see
    /// [`Sim::with_dilation`](crate::Sim::with_dilation)).
    pub(crate) fn dilated(self, k: f64) -> Self {
        LinkShape {
            latency: self.latency.mul_f64(k),
            jitter: self.jitter.mul_f64(k),
            loss: self.loss,
            bandwidth: self.bandwidth.map(|b| ((b as f64 / k) as u64).max(1)),
        }
    }

    /// Checks the values, naming the direction `from -> to` in the error.
    pub fn validate(&self, from: NodeId, to: NodeId) -> Result<(), TopologyError> {
        let bad = |field, value: String, why| TopologyError::InvalidShape {
            from,
            to,
            field,
            value,
            why,
        };
        if !self.loss.is_finite() || !(0.0..1.0).contains(&self.loss) {
            return Err(bad(
                "loss",
                self.loss.to_string(),
                "must be a probability in [0, 1); use a partition to cut a link",
            ));
        }
        if self.bandwidth == Some(0) {
            return Err(bad(
                "bandwidth",
                "0".into(),
                "must be positive; use a partition to cut a link",
            ));
        }
        if self.latency > Duration::from_secs(3600) || self.jitter > Duration::from_secs(3600) {
            return Err(bad(
                "latency",
                format!("{:?}", self.latency.max(self.jitter)),
                "must be at most one hour",
            ));
        }
        Ok(())
    }
}

/// A node as the topology describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// The node's id.
    pub id: NodeId,
    /// A display name (`n3` unless an import gave one).
    pub name: String,
    /// A position, when the topology has one (geographic graphs, imports); used by the viewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<(f64, f64)>,
    /// The node's libp2p peer id (base58), when known: traces fill it in at start;
    /// topologies built in code leave it empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
}

/// A link between two nodes `a < b`, with a shape per direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The lower-numbered end.
    pub a: NodeId,
    /// The higher-numbered end.
    pub b: NodeId,
    /// Traffic from `a` to `b`.
    pub a_to_b: LinkShape,
    /// Traffic from `b` to `a`.
    pub b_to_a: LinkShape,
}

impl Link {
    /// The shape of the direction `from -> to`; `from` must be one of the ends.
    pub fn shape_from(&self, from: NodeId) -> LinkShape {
        if from == self.a {
            self.a_to_b
        } else {
            self.b_to_a
        }
    }
}

/// Which peer connections the protocol makes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Overlay {
    /// Every link is a peer connection (the default).
    #[default]
    Links,
    /// Each node dials `k` distinct random peers (chosen with `seed`); pairs are undirected,
    /// so a node may end up with more than `k` connections.
    RandomPeers {
        /// Peers dialled per node.
        k: usize,
        /// Seed of the random choice.
        seed: u64,
    },
    /// Exactly these peer connections.
    Explicit {
        /// The pairs to connect.
        pairs: Vec<(NodeId, NodeId)>,
    },
}

/// A network: nodes, links shaped per direction, and the overlay rule.
#[derive(Debug, Clone)]
pub struct Topology {
    graph: UnGraph<NodeSpec, Link>,
    overlay: Overlay,
    require_connected: bool,
    /// The generator and its parameters, recorded in traces.
    description: String,
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Topology {
    /// An empty topology; add nodes with [`Topology::add_node`] and links with [`Topology::link`].
    pub fn new() -> Self {
        Topology {
            graph: UnGraph::default(),
            overlay: Overlay::Links,
            require_connected: true,
            description: "custom".into(),
        }
    }

    /// `n` nodes and no links.
    pub fn with_nodes(n: usize) -> Self {
        let mut t = Self::new();
        for _ in 0..n {
            t.add_node();
        }
        t
    }

    /// Adds a node and returns its id.
    pub fn add_node(&mut self) -> NodeId {
        let id = NodeId(self.graph.node_count() as u32);
        self.graph.add_node(NodeSpec {
            id,
            name: id.to_string(),
            position: None,
            peer_id: None,
        });
        id
    }

    /// Adds a link with the same shape in both directions.
    pub fn link(
        &mut self,
        a: NodeId,
        b: NodeId,
        shape: LinkShape,
    ) -> Result<&mut Self, TopologyError> {
        self.link_directed(a, b, shape, shape)
    }

    /// Adds a link with a shape per direction: `a_to_b` for traffic from `a`, `b_to_a` back.
    pub fn link_directed(
        &mut self,
        a: NodeId,
        b: NodeId,
        a_to_b: LinkShape,
        b_to_a: LinkShape,
    ) -> Result<&mut Self, TopologyError> {
        self.check_node(a)?;
        self.check_node(b)?;
        if a == b {
            return Err(TopologyError::SelfLoop(a));
        }
        if self.find_edge(a, b).is_some() {
            return Err(TopologyError::DuplicateLink(a.min(b), a.max(b)));
        }
        let (lo, hi, lo_hi, hi_lo) = if a < b {
            (a, b, a_to_b, b_to_a)
        } else {
            (b, a, b_to_a, a_to_b)
        };
        self.graph.add_edge(
            NodeIndex::new(lo.index()),
            NodeIndex::new(hi.index()),
            Link {
                a: lo,
                b: hi,
                a_to_b: lo_hi,
                b_to_a: hi_lo,
            },
        );
        Ok(self)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Number of links.
    pub fn link_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// All node ids, in order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.graph.node_count() as u32).map(NodeId)
    }

    /// The node's description.
    pub fn node_spec(&self, n: NodeId) -> Result<&NodeSpec, TopologyError> {
        self.check_node(n)?;
        Ok(&self.graph[NodeIndex::new(n.index())])
    }

    /// Every link.
    pub fn links(&self) -> impl Iterator<Item = &Link> + '_ {
        self.graph.edge_weights()
    }

    /// The link between `a` and `b`, if any.
    pub fn get_link(&self, a: NodeId, b: NodeId) -> Option<&Link> {
        self.find_edge(a, b).map(|e| &self.graph[e])
    }

    /// The nodes directly linked to `n`.
    pub fn neighbours(&self, n: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .graph
            .neighbors(NodeIndex::new(n.index()))
            .map(|i| NodeId(i.index() as u32))
            .collect();
        v.sort();
        v
    }

    /// Sets the shape of both directions of an existing link.
    pub fn set_link(
        &mut self,
        a: NodeId,
        b: NodeId,
        shape: LinkShape,
    ) -> Result<(), TopologyError> {
        self.set_direction(a, b, shape)?;
        self.set_direction(b, a, shape)
    }

    /// Sets the shape of the direction `from -> to` of an existing link.
    pub fn set_direction(
        &mut self,
        from: NodeId,
        to: NodeId,
        shape: LinkShape,
    ) -> Result<(), TopologyError> {
        self.check_node(from)?;
        self.check_node(to)?;
        let e = self
            .find_edge(from, to)
            .ok_or(TopologyError::NoSuchLink(from, to))?;
        let link = &mut self.graph[e];
        if from == link.a {
            link.a_to_b = shape;
        } else {
            link.b_to_a = shape;
        }
        Ok(())
    }

    /// Applies `f` to both directions of every link.
    pub fn map_shapes(mut self, mut f: impl FnMut(&mut LinkShape)) -> Self {
        for link in self.graph.edge_weights_mut() {
            f(&mut link.a_to_b);
            f(&mut link.b_to_a);
        }
        self
    }

    /// Gives every link, both directions, this shape.
    pub fn with_shape(self, shape: LinkShape) -> Self {
        self.map_shapes(|s| *s = shape)
    }

    /// Gives every link this latency.
    pub fn with_latency(self, latency: Duration) -> Self {
        self.map_shapes(|s| s.latency = latency)
    }

    /// Gives each link a latency drawn uniformly from `min..=max` (the same both ways),
    /// chosen with `seed`.
    pub fn with_random_latency(self, min: Duration, max: Duration, seed: u64) -> Self {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (lo, hi) = (
            min.min(max).as_nanos() as u64,
            min.max(max).as_nanos() as u64,
        );
        let mut t = self;
        for link in t.graph.edge_weights_mut() {
            let l = Duration::from_nanos(rng.random_range(lo..=hi));
            link.a_to_b.latency = l;
            link.b_to_a.latency = l;
        }
        t
    }

    /// Gives every link this jitter.
    pub fn with_jitter(self, jitter: Duration) -> Self {
        self.map_shapes(|s| s.jitter = jitter)
    }

    /// Gives every link this loss probability.
    pub fn with_loss(self, loss: f64) -> Self {
        self.map_shapes(|s| s.loss = loss)
    }

    /// Gives every link this bandwidth, in bits per second.
    pub fn with_bandwidth(self, bits_per_second: u64) -> Self {
        self.map_shapes(|s| s.bandwidth = Some(bits_per_second))
    }

    /// Chooses the overlay (which peer connections the protocol makes).
    pub fn with_overlay(mut self, overlay: Overlay) -> Self {
        self.overlay = overlay;
        self
    }

    /// The overlay rule.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// Allows a topology whose overlay is not connected (by default [`crate::Sim::start`]
    /// refuses one, since gossip could not reach every node).
    pub fn allow_disconnected(mut self) -> Self {
        self.require_connected = false;
        self
    }

    /// What generated this topology and with which parameters (recorded in traces).
    pub fn description(&self) -> &str {
        &self.description
    }

    pub(crate) fn described(mut self, description: String) -> Self {
        self.description = description;
        self
    }

    pub(crate) fn set_position(&mut self, n: NodeId, pos: (f64, f64)) {
        self.graph[NodeIndex::new(n.index())].position = Some(pos);
    }

    pub(crate) fn set_name(&mut self, n: NodeId, name: String) {
        self.graph[NodeIndex::new(n.index())].name = name;
    }

    /// Checks every value: shapes, overlay pairs, and connectivity when required.
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.node_count() == 0 {
            return Err(TopologyError::Empty);
        }
        for l in self.links() {
            l.a_to_b.validate(l.a, l.b)?;
            l.b_to_a.validate(l.b, l.a)?;
        }
        let pairs = self.overlay_pairs()?;
        if self.overlay != Overlay::Links {
            for &(a, b) in &pairs {
                if self.path_shape(a, b).is_none() || self.path_shape(b, a).is_none() {
                    return Err(TopologyError::NoRoute(a, b));
                }
            }
        }
        if self.require_connected {
            let unreachable = route::unreachable_from_first(self.node_count(), &pairs);
            if !unreachable.is_empty() {
                return Err(TopologyError::Disconnected {
                    unreachable,
                    total: self.node_count(),
                });
            }
        }
        Ok(())
    }

    /// The overlay's peer connections as `(dialer, listener)` pairs, each pair once.
    pub fn overlay_pairs(&self) -> Result<Vec<(NodeId, NodeId)>, TopologyError> {
        route::overlay_pairs(self)
    }

    /// The shape traffic from `from` to `to` gets: the direct link's shape, or else the
    /// combination along the lowest-latency underlay path (latencies and jitters add,
    /// deliveries multiply, bandwidth is the narrowest). `None` when unreachable.
    pub fn path_shape(&self, from: NodeId, to: NodeId) -> Option<LinkShape> {
        route::path_shape(self, from, to)
    }

    pub(crate) fn check_node(&self, n: NodeId) -> Result<(), TopologyError> {
        if n.index() < self.node_count() {
            Ok(())
        } else {
            Err(TopologyError::UnknownNode {
                node: n,
                nodes: self.node_count(),
            })
        }
    }

    fn find_edge(&self, a: NodeId, b: NodeId) -> Option<EdgeIndex> {
        if a.index() >= self.node_count() || b.index() >= self.node_count() {
            return None;
        }
        self.graph
            .find_edge(NodeIndex::new(a.index()), NodeIndex::new(b.index()))
    }

    pub(crate) fn graph(&self) -> &UnGraph<NodeSpec, Link> {
        &self.graph
    }
}
