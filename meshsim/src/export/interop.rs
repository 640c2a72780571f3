//! The per-node output of libp2p/test-plans' gossipsub-interop, so its analysis
//! (`gossipsub-interop/analyze_message_deliveries.py`) reads a meshsim trace as if Shadow had
//! run gossipsub-interop nodes.
//!
//! [`write()`] lays a folder out as a Shadow data folder, which the analysis recognises by its
//! `hosts` subfolder:
//! - `hosts/node<i>/meshsim-node.1000.stdout` for each node `n<i>` (Shadow names a process's
//!   stdout `<program>.<pid>.stdout`, pids counting from 1000; the analysis reads every
//!   `*.stdout` under `hosts/<host>/`): ND-JSON, one object per line, in time order, each with
//!   `time` (RFC 3339 with nanoseconds, UTC) and `msg`, as the implementations' contract
//!   (`test-specs/implementation.md`) requires:
//!   - first `{"time", "level":"INFO", "msg":"PeerID", "id":<peer id>, "node_id":<i>}` (the
//!     node id as an integer), at the node's first `node_up`, else the trace's start;
//!   - then, for every copy the node received, first deliveries and duplicates alike,
//!     `{"time", "level":"INFO", "msg":"Received Message", "id":"<message number>",
//!     "from":<peer id of the sender>, "topic":<topic>}`, the message id as the decimal
//!     string the analysis sorts with `int()` (meshsim's message number is the interop
//!     convention's id: the payload's first 8 bytes, big-endian);
//! - `shadow.yaml`: only the part the analysis reads, `hosts: node<i>: network_node_id: <i>`
//!   (each host on its own network node); it is not a runnable Shadow configuration;
//! - `graph.gml`: the topology as Shadow-style GML ([`super::graph::to_gml`]); the analysis
//!   labels its per-network-node plot with the node labels, here the node names.
//!
//! The analysis does not read `params.json` (the run's script), so none is written. It counts
//! a message's first `Received Message` line per file as that node's delivery and the rest as
//! duplicates; it takes the node count from the `PeerID` lines, so every node of the trace
//! gets a file, also nodes that received nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{PeerIds, all_nodes, node_names, unix_ns, write_file};
use crate::error::TraceFormatError;
use crate::topology::NodeId;
use crate::trace::{EventKind, MsgId, Trace};

/// The file name of each node's stdout under `hosts/node<i>/`.
pub const STDOUT_FILE: &str = "meshsim-node.1000.stdout";

/// RFC 3339 with nanoseconds (trailing zeros trimmed, as Go's `RFC3339Nano`), in UTC.
pub(crate) fn rfc3339(unix_ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// The stdout lines of each node, in time order.
pub fn stdout_lines(trace: &Trace) -> BTreeMap<NodeId, Vec<String>> {
    let peers = PeerIds::new(trace);
    let topic_of: BTreeMap<MsgId, &str> = trace
        .messages
        .iter()
        .map(|m| (m.id, m.topic.as_str()))
        .collect();
    let mut out: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    for n in all_nodes(trace) {
        let up = trace
            .events
            .iter()
            .find(|e| e.node == Some(n) && matches!(e.kind, EventKind::NodeUp))
            .map_or(0, |e| e.t_ns);
        let line = json!({
            "time": rfc3339(unix_ns(trace, up)),
            "level": "INFO",
            "msg": "PeerID",
            "id": peers.get(n).to_base58(),
            "node_id": n.0,
        });
        out.insert(n, vec![line.to_string()]);
    }
    for e in &trace.events {
        let (Some(n), EventKind::Delivered { msg, from } | EventKind::Duplicate { msg, from }) =
            (e.node, &e.kind)
        else {
            continue;
        };
        let mut line = json!({
            "time": rfc3339(unix_ns(trace, e.t_ns)),
            "level": "INFO",
            "msg": "Received Message",
            "id": msg.0.to_string(),
            "from": peers.get(*from).to_base58(),
        });
        if let Some(t) = topic_of.get(msg) {
            line["topic"] = json!(t);
        }
        out.entry(n).or_default().push(line.to_string());
    }
    out
}

/// Writes the gossipsub-interop folder for `trace` into `dir` (see the module docs) and
/// returns the files written.
pub fn write(trace: &Trace, dir: &Path) -> Result<Vec<PathBuf>, TraceFormatError> {
    let mut written = Vec::new();
    let names = node_names(trace);
    let mut yaml = String::from(
        "# Written by meshsim for gossipsub-interop's analyze_message_deliveries.py: only the\n\
         # part it reads (each host's network node). Not a runnable Shadow configuration.\n\
         hosts:\n",
    );
    for (n, lines) in stdout_lines(trace) {
        let host = format!("node{}", n.0);
        let mut text = lines.join("\n");
        text.push('\n');
        written.push(write_file(
            &dir.join("hosts").join(&host).join(STDOUT_FILE),
            text.as_bytes(),
        )?);
        let _ = writeln!(
            yaml,
            "  {host}:\n    # {}\n    network_node_id: {}",
            names
                .get(&n)
                .map(|s| s.replace(['\n', '\r'], " "))
                .unwrap_or_default(),
            n.0
        );
    }
    written.push(write_file(&dir.join("shadow.yaml"), yaml.as_bytes())?);
    written.push(write_file(
        &dir.join("graph.gml"),
        super::graph::to_gml(trace).as_bytes(),
    )?);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::export::sample;

    #[test]
    fn lines_follow_the_interop_contract() {
        let trace = sample::trace();
        let lines = stdout_lines(&trace);
        assert_eq!(lines.len(), 4);
        for (n, lines) in &lines {
            let first: Value = serde_json::from_str(&lines[0]).unwrap();
            assert_eq!(first["msg"], "PeerID");
            assert_eq!(first["node_id"], json!(n.0));
            assert_eq!(first["id"], crate::export::peer_id(&trace, *n).to_base58());
            // The node came up 1 ms after the start.
            assert_eq!(first["time"], "2023-11-14T22:13:20.124456789Z");
            let received: Vec<Value> = lines[1..]
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let copies = trace
                .events
                .iter()
                .filter(|e| {
                    e.node == Some(*n)
                        && matches!(
                            e.kind,
                            EventKind::Delivered { .. } | EventKind::Duplicate { .. }
                        )
                })
                .count();
            assert_eq!(received.len(), copies, "{n}");
            for r in &received {
                assert_eq!(r["msg"], "Received Message");
                r["id"].as_str().unwrap().parse::<u64>().unwrap();
                assert!(r["from"].as_str().unwrap().starts_with("12D3KooW"));
            }
        }
        // n1 got message 0 first from n0 at 50.000017 ms, then a duplicate from n2, then 7.
        let n1: Vec<Value> = lines[&NodeId(1)][1..]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            n1.iter()
                .map(|r| r["id"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["0", "0", "7"]
        );
        assert_eq!(n1[0]["time"], "2023-11-14T22:13:20.173456806Z");
        assert_eq!(
            n1[0]["from"],
            crate::export::peer_id(&trace, NodeId(0)).to_base58()
        );
        assert_eq!(n1[2]["topic"], crate::export::sample::ODD_TOPIC);
    }

    #[test]
    fn folder_layout() {
        let dir = std::env::temp_dir().join(format!("meshsim-interop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = write(&sample::trace(), &dir).unwrap();
        assert_eq!(files.len(), 4 + 2);
        let out = std::fs::read_to_string(dir.join("hosts/node2").join(STDOUT_FILE)).unwrap();
        assert!(out.ends_with('\n'));
        assert_eq!(out.lines().count(), 1 + 1, "PeerID and one receipt");
        let yaml = std::fs::read_to_string(dir.join("shadow.yaml")).unwrap();
        assert!(yaml.contains("  node3:\n"));
        assert!(yaml.contains("    network_node_id: 3\n"));
        // The odd name of n3 stays inside its YAML comment.
        assert_eq!(
            yaml.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .count(),
            9
        );
        let gml = std::fs::read_to_string(dir.join("graph.gml")).unwrap();
        assert_eq!(gml.matches("label \"").count(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
