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
use crate::sim::Sim;
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
    /// dilation was left to the runner suggests, with the lag that asks for it.
    fn suggested_dilation(&self, current: f64) -> Option<(f64, LinkLag)> {
        let v = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        v.iter()
            .filter(|(_, auto)| *auto)
            .filter_map(|(r, _)| {
                let lag = r.lag()?;
                Some((lag.suggested_dilation(current)?, lag))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
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
    /// The test installs its own tracing subscriber (`#[traced_test]`): leave logging alone.
    pub user_subscriber: bool,
}

/// What a test function may return: `()` or `Result<(), E: Display>`.
pub trait TestResult {
    /// `Err` with the message to fail with.
    fn into_outcome(self) -> Result<(), String>;
}

impl TestResult for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: std::fmt::Display> TestResult for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
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
    println!("meshsim: skipping {name}: {why} (set MESHSIM_REQUIRE_DOCKER=1 to fail instead)");
    false
}

/// How many times a test whose time dilation is left to the runner may run: the first at
/// real time, then each at the dilation the previous run's lag suggests.
const MAX_ATTEMPTS: u32 = 3;

/// Runs one test. Called by the code `#[meshsim::test]` generates; not for direct use.
pub fn run_test<F, Fut, R>(name: &str, args: TestArgs, test: F)
where
    F: Fn(Sim) -> Fut,
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
    let (ctx, outcome, dilation) = loop {
        let ctx = Arc::new(TestContext {
            name: name.to_string(),
            recorders: Mutex::new(Vec::new()),
        });
        let sim = Sim::for_test(
            ctx.clone(),
            args.seed.unwrap_or(0),
            backend,
            dilation,
            args.dilation.is_none(),
        );
        // The timeout is in simulated time, like every duration the test passes.
        let wall_timeout =
            Duration::try_from_secs_f64(timeout.as_secs_f64() * dilation).unwrap_or(Duration::MAX);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("meshsim: cannot build a tokio runtime");
        let body = AssertUnwindSafe(test(sim)).catch_unwind();
        let outcome = runtime.block_on(async {
            let run = tokio::time::timeout(wall_timeout, body);
            match &dispatch {
                Some(d) => run.with_subscriber(d.clone()).await,
                None => run.await,
            }
        });
        // Ends every node task before the verdict, whatever happened.
        runtime.shutdown_timeout(Duration::from_secs(5));
        attempt += 1;
        match ctx.suggested_dilation(dilation) {
            Some((next, lag)) if attempt < MAX_ATTEMPTS => {
                println!(
                    "meshsim: {name}: at time dilation x{dilation}, {lag}; running the test again at x{next}"
                );
                dilation = next;
            }
            _ => break (ctx, outcome, dilation),
        }
    };

    let failure = match outcome {
        Ok(Ok(result)) => result.into_outcome().err().map(|m| (m, None)),
        Ok(Err(panic)) => Some(("the test panicked".to_string(), Some(panic))),
        Err(_) if dilation == 1.0 => Some((format!("the test timed out after {timeout:?}"), None)),
        Err(_) => Some((
            format!("the test timed out after {timeout:?} (time dilated x{dilation})"),
            None,
        )),
    };
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
                Some(p) => std::panic::resume_unwind(p),
                None => panic!("{message}\nmeshsim: {where_}"),
            }
        }
    }
}
