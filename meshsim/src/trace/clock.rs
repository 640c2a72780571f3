//! The clock every time in a trace is read from: the kernel's `CLOCK_MONOTONIC`, which the
//! harness and every container on the same host share (containers get no clock namespace of
//! their own), which never jumps, and which NTP does not step.

/// Nanoseconds on `CLOCK_MONOTONIC` (since an arbitrary point, the same for every process
/// on this kernel).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to; CLOCK_MONOTONIC exists on every kernel
    // meshsim runs on, so the call cannot fail.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
