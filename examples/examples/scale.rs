//! Scale check: start an N-node in-process gossipsub network, wait for its meshes to form,
//! deliver one message to every node, and print the times and peak memory.
//!
//! ```text
//! cargo run --release -p meshsim-examples --example scale -- 1000
//! ```
//! Arguments: node count (default 1000), degree of the random regular graph (default 8),
//! link latency in ms (default 50); `--plaintext` secures connections with libp2p's
//! plaintext upgrade instead of noise.

use std::time::Instant;

use meshsim::{Security, Sim, Topology, ms, node, secs};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> meshsim::Result<()> {
    let plaintext = std::env::args().any(|a| a == "--plaintext");
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| a != "--plaintext")
        .map(|a| a.parse::<u64>());
    let mut next = |default: u64, what: &str| match args.next() {
        None => default,
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            eprintln!(
                "usage: scale [nodes] [degree] [latency_ms] [--plaintext]: {what} must be a number"
            );
            std::process::exit(2);
        }
    };
    let (n, d, latency) = (
        next(1000, "nodes") as usize,
        next(8, "degree") as usize,
        next(50, "latency_ms"),
    );
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let security = if plaintext {
        Security::Plaintext
    } else {
        Security::Noise
    };
    println!(
        "scale: {n} nodes, random {d}-regular graph, {latency} ms links, {security:?}, {cores} cores"
    );

    let t0 = Instant::now();
    let net = Topology::random_regular(n, d, 1)?.with_latency(ms(latency));
    let sim = Sim::new("examples.scale")?
        .with_seed(1)
        .with_security(security)
        .with_ready_timeout(secs(600));
    let mut sim = sim.start(net).await?;
    let ready = t0.elapsed();
    let rss_ready = peak_rss_mib();

    let msg = sim.publish(node(0), meshsim::DEFAULT_TOPIC, 1024).await?;
    let d = sim.wait_delivered(msg, secs(300)).await?;
    let st = d.stats();
    println!("start to formed meshes: {:.2} s", ready.as_secs_f64());
    println!(
        "delivery: reach {:.1}% ({}/{}), p50 {:?}, p99 {:?}, all delivered after {:?}, max hops {:?}, duplicates/node {:.2}",
        st.reach * 100.0,
        st.delivered,
        st.expected,
        st.p50.unwrap_or_default(),
        st.p99.unwrap_or_default(),
        st.dissemination.unwrap_or_default(),
        st.max_hops.unwrap_or(0),
        st.duplicates_per_node
    );
    if let (Some(a), Some(b)) = (rss_ready, peak_rss_mib()) {
        println!(
            "peak RSS: {a:.0} MiB with meshes formed, {b:.0} MiB after delivery ({:.2} MiB per node)",
            b / n as f64
        );
    }
    // Per-hop lag: how much later than the configured link latency each first copy arrived
    // after its sender had the message.
    let first = d.first_deliveries();
    let mut lag: Vec<f64> = first
        .iter()
        .filter_map(|(_, (t, from))| {
            let sent = if *from == d.info().origin {
                d.info().published_ns
            } else {
                first.get(from)?.0
            };
            Some((*t as f64 - sent as f64) / 1e6 - latency as f64)
        })
        .collect();
    lag.sort_by(f64::total_cmp);
    if !lag.is_empty() {
        let pct =
            |p: f64| lag[((p / 100.0 * lag.len() as f64).ceil() as usize).clamp(1, lag.len()) - 1];
        println!(
            "per-hop lag over the configured {latency} ms: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(50.0),
            pct(99.0),
            pct(100.0)
        );
    }
    if let Some(l) = sim.link_lag() {
        println!("{l}");
    }
    println!("events recorded: {}", sim.trace().events.len());
    println!("trace written to {}", sim.save_trace()?.display());
    Ok(())
}
