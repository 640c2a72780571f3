//! Every kind of bad input gets its typed error, naming what was wrong.

use std::path::Path;

use meshsim::node::GossipsubParams;
use meshsim::{
    Error, ImportError, LinkShape, ParamsError, Sim, Topology, TopologyError, Trace,
    TraceFileError, ms, node, secs,
};

#[test]
fn links_to_unknown_nodes_self_loops_and_repeats() {
    let mut t = Topology::with_nodes(3);
    assert_eq!(
        t.link(node(0), node(7), LinkShape::default()).map(|_| ()),
        Err(TopologyError::UnknownNode {
            node: node(7),
            nodes: 3
        })
    );
    assert_eq!(
        t.link(node(1), node(1), LinkShape::default()).map(|_| ()),
        Err(TopologyError::SelfLoop(node(1)))
    );
    t.link(node(0), node(1), LinkShape::default()).unwrap();
    assert_eq!(
        t.link(node(1), node(0), LinkShape::default()).map(|_| ()),
        Err(TopologyError::DuplicateLink(node(0), node(1)))
    );
    assert_eq!(
        t.set_link(node(1), node(2), LinkShape::default()),
        Err(TopologyError::NoSuchLink(node(1), node(2)))
    );
    let err = TopologyError::UnknownNode {
        node: node(7),
        nodes: 3,
    }
    .to_string();
    assert_eq!(err, "unknown node n7: the topology has 3 nodes (n0..n2)");
}

#[test]
fn shapes_out_of_range_name_the_link_and_field() {
    for (shape, field) in [
        (LinkShape::default().with_loss(f64::NAN), "loss"),
        (LinkShape::default().with_loss(-0.1), "loss"),
        (LinkShape::default().with_loss(1.0), "loss"),
        (LinkShape::default().with_bandwidth(0), "bandwidth"),
        (LinkShape::latency(secs(7200)), "latency"),
    ] {
        let mut t = Topology::with_nodes(2);
        t.link_directed(node(0), node(1), LinkShape::default(), shape)
            .unwrap();
        match t.validate() {
            Err(TopologyError::InvalidShape {
                from, to, field: f, ..
            }) => {
                assert_eq!((from, to, f), (node(1), node(0), field));
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn generator_parameters_are_checked() {
    let param = |r: Result<Topology, TopologyError>| match r {
        Err(TopologyError::InvalidParameter {
            generator, param, ..
        }) => (generator, param),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        param(Topology::random_regular(5, 3, 0)),
        ("random_regular", "d")
    );
    assert_eq!(
        param(Topology::random_regular(5, 5, 0)),
        ("random_regular", "d")
    );
    assert_eq!(param(Topology::ring(2)), ("ring", "n"));
    assert_eq!(
        param(Topology::erdos_renyi(5, 1.5, 0)),
        ("erdos_renyi", "p")
    );
    assert_eq!(
        param(Topology::erdos_renyi(5, f64::NAN, 0)),
        ("erdos_renyi", "p")
    );
    assert_eq!(
        param(Topology::barabasi_albert(3, 3, 0)),
        ("barabasi_albert", "n")
    );
    assert_eq!(param(Topology::grid(0, 3)), ("grid", "width"));
    let geo = meshsim::GeoParams {
        width: -1.0,
        ..Default::default()
    };
    assert_eq!(
        param(Topology::geographic(5, geo, 0)),
        ("geographic", "width")
    );
}

#[test]
fn disconnected_topologies_name_the_unreachable_nodes() {
    let mut t = Topology::with_nodes(4);
    t.link(node(0), node(1), LinkShape::default()).unwrap();
    t.link(node(2), node(3), LinkShape::default()).unwrap();
    match t.validate() {
        Err(TopologyError::Disconnected { unreachable, total }) => {
            assert_eq!((unreachable, total), (vec![node(2), node(3)], 4));
        }
        other => panic!("{other:?}"),
    }
    assert!(t.clone().allow_disconnected().validate().is_ok());
    // Overlay peers with no path through the links.
    let unroutable = t.with_overlay(meshsim::Overlay::Explicit {
        pairs: vec![(node(0), node(1)), (node(1), node(2)), (node(2), node(3))],
    });
    assert_eq!(
        unroutable.validate(),
        Err(TopologyError::NoRoute(node(1), node(2)))
    );
    assert_eq!(Topology::new().validate(), Err(TopologyError::Empty));
}

#[test]
fn gossipsub_degrees_out_of_order() {
    let p = GossipsubParams::default().with_degrees(8, 6, 12);
    assert_eq!(
        p.validate(),
        Err(ParamsError::MeshDegrees {
            d_out: 2,
            d_lo: 8,
            d: 6,
            d_hi: 12
        })
    );
    let p = GossipsubParams {
        d_hi: 4,
        ..Default::default()
    };
    assert!(matches!(
        p.validate(),
        Err(ParamsError::MeshDegrees { d_hi: 4, .. })
    ));
    let p = GossipsubParams {
        history_gossip: 9,
        ..Default::default()
    };
    assert!(matches!(
        p.validate(),
        Err(ParamsError::Invalid {
            name: "history_gossip",
            ..
        })
    ));
    let p = GossipsubParams {
        gossip_factor: f64::NAN,
        ..Default::default()
    };
    assert!(matches!(
        p.validate(),
        Err(ParamsError::Invalid {
            name: "gossip_factor",
            ..
        })
    ));
    assert!(GossipsubParams::default().validate().is_ok());
}

#[test]
fn malformed_gml_and_graphml() {
    let syntax = |r: Result<Topology, ImportError>| match r {
        Err(ImportError::Syntax { line, .. }) => line,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        syntax(Topology::from_gml(
            "graph [\n  node [ id 0 ]\n  edge [ source 0 target 1 latency \"5 ms\"\n"
        )),
        3
    );
    assert_eq!(
        syntax(Topology::from_gml("graph [\n node [ label \"x\" ]\n]")),
        2
    );
    assert_eq!(
        syntax(Topology::from_graphml(
            "<graphml><graph>\n<node id='a'>\n</graph></graphml>"
        )),
        3
    );
    match Topology::from_gml("graph [ node [ id 0 ] edge [ source 0 target 9 ] ]") {
        Err(ImportError::UnknownNode { id, .. }) => assert_eq!(id, "9"),
        other => panic!("{other:?}"),
    }
    match Topology::from_gml(
        "graph [ node [ id 0 ] node [ id 1 ] edge [ source 0 target 1 latency \"-5 ms\" ] ]",
    ) {
        Err(ImportError::Value {
            attribute, item, ..
        }) => assert_eq!(
            (attribute.as_str(), item.as_str()),
            ("latency", "edge 0 -> 1")
        ),
        other => panic!("{other:?}"),
    }
    match Topology::from_gml("graph [ node [ id 0 host_bandwidth_up \"10 Zbit\" ] ]") {
        Err(ImportError::Value { attribute, .. }) => assert_eq!(attribute, "host_bandwidth_up"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn trace_files_cut_short_or_from_the_future() {
    let dir = std::env::temp_dir().join(format!("meshsim-bad-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cut.json");
    std::fs::write(
        &path,
        "{\n  \"format\": \"meshsim-trace\",\n  \"version\": 1,\n  \"meta\": {",
    )
    .unwrap();
    match Trace::load(&path) {
        Err(TraceFileError::Parse { line, .. }) => assert_eq!(line, 4),
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, r#"{"format": "meshsim-trace", "version": 99}"#).unwrap();
    assert!(matches!(
        Trace::load(&path),
        Err(TraceFileError::Version { found: 99, .. })
    ));
    assert!(matches!(
        Trace::load(Path::new("/nonexistent/trace.json")),
        Err(TraceFileError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_backend_name() {
    assert!(matches!(
        "carrier-pigeon".parse::<meshsim::Backend>(),
        Err(Error::BackendUnavailable { .. })
    ));
}

#[meshsim::test]
async fn bad_runtime_requests(sim: Sim) -> meshsim::Result<()> {
    // Invalid input is refused before anything starts.
    let bad = sim
        .clone()
        .with_params(GossipsubParams::default().with_degrees(3, 2, 1));
    assert!(matches!(
        bad.start(Topology::ring(4)?).await,
        Err(Error::Params(_))
    ));
    // Containers run noise: plaintext is refused before any container starts.
    let plaintext_docker = sim
        .clone()
        .with_backend(meshsim::Backend::Docker)
        .with_security(meshsim::Security::Plaintext);
    match plaintext_docker.start(Topology::ring(4)?).await {
        Err(Error::BackendUnavailable { backend, reason }) => {
            assert_eq!(backend, "docker");
            assert!(reason.contains("plaintext"), "{reason}");
        }
        other => panic!("expected BackendUnavailable, got {:?}", other.map(|_| ())),
    }
    // Containers cannot run on a simulation's virtual clock (this test runs in it).
    match sim
        .clone()
        .with_backend(meshsim::Backend::Docker)
        .start(Topology::ring(4)?)
        .await
    {
        Err(Error::BackendUnavailable { backend, reason }) => {
            assert_eq!(backend, "docker");
            assert!(reason.contains("virtual time"), "{reason}");
        }
        other => panic!("expected BackendUnavailable, got {:?}", other.map(|_| ())),
    }
    let mut disconnected = Topology::with_nodes(3);
    disconnected.link(node(0), node(1), LinkShape::default())?;
    assert!(matches!(
        sim.clone().start(disconnected).await,
        Err(Error::Topology(TopologyError::Disconnected { .. }))
    ));
    let unknown = "kubernetes".parse::<meshsim::Backend>().unwrap_err();
    assert!(
        matches!(&unknown, Error::BackendUnavailable { backend, .. } if backend == "kubernetes"),
        "{unknown}"
    );

    let mut sim = sim.start(Topology::ring(4)?.with_latency(ms(5))).await?;
    assert!(
        matches!(sim.publish(node(9), "t", 64).await, Err(Error::UnknownNode(n)) if n == node(9))
    );
    assert!(matches!(
        sim.publish(node(0), "t", 4).await,
        Err(Error::Publish { .. })
    ));
    // Above the node software's limit: refused by name before a byte is allocated (usize::MAX
    // bytes could not be).
    match sim
        .publish(node(0), meshsim::DEFAULT_TOPIC, usize::MAX)
        .await
    {
        Err(Error::Publish {
            node: n, reason, ..
        }) => {
            assert_eq!(n, node(0));
            assert!(
                reason.contains("limit") && reason.contains("max_transmit_size"),
                "{reason}"
            );
        }
        other => panic!("expected Error::Publish, got {other:?}"),
    }
    // Nobody else is subscribed to "elsewhere": gossipsub refuses, and says so.
    assert!(matches!(
        sim.publish(node(0), "elsewhere", 64).await,
        Err(Error::Publish { .. })
    ));
    assert!(matches!(
        sim.wait_delivered(meshsim::MsgId(42), secs(1)).await,
        Err(Error::UnknownMessage(42))
    ));
    assert!(matches!(
        sim.partition(&[node(0)], &[node(0), node(1)]).await,
        Err(Error::Topology(_))
    ));
    assert!(matches!(
        sim.partition(&[], &[node(1)]).await,
        Err(Error::Topology(_))
    ));
    assert!(matches!(
        sim.heal(&[node(0)], &[node(1)]).await,
        Err(Error::Topology(_))
    ));
    assert!(matches!(
        sim.set_link(node(0), node(1), LinkShape::default().with_loss(2.0))
            .await,
        Err(Error::Topology(TopologyError::InvalidShape {
            field: "loss",
            ..
        }))
    ));
    assert!(matches!(
        sim.set_link(node(0), node(2), LinkShape::default()).await,
        Err(Error::Topology(TopologyError::NoSuchLink(..)))
    ));
    // A wait that cannot succeed times out with what it was waiting for.
    sim.partition(&[node(0)], &[node(1), node(2), node(3)])
        .await?;
    let msg = sim.publish(node(0), meshsim::DEFAULT_TOPIC, 64).await?;
    match sim.wait_delivered(msg, ms(300)).await {
        Err(Error::Timeout { what, .. }) => assert!(
            what.contains("reached 0/3") && what.contains("behind the partition"),
            "{what}"
        ),
        other => panic!("{other:?}"),
    }
    Ok(())
}
