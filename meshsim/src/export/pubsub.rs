//! go-libp2p-pubsub's tracing format: `TraceEvent`s of the published schema
//! (`meshsim/proto/pubsub/trace.proto`, copied verbatim from go-libp2p-pubsub `pb/trace.proto`).
//!
//! # Export
//! [`to_protobuf`] writes what go-libp2p-pubsub's `PBTracer` writes: each event as a
//! protobuf message preceded by its length as an unsigned varint (the `protoio` delimited
//! writer). [`to_protobuf_gz`] gzip-compresses the same bytes, as the `traced` daemon stores
//! them (`trace.<ns>.pb.gz`); that is the form `tracestat` reads, since it opens every file with
//! a gzip reader. [`to_json`] writes what `JSONTracer` writes: one JSON object per line,
//! encoded as Go's `encoding/json` encodes the gogo-generated `pb.TraceEvent` struct (field
//! names from its json tags, in struct order; enums as numbers; `int64` as a number; bytes
//! as standard base64 with padding; absent fields omitted; `<`, `>`, `&`, U+2028 and U+2029
//! escaped as `\u003c`...).
//!
//! Each trace event at a node becomes one `TraceEvent` whose `peerID` is that node's peer id
//! (see [`super::peer_id`]) and whose `timestamp` is the absolute time in Unix nanoseconds:
//!
//! | meshsim event | `TraceEvent` |
//! |---|---|
//! | `published` | `PUBLISH_MESSAGE {messageID, topic}` |
//! | `delivered` | `DELIVER_MESSAGE {messageID, topic, receivedFrom}` |
//! | `duplicate` | `DUPLICATE_MESSAGE {messageID, receivedFrom, topic}` |
//! | `peer_connected` | `ON_NEW_OUTBOUND_STREAM {peerID, proto:` [`GOSSIPSUB_PROTOCOL`]`}` (formerly `ADD_PEER`) |
//! | `peer_disconnected` | `ON_CLOSED_OUTBOUND_STREAM {peerID}` (formerly `REMOVE_PEER`) |
//! | `subscribed` | `JOIN {topic}` |
//! | `unsubscribed` | `LEAVE {topic}` |
//! | `graft` | `GRAFT {peerID, topic}` |
//! | `prune` | `PRUNE {peerID, topic}` |
//!
//! The message id is the 8 big-endian bytes of the [`MsgId`] (gossipsub-interop's convention:
//! meshsim payloads start with those bytes). The topic of a delivery or duplicate is the
//! topic the message was published on. Events the format has no type for are left out:
//! node up and down, link changes, partitions and heals, and annotations. go-libp2p-pubsub
//! also traces a `DELIVER_MESSAGE` at the publisher for its own message; meshsim records no
//! delivery at the origin, so the export has none (and `tracestat`'s delay CDF lacks those
//! 0 ms samples).
//!
//! # Import
//! [`import`] reads a go-libp2p-pubsub trace in any of those forms: length-delimited
//! `TraceEvent`s (or `TraceEventBatch`es, as `RemoteTracer` streams them), optionally
//! gzip-compressed, or the ND-JSON form (also gzip-compressed), detected from the bytes. It
//! accepts the older schema's names (`addPeer`, `removePeer`, `topics` lists) too. It builds
//! a [`Trace`]:
//! - one node per peer id seen as an event's source or as the peer of an imported event, in
//!   order of first appearance, named by the short form of the peer id (`12*Wt5nvg`, as Go's
//!   `peer.ID.ShortString`) with `peer_id` set;
//! - a message per `PUBLISH_MESSAGE`: an 8-byte message id below 2^53 becomes that
//!   big-endian `u64`, other ids get numbers no such id uses; its `expected` nodes are those
//!   that had joined the topic at publish time and every node that delivered it anyway (a
//!   `JOIN` the trace missed), the origin excluded; its size is unknown and recorded as 0;
//! - the events of the table above, in time order, `t_ns` counted from the earliest
//!   timestamp (which becomes `meta.started_at_unix_ns`). A `DELIVER_MESSAGE` at the
//!   publisher of its own message is dropped; a second `DELIVER_MESSAGE` of a message at the
//!   same node becomes a duplicate. A delivery without `receivedFrom` (traces before the
//!   field existed) takes its sender from the latest `RECV_RPC` that carried the message to
//!   that node, else from the message's origin ([`ImportSummary::inferred_senders`] counts
//!   these);
//! - the topology: the nodes, and as links with a zero shape every pair of peers seen
//!   connected (a stream opened, a graft or prune, or a message passed); the overlay is the
//!   same pairs;
//! - `meta`: backend `imported`, node software `go-libp2p-pubsub (imported)`, the test name
//!   given (`imported` by default); seed 0 and default gossipsub parameters, since the format
//!   does not record them.
//!
//! Events the model has no kind for (`RECV_RPC`, `SEND_RPC`, `DROP_RPC`, `REJECT_MESSAGE`)
//! and deliveries of messages whose `PUBLISH_MESSAGE` is not in the trace are skipped and
//! counted in [`ImportSummary::skipped`]. Node failures cannot be seen in this format.
//!
//! Bad input is a [`TraceFormatError`] naming the byte offset of the frame (or the JSON line)
//! and what is wrong with it; a file cut short mid-frame is
//! [`TraceFormatError::Truncated`]. Import never panics.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use libp2p::PeerId;
use prost::Message as _;
use serde_json::Value;

use super::{Location, PeerIds, unix_ns};
use crate::error::TraceFormatError;
use crate::topology::{Link, LinkShape, NodeId, NodeSpec};
use crate::trace::{
    Event, EventKind, FORMAT, MessageInfo, Meta, MsgId, TopologySnapshot, Trace, VERSION,
};

/// The types generated by prost from the published schema (`proto/pubsub/trace.proto`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/pubsub.pb.rs"));
}

use pb::trace_event::{self as te, Type};

/// The protocol id recorded in `ON_NEW_OUTBOUND_STREAM`: what two meshsim nodes (rust-libp2p
/// gossipsub 0.50, default configuration) negotiate, the first of the versions it offers.
pub const GOSSIPSUB_PROTOCOL: &str = "/meshsub/1.3.0";

/// Frames longer than this are refused as corrupt (`traced` itself reads at most 4 MiB).
pub const MAX_FRAME: usize = 16 << 20;

/// The largest message number kept from an 8-byte message id: JavaScript (the viewer) and
/// most JSON readers hold numbers as doubles, exact only up to 2^53.
const MAX_EXACT_ID: u64 = (1 << 53) - 1;

/// The most a gzip-compressed trace may decompress to (1 GiB; `traced` rotates its files at
/// 64 MiB compressed): a guard against a small file that expands without end.
const MAX_DECOMPRESSED: u64 = 1 << 30;

const PB: &str = "go-libp2p-pubsub protobuf trace";
const JSON: &str = "go-libp2p-pubsub JSON trace";

/// The 8 big-endian bytes of a message number: its go-libp2p-pubsub message id.
pub fn message_id(msg: MsgId) -> Vec<u8> {
    msg.0.to_be_bytes().to_vec()
}

/// The trace's events as go-libp2p-pubsub `TraceEvent`s, in trace order (see the module
/// docs for the mapping and what is left out).
pub fn events(trace: &Trace) -> Vec<pb::TraceEvent> {
    let peers = PeerIds::new(trace);
    let topic_of: HashMap<MsgId, &str> = trace
        .messages
        .iter()
        .map(|m| (m.id, m.topic.as_str()))
        .collect();
    let pid = |n: NodeId| Some(peers.get(n).to_bytes());
    let topic = |m: &MsgId| topic_of.get(m).map(|t| t.to_string());
    let mut out = Vec::new();
    for e in &trace.events {
        let Some(node) = e.node else { continue };
        let mut ev = pb::TraceEvent {
            peer_id: pid(node),
            timestamp: Some(i64::try_from(unix_ns(trace, e.t_ns)).unwrap_or(i64::MAX)),
            ..Default::default()
        };
        match &e.kind {
            EventKind::Published { msg, topic, .. } => {
                ev.set_type(Type::PublishMessage);
                ev.publish_message = Some(te::PublishMessage {
                    message_id: Some(message_id(*msg)),
                    topic: Some(topic.clone()),
                });
            }
            EventKind::Delivered { msg, from } => {
                ev.set_type(Type::DeliverMessage);
                ev.deliver_message = Some(te::DeliverMessage {
                    message_id: Some(message_id(*msg)),
                    topic: topic(msg),
                    received_from: pid(*from),
                });
            }
            EventKind::Duplicate { msg, from } => {
                ev.set_type(Type::DuplicateMessage);
                ev.duplicate_message = Some(te::DuplicateMessage {
                    message_id: Some(message_id(*msg)),
                    received_from: pid(*from),
                    topic: topic(msg),
                });
            }
            EventKind::PeerConnected { peer } => {
                ev.set_type(Type::OnNewOutboundStream);
                ev.on_new_outbound_stream = Some(te::OnNewOutboundStream {
                    peer_id: pid(*peer),
                    proto: Some(GOSSIPSUB_PROTOCOL.to_string()),
                });
            }
            EventKind::PeerDisconnected { peer } => {
                ev.set_type(Type::OnClosedOutboundStream);
                ev.on_closed_outbound_stream = Some(te::OnClosedOutboundStream {
                    peer_id: pid(*peer),
                });
            }
            EventKind::Subscribed { topic } => {
                ev.set_type(Type::Join);
                ev.join = Some(te::Join {
                    topic: Some(topic.clone()),
                });
            }
            EventKind::Unsubscribed { topic } => {
                ev.set_type(Type::Leave);
                ev.leave = Some(te::Leave {
                    topic: Some(topic.clone()),
                });
            }
            EventKind::Graft { peer, topic } => {
                ev.set_type(Type::Graft);
                ev.graft = Some(te::Graft {
                    peer_id: pid(*peer),
                    topic: Some(topic.clone()),
                });
            }
            EventKind::Prune { peer, topic } => {
                ev.set_type(Type::Prune);
                ev.prune = Some(te::Prune {
                    peer_id: pid(*peer),
                    topic: Some(topic.clone()),
                });
            }
            EventKind::NodeUp
            | EventKind::NodeDown { .. }
            | EventKind::LinkChanged { .. }
            | EventKind::Partition { .. }
            | EventKind::Heal { .. }
            | EventKind::Annotation { .. } => continue,
        }
        out.push(ev);
    }
    out
}

/// The trace as length-delimited `TraceEvent`s (varint length, then the message), as
/// go-libp2p-pubsub's `PBTracer` writes them.
pub fn to_protobuf(trace: &Trace) -> Vec<u8> {
    let mut out = Vec::new();
    for ev in events(trace) {
        ev.encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

/// [`to_protobuf`], gzip-compressed: the `.pb.gz` form `traced` writes and `tracestat` reads.
pub fn to_protobuf_gz(trace: &Trace) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&to_protobuf(trace))
        .and_then(|()| gz.finish())
        .expect("compressing into memory cannot fail")
}

/// The trace as ND-JSON `TraceEvent`s, one per line, as go-libp2p-pubsub's `JSONTracer`
/// writes them.
pub fn to_json(trace: &Trace) -> String {
    events(trace)
        .iter()
        .map(|ev| json_line(ev) + "\n")
        .collect()
}

/// One `TraceEvent` as Go's `encoding/json` encodes the gogo-generated struct (without the
/// trailing newline `json.Encoder` adds).
pub fn json_line(ev: &pb::TraceEvent) -> String {
    let mut o = GoObject::default();
    o.int("type", ev.r#type.map(i64::from));
    o.bytes("peerID", &ev.peer_id);
    o.int("timestamp", ev.timestamp);
    o.object("publishMessage", ev.publish_message.as_ref(), |o, m| {
        o.bytes("messageID", &m.message_id);
        o.string("topic", &m.topic);
    });
    o.object("rejectMessage", ev.reject_message.as_ref(), |o, m| {
        o.bytes("messageID", &m.message_id);
        o.bytes("receivedFrom", &m.received_from);
        o.string("reason", &m.reason);
        o.string("topic", &m.topic);
    });
    o.object("duplicateMessage", ev.duplicate_message.as_ref(), |o, m| {
        o.bytes("messageID", &m.message_id);
        o.bytes("receivedFrom", &m.received_from);
        o.string("topic", &m.topic);
    });
    o.object("deliverMessage", ev.deliver_message.as_ref(), |o, m| {
        o.bytes("messageID", &m.message_id);
        o.string("topic", &m.topic);
        o.bytes("receivedFrom", &m.received_from);
    });
    o.object(
        "onNewOutboundStream",
        ev.on_new_outbound_stream.as_ref(),
        |o, m| {
            o.bytes("peerID", &m.peer_id);
            o.string("proto", &m.proto);
        },
    );
    o.object(
        "onClosedOutboundStream",
        ev.on_closed_outbound_stream.as_ref(),
        |o, m| o.bytes("peerID", &m.peer_id),
    );
    o.object("recvRPC", ev.recv_rpc.as_ref(), |o, m| {
        o.bytes("receivedFrom", &m.received_from);
        o.object("meta", m.meta.as_ref(), rpc_meta);
    });
    o.object("sendRPC", ev.send_rpc.as_ref(), |o, m| {
        o.bytes("sendTo", &m.send_to);
        o.object("meta", m.meta.as_ref(), rpc_meta);
    });
    o.object("dropRPC", ev.drop_rpc.as_ref(), |o, m| {
        o.bytes("sendTo", &m.send_to);
        o.object("meta", m.meta.as_ref(), rpc_meta);
    });
    o.object("join", ev.join.as_ref(), |o, m| o.string("topic", &m.topic));
    o.object("leave", ev.leave.as_ref(), |o, m| {
        o.string("topic", &m.topic)
    });
    o.object("graft", ev.graft.as_ref(), |o, m| {
        o.bytes("peerID", &m.peer_id);
        o.string("topic", &m.topic);
    });
    o.object("prune", ev.prune.as_ref(), |o, m| {
        o.bytes("peerID", &m.peer_id);
        o.string("topic", &m.topic);
    });
    o.finish()
}

fn rpc_meta(o: &mut GoObject, m: &te::RpcMeta) {
    o.list("messages", &m.messages, |o, m| {
        o.bytes("messageID", &m.message_id);
        o.string("topic", &m.topic);
    });
    o.list("subscription", &m.subscription, |o, s| {
        if let Some(b) = s.subscribe {
            o.raw("subscribe", if b { "true" } else { "false" });
        }
        o.string("topic", &s.topic);
    });
    o.object("control", m.control.as_ref(), |o, c| {
        o.list("ihave", &c.ihave, |o, x| {
            o.string("topic", &x.topic);
            o.byte_list("messageIDs", &x.message_i_ds);
        });
        o.list("iwant", &c.iwant, |o, x| {
            o.byte_list("messageIDs", &x.message_i_ds)
        });
        o.list("graft", &c.graft, |o, x| o.string("topic", &x.topic));
        o.list("prune", &c.prune, |o, x| {
            o.string("topic", &x.topic);
            o.byte_list("peers", &x.peers);
        });
        o.list("idontwant", &c.idontwant, |o, x| {
            o.byte_list("messageIDs", &x.message_i_ds)
        });
    });
}

/// A JSON object written the way Go's `encoding/json` writes a struct whose fields are all
/// `omitempty` pointers, byte slices and slices.
#[derive(Default)]
struct GoObject {
    out: String,
    any: bool,
}

impl GoObject {
    fn key(&mut self, k: &str) {
        self.out.push(if self.any { ',' } else { '{' });
        self.any = true;
        go_quote(&mut self.out, k);
        self.out.push(':');
    }

    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push_str(v);
    }

    fn int(&mut self, k: &str, v: Option<i64>) {
        if let Some(v) = v {
            self.raw(k, &v.to_string());
        }
    }

    /// `[]byte` with `omitempty`: left out when empty, else standard base64.
    fn bytes(&mut self, k: &str, v: &Option<Vec<u8>>) {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            self.raw(k, &format!("\"{}\"", BASE64.encode(v)));
        }
    }

    /// `*string` with `omitempty`: left out when nil, written even when empty.
    fn string(&mut self, k: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.key(k);
            go_quote(&mut self.out, v);
        }
    }

    fn byte_list(&mut self, k: &str, v: &[Vec<u8>]) {
        if !v.is_empty() {
            let items: Vec<String> = v
                .iter()
                .map(|b| format!("\"{}\"", BASE64.encode(b)))
                .collect();
            self.raw(k, &format!("[{}]", items.join(",")));
        }
    }

    fn object<T>(&mut self, k: &str, v: Option<&T>, fill: impl FnOnce(&mut GoObject, &T)) {
        if let Some(v) = v {
            let mut inner = GoObject::default();
            fill(&mut inner, v);
            self.raw(k, &inner.finish());
        }
    }

    fn list<T>(&mut self, k: &str, v: &[T], fill: impl Fn(&mut GoObject, &T)) {
        if !v.is_empty() {
            let items: Vec<String> = v
                .iter()
                .map(|x| {
                    let mut inner = GoObject::default();
                    fill(&mut inner, x);
                    inner.finish()
                })
                .collect();
            self.raw(k, &format!("[{}]", items.join(",")));
        }
    }

    fn finish(mut self) -> String {
        if self.any {
            self.out.push('}');
            self.out
        } else {
            "{}".into()
        }
    }
}

/// Appends `s` as a JSON string the way Go's `encoding/json` does with HTML escaping on (the
/// default of `json.Marshal` and `json.Encoder`), and `\b`, `\f` as Go 1.22 and later write
/// them; other control characters as `\u00xx`.
fn go_quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The form an imported trace was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// Length-delimited protobuf (`PBTracer`).
    Protobuf,
    /// Length-delimited protobuf, gzip-compressed (`traced`).
    ProtobufGzip,
    /// ND-JSON (`JSONTracer`, `trace2json`).
    Json,
    /// ND-JSON, gzip-compressed.
    JsonGzip,
}

/// What [`import_named`] did besides building the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The form the input was in.
    pub source: SourceFormat,
    /// Trace events read.
    pub events: usize,
    /// Of those, how many became trace events.
    pub imported: usize,
    /// Events left out, counted by reason (the event type, for types the model has none
    /// for: `RECV_RPC`, `SEND_RPC`, `DROP_RPC`, `REJECT_MESSAGE`).
    pub skipped: BTreeMap<String, usize>,
    /// Deliveries and duplicates whose sender was not recorded and was inferred (see the
    /// module docs).
    pub inferred_senders: usize,
}

/// An imported trace and what the import skipped.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The trace.
    pub trace: Trace,
    /// What was read and what was left out.
    pub summary: ImportSummary,
}

/// Reads a go-libp2p-pubsub trace (protobuf or ND-JSON, optionally gzip-compressed) into a
/// [`Trace`] whose test name is `imported`. See the module docs.
pub fn import(bytes: &[u8]) -> Result<Trace, TraceFormatError> {
    Ok(import_named(bytes, "imported")?.trace)
}

/// Decodes a go-libp2p-pubsub trace (protobuf or ND-JSON, optionally gzip-compressed) into
/// its `TraceEvent`s, in file order, without interpreting them.
pub fn read_events(bytes: &[u8]) -> Result<Vec<pb::TraceEvent>, TraceFormatError> {
    let mut out = Vec::new();
    decode(bytes, &mut |_, ev| {
        out.push(ev);
        Ok(())
    })?;
    Ok(out)
}

/// Reads a go-libp2p-pubsub trace into a [`Trace`] named `test`, with a summary of what was
/// skipped. See the module docs.
pub fn import_named(bytes: &[u8], test: &str) -> Result<Imported, TraceFormatError> {
    // Each event is checked and shrunk to a `Rec` as soon as it is decoded.
    let mut recs = Vec::new();
    let source = decode(bytes, &mut |at, ev| {
        let format = match at {
            Location::Line(_) => JSON,
            Location::Offset { .. } => PB,
        };
        recs.push(Rec::of(format, at, ev)?);
        Ok(())
    })?;
    let format = match source {
        SourceFormat::Protobuf | SourceFormat::ProtobufGzip => PB,
        SourceFormat::Json | SourceFormat::JsonGzip => JSON,
    };
    if recs.is_empty() {
        return Err(TraceFormatError::Empty { format });
    }
    let total = recs.len();
    // Files from `traced` interleave many peers' batches: put everything in time order.
    recs.sort_by_key(|r| r.t);
    Ok(Builder::new(test, source).build(recs, total))
}

/// An event, checked: the fields its type needs are present.
struct Rec {
    t: i64,
    src: Vec<u8>,
    kind: RecKind,
}

enum RecKind {
    Publish {
        msg: Vec<u8>,
        topic: String,
    },
    Deliver {
        msg: Vec<u8>,
        from: Option<Vec<u8>>,
    },
    Duplicate {
        msg: Vec<u8>,
        from: Option<Vec<u8>>,
    },
    Connect(Vec<u8>),
    Disconnect(Vec<u8>),
    Join(String),
    Leave(String),
    Graft(Vec<u8>, String),
    Prune(Vec<u8>, String),
    RecvRpc {
        from: Option<Vec<u8>>,
        msgs: Vec<Vec<u8>>,
    },
    Other(&'static str),
}

impl Rec {
    fn of(format: &'static str, at: Location, ev: pb::TraceEvent) -> Result<Rec, TraceFormatError> {
        let raw_type = ev.r#type.ok_or(TraceFormatError::MissingField {
            format,
            at,
            event: "TraceEvent",
            field: "type",
        })?;
        let ty = Type::try_from(raw_type).map_err(|_| TraceFormatError::UnknownEventType {
            format,
            at,
            value: raw_type.to_string(),
        })?;
        let event = ty.as_str_name();
        let missing = |field| TraceFormatError::MissingField {
            format,
            at,
            event,
            field,
        };
        let src = ev
            .peer_id
            .filter(|p| !p.is_empty())
            .ok_or_else(|| missing("peerID"))?;
        let t = ev.timestamp.ok_or_else(|| missing("timestamp"))?;
        if t < 0 {
            return Err(TraceFormatError::InvalidField {
                format,
                at,
                event,
                field: "timestamp",
                reason: format!("{t} is before 1970"),
            });
        }
        let nonempty =
            |v: Option<Vec<u8>>, field| v.filter(|v| !v.is_empty()).ok_or_else(|| missing(field));
        let kind = match ty {
            Type::PublishMessage => {
                let m = ev
                    .publish_message
                    .ok_or_else(|| missing("publishMessage"))?;
                RecKind::Publish {
                    msg: nonempty(m.message_id, "publishMessage.messageID")?,
                    topic: m.topic.ok_or_else(|| missing("publishMessage.topic"))?,
                }
            }
            Type::DeliverMessage => {
                let m = ev
                    .deliver_message
                    .ok_or_else(|| missing("deliverMessage"))?;
                RecKind::Deliver {
                    msg: nonempty(m.message_id, "deliverMessage.messageID")?,
                    from: m.received_from.filter(|f| !f.is_empty()),
                }
            }
            Type::DuplicateMessage => {
                let m = ev
                    .duplicate_message
                    .ok_or_else(|| missing("duplicateMessage"))?;
                RecKind::Duplicate {
                    msg: nonempty(m.message_id, "duplicateMessage.messageID")?,
                    from: m.received_from.filter(|f| !f.is_empty()),
                }
            }
            Type::OnNewOutboundStream => {
                let m = ev
                    .on_new_outbound_stream
                    .ok_or_else(|| missing("onNewOutboundStream"))?;
                RecKind::Connect(nonempty(m.peer_id, "onNewOutboundStream.peerID")?)
            }
            Type::OnClosedOutboundStream => {
                let m = ev
                    .on_closed_outbound_stream
                    .ok_or_else(|| missing("onClosedOutboundStream"))?;
                RecKind::Disconnect(nonempty(m.peer_id, "onClosedOutboundStream.peerID")?)
            }
            Type::Join => RecKind::Join(
                ev.join
                    .and_then(|j| j.topic)
                    .ok_or_else(|| missing("join.topic"))?,
            ),
            Type::Leave => RecKind::Leave(
                ev.leave
                    .and_then(|j| j.topic)
                    .ok_or_else(|| missing("leave.topic"))?,
            ),
            Type::Graft => {
                let m = ev.graft.ok_or_else(|| missing("graft"))?;
                RecKind::Graft(
                    nonempty(m.peer_id, "graft.peerID")?,
                    m.topic.ok_or_else(|| missing("graft.topic"))?,
                )
            }
            Type::Prune => {
                let m = ev.prune.ok_or_else(|| missing("prune"))?;
                RecKind::Prune(
                    nonempty(m.peer_id, "prune.peerID")?,
                    m.topic.ok_or_else(|| missing("prune.topic"))?,
                )
            }
            Type::RecvRpc => {
                let r = ev.recv_rpc.unwrap_or_default();
                RecKind::RecvRpc {
                    from: r.received_from.filter(|f| !f.is_empty()),
                    msgs: r
                        .meta
                        .map(|m| {
                            m.messages
                                .into_iter()
                                .filter_map(|m| m.message_id)
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            }
            Type::RejectMessage | Type::SendRpc | Type::DropRpc => RecKind::Other(event),
        };
        Ok(Rec { t, src, kind })
    }
}

/// A message met in the trace.
struct Msg {
    id: MsgId,
    origin: NodeId,
    /// Its publish was met (a second one is skipped).
    published: bool,
}

struct Builder {
    test: String,
    source: SourceFormat,
    nodes: Vec<NodeSpec>,
    node_of: HashMap<Vec<u8>, NodeId>,
    names: HashSet<String>,
    events: Vec<Event>,
    messages: Vec<MessageInfo>,
    pairs: BTreeSet<(NodeId, NodeId)>,
    skipped: BTreeMap<String, usize>,
    inferred: usize,
}

impl Builder {
    fn new(test: &str, source: SourceFormat) -> Self {
        Builder {
            test: test.to_string(),
            source,
            nodes: Vec::new(),
            node_of: HashMap::new(),
            names: HashSet::new(),
            events: Vec::new(),
            messages: Vec::new(),
            pairs: BTreeSet::new(),
            skipped: BTreeMap::new(),
            inferred: 0,
        }
    }

    /// The node of a peer id, added on first sight.
    fn node(&mut self, peer: &[u8]) -> NodeId {
        if let Some(&n) = self.node_of.get(peer) {
            return n;
        }
        let id = NodeId(self.nodes.len() as u32);
        let parsed = PeerId::from_bytes(peer).ok().map(|p| p.to_base58());
        let full = parsed.clone().unwrap_or_else(|| {
            let hex: String = peer.iter().map(|b| format!("{b:02x}")).collect();
            format!("peer:{hex}")
        });
        let short = match &parsed {
            Some(s) if s.len() > 10 => format!("{}*{}", &s[..2], &s[s.len() - 6..]),
            _ if full.len() > 16 => full[..16].to_string(),
            _ => full.clone(),
        };
        // Short names can collide; fall back to the full form, then to the node number.
        let name = [short, full.clone(), format!("{full} ({id})")]
            .into_iter()
            .find(|n| !self.names.contains(n))
            .expect("the last candidate names the node number");
        self.names.insert(name.clone());
        self.nodes.push(NodeSpec {
            id,
            name,
            position: None,
            peer_id: parsed,
        });
        self.node_of.insert(peer.to_vec(), id);
        id
    }

    fn skip(&mut self, why: impl Into<String>) {
        *self.skipped.entry(why.into()).or_insert(0) += 1;
    }

    fn pair(&mut self, a: NodeId, b: NodeId) {
        if a != b {
            self.pairs.insert((a.min(b), a.max(b)));
        }
    }

    fn build(mut self, recs: Vec<Rec>, total: usize) -> Imported {
        let t0 = recs.first().map_or(0, |r| r.t);
        // Nodes in order of first appearance.
        for r in &recs {
            self.node(&r.src);
            match &r.kind {
                RecKind::Deliver { from: Some(p), .. }
                | RecKind::Duplicate { from: Some(p), .. }
                | RecKind::Connect(p)
                | RecKind::Disconnect(p)
                | RecKind::Graft(p, _)
                | RecKind::Prune(p, _) => {
                    self.node(p);
                }
                _ => {}
            }
        }
        // Message numbers: 8-byte ids are big-endian u64s; other ids get numbers none uses.
        let mut msgs: HashMap<Vec<u8>, Msg> = HashMap::new();
        let used: HashSet<u64> = recs
            .iter()
            .filter_map(|r| match &r.kind {
                RecKind::Publish { msg, .. } => <[u8; 8]>::try_from(msg.as_slice()).ok(),
                _ => None,
            })
            .map(u64::from_be_bytes)
            .filter(|&id| id <= MAX_EXACT_ID)
            .collect();
        let mut next = 0u64;
        for r in &recs {
            if let RecKind::Publish { msg, .. } = &r.kind
                && !msgs.contains_key(msg)
            {
                let id = match <[u8; 8]>::try_from(msg.as_slice()).map(u64::from_be_bytes) {
                    Ok(id) if id <= MAX_EXACT_ID => id,
                    _ => {
                        while used.contains(&next) {
                            next += 1;
                        }
                        next += 1;
                        next - 1
                    }
                };
                let origin = self.node(&r.src);
                msgs.insert(
                    msg.clone(),
                    Msg {
                        id: MsgId(id),
                        origin,
                        published: false,
                    },
                );
            }
        }
        let mut subscriptions: HashMap<NodeId, BTreeSet<String>> = HashMap::new();
        let mut delivered: HashSet<(NodeId, MsgId)> = HashSet::new();
        let mut rpc_sender: HashMap<(NodeId, Vec<u8>), Vec<u8>> = HashMap::new();
        for r in recs {
            let node = self.node(&r.src);
            let t_ns = (r.t - t0) as u64;
            let kind = match r.kind {
                RecKind::Publish { msg, topic } => {
                    let m = msgs.get_mut(&msg).expect("every publish was numbered");
                    if m.published {
                        self.skip("PUBLISH_MESSAGE of a message id published before");
                        continue;
                    }
                    let expected = subscriptions
                        .iter()
                        .filter(|(n, t)| **n != node && t.contains(&topic))
                        .map(|(n, _)| *n)
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    m.published = true;
                    self.messages.push(MessageInfo {
                        id: m.id,
                        origin: node,
                        topic: topic.clone(),
                        size: 0,
                        published_ns: t_ns,
                        expected,
                    });
                    EventKind::Published {
                        msg: m.id,
                        topic,
                        size: 0,
                    }
                }
                RecKind::Deliver { msg, from } => {
                    let Some(m) = msgs.get(&msg) else {
                        self.skip("DELIVER_MESSAGE of a message whose publish is not in the trace");
                        continue;
                    };
                    let (id, origin) = (m.id, m.origin);
                    if node == origin {
                        self.skip("DELIVER_MESSAGE at the publisher of its own message");
                        continue;
                    }
                    let from = self.sender(node, from, &msg, origin, &rpc_sender);
                    if delivered.insert((node, id)) {
                        EventKind::Delivered { msg: id, from }
                    } else {
                        EventKind::Duplicate { msg: id, from }
                    }
                }
                RecKind::Duplicate { msg, from } => {
                    let Some(m) = msgs.get(&msg) else {
                        self.skip(
                            "DUPLICATE_MESSAGE of a message whose publish is not in the trace",
                        );
                        continue;
                    };
                    let (id, origin) = (m.id, m.origin);
                    let from = self.sender(node, from, &msg, origin, &rpc_sender);
                    EventKind::Duplicate { msg: id, from }
                }
                RecKind::Connect(p) => {
                    let peer = self.node(&p);
                    self.pair(node, peer);
                    EventKind::PeerConnected { peer }
                }
                RecKind::Disconnect(p) => EventKind::PeerDisconnected {
                    peer: self.node(&p),
                },
                RecKind::Join(topic) => {
                    subscriptions.entry(node).or_default().insert(topic.clone());
                    EventKind::Subscribed { topic }
                }
                RecKind::Leave(topic) => {
                    subscriptions.entry(node).or_default().remove(&topic);
                    EventKind::Unsubscribed { topic }
                }
                RecKind::Graft(p, topic) => {
                    let peer = self.node(&p);
                    self.pair(node, peer);
                    EventKind::Graft { peer, topic }
                }
                RecKind::Prune(p, topic) => {
                    let peer = self.node(&p);
                    self.pair(node, peer);
                    EventKind::Prune { peer, topic }
                }
                RecKind::RecvRpc { from, msgs: ids } => {
                    if let Some(f) = from {
                        for id in ids {
                            rpc_sender.insert((node, id), f.clone());
                        }
                    }
                    self.skip("RECV_RPC");
                    continue;
                }
                RecKind::Other(name) => {
                    self.skip(name);
                    continue;
                }
            };
            self.events.push(Event {
                t_ns,
                node: Some(node),
                kind,
            });
        }
        // Expected: the subscribers at publish, and every node that got the message anyway
        // (a node whose JOIN the trace missed, or every receiver when it has no JOINs).
        let mut got: HashMap<MsgId, BTreeSet<NodeId>> = HashMap::new();
        for e in &self.events {
            if let (Some(n), EventKind::Delivered { msg, .. }) = (e.node, &e.kind) {
                got.entry(*msg).or_default().insert(n);
            }
        }
        for m in &mut self.messages {
            let mut expected: BTreeSet<NodeId> = m.expected.iter().copied().collect();
            expected.extend(got.remove(&m.id).unwrap_or_default());
            expected.remove(&m.origin);
            m.expected = expected.into_iter().collect();
        }
        self.finish(t0, total)
    }

    /// The sender of a copy: `receivedFrom` when recorded (and not the node itself), else the
    /// latest `RECV_RPC` that carried the message to the node, else the message's origin.
    fn sender(
        &mut self,
        node: NodeId,
        from: Option<Vec<u8>>,
        msg: &[u8],
        origin: NodeId,
        rpc_sender: &HashMap<(NodeId, Vec<u8>), Vec<u8>>,
    ) -> NodeId {
        if let Some(f) = from {
            let f = self.node(&f);
            if f != node {
                self.pair(f, node);
                return f;
            }
        }
        self.inferred += 1;
        let from = match rpc_sender.get(&(node, msg.to_vec())) {
            Some(p) => self.node(&p.clone()),
            None => origin,
        };
        self.pair(from, node);
        from
    }

    fn finish(self, t0: i64, total: usize) -> Imported {
        let imported = self.events.len();
        let pairs: Vec<(NodeId, NodeId)> = self.pairs.into_iter().collect();
        let trace = Trace {
            format: FORMAT.to_string(),
            version: VERSION,
            meta: Meta {
                test: self.test,
                backend: "imported".into(),
                shaping: "unknown (imported go-libp2p-pubsub trace)".into(),
                seed: 0,
                node_software: "go-libp2p-pubsub (imported)".into(),
                params: serde_json::Value::Null,
                software: Vec::new(),
                started_at_unix_ns: t0 as u64,
                meshsim_version: env!("CARGO_PKG_VERSION").to_string(),
                dilation: 1.0,
                time: crate::time::TimeMode::Real,
                deterministic: false,
            },
            topology: TopologySnapshot {
                description: format!(
                    "imported go-libp2p-pubsub trace ({} peers, {total} events)",
                    self.nodes.len()
                ),
                nodes: self.nodes,
                links: pairs
                    .iter()
                    .map(|&(a, b)| Link {
                        a,
                        b,
                        a_to_b: LinkShape::default(),
                        b_to_a: LinkShape::default(),
                    })
                    .collect(),
                overlay: pairs,
            },
            messages: self.messages,
            events: self.events,
            lag: None,
        };
        Imported {
            trace,
            summary: ImportSummary {
                source: self.source,
                events: total,
                imported,
                skipped: self.skipped,
                inferred_senders: self.inferred,
            },
        }
    }
}

/// Decodes the input into `TraceEvent`s with where each was found.
/// Receives each event as it is decoded, so a caller can check and shrink it at once rather
/// than hold every decoded `TraceEvent` (about 1 KiB each in memory, whatever its size on disk).
type Sink<'a> = &'a mut dyn FnMut(Location, pb::TraceEvent) -> Result<(), TraceFormatError>;

/// Decodes `bytes`, passing every event to `sink`; returns the form they were in.
fn decode(bytes: &[u8], sink: Sink<'_>) -> Result<SourceFormat, TraceFormatError> {
    let gz = bytes.starts_with(&[0x1f, 0x8b]);
    let data: Cow<[u8]> = if gz {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| TraceFormatError::Gzip {
                decompressed: out.len(),
                reason: e.to_string(),
            })?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(TraceFormatError::Gzip {
                decompressed: out.len(),
                reason: format!(
                    "decompresses to more than {} GiB; refusing to read further",
                    MAX_DECOMPRESSED >> 30
                ),
            });
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(bytes)
    };
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        // Nothing but blank lines: an empty JSON trace, not a cut protobuf frame.
        return Ok(if gz {
            SourceFormat::JsonGzip
        } else {
            SourceFormat::Json
        });
    }
    if looks_like_json(&data) {
        let source = if gz {
            SourceFormat::JsonGzip
        } else {
            SourceFormat::Json
        };
        decode_json(&data, sink)?;
        Ok(source)
    } else {
        let source = if gz {
            SourceFormat::ProtobufGzip
        } else {
            SourceFormat::Protobuf
        };
        decode_protobuf(&data, gz, sink)?;
        Ok(source)
    }
}

/// JSON starts with `{` and then a key or `}`; a protobuf frame of 123 bytes also starts with
/// `{` (its length), but is followed by a field tag, never by `"`.
fn looks_like_json(data: &[u8]) -> bool {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let mut rest = data.iter().skip_while(|b| b.is_ascii_whitespace());
    rest.next() == Some(&b'{')
        && matches!(
            rest.find(|b| !b.is_ascii_whitespace()),
            Some(b'"') | Some(b'}')
        )
}

/// Reads an unsigned varint; `Err(true)` if the data ends inside it, `Err(false)` if it is
/// longer than 10 bytes or overflows.
fn read_varint(data: &[u8]) -> Result<(u64, usize), bool> {
    let mut v: u64 = 0;
    for (i, &b) in data.iter().enumerate() {
        if i == 10 || (i == 9 && b > 1) {
            return Err(false);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(true)
}

fn decode_protobuf(
    data: &[u8],
    decompressed: bool,
    sink: Sink<'_>,
) -> Result<(), TraceFormatError> {
    let mut offset = 0;
    while offset < data.len() {
        let at = Location::Offset {
            offset,
            decompressed,
        };
        let (len, n) = read_varint(&data[offset..]).map_err(|cut| TraceFormatError::BadLength {
            format: PB,
            at,
            why: if cut {
                "the data ends inside the length prefix (cut short)"
            } else {
                "not a valid varint"
            },
        })?;
        if len > MAX_FRAME as u64 {
            return Err(TraceFormatError::BadLength {
                format: PB,
                at,
                why: "it announces a frame over 16 MiB (corrupt data?)",
            });
        }
        let len = len as usize;
        let body = offset + n;
        let available = data.len() - body;
        if len > available {
            return Err(TraceFormatError::Truncated {
                format: PB,
                at,
                needed: len as u64,
                available,
            });
        }
        let frame = &data[body..body + len];
        let bad = |message, e: prost::DecodeError| TraceFormatError::BadFrame {
            format: PB,
            at,
            message,
            reason: e.to_string(),
        };
        // A TraceEvent's field 1 is a varint (tag byte 0x08); 0x0a (field 1, length-delimited)
        // starts a TraceEventBatch, as RemoteTracer streams them.
        if frame.first() == Some(&0x0a) {
            let batch =
                pb::TraceEventBatch::decode(frame).map_err(|e| bad("TraceEventBatch", e))?;
            for ev in batch.batch {
                sink(at, ev)?;
            }
        } else {
            sink(
                at,
                pb::TraceEvent::decode(frame).map_err(|e| bad("TraceEvent", e))?,
            )?;
        }
        offset = body + len;
    }
    Ok(())
}

fn decode_json(data: &[u8], sink: Sink<'_>) -> Result<(), TraceFormatError> {
    let text = std::str::from_utf8(data).map_err(|e| {
        let line = 1 + data[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        TraceFormatError::BadJson {
            format: JSON,
            at: Location::Line(line),
            reason: format!("not UTF-8: {e}"),
        }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, line) in text.split('\n').enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = Location::Line(i + 1);
        let v: Value = serde_json::from_str(line).map_err(|e| TraceFormatError::BadJson {
            format: JSON,
            at,
            reason: e.to_string(),
        })?;
        sink(
            at,
            JsonEvent {
                at,
                event: "TraceEvent",
            }
            .event(&v)?,
        )?;
    }
    Ok(())
}

/// Reads one JSON `TraceEvent`, as Go's `encoding/json` writes it (and, leniently, as
/// protojson writes it: enum names, int64 as strings).
struct JsonEvent {
    at: Location,
    event: &'static str,
}

type JResult<T> = Result<T, TraceFormatError>;

impl JsonEvent {
    fn invalid(&self, field: &'static str, reason: impl Into<String>) -> TraceFormatError {
        TraceFormatError::InvalidField {
            format: JSON,
            at: self.at,
            event: self.event,
            field,
            reason: reason.into(),
        }
    }

    fn object<'v>(
        &self,
        v: &'v Value,
        field: &'static str,
    ) -> JResult<Option<&'v serde_json::Map<String, Value>>> {
        match v {
            Value::Null => Ok(None),
            Value::Object(o) => Ok(Some(o)),
            other => Err(self.invalid(field, format!("expected an object, found {other}"))),
        }
    }

    fn get<'v>(o: &'v serde_json::Map<String, Value>, key: &str) -> &'v Value {
        o.get(key).unwrap_or(&Value::Null)
    }

    fn bytes(
        &self,
        o: &serde_json::Map<String, Value>,
        key: &'static str,
    ) -> JResult<Option<Vec<u8>>> {
        match Self::get(o, key) {
            Value::Null => Ok(None),
            Value::String(s) => BASE64
                .decode(s)
                .map(Some)
                .map_err(|e| self.invalid(key, format!("not base64: {e}"))),
            other => Err(self.invalid(key, format!("expected a base64 string, found {other}"))),
        }
    }

    fn byte_list(
        &self,
        o: &serde_json::Map<String, Value>,
        key: &'static str,
    ) -> JResult<Vec<Vec<u8>>> {
        match Self::get(o, key) {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::Null => Ok(Vec::new()),
                    Value::String(s) => BASE64
                        .decode(s)
                        .map_err(|e| self.invalid(key, format!("not base64: {e}"))),
                    other => {
                        Err(self.invalid(key, format!("expected base64 strings, found {other}")))
                    }
                })
                .collect(),
            other => Err(self.invalid(key, format!("expected a list, found {other}"))),
        }
    }

    fn string(
        &self,
        o: &serde_json::Map<String, Value>,
        key: &'static str,
    ) -> JResult<Option<String>> {
        match Self::get(o, key) {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(self.invalid(key, format!("expected a string, found {other}"))),
        }
    }

    /// `topic`, or the older schema's `topics` list (its last entry, as protobuf decodes a
    /// repeated field into an optional one).
    fn topic(&self, o: &serde_json::Map<String, Value>) -> JResult<Option<String>> {
        if let Some(t) = self.string(o, "topic")? {
            return Ok(Some(t));
        }
        match Self::get(o, "topics") {
            Value::Null => Ok(None),
            Value::Array(items) => match items.last() {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => {
                    Err(self.invalid("topics", format!("expected strings, found {other}")))
                }
            },
            other => Err(self.invalid("topics", format!("expected a list, found {other}"))),
        }
    }

    fn int(&self, v: &Value, field: &'static str) -> JResult<Option<i64>> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.invalid(field, format!("{n} is not a 64-bit integer"))),
            Value::String(s) => s
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(field, format!("{s:?} is not an integer"))),
            other => Err(self.invalid(field, format!("expected an integer, found {other}"))),
        }
    }

    fn list<T>(
        &self,
        o: &serde_json::Map<String, Value>,
        key: &'static str,
        item: impl Fn(&Self, &serde_json::Map<String, Value>) -> JResult<T>,
    ) -> JResult<Vec<T>> {
        match Self::get(o, key) {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .filter_map(|v| self.object(v, key).transpose())
                .map(|o| item(self, o?))
                .collect(),
            other => Err(self.invalid(key, format!("expected a list, found {other}"))),
        }
    }

    fn event(mut self, v: &Value) -> JResult<pb::TraceEvent> {
        let o = match v {
            Value::Object(o) => o,
            other => {
                return Err(TraceFormatError::BadJson {
                    format: JSON,
                    at: self.at,
                    reason: format!("expected a JSON object, found {other}"),
                });
            }
        };
        let ty = match Self::get(o, "type") {
            Value::Null => None,
            Value::String(s) if s.parse::<i64>().is_err() => {
                let t = match s.as_str() {
                    "ADD_PEER" => Some(Type::OnNewOutboundStream),
                    "REMOVE_PEER" => Some(Type::OnClosedOutboundStream),
                    other => Type::from_str_name(other),
                };
                Some(t.ok_or_else(|| TraceFormatError::UnknownEventType {
                    format: JSON,
                    at: self.at,
                    value: format!("{s:?}"),
                })? as i32)
            }
            other => {
                let n = self.int(other, "type")?.expect("not null");
                Some(
                    i32::try_from(n).map_err(|_| TraceFormatError::UnknownEventType {
                        format: JSON,
                        at: self.at,
                        value: n.to_string(),
                    })?,
                )
            }
        };
        if let Some(name) = ty.and_then(|t| Type::try_from(t).ok()) {
            self.event = name.as_str_name();
        }
        let sub = |keys: &[&'static str]| -> JResult<Option<&serde_json::Map<String, Value>>> {
            for &k in keys {
                if let Some(o) = self.object(Self::get(o, k), k)? {
                    return Ok(Some(o));
                }
            }
            Ok(None)
        };
        let rpc_meta =
            |m: Option<&serde_json::Map<String, Value>>| -> JResult<Option<te::RpcMeta>> {
                let Some(m) = m else { return Ok(None) };
                let control = match self.object(Self::get(m, "control"), "control")? {
                    None => None,
                    Some(c) => Some(te::ControlMeta {
                        ihave: self.list(c, "ihave", |s, x| {
                            Ok(te::ControlIHaveMeta {
                                topic: s.string(x, "topic")?,
                                message_i_ds: s.byte_list(x, "messageIDs")?,
                            })
                        })?,
                        iwant: self.list(c, "iwant", |s, x| {
                            Ok(te::ControlIWantMeta {
                                message_i_ds: s.byte_list(x, "messageIDs")?,
                            })
                        })?,
                        graft: self.list(c, "graft", |s, x| {
                            Ok(te::ControlGraftMeta {
                                topic: s.string(x, "topic")?,
                            })
                        })?,
                        prune: self.list(c, "prune", |s, x| {
                            Ok(te::ControlPruneMeta {
                                topic: s.string(x, "topic")?,
                                peers: s.byte_list(x, "peers")?,
                            })
                        })?,
                        idontwant: self.list(c, "idontwant", |s, x| {
                            Ok(te::ControlIDontWantMeta {
                                message_i_ds: s.byte_list(x, "messageIDs")?,
                            })
                        })?,
                    }),
                };
                Ok(Some(te::RpcMeta {
                    messages: self.list(m, "messages", |s, x| {
                        Ok(te::MessageMeta {
                            message_id: s.bytes(x, "messageID")?,
                            topic: s.topic(x)?,
                        })
                    })?,
                    subscription: self.list(m, "subscription", |s, x| {
                        Ok(te::SubMeta {
                            subscribe: match Self::get(x, "subscribe") {
                                Value::Null => None,
                                Value::Bool(b) => Some(*b),
                                other => {
                                    return Err(s.invalid(
                                        "subscribe",
                                        format!("expected a boolean, found {other}"),
                                    ));
                                }
                            },
                            topic: s.string(x, "topic")?,
                        })
                    })?,
                    control,
                }))
            };
        let meta_of = |m: &serde_json::Map<String, Value>| -> JResult<Option<te::RpcMeta>> {
            rpc_meta(self.object(Self::get(m, "meta"), "meta")?)
        };
        Ok(pb::TraceEvent {
            r#type: ty,
            peer_id: self.bytes(o, "peerID")?,
            timestamp: self.int(Self::get(o, "timestamp"), "timestamp")?,
            publish_message: match sub(&["publishMessage"])? {
                None => None,
                Some(m) => Some(te::PublishMessage {
                    message_id: self.bytes(m, "messageID")?,
                    topic: self.topic(m)?,
                }),
            },
            reject_message: match sub(&["rejectMessage"])? {
                None => None,
                Some(m) => Some(te::RejectMessage {
                    message_id: self.bytes(m, "messageID")?,
                    received_from: self.bytes(m, "receivedFrom")?,
                    reason: self.string(m, "reason")?,
                    topic: self.topic(m)?,
                }),
            },
            duplicate_message: match sub(&["duplicateMessage"])? {
                None => None,
                Some(m) => Some(te::DuplicateMessage {
                    message_id: self.bytes(m, "messageID")?,
                    received_from: self.bytes(m, "receivedFrom")?,
                    topic: self.topic(m)?,
                }),
            },
            deliver_message: match sub(&["deliverMessage"])? {
                None => None,
                Some(m) => Some(te::DeliverMessage {
                    message_id: self.bytes(m, "messageID")?,
                    topic: self.topic(m)?,
                    received_from: self.bytes(m, "receivedFrom")?,
                }),
            },
            on_new_outbound_stream: match sub(&["onNewOutboundStream", "addPeer"])? {
                None => None,
                Some(m) => Some(te::OnNewOutboundStream {
                    peer_id: self.bytes(m, "peerID")?,
                    proto: self.string(m, "proto")?,
                }),
            },
            on_closed_outbound_stream: match sub(&["onClosedOutboundStream", "removePeer"])? {
                None => None,
                Some(m) => Some(te::OnClosedOutboundStream {
                    peer_id: self.bytes(m, "peerID")?,
                }),
            },
            recv_rpc: match sub(&["recvRPC"])? {
                None => None,
                Some(m) => Some(te::RecvRpc {
                    received_from: self.bytes(m, "receivedFrom")?,
                    meta: meta_of(m)?,
                }),
            },
            send_rpc: match sub(&["sendRPC"])? {
                None => None,
                Some(m) => Some(te::SendRpc {
                    send_to: self.bytes(m, "sendTo")?,
                    meta: meta_of(m)?,
                }),
            },
            drop_rpc: match sub(&["dropRPC"])? {
                None => None,
                Some(m) => Some(te::DropRpc {
                    send_to: self.bytes(m, "sendTo")?,
                    meta: meta_of(m)?,
                }),
            },
            join: match sub(&["join"])? {
                None => None,
                Some(m) => Some(te::Join {
                    topic: self.string(m, "topic")?,
                }),
            },
            leave: match sub(&["leave"])? {
                None => None,
                Some(m) => Some(te::Leave {
                    topic: self.string(m, "topic")?,
                }),
            },
            graft: match sub(&["graft"])? {
                None => None,
                Some(m) => Some(te::Graft {
                    peer_id: self.bytes(m, "peerID")?,
                    topic: self.string(m, "topic")?,
                }),
            },
            prune: match sub(&["prune"])? {
                None => None,
                Some(m) => Some(te::Prune {
                    peer_id: self.bytes(m, "peerID")?,
                    topic: self.string(m, "topic")?,
                }),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    use super::*;
    use crate::export::sample::{self, ODD_TOPIC};

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    /// Start offsets of the length-delimited frames, walked by hand.
    fn frame_starts(data: &[u8]) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut off = 0;
        while off < data.len() {
            starts.push(off);
            let (len, n) = read_varint(&data[off..]).unwrap();
            off += n + len as usize;
        }
        assert_eq!(off, data.len());
        starts
    }

    #[test]
    fn go_string_escaping() {
        let mut s = String::new();
        go_quote(
            &mut s,
            "a\"b\\c\nd\re\tf\u{8}\u{c}\u{1}\u{1f}<>&\u{2028}\u{2029}é☃\u{7f}",
        );
        assert_eq!(
            s,
            r#""a\"b\\c\nd\re\tf\b\f\u0001\u001f\u003c\u003e\u0026\u2028\u2029é☃"#.to_string()
                + "\u{7f}\""
        );
    }

    #[test]
    fn json_line_is_what_go_writes() {
        // Built by hand from the gogo struct's json tags and encoding/json's rules.
        let ev = pb::TraceEvent {
            r#type: Some(Type::DeliverMessage as i32),
            peer_id: Some(vec![0, 1, 2, 0xff]),
            timestamp: Some(1_700_000_000_123_456_789),
            deliver_message: Some(te::DeliverMessage {
                message_id: Some(vec![0, 0, 0, 0, 0, 0, 0, 7]),
                topic: Some("a<b".into()),
                received_from: Some(vec![9]),
            }),
            ..Default::default()
        };
        assert_eq!(
            json_line(&ev),
            r#"{"type":3,"peerID":"AAEC/w==","timestamp":1700000000123456789,"deliverMessage":{"messageID":"AAAAAAAAAAc=","topic":"a\u003cb","receivedFrom":"CQ=="}}"#
        );
        // PUBLISH_MESSAGE is type 0 and still written (a non-nil pointer); an empty topic too.
        let ev = pb::TraceEvent {
            r#type: Some(0),
            peer_id: Some(vec![1]),
            timestamp: Some(5),
            publish_message: Some(te::PublishMessage {
                message_id: Some(vec![1]),
                topic: Some(String::new()),
            }),
            ..Default::default()
        };
        assert_eq!(
            json_line(&ev),
            r#"{"type":0,"peerID":"AQ==","timestamp":5,"publishMessage":{"messageID":"AQ==","topic":""}}"#
        );
        assert_eq!(json_line(&pb::TraceEvent::default()), "{}");
    }

    #[test]
    fn export_maps_every_event() {
        let trace = sample::trace();
        let evs = events(&trace);
        let peer = |n: u32| crate::export::peer_id(&trace, NodeId(n)).to_bytes();
        // Node 3 has no recorded peer id: the export derives the one of seed 42.
        assert_eq!(
            peer(3),
            crate::node::keypair(42, NodeId(3))
                .public()
                .to_peer_id()
                .to_bytes()
        );
        let mapped: usize = trace
            .events
            .iter()
            .filter(|e| {
                e.node.is_some()
                    && !matches!(
                        e.kind,
                        EventKind::NodeUp
                            | EventKind::NodeDown { .. }
                            | EventKind::LinkChanged { .. }
                            | EventKind::Annotation { .. }
                    )
            })
            .count();
        assert_eq!(evs.len(), mapped);
        let types: Vec<Type> = evs.iter().map(|e| e.r#type()).collect();
        assert_eq!(types.iter().filter(|t| **t == Type::Join).count(), 6);
        assert_eq!(
            types
                .iter()
                .filter(|t| **t == Type::OnNewOutboundStream)
                .count(),
            6
        );
        let deliver = evs
            .iter()
            .find(|e| e.r#type() == Type::DeliverMessage)
            .unwrap();
        assert_eq!(deliver.peer_id.as_ref().unwrap(), &peer(1));
        assert_eq!(
            deliver.timestamp,
            Some(1_700_000_000_123_456_789 + 50_000_017)
        );
        let d = deliver.deliver_message.as_ref().unwrap();
        assert_eq!(d.message_id.as_deref(), Some(&[0u8; 8][..]));
        assert_eq!(d.received_from.as_ref().unwrap(), &peer(0));
        assert_eq!(d.topic.as_deref(), Some("blocks"));
        let publish7 = evs
            .iter()
            .find(|e| {
                e.publish_message
                    .as_ref()
                    .is_some_and(|p| p.message_id.as_deref() == Some(&7u64.to_be_bytes()[..]))
            })
            .unwrap();
        assert_eq!(publish7.peer_id.as_ref().unwrap(), &peer(2));
        assert_eq!(
            publish7.publish_message.as_ref().unwrap().topic.as_deref(),
            Some(ODD_TOPIC)
        );
        let stream = evs
            .iter()
            .find_map(|e| e.on_new_outbound_stream.as_ref())
            .unwrap();
        assert_eq!(stream.proto.as_deref(), Some(GOSSIPSUB_PROTOCOL));
    }

    #[test]
    fn protobuf_json_and_gzip_decode_to_the_same_events() {
        let trace = sample::trace();
        let pb = to_protobuf(&trace);
        let want = events(&trace);
        assert_eq!(read_events(&pb).unwrap(), want);
        assert_eq!(read_events(&to_protobuf_gz(&trace)).unwrap(), want);
        assert_eq!(read_events(to_json(&trace).as_bytes()).unwrap(), want);
        assert_eq!(read_events(&gz(to_json(&trace).as_bytes())).unwrap(), want);
        // Each frame is one varint length and one TraceEvent, as protoio writes them.
        assert_eq!(frame_starts(&pb).len(), want.len());
        // Every JSON line re-encodes to itself.
        for line in to_json(&trace).lines() {
            let ev = read_events(line.as_bytes()).unwrap().remove(0);
            assert_eq!(json_line(&ev), line);
        }
    }

    #[test]
    fn import_rebuilds_deliveries() {
        let trace = sample::trace();
        let imported = import_named(&to_protobuf(&trace), "back").unwrap();
        let back = &imported.trace;
        assert_eq!(imported.summary.source, SourceFormat::Protobuf);
        assert_eq!(imported.summary.events, events(&trace).len());
        assert!(
            imported.summary.skipped.is_empty(),
            "{:?}",
            imported.summary
        );
        assert_eq!(imported.summary.inferred_senders, 0);
        assert_eq!(back.meta.test, "back");
        assert_eq!(back.meta.backend, "imported");
        assert_eq!(back.meta.node_software, "go-libp2p-pubsub (imported)");
        // The earliest exported event is the first JOIN, at 2 ms.
        assert_eq!(
            back.meta.started_at_unix_ns,
            trace.meta.started_at_unix_ns + 2_000_000
        );
        assert_eq!(back.topology.nodes.len(), 4);
        // Map imported nodes back to the original ones by peer id.
        let orig_of = |n: NodeId| -> NodeId {
            let pid = back.topology.nodes[n.index()].peer_id.clone().unwrap();
            (0..4)
                .map(NodeId)
                .find(|&o| crate::export::peer_id(&trace, o).to_base58() == pid)
                .unwrap()
        };
        for spec in &back.topology.nodes {
            let pid = spec.peer_id.as_ref().unwrap();
            assert_eq!(
                spec.name,
                format!("{}*{}", &pid[..2], &pid[pid.len() - 6..])
            );
        }
        assert_eq!(back.messages.len(), 2);
        for (m, o) in back.messages.iter().zip(&trace.messages) {
            assert_eq!(m.id, o.id);
            assert_eq!(m.topic, o.topic);
            assert_eq!(orig_of(m.origin), o.origin);
            let mut expected: Vec<NodeId> = m.expected.iter().map(|&n| orig_of(n)).collect();
            expected.sort();
            assert_eq!(expected, o.expected, "expected nodes of {}", o.id);
            let (d, od) = (back.delivery(m.id).unwrap(), trace.delivery(o.id).unwrap());
            assert_eq!(d.reach(), od.reach());
            let lat: BTreeMap<NodeId, _> = d
                .latencies()
                .into_iter()
                .map(|(n, l)| (orig_of(n), l))
                .collect();
            assert_eq!(lat, od.latencies());
            let dups: BTreeMap<NodeId, usize> = d
                .duplicates_per_node()
                .into_iter()
                .map(|(n, c)| (orig_of(n), c))
                .collect();
            assert_eq!(dups, od.duplicates_per_node());
            let tree: BTreeMap<NodeId, NodeId> = d
                .propagation_tree()
                .into_iter()
                .map(|(a, b)| (orig_of(a), orig_of(b)))
                .collect();
            assert_eq!(tree, od.propagation_tree());
        }
        // Links: the pairs seen connected, with a zero shape.
        let pairs: BTreeSet<(NodeId, NodeId)> = back
            .topology
            .links
            .iter()
            .map(|l| {
                let (a, b) = (orig_of(l.a), orig_of(l.b));
                assert_eq!(l.a_to_b, LinkShape::default());
                (a.min(b), a.max(b))
            })
            .collect();
        let want: BTreeSet<(NodeId, NodeId)> = [(0, 1), (1, 2), (2, 3)]
            .map(|(a, b)| (NodeId(a), NodeId(b)))
            .into();
        assert_eq!(pairs, want);
        // JSON and gzip give the same trace.
        let from_json = import_named(to_json(&trace).as_bytes(), "back").unwrap();
        assert_eq!(from_json.summary.source, SourceFormat::Json);
        assert_eq!(&from_json.trace, back);
        let from_gz = import_named(&to_protobuf_gz(&trace), "back").unwrap();
        assert_eq!(from_gz.summary.source, SourceFormat::ProtobufGzip);
        assert_eq!(&from_gz.trace, back);
        // And exporting the import gives the same TraceEvents again.
        let (again, want) = (events(back), events(&trace));
        assert_eq!(again.len(), want.len());
        for (i, (a, w)) in again.iter().zip(&want).enumerate() {
            assert_eq!(a, w, "event {i}");
        }
    }

    fn ev(ty: Type, peer: u8, t: i64) -> pb::TraceEvent {
        let mut e = pb::TraceEvent {
            peer_id: Some(peer_bytes(peer)),
            timestamp: Some(t),
            ..Default::default()
        };
        e.set_type(ty);
        e
    }

    fn peer_bytes(i: u8) -> Vec<u8> {
        crate::node::keypair(99, NodeId(u32::from(i)))
            .public()
            .to_peer_id()
            .to_bytes()
    }

    fn delimited(evs: &[pb::TraceEvent]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in evs {
            e.encode_length_delimited(&mut out).unwrap();
        }
        out
    }

    /// A go-style trace: the publisher delivers its own message; a receiver's DELIVER lacks
    /// receivedFrom (older traces) and a RECV_RPC says who sent it; no JOIN at all; a
    /// message id that is not 8 bytes; a delivery of a message published elsewhere.
    #[test]
    fn import_of_a_go_style_trace() {
        let id_a = b"not eight bytes".to_vec();
        let id_b = 3u64.to_be_bytes().to_vec();
        let mut evs = Vec::new();
        let mut publish = ev(Type::PublishMessage, 0, 1000);
        publish.publish_message = Some(te::PublishMessage {
            message_id: Some(id_a.clone()),
            topic: Some("t".into()),
        });
        evs.push(publish);
        let mut self_deliver = ev(Type::DeliverMessage, 0, 1001);
        self_deliver.deliver_message = Some(te::DeliverMessage {
            message_id: Some(id_a.clone()),
            topic: Some("t".into()),
            received_from: Some(peer_bytes(0)),
        });
        evs.push(self_deliver);
        let mut rpc = ev(Type::RecvRpc, 2, 1500);
        rpc.recv_rpc = Some(te::RecvRpc {
            received_from: Some(peer_bytes(1)),
            meta: Some(te::RpcMeta {
                messages: vec![te::MessageMeta {
                    message_id: Some(id_a.clone()),
                    topic: Some("t".into()),
                }],
                ..Default::default()
            }),
        });
        evs.push(rpc);
        let mut deliver = ev(Type::DeliverMessage, 2, 1600);
        deliver.deliver_message = Some(te::DeliverMessage {
            message_id: Some(id_a.clone()),
            topic: None,
            received_from: None,
        });
        evs.push(deliver);
        let mut deliver = ev(Type::DeliverMessage, 1, 1200);
        deliver.deliver_message = Some(te::DeliverMessage {
            message_id: Some(id_a.clone()),
            topic: Some("t".into()),
            received_from: Some(peer_bytes(0)),
        });
        evs.push(deliver);
        let mut unknown = ev(Type::DeliverMessage, 1, 1700);
        unknown.deliver_message = Some(te::DeliverMessage {
            message_id: Some(id_b.clone()),
            topic: Some("t".into()),
            received_from: Some(peer_bytes(0)),
        });
        evs.push(unknown);
        evs.push(ev(Type::SendRpc, 1, 1300));
        let mut publish = ev(Type::PublishMessage, 1, 2000);
        publish.publish_message = Some(te::PublishMessage {
            message_id: Some(7u64.to_be_bytes().to_vec()),
            topic: Some("t".into()),
        });
        evs.push(publish);
        // Events from different peers, out of time order, as traced files interleave them.
        let imported = import_named(&delimited(&evs), "go").unwrap();
        let t = &imported.trace;
        let s = &imported.summary;
        assert_eq!(s.events, 8);
        assert_eq!(s.imported, 4, "{s:?}");
        assert_eq!(s.inferred_senders, 1);
        assert_eq!(s.skipped["RECV_RPC"], 1);
        assert_eq!(s.skipped["SEND_RPC"], 1);
        assert_eq!(
            s.skipped["DELIVER_MESSAGE at the publisher of its own message"],
            1
        );
        assert_eq!(
            s.skipped["DELIVER_MESSAGE of a message whose publish is not in the trace"],
            1
        );
        // Nodes in order of first appearance (in time order): peer 0, peer 1, peer 2.
        let node = |i: u8| {
            let pid = PeerId::from_bytes(&peer_bytes(i)).unwrap().to_base58();
            t.topology
                .nodes
                .iter()
                .find(|s| s.peer_id.as_deref() == Some(&pid))
                .unwrap()
                .id
        };
        assert_eq!(
            [node(0), node(1), node(2)],
            [NodeId(0), NodeId(1), NodeId(2)]
        );
        // The 15-byte id got a number the 8-byte id 7 does not use.
        assert_eq!(t.messages[0].id, MsgId(0));
        assert_eq!(t.messages[1].id, MsgId(7));
        assert_eq!(t.meta.started_at_unix_ns, 1000);
        // No JOIN: the expected nodes are those that delivered.
        assert_eq!(t.messages[0].expected, vec![node(1), node(2)]);
        assert_eq!(t.messages[1].expected, Vec::<NodeId>::new());
        let d = t.delivery(MsgId(0)).unwrap();
        assert_eq!(d.reach(), 1.0);
        // n2's sender came from the RECV_RPC.
        assert_eq!(d.propagation_tree()[&node(2)], node(1));
        assert_eq!(
            d.latency_of(node(2)),
            Some(std::time::Duration::from_nanos(600))
        );
    }

    #[test]
    fn batches_and_old_json_names() {
        let mut a = ev(Type::OnNewOutboundStream, 0, 10);
        a.on_new_outbound_stream = Some(te::OnNewOutboundStream {
            peer_id: Some(peer_bytes(1)),
            proto: Some("/meshsub/1.1.0".into()),
        });
        let mut b = ev(Type::Join, 1, 11);
        b.join = Some(te::Join {
            topic: Some("x".into()),
        });
        let batch = pb::TraceEventBatch {
            batch: vec![a.clone(), b.clone()],
        };
        let mut data = Vec::new();
        batch.encode_length_delimited(&mut data).unwrap();
        a.encode_length_delimited(&mut data).unwrap();
        assert_eq!(read_events(&data).unwrap(), vec![a.clone(), b, a.clone()]);
        // The older schema's JSON: ADD_PEER named, addPeer object, topics lists.
        let b64 = |i| BASE64.encode(peer_bytes(i));
        let old = format!(
            "{{\"type\":\"ADD_PEER\",\"peerID\":\"{}\",\"timestamp\":\"10\",\"addPeer\":{{\"peerID\":\"{}\",\"proto\":\"/meshsub/1.1.0\"}}}}\n\
             {{\"type\":0,\"peerID\":\"{}\",\"timestamp\":12,\"publishMessage\":{{\"messageID\":\"AAAAAAAAAAE=\",\"topics\":[\"x\"]}}}}\n",
            b64(0),
            b64(1),
            b64(0)
        );
        let got = read_events(old.as_bytes()).unwrap();
        assert_eq!(got[0], a);
        assert_eq!(
            got[1].publish_message.as_ref().unwrap().topic.as_deref(),
            Some("x")
        );
    }

    #[test]
    fn a_protobuf_frame_of_123_bytes_is_not_taken_for_json() {
        let mut e = ev(Type::Join, 0, 1);
        let mut pad = 0;
        while e.encoded_len() < 123 {
            pad += 1;
            e.join = Some(te::Join {
                topic: Some("j".repeat(pad)),
            });
        }
        assert_eq!(e.encoded_len(), 123);
        let data = delimited(&[e.clone()]);
        assert_eq!(data[0], b'{');
        assert_eq!(read_events(&data).unwrap(), vec![e]);
    }

    #[test]
    fn cut_short_names_the_frame_offset() {
        let data = to_protobuf(&sample::trace());
        let starts = frame_starts(&data);
        let last = *starts.last().unwrap();
        for cut in [last + 2, data.len() - 1] {
            match import(&data[..cut]) {
                Err(TraceFormatError::Truncated {
                    at:
                        Location::Offset {
                            offset,
                            decompressed: false,
                        },
                    needed,
                    available,
                    ..
                }) => {
                    assert_eq!(offset, last);
                    assert_eq!(available, cut - last - 1);
                    assert_eq!(needed as usize, data.len() - last - 1);
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        let mid = starts[starts.len() / 2] + 3;
        let err = import(&data[..mid]).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("byte offset {}", starts[starts.len() / 2])),
            "{err}"
        );
        // Compressed and cut: a gzip error, not a panic or a silent partial import.
        let gz = to_protobuf_gz(&sample::trace());
        assert!(matches!(
            import(&gz[..gz.len() / 2]),
            Err(TraceFormatError::Gzip { .. })
        ));
        assert!(matches!(import(b""), Err(TraceFormatError::Empty { .. })));
        assert!(matches!(
            import(b"\n\n"),
            Err(TraceFormatError::Empty { .. })
        ));
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let json = |s: &str| import(s.as_bytes()).unwrap_err();
        let p = BASE64.encode(peer_bytes(0));
        assert!(matches!(
            json(&format!(
                "{{\"type\":10,\"peerID\":\"{p}\",\"timestamp\":1,\"leave\":{{\"topic\":\"a\"}}}}\n{{\"type\":99}}"
            )),
            TraceFormatError::UnknownEventType {
                at: Location::Line(2),
                ..
            }
        ));
        let e = json(&format!(
            "\n{{\"type\":9,\"peerID\":\"{p}\",\"timestamp\":1,\"join\":{{\"topic\":\"a\"}}}}\n{{\"type\":9, \"peerID\":\"!!\"}}"
        ));
        assert!(
            matches!(
                e,
                TraceFormatError::InvalidField {
                    at: Location::Line(3),
                    field: "peerID",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = json(
            "{\"type\":9, \"peerID\":\"AQ==\", \"timestamp\":1, \"join\":{\"topic\":\"a\"}}\n{\"type\":",
        );
        assert!(
            matches!(
                e,
                TraceFormatError::BadJson {
                    at: Location::Line(2),
                    ..
                }
            ),
            "{e:?}"
        );
        let e = json("{\"type\":3,\"peerID\":\"AQ==\",\"timestamp\":1}");
        assert!(
            matches!(
                e,
                TraceFormatError::MissingField {
                    field: "deliverMessage",
                    event: "DELIVER_MESSAGE",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = json("{\"type\":9,\"timestamp\":1,\"join\":{\"topic\":\"a\"}}");
        assert!(
            matches!(
                e,
                TraceFormatError::MissingField {
                    field: "peerID",
                    ..
                }
            ),
            "{e:?}"
        );
        let e =
            json("{\"type\":9,\"peerID\":\"AQ==\",\"timestamp\":-5,\"join\":{\"topic\":\"a\"}}");
        assert!(
            matches!(
                e,
                TraceFormatError::InvalidField {
                    field: "timestamp",
                    ..
                }
            ),
            "{e:?}"
        );
        // A frame that is not a TraceEvent.
        let e = import(&[3, 0x08, 0xff, 0xff]).unwrap_err();
        assert!(
            matches!(
                e,
                TraceFormatError::BadFrame {
                    at: Location::Offset { offset: 0, .. },
                    ..
                }
            ),
            "{e:?}"
        );
        // A length prefix of 11 bytes.
        let e = import(&[0xff; 12]).unwrap_err();
        assert!(matches!(e, TraceFormatError::BadLength { .. }), "{e:?}");
        // An absurd length.
        let e = import(&[0xff, 0xff, 0xff, 0xff, 0x7f, 0]).unwrap_err();
        assert!(matches!(e, TraceFormatError::BadLength { .. }), "{e:?}");
        // Unknown type in protobuf.
        let mut unknown = ev(Type::Join, 0, 1);
        unknown.r#type = Some(42);
        let e = import(&delimited(&[unknown])).unwrap_err();
        assert!(
            matches!(e, TraceFormatError::UnknownEventType { ref value, .. } if value == "42"),
            "{e:?}"
        );
    }

    /// Seeded random damage to every input form: import returns a result, never panics.
    #[test]
    fn import_never_panics_on_damaged_input() {
        let trace = sample::trace();
        let inputs = [
            to_protobuf(&trace),
            to_protobuf_gz(&trace),
            to_json(&trace).into_bytes(),
        ];
        let mut rng = StdRng::seed_from_u64(2024);
        let mut errors = 0;
        for round in 0..3000 {
            let mut data = inputs[round % inputs.len()].clone();
            for _ in 0..rng.random_range(1..6) {
                if data.is_empty() {
                    break;
                }
                let i = rng.random_range(0..data.len());
                match rng.random_range(0..5) {
                    0 => data[i] = rng.random(),
                    1 => data[i] ^= 1 << rng.random_range(0..8),
                    2 => data.truncate(i),
                    3 => {
                        data.remove(i);
                    }
                    _ => data.insert(i, rng.random()),
                }
            }
            if import(&data).is_err() {
                errors += 1;
            }
        }
        // Damage is detected most of the time (some flips only change a timestamp or name).
        assert!(
            errors > 1000,
            "only {errors} of 3000 damaged inputs were refused"
        );
    }
}
