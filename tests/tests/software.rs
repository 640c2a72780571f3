//! Node software of the user's own, through the public API only, as a crate outside meshsim
//! writes it: a rust-libp2p behaviour (gossipsub with a validation rule, and identify), a
//! protocol that is not libp2p (flooding on byte streams), and networks mixing them with the
//! built-in node. Also the API fixes that came with it: kill resets connections, stop closes
//! them, `wait_until` predicates may call the simulation, publishes run concurrently.

use std::collections::BTreeSet;

use meshsim::export::pubsub;
use meshsim::node::{Libp2p, NodeSoftware, Readiness};
use meshsim::{DEFAULT_TOPIC, Error, EventKind, NodeId, Sim, Topology, Trace, ms, node, secs};
use meshsim_examples::flood::Flood;
use meshsim_examples::validated::{self, PROTOCOL_VERSION, REJECT_MARKER};

/// The overlay neighbours of `n`.
fn neighbours(trace: &Trace, n: NodeId) -> BTreeSet<NodeId> {
    trace
        .topology
        .overlay
        .iter()
        .filter_map(|&(a, b)| {
            if a == n {
                Some(b)
            } else if b == n {
                Some(a)
            } else {
                None
            }
        })
        .collect()
}

/// The trace's notes at `n`.
fn notes(trace: &Trace, n: NodeId) -> Vec<&str> {
    trace
        .events
        .iter()
        .filter(|e| e.node == Some(n))
        .filter_map(|e| match &e.kind {
            EventKind::Annotation { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[meshsim::test(seed = 21)]
async fn user_behaviour_validates_and_runs_identify(sim: Sim) -> meshsim::Result<()> {
    let net = Topology::random_regular(16, 4, sim.seed())?.with_latency(ms(20));
    let sim = sim.with_software(validated::software()).start(net).await?;

    let valid = sim.publish_bytes(node(0), DEFAULT_TOPIC, b"hello").await?;
    sim.wait_delivered(valid, secs(10))
        .await?
        .assert_reach(1.0)?;

    let origin = node(5);
    let invalid = sim
        .publish_bytes(origin, DEFAULT_TOPIC, &[REJECT_MARKER, b" tx"].concat())
        .await?;
    let direct = neighbours(&sim.trace(), origin);
    // The publisher sends to its peers; each rejects, so nothing goes further. Wait for all of
    // them, then several heartbeats in which gossip (IHAVE/IWANT) could spread it.
    sim.wait_delivered_to(
        invalid,
        &direct.iter().copied().collect::<Vec<_>>(),
        secs(10),
    )
    .await?;
    sim.run_for(ms(1000)).await;
    let d = sim.delivery(invalid)?;
    for (n, (_, from)) in d.first_deliveries() {
        assert!(
            direct.contains(&n) && from == origin,
            "{n} got the rejected message from {from}: it went past the first hop"
        );
    }
    assert!(
        d.missing().len() >= sim.node_count() - 1 - direct.len(),
        "missing {:?}",
        d.missing()
    );

    let trace = sim.trace();
    // identify ran next to gossipsub: every node heard every overlay neighbour identify.
    for n in (0..16).map(node) {
        for p in neighbours(&trace, n) {
            let want = format!("identified {p}: {PROTOCOL_VERSION}");
            assert!(
                notes(&trace, n).contains(&want.as_str()),
                "{n}: no {want:?}"
            );
        }
    }
    // The observed gossipsub inside the user's behaviour recorded the mesh.
    assert!(
        trace
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Graft { .. })),
        "no grafts recorded"
    );
    let software = &trace.meta.software;
    assert_eq!(software.len(), 1);
    assert_eq!(software[0].info.name, "validated-gossip");
    assert_eq!(software[0].nodes.len(), 16);
    assert_eq!(software[0].info.params["reject_marker"], "INVALID");
    Ok(())
}

#[meshsim::test(seed = 8)]
async fn flood_reaches_everyone_no_earlier_than_its_path(sim: Sim) -> meshsim::Result<()> {
    let net = Topology::random_regular(24, 4, sim.seed())?
        .with_random_latency(ms(10), ms(60), sim.seed())
        .with_bandwidth(20_000_000);
    let sim = sim.with_software(Flood::new()).start(net).await?;
    let mut msgs = Vec::new();
    for origin in [0, 11] {
        let msg = sim.publish(node(origin), DEFAULT_TOPIC, 2048).await?;
        let d = sim.wait_delivered(msg, secs(10)).await?;
        d.assert_reach(1.0)?;
        for (n, measured) in d.latencies() {
            let (path, hops) = d.path_latency(n).expect("first deliveries follow links");
            assert!(
                measured >= path,
                "{n}: {measured:?} after publish, but its {hops}-hop path takes {path:?}"
            );
        }
        msgs.push(msg);
    }
    // Let the last copies arrive: flooding sends every node a copy from each neighbour.
    sim.run_for(ms(300)).await;
    let dir = sim.trace_file().parent().expect("trace dir").to_path_buf();
    let trace = sim.stop().await;
    for &msg in &msgs {
        let dups: usize = trace.delivery(msg)?.duplicates_per_node().values().sum();
        assert!(
            dups > 0,
            "{msg}: flooding on a 4-regular graph makes duplicates"
        );
    }
    assert_eq!(
        trace.meta.node_software,
        format!("flood {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(trace.check().is_empty(), "{:?}", trace.check());

    // Everything downstream works as for gossipsub: the viewer, and the exports.
    let viewer = dir.join("viewer.html");
    meshsim::view::write(&trace, &viewer)?;
    assert!(
        std::fs::metadata(&viewer)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    );
    let evs = pubsub::read_events(&pubsub::to_protobuf(&trace)).expect("export decodes");
    let delivered = |t: i32| evs.iter().filter(|e| e.r#type == Some(t)).count();
    let count = |f: fn(&EventKind) -> bool| trace.events.iter().filter(|e| f(&e.kind)).count();
    assert_eq!(
        delivered(3),
        count(|k| matches!(k, EventKind::Delivered { .. }))
    );
    assert_eq!(
        delivered(2),
        count(|k| matches!(k, EventKind::Duplicate { .. }))
    );
    let files = meshsim::export::write_all(&trace, &dir.join("exports"))?;
    assert!(!files.is_empty());
    Ok(())
}

/// Gossipsub written by the user (defaults but a 100 ms heartbeat), to mix with the
/// built-in node.
fn user_gossipsub() -> impl NodeSoftware {
    Libp2p::new("user-gossipsub", "0.1", |ctx| {
        let config = libp2p::gossipsub::ConfigBuilder::default()
            .heartbeat_interval(ctx.dilate(ms(100)))
            .build()?;
        ctx.gossipsub(config)
    })
    .with_readiness(Readiness::Mesh { d_lo: 5 })
}

#[meshsim::test(seed = 4)]
async fn mixed_network_gossips_across_software(sim: Sim) -> meshsim::Result<()> {
    let net = Topology::random_regular(12, 4, sim.seed())?.with_latency(ms(15));
    let odd: Vec<NodeId> = (0..12).filter(|i| i % 2 == 1).map(node).collect();
    let sim = sim
        .with_software_on(odd.clone(), user_gossipsub())
        .start(net)
        .await?;
    for origin in [node(0), node(1)] {
        let msg = sim.publish(origin, DEFAULT_TOPIC, 512).await?;
        sim.wait_delivered(msg, secs(10)).await?.assert_reach(1.0)?;
    }
    let meta = sim.trace().meta;
    assert_eq!(meta.software.len(), 2, "{:?}", meta.software);
    assert_eq!(meta.software[0].info.name, "rust-libp2p");
    assert_eq!(meta.software[1].info.name, "user-gossipsub");
    assert_eq!(meta.software[1].nodes, odd);
    assert!(
        meta.node_software.contains(" + user-gossipsub 0.1"),
        "{}",
        meta.node_software
    );
    Ok(())
}

#[meshsim::test(seed = 2)]
async fn kill_resets_connections_and_stop_closes_them(sim: Sim) -> meshsim::Result<()> {
    // A line n0 - n1 - n2 - n3 - n4: n1 is stopped, n3 killed.
    let net = Topology::line(5)?.with_latency(ms(10));
    let mut sim = sim.with_software(Flood::new()).start(net).await?;
    sim.stop_node(node(1)).await?;
    sim.kill_node(node(3)).await?;
    let ended = |trace: &Trace, n: u32, peer: u32, how: &str| {
        notes(trace, node(n)).contains(&format!("flood: n{peer} {how} the connection").as_str())
    };
    // The predicate calls back into the simulation: it must not deadlock.
    sim.wait_until(secs(5), "neighbours to see the connections end", |_| {
        let trace = sim.trace();
        sim.running().len() == 3
            && [(0, 1), (2, 1)]
                .iter()
                .all(|&(n, p)| ended(&trace, n, p, "closed"))
            && [(2, 3), (4, 3)]
                .iter()
                .all(|&(n, p)| ended(&trace, n, p, "reset"))
    })
    .await?;
    let trace = sim.trace();
    for (n, p, how) in [
        (0, 1, "reset"),
        (2, 1, "reset"),
        (2, 3, "closed"),
        (4, 3, "closed"),
    ] {
        assert!(
            !ended(&trace, n, p, how),
            "n{n} saw n{p}'s connection {how}"
        );
    }
    Ok(())
}

#[meshsim::test(seed = 6)]
async fn publishes_run_concurrently(sim: Sim) -> meshsim::Result<()> {
    let sim = sim.start(Topology::ring(6)?.with_latency(ms(10))).await?;
    let (a, b) = tokio::join!(
        sim.publish(node(0), DEFAULT_TOPIC, 64),
        sim.publish(node(3), DEFAULT_TOPIC, 64)
    );
    let (a, b) = (a?, b?);
    assert_ne!(a, b);
    for msg in [a, b] {
        sim.wait_delivered(msg, secs(10)).await?.assert_reach(1.0)?;
    }
    Ok(())
}

#[tokio::test]
async fn software_on_an_unknown_node_is_refused() {
    let err = Sim::new("software.unknown_node")
        .unwrap()
        .with_software_on([node(9)], Flood::new())
        .start(Topology::ring(3).unwrap())
        .await
        .expect_err("n9 is not in a 3-node ring");
    assert!(
        matches!(err, Error::UnknownNode(n) if n == node(9)),
        "{err}"
    );
}

#[tokio::test]
async fn a_behaviour_that_fails_to_build_fails_the_start() {
    let broken = Libp2p::new("broken", "0", |ctx| {
        if ctx.node() == node(2) {
            return Err("no config for n2".into());
        }
        let config = libp2p::gossipsub::ConfigBuilder::default().build()?;
        ctx.gossipsub(config)
    });
    let err = Sim::new("software.broken")
        .unwrap()
        .with_software(broken)
        .start(Topology::ring(3).unwrap())
        .await
        .expect_err("n2 cannot be built");
    let text = err.to_string();
    assert!(
        text.contains("n2") && text.contains("no config for n2"),
        "{text}"
    );
}

#[tokio::test]
async fn docker_refuses_software_it_cannot_run() {
    let err = Sim::new("software.docker")
        .unwrap()
        .with_backend(meshsim::Backend::Docker)
        .with_software(Flood::new())
        .start(Topology::ring(3).unwrap())
        .await
        .expect_err("flood runs in process only");
    assert!(matches!(err, Error::BackendUnavailable { .. }), "{err}");
}

/// Gossipsub with peer scoring on, in which n1 gives n0 an application score far below the
/// graylist threshold as soon as it learns n0's subscription: an attack-resistance test's
/// building block, which `GossipsubParams` alone cannot express.
#[derive(libp2p::swarm::NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Distrustful {
    gossipsub: meshsim::node::Gossipsub,
}

impl meshsim::node::Libp2pBehaviour for Distrustful {
    fn gossipsub(&mut self) -> Option<&mut meshsim::node::Gossipsub> {
        Some(&mut self.gossipsub)
    }

    fn on_event(&mut self, event: DistrustfulEvent, events: &meshsim::node::NodeEvents) {
        let DistrustfulEvent::Gossipsub(libp2p::gossipsub::Event::Subscribed { peer_id, .. }) =
            event
        else {
            return;
        };
        // `false` when scoring is off.
        if events.node() == node(1)
            && events.peers().node(&peer_id) == Some(node(0))
            && self.gossipsub.set_application_score(&peer_id, -100.0)
        {
            events.note("graylisted n0");
        }
    }
}

fn distrustful(scoring: bool) -> impl NodeSoftware {
    Libp2p::new("distrustful", "0.1", move |ctx| {
        let config = libp2p::gossipsub::ConfigBuilder::default()
            .heartbeat_interval(ctx.dilate(ms(100)))
            .build()?;
        let mut gossipsub = ctx.gossipsub(config)?;
        if scoring {
            gossipsub.with_peer_score(
                libp2p::gossipsub::PeerScoreParams::default(),
                libp2p::gossipsub::PeerScoreThresholds::default(),
            )?;
        }
        Ok(Distrustful { gossipsub })
    })
    // Ready once each node knows its peers' subscriptions: n1 may refuse n0 a mesh place.
    .with_readiness(Readiness::Mesh { d_lo: 0 })
}

#[meshsim::test(seed = 12)]
async fn peer_scoring_graylists_through_a_user_behaviour(sim: Sim) -> meshsim::Result<()> {
    // n0 - n1 - n2; with scoring, n1 graylists n0 and so drops everything n0 sends.
    for scoring in [false, true] {
        let sim = sim
            .clone()
            .with_software(distrustful(scoring))
            .start(Topology::line(3)?.with_latency(ms(10)))
            .await?;
        if scoring {
            // Graylisted, and out of n1's mesh (the next heartbeat prunes it), so that n1
            // sends it nothing either.
            let out_of_mesh = |t: &Trace| {
                let mesh_changes = t.events.iter().filter(|e| e.node == Some(node(1)));
                let last = mesh_changes
                    .filter_map(|e| match e.kind {
                        EventKind::Graft { peer, .. } if peer == node(0) => Some(true),
                        EventKind::Prune { peer, .. } if peer == node(0) => Some(false),
                        _ => None,
                    })
                    .next_back();
                notes(t, node(1)).contains(&"graylisted n0") && last != Some(true)
            };
            sim.wait_until(
                secs(5),
                "n1 to graylist n0 and drop it from its mesh",
                out_of_mesh,
            )
            .await?;
        }
        let from_n0 = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
        let from_n2 = sim.publish(node(2), DEFAULT_TOPIC, 64).await?;
        if !scoring {
            assert!(!notes(&sim.trace(), node(1)).contains(&"graylisted n0"));
            sim.wait_delivered(from_n0, secs(5))
                .await?
                .assert_reach(1.0)?;
            sim.wait_delivered(from_n2, secs(5))
                .await?
                .assert_reach(1.0)?;
            continue;
        }
        // n2's message reaches n1, which will not forward to a graylisted peer; n0's goes
        // nowhere. Several heartbeats give gossip its chance to spread either.
        sim.wait_delivered_to(from_n2, &[node(1)], secs(5)).await?;
        sim.run_for(ms(1000)).await;
        assert_eq!(sim.delivery(from_n0)?.missing(), [node(1), node(2)]);
        assert_eq!(sim.delivery(from_n2)?.missing(), [node(0)]);
    }
    Ok(())
}

/// n1 listens and never accepts; n0, told to connect, dials it until refused and notes how
/// many dials got through.
struct Backlog;

impl NodeSoftware for Backlog {
    fn info(&self) -> meshsim::SoftwareInfo {
        meshsim::SoftwareInfo::new("backlog", "0")
    }

    fn start(
        &self,
        ctx: meshsim::node::NodeContext,
    ) -> Result<meshsim::node::NodeTask, meshsim::node::BoxError> {
        let meshsim::node::NodeContext {
            network,
            mut commands,
            events,
            ..
        } = ctx;
        let listener = network.listen()?;
        Ok(Box::pin(async move {
            let mut held = Vec::new();
            while let Some(cmd) = commands.recv().await {
                match cmd {
                    meshsim::node::Command::Connect(c) => loop {
                        match network.dial(c.peer()).await {
                            Ok(conn) => held.push(conn),
                            Err(e) => {
                                events.note(format!(
                                    "{} dials, then {:?}: {e}",
                                    held.len(),
                                    e.kind()
                                ));
                                break;
                            }
                        }
                    },
                    meshsim::node::Command::Subscribe(r) => r.done(Ok(())),
                    _ => {}
                }
            }
            drop(listener);
        }))
    }
}

#[meshsim::test]
async fn a_node_that_never_accepts_refuses_dials_beyond_its_backlog(
    sim: Sim,
) -> meshsim::Result<()> {
    let sim = sim
        .with_software(Backlog)
        .start_unready(Topology::line(2)?)
        .await?;
    let refused = |t: &Trace| !notes(t, node(0)).is_empty();
    sim.wait_until(secs(30), "n0 to be refused", refused)
        .await?;
    let want = format!(
        "{} dials, then ConnectionRefused: n1's listen backlog is full ({} connections not yet accepted)",
        meshsim::node::LISTEN_BACKLOG,
        meshsim::node::LISTEN_BACKLOG
    );
    assert_eq!(notes(&sim.trace(), node(0)), [want.as_str()]);
    Ok(())
}
