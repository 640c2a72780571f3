//! Conversions of traces to and from the formats other gossip tools read.
//!
//! Every export is a plain function of a [`Trace`] (plus a folder where the format is a
//! folder):
//! - [`pubsub`]: go-libp2p-pubsub's `TraceEvent`, as length-delimited protobuf (what
//!   `PBTracer` writes and, gzip-compressed, what `traced` writes and `tracestat` reads) and as
//!   the ND-JSON `JSONTracer` writes; and the import of such a trace into a [`Trace`].
//! - [`interop`]: the per-node stdout files of libp2p/test-plans' gossipsub-interop, laid out
//!   the way its `analyze_message_deliveries.py` finds them.
//! - [`chrome`]: Chrome / Perfetto trace-event JSON, one process per node, with flow arrows
//!   along which each message spread.
//! - [`graph`]: the topology as GraphML (readable back with [`Topology::from_graphml`]), DOT
//!   and Shadow-style GML (readable back with [`Topology::from_gml`]).
//!
//! [`write_all`] writes every export of a trace into one folder, under the file names listed
//! there.
//!
//! Exports need each node's libp2p peer id. Traces of simulations carry it
//! ([`NodeSpec::peer_id`](crate::topology::NodeSpec::peer_id)); for a node without one (an
//! old or hand-made trace) the exports use the key meshsim would have given that node in a
//! simulation with the trace's seed, so the bytes are always a real peer id and the same in
//! every export ([`peer_id`]).
//!
//! [`Topology::from_graphml`]: crate::Topology::from_graphml
//! [`Topology::from_gml`]: crate::Topology::from_gml

pub mod chrome;
pub mod graph;
pub mod interop;
pub mod pubsub;
pub mod tracestat;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libp2p::PeerId;

use crate::error::TraceFormatError;
use crate::topology::NodeId;
use crate::trace::{EventKind, Trace, write_whole};

pub use crate::error::Location;

/// The files [`write_all`] writes, relative to its folder.
pub mod files {
    /// The trace itself, meshsim's own JSON.
    pub const TRACE: &str = "trace.json";
    /// go-libp2p-pubsub `TraceEvent`s, length-delimited protobuf ([`super::pubsub::to_protobuf`]).
    pub const PUBSUB_PB: &str = "trace.pb";
    /// The same, gzip-compressed as `traced` writes them ([`super::pubsub::to_protobuf_gz`]);
    /// this is the file `tracestat` reads.
    pub const PUBSUB_PB_GZ: &str = "trace.pb.gz";
    /// The same events as go-libp2p-pubsub's `JSONTracer` writes them ([`super::pubsub::to_json`]).
    pub const PUBSUB_JSON: &str = "trace.pubsub.json";
    /// Chrome / Perfetto trace-event JSON ([`super::chrome::to_json`]).
    pub const CHROME: &str = "chrome.json";
    /// The topology as GraphML ([`super::graph::to_graphml`]).
    pub const GRAPHML: &str = "topology.graphml";
    /// The topology as Graphviz DOT ([`super::graph::to_dot`]).
    pub const DOT: &str = "topology.dot";
    /// The topology as Shadow-style GML ([`super::graph::to_gml`]).
    pub const GML: &str = "topology.gml";
    /// The gossipsub-interop folder ([`super::interop::write`]).
    pub const INTEROP: &str = "interop";
}

/// Writes every export of `trace` into `dir` (created if needed), under the names in
/// [`files`], and returns the paths written.
pub fn write_all(trace: &Trace, dir: &Path) -> Result<Vec<PathBuf>, TraceFormatError> {
    let mut written = vec![
        write_file(&dir.join(files::TRACE), trace.to_json().as_bytes())?,
        write_file(&dir.join(files::PUBSUB_PB), &pubsub::to_protobuf(trace))?,
        write_file(
            &dir.join(files::PUBSUB_PB_GZ),
            &pubsub::to_protobuf_gz(trace),
        )?,
        write_file(
            &dir.join(files::PUBSUB_JSON),
            pubsub::to_json(trace).as_bytes(),
        )?,
        write_file(&dir.join(files::CHROME), chrome::to_json(trace).as_bytes())?,
        write_file(
            &dir.join(files::GRAPHML),
            graph::to_graphml(trace).as_bytes(),
        )?,
        write_file(&dir.join(files::DOT), graph::to_dot(trace).as_bytes())?,
        write_file(&dir.join(files::GML), graph::to_gml(trace).as_bytes())?,
    ];
    written.extend(interop::write(trace, &dir.join(files::INTEROP))?);
    Ok(written)
}

/// Writes `bytes` to `path`, creating its folder; errors name the path.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<PathBuf, TraceFormatError> {
    write_whole(path, bytes).map_err(|source| TraceFormatError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(path.to_path_buf())
}

/// The peer id the exports use for `node`: the one the trace records, else the one meshsim
/// derives for that node from the trace's seed (as a simulation would have).
pub fn peer_id(trace: &Trace, node: NodeId) -> PeerId {
    trace
        .topology
        .nodes
        .iter()
        .find(|s| s.id == node)
        .and_then(|s| s.peer_id.as_deref())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| derived_peer_id(trace.meta.seed, node))
}

fn derived_peer_id(seed: u64, node: NodeId) -> PeerId {
    crate::node::keypair(seed, node).public().to_peer_id()
}

/// Every node a trace mentions (topology and events), with its peer id, computed once.
pub(crate) struct PeerIds {
    seed: u64,
    ids: BTreeMap<NodeId, PeerId>,
}

impl PeerIds {
    pub(crate) fn new(trace: &Trace) -> Self {
        let mut ids = BTreeMap::new();
        let seed = trace.meta.seed;
        for s in &trace.topology.nodes {
            let id = s.peer_id.as_deref().and_then(|p| p.parse().ok());
            ids.insert(s.id, id.unwrap_or_else(|| derived_peer_id(seed, s.id)));
        }
        for n in mentioned_nodes(trace) {
            ids.entry(n).or_insert_with(|| derived_peer_id(seed, n));
        }
        PeerIds { seed, ids }
    }

    pub(crate) fn get(&self, node: NodeId) -> PeerId {
        self.ids
            .get(&node)
            .copied()
            .unwrap_or_else(|| derived_peer_id(self.seed, node))
    }
}

/// The nodes a trace's events mention, whether or not its topology lists them.
pub(crate) fn mentioned_nodes(trace: &Trace) -> std::collections::BTreeSet<NodeId> {
    let mut out = std::collections::BTreeSet::new();
    for e in &trace.events {
        out.extend(e.node);
        match &e.kind {
            EventKind::PeerConnected { peer }
            | EventKind::PeerDisconnected { peer }
            | EventKind::Graft { peer, .. }
            | EventKind::Prune { peer, .. } => {
                out.insert(*peer);
            }
            EventKind::Delivered { from, .. } | EventKind::Duplicate { from, .. } => {
                out.insert(*from);
            }
            EventKind::LinkChanged { to, .. } => {
                out.insert(*to);
            }
            EventKind::Partition { a, b } | EventKind::Heal { a, b } => {
                out.extend(a.iter().copied());
                out.extend(b.iter().copied());
            }
            EventKind::NodeUp
            | EventKind::NodeDown { .. }
            | EventKind::Subscribed { .. }
            | EventKind::Unsubscribed { .. }
            | EventKind::Published { .. }
            | EventKind::Annotation { .. } => {}
        }
    }
    for m in &trace.messages {
        out.insert(m.origin);
    }
    out
}

/// The display name of every node of the trace: its topology name, else `n<i>`.
pub(crate) fn node_names(trace: &Trace) -> BTreeMap<NodeId, String> {
    let mut names: BTreeMap<NodeId, String> = all_nodes(trace)
        .into_iter()
        .map(|n| (n, n.to_string()))
        .collect();
    for s in &trace.topology.nodes {
        names.insert(s.id, s.name.clone());
    }
    names
}

/// Every node of the trace, topology first, then nodes only the events mention, in id order.
pub(crate) fn all_nodes(trace: &Trace) -> Vec<NodeId> {
    let mut set: std::collections::BTreeSet<NodeId> =
        trace.topology.nodes.iter().map(|s| s.id).collect();
    set.extend(mentioned_nodes(trace));
    set.into_iter().collect()
}

/// The absolute time of an event: the trace's start plus `t_ns`, in ns since the Unix epoch.
pub(crate) fn unix_ns(trace: &Trace, t_ns: u64) -> u64 {
    trace.meta.started_at_unix_ns.saturating_add(t_ns)
}

/// A small hand-made trace with every event kind and hostile strings, for the exports' tests.
#[cfg(test)]
pub(crate) mod sample {
    use std::time::Duration;

    use crate::topology::{Link, LinkShape, NodeId, NodeSpec};
    use crate::trace::{
        Event, EventKind, FORMAT, MessageInfo, Meta, MsgId, TopologySnapshot, Trace, VERSION,
    };

    /// The odd topic of message 7.
    pub(crate) const ODD_TOPIC: &str = "t<&>\"\\\n\u{2028}é";
    /// The odd name of node 3.
    pub(crate) const ODD_NAME: &str = "evil\" -> n0 [label=\"x\\\nline]\t&<b>";

    pub(crate) fn trace() -> Trace {
        let n = NodeId;
        let ms = |x: u64| x * 1_000_000;
        let shape = LinkShape {
            latency: Duration::from_millis(40),
            jitter: Duration::from_micros(2500),
            loss: 0.005,
            bandwidth: Some(10_000_000),
        };
        let other = LinkShape {
            latency: Duration::from_nanos(12_345_678),
            jitter: Duration::ZERO,
            loss: 0.0,
            bandwidth: None,
        };
        let mut events = Vec::new();
        let mut at = |t: u64, node: Option<u32>, kind: EventKind| {
            events.push(Event {
                t_ns: t,
                node: node.map(NodeId),
                kind,
            })
        };
        for i in 0..4 {
            at(ms(1), Some(i), EventKind::NodeUp);
        }
        for i in 0..4 {
            at(
                ms(2),
                Some(i),
                EventKind::Subscribed {
                    topic: "blocks".into(),
                },
            );
        }
        for (a, b) in [(0, 1), (1, 2), (2, 3)] {
            at(ms(3), Some(a), EventKind::PeerConnected { peer: n(b) });
            at(ms(3), Some(b), EventKind::PeerConnected { peer: n(a) });
        }
        for (a, b) in [(0, 1), (1, 2), (2, 3)] {
            at(
                ms(4),
                Some(a),
                EventKind::Graft {
                    peer: n(b),
                    topic: "blocks".into(),
                },
            );
        }
        at(
            ms(5),
            Some(2),
            EventKind::Subscribed {
                topic: ODD_TOPIC.into(),
            },
        );
        at(
            ms(5),
            Some(1),
            EventKind::Subscribed {
                topic: ODD_TOPIC.into(),
            },
        );
        let m0 = MsgId(0);
        let m7 = MsgId(7);
        at(
            ms(10),
            Some(0),
            EventKind::Published {
                msg: m0,
                topic: "blocks".into(),
                size: 1024,
            },
        );
        at(
            ms(50) + 17,
            Some(1),
            EventKind::Delivered {
                msg: m0,
                from: n(0),
            },
        );
        at(
            ms(90) + 3,
            Some(2),
            EventKind::Delivered {
                msg: m0,
                from: n(1),
            },
        );
        at(
            ms(91),
            Some(0),
            EventKind::Duplicate {
                msg: m0,
                from: n(1),
            },
        );
        at(
            ms(130),
            Some(3),
            EventKind::Delivered {
                msg: m0,
                from: n(2),
            },
        );
        at(
            ms(131),
            Some(1),
            EventKind::Duplicate {
                msg: m0,
                from: n(2),
            },
        );
        at(
            ms(200),
            Some(2),
            EventKind::Published {
                msg: m7,
                topic: ODD_TOPIC.into(),
                size: 8,
            },
        );
        at(
            ms(240),
            Some(1),
            EventKind::Delivered {
                msg: m7,
                from: n(2),
            },
        );
        at(
            ms(300),
            Some(0),
            EventKind::Prune {
                peer: n(1),
                topic: "blocks".into(),
            },
        );
        at(
            ms(310),
            Some(3),
            EventKind::Unsubscribed {
                topic: "blocks".into(),
            },
        );
        at(
            ms(320),
            Some(0),
            EventKind::LinkChanged {
                to: n(1),
                shape: other,
            },
        );
        at(
            ms(330),
            None,
            EventKind::Partition {
                a: vec![n(0)],
                b: vec![n(1), n(2)],
            },
        );
        at(
            ms(340),
            None,
            EventKind::Heal {
                a: vec![n(0)],
                b: vec![n(1), n(2)],
            },
        );
        at(
            ms(350),
            None,
            EventKind::Annotation {
                text: "</script>\"\u{0}\u{2029}".into(),
            },
        );
        at(
            ms(351),
            Some(2),
            EventKind::Annotation {
                text: "note\nat n2".into(),
            },
        );
        at(ms(360), Some(2), EventKind::PeerDisconnected { peer: n(3) });
        at(
            ms(370),
            Some(3),
            EventKind::NodeDown {
                reason: "stopped by the test".into(),
            },
        );
        Trace {
            format: FORMAT.into(),
            version: VERSION,
            meta: Meta {
                test: "export::sample".into(),
                backend: "in-process".into(),
                shaping: "simulated (user space)".into(),
                seed: 42,
                node_software: "rust-libp2p".into(),
                params: serde_json::Value::Null,
                software: Vec::new(),
                started_at_unix_ns: 1_700_000_000_123_456_789,
                meshsim_version: "0.1.0".into(),
                dilation: 1.0,
                time: crate::time::TimeMode::Real,
                deterministic: false,
            },
            topology: TopologySnapshot {
                description: "line(4) <&> \"quoted\"".into(),
                nodes: (0..4)
                    .map(|i| NodeSpec {
                        id: n(i),
                        name: if i == 3 {
                            ODD_NAME.into()
                        } else {
                            format!("n{i}")
                        },
                        position: (i == 1).then_some((1.5, -2.25)),
                        peer_id: (i < 3).then(|| {
                            crate::node::keypair(1, n(i))
                                .public()
                                .to_peer_id()
                                .to_base58()
                        }),
                    })
                    .collect(),
                links: vec![
                    Link {
                        a: n(0),
                        b: n(1),
                        a_to_b: shape,
                        b_to_a: other,
                    },
                    Link {
                        a: n(1),
                        b: n(2),
                        a_to_b: other,
                        b_to_a: shape,
                    },
                    Link {
                        a: n(2),
                        b: n(3),
                        a_to_b: shape,
                        b_to_a: shape,
                    },
                ],
                overlay: vec![(n(0), n(1)), (n(1), n(2)), (n(2), n(3)), (n(0), n(2))],
            },
            messages: vec![
                MessageInfo {
                    id: m0,
                    origin: n(0),
                    topic: "blocks".into(),
                    size: 1024,
                    published_ns: ms(10),
                    expected: vec![n(1), n(2), n(3)],
                },
                MessageInfo {
                    id: m7,
                    origin: n(2),
                    topic: ODD_TOPIC.into(),
                    size: 8,
                    published_ns: ms(200),
                    expected: vec![n(1)],
                },
            ],
            events,
            lag: None,
        }
    }
}
