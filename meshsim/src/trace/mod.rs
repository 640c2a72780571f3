//! What happened: the record of a run, its queries and assertions, and its JSON file format.
//!
//! A [`Trace`] holds metadata, the topology as it was, the messages published, and a
//! time-ordered list of [`Event`]s with nanosecond timestamps counted from the start of the
//! simulation. The JSON form is versioned ([`FORMAT`], [`VERSION`]) and documented by the
//! JSON Schema in `meshsim/trace.schema.json`.

mod check;
pub(crate) mod clock;
pub(crate) mod lag;
mod query;
pub(crate) mod recorder;
mod store;
pub(crate) mod tally;

pub use check::Problem;
pub(crate) use query::explain_missing;
pub use query::{Delivery, MessageStats};
#[cfg(feature = "docker")]
pub(crate) use store::target_dir;
pub use store::trace_dir;
pub(crate) use store::write_whole;
pub use tally::{CdfPoint, EventCounts, Tally};

use serde::{Deserialize, Serialize};

use crate::time::TimeMode;
use crate::topology::{Link, LinkShape, NodeId, NodeSpec};

/// The `format` field of every trace file.
pub const FORMAT: &str = "meshsim-trace";
/// The trace format version this build writes and reads.
pub const VERSION: u32 = 1;

/// A message number assigned by the harness at publish (`0, 1, 2, ...` per simulation).
///
/// meshsim payloads start with this number as 8 big-endian bytes, so every copy of a message
/// can be told apart whatever message-id function the protocol uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MsgId(pub u64);

impl MsgId {
    /// The message number at the start of a meshsim payload (its first 8 bytes, big-endian);
    /// `None` for a payload shorter than that. Node software that is handed a payload to
    /// publish sends it unchanged, and reports each copy it receives with this number.
    pub fn from_payload(data: &[u8]) -> Option<MsgId> {
        data.get(..8)
            .map(|b| MsgId(u64::from_be_bytes(b.try_into().expect("8 bytes"))))
    }
}

impl std::fmt::Display for MsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message {}", self.0)
    }
}

/// The record of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version, [`VERSION`] for files this build writes.
    pub version: u32,
    /// What ran, where and how.
    pub meta: Meta,
    /// The network as it was at the start, plus nodes added during the run (their
    /// `node_up` event says when).
    pub topology: TopologySnapshot,
    /// Every message published.
    pub messages: Vec<MessageInfo>,
    /// Everything that happened, in time order.
    pub events: Vec<Event>,
    /// How late the simulated links delivered (in-process backend; absent elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<LinkLag>,
}

/// How late the in-process links handed bytes to the receiving nodes, compared with the link
/// model's arrival times: the CPU's share of every measured latency. On a busy machine (many
/// nodes on few cores) timers fire late and node tasks wait for a core, so a 50 ms link
/// delivers at 50 ms plus this lag. `exceeded` flags a run whose p99 is above the threshold
/// ([`crate::Sim::with_lag_threshold`]): its timings say more about the CPU than the links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkLag {
    /// Releases measured (one per chunk of bytes delivered over a link direction).
    pub samples: u64,
    /// Median lag, in ns (1 % resolution, at least 1 µs).
    pub p50_ns: u64,
    /// 99th-percentile lag, in ns.
    pub p99_ns: u64,
    /// Largest lag, in ns.
    pub max_ns: u64,
    /// The p99 above which the run is flagged, in ns.
    pub threshold_ns: u64,
    /// `p99_ns > threshold_ns`.
    pub exceeded: bool,
}

/// The largest time dilation [`LinkLag::suggested_dilation`] proposes.
pub const MAX_SUGGESTED_DILATION: f64 = 100.0;

impl LinkLag {
    /// For a run at time dilation `current` whose p99 lag exceeded the threshold, the
    /// dilation that should bring it to half the threshold; `None` when it did not exceed it
    /// (or `current` is already [`MAX_SUGGESTED_DILATION`]).
    ///
    /// The lag is the CPU's backlog, which in wall time hardly depends on the dilation, so
    /// the p99 in wall time (`p99 * current`) divided by the target gives the factor. It is
    /// rounded up to a whole number, at least doubles `current`, and is capped at
    /// [`MAX_SUGGESTED_DILATION`].
    pub fn suggested_dilation(&self, current: f64) -> Option<f64> {
        if !self.exceeded || current >= MAX_SUGGESTED_DILATION {
            return None;
        }
        let wall_p99 = self.p99_ns as f64 * current;
        // A zero threshold still gets a finite target: 100 µs.
        let target = (self.threshold_ns as f64 / 2.0).max(100_000.0);
        Some(
            (wall_p99 / target)
                .ceil()
                .max(current * 2.0)
                .min(MAX_SUGGESTED_DILATION),
        )
    }
}

impl std::fmt::Display for LinkLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        write!(
            f,
            "the simulated links ran late by p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} deliveries",
            ms(self.p50_ns),
            ms(self.p99_ns),
            ms(self.max_ns),
            self.samples
        )?;
        if self.exceeded {
            write!(
                f,
                " (p99 above the {:.2} ms threshold: the CPU, not the links, set these timings)",
                ms(self.threshold_ns)
            )?;
        }
        Ok(())
    }
}

/// What ran, where and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The test (or program) that ran the simulation.
    pub test: String,
    /// The backend: `in-process`, `docker`, or `imported` (a trace converted from another
    /// tool's format).
    pub backend: String,
    /// How links were shaped, e.g. `simulated (user space)`.
    pub shaping: String,
    /// The simulation's seed (link randomness, node keys).
    pub seed: u64,
    /// The node software and version (for a mixed network, each one's, joined by ` + `).
    pub node_software: String,
    /// The parameters of the node software (the first one's, in a mixed network), as it
    /// reports them: the gossipsub parameters for meshsim's built-in node.
    pub params: serde_json::Value,
    /// Each node software that ran, with its parameters and the nodes that ran it (absent in
    /// traces written before meshsim recorded it, and in imported ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub software: Vec<SoftwareRun>,
    /// Wall-clock start, in nanoseconds since the Unix epoch.
    pub started_at_unix_ns: u64,
    /// The meshsim version that wrote the trace.
    pub meshsim_version: String,
    /// Time dilation: the network ran this many times slower than the trace's times (every
    /// link latency and protocol timer multiplied by it, every recorded time divided by it;
    /// see [`Sim::with_dilation`](crate::Sim::with_dilation)). 1 when it ran in real time.
    #[serde(default = "no_dilation")]
    pub dilation: f64,
    /// The clock the run used (see [`crate::time`]); `real` in traces written before meshsim
    /// recorded it, and in imported ones.
    #[serde(default = "real_time")]
    pub time: TimeMode,
    /// Whether the same seed gives this same trace again: a run in virtual time with
    /// libp2p's timers on meshsim's clock, on one thread, randomness drawn from the seed.
    #[serde(default)]
    pub deterministic: bool,
}

fn real_time() -> TimeMode {
    TimeMode::Real
}

/// Node software as the trace records it: what it calls itself and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftwareInfo {
    /// Its name, e.g. `rust-libp2p`.
    pub name: String,
    /// Its version and build, e.g. `0.57 gossipsub 0.50 (noise, yamux)`.
    pub version: String,
    /// Its parameters, in whatever form it reports them (`null` when it reports none).
    #[serde(default)]
    pub params: serde_json::Value,
}

impl SoftwareInfo {
    /// Software called `name` at `version`, with no parameters.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        SoftwareInfo {
            name: name.into(),
            version: version.into(),
            params: serde_json::Value::Null,
        }
    }

    /// The same, with these parameters (anything serde can write as JSON).
    pub fn with_params(mut self, params: impl Serialize) -> Self {
        self.params = serde_json::to_value(params).unwrap_or(serde_json::Value::Null);
        self
    }
}

impl std::fmt::Display for SoftwareInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// One node software of a run and the nodes that ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftwareRun {
    /// The software.
    #[serde(flatten)]
    pub info: SoftwareInfo,
    /// The nodes that ran it.
    pub nodes: Vec<NodeId>,
}

fn no_dilation() -> f64 {
    1.0
}

/// The network as the simulation started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologySnapshot {
    /// How it was made (generator and parameters).
    pub description: String,
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
    /// The links (the underlay).
    pub links: Vec<Link>,
    /// The peer connections the harness made (the overlay), as `(dialer, listener)`.
    pub overlay: Vec<(NodeId, NodeId)>,
}

/// One published message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageInfo {
    /// The harness's number for it.
    pub id: MsgId,
    /// The publishing node.
    pub origin: NodeId,
    /// The topic.
    pub topic: String,
    /// Payload size in bytes.
    pub size: usize,
    /// When it was published, in ns since the start.
    pub published_ns: u64,
    /// The nodes subscribed to the topic at that moment (the origin excluded): the nodes
    /// that should receive it.
    pub expected: Vec<NodeId>,
}

/// Something that happened at a moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Nanoseconds since the simulation started.
    pub t_ns: u64,
    /// The node it happened at; absent for network-wide events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The kinds of [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The node started.
    NodeUp,
    /// The node stopped.
    NodeDown {
        /// Why (`stopped by the test`, `end of simulation`, ...).
        reason: String,
    },
    /// A connection to a peer was established.
    PeerConnected {
        /// The peer.
        peer: NodeId,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: NodeId,
    },
    /// The node subscribed to a topic.
    Subscribed {
        /// The topic.
        topic: String,
    },
    /// The node unsubscribed from a topic.
    Unsubscribed {
        /// The topic.
        topic: String,
    },
    /// The node published a message.
    Published {
        /// The message.
        msg: MsgId,
        /// The topic.
        topic: String,
        /// Payload size in bytes.
        size: usize,
    },
    /// The first copy of a message reached the node.
    Delivered {
        /// The message.
        msg: MsgId,
        /// The peer it came from.
        from: NodeId,
    },
    /// A further copy of a message the node already had.
    Duplicate {
        /// The message.
        msg: MsgId,
        /// The peer it came from.
        from: NodeId,
    },
    /// The peer entered the node's mesh for the topic.
    Graft {
        /// The peer.
        peer: NodeId,
        /// The topic.
        topic: String,
    },
    /// The peer left the node's mesh for the topic.
    Prune {
        /// The peer.
        peer: NodeId,
        /// The topic.
        topic: String,
    },
    /// The shape of traffic from the node to `to` changed.
    LinkChanged {
        /// The receiving side.
        to: NodeId,
        /// The new shape.
        shape: LinkShape,
    },
    /// Traffic between the two groups was cut.
    Partition {
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
    },
    /// A partition was healed.
    Heal {
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
    },
    /// A note from the test.
    Annotation {
        /// The text.
        text: String,
    },
}

/// `Duration` as integer nanoseconds in JSON.
pub(crate) mod nanos {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_nanos(u64::deserialize(d)?))
    }

    /// `Option<Duration>` as nanoseconds or null.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Ok(Option::<u64>::deserialize(d)?.map(Duration::from_nanos))
        }
    }
}
