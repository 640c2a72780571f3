//! The Docker backend: real containers, real TCP, links shaped in each container's kernel.
//! Most behaviour is tested on both backends (`backend = "both"` in `gossip.rs` and
//! `changes.rs`); these are the container-only checks.
//! Without a Docker engine these tests skip with a message, unless `CI` or
//! `MESHSIM_REQUIRE_DOCKER` is set: then they fail.

use meshsim::{DEFAULT_TOPIC, EventKind, NodeId, Topology, ms, node, secs};

/// A 10-node ring with 50 ms links: every first delivery arrives within a few ms per hop of
/// the configured latency along its path, on real packets.
#[meshsim::test(backend = "docker", seed = 4, timeout = "240s")]
async fn ring_of_containers_delivers_at_configured_latency(
    sim: meshsim::Sim,
) -> meshsim::Result<()> {
    let sim = sim.start(Topology::ring(10)?.with_latency(ms(50))).await?;
    let shaping = sim.trace().meta.shaping;
    assert!(
        shaping.contains("netem") || shaping.contains("nfqueue"),
        "shaping mode recorded: {shaping}"
    );
    for origin in [0, 5] {
        let msg = sim.publish(node(origin), DEFAULT_TOPIC, 512).await?;
        let d = sim.wait_delivered(msg, secs(20)).await?;
        d.assert_reach(1.0)?;
        d.assert_path_latency_within(ms(5), ms(3))?;
    }
    let stats = sim.container_stats().await?;
    assert_eq!(stats.len(), 10);
    assert!(stats.iter().all(|s| s.rss_bytes > 1 << 20), "{stats:?}");
    // Containers read the host's kernel clock: the measured offset is zero, to within the
    // half round trip that bounds the measurement (a container reporting its wall clock, or
    // a harness mixing clocks, would be off by years).
    for s in &stats {
        assert!(
            s.clock_offset_ns.unsigned_abs() <= s.clock_round_trip.as_nanos() as u64 / 2 + 1,
            "{s:?}"
        );
    }
    if shaping.contains("nfqueue") {
        assert!(stats.iter().all(|s| s.packets_delayed > 0), "{stats:?}");
    }
    Ok(())
}

/// A container killed mid-test shows up in the trace, and the delivery assertion says so.
#[meshsim::test(backend = "docker", seed = 8, timeout = "240s")]
async fn killed_container_is_in_the_trace_and_explained(sim: meshsim::Sim) -> meshsim::Result<()> {
    let mut sim = sim.start(Topology::ring(6)?.with_latency(ms(10))).await?;
    sim.kill_node(node(3)).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let others: Vec<NodeId> = [1, 2, 4, 5].into_iter().map(node).collect();
    sim.wait_delivered_to(msg, &others, secs(20)).await?;
    let trace = sim.trace();
    assert!(trace.events.iter().any(|e| e.node == Some(node(3))
        && matches!(&e.kind, EventKind::NodeDown { reason } if reason.contains("killed"))));
    // n3 was down at publish, so it is not expected; the trace still explains its absence.
    let d = sim.delivery(msg)?;
    d.assert_reach(1.0)?;
    assert!(!d.info().expected.contains(&node(3)));
    // Restarting brings it back with the same identity; it gets the next message.
    sim.restart_node(node(3)).await?;
    sim.wait_ready(secs(30)).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    sim.wait_delivered(msg, secs(20)).await?.assert_reach(1.0)?;
    Ok(())
}

/// A container that dies without the harness asking (here `docker kill` from outside) is
/// noticed, recorded with its exit, and cited when a delivery assertion fails.
#[meshsim::test(backend = "docker", seed = 5, timeout = "240s")]
async fn container_dying_on_its_own_is_recorded_and_explained(
    sim: meshsim::Sim,
) -> meshsim::Result<()> {
    let mut sim = sim.start(Topology::ring(4)?.with_latency(ms(10))).await?;
    // Hold n2's traffic so the message cannot reach it before it dies.
    let rest: Vec<NodeId> = [0, 1, 3].into_iter().map(node).collect();
    sim.partition(&[node(2)], &rest).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    sim.wait_delivered_to(msg, &rest[1..], secs(20)).await?;

    let pid = std::process::id();
    let names = std::process::Command::new("docker")
        .args(["ps", "--filter", "label=meshsim.managed=true", "--format"])
        .arg("{{.Names}} {{.Label \"meshsim.owner\"}}")
        .output()
        .expect("the docker CLI");
    let names = String::from_utf8_lossy(&names.stdout).into_owned();
    let n2 = names
        .lines()
        .find(|l| {
            l.contains(&format!("/{pid}/"))
                && l.split(' ').next().is_some_and(|n| n.ends_with("-n2"))
        })
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("n2's container among:\n{names}"))
        .to_string();
    let killed = std::process::Command::new("docker")
        .args(["kill", &n2])
        .status()
        .expect("docker kill");
    assert!(killed.success());

    sim.wait_until(secs(20), "n2 to be recorded down", |t| {
        t.events.iter().any(|e| {
            e.node == Some(node(2))
                && matches!(&e.kind, EventKind::NodeDown { reason } if reason.contains("unexpectedly"))
        })
    })
    .await?;
    let err = sim
        .delivery(msg)?
        .assert_reach(1.0)
        .expect_err("n2 died before receiving")
        .to_string();
    assert!(
        err.contains("n2") && err.contains("container exited unexpectedly"),
        "{err}"
    );
    Ok(())
}

/// Without an engine (and without `CI` or `MESHSIM_REQUIRE_DOCKER`), a Docker test is skipped,
/// and the test binary says so again after libtest's result, which counts it as passed.
#[test]
fn skipped_docker_tests_are_summed_up_after_the_result() {
    let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "killed_container_is_in_the_trace_and_explained",
            "--test-threads=1",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/meshsim-no-engine.sock")
        .env_remove("CI")
        .env_remove("MESHSIM_REQUIRE_DOCKER")
        .env_remove("NEXTEST")
        .output()
        .expect("run this test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let result = stdout.find("test result: ok. 1 passed").expect(&stdout);
    let summary = stdout
        .find("1 test(s) of this binary were SKIPPED, not run")
        .expect(&stdout);
    assert!(
        summary > result,
        "the summary comes after the result:\n{stdout}"
    );
    assert!(
        stdout[summary..].contains("killed_container_is_in_the_trace_and_explained"),
        "{stdout}"
    );
}
