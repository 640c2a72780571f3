//! The real-time timer, for threads not in a simulation: finer than tokio's, which rounds
//! every deadline up to its 1 ms tick and wakes late by up to another tick (about 1.5 ms of
//! error on every simulated hop). One thread sleeps until the earliest deadline (a futex
//! timeout: the kernel's high-resolution timers, tens of microseconds) and wakes its task.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::Instant;

/// A task to wake at `at`; `seq` orders equal deadlines and makes entries comparable.
struct Entry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

struct Timer {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The thread's loop: wake what is due, sleep until the next deadline or a new earlier one.
    fn run(&self) {
        let mut due = Vec::new();
        let mut q = self.lock();
        loop {
            let now = Instant::now();
            while q.heap.peek().is_some_and(|e| e.0.at <= now) {
                due.push(q.heap.pop().expect("peeked").0.waker);
            }
            if !due.is_empty() {
                drop(q);
                due.drain(..).for_each(Waker::wake);
                q = self.lock();
                continue;
            }
            q = match q.heap.peek().map(|e| e.0.at) {
                Some(at) => {
                    self.changed
                        .wait_timeout(q, at - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(q).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("meshsim-timer".into())
            .spawn(move || t.run())
            .expect("meshsim-time: cannot start the timer thread");
        t
    })
}

/// Wakes `waker` at `at` (a few tens of microseconds after, on an idle machine).
pub(crate) fn wake_at(at: Instant, waker: &Waker) {
    let t = timer();
    let mut q = t.lock();
    let earliest = q.heap.peek().map(|e| e.0.at);
    q.seq += 1;
    let seq = q.seq;
    q.heap.push(Reverse(Entry {
        at,
        seq,
        waker: waker.clone(),
    }));
    if earliest.is_none_or(|e| at < e) {
        t.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wakes_each_task_at_its_deadline_in_order() {
        let start = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        // Deadlines pushed out of order; each waker reports when it ran.
        for ms in [30u64, 10, 20] {
            let tx = tx.clone();
            let waker = Waker::from(std::sync::Arc::new(Report(Mutex::new(Some((ms, tx))))));
            wake_at(start + Duration::from_millis(ms), &waker);
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            let (ms, at) = rx.recv_timeout(Duration::from_secs(5)).expect("woken");
            assert!(at >= start + Duration::from_millis(ms), "woke early");
            got.push(ms);
        }
        assert_eq!(got, [10, 20, 30]);
    }

    /// Sends its deadline (ms) and when it was woken, once.
    type Once = Option<(u64, std::sync::mpsc::Sender<(u64, Instant)>)>;
    struct Report(Mutex<Once>);

    impl std::task::Wake for Report {
        fn wake(self: std::sync::Arc<Self>) {
            if let Some((ms, tx)) = self.0.lock().unwrap().take() {
                let _ = tx.send((ms, Instant::now()));
            }
        }
    }
}
