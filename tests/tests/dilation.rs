//! Time dilation: the in-process network runs k times slower than the simulated time the
//! test and its trace see, and the runner chooses k when the links lag.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshsim::__private::{TestArgs, run_test};
use meshsim::{Backend, DEFAULT_TOPIC, Error, LinkShape, Sim, Topology, ms, node, secs};

/// One hop of 50 ms at 8 Mbit/s: a 10 kB message takes 50 ms plus its 10 ms on the wire.
const HOP: LinkShape = LinkShape {
    latency: Duration::from_millis(50),
    jitter: Duration::ZERO,
    loss: 0.0,
    bandwidth: Some(8_000_000),
};

#[meshsim::test(dilation = 8)]
async fn a_dilated_network_keeps_its_simulated_timing(sim: meshsim::Sim) -> meshsim::Result<()> {
    assert_eq!(sim.dilation(), 8.0);
    let sim = sim.start(Topology::line(2)?.with_shape(HOP)).await?;
    let wall = Instant::now();
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 10_000).await?;
    let d = sim.wait_delivered(msg, secs(5)).await?;
    let wall = wall.elapsed();
    let latency = d.latencies()[&node(1)];
    // In simulated time the hop is what was configured: 50 ms + 10 ms of serialisation (the
    // payload plus gossipsub, yamux and noise framing), late by at most a few ms of lag / 8.
    assert!(
        (ms(60)..ms(70)).contains(&latency),
        "simulated one-hop latency {latency:?}"
    );
    // In wall time it took eight times as long: a lower bound, so it cannot flake.
    assert!(wall >= latency * 8, "{wall:?} of wall time for {latency:?}");
    let trace = d.trace();
    assert_eq!(trace.meta.dilation, 8.0);
    // The configured shapes, not the dilated ones, are what the trace says the links were.
    assert_eq!(trace.topology.links[0].a_to_b, HOP);
    Ok(())
}

#[meshsim::test(dilation = 4)]
async fn run_for_and_timeouts_are_in_simulated_time(sim: meshsim::Sim) -> meshsim::Result<()> {
    let mut sim = sim.start(Topology::line(2)?.with_latency(ms(5))).await?;
    let wall = Instant::now();
    sim.run_for(ms(100)).await;
    assert!(wall.elapsed() >= ms(400), "{:?}", wall.elapsed());
    // A message that cannot arrive: the error names the simulated timeout.
    sim.partition(&[node(0)], &[node(1)]).await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
    let wall = Instant::now();
    let err = sim.wait_delivered(msg, ms(50)).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == ms(50)),
        "{err}"
    );
    assert!(wall.elapsed() >= ms(200), "{:?}", wall.elapsed());
    Ok(())
}

/// The runner's arguments for a test in real time, where links can lag.
fn real_time() -> TestArgs {
    TestArgs {
        time: Some("real"),
        ..TestArgs::default()
    }
}

/// Runs `body` under the test runner the way `#[meshsim::test]` does and returns the time
/// dilation of each run.
fn dilations_of_runs(
    name: &str,
    args: TestArgs,
    fix: Option<f64>,
    threshold: Duration,
) -> Vec<f64> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    run_test(name, args, |sim: Sim| {
        let seen = seen.clone();
        async move {
            let sim = match fix {
                Some(k) => sim.with_dilation(k),
                None => sim,
            }
            .with_lag_threshold(threshold);
            seen.lock().unwrap().push(sim.dilation());
            let sim = sim.start(Topology::ring(4)?.with_latency(ms(1))).await?;
            let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
            sim.wait_delivered(msg, secs(5)).await?;
            meshsim::Result::<()>::Ok(())
        }
    });
    seen.lock().unwrap().clone()
}

#[test]
fn the_runner_dilates_a_test_whose_links_lag() {
    // Every delivery is at least 1 µs late as measured, so a zero threshold is always
    // exceeded: the runner runs the test again, each time slower, three runs in all.
    let runs = dilations_of_runs("dilation_tests::auto", real_time(), None, Duration::ZERO);
    // Each run at least doubles the last, up to the largest the runner suggests; three in
    // all, unless the second already reached that largest.
    let cap = meshsim::trace::MAX_SUGGESTED_DILATION;
    assert_eq!(runs[0], 1.0, "{runs:?}");
    assert!(runs.len() >= 2, "{runs:?}");
    for w in runs.windows(2) {
        assert!(w[1] > w[0] && w[1] >= (2.0 * w[0]).min(cap), "{runs:?}");
    }
    let want = if runs[1] >= cap { 2 } else { 3 };
    assert_eq!(runs.len(), want, "{runs:?}");
    // Under a threshold of an hour nothing lags, so one run is enough.
    let runs = dilations_of_runs("dilation_tests::auto_calm", real_time(), None, secs(3600));
    assert_eq!(runs, [1.0]);
}

#[test]
fn a_fixed_dilation_is_never_changed_by_the_runner() {
    let args = TestArgs {
        dilation: Some(3.0),
        ..Default::default()
    };
    let runs = dilations_of_runs("dilation_tests::fixed_attr", args, None, Duration::ZERO);
    assert_eq!(runs, [3.0]);
    let runs = dilations_of_runs(
        "dilation_tests::fixed_sim",
        real_time(),
        Some(2.0),
        Duration::ZERO,
    );
    assert_eq!(runs, [2.0]);
}

#[tokio::test]
async fn bad_dilations_are_refused_by_name() {
    for k in [
        0.5,
        0.0,
        -3.0,
        f64::NAN,
        f64::INFINITY,
        1e300,
        meshsim::MAX_DILATION * 1.01,
    ] {
        let err = Sim::new("dilation_tests::bad")
            .unwrap()
            .with_backend(Backend::InProcess)
            .with_dilation(k)
            .start(Topology::line(2).unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Dilation { value, .. } if value.to_bits() == k.to_bits()),
            "{k}: {err}"
        );
        assert!(err.to_string().contains("time dilation"), "{err}");
    }
    // Containers run in real time: the Docker backend refuses before touching Docker.
    let err = Sim::new("dilation_tests::docker")
        .unwrap()
        .with_backend(Backend::Docker)
        .with_dilation(2.0)
        .start(Topology::line(2).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::BackendUnavailable { reason, .. } if reason.contains("time dilation")),
        "{err}"
    );
}

/// Runs a lagging test (zero lag threshold) under the runner whose first attempt ends with
/// `first` and later ones pass; returns how many attempts ran and the runner's panic message
/// (`None` if the test passed).
fn lagging_test_failing_once(
    name: &str,
    first: fn() -> meshsim::Result<()>,
    panics: bool,
) -> (usize, Option<String>) {
    let attempts = Arc::new(Mutex::new(0));
    let seen = attempts.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_test(name, real_time(), |sim: Sim| {
            let seen = seen.clone();
            async move {
                let sim = sim.with_lag_threshold(Duration::ZERO);
                let sim = sim.start(Topology::ring(4)?.with_latency(ms(1))).await?;
                let msg = sim.publish(node(0), DEFAULT_TOPIC, 64).await?;
                sim.wait_delivered(msg, secs(5)).await?;
                let n = {
                    let mut n = seen.lock().unwrap();
                    *n += 1;
                    *n
                };
                if n == 1 {
                    assert!(!panics, "a bug that has nothing to do with timing");
                    return first();
                }
                Ok(())
            }
        })
    }));
    let message = result.err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    });
    let n = *attempts.lock().unwrap();
    (n, message)
}

#[test]
fn lag_does_not_hide_a_failure_it_cannot_explain() {
    // A panic: reported at once, not run again (where a later pass would have hidden it).
    let (n, message) = lagging_test_failing_once("dilation_tests::panics", || Ok(()), true);
    assert_eq!(n, 1, "run again after a panic");
    assert!(message.is_some(), "the panic was hidden");
    // An error that is not about timing: the same.
    let (n, message) = lagging_test_failing_once(
        "dilation_tests::not_timing",
        || Err(Error::UnknownNode(node(42))),
        false,
    );
    assert_eq!(n, 1, "run again after an error lag cannot explain");
    let message = message.expect("the error was hidden");
    assert!(
        message.contains("n42") && message.contains("not about timing"),
        "{message}"
    );
    // A timeout can be lag's doing: run again, slower, and the later pass counts.
    let (n, message) = lagging_test_failing_once(
        "dilation_tests::timing",
        || {
            Err(Error::Timeout {
                after: ms(5),
                what: "a message".into(),
            })
        },
        false,
    );
    assert!(n >= 2, "a timing failure under lag was not run again");
    assert_eq!(message, None);
}
