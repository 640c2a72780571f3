//! Chrome / Perfetto trace-event JSON: open the file in <https://ui.perfetto.dev> (or
//! `chrome://tracing`) to see the run on a timeline, with arrows along which each message
//! spread.
//!
//! The document is `{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}`,
//! `otherData` holding the trace's metadata as strings. Timestamps (`ts`) are microseconds
//! since the start of the run, fractional (nanosecond precision); the absolute start is in
//! `otherData.started_at`.
//!
//! Layout:
//! - one process per node, `pid` = node number + 1 (pid 0 is special in Perfetto), named by a
//!   `process_name` metadata event (`ph:"M"`) and ordered by node number
//!   (`process_sort_index`);
//! - in each process, thread `tid` = `pid` ("events") carries the node's instant events
//!   (`ph:"i"`): node up and down (process-scoped, `s:"p"`), peer connections, subscriptions,
//!   grafts and prunes, link changes and annotations (thread-scoped, `s:"t"`), each with
//!   `args` saying what happened;
//! - one more thread per message the node had (`msg <id>`): the publish at the origin and the
//!   first delivery elsewhere are 100 µs slices (`ph:"X"`, `args` with the sender and the
//!   latency), duplicates are instants on the same thread;
//! - for each first delivery, a flow arrow from the sender's slice to the receiver's: a flow
//!   start (`ph:"s"`) inside the sender's slice and a flow end (`ph:"f"`, `bp:"e"`) inside
//!   the receiver's, with the same `id`, `cat` and `name` (the legacy JSON flow events, which
//!   both Perfetto and the Chrome viewer bind to the enclosing slice; Perfetto's newer
//!   `bind_id`/`flow_in`/`flow_out` fields allow one arrow per slice end, while a sender
//!   forwards to many peers). Slices are used rather than instants because Perfetto binds
//!   flows only to slices.
//! - network-wide events (partitions, heals, annotations without a node) are global instants
//!   (`s:"g"`).
//!
//! Every string from the trace goes through `serde_json`, so any node name, topic or
//! annotation gives valid JSON.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::{PeerIds, all_nodes, node_names};
use crate::topology::NodeId;
use crate::trace::{EventKind, MsgId, Trace};

/// Length of the slice of a publish or first delivery, in microseconds.
pub const SLICE_US: f64 = 100.0;
/// Where inside a slice its flow events sit, in microseconds after its start.
const FLOW_OFFSET_US: f64 = 1.0;

fn us(t_ns: u64) -> f64 {
    t_ns as f64 / 1000.0
}

fn pid(n: NodeId) -> u64 {
    u64::from(n.0) + 1
}

/// The trace as a Chrome / Perfetto trace-event JSON document (see the module docs).
pub fn to_json(trace: &Trace) -> String {
    serde_json::to_string(&document(trace)).expect("JSON values always serialise")
}

/// The trace-event document as a JSON value.
pub fn document(trace: &Trace) -> Value {
    let names = node_names(trace);
    let peers = PeerIds::new(trace);
    let name = |n: NodeId| names.get(&n).cloned().unwrap_or_else(|| n.to_string());
    let nodes = all_nodes(trace);
    let mut out: Vec<Value> = Vec::new();
    for &n in &nodes {
        out.push(
            json!({"ph": "M", "name": "process_name", "pid": pid(n), "tid": pid(n),
            "args": {"name": name(n)}}),
        );
        out.push(
            json!({"ph": "M", "name": "process_sort_index", "pid": pid(n), "tid": pid(n),
            "args": {"sort_index": n.0}}),
        );
        out.push(
            json!({"ph": "M", "name": "thread_name", "pid": pid(n), "tid": pid(n),
            "args": {"name": "events"}}),
        );
        out.push(
            json!({"ph": "M", "name": "thread_sort_index", "pid": pid(n), "tid": pid(n),
            "args": {"sort_index": 0}}),
        );
    }
    // Message threads get tids above every pid, so no tid is reused across processes.
    let first_msg_tid = nodes.last().map_or(1, |&n| pid(n) + 1);
    let msg_rank: HashMap<MsgId, usize> = trace
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i))
        .collect();
    let info: HashMap<MsgId, _> = trace.messages.iter().map(|m| (m.id, m)).collect();
    let mut threads = Threads {
        tids: BTreeMap::new(),
        first: first_msg_tid,
        rank: msg_rank,
    };
    // The slice start (ns) of each node that had a message, for flow arrows.
    let mut have: HashMap<(NodeId, MsgId), u64> = HashMap::new();
    let mut flow_id: u64 = 0;
    let instant = |n: NodeId, t: u64, scope: &str, cat: &str, ev: String, args: Value| {
        json!({"ph": "i", "s": scope, "cat": cat, "name": ev, "pid": pid(n), "tid": pid(n),
            "ts": us(t), "args": args})
    };
    for e in &trace.events {
        let t = e.t_ns;
        let Some(n) = e.node else {
            let (ev, args) = match &e.kind {
                EventKind::Partition { a, b } => (
                    "partition".to_string(),
                    json!({
                    "a": a.iter().map(|&x| name(x)).collect::<Vec<_>>(),
                    "b": b.iter().map(|&x| name(x)).collect::<Vec<_>>()}),
                ),
                EventKind::Heal { a, b } => (
                    "heal".to_string(),
                    json!({
                    "a": a.iter().map(|&x| name(x)).collect::<Vec<_>>(),
                    "b": b.iter().map(|&x| name(x)).collect::<Vec<_>>()}),
                ),
                EventKind::Annotation { text } => (text.clone(), json!({"text": text})),
                other => (
                    kind_name(other).to_string(),
                    serde_json::to_value(other).unwrap_or(Value::Null),
                ),
            };
            out.push(
                json!({"ph": "i", "s": "g", "cat": "network", "name": ev, "pid": 0,
                "tid": 0, "ts": us(t), "args": args}),
            );
            continue;
        };
        match &e.kind {
            EventKind::Published { msg, topic, size } => {
                let tid = threads.tid(&mut out, n, *msg);
                if have.contains_key(&(n, *msg)) {
                    out.push(json!({"ph": "i", "s": "t", "cat": "message",
                        "name": format!("publish msg {}", msg.0), "pid": pid(n), "tid": tid,
                        "ts": us(t), "args": {"msg": msg.0, "topic": topic, "size": size}}));
                    continue;
                }
                have.insert((n, *msg), t);
                out.push(json!({"ph": "X", "cat": "message",
                    "name": format!("publish msg {}", msg.0), "pid": pid(n), "tid": tid,
                    "ts": us(t), "dur": SLICE_US,
                    "args": {"msg": msg.0, "topic": topic, "size": size,
                        "peer_id": peers.get(n).to_base58()}}));
            }
            EventKind::Delivered { msg, from } | EventKind::Duplicate { msg, from } => {
                let tid = threads.tid(&mut out, n, *msg);
                let first =
                    matches!(e.kind, EventKind::Delivered { .. }) && !have.contains_key(&(n, *msg));
                let mut args = json!({"msg": msg.0, "from": name(*from)});
                if let Some(m) = info.get(msg) {
                    args["topic"] = json!(m.topic);
                    args["latency_ms"] = json!(t.saturating_sub(m.published_ns) as f64 / 1e6);
                }
                if !first {
                    out.push(json!({"ph": "i", "s": "t", "cat": "message",
                        "name": format!("duplicate msg {}", msg.0), "pid": pid(n), "tid": tid,
                        "ts": us(t), "args": args}));
                    continue;
                }
                have.insert((n, *msg), t);
                out.push(json!({"ph": "X", "cat": "message",
                    "name": format!("deliver msg {}", msg.0), "pid": pid(n), "tid": tid,
                    "ts": us(t), "dur": SLICE_US, "args": args}));
                if let Some(&sent) = have.get(&(*from, *msg))
                    && let Some(&from_tid) = threads.tids.get(&(*from, *msg))
                {
                    flow_id += 1;
                    let flow = format!("msg {}", msg.0);
                    out.push(json!({"ph": "s", "cat": "propagation", "name": flow,
                        "id": flow_id, "pid": pid(*from), "tid": from_tid,
                        "ts": us(sent) + FLOW_OFFSET_US}));
                    out.push(
                        json!({"ph": "f", "bp": "e", "cat": "propagation", "name": flow,
                        "id": flow_id, "pid": pid(n), "tid": tid,
                        "ts": us(t) + FLOW_OFFSET_US}),
                    );
                }
            }
            EventKind::NodeUp => out.push(instant(n, t, "p", "node", "node up".into(), json!({}))),
            EventKind::NodeDown { reason } => out.push(instant(
                n,
                t,
                "p",
                "node",
                "node down".into(),
                json!({"reason": reason}),
            )),
            EventKind::PeerConnected { peer } => out.push(instant(
                n,
                t,
                "t",
                "connection",
                format!("connected {}", name(*peer)),
                json!({"peer": name(*peer)}),
            )),
            EventKind::PeerDisconnected { peer } => out.push(instant(
                n,
                t,
                "t",
                "connection",
                format!("disconnected {}", name(*peer)),
                json!({"peer": name(*peer)}),
            )),
            EventKind::Subscribed { topic } => out.push(instant(
                n,
                t,
                "t",
                "subscription",
                "subscribe".into(),
                json!({"topic": topic}),
            )),
            EventKind::Unsubscribed { topic } => out.push(instant(
                n,
                t,
                "t",
                "subscription",
                "unsubscribe".into(),
                json!({"topic": topic}),
            )),
            EventKind::Graft { peer, topic } => out.push(instant(
                n,
                t,
                "t",
                "mesh",
                format!("graft {}", name(*peer)),
                json!({"peer": name(*peer), "topic": topic}),
            )),
            EventKind::Prune { peer, topic } => out.push(instant(
                n,
                t,
                "t",
                "mesh",
                format!("prune {}", name(*peer)),
                json!({"peer": name(*peer), "topic": topic}),
            )),
            EventKind::LinkChanged { to, shape } => out.push(instant(
                n,
                t,
                "t",
                "network",
                format!("link to {} changed", name(*to)),
                json!({"to": name(*to),
                    "latency_ms": shape.latency.as_nanos() as f64 / 1e6,
                    "jitter_ms": shape.jitter.as_nanos() as f64 / 1e6,
                    "loss": if shape.loss.is_finite() { shape.loss } else { 0.0 },
                    "bandwidth_bps": shape.bandwidth}),
            )),
            EventKind::Annotation { text } => out.push(instant(
                n,
                t,
                "t",
                "annotation",
                text.clone(),
                json!({"text": text}),
            )),
            EventKind::Partition { a, b } | EventKind::Heal { a, b } => out.push(instant(
                n,
                t,
                "t",
                "network",
                kind_name(&e.kind).into(),
                json!({"a": a.iter().map(|&x| name(x)).collect::<Vec<_>>(),
                    "b": b.iter().map(|&x| name(x)).collect::<Vec<_>>()}),
            )),
        }
    }
    let m = &trace.meta;
    json!({
        "traceEvents": out,
        "displayTimeUnit": "ms",
        "otherData": {
            "format": format!("{} v{}", trace.format, trace.version),
            "test": m.test,
            "backend": m.backend,
            "shaping": m.shaping,
            "seed": m.seed.to_string(),
            "node_software": m.node_software,
            "started_at": super::interop::rfc3339(m.started_at_unix_ns),
            "started_at_unix_ns": m.started_at_unix_ns.to_string(),
            "topology": trace.topology.description,
            "meshsim_version": m.meshsim_version,
            "ts_origin": "ts is microseconds since started_at",
        },
    })
}

/// The message threads of every process: `(node, message)` to tid, allocated on first use.
struct Threads {
    tids: BTreeMap<(NodeId, MsgId), u64>,
    first: u64,
    rank: HashMap<MsgId, usize>,
}

impl Threads {
    /// The tid of `m`'s thread in `n`'s process; the first call names and orders it.
    fn tid(&mut self, out: &mut Vec<Value>, n: NodeId, m: MsgId) -> u64 {
        if let Some(&tid) = self.tids.get(&(n, m)) {
            return tid;
        }
        let tid = self.first + self.tids.len() as u64;
        self.tids.insert((n, m), tid);
        out.push(
            json!({"ph": "M", "name": "thread_name", "pid": pid(n), "tid": tid,
            "args": {"name": format!("msg {}", m.0)}}),
        );
        let rank = self.rank.get(&m).map_or(usize::MAX / 2, |r| r + 1);
        out.push(
            json!({"ph": "M", "name": "thread_sort_index", "pid": pid(n), "tid": tid,
            "args": {"sort_index": rank}}),
        );
        tid
    }
}

fn kind_name(k: &EventKind) -> &'static str {
    match k {
        EventKind::NodeUp => "node up",
        EventKind::NodeDown { .. } => "node down",
        EventKind::PeerConnected { .. } => "connected",
        EventKind::PeerDisconnected { .. } => "disconnected",
        EventKind::Subscribed { .. } => "subscribe",
        EventKind::Unsubscribed { .. } => "unsubscribe",
        EventKind::Published { .. } => "publish",
        EventKind::Delivered { .. } => "deliver",
        EventKind::Duplicate { .. } => "duplicate",
        EventKind::Graft { .. } => "graft",
        EventKind::Prune { .. } => "prune",
        EventKind::LinkChanged { .. } => "link changed",
        EventKind::Partition { .. } => "partition",
        EventKind::Heal { .. } => "heal",
        EventKind::Annotation { .. } => "annotation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::sample::{self, ODD_NAME, ODD_TOPIC};

    #[test]
    fn document_structure_and_flows() {
        let trace = sample::trace();
        let text = to_json(&trace);
        let doc: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(doc["displayTimeUnit"], "ms");
        assert_eq!(doc["otherData"]["test"], "export::sample");
        assert_eq!(
            doc["otherData"]["started_at"],
            "2023-11-14T22:13:20.123456789Z"
        );
        let evs = doc["traceEvents"].as_array().unwrap();
        // One named process per node, the odd name intact.
        let names: BTreeMap<u64, &str> = evs
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
            .map(|e| {
                (
                    e["pid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(names.len(), 4);
        assert_eq!(names[&4], ODD_NAME);
        // No tid is used by two processes.
        let mut owner: BTreeMap<u64, u64> = BTreeMap::new();
        for e in evs.iter().filter(|e| e["tid"].is_u64() && e["pid"] != 0) {
            let (pid, tid) = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
            assert_eq!(*owner.entry(tid).or_insert(pid), pid, "tid {tid} shared");
        }
        // Slices (publish and first deliveries), with their flow events inside them.
        let slices: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(slices.len(), 2 + 4);
        let inside = |f: &Value| {
            slices.iter().any(|s| {
                s["pid"] == f["pid"]
                    && s["tid"] == f["tid"]
                    && s["ts"].as_f64().unwrap() < f["ts"].as_f64().unwrap()
                    && f["ts"].as_f64().unwrap()
                        < s["ts"].as_f64().unwrap() + s["dur"].as_f64().unwrap()
            })
        };
        let starts: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "s").collect();
        let ends: Vec<&Value> = evs.iter().filter(|e| e["ph"] == "f").collect();
        assert_eq!(starts.len(), 4, "one arrow per first delivery");
        assert_eq!(ends.len(), 4);
        for s in &starts {
            let f = ends.iter().find(|f| f["id"] == s["id"]).unwrap();
            assert_eq!(f["bp"], "e");
            assert_eq!(
                (f["cat"].clone(), f["name"].clone()),
                (s["cat"].clone(), s["name"].clone())
            );
            assert!(inside(s), "flow start outside a slice: {s}");
            assert!(inside(f), "flow end outside a slice: {f}");
        }
        // The arrow into n2 (pid 3) for message 0 starts at n1 (pid 2).
        let into_n2 = ends
            .iter()
            .find(|f| f["pid"] == 3 && f["name"] == "msg 0")
            .unwrap();
        let from = starts.iter().find(|s| s["id"] == into_n2["id"]).unwrap();
        assert_eq!(from["pid"], 2);
        // Timestamps are microseconds since the start.
        let deliver = slices
            .iter()
            .find(|s| s["pid"] == 2 && s["name"] == "deliver msg 0")
            .unwrap();
        assert_eq!(deliver["ts"].as_f64().unwrap(), 50_000.017);
        assert_eq!(deliver["args"]["latency_ms"].as_f64().unwrap(), 40.000017);
        // Every instant has a scope; every event a phase, a pid and a timestamp or is metadata.
        for e in evs {
            let ph = e["ph"].as_str().unwrap();
            assert!(e["pid"].is_u64(), "{e}");
            if ph == "i" {
                assert!(["t", "p", "g"].contains(&e["s"].as_str().unwrap()));
            }
            if ph != "M" {
                assert!(e["ts"].as_f64().unwrap() >= 0.0);
            }
        }
        let dups = evs
            .iter()
            .filter(|e| e["ph"] == "i" && e["name"].as_str().unwrap().starts_with("duplicate"))
            .count();
        assert_eq!(dups, 2);
        // Hostile strings survive as data.
        assert!(evs.iter().any(|e| e["args"]["topic"] == ODD_TOPIC));
        assert!(
            evs.iter()
                .any(|e| e["args"]["text"] == "</script>\"\u{0}\u{2029}" && e["s"] == "g")
        );
    }
}
