//! The in-process links measure how late the CPU lets nodes take what arrived; the trace
//! records it, and a run above the threshold is flagged in the trace and in assertion failures.

use std::time::Duration;

use meshsim::{DEFAULT_TOPIC, Topology, ms, node, secs};

#[meshsim::test]
async fn links_record_their_lag(sim: meshsim::Sim) -> meshsim::Result<()> {
    let sim = sim.start(Topology::ring(8)?.with_latency(ms(20))).await?;
    let before = sim.link_lag().expect("in-process links measure their lag");
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 1000).await?;
    let d = sim.wait_delivered(msg, secs(5)).await?;
    let lag = d.trace().lag.expect("the trace records the lag");
    // Connections, subscriptions and grafts already crossed the links before the publish;
    // the message's copies crossed them since.
    assert!(before.samples > 0, "{before:?}");
    assert!(lag.samples > before.samples, "{lag:?} after {before:?}");
    assert!(
        lag.p50_ns <= lag.p99_ns && lag.p99_ns <= lag.max_ns,
        "{lag:?}"
    );
    assert_eq!(
        lag.threshold_ns,
        meshsim::DEFAULT_LAG_THRESHOLD.as_nanos() as u64
    );
    assert_eq!(lag.exceeded, lag.p99_ns > lag.threshold_ns);
    // The JSON file keeps it.
    let file = sim.save_trace()?;
    assert_eq!(
        meshsim::Trace::load(&file)?.lag.map(|l| l.samples > 0),
        Some(true)
    );
    Ok(())
}

// A fixed dilation: left to the runner, a flagged run would be run again, dilated.
#[meshsim::test(dilation = 1)]
async fn a_run_over_the_lag_threshold_is_flagged(sim: meshsim::Sim) -> meshsim::Result<()> {
    // Every release is at least 1 µs late as measured, so a zero threshold is always exceeded.
    let sim = sim.with_lag_threshold(Duration::ZERO);
    let sim = sim.start(Topology::ring(4)?.with_latency(ms(10))).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let d = sim.wait_delivered(msg, secs(5)).await?;
    assert!(d.trace().lag.is_some_and(|l| l.exceeded));
    let err = d.assert_p99_latency_below(ms(1)).unwrap_err().to_string();
    assert!(
        err.contains("note: the simulated links ran late by p50")
            && err.contains("the CPU, not the links, set these timings"),
        "{err}"
    );
    Ok(())
}

#[meshsim::test]
async fn a_run_under_the_lag_threshold_is_not_flagged(sim: meshsim::Sim) -> meshsim::Result<()> {
    let sim = sim.with_lag_threshold(secs(3600));
    let sim = sim.start(Topology::ring(4)?.with_latency(ms(10))).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let d = sim.wait_delivered(msg, secs(5)).await?;
    assert!(d.trace().lag.is_some_and(|l| !l.exceeded));
    let err = d.assert_p99_latency_below(ms(1)).unwrap_err().to_string();
    assert!(!err.contains("ran late"), "{err}");
    Ok(())
}
