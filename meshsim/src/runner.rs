//! What `#[meshsim::test]` expands to calls into here: build a runtime, capture logs, run the
//! test with a timeout, and save traces, their viewers and logs when it fails (or when
//! `MESHSIM_SAVE_TRACES` asks for it).

use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tracing::instrument::WithSubscriber;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

use crate::backend::Backend;
use crate::error::Error;
use crate::sim::Sim;
use crate::time::TimeMode;
use crate::topology::{NodeId, Topology};
use crate::trace::recorder::Recorder;
use crate::trace::{LinkLag, trace_dir};
use crate::view;

/// The default log filter when `MESHSIM_LOG` is not set.
const DEFAULT_LOG: &str = "meshsim=info,warn";

/// A test's shared state: its name and the simulations it started.
#[derive(Debug)]
pub struct TestContext {
    name: String,
    /// Each simulation's recorder, and whether its dilation was left to the runner.
    recorders: Mutex<Vec<(Arc<Recorder>, bool)>>,
}

impl TestContext {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn file_for(&self, i: usize) -> PathBuf {
        let name = if i == 0 {
            "trace.json".to_string()
        } else {
            format!("trace-{}.json", i + 1)
        };
        trace_dir(&self.name).join(name)
    }

    /// Registers a simulation's recorder (`auto`: its time dilation was left to the runner);
    /// returns where its trace will be written.
    pub(crate) fn register(&self, r: Arc<Recorder>, auto: bool) -> PathBuf {
        let mut v = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        v.push((r, auto));
        self.file_for(v.len() - 1)
    }

    /// The time dilation to run the test again with: the largest any simulation whose
    /// dilation was left to the runner suggests, with the lag that asks for it; never above
    /// what its slowest round trip allows ([`negotiation_cap`]).
    fn suggested_dilation(&self, current: f64) -> Option<(f64, LinkLag)> {
        let v = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        v.iter()
            .filter(|(_, auto)| *auto)
            .filter_map(|(r, _)| {
                let lag = r.lag()?;
                let cap = negotiation_cap(&r.lock().trace.topology);
                let k = lag.suggested_dilation(current)?.min(cap);
                (k > current).then_some((k, lag))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// The lag of the first simulation whose links ran late above its threshold.
    fn lag_exceeded(&self) -> Option<LinkLag> {
        let v = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().filter_map(|(r, _)| r.lag()).find(|l| l.exceeded)
    }

    /// Writes every trace with its viewer beside it, and the captured log; returns the
    /// viewer paths (the trace's where its viewer could not be written).
    fn save(&self, log: Option<&[u8]>) -> Vec<PathBuf> {
        let recorders = self
            .recorders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut saved = Vec::new();
        for (i, (r, _)) in recorders.iter().enumerate() {
            let path = self.file_for(i);
            let trace = r.snapshot();
            if let Err(e) = trace.save(&path) {
                eprintln!("meshsim: could not save the trace: {e}");
                continue;
            }
            let viewer = view::viewer_path(&path);
            match view::write(&trace, &viewer) {
                Ok(()) => saved.push(viewer),
                Err(e) => {
                    eprintln!("meshsim: could not write the viewer: {e}");
                    saved.push(path);
                }
            }
        }
        if let Some(log) = log.filter(|l| !l.is_empty()) {
            let path = trace_dir(&self.name).join("log.txt");
            let written = std::fs::create_dir_all(trace_dir(&self.name))
                .and_then(|()| std::fs::write(&path, log));
            if let Err(e) = written {
                eprintln!("meshsim: could not save the log to {}: {e}", path.display());
            }
        }
        saved
    }
}

/// Arguments of `#[meshsim::test]`.
#[derive(Debug, Clone, Default)]
pub struct TestArgs {
    /// `backend = "..."`; `MESHSIM_BACKEND` overrides when unset.
    pub backend: Option<&'static str>,
    /// `timeout = "..."`, already parsed; default 120 s.
    pub timeout: Option<Duration>,
    /// `seed = N`; default 0.
    pub seed: Option<u64>,
    /// `dilation = k`: a fixed time dilation; by default the runner chooses it (see
    /// [`Sim::with_dilation`]).
    pub dilation: Option<f64>,
    /// `time = "virtual" | "real"`; by default virtual in process (real with a fixed
    /// `dilation`), real in containers.
    pub time: Option<&'static str>,
    /// The test installs its own tracing subscriber (`#[traced_test]`): leave logging alone.
    pub user_subscriber: bool,
}

/// The clock a test runs on: what it asked for, else virtual in process when libp2p's timers
/// can follow it (real, said aloud, when they cannot), real with a fixed dilation and in
/// containers.
fn time_mode(name: &str, backend: Backend, args: &TestArgs) -> TimeMode {
    let asked = args.time.map(|t| {
        t.parse::<TimeMode>()
            .unwrap_or_else(|e| panic!("meshsim: {name}: {e}"))
    });
    match (backend, asked) {
        (Backend::Docker, Some(TimeMode::Virtual)) => panic!(
            "meshsim: {name}: containers run in real time; time = \"virtual\" is for the in-process backend"
        ),
        (Backend::Docker, _) | (_, Some(TimeMode::Real)) => TimeMode::Real,
        (Backend::InProcess, None) if args.dilation.is_some() => TimeMode::Real,
        (Backend::InProcess, asked) => {
            if crate::time::virtual_time_available() {
                return TimeMode::Virtual;
            }
            let why = format!(
                "virtual time needs libp2p's timers on meshsim's clock: add `[patch.crates-io] futures-timer = {{ {} }}` to your workspace's Cargo.toml (see meshsim's README)",
                crate::time::PATCH_SOURCE
            );
            if asked.is_some() {
                panic!("meshsim: {name}: {why}");
            }
            println!("meshsim: {name}: running in real time; {why}");
            TimeMode::Real
        }
    }
}

/// What a test function may return: `()` or `Result<(), E: Display>`.
pub trait TestResult {
    /// `Err` with the message to fail with, and whether lagging links could explain it.
    fn into_outcome(self) -> Result<(), TestFailure>;
}

/// Why a test failed, as [`TestResult::into_outcome`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFailure {
    /// The message to fail with.
    pub message: String,
    /// Whether it is about timing (a timeout or a failed trace assertion), so that links
    /// running late could explain it: only then does the runner try again, slower.
    pub timing: bool,
}

impl TestResult for () {
    fn into_outcome(self) -> Result<(), TestFailure> {
        Ok(())
    }
}

impl<E: std::fmt::Display + 'static> TestResult for Result<(), E> {
    fn into_outcome(self) -> Result<(), TestFailure> {
        self.map_err(|e| {
            let any: &dyn std::any::Any = &e;
            let error = any.downcast_ref::<Error>().or_else(|| {
                any.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>()
                    .and_then(|b| b.downcast_ref::<Error>())
            });
            TestFailure {
                message: e.to_string(),
                timing: error
                    .is_some_and(|e| matches!(e, Error::Timeout { .. } | Error::Assertion(_))),
            }
        })
    }
}

/// A writer the log layer appends to, shared with the runner.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static BACKENDS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A test's hold on [`BACKENDS`], kept until it ends.
#[allow(dead_code)]
enum Turn {
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
    Shared(std::sync::RwLockReadGuard<'static, ()>),
}

/// Whether a Docker test can run. Without an engine it is skipped with a message, unless
/// Docker is required (`CI` or `MESHSIM_REQUIRE_DOCKER` set): then it fails. With one, the
/// agent image is built here if needed, outside the test's timeout.
fn docker_ready(name: &str) -> bool {
    #[cfg(feature = "docker")]
    let reachable = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("meshsim: cannot build a tokio runtime")
        .block_on(async {
            use crate::backend::docker;
            let client = docker::connect().await.map_err(|e| e.to_string())?;
            if let Err(e) = docker::prepare_image(&client).await {
                panic!("meshsim: {name}: {e}");
            }
            Ok::<(), String>(())
        });
    #[cfg(not(feature = "docker"))]
    let reachable: Result<(), String> =
        Err("meshsim was built without its `docker` feature".into());
    let Err(why) = reachable else { return true };
    let set =
        |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0" && x != "false");
    if set("CI") || set("MESHSIM_REQUIRE_DOCKER") {
        panic!(
            "meshsim: {name} needs Docker, which is required here (CI or MESHSIM_REQUIRE_DOCKER is set): {why}"
        );
    }
    crate::skips::skip(name, &why, "MESHSIM_REQUIRE_DOCKER");
    false
}

/// The largest time dilation at which libp2p-swarm's 10 s substream negotiation timeout
/// (wall time, not dilated) still leaves room for a negotiation over the slowest peer
/// connection: half of 10 s over its round trip (latency and jitter both ways, along the
/// underlay path when the peers are not linked), so about x50 for 50 ms links.
pub(crate) fn negotiation_cap(topology: &crate::trace::TopologySnapshot) -> f64 {
    let rtt_of = |a: &crate::topology::LinkShape, b: &crate::topology::LinkShape| {
        (a.latency + a.jitter + b.latency + b.jitter).as_secs_f64()
    };
    let direct: std::collections::HashMap<(NodeId, NodeId), f64> = topology
        .links
        .iter()
        .map(|l| ((l.a, l.b), rtt_of(&l.a_to_b, &l.b_to_a)))
        .collect();
    // Rebuilt only if some peers are not linked directly.
    let mut underlay: Option<Option<Topology>> = None;
    let mut rtt: f64 = 0.0;
    for &(a, b) in &topology.overlay {
        let pair_rtt = match direct.get(&(a.min(b), a.max(b))) {
            Some(&r) => r,
            None => {
                let t = underlay.get_or_insert_with(|| rebuild(topology));
                match t
                    .as_ref()
                    .and_then(|t| Some((t.path_shape(a, b)?, t.path_shape(b, a)?)))
                {
                    Some((there, back)) => rtt_of(&there, &back),
                    None => 0.0,
                }
            }
        };
        rtt = rtt.max(pair_rtt);
    }
    if rtt <= 0.0 {
        return crate::trace::MAX_SUGGESTED_DILATION;
    }
    (5.0 / rtt).floor().max(1.0)
}

/// The underlay of a trace's topology, to route over; `None` if the trace's links do not
/// make one (a hand-edited trace).
fn rebuild(topology: &crate::trace::TopologySnapshot) -> Option<Topology> {
    let n = topology
        .nodes
        .iter()
        .map(|s| s.id.index() + 1)
        .max()
        .unwrap_or(0);
    let mut t = Topology::with_nodes(n);
    for l in &topology.links {
        t.link_directed(l.a, l.b, l.a_to_b, l.b_to_a).ok()?;
    }
    Some(t)
}

/// How many times a test whose time dilation is left to the runner may run: the first at
/// real time, then each at the dilation the previous run's lag suggests.
const MAX_ATTEMPTS: u32 = 3;

/// Runs one test. Called by the code `#[meshsim::test]` generates; not for direct use.
pub fn run_test<F, Fut, R>(name: &str, args: TestArgs, test: F)
where
    F: Fn(Sim) -> Fut + Sync,
    Fut: Future<Output = R>,
    R: TestResult,
{
    let backend = match args.backend {
        Some(b) => b.parse::<Backend>(),
        None => Backend::from_env().map(Option::unwrap_or_default),
    }
    .unwrap_or_else(|e| panic!("meshsim: {e}"));
    if backend == Backend::Docker && !docker_ready(name) {
        return;
    }
    // Containers compete for the CPU that in-process links' timing relies on: a Docker test
    // runs alone among this process's tests (in-process tests still run alongside each other).
    let _turn = match backend {
        Backend::Docker => Turn::Alone(BACKENDS.write().unwrap_or_else(|e| e.into_inner())),
        Backend::InProcess => Turn::Shared(BACKENDS.read().unwrap_or_else(|e| e.into_inner())),
    };
    let timeout = args.timeout.unwrap_or(Duration::from_secs(120));
    let time = time_mode(name, backend, &args);

    // Logs: the test's and every node's (each line carries its node{name=..} span), kept in
    // memory and written next to the trace; also printed, so cargo shows them for failures.
    let captured = Captured::default();
    let dispatch = (!args.user_subscriber && !tracing::dispatcher::has_been_set()).then(|| {
        let filter = || {
            EnvFilter::try_from_env("MESHSIM_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG))
        };
        let to_memory = captured.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || to_memory.clone())
                    .with_filter(filter()),
            )
            .with(fmt::layer().with_test_writer().with_filter(filter()));
        tracing::Dispatch::new(subscriber)
    });

    // Time dilation: fixed by the test, or else 1 at first and, while the in-process links
    // lag above the threshold, what the lag suggests, up to MAX_ATTEMPTS runs.
    let mut dilation = args.dilation.unwrap_or(1.0);
    let mut attempt = 0;
    let mut attempts: Vec<String> = Vec::new();
    let (ctx, outcome) = loop {
        let ctx = Arc::new(TestContext {
            name: name.to_string(),
            recorders: Mutex::new(Vec::new()),
        });
        let sim = Sim::for_test(
            ctx.clone(),
            args.seed.unwrap_or(0),
            backend,
            dilation,
            args.dilation.is_none() && time == TimeMode::Real,
        );
        // The timeout is in simulated time, like every duration the test passes.
        let wall_timeout =
            Duration::try_from_secs_f64(timeout.as_secs_f64() * dilation).unwrap_or(Duration::MAX);
        let body = || {
            let body = AssertUnwindSafe(test(sim))
                .catch_unwind()
                .map(|r| r.map(TestResult::into_outcome));
            async {
                let run = crate::time::timeout(wall_timeout, body);
                match &dispatch {
                    Some(d) => run.with_subscriber(d.clone()).await,
                    None => run.await,
                }
            }
        };
        let outcome = match time {
            // No lag in virtual time, so no second attempt: the loop ends below.
            TimeMode::Virtual => crate::time::run_virtual(args.seed.unwrap_or(0), body),
            TimeMode::Real => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("meshsim: cannot build a tokio runtime");
                let outcome = runtime.block_on(body());
                // Ends every node task before the verdict, whatever happened.
                runtime.shutdown_timeout(Duration::from_secs(5));
                outcome
            }
        };
        attempt += 1;
        let at = if dilation == 1.0 {
            String::new()
        } else {
            format!(" (time dilated x{dilation})")
        };
        let outcome = match outcome {
            Ok(Ok(result)) => result.map_err(|f| (f, None)),
            // A panic is not blamed on lag: it may be anything.
            Ok(Err(panic)) => Err((
                TestFailure {
                    message: "the test panicked".into(),
                    timing: false,
                },
                Some(panic),
            )),
            Err(_) => Err((
                TestFailure {
                    message: format!("the test timed out after {timeout:?}{at}"),
                    timing: true,
                },
                None,
            )),
        };
        let verdict = match &outcome {
            Ok(()) => "passed".to_string(),
            Err((f, _)) => format!("failed: {}", f.message),
        };
        // Lag can explain a pass (a message that should not have arrived in time, say) or a
        // failure about timing, never a failure of another kind.
        let blamable = outcome.as_ref().err().is_none_or(|(f, _)| f.timing);
        let again = if blamable && attempt < MAX_ATTEMPTS {
            ctx.suggested_dilation(dilation)
        } else {
            None
        };
        let lagged = ctx.lag_exceeded();
        match (again, lagged) {
            (Some((next, lag)), _) => {
                let line = format!(
                    "attempt {attempt} at x{dilation} {verdict}; {lag}; running the test again at x{next}"
                );
                println!("meshsim: {name}: {line}");
                attempts.push(line);
                dilation = next;
            }
            (None, Some(lag)) if attempt > 1 || !blamable => {
                let why = if blamable {
                    "no further attempt".to_string()
                } else {
                    "this failure is not about timing, so lag does not explain it and the test is not run again".to_string()
                };
                let line = format!("attempt {attempt} at x{dilation} {verdict}; {lag}; {why}");
                println!("meshsim: {name}: {line}");
                attempts.push(line);
                break (ctx, outcome);
            }
            (None, _) => {
                if attempt > 1 {
                    let line = format!("attempt {attempt} at x{dilation} {verdict}");
                    println!("meshsim: {name}: {line}");
                    attempts.push(line);
                }
                break (ctx, outcome);
            }
        }
    };

    let failure = outcome.err().map(|(f, panic)| {
        let message = if !attempts.is_empty() {
            format!(
                "{}\nmeshsim: attempts:\n  {}",
                f.message,
                attempts.join("\n  ")
            )
        } else {
            f.message
        };
        (message, panic)
    });
    let keep = std::env::var_os("MESHSIM_SAVE_TRACES").is_some_and(|v| v != "0" && !v.is_empty());
    let log = captured.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let log = dispatch.is_some().then_some(log.as_slice());
    match failure {
        None => {
            if keep {
                for p in ctx.save(log) {
                    println!("meshsim: trace saved; open {}", p.display());
                }
            }
        }
        Some((message, panic)) => {
            let saved = ctx.save(log);
            let traces: Vec<String> = saved.iter().map(|p| p.display().to_string()).collect();
            let where_ = if traces.is_empty() {
                "no simulation was started, so no trace was saved".to_string()
            } else {
                format!("trace saved; open {} to replay it", traces.join(", "))
            };
            eprintln!("meshsim: {name}: {where_}");
            match panic {
                Some(p) => {
                    if !attempts.is_empty() {
                        eprintln!("meshsim: {name}: attempts:\n  {}", attempts.join("\n  "));
                    }
                    std::panic::resume_unwind(p)
                }
                None => panic!("{message}\nmeshsim: {where_}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::negotiation_cap;
    use crate::topology::{Link, LinkShape, NodeId, NodeSpec};
    use crate::trace::TopologySnapshot;

    fn link(a: u32, b: u32, one_way_ms: u64, jitter_ms: u64) -> Link {
        let shape = LinkShape {
            jitter: Duration::from_millis(jitter_ms),
            ..LinkShape::latency(Duration::from_millis(one_way_ms))
        };
        Link {
            a: NodeId(a),
            b: NodeId(b),
            a_to_b: shape,
            b_to_a: shape,
        }
    }

    fn net(links: Vec<Link>, overlay: Vec<(u32, u32)>) -> TopologySnapshot {
        let n = links.iter().map(|l| l.b.0 + 1).max().unwrap_or(0);
        TopologySnapshot {
            description: String::new(),
            nodes: (0..n)
                .map(|i| NodeSpec {
                    id: NodeId(i),
                    name: format!("n{i}"),
                    position: None,
                    peer_id: None,
                })
                .collect(),
            links,
            overlay: overlay
                .into_iter()
                .map(|(a, b)| (NodeId(a), NodeId(b)))
                .collect(),
        }
    }

    #[test]
    fn the_slowest_round_trip_caps_the_dilation() {
        // 50 ms each way: 100 ms round trips, x50 leaves half of libp2p's 10 s.
        let t = net(
            vec![link(0, 1, 5, 0), link(1, 2, 50, 0)],
            vec![(0, 1), (1, 2)],
        );
        assert_eq!(negotiation_cap(&t), 50.0);
        // Jitter counts at its worst.
        assert_eq!(
            negotiation_cap(&net(vec![link(0, 1, 40, 10)], vec![(0, 1)])),
            50.0
        );
        // Peers that are not linked: their round trip runs along the underlay path, here
        // three 30 ms hops each way (180 ms), so x27, not the x83 one link would allow.
        let line = net(
            vec![link(0, 1, 30, 0), link(1, 2, 30, 0), link(2, 3, 30, 0)],
            vec![(0, 3)],
        );
        assert_eq!(negotiation_cap(&line), 27.0);
        // A round trip above 5 s allows no dilation at all.
        assert_eq!(
            negotiation_cap(&net(vec![link(0, 1, 3000, 0)], vec![(0, 1)])),
            1.0
        );
        assert_eq!(
            negotiation_cap(&net(vec![], vec![])),
            crate::trace::MAX_SUGGESTED_DILATION
        );
    }
}
