//! Typed errors. Every error names the item that was wrong.

use std::time::Duration;

use crate::topology::NodeId;

/// The result type of meshsim's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Anything that can go wrong in a simulation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The topology was invalid.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The gossipsub parameters were invalid.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// A topology file could not be imported.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A trace assertion failed; the message explains what was missing.
    #[error(transparent)]
    Assertion(#[from] AssertionError),
    /// A trace file could not be read or written.
    #[error(transparent)]
    TraceFile(#[from] TraceFileError),
    /// A trace in another tool's format could not be read or written.
    #[error(transparent)]
    TraceFormat(#[from] TraceFormatError),
    /// A node that the operation needs is not in the simulation.
    #[error("unknown node {0}: the simulation has no such node")]
    UnknownNode(NodeId),
    /// The node is stopped and cannot do what was asked.
    #[error("node {0} is stopped")]
    NodeStopped(NodeId),
    /// The node is already running.
    #[error("node {0} is already running")]
    NodeRunning(NodeId),
    /// The message id is not one this simulation published.
    #[error("unknown message {0}: it was not published in this simulation")]
    UnknownMessage(u64),
    /// Publishing failed inside the node software.
    #[error("node {node} could not publish on topic {topic:?}: {reason}")]
    Publish {
        /// The publishing node.
        node: NodeId,
        /// The topic.
        topic: String,
        /// What gossipsub said.
        reason: String,
    },
    /// A wait did not complete in time. `what` says what was awaited and how far it got.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// How long it waited.
        after: Duration,
        /// What was awaited, and the state when the time ran out.
        what: String,
    },
    /// The time dilation asked for cannot be used.
    #[error("invalid time dilation {value}: {why}")]
    Dilation {
        /// The factor as given.
        value: f64,
        /// What is required.
        why: &'static str,
    },
    /// The requested backend is not available.
    #[error("backend {backend:?} is not available: {reason}")]
    BackendUnavailable {
        /// The backend that was asked for.
        backend: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The agent image could not be built.
    #[error("cannot build the meshsim-agent image ({step}): {reason}")]
    Image {
        /// The step that failed.
        step: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The Docker engine refused or failed a request.
    #[error("docker: {what}: {reason}")]
    Docker {
        /// What was being done.
        what: String,
        /// The engine's answer.
        reason: String,
    },
    /// A node failed in a way the harness did not expect.
    #[error("node {node} failed: {reason}")]
    Node {
        /// The node.
        node: NodeId,
        /// What happened.
        reason: String,
    },
}

/// What was wrong with a topology.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// A link or operation named a node the topology does not have.
    #[error("unknown node {node}: the topology has {nodes} nodes (n0..n{})", nodes.saturating_sub(1))]
    UnknownNode {
        /// The node that was named.
        node: NodeId,
        /// How many nodes the topology has.
        nodes: usize,
    },
    /// A link from a node to itself.
    #[error("self-loop on {0}: a node cannot be linked to itself")]
    SelfLoop(NodeId),
    /// The same pair was linked twice.
    #[error("duplicate link {0} - {1}: the pair is already linked")]
    DuplicateLink(NodeId, NodeId),
    /// A link-shape value was negative, NaN or out of range.
    #[error("invalid {field} on link {from} -> {to}: {value} ({why})")]
    InvalidShape {
        /// Sending side of the direction.
        from: NodeId,
        /// Receiving side of the direction.
        to: NodeId,
        /// The field (`latency`, `jitter`, `loss`, `bandwidth`).
        field: &'static str,
        /// The value as given.
        value: String,
        /// Why it is invalid.
        why: &'static str,
    },
    /// Two overlay peers have no path between them through the links.
    #[error("overlay peers {0} and {1} have no path between them through the links")]
    NoRoute(NodeId, NodeId),
    /// The link between two nodes does not exist.
    #[error("no link between {0} and {1}")]
    NoSuchLink(NodeId, NodeId),
    /// The graph is not connected where connectivity is required.
    #[error("disconnected topology: {} of {total} nodes cannot reach n0 (first: {})", unreachable.len(), list_nodes(unreachable, 8))]
    Disconnected {
        /// Nodes that cannot reach node 0.
        unreachable: Vec<NodeId>,
        /// Total node count.
        total: usize,
    },
    /// A generator parameter was out of range.
    #[error("invalid {generator} parameter {param} = {value}: {why}")]
    InvalidParameter {
        /// Which generator.
        generator: &'static str,
        /// Which parameter.
        param: &'static str,
        /// The value as given.
        value: String,
        /// What is required instead.
        why: String,
    },
    /// The topology has no nodes.
    #[error("empty topology: a simulation needs at least one node")]
    Empty,
}

/// Formats at most `max` node names, with "..." when there are more.
pub(crate) fn list_nodes(nodes: &[NodeId], max: usize) -> String {
    let mut s: Vec<String> = nodes.iter().take(max).map(|n| n.to_string()).collect();
    if nodes.len() > max {
        s.push(format!("... ({} more)", nodes.len() - max));
    }
    s.join(", ")
}

/// What was wrong with gossipsub parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// The mesh degrees are out of order.
    #[error(
        "gossipsub mesh degrees out of order: need D_out ({d_out}) <= D_lo ({d_lo}) <= D ({d}) <= D_hi ({d_hi}) and D_out <= D/2"
    )]
    MeshDegrees {
        /// D_out (`mesh_outbound_min`).
        d_out: usize,
        /// D_lo (`mesh_n_low`).
        d_lo: usize,
        /// D (`mesh_n`).
        d: usize,
        /// D_hi (`mesh_n_high`).
        d_hi: usize,
    },
    /// A single parameter is out of range.
    #[error("invalid gossipsub parameter {name} = {value}: {why}")]
    Invalid {
        /// Parameter name.
        name: &'static str,
        /// Value as given.
        value: String,
        /// What is required.
        why: &'static str,
    },
    /// libp2p refused the configuration after meshsim's own checks passed.
    #[error("gossipsub refused the configuration: {0}")]
    Rejected(String),
}

/// What went wrong importing a topology file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    /// The text is not well-formed; `line` is 1-based.
    #[error("{format} syntax error at line {line}: {message}")]
    Syntax {
        /// `GML` or `GraphML`.
        format: &'static str,
        /// 1-based line.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// An attribute has a value that cannot be used.
    #[error("{format}: invalid {attribute} {value:?} on {item}: {why}")]
    Value {
        /// `GML` or `GraphML`.
        format: &'static str,
        /// The item (`node 3`, `edge 0 -> 1`).
        item: String,
        /// The attribute name.
        attribute: String,
        /// The value as written.
        value: String,
        /// What is expected.
        why: String,
    },
    /// An edge refers to a node id that was not declared.
    #[error("{format}: edge refers to undeclared node {id:?}")]
    UnknownNode {
        /// `GML` or `GraphML`.
        format: &'static str,
        /// The id as written.
        id: String,
    },
    /// The resulting topology is invalid.
    #[error("{format}: {source}")]
    Topology {
        /// `GML` or `GraphML`.
        format: &'static str,
        /// The underlying error.
        source: TopologyError,
    },
}

/// A trace assertion that did not hold.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}{}", saved_to.as_ref().map(|p| format!("\n  trace: {}", p.display())).unwrap_or_default())]
pub struct AssertionError {
    /// The explanation: what was expected, what happened, what was missing and why.
    pub message: String,
    /// Where the trace was saved, when it was.
    pub saved_to: Option<std::path::PathBuf>,
}

/// A trace file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    /// Reading or writing failed.
    #[error("trace file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JSON is malformed (for example cut short); line and column are 1-based.
    #[error("trace file {path}: invalid JSON at line {line}, column {column}: {message}")]
    Parse {
        /// The file (or `<memory>`).
        path: std::path::PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// The file is a trace of a format version this build cannot read.
    #[error(
        "trace file {path}: format version {found} is not supported (this build reads version {supported})"
    )]
    Version {
        /// The file.
        path: std::path::PathBuf,
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
}

/// A trace could not be converted to or from another tool's format (go-libp2p-pubsub's
/// `TraceEvent` protobuf or JSON, the gossipsub-interop output, Chrome JSON, GraphML, DOT).
/// Every variant says where the problem is: a byte offset, a line, or a file.
#[derive(Debug, thiserror::Error)]
pub enum TraceFormatError {
    /// The input holds no trace events at all.
    #[error("{format}: the input is empty: it holds no trace events")]
    Empty {
        /// The format read.
        format: &'static str,
    },
    /// A frame's length prefix is not a valid varint, or announces an absurd length.
    #[error("{format}: bad length prefix at {at}: {why}")]
    BadLength {
        /// The format read.
        format: &'static str,
        /// Where the frame starts.
        at: Location,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The data ends inside a frame: the file was cut short.
    #[error(
        "{format}: cut short: the frame at {at} announces {needed} bytes, but only {available} remain"
    )]
    Truncated {
        /// The format read.
        format: &'static str,
        /// Where the incomplete frame starts (its length prefix).
        at: Location,
        /// The length the prefix announces.
        needed: u64,
        /// The bytes left after the prefix.
        available: usize,
    },
    /// A frame's bytes are not a valid protobuf message of the expected type.
    #[error("{format}: the frame at {at} is not a valid {message}: {reason}")]
    BadFrame {
        /// The format read.
        format: &'static str,
        /// Where the frame starts.
        at: Location,
        /// The protobuf message expected (`TraceEvent`, `TraceEventBatch`).
        message: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// gzip-compressed input could not be decompressed (corrupt, or cut short).
    #[error("gzip: {reason} (after {decompressed} decompressed bytes)")]
    Gzip {
        /// How many bytes were decompressed before the failure.
        decompressed: usize,
        /// What went wrong.
        reason: String,
    },
    /// A line of JSON input is not valid JSON, or not a JSON object of the expected shape.
    #[error("{format}: invalid JSON at {at}: {reason}")]
    BadJson {
        /// The format read.
        format: &'static str,
        /// The line.
        at: Location,
        /// What was wrong.
        reason: String,
    },
    /// An event's type is not one the schema defines.
    #[error("{format}: unknown event type {value} at {at}")]
    UnknownEventType {
        /// The format read.
        format: &'static str,
        /// Where the event is.
        at: Location,
        /// The type as found.
        value: String,
    },
    /// An event lacks a field its type needs.
    #[error("{format}: {event} event at {at} has no {field}")]
    MissingField {
        /// The format read.
        format: &'static str,
        /// Where the event is.
        at: Location,
        /// The event type.
        event: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A field has a value that cannot be used.
    #[error("{format}: {event} event at {at}: invalid {field}: {reason}")]
    InvalidField {
        /// The format read.
        format: &'static str,
        /// Where the event is.
        at: Location,
        /// The event type.
        event: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// Writing an export file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where in an input a problem is, for [`TraceFormatError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A byte offset: where a protobuf frame (its length prefix) starts.
    Offset {
        /// Bytes from the start of the data.
        offset: usize,
        /// The offset counts bytes of the gzip-decompressed data, not of the file.
        decompressed: bool,
    },
    /// A line of text input, 1-based.
    Line(usize),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Offset {
                offset,
                decompressed: false,
            } => write!(f, "byte offset {offset}"),
            Location::Offset {
                offset,
                decompressed: true,
            } => write!(f, "byte offset {offset} of the decompressed data"),
            Location::Line(line) => write!(f, "line {line}"),
        }
    }
}
