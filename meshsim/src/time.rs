//! Time in a simulation: virtual or real, and how to wait on it.
//!
//! In-process simulations run in **virtual time** by default (see [`TimeMode`]): the
//! simulation's thread reads a clock that stands still while any node has work to do and
//! jumps to the next timer when every node is idle. Idle waiting costs nothing, CPU work
//! costs no simulated time (a test models processing cost with
//! [`GossipsubParams::validation_delay`](crate::GossipsubParams::validation_delay)), and a
//! seed gives the same run every time: the same trace, event for event and nanosecond for
//! nanosecond.
//!
//! What holds in virtual time:
//! - `std::time::Instant` and `SystemTime` (so `web_time`, which libp2p reads) are the
//!   virtual clock, on the simulation's thread; `futures_timer::Delay` (libp2p's timers)
//!   waits on it, given the `[patch.crates-io]` line in README (meshsim checks, and falls
//!   back to real time, saying so, without it);
//! - the functions here wait on it; **tokio's timers do not** (the simulation's runtime has
//!   none, so `tokio::time::sleep` panics there): node software sleeps with [`sleep`] or
//!   `futures_timer::Delay`;
//! - randomness (`rand::rng()`, `HashMap` order, noise's keys) is drawn from the seed;
//! - every node runs on the one simulation thread: work sent to other threads
//!   (`spawn_blocking`, thread pools) escapes the clock and breaks determinism.
//!
//! Real time remains (`#[meshsim::test(time = "real")]`, or a [`crate::Sim`] started outside
//! [`run_virtual`]): it is what shows CPU-bound behaviour, and what the Docker backend always
//! uses. A simulation runs in virtual time exactly when it starts on a thread that
//! [`run_virtual`] made; the trace records which ([`crate::trace::Meta::time`]).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::future::{Either, select};

/// How a simulation's clock runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeMode {
    /// Virtual time, deterministic from the seed (in-process only; the default there).
    Virtual,
    /// The wall clock, on a multi-threaded runtime: timing shows CPU load.
    Real,
}

impl std::str::FromStr for TimeMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "virtual" => Ok(TimeMode::Virtual),
            "real" => Ok(TimeMode::Real),
            other => Err(format!(
                "unknown time mode {other:?}: expected \"virtual\" or \"real\""
            )),
        }
    }
}

/// Wall-clock time elapsed since `since` (a [`wall_now`] reading), on any thread: in virtual
/// time `Instant` is simulated, so measure how long a run really took with these.
pub fn wall_elapsed(since: Duration) -> Duration {
    wall_now().saturating_sub(since)
}

/// The wall clock's monotonic reading, on any thread (see [`wall_elapsed`]).
pub fn wall_now() -> Duration {
    Duration::from_nanos(meshsim_time::wall_ns())
}

/// Where meshsim's futures-timer stand-in comes from, as a `[patch.crates-io]` entry says it.
pub const PATCH_SOURCE: &str = "git = \"https://example.invalid/meshsim\"";

/// Whether this binary's `futures_timer::Delay` is meshsim's stand-in, so that libp2p's
/// timers follow virtual time (see the module docs).
pub fn virtual_time_available() -> bool {
    drop(futures_timer::Delay::new(Duration::ZERO));
    meshsim_time::futures_timer_follows()
}

/// Waits `duration` on the simulation's clock (virtual or real, whichever this thread runs).
pub async fn sleep(duration: Duration) {
    meshsim_time::Sleep::new(duration).await;
}

/// Waits until `at` on the simulation's clock.
pub async fn sleep_until(at: Instant) {
    meshsim_time::Sleep::until(at).await;
}

/// The error of [`timeout`]: the time ran out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `fut` for at most `duration` on the simulation's clock.
pub async fn timeout<T>(duration: Duration, fut: impl Future<Output = T>) -> Result<T, Elapsed> {
    let at = Instant::now()
        .checked_add(duration)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
    timeout_at(at, fut).await
}

/// Runs `fut` until `at` at most, on the simulation's clock.
pub async fn timeout_at<T>(at: Instant, fut: impl Future<Output = T>) -> Result<T, Elapsed> {
    match select(pin!(fut), pin!(sleep_until(at))).await {
        Either::Left((v, _)) => Ok(v),
        Either::Right(((), _)) => Err(Elapsed),
    }
}

/// Runs `make()`'s future to completion in virtual time seeded by `seed`, on a fresh
/// simulation thread with a single-threaded tokio runtime (no tokio timers; see the module
/// docs), and returns its output. This is what `#[meshsim::test]` does for in-process tests;
/// call it to run a [`crate::Sim`] in virtual time from your own code.
///
/// ```
/// let hops = meshsim::time::run_virtual(1, || async {
///     let sim = meshsim::Sim::new("doc.run_virtual")?
///         .start(meshsim::Topology::line(2)?.with_latency(meshsim::ms(30)))
///         .await?;
///     let m = sim.publish(meshsim::node(0), meshsim::DEFAULT_TOPIC, 100).await?;
///     let d = sim.wait_delivered(m, meshsim::secs(5)).await?;
///     Ok::<_, meshsim::Error>(d.latency_of(meshsim::node(1)))
/// })
/// .unwrap();
/// assert_eq!(hops, Some(meshsim::ms(30))); // exactly: no CPU time is counted
/// ```
pub fn run_virtual<T, Fut>(seed: u64, make: impl FnOnce() -> Fut + Send) -> T
where
    Fut: Future<Output = T>,
    T: Send,
{
    // Logs go where the caller's go (a `#[traced_test]` subscriber, say), inside its span.
    // (Not when it has none: a subscriber the test installs later must still be found.)
    let dispatch = tracing::dispatcher::get_default(|d| {
        (!d.is::<tracing::subscriber::NoSubscriber>()).then(|| d.clone())
    });
    let span = tracing::Span::current();
    meshsim_time::run(seed, move || {
        let _dispatch = dispatch.as_ref().map(tracing::dispatcher::set_default);
        let _span = span.enter();
        let main = Arc::new(MainWake::default());
        let hook = main.clone();
        let ticker = Arc::new(Mutex::new(None::<Waker>));
        let tick = ticker.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            // The runtime parks only when nothing is left to run on the only thread: every
            // node is idle, so the clock moves to the next timer and wakes what waits on it.
            .on_thread_park(move || {
                if hook.woken.load(Ordering::Acquire) {
                    return;
                }
                if meshsim_time::advance() {
                    // What was woken may have been a timer nobody waits for any more: wake
                    // the ticker too, so the runtime comes back here rather than sleeping.
                    if let Some(w) = &*tick.lock().unwrap_or_else(|e| e.into_inner()) {
                        w.wake_by_ref();
                    }
                } else {
                    panic!(
                        "meshsim: virtual time stalled: every task is waiting and no timer is pending, so nothing can happen any more (is a task waiting on another thread? a simulation's work must stay on its thread)"
                    );
                }
            })
            .build()
            .expect("meshsim: cannot build a tokio runtime");
        runtime.spawn(std::future::poll_fn(move |cx| {
            *ticker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        let local = tokio::task::LocalSet::new();
        let out = runtime.block_on(Watched {
            fut: pin!(local.run_until(make())),
            wake: main,
        });
        drop(local);
        runtime.shutdown_background();
        out
    })
}

/// Whether the main future was woken since it was last polled, and its real waker.
#[derive(Default)]
struct MainWake {
    woken: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Wake for MainWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(w) = &*self.waker.lock().unwrap_or_else(|e| e.into_inner()) {
            w.wake_by_ref();
        }
    }
}

/// The main future, polled with a waker that notes its wakes in a [`MainWake`].
struct Watched<F> {
    fut: F,
    wake: Arc<MainWake>,
}

impl<F: Future + Unpin> Future for Watched<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        {
            let mut w = self.wake.waker.lock().unwrap_or_else(|e| e.into_inner());
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        self.wake.woken.store(false, Ordering::Release);
        let waker = Waker::from(self.wake.clone());
        Pin::new(&mut self.fut).poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "virtual time stalled")]
    fn a_simulation_that_can_never_move_on_fails_instead_of_hanging() {
        run_virtual(1, std::future::pending::<()>);
    }

    #[test]
    fn sleeps_and_timeouts_take_exactly_their_virtual_time() {
        let (slept, timed_out) = run_virtual(2, || async {
            let t0 = Instant::now();
            sleep(Duration::from_secs(3600)).await;
            let slept = t0.elapsed();
            let t1 = Instant::now();
            let r = timeout(Duration::from_millis(1500), std::future::pending::<()>()).await;
            (slept, (r, t1.elapsed()))
        });
        assert_eq!(slept, Duration::from_secs(3600));
        assert_eq!(timed_out, (Err(Elapsed), Duration::from_millis(1500)));
    }
}
