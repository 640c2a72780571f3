//! The documented JSON Schema and the code agree on the event types (CI validates whole
//! traces against the schema with a JSON Schema validator; this catches drift in a plain
//! `cargo test`).

use std::collections::BTreeSet;

use meshsim::{EventKind, LinkShape, MsgId, node};

#[test]
fn schema_lists_exactly_the_event_types() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../meshsim/trace.schema.json"))
            .expect("schema is JSON");
    let listed: BTreeSet<String> = schema["$defs"]["event"]["properties"]["type"]["enum"]
        .as_array()
        .expect("event types listed")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let (m, n, t) = (MsgId(1), node(1), "t".to_string());
    let all = [
        EventKind::NodeUp,
        EventKind::NodeDown { reason: t.clone() },
        EventKind::PeerConnected { peer: n },
        EventKind::PeerDisconnected { peer: n },
        EventKind::Subscribed { topic: t.clone() },
        EventKind::Unsubscribed { topic: t.clone() },
        EventKind::Published {
            msg: m,
            topic: t.clone(),
            size: 8,
        },
        EventKind::Delivered { msg: m, from: n },
        EventKind::Duplicate { msg: m, from: n },
        EventKind::Graft {
            peer: n,
            topic: t.clone(),
        },
        EventKind::Prune {
            peer: n,
            topic: t.clone(),
        },
        EventKind::LinkChanged {
            to: n,
            shape: LinkShape::default(),
        },
        EventKind::Partition {
            a: vec![n],
            b: vec![n],
        },
        EventKind::Heal {
            a: vec![n],
            b: vec![n],
        },
        EventKind::Annotation { text: t },
    ];
    // A new variant must be added above (and to the schema): this match has no wildcard.
    for k in &all {
        match k {
            EventKind::NodeUp
            | EventKind::NodeDown { .. }
            | EventKind::PeerConnected { .. }
            | EventKind::PeerDisconnected { .. }
            | EventKind::Subscribed { .. }
            | EventKind::Unsubscribed { .. }
            | EventKind::Published { .. }
            | EventKind::Delivered { .. }
            | EventKind::Duplicate { .. }
            | EventKind::Graft { .. }
            | EventKind::Prune { .. }
            | EventKind::LinkChanged { .. }
            | EventKind::Partition { .. }
            | EventKind::Heal { .. }
            | EventKind::Annotation { .. } => {}
        }
    }
    let written: BTreeSet<String> = all
        .iter()
        .map(|k| {
            serde_json::to_value(k).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(written, listed);
}
