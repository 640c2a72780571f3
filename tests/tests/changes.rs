//! Changes at run time: link shapes, stopped and restarted nodes, added nodes, overlays
//! routed through a multi-hop underlay.

use meshsim::{DEFAULT_TOPIC, EventKind, LinkShape, Overlay, Topology, ms, node, secs};
use meshsim_tests::timing_within;

#[meshsim::test(backend = "both", seed = 4)]
async fn changing_a_link_changes_delivery_time(sim: meshsim::Sim) -> meshsim::Result<()> {
    let mut sim = sim.start(Topology::line(3)?.with_latency(ms(20))).await?;
    let m1 = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let before = sim
        .wait_delivered(m1, secs(5))
        .await?
        .latency_of(node(2))
        .expect("delivered");
    sim.set_link(node(1), node(2), LinkShape::latency(ms(120)))
        .await?;
    let m2 = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let after = sim
        .wait_delivered(m2, secs(5))
        .await?
        .latency_of(node(2))
        .expect("delivered");
    timing_within("before the change", before, ms(40)..ms(50))?;
    timing_within("after the change", after, ms(140)..ms(150))?;
    assert!(
        sim.trace()
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::LinkChanged { .. }))
    );
    Ok(())
}

#[meshsim::test(backend = "both", seed = 6)]
async fn per_direction_shapes_apply_separately(sim: meshsim::Sim) -> meshsim::Result<()> {
    let mut net = Topology::with_nodes(2);
    net.link_directed(
        node(0),
        node(1),
        LinkShape::latency(ms(15)),
        LinkShape::latency(ms(60)),
    )?;
    let sim = sim.start(net).await?;
    let there = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let back = sim.publish(node(1), DEFAULT_TOPIC, 64).await?;
    let t1 = sim
        .wait_delivered(there, secs(5))
        .await?
        .latency_of(node(1))
        .expect("delivered");
    let t2 = sim
        .wait_delivered(back, secs(5))
        .await?
        .latency_of(node(0))
        .expect("delivered");
    timing_within("0 -> 1", t1, ms(15)..ms(25))?;
    timing_within("1 -> 0", t2, ms(60)..ms(70))?;
    Ok(())
}

#[meshsim::test(backend = "both", seed = 8)]
async fn stopped_node_misses_messages_until_restarted(sim: meshsim::Sim) -> meshsim::Result<()> {
    let mut sim = sim.start(Topology::ring(6)?.with_latency(ms(10))).await?;
    sim.stop_node(node(3)).await?;
    let m1 = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    // n3 was stopped before publishing, so it is not expected; the others all get it.
    let d1 = sim.wait_delivered(m1, secs(5)).await?;
    assert!(!d1.info().expected.contains(&node(3)));
    assert_eq!(d1.latency_of(node(3)), None);
    // Its neighbours saw it go.
    let t = sim.trace();
    for peer in [node(2), node(4)] {
        assert!(t.events.iter().any(
            |e| e.node == Some(peer) && e.kind == EventKind::PeerDisconnected { peer: node(3) }
        ));
    }
    // A stopped node cannot publish, nor be restarted twice.
    assert!(matches!(
        sim.publish(node(3), DEFAULT_TOPIC, 64).await,
        Err(meshsim::Error::NodeStopped(_))
    ));
    sim.restart_node(node(3)).await?;
    assert!(matches!(
        sim.restart_node(node(3)).await,
        Err(meshsim::Error::NodeRunning(_))
    ));
    sim.wait_ready(secs(10)).await?;
    let m2 = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let d2 = sim.wait_delivered(m2, secs(5)).await?;
    assert!(d2.latency_of(node(3)).is_some());
    Ok(())
}

#[meshsim::test(backend = "both", seed = 10)]
async fn stopping_a_node_mid_test_is_explained(sim: meshsim::Sim) -> meshsim::Result<()> {
    let mut sim = sim.start(Topology::line(4)?.with_latency(ms(200))).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    // n3 is expected, but is stopped while the message travels.
    sim.stop_node(node(3)).await?;
    let err = sim
        .wait_delivered(msg, secs(2))
        .await
        .expect_err("n3 is gone")
        .to_string();
    assert!(err.contains("n3") && err.contains("stopped at"), "{err}");
    let d = sim.delivery(msg)?;
    let err = d.assert_reach(1.0).expect_err("n3 is gone").to_string();
    assert!(
        err.contains("reached 2/3 nodes") && err.contains("n3 (stopped at"),
        "{err}"
    );
    Ok(())
}

#[meshsim::test(backend = "both", seed = 12)]
async fn added_node_joins_the_mesh(sim: meshsim::Sim) -> meshsim::Result<()> {
    let mut sim = sim.start(Topology::ring(5)?.with_latency(ms(10))).await?;
    let new = sim
        .add_node(&[
            (node(0), LinkShape::latency(ms(25))),
            (node(2), LinkShape::latency(ms(25))),
        ])
        .await?;
    assert_eq!(new, node(5));
    sim.wait_ready(secs(10)).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let d = sim.wait_delivered(msg, secs(5)).await?;
    assert!(d.info().expected.contains(&new));
    let t = d.latency_of(new).expect("delivered");
    timing_within("to the added node", t, ms(25)..ms(35))?;
    // The trace's topology includes the new node and its links, so viewers and exports see it.
    let trace = sim.trace();
    assert!(
        trace
            .topology
            .nodes
            .iter()
            .any(|n| n.id == new && n.peer_id.is_some())
    );
    let links: Vec<_> = trace
        .topology
        .links
        .iter()
        .filter(|l| l.b == new)
        .map(|l| (l.a, l.a_to_b.latency))
        .collect();
    assert_eq!(links, [(node(0), ms(25)), (node(2), ms(25))]);
    assert!(trace.check().is_empty(), "{:?}", trace.check());
    Ok(())
}

#[meshsim::test(backend = "both", seed = 13)]
async fn overlay_peers_use_shortest_underlay_path(sim: meshsim::Sim) -> meshsim::Result<()> {
    // Underlay: a line of 6 with 30 ms hops. Overlay: every node peers with 2 random others,
    // so most peer connections cross several underlay hops.
    let net = Topology::line(6)?
        .with_latency(ms(30))
        .with_overlay(Overlay::RandomPeers { k: 2, seed: 13 });
    let overlay = net.overlay_pairs()?;
    let sim = sim.start(net).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let d = sim.wait_delivered(msg, secs(5)).await?;
    d.assert_reach(1.0)?;
    // Each first delivery came over an overlay connection, and took |from - to| x 30 ms on
    // top of when the sender had it.
    let first = d.first_deliveries();
    for (n, (t, from)) in &first {
        assert!(
            overlay
                .iter()
                .any(|&(a, b)| (a, b) == (*n, *from) || (a, b) == (*from, *n)),
            "{from} -> {n} is not an overlay pair"
        );
        let sent = if *from == node(0) {
            d.info().published_ns
        } else {
            first[from].0
        };
        let hop = ms(30 * (n.0 as i64 - from.0 as i64).unsigned_abs());
        let took = std::time::Duration::from_nanos(t - sent);
        timing_within(
            &format!("{from} -> {n}, path {hop:?}"),
            took,
            hop..hop + ms(10),
        )?;
    }
    Ok(())
}

#[meshsim::test(seed = 14)]
async fn heartbeat_prunes_an_oversized_mesh(sim: meshsim::Sim) -> meshsim::Result<()> {
    // Nine leaves graft the hub at once; its heartbeat must prune it back to D.
    let params = meshsim::GossipsubParams {
        heartbeat_initial_delay: ms(300),
        heartbeat_interval: ms(300),
        ..meshsim::GossipsubParams::default().with_degrees(2, 3, 4)
    };
    let sim = sim
        .with_params(params)
        .start_unready(Topology::star(10)?.with_latency(ms(5)))
        .await?;
    let hub_mesh = |t: &meshsim::Trace| {
        let mut mesh = std::collections::BTreeSet::new();
        let mut pruned_at = None;
        for e in t.events.iter().filter(|e| e.node == Some(node(0))) {
            match &e.kind {
                EventKind::Graft { peer, .. } => {
                    mesh.insert(*peer);
                }
                EventKind::Prune { peer, .. } => {
                    mesh.remove(peer);
                    pruned_at.get_or_insert(e.t_ns);
                }
                _ => {}
            }
        }
        (mesh.len(), pruned_at)
    };
    sim.wait_until(secs(10), "the hub to graft all nine leaves", |t| {
        hub_mesh(t).0 == 9
    })
    .await?;
    sim.wait_until(secs(10), "the hub's heartbeat to prune it back to D", |t| {
        let (size, pruned_at) = hub_mesh(t);
        size == 3 && pruned_at.is_some()
    })
    .await?;
    let (size, pruned_at) = hub_mesh(&sim.trace());
    assert_eq!(size, 3, "pruned back to D");
    assert!(
        pruned_at.unwrap() >= 300_000_000,
        "pruned by the heartbeat, not before it"
    );
    Ok(())
}

#[meshsim::test(seed = 15)]
async fn heartbeats_keep_running_in_a_quiet_network(sim: meshsim::Sim) -> meshsim::Result<()> {
    // After the hub prunes them, leaves sit in backoff with no traffic at all; only their own
    // heartbeats, once the backoff ends, can graft the hub again. (gossipsub 0.50.1 alone
    // stops heartbeating when nothing wakes it; meshsim's wrapper keeps the timer polled.)
    let params = meshsim::GossipsubParams {
        heartbeat_initial_delay: ms(200),
        heartbeat_interval: ms(200),
        prune_backoff: ms(1000),
        ..meshsim::GossipsubParams::default().with_degrees(2, 3, 4)
    };
    let sim = sim
        .with_params(params)
        .start_unready(Topology::star(8)?.with_latency(ms(5)))
        .await?;
    let regrafted = |t: &meshsim::Trace| {
        let mut pruned: std::collections::BTreeMap<meshsim::NodeId, u64> = Default::default();
        t.events.iter().any(|e| match (e.node, &e.kind) {
            (Some(leaf), EventKind::Prune { peer, .. }) if *peer == node(0) => {
                pruned.entry(leaf).or_insert(e.t_ns);
                false
            }
            (Some(leaf), EventKind::Graft { peer, .. }) => {
                *peer == node(0) && pruned.contains_key(&leaf)
            }
            _ => false,
        })
    };
    sim.wait_until(
        secs(10),
        "a pruned leaf to graft the hub again after its backoff",
        regrafted,
    )
    .await?;
    Ok(())
}

#[meshsim::test(seed = 16)]
async fn nodes_restarted_one_after_another_accept_connections(
    sim: meshsim::Sim,
) -> meshsim::Result<()> {
    let mut sim = sim.start(Topology::ring(5)?.with_latency(ms(5))).await?;
    sim.stop_node(node(1)).await?;
    sim.stop_node(node(2)).await?;
    sim.restart_node(node(1)).await?;
    sim.restart_node(node(2)).await?; // dials n1, whose listener must be the new one
    sim.wait_ready(secs(10)).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    sim.wait_delivered(msg, secs(5)).await?.assert_reach(1.0)?;
    Ok(())
}

#[meshsim::test(seed = 17)]
async fn failed_calls_leave_no_trace_behind(sim: meshsim::Sim) -> meshsim::Result<()> {
    let mut sim = sim.start(Topology::ring(4)?.with_latency(ms(5))).await?;
    // A publish nobody can receive fails, and does not use up a message number.
    assert!(sim.publish(node(0), "nobody-listens", 64).await.is_err());
    // An add_node that fails half-way (n0 twice) changes nothing.
    let s = LinkShape::latency(ms(5));
    assert!(sim.add_node(&[(node(0), s), (node(0), s)]).await.is_err());
    assert_eq!(sim.add_node(&[(node(1), s)]).await?, node(4));
    sim.wait_ready(secs(10)).await?;
    let msg = sim.publish(node(1), DEFAULT_TOPIC, 64).await?;
    assert_eq!(msg, meshsim::MsgId(0));
    let d = sim.wait_delivered(msg, secs(5)).await?;
    assert!(
        d.latency_of(node(0)).is_some(),
        "n0 gets the message that reuses the number"
    );
    assert_eq!(d.info().expected.len(), 4);
    Ok(())
}

#[meshsim::test(backend = "both", seed = 18)]
async fn unsubscribing_prunes_the_mesh(sim: meshsim::Sim) -> meshsim::Result<()> {
    let sim = sim.start(Topology::ring(4)?.with_latency(ms(5))).await?;
    sim.unsubscribe(node(0), DEFAULT_TOPIC).await?;
    let prunes_at_n0 = |t: &meshsim::Trace| {
        t.events
            .iter()
            .filter(|e| e.node == Some(node(0)) && matches!(e.kind, EventKind::Prune { .. }))
            .count()
    };
    sim.wait_until(secs(5), "both ring neighbours to leave n0's mesh", |t| {
        prunes_at_n0(t) == 2
    })
    .await?;
    let msg = sim.publish(node(2), DEFAULT_TOPIC, 64).await?;
    let d = sim.wait_delivered(msg, secs(5)).await?;
    assert!(!d.info().expected.contains(&node(0)));
    Ok(())
}

#[meshsim::test(backend = "both", seed = 19)]
async fn disconnecting_peers_is_recorded_on_both_sides(sim: meshsim::Sim) -> meshsim::Result<()> {
    let sim = sim.start(Topology::ring(4)?.with_latency(ms(5))).await?;
    sim.disconnect(node(0), node(1)).await?;
    let closed = |t: &meshsim::Trace, at: u32, peer: u32| {
        t.events.iter().any(|e| {
            e.node == Some(node(at)) && e.kind == EventKind::PeerDisconnected { peer: node(peer) }
        })
    };
    sim.wait_until(secs(5), "n0 and n1 to see the connection close", |t| {
        closed(t, 0, 1) && closed(t, 1, 0)
    })
    .await?;
    assert!(matches!(
        sim.disconnect(node(0), node(9)).await,
        Err(meshsim::Error::UnknownNode(_))
    ));
    Ok(())
}
