//! meshsim's stand-in for [futures-timer](https://crates.io/crates/futures-timer) 3.0.3:
//! the same public API, with every [`Delay`] waiting on meshsim's clock
//! ([`meshsim_time::Sleep`]): virtual on a simulation thread, a precise real-time timer
//! elsewhere. Apply it with `[patch.crates-io]` (see meshsim's README) so that libp2p's
//! timers (gossipsub's heartbeat, the swarm's idle and dial timeouts) follow a simulation's
//! virtual clock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A future that completes at a point in time, like futures-timer's `Delay`.
#[derive(Debug)]
pub struct Delay {
    sleep: meshsim_time::Sleep,
}

impl Delay {
    /// A delay that completes `dur` from now.
    pub fn new(dur: Duration) -> Delay {
        meshsim_time::note_stand_in_delay();
        Delay {
            sleep: meshsim_time::Sleep::new(dur),
        }
    }

    /// Makes it complete `dur` from now instead (even if it had completed).
    pub fn reset(&mut self, dur: Duration) {
        let now = Instant::now();
        let at = now.checked_add(dur).unwrap_or(now + FAR);
        self.sleep.reset(at);
    }
}

/// Thirty years: the cap on a delay that would overflow `Instant`.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.sleep).poll(cx)
    }
}
