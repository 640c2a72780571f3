//! The simulation thread's state: its virtual clock, its timers and its random generator.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::task::Waker;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

thread_local! {
    /// Whether this thread is in a simulation (read by the `clock_gettime` interposer).
    pub(crate) static VIRTUAL: Cell<bool> = const { Cell::new(false) };
    /// Virtual nanoseconds since the simulation began.
    pub(crate) static NOW_NS: Cell<u64> = const { Cell::new(0) };
    /// The simulation's random generator (read by the `getrandom` interposer).
    pub(crate) static RNG: RefCell<Option<StdRng>> = const { RefCell::new(None) };
    /// Pending wake-ups by (deadline in virtual ns, registration order).
    static TIMERS: RefCell<BTreeMap<(u64, u64), Waker>> = const { RefCell::new(BTreeMap::new()) };
    static SEQ: Cell<u64> = const { Cell::new(0) };
}

/// While alive, the thread that called [`enter`] runs on virtual time; dropping it returns
/// the thread to the real clock and drops its pending timers.
#[derive(Debug)]
pub struct Entered {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Puts the calling thread on virtual time (starting at zero) and seeds its randomness from
/// `seed`. Call it on a fresh thread, before anything there has used a `HashMap` or
/// `rand::rng()` (both keep a per-thread seed drawn at first use): [`run`] does this.
///
/// # Panics
/// If the thread is already in a simulation.
pub fn enter(seed: u64) -> Entered {
    assert!(
        !VIRTUAL.get(),
        "meshsim-time: this thread is already in a simulation"
    );
    crate::interpose::link();
    NOW_NS.set(0);
    SEQ.set(0);
    TIMERS.with_borrow_mut(BTreeMap::clear);
    RNG.with_borrow_mut(|r| *r = Some(StdRng::seed_from_u64(seed ^ 0x6d65_7368_7369_6d21)));
    VIRTUAL.set(true);
    Entered {
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        VIRTUAL.set(false);
        RNG.with_borrow_mut(|r| *r = None);
        let timers = TIMERS.with_borrow_mut(std::mem::take);
        drop(timers);
    }
}

/// Runs `f` on a fresh thread in a simulation seeded by `seed`, and returns what it returns
/// (a panic in `f` is resumed here).
pub fn run<T: Send>(seed: u64, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let thread = std::thread::Builder::new()
            .name("meshsim-virtual".into())
            .spawn_scoped(s, move || {
                let _sim = enter(seed);
                f()
            })
            .expect("meshsim-time: cannot start a simulation thread");
        match thread.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Whether the calling thread runs on virtual time.
pub fn is_virtual() -> bool {
    VIRTUAL.get()
}

/// Virtual time since the simulation began, on a simulation thread (`None` elsewhere).
pub fn now() -> Option<Duration> {
    is_virtual().then(|| Duration::from_nanos(NOW_NS.get()))
}

/// How many wake-ups are pending on this simulation thread.
pub fn pending_timers() -> usize {
    TIMERS.with_borrow(BTreeMap::len)
}

/// Registers `waker` to be woken when the virtual clock reaches `at`.
pub(crate) fn register(at: Instant, waker: &Waker) {
    let ahead = at.saturating_duration_since(Instant::now());
    let due = NOW_NS
        .get()
        .saturating_add(ahead.as_nanos().min(u64::MAX as u128) as u64);
    let seq = SEQ.get();
    SEQ.set(seq + 1);
    TIMERS.with_borrow_mut(|t| t.insert((due, seq), waker.clone()));
}

/// Moves the virtual clock to the earliest pending deadline and wakes everything due then,
/// in the order it was registered. Call it when the simulation has nothing else to run (an
/// executor's park hook). Returns false, and leaves the clock alone, when nothing is pending.
pub fn advance() -> bool {
    if !is_virtual() {
        return false;
    }
    let due = TIMERS.with_borrow_mut(|t| {
        let &(at, _) = t.first_key_value()?.0;
        let mut due = Vec::new();
        while let Some(entry) = t.first_entry() {
            if entry.key().0 != at {
                break;
            }
            due.push(entry.remove());
        }
        Some((at, due))
    });
    let Some((at, due)) = due else {
        return false;
    };
    NOW_NS.set(NOW_NS.get().max(at));
    due.into_iter().for_each(Waker::wake);
    true
}
