//! Shared helpers for meshsim's integration tests.

use std::ops::Range;
use std::time::Duration;

use meshsim::{AssertionError, Error};

/// Fails with a trace assertion error (which lagging links can explain) unless `got` is
/// `want`: for results that depend on timing, such as which of two copies racing over equal
/// latencies arrives first.
pub fn timing_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: T,
    want: T,
) -> meshsim::Result<()> {
    if got == want {
        return Ok(());
    }
    Err(Error::Assertion(AssertionError {
        message: format!("{what}: got {got:?}, wanted {want:?}"),
        saved_to: None,
    }))
}

/// Fails with a trace assertion error (which lagging links can explain, so the runner may
/// run the test again slower) unless `value` lies in `range`.
pub fn timing_within(what: &str, value: Duration, range: Range<Duration>) -> meshsim::Result<()> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(Error::Assertion(AssertionError {
        message: format!("{what}: {value:?}, wanted {range:?}"),
        saved_to: None,
    }))
}
