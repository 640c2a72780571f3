//! `meshsim-bench`: what meshsim costs and how true its network is, measured on this
//! machine and printed as Markdown tables (BENCHMARKS.md holds the latest).
//!
//! ```text
//! cargo run --release -p meshsim-bench               # everything, 3 runs per figure
//! cargo run --release -p meshsim-bench -- --quick    # small sizes, 1 run: a smoke test
//! cargo run --release -p meshsim-bench -- --only fidelity,overhead --no-docker
//! ```
//! Sections: `startup`, `scale`, `fidelity`, `overhead`, `trace`, `load`, `time`. The Docker
//! figures need a Docker engine; without one the program fails unless `--no-docker`.

mod docker;
mod fidelity;
mod machine;
mod network;
mod overhead;
mod stats;
mod trace_cost;

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use meshsim::{Backend, DEFAULT_TOPIC, Sim, Topology, node, secs};

use stats::{SUMMARY, Summary, cells, section, summary_cells};

#[derive(Parser)]
#[command(
    name = "meshsim-bench",
    about = "meshsim's benchmarks, printed as Markdown tables"
)]
struct Args {
    /// Small sizes and one run per figure: checks that every benchmark works.
    #[arg(long)]
    quick: bool,
    /// Runs per repeated figure (default 3, or 1 with --quick).
    #[arg(long)]
    repeats: Option<usize>,
    /// Only these sections (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Section>,
    /// Skip the Docker figures (otherwise a missing engine is an error).
    #[arg(long)]
    no_docker: bool,
    #[command(subcommand)]
    child: Option<Child>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Startup,
    Scale,
    Fidelity,
    Overhead,
    Trace,
    Load,
    Time,
}

#[derive(Subcommand)]
enum Child {
    /// One in-process network, measured; prints one JSON line (used by `scale` and `load`).
    #[command(hide = true)]
    Network(network::Spec),
}

/// What the sections share.
struct Plan {
    quick: bool,
    repeats: usize,
    docker: bool,
}

type Res = Result<(), String>;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Some(Child::Network(spec)) = &args.child {
        let outcome = if spec.virtual_time {
            meshsim::time::run_virtual(1, || network::run(spec))
        } else {
            runtime.block_on(network::run(spec))
        };
        return match outcome {
            Ok(out) => {
                println!("{}", serde_json::to_string(&out).expect("serialisable"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let plan = Plan {
        quick: args.quick,
        repeats: args
            .repeats
            .unwrap_or(if args.quick { 1 } else { 3 })
            .max(1),
        docker: !args.no_docker,
    };
    if plan.docker && machine::docker_version().is_none() {
        eprintln!(
            "error: no Docker engine reachable, and the Docker figures need one (pass --no-docker to skip them)"
        );
        return ExitCode::FAILURE;
    }
    let wants = |s: Section| args.only.is_empty() || args.only.contains(&s);
    println!("# meshsim-bench\n");
    println!("- machine: {}", machine::describe());
    println!("- in-process shaping: {}", Backend::InProcess.shaping());
    println!(
        "- build: {}; {} run(s) per repeated figure{}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        plan.repeats,
        if plan.quick { "; --quick sizes" } else { "" }
    );
    let t = Instant::now();
    let result = runtime.block_on(async {
        if wants(Section::Startup) {
            startup(&plan).await?;
        }
        if wants(Section::Scale) {
            scale(&plan).await?;
        }
        if wants(Section::Fidelity) {
            fidelity(&plan).await?;
        }
        if wants(Section::Overhead) {
            overhead_section(&plan).await?;
        }
        if wants(Section::Trace) {
            trace_section(&plan)?;
        }
        if wants(Section::Load) {
            load(&plan)?;
        }
        if wants(Section::Time) {
            time_section(&plan)?;
        }
        Res::Ok(())
    });
    println!("\n(all figures in {:.0} s)", t.elapsed().as_secs_f64());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn sizes<'a>(plan: &Plan, full: &'a [usize], quick: &'a [usize]) -> &'a [usize] {
    if plan.quick { quick } else { full }
}

/// Starts `n` nodes on `backend` (random 4-regular graph, no latency): the seconds to
/// formed meshes, and the simulation.
async fn timed_start(
    backend: Backend,
    n: usize,
    seed: u64,
) -> Result<(f64, meshsim::Simulation), String> {
    let t = Instant::now();
    let sim = Sim::new(format!("bench.start{n}"))
        .map_err(err)?
        .with_backend(backend)
        .with_ready_timeout(secs(600))
        .start(Topology::random_regular(n, 4, seed).map_err(err)?)
        .await
        .map_err(err)?;
    Ok((t.elapsed().as_secs_f64(), sim))
}

/// Each container's agent resident memory, in MiB.
async fn agent_rss_mib(sim: &meshsim::Simulation) -> Result<Vec<f64>, String> {
    Ok(sim
        .container_stats()
        .await
        .map_err(err)?
        .iter()
        .map(|s| s.rss_bytes as f64 / (1 << 20) as f64)
        .collect())
}

async fn startup(plan: &Plan) -> Res {
    section(
        "Start-up",
        "Start to formed meshes (every overlay connection up, every subscription heard, every \
         mesh at least min(D_lo, peers)) on a random 4-regular graph with no link latency. \
         Docker is compared in the same run with the same containers started one by one with \
         `docker run` (as the original meshsim did) and with as many do-nothing containers \
         started in parallel (the engine's floor).",
        SUMMARY,
    );
    for &n in sizes(plan, &[10, 50, 100], &[10, 50]) {
        let mut ts = Vec::new();
        for r in 0..plan.repeats {
            let (t, sim) = timed_start(Backend::InProcess, n, r as u64).await?;
            sim.stop().await;
            ts.push(t);
        }
        summary_cells(
            &format!("in-process, {n} nodes"),
            "s",
            3,
            Summary::of(&ts).as_ref(),
            "noise handshakes, CPU-bound",
        );
    }
    if !plan.docker {
        return Ok(());
    }
    // Builds the agent image if needed, outside the timings.
    let (_, warm) = timed_start(Backend::Docker, 5, 0).await?;
    warm.stop().await;
    let image = docker::agent_image()?;
    for &n in sizes(plan, &[10, 50, 100], &[10]) {
        let (mut ours, mut one, mut floor, mut rss) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in 0..plan.repeats {
            let (t, sim) = timed_start(Backend::Docker, n, r as u64).await?;
            ours.push(t);
            if r == 0 {
                rss = agent_rss_mib(&sim).await?;
            }
            sim.stop().await;
            one.push(docker::start(n, &image, docker::Baseline::OneByOne)?);
            floor.push(docker::start(n, &image, docker::Baseline::FloorInParallel)?);
        }
        let (o, b, f) = (Summary::of(&ours), Summary::of(&one), Summary::of(&floor));
        summary_cells(
            &format!("Docker, {n} containers: meshsim"),
            "s",
            2,
            o.as_ref(),
            "to formed meshes",
        );
        summary_cells(
            &format!("Docker, {n} containers: `docker run` one by one"),
            "s",
            2,
            b.as_ref(),
            "until the last `docker run` returned",
        );
        summary_cells(
            &format!("Docker, {n} containers: do-nothing, in parallel"),
            "s",
            2,
            f.as_ref(),
            "the floor",
        );
        summary_cells(
            &format!("Docker, {n} containers: agent RSS"),
            "MiB",
            1,
            Summary::of(&rss).as_ref(),
            "per container, one run",
        );
        if let (Some(o), Some(b), Some(f)) = (o, b, f) {
            cells(&[
                format!("Docker, {n} containers: ratios"),
                format!("{:.2}x floor", o.median / f.median),
                String::new(),
                String::new(),
                String::new(),
                format!(
                    "one by one / meshsim = {:.2}x (targets: within 1.5x of the floor, 5x faster than one by one)",
                    b.median / o.median
                ),
            ]);
        }
    }
    Ok(())
}

async fn scale(plan: &Plan) -> Res {
    section(
        "Scale",
        "The largest networks that form and deliver one message to every node: in-process \
         on a random 8-regular graph with 50 ms links (each size in a fresh child process, \
         so its peak memory is its own), and in containers.",
        &[
            "network",
            "start to formed meshes",
            "publish to all delivered",
            "reach",
            "peak memory",
            "memory per node",
            "note",
        ],
    );
    let mut runs: Vec<(usize, bool)> = sizes(plan, &[1000, 5000, 10000], &[1000])
        .iter()
        .map(|&n| (n, false))
        .collect();
    runs.push((if plan.quick { 1000 } else { 10000 }, true));
    for (n, plaintext) in runs {
        let spec = network::Spec {
            nodes: n,
            degree: 8,
            latency_ms: 50,
            dilation: 1.0,
            plaintext,
            save: None,
            virtual_time: false,
            gossip_s: 0,
        };
        let o = network::in_child(&spec)?;
        cells(&[
            format!(
                "in-process, {n} nodes, {}",
                if plaintext { "plaintext" } else { "noise" }
            ),
            format!("{:.1} s", o.ready_s),
            format!(
                "{:.2} s ({:.0} ms simulated)",
                o.deliver_s, o.dissemination_ms
            ),
            format!("{:.1} %", o.reach * 100.0),
            format!("{:.0} MiB", o.peak_rss_mib),
            format!("{:.2} MiB", o.peak_rss_mib / n as f64),
            format!("link lag p99 {:.1} ms", o.lag_p99_ms),
        ]);
    }
    if !plan.docker {
        return Ok(());
    }
    let n = if plan.quick { 20 } else { 100 };
    let (ready, sim) = timed_start(Backend::Docker, n, 1).await?;
    let t = Instant::now();
    let msg = sim
        .publish(node(0), DEFAULT_TOPIC, 1024)
        .await
        .map_err(err)?;
    let d = sim.wait_delivered(msg, secs(120)).await.map_err(err)?;
    let deliver = t.elapsed().as_secs_f64();
    let rss: f64 = agent_rss_mib(&sim).await?.iter().sum();
    sim.stop().await;
    cells(&[
        format!("Docker, {n} containers (random 4-regular, no latency)"),
        format!("{ready:.1} s"),
        format!("{deliver:.2} s"),
        format!("{:.1} %", d.stats().reach * 100.0),
        format!("{rss:.0} MiB"),
        format!("{:.1} MiB", rss / n as f64),
        "agent processes' RSS; the container runtime's own memory is not counted".into(),
    ]);
    Ok(())
}

async fn fidelity(plan: &Plan) -> Res {
    section(
        "Fidelity",
        "One hop between two nodes. Latency: publish-to-delivery minus the configured \
         latency. Loss and bandwidth: configured against measured.",
        fidelity::COLUMNS,
    );
    let mut backends = vec![Backend::InProcess];
    if plan.docker {
        backends.push(Backend::Docker);
    }
    let (messages, lossy) = if plan.quick { (10, 40) } else { (40, 300) };
    for backend in backends {
        for latency in [10, 50, 200] {
            for jitter in [false, true] {
                fidelity::latency(backend, latency, jitter, messages)
                    .await
                    .map_err(err)?;
            }
        }
        for loss in [0.01, 0.05] {
            fidelity::loss(backend, loss, lossy).await.map_err(err)?;
        }
        fidelity::bandwidth(backend, 10, 1 << 20, if plan.quick { 1 } else { 3 })
            .await
            .map_err(err)?;
    }
    Ok(())
}

async fn overhead_section(plan: &Plan) -> Res {
    section(
        "Harness overhead",
        "The same gossip scenario written directly against rust-libp2p (memory transport, \
         noise, yamux, default gossipsub; no meshsim) and through meshsim (zero-latency \
         simulated links, recorded trace): n nodes on the same random 8-regular graph, wait \
         for the same readiness rule, one 1 KiB message from node 0 to every node. Wall and \
         CPU time from the first node's start to the last delivery; runs alternate.",
        SUMMARY,
    );
    for &n in sizes(plan, &[100, 1000], &[100]) {
        let (mut raw_w, mut raw_c, mut ms_w, mut ms_c) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..plan.repeats {
            let raw = overhead::raw(n).await;
            let ours = overhead::through_meshsim(n).await.map_err(err)?;
            if raw.delivered != n - 1 || ours.delivered != n - 1 {
                return Err(format!(
                    "overhead, {n} nodes: not the same work (raw delivered {}, meshsim {})",
                    raw.delivered, ours.delivered
                ));
            }
            raw_w.push(raw.wall_s);
            raw_c.push(raw.cpu_s);
            ms_w.push(ours.wall_s);
            ms_c.push(ours.cpu_s);
        }
        let s = |v: &[f64]| Summary::of(v);
        summary_cells(
            &format!("{n} nodes, raw rust-libp2p: wall"),
            "s",
            3,
            s(&raw_w).as_ref(),
            "",
        );
        summary_cells(
            &format!("{n} nodes, meshsim: wall"),
            "s",
            3,
            s(&ms_w).as_ref(),
            "",
        );
        summary_cells(
            &format!("{n} nodes, raw rust-libp2p: CPU"),
            "s",
            3,
            s(&raw_c).as_ref(),
            "user + system, whole process",
        );
        summary_cells(
            &format!("{n} nodes, meshsim: CPU"),
            "s",
            3,
            s(&ms_c).as_ref(),
            "user + system, whole process",
        );
        if let (Some(a), Some(b), Some(c), Some(d)) = (s(&raw_w), s(&ms_w), s(&raw_c), s(&ms_c)) {
            cells(&[
                format!("{n} nodes, meshsim / raw"),
                format!("{:.2}x wall", b.median / a.median),
                String::new(),
                String::new(),
                String::new(),
                format!("{:.2}x CPU (target: within 1.2x)", d.median / c.median),
            ]);
        }
    }
    Ok(())
}

fn trace_section(plan: &Plan) -> Res {
    section(
        "Trace cost",
        "The recorder's rate, and a trace of a million events (a real 1,000-node run's \
         messages repeated with new ids) saved, loaded, checked, summarised, exported and \
         rendered, each once.",
        trace_cost::COLUMNS,
    );
    trace_cost::record_rate(if plan.quick { 200_000 } else { 1_000_000 });
    let dir = std::env::temp_dir().join(format!("meshsim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = (|| {
        let spec = network::Spec {
            nodes: 1000,
            degree: 8,
            latency_ms: 50,
            dilation: 1.0,
            plaintext: false,
            save: Some(dir.join("real.json")),
            virtual_time: false,
            gossip_s: 0,
        };
        let o = network::in_child(&spec)?;
        let real = meshsim::Trace::load(&dir.join("real.json")).map_err(|e| e.to_string())?;
        let bytes = std::fs::metadata(dir.join("real.json"))
            .map_err(|e| e.to_string())?
            .len();
        cells(&[
            "real 1,000-node trace".into(),
            format!(
                "{} events, {:.0} bytes/event",
                o.events,
                bytes as f64 / o.events as f64
            ),
            "formation (connections, subscriptions, grafts) and one message".into(),
        ]);
        let big = trace_cost::grow(&real, if plan.quick { 100_000 } else { 1_000_000 });
        trace_cost::big_trace(&big, &dir)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn load(plan: &Plan) -> Res {
    section(
        "Fidelity under load",
        "In-process, random 8-regular graph, 50 ms links, one message to every node. Per hop: \
         when a node first had the message minus when the node it came from had it, minus \
         50 ms (simulated time). Each size runs in real time, then, when its links lagged \
         above the 5 ms threshold, again at the time dilation the lag suggests.",
        &[
            "network",
            "dilation",
            "one-hop error p50",
            "one-hop error p99",
            "link lag p50 / p99",
            "wall: start / deliver",
            "note",
        ],
    );
    for &n in sizes(plan, &[100, 1000, 5000], &[100, 1000]) {
        let mut spec = network::Spec {
            nodes: n,
            degree: 8,
            latency_ms: 50,
            dilation: 1.0,
            plaintext: false,
            save: None,
            virtual_time: false,
            gossip_s: 0,
        };
        loop {
            let o = match network::in_child(&spec) {
                Ok(o) => o,
                Err(e) => {
                    cells(&[
                        format!("{n} nodes"),
                        format!("x{}", spec.dilation),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        format!("failed: {e}"),
                    ]);
                    break;
                }
            };
            cells(&[
                format!("{n} nodes"),
                format!("x{}", spec.dilation),
                format!("{:+.2} ms", o.hop_error_p50_ms),
                format!("{:+.2} ms", o.hop_error_p99_ms),
                format!("{:.2} / {:.2} ms", o.lag_p50_ms, o.lag_p99_ms),
                format!("{:.1} s / {:.2} s", o.ready_s, o.deliver_s),
                match o.suggested_dilation {
                    Some(k) => format!("flagged: lag p99 above 5 ms, suggests x{k}"),
                    None => "within the threshold".into(),
                },
            ]);
            match o.suggested_dilation {
                Some(k) if spec.dilation == 1.0 => spec.dilation = k,
                _ => break,
            }
        }
    }
    Ok(())
}

fn time_section(plan: &Plan) -> Res {
    let gossip_s = if plan.quick { 10 } else { 60 };
    section(
        "Virtual time",
        &format!(
            "In-process, random 8-regular graph, 50 ms links, noise; {gossip_s} simulated seconds \
             of gossip: heartbeats, and one 1 KiB message a second from rotating publishers. \
             Each configuration runs {} time(s) in its own process; 'identical' counts runs \
             whose whole trace file equals the first run's.",
            plan.repeats
        ),
        &[
            "network",
            "clock",
            "wall: start / gossip",
            "peak memory",
            "one-hop error p50 / p99",
            "reach",
            "identical reruns",
        ],
    );
    let sizes = sizes(plan, &[1000, 10_000], &[100]);
    for &n in sizes {
        let mut configs = vec![("virtual", true, 1.0)];
        if n <= 1000 {
            configs.push(("real", false, 1.0));
            configs.push(("real, dilated x10", false, 10.0));
        }
        for (clock, virtual_time, dilation) in configs {
            let spec = network::Spec {
                nodes: n,
                degree: 8,
                latency_ms: 50,
                dilation,
                plaintext: false,
                save: None,
                virtual_time,
                gossip_s,
            };
            let mut runs = Vec::new();
            let mut failed = None;
            // A dilated run takes ten times its simulated time: once is enough.
            let repeats = if dilation > 1.0 { 1 } else { plan.repeats };
            for _ in 0..repeats {
                match network::in_child(&spec) {
                    Ok(o) => runs.push(o),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let Some(o) = runs.first() else {
                cells(&[
                    format!("{n} nodes"),
                    clock.into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("failed: {}", failed.unwrap_or_default()),
                ]);
                continue;
            };
            let same = runs.iter().filter(|r| r.trace_hash == o.trace_hash).count();
            cells(&[
                format!("{n} nodes"),
                clock.into(),
                format!("{:.1} s / {:.1} s", o.ready_s, o.deliver_s),
                format!("{:.0} MiB", o.peak_rss_mib),
                format!("{:+.2} / {:+.2} ms", o.hop_error_p50_ms, o.hop_error_p99_ms),
                format!("{:.1}%", o.reach * 100.0),
                format!("{same} of {}", runs.len()),
            ]);
        }
    }
    Ok(())
}
