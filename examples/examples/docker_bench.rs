//! Docker backend benchmark: what containers cost and how true their links are. Prints the
//! machine, then for each figure the median and spread over repeated runs:
//! - start to formed meshes for 10 and 50 containers, against the same number of agent
//!   containers started one by one with `docker run` (what the original meshsim did), and
//!   against the floor, as many do-nothing containers started in parallel;
//! - agent memory per container;
//! - one-hop latency, measured minus configured, for 10, 50 and 200 ms links.
//!
//! ```text
//! cargo run --release -p meshsim-examples --example docker_bench [-- repeats]
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use meshsim::{Backend, DEFAULT_TOPIC, Sim, Simulation, Topology, ms, node, secs};

fn sh(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stats(mut xs: Vec<f64>) -> String {
    xs.sort_by(|a, b| a.total_cmp(b));
    let med = xs[xs.len() / 2];
    format!(
        "median {med:8.2}  min {:8.2}  max {:8.2}  (n={})",
        xs[0],
        xs[xs.len() - 1],
        xs.len()
    )
}

fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 * p).ceil() as usize).clamp(1, xs.len()) - 1]
}

async fn docker_sim(name: &str, net: Topology) -> meshsim::Result<Simulation> {
    Sim::new(name)?
        .with_backend(Backend::Docker)
        .with_ready_timeout(secs(300))
        .start(net)
        .await
}

/// `n` containers of `image` on a fresh internal network, started one after another
/// (`parallel = false`) or all at once; returns the seconds until all run.
fn docker_run(n: usize, image: &str, args: &[&str], parallel: bool) -> f64 {
    let net = format!("meshsim-bench-{}", std::process::id());
    sh(&[
        "network",
        "create",
        "--internal",
        "--label",
        "meshsim.bench=1",
        &net,
    ]);
    let t = Instant::now();
    let run = |i: usize| {
        let name = format!("{net}-{i}");
        let mut a = vec![
            "run",
            "-d",
            "-i",
            "--label",
            "meshsim.bench=1",
            "--network",
            &net,
        ];
        a.extend(args);
        a.extend(["--name", &name, image]);
        Command::new("docker")
            .args(&a)
            .output()
            .expect("docker run")
    };
    if parallel {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..n).map(|i| s.spawn(move || run(i))).collect();
            hs.into_iter()
                .for_each(|h| assert!(h.join().expect("thread").status.success()));
        });
    } else {
        (0..n).for_each(|i| assert!(run(i).status.success()));
    }
    let secs = t.elapsed().as_secs_f64();
    let ids = sh(&["ps", "-aq", "--filter", "label=meshsim.bench=1"]);
    let ids: Vec<&str> = ids.lines().collect();
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids);
    sh(&rm);
    sh(&["network", "rm", &net]);
    secs
}

#[tokio::main]
async fn main() -> meshsim::Result<()> {
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb >> 20);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let engine = sh(&[
        "version",
        "--format",
        "{{.Server.Version}} (API {{.Server.APIVersion}})",
    ]);
    // Warm up: builds the image if needed, and tells the shaping mode.
    let warm = docker_sim("bench.warmup", Topology::line(2)?).await?;
    let shaping = warm.trace().meta.shaping;
    warm.stop().await;
    let image = sh(&[
        "images",
        "meshsim-agent",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    let image = image.lines().next().expect("the agent image").to_string();
    println!(
        "machine: {cores} cores, {mem} GiB, kernel {}, Docker {engine}",
        kernel.trim()
    );
    println!("shaping: {shaping}");
    println!("image: {image}; {repeats} runs per figure\n");

    println!("start to formed meshes (s), random 4-regular graph, no latency:");
    for n in [10usize, 50] {
        let mut ours = Vec::new();
        let mut rss = Vec::new();
        for r in 0..repeats {
            let t = Instant::now();
            let sim = docker_sim(
                &format!("bench.start{n}"),
                Topology::random_regular(n, 4, r as u64)?,
            )
            .await?;
            ours.push(t.elapsed().as_secs_f64());
            if r == 0 {
                rss = sim
                    .container_stats()
                    .await?
                    .iter()
                    .map(|s| s.rss_bytes as f64 / (1 << 20) as f64)
                    .collect();
            }
            sim.stop().await;
        }
        let one_by_one: Vec<f64> = (0..repeats)
            .map(|_| docker_run(n, &image, &["--cap-add", "NET_ADMIN"], false))
            .collect();
        let floor: Vec<f64> = (0..repeats)
            .map(|_| {
                docker_run(
                    n,
                    &image,
                    &["--entrypoint", "/usr/sbin/tc", "--cap-add", "NET_ADMIN"],
                    true,
                )
            })
            .collect();
        println!(
            "  {n:3} containers  meshsim (to ready mesh)    {}",
            stats(ours)
        );
        println!(
            "  {n:3} containers  docker run one by one      {}",
            stats(one_by_one)
        );
        println!(
            "  {n:3} containers  do-nothing, in parallel    {}",
            stats(floor)
        );
        println!(
            "  {n:3} containers  agent RSS (MiB)            {}",
            stats(rss)
        );
    }

    println!(
        "\none-hop first-delivery latency, measured minus configured (ms), 2 containers, 40 messages:"
    );
    for latency in [0u64, 10, 50, 200] {
        let mut sim = docker_sim(
            &format!("bench.latency{latency}"),
            Topology::line(2)?.with_latency(ms(latency)),
        )
        .await?;
        let mut errors = Vec::new();
        for i in 0..40 {
            let from = node(i % 2);
            let msg = sim.publish(from, DEFAULT_TOPIC, 256).await?;
            let d = sim.wait_delivered(msg, secs(30)).await?;
            for l in d.latencies().into_values() {
                errors.push((l.as_secs_f64() - Duration::from_millis(latency).as_secs_f64()) * 1e3);
            }
            sim.run_for(ms(20)).await;
        }
        let lag = sim
            .container_stats()
            .await?
            .iter()
            .map(|s| s.max_release_lag)
            .max()
            .unwrap_or_default();
        println!(
            "  {latency:3} ms links: p50 {:6.2}  p99 {:6.2}  min {:6.2}  (delayer's worst release lag {:.3} ms)",
            percentile(errors.clone(), 0.5),
            percentile(errors.clone(), 0.99),
            percentile(errors, 0.0),
            lag.as_secs_f64() * 1e3
        );
        sim.stop().await;
    }
    Ok(())
}
