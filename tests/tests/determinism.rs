//! Same seed, same run: in-process simulations in virtual time repeat exactly, and their
//! timings are exactly what the links say.

use meshsim::time::{TimeMode, run_virtual};
use meshsim::{DEFAULT_TOPIC, LinkShape, Topology, ms, node, secs};

/// A gossip run with everything that draws randomness or depends on timing: jitter, loss,
/// a partition and its heal, publishes on both sides; returns the whole trace as JSON.
async fn scenario(n: usize, seed: u64) -> meshsim::Result<String> {
    let topology = Topology::random_regular(n, 6, seed)?.with_shape(
        LinkShape::latency(ms(40))
            .with_jitter(ms(15))
            .with_loss(0.02)
            .with_bandwidth(50_000_000),
    );
    let mut sim = meshsim::Sim::new(format!("determinism.{n}.{seed}"))?
        .with_seed(seed)
        .start(topology)
        .await?;
    let m1 = sim.publish(node(0), DEFAULT_TOPIC, 2_000).await?;
    sim.wait_delivered(m1, secs(20)).await?;
    let (left, right): (Vec<_>, Vec<_>) = (0..n as u32).map(node).partition(|n| n.0 % 3 == 0);
    sim.partition(&left, &right).await?;
    let m2 = sim.publish(node(1), DEFAULT_TOPIC, 500).await?;
    sim.run_for(secs(3)).await;
    sim.heal(&left, &right).await?;
    sim.wait_delivered(m2, secs(30)).await?;
    let m3 = sim.publish(node(3), DEFAULT_TOPIC, 10_000).await?;
    sim.wait_delivered(m3, secs(20)).await?;
    let trace = sim.stop().await;
    assert_eq!(trace.meta.time, TimeMode::Virtual);
    assert!(trace.meta.deterministic);
    Ok(serde_json::to_string(&trace).expect("a trace serialises"))
}

fn run(n: usize, seed: u64) -> String {
    run_virtual(seed, move || scenario(n, seed)).expect("the scenario runs")
}

/// Where two traces first differ, for the failure message.
fn first_difference(a: &str, b: &str) -> String {
    let at = a
        .bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = at.saturating_sub(120);
    format!(
        "first difference at byte {at}:\n  {}\n  {}",
        &a[from..(at + 120).min(a.len())],
        &b[from..(at + 120).min(b.len())]
    )
}

fn repeats(n: usize) {
    let a = run(n, 11);
    let b = run(n, 11);
    assert!(
        a == b,
        "same seed, different traces: {}",
        first_difference(&a, &b)
    );
    let c = run(n, 12);
    assert_ne!(a, c, "another seed gave the same trace");
}

#[test]
fn a_hundred_nodes_repeat_from_their_seed() {
    repeats(100);
}

#[test]
fn a_thousand_nodes_repeat_from_their_seed() {
    repeats(1000);
}

/// Each first delivery arrives after exactly the configured latency of the path it took (25 ms
/// a hop): no CPU time is counted, at 1,000 nodes as at 2.
#[meshsim::test(seed = 5, timeout = "10m")]
async fn hop_timing_is_exact_at_a_thousand_nodes(sim: meshsim::Sim) -> meshsim::Result<()> {
    let sim = sim
        .start(Topology::random_regular(1000, 8, 5)?.with_latency(ms(25)))
        .await?;
    let m = sim.publish(node(0), DEFAULT_TOPIC, 1_000).await?;
    let d = sim.wait_delivered(m, secs(30)).await?;
    let firsts = d.first_deliveries();
    assert_eq!(firsts.len(), 999, "every other node got it");
    for &n in firsts.keys() {
        let (configured, hops) = d.path_latency(n).expect("reached over links");
        assert_eq!(d.latency_of(n), Some(configured), "{n} over {hops} hops");
    }
    assert_eq!(sim.trace().meta.time, TimeMode::Virtual);
    Ok(())
}
