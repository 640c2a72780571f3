//! How late the simulated links deliver: every direction of every connection notes, as it
//! hands bytes to the reading node, how long after their modelled arrival time that was.
//!
//! On a busy CPU the reading node's task runs late (timers fire late, other nodes hold the
//! cores), so a link configured at 50 ms delivers at 50 ms plus this lag. The trace records
//! its distribution ([`crate::trace::LinkLag`]) and flags a run whose p99 exceeds a threshold:
//! its timings are set by the CPU, not by the links.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::trace::LinkLag;

/// Lags in microseconds, 1 µs to one hour, 2 significant digits (1 % resolution).
pub(crate) struct LagMeter {
    hist: Mutex<Histogram<u64>>,
    /// Time dilation: lags are recorded in simulated time, wall lag divided by this.
    dilation: f64,
}

impl std::fmt::Debug for LagMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagMeter")
            .field("samples", &self.lock().len())
            .finish()
    }
}

impl LagMeter {
    /// A meter for links running `dilation` times slower than simulated time.
    pub(crate) fn new(dilation: f64) -> Self {
        LagMeter {
            dilation,
            hist: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds"),
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.hist.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes one release `lag` (wall time) after its due time.
    pub(crate) fn record(&self, lag: Duration) {
        let us = u64::try_from(lag.div_f64(self.dilation).as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.lock().saturating_record(us);
    }

    /// The distribution so far, flagged against `threshold` (on the p99).
    pub(crate) fn report(&self, threshold: Duration) -> LinkLag {
        let h = self.lock();
        let ns = |us: u64| us.saturating_mul(1000);
        let (p50, p99, max) = if h.is_empty() {
            (0, 0, 0)
        } else {
            (
                ns(h.value_at_quantile(0.5)),
                ns(h.value_at_quantile(0.99)),
                ns(h.max()),
            )
        };
        let threshold_ns = u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX);
        LinkLag {
            samples: h.len(),
            p50_ns: p50,
            p99_ns: p99,
            max_ns: max,
            threshold_ns,
            exceeded: p99 > threshold_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_gives_percentiles_and_flags_the_p99() {
        let m = LagMeter::new(1.0);
        assert_eq!(m.report(Duration::ZERO).samples, 0);
        for i in 1..=100u64 {
            m.record(Duration::from_micros(i * 100)); // 0.1 ms .. 10 ms
        }
        let r = m.report(Duration::from_millis(5));
        assert_eq!(r.samples, 100);
        assert!((4_900_000..=5_100_000).contains(&r.p50_ns), "{r:?}");
        assert!((9_800_000..=10_100_000).contains(&r.p99_ns), "{r:?}");
        assert!(r.exceeded);
        assert!(!m.report(Duration::from_millis(20)).exceeded);
    }

    #[test]
    fn dilated_links_report_simulated_lag() {
        let m = LagMeter::new(10.0);
        m.record(Duration::from_millis(30));
        let r = m.report(Duration::from_millis(5));
        assert!((2_970_000..=3_030_000).contains(&r.p50_ns), "{r:?}");
        assert!(!r.exceeded);
    }
}
