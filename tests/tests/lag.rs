//! The in-process links measure how late the CPU lets nodes take what arrived; the trace
//! records it, and a run above the threshold is flagged in the trace and in assertion failures.
//! Lag is provoked for real (a node that blocks its thread on each message) and its absence
//! checked with the same traffic on an idle node.

use std::time::Duration;

use meshsim::{DEFAULT_TOPIC, Topology, ms, node, secs};
use meshsim_examples::flood::Flood;

#[meshsim::test(time = "real")]
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

/// A node that blocks its thread for this long on every message it receives.
const BUSY: Duration = Duration::from_millis(30);

// A fixed dilation: left to the runner, a flagged run would be run again, dilated.
#[meshsim::test(dilation = 1)]
async fn a_busy_cpu_makes_the_links_lag_and_is_flagged(sim: meshsim::Sim) -> meshsim::Result<()> {
    // n1 spends 30 ms of CPU on each message; ten published back to back arrive within
    // milliseconds of each other, so each after the first waits for the one before it.
    let sim = sim.with_software(Flood::new().with_busy(BUSY));
    let sim = sim.start(Topology::line(2)?.with_latency(ms(10))).await?;
    let mut last = None;
    for _ in 0..10 {
        last = Some(sim.publish(node(0), DEFAULT_TOPIC, 64).await?);
    }
    let d = sim
        .wait_delivered(last.expect("published"), secs(5))
        .await?;
    let lag = d.trace().lag.expect("the trace records the lag");
    // Nine messages each waited at least one busy period: a lower bound the CPU cannot beat.
    assert!(lag.max_ns >= 8 * BUSY.as_nanos() as u64, "{lag:?}");
    assert!(lag.exceeded, "{lag:?}");
    let err = d.assert_p99_latency_below(ms(1)).unwrap_err().to_string();
    assert!(
        err.contains("note: the simulated links ran late by p50")
            && err.contains("the CPU, not the links, set these timings"),
        "{err}"
    );
    Ok(())
}

#[meshsim::test(dilation = 1)]
async fn an_idle_cpu_keeps_the_links_on_time(sim: meshsim::Sim) -> meshsim::Result<()> {
    // The same traffic with no work per message: deliveries are taken when due. A p99 of a
    // second is far above what even a loaded machine lags here (the busy run lags nine busy
    // periods, far above the default 5 ms).
    let sim = sim.with_software(Flood::new()).with_lag_threshold(secs(1));
    let sim = sim.start(Topology::line(2)?.with_latency(ms(10))).await?;
    let mut last = None;
    for _ in 0..10 {
        last = Some(sim.publish(node(0), DEFAULT_TOPIC, 64).await?);
    }
    let d = sim
        .wait_delivered(last.expect("published"), secs(5))
        .await?;
    let lag = d.trace().lag.expect("the trace records the lag");
    assert!(!lag.exceeded, "{lag:?}");
    let err = d.assert_p99_latency_below(ms(1)).unwrap_err().to_string();
    assert!(!err.contains("ran late"), "{err}");
    Ok(())
}
