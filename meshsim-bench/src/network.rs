//! One in-process network, measured: start N gossipsub nodes on a random regular graph,
//! publish one message, wait until every node has it. Run in a child process (`meshsim-bench
//! network ...`) so that each size gets its own peak memory and a fresh runtime; the parent
//! reads the one JSON line it prints.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use meshsim::{DEFAULT_TOPIC, Security, Sim, Topology, ms, node, secs};
use serde::{Deserialize, Serialize};

use crate::machine;
use crate::stats::{percentile, sorted};

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct Spec {
    /// Nodes.
    #[arg(long)]
    pub nodes: usize,
    /// Degree of the random regular graph.
    #[arg(long, default_value_t = 8)]
    pub degree: usize,
    /// One-way latency of every link, in ms.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Time dilation.
    #[arg(long, default_value_t = 1.0)]
    pub dilation: f64,
    /// Libp2p's plaintext security instead of noise.
    #[arg(long)]
    pub plaintext: bool,
    /// Where to save the trace (JSON), if anywhere.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Run in virtual time (deterministic, idle waiting free) rather than real time.
    #[arg(long = "virtual")]
    pub virtual_time: bool,
    /// Instead of one message: this many simulated seconds of gossip, one 1 KiB message a
    /// second from rotating publishers (heartbeats throughout).
    #[arg(long, default_value_t = 0)]
    pub gossip_s: u64,
}

/// What one run measured. Times of the network are simulated; `*_s` wall-clock seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Start of the first node to every mesh formed, wall seconds.
    pub ready_s: f64,
    /// Publish to the last delivery, wall seconds.
    pub deliver_s: f64,
    /// Fraction of expected nodes reached.
    pub reach: f64,
    /// Publish to the last delivery, simulated ms.
    pub dissemination_ms: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// Each first copy's arrival minus its sender's, minus the link's latency (ms): p50.
    pub hop_error_p50_ms: f64,
    /// The same, p99.
    pub hop_error_p99_ms: f64,
    /// The links' own lag record: p50, p99 (ms, simulated).
    pub lag_p50_ms: f64,
    /// p99 of the lag.
    pub lag_p99_ms: f64,
    /// The dilation the lag suggests, when it exceeded the threshold.
    pub suggested_dilation: Option<f64>,
    /// Events in the trace.
    pub events: usize,
    /// A hash of the whole trace file, to tell identical reruns.
    pub trace_hash: u64,
}

/// Runs `spec` in this process (the child's side).
pub async fn run(spec: &Spec) -> meshsim::Result<Outcome> {
    let security = if spec.plaintext {
        Security::Plaintext
    } else {
        Security::Noise
    };
    // Waits are in simulated time: bound them to ten minutes of wall time whatever the dilation.
    let patience = Duration::from_secs_f64(600.0 / spec.dilation);
    let t0 = meshsim::time::wall_now();
    let net =
        Topology::random_regular(spec.nodes, spec.degree, 1)?.with_latency(ms(spec.latency_ms));
    let sim = Sim::new(format!("bench.network{}", spec.nodes))?
        .with_seed(1)
        .with_security(security)
        .with_dilation(spec.dilation)
        .with_ready_timeout(patience);
    let sim = sim.start(net).await?;
    let ready_s = meshsim::time::wall_elapsed(t0).as_secs_f64();
    let t1 = meshsim::time::wall_now();
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 1024).await?;
    let mut reach = 1.0f64;
    let mut last = msg;
    for i in 1..spec.gossip_s {
        sim.run_for(secs(1)).await;
        let from = node(((i as usize * 7919) % spec.nodes) as u32);
        last = sim.publish(from, DEFAULT_TOPIC, 1024).await?;
    }
    if spec.gossip_s > 0 {
        sim.run_for(secs(1)).await;
        for m in [msg, last] {
            reach = reach.min(sim.wait_delivered(m, patience).await?.reach());
        }
    }
    let d = sim.wait_delivered(msg, patience).await?;
    let deliver_s = meshsim::time::wall_elapsed(t1).as_secs_f64();
    let st = d.stats();
    let errors = sorted(hop_errors_ms(&d, spec.latency_ms as f64));
    let trace = d.trace();
    if let Some(path) = &spec.save {
        trace.save(path)?;
    }
    let (lag_p50_ms, lag_p99_ms) = trace.lag.map_or((0.0, 0.0), |l| {
        (l.p50_ns as f64 / 1e6, l.p99_ns as f64 / 1e6)
    });
    let out = Outcome {
        ready_s,
        deliver_s,
        reach: st.reach.min(reach),
        dissemination_ms: st.dissemination.unwrap_or_default().as_secs_f64() * 1e3,
        peak_rss_mib: machine::peak_rss_mib(),
        hop_error_p50_ms: percentile(&errors, 0.5).unwrap_or(f64::NAN),
        hop_error_p99_ms: percentile(&errors, 0.99).unwrap_or(f64::NAN),
        lag_p50_ms,
        lag_p99_ms,
        suggested_dilation: trace.suggested_dilation(),
        events: trace.events.len(),
        trace_hash: {
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&serde_json::to_vec(&trace).unwrap_or_default(), &mut h);
            std::hash::Hasher::finish(&h)
        },
    };
    sim.stop().await;
    Ok(out)
}

/// Per hop: when each node first had the message minus when the node it came from had it
/// (or published it), minus the configured latency, in ms of simulated time.
pub fn hop_errors_ms(d: &meshsim::Delivery, latency_ms: f64) -> Vec<f64> {
    let first = d.first_deliveries();
    first
        .iter()
        .filter_map(|(_, (t, from))| {
            let sent = if *from == d.info().origin {
                d.info().published_ns
            } else {
                first.get(from)?.0
            };
            Some((*t as f64 - sent as f64) / 1e6 - latency_ms)
        })
        .collect()
}

/// Runs `spec` in a child process and returns what it measured.
pub fn in_child(spec: &Spec) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "network",
        "--nodes",
        &spec.nodes.to_string(),
        "--degree",
        &spec.degree.to_string(),
        "--latency-ms",
        &spec.latency_ms.to_string(),
        "--dilation",
        &spec.dilation.to_string(),
    ]);
    if spec.plaintext {
        cmd.arg("--plaintext");
    }
    if spec.virtual_time {
        cmd.arg("--virtual");
    }
    cmd.args(["--gossip-s", &spec.gossip_s.to_string()]);
    if let Some(p) = &spec.save {
        cmd.arg("--save").arg(p);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} nodes: the child failed ({}): {}{}",
            spec.nodes,
            out.status,
            stdout.lines().last().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .ok_or_else(|| format!("{} nodes: the child printed no result", spec.nodes))?;
    serde_json::from_str(line)
        .map_err(|e| format!("{} nodes: bad result {line:?}: {e}", spec.nodes))
}
