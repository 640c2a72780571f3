//! Virtual time and seeded randomness for a simulation thread.
//!
//! A thread [`enter`]s a simulation with a seed. From then on, on that thread only:
//! - `std::time::Instant::now()` and `SystemTime::now()` (every `clock_gettime` call) read a
//!   virtual clock that starts at zero and moves only when [`advance`] moves it: to the
//!   earliest pending timer, when the thread has nothing else to do;
//! - every `getrandom` call (what `rand::rng()`, `HashMap`'s keys, noise and key generation
//!   draw from) is answered from a generator seeded by the seed.
//!
//! Other threads keep the real clock and the OS's randomness. [`Sleep`] and [`wake_at`] wait
//! on the virtual clock on a simulation thread and on a precise real-time timer thread
//! elsewhere; meshsim's `futures-timer` stand-in builds `futures_timer::Delay` on them, so
//! libp2p's timers follow the same clock.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! let (real, virtual_) = meshsim_time::run(7, || {
//!     let t0 = Instant::now();
//!     let mut sleep = meshsim_time::Sleep::new(Duration::from_secs(3600));
//!     let waker = std::task::Waker::noop();
//!     let mut cx = std::task::Context::from_waker(waker);
//!     assert!(std::pin::Pin::new(&mut sleep).poll(&mut cx).is_pending());
//!     let wall = std::time::SystemTime::now();
//!     assert!(meshsim_time::advance()); // the hour passes at once
//!     assert!(std::pin::Pin::new(&mut sleep).poll(&mut cx).is_ready());
//!     (wall.elapsed().unwrap(), t0.elapsed())
//! });
//! assert_eq!(virtual_, Duration::from_secs(3600));
//! assert_eq!(real, Duration::from_secs(3600));
//! # use std::future::Future;
//! ```
//!
//! Limits: only the registered thread is simulated (keep a simulation's tasks on it: no
//! thread pools, no `spawn_blocking`); CPU work costs no virtual time; a blocking wait with a
//! timeout on a simulation thread (`Condvar::wait_timeout`) never times out, because its
//! deadline lies far beyond the real clock.

mod interpose;
mod real;
mod sim;
mod sleep;

pub use sim::{Entered, advance, enter, is_virtual, now, pending_timers, run};
pub use sleep::{Sleep, wake_at};

/// The wall clock's monotonic time (nanoseconds since an arbitrary point), on any thread:
/// what a simulation thread's `Instant` does not show, for measuring how long a run took.
pub fn wall_ns() -> u64 {
    interpose::real_monotonic_ns()
}

use std::sync::atomic::{AtomicBool, Ordering};

static STAND_IN: AtomicBool = AtomicBool::new(false);

/// Called by meshsim's `futures-timer` stand-in whenever it makes a `Delay`, so a
/// simulation can tell whether libp2p's timers follow its clock (see
/// [`futures_timer_follows`]).
#[doc(hidden)]
pub fn note_stand_in_delay() {
    STAND_IN.store(true, Ordering::Relaxed);
}

/// Whether a `futures_timer::Delay` made so far came from meshsim's stand-in (the
/// `[patch.crates-io]` entry is in place) rather than from futures-timer itself. Make one
/// `Delay` first.
pub fn futures_timer_follows() -> bool {
    STAND_IN.load(Ordering::Relaxed)
}
