//! Exports of traces to the formats other gossip tools read, and the import of
//! go-libp2p-pubsub traces: a real simulation checked end to end, and hand-made traces for
//! the edge cases.
//!
//! `exports_of_a_real_run` also writes every export of its trace under
//! `<trace dir>/export.exports_of_a_real_run/exports/` for `.ci/check_exports.py`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use meshsim::export::pubsub::{self, pb};
use meshsim::export::{self, Location, chrome, graph, interop};
use meshsim::{
    DEFAULT_TOPIC, EventKind, MsgId, NodeId, Topology, Trace, TraceFormatError, ms, node, secs,
};

/// Decodes base58 (Bitcoin alphabet), independently of libp2p.
fn base58(s: &str) -> Vec<u8> {
    const ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut bytes: Vec<u8> = Vec::new(); // little-endian big number
    for c in s.chars() {
        let mut carry = ALPHABET.find(c).expect("base58 digit") as u32;
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = carry as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push(carry as u8);
            carry >>= 8;
        }
    }
    let zeros = s.chars().take_while(|&c| c == '1').count();
    bytes.extend(std::iter::repeat_n(0, zeros));
    bytes.reverse();
    bytes
}

/// Start offsets of the varint-length-delimited frames.
fn frames(data: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut off = 0;
    while off < data.len() {
        starts.push(off);
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = data[off];
            off += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        off += len;
    }
    assert_eq!(off, data.len(), "the last frame ends the data");
    starts
}

/// The peer id bytes the trace records for a node.
fn peer_bytes(trace: &Trace, n: NodeId) -> Vec<u8> {
    let spec = trace.topology.nodes.iter().find(|s| s.id == n).unwrap();
    base58(
        spec.peer_id
            .as_deref()
            .expect("simulations record peer ids"),
    )
}

/// Checks the TraceEvents one for one against the trace's events.
fn check_events(trace: &Trace, evs: &[pb::TraceEvent]) {
    let topic_of: BTreeMap<MsgId, &str> = trace
        .messages
        .iter()
        .map(|m| (m.id, m.topic.as_str()))
        .collect();
    let mut i = 0;
    let mut seen = BTreeMap::<&str, usize>::new();
    for e in &trace.events {
        let Some(n) = e.node else { continue };
        let expected_type = match &e.kind {
            EventKind::Published { .. } => 0,
            EventKind::Duplicate { .. } => 2,
            EventKind::Delivered { .. } => 3,
            EventKind::PeerConnected { .. } => 4,
            EventKind::PeerDisconnected { .. } => 5,
            EventKind::Subscribed { .. } => 9,
            EventKind::Unsubscribed { .. } => 10,
            EventKind::Graft { .. } => 11,
            EventKind::Prune { .. } => 12,
            _ => continue,
        };
        let ev = &evs[i];
        i += 1;
        let what = format!("event {i}: {e:?}");
        assert_eq!(ev.r#type, Some(expected_type), "{what}");
        assert_eq!(
            ev.peer_id.as_deref(),
            Some(&peer_bytes(trace, n)[..]),
            "{what}"
        );
        assert_eq!(
            ev.timestamp,
            Some((trace.meta.started_at_unix_ns + e.t_ns) as i64),
            "{what}"
        );
        let id = |m: &MsgId| Some(m.0.to_be_bytes().to_vec());
        match &e.kind {
            EventKind::Published { msg, topic, .. } => {
                *seen.entry("publish").or_default() += 1;
                let p = ev.publish_message.as_ref().expect("publishMessage");
                assert_eq!(p.message_id, id(msg), "{what}");
                assert_eq!(p.topic.as_deref(), Some(topic.as_str()), "{what}");
            }
            EventKind::Delivered { msg, from } => {
                *seen.entry("deliver").or_default() += 1;
                let d = ev.deliver_message.as_ref().expect("deliverMessage");
                assert_eq!(d.message_id, id(msg), "{what}");
                assert_eq!(d.received_from, Some(peer_bytes(trace, *from)), "{what}");
                assert_eq!(d.topic.as_deref(), topic_of.get(msg).copied(), "{what}");
            }
            EventKind::Duplicate { msg, from } => {
                *seen.entry("duplicate").or_default() += 1;
                let d = ev.duplicate_message.as_ref().expect("duplicateMessage");
                assert_eq!(d.message_id, id(msg), "{what}");
                assert_eq!(d.received_from, Some(peer_bytes(trace, *from)), "{what}");
            }
            EventKind::PeerConnected { peer } => {
                let s = ev
                    .on_new_outbound_stream
                    .as_ref()
                    .expect("onNewOutboundStream");
                assert_eq!(s.peer_id, Some(peer_bytes(trace, *peer)), "{what}");
                assert_eq!(s.proto.as_deref(), Some("/meshsub/1.3.0"));
            }
            EventKind::PeerDisconnected { peer } => {
                let s = ev.on_closed_outbound_stream.as_ref().expect("onClosed");
                assert_eq!(s.peer_id, Some(peer_bytes(trace, *peer)), "{what}");
            }
            EventKind::Subscribed { topic } => {
                *seen.entry("join").or_default() += 1;
                let j = ev.join.as_ref().expect("join");
                assert_eq!(j.topic.as_deref(), Some(topic.as_str()));
            }
            EventKind::Unsubscribed { topic } => {
                assert_eq!(
                    ev.leave.as_ref().unwrap().topic.as_deref(),
                    Some(topic.as_str())
                );
            }
            EventKind::Graft { peer, topic } | EventKind::Prune { peer, topic } => {
                *seen.entry("graft/prune").or_default() += 1;
                let (p, t) = match (&ev.graft, &ev.prune) {
                    (Some(g), None) => (&g.peer_id, &g.topic),
                    (None, Some(p)) => (&p.peer_id, &p.topic),
                    _ => panic!("{what}: one of graft and prune"),
                };
                assert_eq!(p, &Some(peer_bytes(trace, *peer)), "{what}");
                assert_eq!(t.as_deref(), Some(topic.as_str()));
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(i, evs.len(), "no extra TraceEvents");
    // The run did what this test needs to exercise.
    for kind in ["publish", "deliver", "duplicate", "join", "graft/prune"] {
        assert!(
            seen.get(kind).copied().unwrap_or(0) > 0,
            "the run has no {kind}"
        );
    }
}

/// Checks that an imported trace answers the delivery questions as the original does,
/// matching nodes by peer id.
fn check_import(orig: &Trace, back: &Trace) {
    assert_eq!(back.meta.backend, "imported");
    let by_peer: BTreeMap<String, NodeId> = orig
        .topology
        .nodes
        .iter()
        .map(|s| (s.peer_id.clone().unwrap(), s.id))
        .collect();
    let orig_of = |n: NodeId| -> NodeId {
        let pid = back.topology.nodes[n.index()].peer_id.as_ref().unwrap();
        by_peer[pid]
    };
    assert_eq!(back.messages.len(), orig.messages.len());
    for o in &orig.messages {
        let m = back.message(o.id).expect("message kept its number");
        assert_eq!(orig_of(m.origin), o.origin);
        let mut expected: Vec<NodeId> = m.expected.iter().map(|&n| orig_of(n)).collect();
        expected.sort();
        let mut want = o.expected.clone();
        want.sort();
        assert_eq!(expected, want, "expected nodes of {}", o.id);
        let (d, od) = (back.delivery(o.id).unwrap(), orig.delivery(o.id).unwrap());
        assert_eq!(d.reach(), od.reach(), "{}", o.id);
        let remap = |m: BTreeMap<NodeId, Duration>| -> BTreeMap<NodeId, Duration> {
            m.into_iter().map(|(n, v)| (orig_of(n), v)).collect()
        };
        assert_eq!(
            remap(d.latencies()),
            od.latencies(),
            "latencies of {}",
            o.id
        );
        let dups: BTreeMap<NodeId, usize> = d
            .duplicates_per_node()
            .into_iter()
            .map(|(n, c)| (orig_of(n), c))
            .collect();
        assert_eq!(dups, od.duplicates_per_node(), "duplicates of {}", o.id);
        let tree: BTreeMap<NodeId, NodeId> = d
            .propagation_tree()
            .into_iter()
            .map(|(a, b)| (orig_of(a), orig_of(b)))
            .collect();
        assert_eq!(tree, od.propagation_tree(), "tree of {}", o.id);
        assert_eq!(d.stats().p99, od.stats().p99);
    }
}

#[meshsim::test(seed = 21)]
async fn exports_of_a_real_run(sim: meshsim::Sim) -> meshsim::Result<()> {
    let name = sim.test_name().to_string();
    let net = Topology::random_regular(10, 4, sim.seed())?
        .with_latency(ms(20))
        .with_jitter(ms(3))
        .with_bandwidth(50_000_000);
    let sim = sim.start(net).await?;
    for origin in [0, 4, 7] {
        let msg = sim.publish(node(origin), DEFAULT_TOPIC, 4096).await?;
        sim.wait_delivered(msg, secs(10)).await?.assert_reach(1.0)?;
    }
    // Let the last copies (duplicates) arrive, then stop: every node goes down.
    sim.run_for(ms(500)).await;
    let trace = sim.stop().await;
    assert_eq!(trace.messages.len(), 3);

    // TraceEvent protobuf, decoded with the prost types of the published schema.
    let pb_bytes = pubsub::to_protobuf(&trace);
    let evs = pubsub::read_events(&pb_bytes).expect("our own export decodes");
    check_events(&trace, &evs);
    let starts = frames(&pb_bytes);
    assert_eq!(starts.len(), evs.len(), "one frame per event");

    // The JSON and gzip forms hold the same events.
    let json = pubsub::to_json(&trace);
    assert_eq!(json.lines().count(), evs.len());
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(v["type"].is_u64() && v["timestamp"].is_i64() && v["peerID"].is_string());
    }
    assert_eq!(pubsub::read_events(json.as_bytes()).unwrap(), evs);
    let gz = pubsub::to_protobuf_gz(&trace);
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert_eq!(pubsub::read_events(&gz).unwrap(), evs);

    // Import gives back the same deliveries, from every form.
    let imported = pubsub::import_named(&pb_bytes, "back").expect("import");
    assert!(
        imported.summary.skipped.is_empty(),
        "{:?}",
        imported.summary
    );
    assert_eq!(imported.summary.inferred_senders, 0);
    assert_eq!(imported.summary.events, evs.len());
    check_import(&trace, &imported.trace);
    assert_eq!(
        pubsub::import_named(json.as_bytes(), "back").unwrap().trace,
        imported.trace,
        "JSON import = protobuf import"
    );
    assert_eq!(
        pubsub::import_named(&gz, "back").unwrap().trace,
        imported.trace,
        "gzip import = protobuf import"
    );

    // Cut mid-frame: a typed error naming where the cut frame starts.
    let victim = starts[starts.len() / 2];
    match pubsub::import(&pb_bytes[..victim + 4]) {
        Err(TraceFormatError::Truncated {
            at: Location::Offset { offset, .. },
            ..
        }) => assert_eq!(offset, victim),
        other => panic!("expected a truncation error at offset {victim}, got {other:?}"),
    }

    // GraphML back into a topology: the same links and shapes.
    let topo = Topology::from_graphml(&graph::to_graphml(&trace)).expect("GraphML imports");
    let mut links: Vec<_> = topo.links().copied().collect();
    links.sort_by_key(|l| (l.a, l.b));
    let mut want = trace.topology.links.clone();
    want.sort_by_key(|l| (l.a, l.b));
    assert_eq!(links, want);

    // Chrome: one slice per publish and first delivery, one arrow per first delivery.
    let doc: serde_json::Value = serde_json::from_str(&chrome::to_json(&trace)).unwrap();
    let phases = doc["traceEvents"].as_array().unwrap().iter().fold(
        BTreeMap::<String, usize>::new(),
        |mut m, e| {
            *m.entry(e["ph"].as_str().unwrap().to_string()).or_default() += 1;
            m
        },
    );
    let count = |f: fn(&EventKind) -> bool| trace.events.iter().filter(|e| f(&e.kind)).count();
    let delivered = count(|k| matches!(k, EventKind::Delivered { .. }));
    assert_eq!(phases["X"], 3 + delivered);
    assert_eq!(phases["s"], delivered);
    assert_eq!(phases["f"], delivered);

    // gossipsub-interop: a "Received Message" line for every copy.
    let lines = interop::stdout_lines(&trace);
    let received: usize = lines
        .values()
        .map(|l| {
            l.iter()
                .filter(|l| l.contains("\"Received Message\""))
                .count()
        })
        .sum();
    assert_eq!(
        received,
        delivered + count(|k| matches!(k, EventKind::Duplicate { .. }))
    );
    assert_eq!(lines.len(), 10);

    // Every export, for .ci/check_exports.py.
    let dir = meshsim::trace::trace_dir(&name).join("exports");
    let written = export::write_all(&trace, &dir).expect("exports written");
    for f in [
        "trace.json",
        "trace.pb",
        "trace.pb.gz",
        "trace.pubsub.json",
        "chrome.json",
        "topology.graphml",
        "topology.dot",
        "topology.gml",
        "interop/shadow.yaml",
        "interop/graph.gml",
        "interop/hosts/node9/meshsim-node.1000.stdout",
    ] {
        assert!(written.contains(&dir.join(f)), "{f} not written");
        assert!(
            std::fs::metadata(dir.join(f)).unwrap().len() > 0,
            "{f} empty"
        );
    }
    println!("exports written to {}", dir.display());
    Ok(())
}

/// A trace as an old or hand-made one: no peer ids recorded, hostile strings.
fn hand_made() -> Trace {
    let text = r#"{
      "format": "meshsim-trace", "version": 1,
      "meta": {"test": "hand\"made", "backend": "in-process", "shaping": "none", "seed": 5,
        "node_software": "x", "params": null, "started_at_unix_ns": 1000000000,
        "meshsim_version": "0"},
      "topology": {"description": "d", "nodes": [
          {"id": 0, "name": "a\"\\\n</script>"}, {"id": 1, "name": "b"}, {"id": 2, "name": "c"}],
        "links": [], "overlay": []},
      "messages": [{"id": 5, "origin": 0, "topic": "<&>\u2028", "size": 1,
        "published_ns": 10, "expected": [1, 2]}],
      "events": [
        {"t_ns": 1, "node": 1, "type": "subscribed", "topic": "<&>\u2028"},
        {"t_ns": 2, "node": 2, "type": "subscribed", "topic": "<&>\u2028"},
        {"t_ns": 10, "node": 0, "type": "published", "msg": 5, "topic": "<&>\u2028", "size": 1},
        {"t_ns": 30, "node": 1, "type": "delivered", "msg": 5, "from": 0},
        {"t_ns": 45, "node": 2, "type": "delivered", "msg": 5, "from": 1},
        {"t_ns": 50, "node": 2, "type": "duplicate", "msg": 5, "from": 0},
        {"t_ns": 60, "type": "annotation", "text": "\u0000\"}]"}
      ]}"#;
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["meta"]["params"] = serde_json::to_value(meshsim::GossipsubParams::default()).unwrap();
    serde_json::from_value(v).expect("a valid trace")
}

#[test]
fn traces_without_peer_ids_get_real_ones() {
    let trace = hand_made();
    let evs = pubsub::read_events(&pubsub::to_protobuf(&trace)).unwrap();
    assert_eq!(evs.len(), 6);
    let back = pubsub::import(&pubsub::to_protobuf(&trace)).expect("derived ids are peer ids");
    assert_eq!(back.topology.nodes.len(), 3);
    let exported: BTreeSet<Vec<u8>> = evs.iter().map(|e| e.peer_id.clone().unwrap()).collect();
    let mut imported = BTreeSet::new();
    for s in &back.topology.nodes {
        let pid = s.peer_id.as_deref().expect("a parsable peer id");
        assert!(pid.starts_with("12D3KooW"), "{pid}");
        imported.insert(base58(pid));
    }
    assert_eq!(imported, exported);
    // They are the ids meshsim derives for the nodes from the trace's seed, 5.
    let derived: BTreeSet<Vec<u8>> = (0..3)
        .map(|i| base58(&export::peer_id(&trace, NodeId(i)).to_base58()))
        .collect();
    assert_eq!(derived, exported);
    // Stable: exporting twice gives the same bytes.
    assert_eq!(pubsub::to_protobuf(&trace), pubsub::to_protobuf(&trace));
    let d = back.delivery(MsgId(5)).unwrap();
    assert_eq!(d.reach(), 1.0);
    assert_eq!(d.duplicates_per_node().values().sum::<usize>(), 1);
    assert_eq!(
        d.latencies().values().copied().collect::<BTreeSet<_>>(),
        [Duration::from_nanos(20), Duration::from_nanos(35)].into()
    );
}

#[test]
fn hostile_strings_stay_valid_json() {
    let trace = hand_made();
    let doc: serde_json::Value = serde_json::from_str(&chrome::to_json(&trace)).unwrap();
    let evs = doc["traceEvents"].as_array().unwrap();
    assert!(evs.iter().any(|e| e["args"]["name"] == "a\"\\\n</script>"));
    assert!(evs.iter().any(|e| e["args"]["text"] == "\u{0}\"}]"));
    for line in pubsub::to_json(&trace).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            !line.contains('<') && !line.contains('&'),
            "Go escapes HTML: {line}"
        );
        if let Some(t) = v["publishMessage"]["topic"].as_str() {
            assert_eq!(t, "<&>\u{2028}");
        }
    }
    for lines in interop::stdout_lines(&trace).values() {
        for l in lines {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }
    let dot = graph::to_dot(&trace);
    assert!(dot.contains(r#"label="a\"\\\n</script>""#), "{dot}");
    let xml = graph::to_graphml(&trace);
    let back = Topology::from_graphml(&xml).unwrap();
    assert_eq!(back.node_spec(node(0)).unwrap().name, "a\"\\\n</script>");
}

/// A trace as go-libp2p-pubsub's JSONTracer writes it (peer 0x11.. publishes message 5,
/// delivers it to itself; 0x22.. gets it from 0x11.., 0x33.. from 0x22.. and a duplicate).
const GO_JSON: &str = r#"{"type":9,"peerID":"ACQIARIgERERERERERERERERERERERERERERERERERERERERERE=","timestamp":1700000000000000000,"join":{"topic":"blocks"}}
{"type":9,"peerID":"ACQIARIgIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=","timestamp":1700000000000000100,"join":{"topic":"blocks"}}
{"type":9,"peerID":"ACQIARIgMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=","timestamp":1700000000000000200,"join":{"topic":"blocks"}}
{"type":4,"peerID":"ACQIARIgERERERERERERERERERERERERERERERERERERERERERE=","timestamp":1700000000000001000,"onNewOutboundStream":{"peerID":"ACQIARIgIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=","proto":"/meshsub/1.2.0"}}
{"type":11,"peerID":"ACQIARIgIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=","timestamp":1700000000000002000,"graft":{"peerID":"ACQIARIgMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=","topic":"blocks"}}
{"type":0,"peerID":"ACQIARIgERERERERERERERERERERERERERERERERERERERERERE=","timestamp":1700000001000000000,"publishMessage":{"messageID":"AAAAAAAAAAU=","topic":"blocks"}}
{"type":3,"peerID":"ACQIARIgERERERERERERERERERERERERERERERERERERERERERE=","timestamp":1700000001000000500,"deliverMessage":{"messageID":"AAAAAAAAAAU=","topic":"blocks","receivedFrom":"ACQIARIgERERERERERERERERERERERERERERERERERERERERERE="}}
{"type":7,"peerID":"ACQIARIgERERERERERERERERERERERERERERERERERERERERERE=","timestamp":1700000001000000600,"sendRPC":{"sendTo":"ACQIARIgIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=","meta":{"messages":[{"messageID":"AAAAAAAAAAU=","topic":"blocks"}]}}}
{"type":6,"peerID":"ACQIARIgIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=","timestamp":1700000001040000000,"recvRPC":{"receivedFrom":"ACQIARIgERERERERERERERERERERERERERERERERERERERERERE=","meta":{"messages":[{"messageID":"AAAAAAAAAAU=","topic":"blocks"}]}}}
{"type":3,"peerID":"ACQIARIgIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=","timestamp":1700000001045000000,"deliverMessage":{"messageID":"AAAAAAAAAAU=","topic":"blocks","receivedFrom":"ACQIARIgERERERERERERERERERERERERERERERERERERERERERE="}}
{"type":3,"peerID":"ACQIARIgMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=","timestamp":1700000001090000000,"deliverMessage":{"messageID":"AAAAAAAAAAU=","topic":"blocks","receivedFrom":"ACQIARIgIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI="}}
{"type":2,"peerID":"ACQIARIgMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=","timestamp":1700000001095000000,"duplicateMessage":{"messageID":"AAAAAAAAAAU=","receivedFrom":"ACQIARIgERERERERERERERERERERERERERERERERERERERERERE=","topic":"blocks"}}
"#;

#[test]
fn import_of_a_go_libp2p_pubsub_json_trace() {
    let imported = pubsub::import_named(GO_JSON.as_bytes(), "go").unwrap();
    let (t, s) = (&imported.trace, &imported.summary);
    assert_eq!(s.source, pubsub::SourceFormat::Json);
    assert_eq!(s.events, 12);
    assert_eq!(s.skipped.values().sum::<usize>(), 3, "{s:?}"); // self-delivery, two RPCs
    assert_eq!(t.meta.test, "go");
    assert_eq!(t.meta.started_at_unix_ns, 1_700_000_000_000_000_000);
    let names: Vec<&str> = t.topology.nodes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["12*v5bcCx", "12*gGJGgy", "12*SSzwAz"]);
    assert_eq!(
        t.topology.nodes[0].peer_id.as_deref(),
        Some("12D3KooWAxzCBFVtEyKLnRm43gHxigCoe2d4UmkRTXhBNSv5bcCx")
    );
    let d = t.delivery(MsgId(5)).unwrap();
    assert_eq!(d.info().origin, NodeId(0));
    assert_eq!(d.info().expected, vec![NodeId(1), NodeId(2)]);
    assert_eq!(d.reach(), 1.0);
    assert_eq!(d.latency_of(NodeId(1)), Some(ms(45)));
    assert_eq!(d.latency_of(NodeId(2)), Some(ms(90)));
    assert_eq!(d.hops(NodeId(2)), Some(2));
    assert_eq!(d.duplicates_per_node()[&NodeId(2)], 1);
    // Connected, grafted or passing messages: the links.
    assert_eq!(t.topology.links.len(), 3);
    // The same trace gzip-compressed, and as protobuf, import the same.
    let again = pubsub::to_protobuf(t);
    let back = pubsub::import_named(&again, "go").unwrap().trace;
    assert_eq!(back.events, t.events);
    assert_eq!(back.messages, t.messages);
}

#[test]
fn empty_and_unknown_input() {
    let mut trace = hand_made();
    trace.events.clear();
    assert!(pubsub::to_protobuf(&trace).is_empty());
    assert!(matches!(
        pubsub::import(&pubsub::to_protobuf(&trace)),
        Err(TraceFormatError::Empty { .. })
    ));
    let err = pubsub::import(b"{\"type\": \"BOGUS\", \"peerID\": \"AQ==\"}").unwrap_err();
    assert!(matches!(
        err,
        TraceFormatError::UnknownEventType {
            at: Location::Line(1),
            ..
        }
    ));
    assert!(err.to_string().contains("line 1"), "{err}");
}
