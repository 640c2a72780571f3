//! The NFQUEUE delayer: latency, jitter and loss on real packets where the kernel has no
//! netem. iptables queues packets arriving from shaped peers (on the receiving side: queueing
//! the sender's own packets collapses TCP); this thread holds each one in a timer heap and
//! accepts it when its delay is up, or drops it with the link's loss probability. Packets from
//! one peer leave in the order they came (jitter never reorders, as on the in-process links).

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshsim::__agent::LinkShape;
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// The queue the iptables rules send packets to.
pub const QUEUE: u16 = 0;

/// Counters for the health report.
#[derive(Default)]
pub struct Stats {
    pub held: u64,
    pub delayed: u64,
    pub dropped: u64,
    pub max_lag_ns: u64,
}

#[derive(Default)]
struct Shared {
    shapes: Mutex<HashMap<Ipv4Addr, LinkShape>>,
    held: AtomicU64,
    delayed: AtomicU64,
    dropped: AtomicU64,
    max_lag_ns: AtomicU64,
}

/// A bound queue and the thread that serves it.
pub struct Delayer {
    shared: Arc<Shared>,
}

impl Delayer {
    /// Binds the queue and starts the thread. Call before other threads start: the queue's
    /// socket descriptor is found as the lowest free one (the `nfq` crate does not expose it),
    /// and checked to be a netfilter netlink socket before it is polled.
    pub fn open() -> Result<Delayer, String> {
        // SAFETY: dup and close on descriptors this function owns.
        let expected = unsafe {
            let fd = libc::dup(2);
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        };
        let mut queue = nfq::Queue::open().map_err(|e| format!("NFQUEUE socket: {e}"))?;
        queue
            .bind(QUEUE)
            .map_err(|e| format!("NFQUEUE bind (needs CAP_NET_ADMIN): {e}"))?;
        let setup = |q: &mut nfq::Queue| -> std::io::Result<()> {
            q.set_copy_range(QUEUE, 64)?;
            q.set_queue_max_len(QUEUE, 1 << 16)?;
            q.set_recv_gso(QUEUE, true)?;
            q.set_fail_open(QUEUE, false)
        };
        setup(&mut queue).map_err(|e| format!("NFQUEUE setup: {e}"))?;
        queue.set_nonblocking(true);
        let fd = is_nfnetlink(expected).then_some(expected);
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("nfqueue-delayer".into())
            .spawn(move || run(queue, fd, &worker))
            .map_err(|e| format!("delayer thread: {e}"))?;
        Ok(Delayer { shared })
    }

    /// Sets (or with `None` removes) the shape of packets arriving from `ip`.
    pub fn set(&self, ip: Ipv4Addr, shape: Option<LinkShape>) {
        let mut shapes = self.shared.shapes.lock().unwrap_or_else(|e| e.into_inner());
        match shape {
            Some(s) => shapes.insert(ip, s),
            None => shapes.remove(&ip),
        };
    }

    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            held: s.held.load(Ordering::Relaxed),
            delayed: s.delayed.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            max_lag_ns: s.max_lag_ns.load(Ordering::Relaxed),
        }
    }
}

fn is_nfnetlink(fd: RawFd) -> bool {
    let mut domain: libc::c_int = 0;
    let mut proto: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the given integers.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&raw mut domain).cast(),
            &mut len,
        ) == 0
            && libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PROTOCOL,
                (&raw mut proto).cast(),
                &mut len,
            ) == 0
            && domain == libc::AF_NETLINK
            && proto == libc::NETLINK_NETFILTER
    }
}

struct Held {
    at: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    /// Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Waits until `fd` is readable or `timeout` passes (sleeps up to 1 ms without an fd).
fn wait(fd: Option<RawFd>, timeout: Duration) {
    match fd {
        Some(fd) => {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: one valid pollfd, a valid timespec, no signal mask.
            unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        }
        None => std::thread::sleep(timeout.min(Duration::from_millis(1))),
    }
}

fn run(mut queue: nfq::Queue, fd: Option<RawFd>, shared: &Shared) {
    let mut heap: BinaryHeap<Held> = BinaryHeap::new();
    let mut last: HashMap<Ipv4Addr, Instant> = HashMap::new();
    let mut rng = StdRng::seed_from_u64(u64::from(std::process::id()));
    let mut seq = 0u64;
    loop {
        let timeout = heap
            .peek()
            .map(|h| h.at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(200));
        wait(fd, timeout);
        loop {
            let mut msg = match queue.recv() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!("NFQUEUE receive: {e}");
                    break;
                }
            };
            let now = Instant::now();
            let src = msg
                .get_payload()
                .get(12..16)
                .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]));
            let shape = src.and_then(|ip| {
                shared
                    .shapes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&ip)
                    .copied()
            });
            let (Some(ip), Some(shape)) = (src, shape) else {
                msg.set_verdict(nfq::Verdict::Accept);
                let _ = queue.verdict(msg);
                continue;
            };
            if shape.loss > 0.0 && rng.random::<f64>() < shape.loss {
                msg.set_verdict(nfq::Verdict::Drop);
                let _ = queue.verdict(msg);
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut delay = shape.latency;
            if !shape.jitter.is_zero() {
                let j = shape.jitter.as_nanos() as i128;
                let d = delay.as_nanos() as i128 + rng.random_range(-j..=j);
                delay = Duration::from_nanos(d.max(0) as u64);
            }
            let at = (now + delay).max(last.get(&ip).copied().unwrap_or(now));
            last.insert(ip, at);
            seq += 1;
            heap.push(Held { at, seq, msg });
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|h| h.at <= now) {
            let Held { at, mut msg, .. } = heap.pop().expect("peeked");
            let lag = now.duration_since(at).as_nanos() as u64;
            shared.max_lag_ns.fetch_max(lag, Ordering::Relaxed);
            msg.set_verdict(nfq::Verdict::Accept);
            if let Err(e) = queue.verdict(msg) {
                tracing::warn!("NFQUEUE verdict: {e}");
            }
            shared.delayed.fetch_add(1, Ordering::Relaxed);
        }
        shared.held.store(heap.len() as u64, Ordering::Relaxed);
    }
}
