//! The interposed clock and randomness, seen through std and rand as any crate sees them.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use rand::RngExt;

/// What a thread observes of its randomness: rand's thread generator, `HashMap` order, raw
/// getrandom bytes.
fn observe() -> (u64, Vec<u32>, [u8; 16]) {
    let r: u64 = rand::rng().random();
    let map: HashMap<u32, ()> = (0..64).map(|i| (i, ())).collect();
    let order = map.keys().copied().collect();
    let mut bytes = [0u8; 16];
    getrandom_bytes(&mut bytes);
    (r, order, bytes)
}

fn getrandom_bytes(buf: &mut [u8]) {
    // SAFETY: a valid buffer of that length.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(n, buf.len() as isize);
}

#[test]
fn a_seed_fixes_every_random_draw_and_another_seed_changes_them() {
    let a = meshsim_time::run(1, observe);
    let b = meshsim_time::run(1, observe);
    let c = meshsim_time::run(2, observe);
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    assert_ne!(a.2, c.2);
    // Off a simulation thread, the kernel's randomness: two draws differ.
    let mut x = [0u8; 16];
    let mut y = [0u8; 16];
    getrandom_bytes(&mut x);
    getrandom_bytes(&mut y);
    assert_ne!(x, y);
}

#[test]
fn the_virtual_clock_moves_only_to_the_next_timer() {
    let real_start = Instant::now();
    let (elapsed, wall, pending) = meshsim_time::run(3, || {
        let t0 = Instant::now();
        let w0 = SystemTime::now();
        // Busy for a while: CPU work costs no virtual time.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(t0.elapsed(), Duration::ZERO);
        let waker = std::task::Waker::noop();
        for ms in [30u64, 10, 20] {
            meshsim_time::wake_at(t0 + Duration::from_millis(ms), waker);
        }
        let pending = meshsim_time::pending_timers();
        let mut steps = Vec::new();
        while meshsim_time::advance() {
            steps.push(t0.elapsed());
        }
        (steps, w0.elapsed().unwrap(), pending)
    });
    assert_eq!(pending, 3);
    assert_eq!(
        elapsed,
        [10, 20, 30].map(Duration::from_millis).to_vec(),
        "one step per deadline, in deadline order, exact"
    );
    assert_eq!(wall, Duration::from_millis(30));
    // The real clock went on meanwhile, on this thread, and was not moved by the simulation.
    assert!(real_start.elapsed() < Duration::from_secs(3600));
}

/// Gossipsub resets its heartbeat `Delay` after it fires and returns without polling it:
/// the reset alone must bring the wake-up.
#[test]
fn a_reset_sleep_wakes_its_task_without_another_poll() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let woken = meshsim_time::run(4, || {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut sleep = meshsim_time::Sleep::new(Duration::from_secs(1));
        let mut cx = Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut sleep).poll(&mut cx).is_pending());
        assert!(meshsim_time::advance());
        assert!(std::pin::Pin::new(&mut sleep).poll(&mut cx).is_ready());
        sleep.reset(Instant::now() + Duration::from_secs(1));
        assert!(meshsim_time::advance(), "the reset registered a wake-up");
        count.0.load(Ordering::SeqCst)
    });
    assert_eq!(woken, 2);
}
