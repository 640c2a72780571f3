//! Waiting on the thread's clock: virtual on a simulation thread, real elsewhere.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Wakes `waker` once the clock reaches `at`: the virtual clock on a simulation thread (at
/// exactly `at`), else a real-time timer thread on the kernel's high-resolution timers (tens
/// of microseconds after `at` on an idle machine). It may wake more than once; check the
/// time when woken.
pub fn wake_at(at: Instant, waker: &Waker) {
    if crate::is_virtual() {
        crate::sim::register(at, waker);
    } else {
        crate::real::wake_at(at, waker);
    }
}

/// A future that completes once the clock reaches its deadline (see [`wake_at`]).
#[derive(Debug)]
pub struct Sleep {
    at: Instant,
    /// The deadline and task last registered, so a poll does not register them again.
    registered: Option<(Instant, Waker)>,
}

impl Sleep {
    /// Completes `duration` from now.
    pub fn new(duration: Duration) -> Sleep {
        Sleep::until(
            Instant::now()
                .checked_add(duration)
                .unwrap_or_else(far_future),
        )
    }

    /// Completes at `at`.
    pub fn until(at: Instant) -> Sleep {
        Sleep {
            at,
            registered: None,
        }
    }

    /// Its deadline.
    pub fn deadline(&self) -> Instant {
        self.at
    }

    /// Moves the deadline to `at`. A task that polled it before is woken at the new
    /// deadline without polling again (as futures-timer's `Delay::reset` does: gossipsub
    /// resets its heartbeat and returns without polling it).
    pub fn reset(&mut self, at: Instant) {
        self.at = at;
        if let Some((t, waker)) = &mut self.registered
            && *t != at
        {
            wake_at(at, waker);
            *t = at;
        }
    }
}

/// A deadline no run reaches: about 30 years from now.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.at;
        if Instant::now() >= at {
            return Poll::Ready(());
        }
        let known = matches!(&self.registered, Some((t, w)) if *t == at && w.will_wake(cx.waker()));
        if !known {
            wake_at(at, cx.waker());
            self.registered = Some((at, cx.waker().clone()));
        }
        Poll::Pending
    }
}
