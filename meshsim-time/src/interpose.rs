//! The libc functions a simulation thread answers itself: `clock_gettime` and `getrandom`.
//!
//! Defined here, they take precedence over glibc's for every caller in the binary that links
//! this crate (std's `Instant`, `SystemTime` and `HashMap` keys, the getrandom crate), on
//! every thread. A thread that is not in a simulation falls through to the real ones, at the
//! cost of one thread-local read.
//!
//! Statically linked binaries (`-C target-feature=+crt-static`, as meshsim's container agent
//! is built) get none of this: there the C library's own definitions stay, and [`link`]
//! reports that virtual time cannot work.
#![cfg_attr(target_feature = "crt-static", allow(unused))]

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use crate::sim::{NOW_NS, RNG, VIRTUAL};

/// Where the virtual monotonic clock starts: far beyond the real one (about 31 years of
/// uptime), so a deadline computed from it never looks due to the kernel.
const MONOTONIC_EPOCH_NS: u64 = 1_000_000_000_000_000_000;
/// Where the virtual wall clock starts: 2026-01-01T00:00:00Z.
const REALTIME_EPOCH_NS: u64 = 1_767_225_600_000_000_000;

type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;

/// Makes sure the linker keeps this object, so the definitions below are the ones used.
///
/// # Panics
/// In a statically linked binary, where the C library's functions cannot be replaced.
#[cfg(target_feature = "crt-static")]
pub(crate) fn link() {
    panic!(
        "meshsim-time: virtual time needs a dynamically linked binary (this one is built with crt-static)"
    );
}

/// Makes sure the linker keeps this object, so the definitions below are the ones used.
#[cfg(not(target_feature = "crt-static"))]
pub(crate) fn link() {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write to.
    unsafe { clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let mut b = [0u8; 1];
    // SAFETY: a valid one-byte buffer.
    unsafe { getrandom(b.as_mut_ptr().cast(), 1, 0) };
}

#[cfg(not(target_feature = "crt-static"))]
/// The C library's `clock_gettime`, found once.
fn real_clock_gettime() -> Option<ClockGettime> {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let mut f = REAL.load(Ordering::Relaxed);
    if f == 0 {
        // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT finds the next definition after
        // this one (glibc's).
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"clock_gettime".as_ptr()) } as usize;
        REAL.store(f, Ordering::Relaxed);
    }
    // SAFETY: a non-null result of dlsym for "clock_gettime" is that function.
    (f != 0).then(|| unsafe { std::mem::transmute::<usize, ClockGettime>(f) })
}

/// The real monotonic clock, on any thread (a simulation thread included), in nanoseconds.
pub(crate) fn real_monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    #[cfg(not(target_feature = "crt-static"))]
    match real_clock_gettime() {
        // SAFETY: a valid timespec to write to.
        Some(real) => unsafe { real(libc::CLOCK_MONOTONIC, &mut ts) },
        // SAFETY: the raw system call with a valid timespec.
        None => unsafe {
            libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) as libc::c_int
        },
    };
    #[cfg(target_feature = "crt-static")]
    // SAFETY: a valid timespec to write to.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts)
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(not(target_feature = "crt-static"))]
/// `clock_gettime(2)`: the virtual clock for the monotonic and wall clocks on a simulation
/// thread, the real one otherwise.
///
/// # Safety
/// `tp` must be valid for writing a `timespec`, as for the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_gettime(
    clock: libc::clockid_t,
    tp: *mut libc::timespec,
) -> libc::c_int {
    if VIRTUAL.get() {
        let base = match clock {
            libc::CLOCK_MONOTONIC
            | libc::CLOCK_MONOTONIC_RAW
            | libc::CLOCK_MONOTONIC_COARSE
            | libc::CLOCK_BOOTTIME => Some(MONOTONIC_EPOCH_NS),
            libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE | libc::CLOCK_TAI => {
                Some(REALTIME_EPOCH_NS)
            }
            _ => None,
        };
        if let Some(base) = base {
            let ns = base + NOW_NS.get();
            // SAFETY: the caller passes a writable timespec.
            unsafe {
                *tp = libc::timespec {
                    tv_sec: (ns / 1_000_000_000) as libc::time_t,
                    tv_nsec: (ns % 1_000_000_000) as libc::c_long,
                };
            }
            return 0;
        }
    }
    match real_clock_gettime() {
        // SAFETY: same contract as ours.
        Some(real) => unsafe { real(clock, tp) },
        // SAFETY: the raw system call, same contract.
        None => unsafe { libc::syscall(libc::SYS_clock_gettime, clock, tp) as libc::c_int },
    }
}

#[cfg(not(target_feature = "crt-static"))]
/// `getrandom(2)`: the simulation's seeded generator on a simulation thread, the kernel's
/// otherwise.
///
/// # Safety
/// `buf` must be valid for writing `len` bytes, as for the C function.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getrandom(
    buf: *mut libc::c_void,
    len: libc::size_t,
    flags: libc::c_uint,
) -> libc::ssize_t {
    if VIRTUAL.get() {
        let filled = RNG.with_borrow_mut(|rng| {
            let rng = rng.as_mut()?;
            // SAFETY: the caller passes `len` writable bytes.
            let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
            rng.fill_bytes(out);
            Some(len as libc::ssize_t)
        });
        if let Some(n) = filled {
            return n;
        }
    }
    // SAFETY: the raw system call, same contract.
    unsafe { libc::syscall(libc::SYS_getrandom, buf, len, flags) as libc::ssize_t }
}
