//! Gossip over shaped links: delivery, timing along the propagation tree, partitions, loss,
//! and duplicates counted exactly where they can be worked out by hand.

use meshsim::node::{BoxError, Command, NodeContext, NodeSoftware, NodeTask, SoftwareInfo};
use meshsim::{DEFAULT_TOPIC, EventKind, LinkShape, Topology, ms, node, secs};
use meshsim_tests::timing_eq;
use tokio::io::AsyncReadExt;

/// Per-hop allowance for processing and timer resolution (1 ms tokio timer, debug build).
const PER_HOP: std::time::Duration = ms(4);

#[meshsim::test(backend = "both", seed = 11)]
async fn ring_delivers_with_hop_latency(sim: meshsim::Sim) -> meshsim::Result<()> {
    let sim = sim.start(Topology::ring(10)?.with_latency(ms(30))).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 256).await?;
    let d = sim.wait_delivered(msg, secs(10)).await?;
    d.assert_reach(1.0)?;
    // On a ring the tree is the two arcs: node k is min(k, 10 - k) hops away.
    for k in 1..10u32 {
        timing_eq(
            &format!("hops to n{k}"),
            d.hops(node(k)),
            Some(k.min(10 - k) as usize),
        )?;
    }
    d.assert_path_latency_within(PER_HOP, ms(2))?;
    Ok(())
}

#[meshsim::test(seed = 5)]
async fn random_graph_delivers_with_path_latency(sim: meshsim::Sim) -> meshsim::Result<()> {
    let net = Topology::random_regular(30, 4, sim.seed())?.with_random_latency(
        ms(20),
        ms(100),
        sim.seed(),
    );
    let sim = sim.start(net).await?;
    for origin in [0, 17] {
        let msg = sim.publish(node(origin), DEFAULT_TOPIC, 512).await?;
        let d = sim.wait_delivered(msg, secs(10)).await?;
        d.assert_reach(1.0)?;
        d.assert_path_latency_within(PER_HOP, ms(2))?;
    }
    Ok(())
}

#[meshsim::test(backend = "both", seed = 3)]
async fn partitioned_node_receives_only_after_heal(sim: meshsim::Sim) -> meshsim::Result<()> {
    let net = Topology::random_regular(12, 4, sim.seed())?.with_latency(ms(20));
    let mut sim = sim.start(net).await?;
    let cut = [node(7)];
    let rest: Vec<_> = (0..12).filter(|&i| i != 7).map(node).collect();
    sim.partition(&cut, &rest).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 128).await?;
    sim.wait_delivered_to(msg, &rest[1..], secs(10)).await?;
    // An observation window: several heartbeats, time enough for gossip to try.
    sim.run_for(secs(2)).await;
    let before = sim.delivery(msg)?;
    assert_eq!(before.missing(), vec![node(7)]);
    let err = before
        .assert_reach(1.0)
        .expect_err("n7 is cut off")
        .to_string();
    assert!(
        err.contains("n7") && err.contains("behind the partition made at"),
        "{err}"
    );

    let healed_at = sim.trace().events.last().map(|e| e.t_ns).unwrap_or(0);
    sim.heal(&cut, &rest).await?;
    let after = sim.wait_delivered(msg, secs(10)).await?;
    after.assert_reach(1.0)?;
    let (t, _) = after.first_deliveries()[&node(7)];
    assert!(
        t >= healed_at,
        "n7 got the message at {t} ns, before the heal at {healed_at} ns"
    );
    Ok(())
}

#[meshsim::test(backend = "both", seed = 9)]
async fn loss_adds_retransmission_delay(sim: meshsim::Sim) -> meshsim::Result<()> {
    let net = Topology::random_regular(16, 4, sim.seed())?.with_latency(ms(20));
    let mut sim = sim.start(net).await?;
    let mean = |sim_latencies: Vec<std::time::Duration>| {
        sim_latencies.iter().sum::<std::time::Duration>() / sim_latencies.len().max(1) as u32
    };
    let mut lossless = Vec::new();
    for _ in 0..4 {
        let msg = sim.publish(node(0), DEFAULT_TOPIC, 2000).await?;
        lossless.extend(
            sim.wait_delivered(msg, secs(10))
                .await?
                .latencies()
                .into_values(),
        );
    }
    for l in sim.trace().topology.links.clone() {
        sim.set_link(l.a, l.b, LinkShape::latency(ms(20)).with_loss(0.3))
            .await?;
    }
    let mut lossy = Vec::new();
    for _ in 0..4 {
        let msg = sim.publish(node(0), DEFAULT_TOPIC, 2000).await?;
        let d = sim.wait_delivered(msg, secs(30)).await?;
        d.assert_reach(1.0)?;
        lossy.extend(d.latencies().into_values());
    }
    let (clean, lost) = (mean(lossless), mean(lossy));
    // Each hop loses a 2 kB write (two packets) with probability 0.51, costing RTT + 200 ms:
    // far more than the 20 ms hops themselves.
    timing_eq(
        &format!("mean latency with loss {lost:?} vs without {clean:?}: 50 ms apart or more"),
        lost > clean + ms(50),
        true,
    )?;
    Ok(())
}

/// Counts the duplicates of `msg` per node once `total` have arrived, then watches a while
/// longer so that extra copies would be seen too.
async fn settled_duplicates(
    sim: &meshsim::Simulation,
    msg: meshsim::MsgId,
    total: usize,
) -> meshsim::Result<std::collections::BTreeMap<meshsim::NodeId, usize>> {
    sim.wait_delivered(msg, secs(10)).await?;
    let count = |t: &meshsim::Trace| {
        t.events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Duplicate { msg: m, .. } if *m == msg))
            .count()
    };
    sim.wait_until(secs(10), &format!("{total} duplicates"), |t| {
        count(t) >= total
    })
    .await?;
    sim.run_for(ms(500)).await;
    Ok(sim.delivery(msg)?.duplicates_per_node())
}

#[meshsim::test(seed = 2)]
async fn duplicates_counted_exactly_on_small_graphs(sim: meshsim::Sim) -> meshsim::Result<()> {
    // Small messages (no IDONTWANT), every peer in the mesh (degree <= D_lo), equal latencies.
    // A node forwards the first copy at once to its mesh peers except the one it came from
    // and the origin.
    type Rule = fn(&meshsim::Delivery) -> Vec<(u32, usize)>;
    let cases: Vec<(&str, Topology, Rule)> = vec![
        // A line: each node hears it once.
        ("line", Topology::line(5)?, |_| vec![]),
        // Odd ring: n2 and n3 hear it from both sides at the same moment.
        ("ring5", Topology::ring(5)?, |_| vec![(2, 1), (3, 1)]),
        // Even ring: the arcs meet at n3, which hears it twice and forwards its first copy on
        // to whichever of n2 and n4 it did not come from: that one hears it twice too.
        ("ring6", Topology::ring(6)?, |d| {
            let first = d.propagation_tree()[&node(3)];
            let other = if first == node(2) { 4 } else { 2 };
            vec![(3, 1), (other, 1)]
        }),
        // K4: n0 sends to all three; each forwards to the two others (never back to n0).
        ("k4", Topology::full_mesh(4)?, |_| {
            vec![(1, 2), (2, 2), (3, 2)]
        }),
    ];
    for (name, net, rule) in cases {
        let n = net.node_count();
        let run = sim.clone().start(net.with_latency(ms(10))).await?;
        let msg = run.publish(node(0), DEFAULT_TOPIC, 64).await?;
        let d = run.wait_delivered(msg, secs(10)).await?;
        let want = rule(&d);
        let total = want.iter().map(|(_, d)| d).sum();
        let got = settled_duplicates(&run, msg, total).await?;
        let mut expected: std::collections::BTreeMap<_, _> =
            (0..n as u32).map(|i| (node(i), 0)).collect();
        for (i, d) in want {
            expected.insert(node(i), d);
        }
        // Which copies count as duplicates depends on copies racing over equal latencies.
        timing_eq(&format!("duplicates per node on {name}"), got, expected)?;
        // Every copy crossed one peer connection: first deliveries plus duplicates.
        let copies: usize = run.trace().per_link_copies().values().sum();
        timing_eq(
            &format!("copies over links on {name}"),
            copies,
            (n - 1) + total,
        )?;
        run.stop().await;
    }
    Ok(())
}

/// Node software that accepts connections and notes the first two multistream-select
/// messages the dialer sends (its header and the security protocol it proposes), without
/// answering: what a libp2p node puts on the wire.
struct Eavesdropper;

impl NodeSoftware for Eavesdropper {
    fn info(&self) -> SoftwareInfo {
        SoftwareInfo::new("eavesdropper", "0")
    }

    fn start(&self, ctx: NodeContext) -> Result<NodeTask, BoxError> {
        let mut listener = ctx.network.listen()?;
        let (mut commands, events) = (ctx.commands, ctx.events);
        Ok(Box::pin(async move {
            loop {
                tokio::select! {
                    cmd = commands.recv() => match cmd {
                        None => break,
                        Some(Command::Subscribe(r) | Command::Unsubscribe(r)) => r.done(Ok(())),
                        Some(_) => {}
                    },
                    Some(mut conn) = listener.accept() => {
                        let events = events.clone();
                        tokio::spawn(async move {
                            // Each message: a one-byte varint length (all are short), a line.
                            for _ in 0..2 {
                                let mut len = [0u8; 1];
                                if conn.read_exact(&mut len).await.is_err() {
                                    return;
                                }
                                let mut line = vec![0; usize::from(len[0])];
                                if conn.read_exact(&mut line).await.is_err() {
                                    return;
                                }
                                let line = String::from_utf8_lossy(&line);
                                events.note(format!("read {}", line.trim_end()));
                            }
                            // Hold the connection until the dialer gives up.
                            let _ = conn.read(&mut [0u8; 1]).await;
                        });
                    }
                }
            }
        }))
    }
}

#[meshsim::test]
async fn the_security_upgrade_is_what_goes_on_the_wire(sim: meshsim::Sim) -> meshsim::Result<()> {
    for (security, proposed) in [
        (meshsim::Security::Noise, "/noise"),
        (meshsim::Security::Plaintext, "/plaintext/2.0.0"),
    ] {
        // n0 (built-in node) dials n1, which only listens.
        let sim = sim
            .clone()
            .with_security(security)
            .with_software_on([node(1)], Eavesdropper)
            .start_unready(Topology::line(2)?.with_latency(ms(5)))
            .await?;
        let read = |t: &meshsim::Trace| -> Vec<String> {
            t.events
                .iter()
                .filter(|e| e.node == Some(node(1)))
                .filter_map(|e| match &e.kind {
                    EventKind::Annotation { text } => Some(text.clone()),
                    _ => None,
                })
                .collect()
        };
        sim.wait_until(secs(5), "n1 to read n0's proposal", |t| read(t).len() >= 2)
            .await?;
        assert_eq!(
            read(&sim.trace()),
            [
                "read /multistream/1.0.0".to_string(),
                format!("read {proposed}")
            ],
            "{security:?}"
        );
    }
    Ok(())
}

#[meshsim::test]
async fn plaintext_nodes_gossip_too(sim: meshsim::Sim) -> meshsim::Result<()> {
    // The cheaper security upgrade for large in-process networks: same protocol, same timing.
    let sim = sim.with_security(meshsim::Security::Plaintext);
    let sim = sim.start(Topology::ring(10)?.with_latency(ms(20))).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 1000).await?;
    let d = sim.wait_delivered(msg, secs(5)).await?;
    d.assert_reach(1.0)?;
    d.assert_path_latency_within(ms(5), ms(3))?;
    assert!(
        d.trace().meta.node_software.ends_with("(plaintext, yamux)"),
        "{}",
        d.trace().meta.node_software
    );
    Ok(())
}

#[meshsim::test(seed = 31)]
async fn content_hash_ids_make_identical_payloads_one_message(
    sim: meshsim::Sim,
) -> meshsim::Result<()> {
    use meshsim::node::MessageIdFn;
    // n0 publishes; once everyone has it, n3 publishes the very same bytes.
    for id in [MessageIdFn::ContentHash, MessageIdFn::SourceSeqno] {
        let params = meshsim::GossipsubParams {
            message_id: id,
            ..Default::default()
        };
        let sim = sim
            .clone()
            .with_params(params)
            .start(Topology::line(4)?.with_latency(ms(10)))
            .await?;
        let msg = sim.publish(node(0), DEFAULT_TOPIC, 256).await?;
        sim.wait_delivered(msg, secs(5)).await?.assert_reach(1.0)?;
        let dups = |t: &meshsim::Trace, at: u32| {
            t.events
                .iter()
                .filter(|e| {
                    e.node == Some(node(at))
                        && matches!(e.kind, EventKind::Duplicate { msg: m, .. } if m == msg)
                })
                .count()
        };
        let before = sim.trace();
        let again = sim.publish_again(node(3), msg).await;
        match id {
            // Same bytes, same id: n3 has seen it, and gossipsub refuses a duplicate.
            MessageIdFn::ContentHash => match again {
                Err(meshsim::Error::Publish {
                    node: n, reason, ..
                }) => {
                    assert_eq!(n, node(3));
                    assert!(reason.contains("Duplicate"), "{reason}");
                }
                other => panic!("expected a refused duplicate, got {other:?}"),
            },
            // Another source, another id: a new message that spreads again, its copies
            // recorded as duplicates of the same payload at n2 and n1.
            _ => {
                again?;
                sim.wait_until(secs(5), "the second copy to reach n1 and n2", |t| {
                    dups(t, 1) > dups(&before, 1) && dups(t, 2) > dups(&before, 2)
                })
                .await?;
                let trace = sim.trace();
                assert!(trace.check().is_empty(), "{:?}", trace.check());
                assert!(!trace.delivery(msg)?.info().expected.contains(&node(3)));
            }
        }
    }
    Ok(())
}
