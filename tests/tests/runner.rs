//! The test runner: traces saved on failure, panic and timeout; composition with
//! `#[traced_test]`; the trace file round-trips.

use std::time::Duration;

use meshsim::__private::{TestArgs, run_test};
use meshsim::{DEFAULT_TOPIC, Topology, Trace, ms, node, secs};

fn run_and_catch<Fut>(name: &str, args: TestArgs, f: impl Fn(meshsim::Sim) -> Fut + Sync) -> String
where
    Fut: std::future::Future<Output = meshsim::Result<()>>,
{
    let _ = std::fs::remove_dir_all(meshsim::trace::trace_dir(name));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_test(name, args, f)));
    let panic = result.expect_err("the test must fail");
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn failing_test_saves_trace_and_says_where() {
    let name = "runner_tests::failing";
    let message = run_and_catch(name, TestArgs::default(), |sim| async move {
        let sim = sim.start(Topology::line(3)?.with_latency(ms(5))).await?;
        let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
        sim.wait_delivered(msg, secs(5))
            .await?
            .assert_p99_latency_below(ms(1))?;
        Ok(())
    });
    let path = meshsim::trace::trace_dir(name).join("trace.json");
    let viewer = meshsim::trace::trace_dir(name).join("trace.html");
    assert!(message.contains("p99 delivery latency"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("open {} to replay it", viewer.display())),
        "{message}"
    );
    let trace = Trace::load(&path).expect("saved trace loads");
    assert_eq!(trace.messages.len(), 1);
    let html = std::fs::read_to_string(&viewer).expect("viewer written");
    assert_eq!(html, meshsim::view::render(&trace));
}

/// Run only as a child of `passing_test_writes_its_viewer_when_asked`.
#[test]
#[ignore = "a probe run by passing_test_writes_its_viewer_when_asked"]
fn probe_passing_test() {
    run_test(
        "runner_tests::passing",
        TestArgs::default(),
        |sim| async move {
            let sim = sim.start(Topology::line(2)?).await?;
            let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
            sim.wait_delivered(msg, secs(5)).await?;
            Ok::<(), meshsim::Error>(())
        },
    );
}

#[test]
fn passing_test_writes_its_viewer_when_asked() {
    let dir = meshsim::trace::trace_dir("runner_tests::passing");
    for save in [false, true] {
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args(["--ignored", "--exact", "probe_passing_test", "--nocapture"]);
        if save {
            child.env("MESHSIM_SAVE_TRACES", "1");
        } else {
            child.env_remove("MESHSIM_SAVE_TRACES");
        }
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert_eq!(dir.join("trace.html").exists(), save, "{stdout}");
        assert_eq!(dir.join("trace.json").exists(), save, "{stdout}");
        if save {
            assert!(stdout.contains("trace.html"), "{stdout}");
        }
    }
}

#[test]
fn panicking_test_saves_trace() {
    let name = "runner_tests::panicking";
    let message = run_and_catch(name, TestArgs::default(), |sim| async move {
        let sim = sim.start(Topology::ring(3)?).await?;
        sim.annotate("about to panic");
        panic!("boom");
    });
    assert_eq!(message, "boom");
    let trace = Trace::load(&meshsim::trace::trace_dir(name).join("trace.json")).unwrap();
    assert!(trace.events.iter().any(|e| e.kind
        == meshsim::EventKind::Annotation {
            text: "about to panic".into()
        }));
}

#[test]
fn timed_out_test_saves_trace_and_stops_nodes() {
    let name = "runner_tests::timeout";
    let args = TestArgs {
        timeout: Some(Duration::from_millis(1500)),
        ..Default::default()
    };
    let message = run_and_catch(name, args, |sim| async move {
        let mut sim = sim.start(Topology::ring(4)?.with_latency(ms(5))).await?;
        sim.partition(&[node(0)], &[node(1), node(2), node(3)])
            .await?;
        let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
        sim.wait_delivered(msg, secs(3600)).await?;
        Ok(())
    });
    assert!(message.contains("timed out after 1.5s"), "{message}");
    let trace = Trace::load(&meshsim::trace::trace_dir(name).join("trace.json")).unwrap();
    assert_eq!(trace.messages.len(), 1);
}

#[meshsim::test(seed = 21)]
async fn trace_round_trips_through_json(sim: meshsim::Sim) -> meshsim::Result<()> {
    let sim = sim
        .start(
            Topology::random_regular(8, 3, 21)?
                .with_latency(ms(10))
                .with_jitter(ms(2)),
        )
        .await?;
    let msg = sim.publish(node(3), DEFAULT_TOPIC, 300).await?;
    sim.wait_delivered(msg, secs(5)).await?;
    sim.annotate("done");
    let trace = sim.stop().await;
    assert!(
        trace.events.windows(2).all(|w| w[0].t_ns <= w[1].t_ns),
        "events in time order"
    );
    let path = std::env::temp_dir().join(format!("meshsim-roundtrip-{}.json", std::process::id()));
    trace.save(&path)?;
    let back = Trace::load(&path)?;
    std::fs::remove_file(&path).ok();
    assert_eq!(back, trace);
    assert_eq!(back.delivery(msg)?.stats(), trace.delivery(msg)?.stats());
    Ok(())
}

#[tracing_test::traced_test]
#[meshsim::test]
async fn traced_test_below(sim: meshsim::Sim) -> meshsim::Result<()> {
    tracing::info!("hello from the test");
    let _sim = sim.start(Topology::line(2)?).await?;
    assert!(logs_contain("hello from the test"));
    Ok(())
}

#[meshsim::test]
#[tracing_test::traced_test]
async fn traced_test_above(sim: meshsim::Sim) -> meshsim::Result<()> {
    tracing::info!("hello again");
    let _sim = sim.start(Topology::line(2)?).await?;
    assert!(logs_contain("hello again"));
    Ok(())
}
