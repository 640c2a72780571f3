//! Simulated links: one direction of a peer connection as a shaped byte pipe.
//!
//! The model, per direction of a connection:
//! - **Bandwidth:** a write of `n` bytes occupies the link for `8n / bandwidth` seconds after
//!   the previous write finished (a FIFO serialiser, unlimited buffer).
//! - **Latency and jitter:** it then arrives `latency + u` later, `u` uniform in
//!   `[-jitter, +jitter]` (clamped at zero). Arrivals never overtake each other: a reliable
//!   stream delivers in order, so a late chunk holds back the ones after it.
//! - **Loss:** the connection is a reliable stream, so a lost packet becomes delay, as TCP
//!   retransmission makes it. A write is cut into 1448-byte packets, each lost with
//!   probability `loss`; the lost ones are resent one RTO later, `RTT + 200 ms` (Linux's
//!   minimum RTO above the round trip), and whatever is lost again one doubled RTO after that.
//!   The write arrives when its last packet does.
//! - **Partition:** nothing crosses while the direction is cut. Bytes written during the cut,
//!   or still in flight when it began, arrive one latency after the heal, in order (an
//!   idealised TCP retransmission that gave up on no connection). Closing the connection
//!   travels the same way, so a peer behind a partition does not see it close until the heal.
//! - **Kill:** the end of a killed node resets instead of closing: one latency later, the
//!   peer's reads fail with `ConnectionReset`, as after a crashed process's RST.
//! - **Timers:** arrivals are released on meshsim's clock ([`meshsim_time::wake_at`]): in
//!   virtual time exactly on time; in real time by a thread on the kernel's high-resolution
//!   timers (tens of microseconds), not tokio's 1 ms one, and a busy CPU delays them
//!   further, which the links measure as lag.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::topology::LinkShape;
use crate::trace::lag::LagMeter;
use futures::{AsyncRead, AsyncWrite};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use tokio::sync::{mpsc, watch};

/// Bytes of payload per simulated packet (a typical TCP MSS).
const PACKET: usize = 1448;
/// Linux's minimum retransmission timeout.
const MIN_RTO: Duration = Duration::from_millis(200);

/// The current condition of one direction between two nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PathState {
    /// The shape traffic gets.
    pub shape: LinkShape,
    /// Latency of the reverse direction (for the retransmission timeout).
    pub reverse_latency: Duration,
    /// Cut by a partition.
    pub blocked: bool,
    /// How many cuts have begun on this direction.
    pub cuts: u64,
    /// When the last cut was healed.
    pub last_heal: Option<Instant>,
    /// The minimum retransmission timeout (Linux's, times the time dilation).
    pub min_rto: Duration,
}

impl Default for PathState {
    fn default() -> Self {
        PathState {
            shape: LinkShape::default(),
            reverse_latency: Duration::ZERO,
            blocked: false,
            cuts: 0,
            last_heal: None,
            min_rto: MIN_RTO,
        }
    }
}

/// Bytes in flight; `data: None` is the end of the stream (a reset if `reset`).
struct Chunk {
    at: Instant,
    data: Option<Vec<u8>>,
    reset: bool,
    /// The direction's cut count when it was sent: if a cut began since, it was in flight
    /// during a partition.
    cuts: u64,
}

/// The sending half of a direction.
struct Sender {
    chan: Option<mpsc::UnboundedSender<Chunk>>,
    path: watch::Receiver<PathState>,
    busy_until: Instant,
    last_arrival: Instant,
    rng: StdRng,
    /// Set when the node owning this end is killed: closing it then resets it.
    killed: Arc<AtomicBool>,
}

impl Sender {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let state = *self.path.borrow();
        let now = Instant::now();
        let shape = state.shape;
        let start = self.busy_until.max(now);
        self.busy_until = match shape.bandwidth {
            Some(bps) => start + Duration::from_secs_f64(data.len() as f64 * 8.0 / bps as f64),
            None => start,
        };
        let mut delay = shape.latency;
        if !shape.jitter.is_zero() {
            let j = shape.jitter.as_secs_f64();
            let u: f64 = self.rng.random_range(-j..=j);
            delay = Duration::from_secs_f64((shape.latency.as_secs_f64() + u).max(0.0));
        }
        if shape.loss > 0.0 {
            // Resend only what was lost, one (doubling) RTO later each round.
            let mut unacked = data.len().div_ceil(PACKET).max(1);
            let mut rto = shape.latency + state.reverse_latency + state.min_rto;
            for _ in 0..16 {
                unacked = (0..unacked)
                    .filter(|_| self.rng.random_bool(shape.loss))
                    .count();
                if unacked == 0 {
                    break;
                }
                delay += rto;
                rto *= 2;
            }
        }
        let at = (self.busy_until + delay).max(self.last_arrival);
        self.push(at, Some(data.to_vec()), false, state.cuts)
    }

    /// Sends the end of the stream (a reset if the owner was killed), one latency behind
    /// everything already sent.
    fn close(&mut self) {
        let state = *self.path.borrow();
        let at = (Instant::now() + state.shape.latency).max(self.last_arrival);
        let reset = self.killed.load(Ordering::Relaxed);
        let _ = self.push(at, None, reset, state.cuts);
        self.chan = None;
    }

    fn push(
        &mut self,
        at: Instant,
        data: Option<Vec<u8>>,
        reset: bool,
        cuts: u64,
    ) -> io::Result<()> {
        self.last_arrival = at;
        let chan = self
            .chan
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        chan.send(Chunk {
            at,
            data,
            reset,
            cuts,
        })
        .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.chan.is_some() {
            self.close();
        }
    }
}

/// The receiving half of a direction.
struct Receiver {
    chan: mpsc::UnboundedReceiver<Chunk>,
    lag: Arc<LagMeter>,
    path: watch::Receiver<PathState>,
    pending: Option<Chunk>,
    current: Vec<u8>,
    pos: usize,
    /// The deadline and task last registered with the clock.
    registered: Option<(Instant, Waker)>,
    heal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    last_release: Instant,
    ended: bool,
    reset: bool,
}

impl Receiver {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            if self.pos < self.current.len() {
                let n = buf.len().min(self.current.len() - self.pos);
                buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Poll::Ready(Ok(n));
            }
            if self.reset {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if self.ended {
                return Poll::Ready(Ok(0));
            }
            if self.pending.is_none() {
                match self.chan.poll_recv(cx) {
                    Poll::Ready(Some(chunk)) => self.pending = Some(chunk),
                    Poll::Ready(None) => return Poll::Ready(Ok(0)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            // Held while the direction is cut; re-timed to one latency after the heal.
            if self.path.borrow().blocked || self.heal.is_some() {
                let fut = self.heal.get_or_insert_with(|| {
                    let mut rx = self.path.clone();
                    Box::pin(async move {
                        let _ = rx.wait_for(|s| !s.blocked).await;
                    })
                });
                if fut.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.heal = None;
                let latency = self.path.borrow().shape.latency;
                let chunk = self.pending.as_mut().expect("pending chunk");
                chunk.at = chunk.at.max(Instant::now() + latency);
            }
            let state = *self.path.borrow();
            let chunk = self.pending.as_mut().expect("pending chunk");
            if chunk.cuts != state.cuts {
                // A cut began after it was sent: it was lost in flight and is resent after the heal.
                let healed = state.last_heal.unwrap_or_else(Instant::now);
                chunk.at = chunk.at.max(healed + state.shape.latency);
                chunk.cuts = state.cuts;
            }
            let at = chunk.at.max(self.last_release);
            if Instant::now() < at {
                let known = matches!(&self.registered,
                    Some((t, w)) if *t == at && w.will_wake(cx.waker()));
                if !known {
                    meshsim_time::wake_at(at, cx.waker());
                    self.registered = Some((at, cx.waker().clone()));
                }
                return Poll::Pending;
            }
            self.last_release = at;
            let chunk = self.pending.take().expect("pending chunk");
            match chunk.data {
                Some(data) => {
                    // How long after its modelled arrival the reading node took the bytes.
                    self.lag
                        .record(Instant::now().saturating_duration_since(at));
                    self.current = data;
                    self.pos = 0;
                }
                None if chunk.reset => self.reset = true,
                None => self.ended = true,
            }
        }
    }
}

/// One end of a simulated connection: writes go out over one shaped direction, reads come in
/// over the other.
pub(crate) struct SimStream {
    tx: Sender,
    rx: Receiver,
}

/// Makes a connected pair `(dialer end, listener end)`. `out` shapes dialer -> listener,
/// `back` listener -> dialer; `seed` drives jitter and loss; `lag` notes how late each end
/// reads what arrived.
#[cfg(test)]
pub(crate) fn pipe(
    out: watch::Receiver<PathState>,
    back: watch::Receiver<PathState>,
    seed: u64,
    lag: Arc<LagMeter>,
) -> (SimStream, SimStream) {
    let alive = || Arc::new(AtomicBool::new(false));
    pipe_between(out, back, seed, lag, (alive(), alive()))
}

/// As [`pipe`], between two nodes whose kill flags are `killed` (dialer's, listener's):
/// the end of a killed node resets rather than closes.
pub(crate) fn pipe_between(
    out: watch::Receiver<PathState>,
    back: watch::Receiver<PathState>,
    seed: u64,
    lag: Arc<LagMeter>,
    killed: (Arc<AtomicBool>, Arc<AtomicBool>),
) -> (SimStream, SimStream) {
    let (tx_out, rx_out) = mpsc::unbounded_channel();
    let (tx_back, rx_back) = mpsc::unbounded_channel();
    let now = Instant::now();
    let sender = |chan, path, seed, killed| Sender {
        chan: Some(chan),
        path,
        busy_until: now,
        last_arrival: now,
        rng: StdRng::seed_from_u64(seed),
        killed,
    };
    let receiver = |chan, path| Receiver {
        chan,
        lag: lag.clone(),
        path,
        pending: None,
        current: Vec::new(),
        pos: 0,
        registered: None,
        heal: None,
        last_release: now,
        ended: false,
        reset: false,
    };
    let dialer = SimStream {
        tx: sender(tx_out, out.clone(), seed, killed.0),
        rx: receiver(rx_back, back.clone()),
    };
    let listener = SimStream {
        tx: sender(tx_back, back, seed ^ 0x9e37_79b9_7f4a_7c15, killed.1),
        rx: receiver(rx_out, out),
    };
    (dialer, listener)
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().rx.poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().tx.send(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let tx = &mut self.get_mut().tx;
        if tx.chan.is_some() {
            tx.close();
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};

    fn state(shape: LinkShape) -> (watch::Sender<PathState>, watch::Receiver<PathState>) {
        watch::channel(PathState {
            shape,
            reverse_latency: shape.latency,
            ..Default::default()
        })
    }

    /// Runs a test in virtual time: exact timings, no waiting.
    fn virtual_time<Fut: std::future::Future<Output = ()>>(test: impl FnOnce() -> Fut + Send) {
        crate::time::run_virtual(1, test);
    }

    fn cut(s: &mut PathState) {
        s.blocked = true;
        s.cuts += 1;
    }

    fn heal(s: &mut PathState) {
        s.blocked = false;
        s.last_heal = Some(Instant::now());
    }

    #[test]
    fn latency_and_bandwidth_delay_arrival() {
        virtual_time(|| async {
            let (_s1, out) =
                state(LinkShape::latency(Duration::from_millis(50)).with_bandwidth(8_000_000));
            let (_s2, back) = state(LinkShape::default());
            let (mut a, mut b) = pipe(out, back, 1, Arc::new(LagMeter::new(1.0)));
            let t0 = Instant::now();
            a.write_all(&[7u8; 10_000]).await.unwrap(); // 10 ms at 8 Mbit/s
            let mut buf = vec![0u8; 10_000];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, vec![7u8; 10_000]);
            assert_eq!(t0.elapsed(), Duration::from_millis(60));
        });
    }

    #[test]
    fn partition_holds_until_heal() {
        virtual_time(|| async {
            let (s1, out) = state(LinkShape::latency(Duration::from_millis(20)));
            let (_s2, back) = state(LinkShape::default());
            let (mut a, mut b) = pipe(out, back, 1, Arc::new(LagMeter::new(1.0)));
            s1.send_modify(cut);
            a.write_all(b"hello").await.unwrap();
            let mut buf = [0u8; 5];
            let read = crate::time::timeout(Duration::from_secs(10), b.read_exact(&mut buf)).await;
            assert!(read.is_err(), "nothing crosses a partition");
            let healed = Instant::now();
            s1.send_modify(heal);
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            assert_eq!(healed.elapsed(), Duration::from_millis(20));
        });
    }

    #[test]
    fn loss_becomes_retransmission_delay() {
        virtual_time(|| async {
            let (_s1, out) = state(LinkShape::latency(Duration::from_millis(10)).with_loss(0.5));
            let (_s2, back) = state(LinkShape::latency(Duration::from_millis(10)));
            let (mut a, mut b) = pipe(out, back, 42, Arc::new(LagMeter::new(1.0)));
            let mut late = 0;
            for _ in 0..200 {
                let t0 = Instant::now();
                a.write_all(&[1u8; 100]).await.unwrap();
                let mut buf = [0u8; 100];
                b.read_exact(&mut buf).await.unwrap();
                let d = t0.elapsed();
                assert!(d >= Duration::from_millis(10));
                if d >= Duration::from_millis(230) {
                    late += 1; // 10 ms + RTO (20 ms RTT + 200 ms)
                }
            }
            assert!(
                (70..130).contains(&late),
                "about half the writes are retransmitted: {late}"
            );
        });
    }

    // The real-time path: the high-resolution timer thread on the real clock (the tests in
    // virtual time above use the simulation's timers). Only lower bounds and order are asserted: how
    // late the timer wakes is a wall-clock figure, measured by `meshsim-bench --only
    // fidelity` (one-hop error) rather than asserted here.
    #[tokio::test]
    async fn the_precise_timer_never_delivers_early_or_out_of_order() {
        let shape = LinkShape::latency(Duration::from_millis(20))
            .with_jitter(Duration::from_millis(5))
            .with_bandwidth(8_000_000);
        let (_s1, out) = state(shape);
        let (_s2, back) = state(LinkShape::default());
        let lag = Arc::new(LagMeter::new(1.0));
        let (mut a, mut b) = pipe(out, back, 9, lag.clone());
        let t0 = Instant::now();
        // 10 kB occupy an 8 Mbit/s link for 10 ms; jitter takes off at most 5 ms.
        a.write_all(&[7u8; 10_000]).await.unwrap();
        let mut buf = vec![0u8; 10_000];
        // A timer that never woke would leave the reader waiting: after a generous while,
        // give up (checked first: a late poll must not find the bytes due by then).
        async fn woken<T>(read: impl std::future::Future<Output = T>) -> T {
            tokio::select! {
                biased;
                () = tokio::time::sleep(Duration::from_secs(10)) => {
                    panic!("the link timer never woke the reader")
                }
                r = read => r,
            }
        }
        woken(b.read_exact(&mut buf)).await.unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(25),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(buf, vec![7u8; 10_000]);
        // Small writes under jitter arrive in the order sent.
        for i in 0..50u8 {
            a.write_all(&[i]).await.unwrap();
        }
        let mut buf = [0u8; 50];
        woken(b.read_exact(&mut buf)).await.unwrap();
        assert!(
            buf.iter().enumerate().all(|(i, &v)| v == i as u8),
            "{buf:?}"
        );
        // The links measured how late each delivery was taken.
        assert!(lag.report(Duration::from_secs(1)).samples > 0);
    }

    #[test]
    fn jitter_never_reorders() {
        virtual_time(|| async {
            let (_s1, out) = state(
                LinkShape::latency(Duration::from_millis(20))
                    .with_jitter(Duration::from_millis(15)),
            );
            let (_s2, back) = state(LinkShape::default());
            let (mut a, mut b) = pipe(out, back, 7, Arc::new(LagMeter::new(1.0)));
            for i in 0..100u8 {
                a.write_all(&[i]).await.unwrap();
                crate::time::sleep(Duration::from_millis(1)).await;
            }
            let mut buf = [0u8; 100];
            b.read_exact(&mut buf).await.unwrap();
            assert!(buf.iter().enumerate().all(|(i, &v)| v == i as u8));
        });
    }

    #[test]
    fn bytes_in_flight_during_a_short_cut_arrive_after_the_heal() {
        virtual_time(|| async {
            let (s1, out) = state(LinkShape::latency(Duration::from_millis(100)));
            let (_s2, back) = state(LinkShape::default());
            let (mut a, mut b) = pipe(out, back, 1, Arc::new(LagMeter::new(1.0)));
            let t0 = Instant::now();
            a.write_all(b"x").await.unwrap();
            crate::time::sleep(Duration::from_millis(10)).await;
            s1.send_modify(cut);
            crate::time::sleep(Duration::from_millis(80)).await;
            s1.send_modify(heal);
            let mut buf = [0u8; 1];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(
                t0.elapsed(),
                Duration::from_millis(190),
                "one latency after the heal at 90 ms"
            );
        });
    }

    #[test]
    fn closing_travels_with_latency_and_waits_for_a_heal() {
        virtual_time(|| async {
            let (s1, out) = state(LinkShape::latency(Duration::from_millis(30)));
            let (_s2, back) = state(LinkShape::default());
            let (mut a, mut b) = pipe(out, back, 1, Arc::new(LagMeter::new(1.0)));
            s1.send_modify(cut);
            let t0 = Instant::now();
            drop(a.close().await);
            drop(a);
            let mut buf = [0u8; 1];
            let early = crate::time::timeout(Duration::from_secs(5), b.read(&mut buf)).await;
            assert!(early.is_err(), "the close does not cross the partition");
            s1.send_modify(heal);
            assert_eq!(b.read(&mut buf).await.unwrap(), 0);
            assert_eq!(t0.elapsed(), Duration::from_millis(5030));
        });
    }

    #[test]
    fn large_writes_resend_only_lost_packets() {
        virtual_time(|| async {
            let (_s1, out) = state(LinkShape::latency(Duration::from_millis(10)).with_loss(0.05));
            let (_s2, back) = state(LinkShape::latency(Duration::from_millis(10)));
            let (mut a, mut b) = pipe(out, back, 3, Arc::new(LagMeter::new(1.0)));
            let mut worst = Duration::ZERO;
            for _ in 0..50 {
                let t0 = Instant::now();
                a.write_all(&[0u8; 65_000]).await.unwrap(); // 45 packets
                let mut buf = vec![0u8; 65_000];
                b.read_exact(&mut buf).await.unwrap();
                worst = worst.max(t0.elapsed());
            }
            // Each round loses 5% of what is left: a few RTOs (220 ms, 440 ms, ...) at most.
            assert!(
                worst < Duration::from_millis(10 + 220 + 440 + 880),
                "{worst:?}"
            );
            assert!(
                worst >= Duration::from_millis(230),
                "some write lost a packet: {worst:?}"
            );
        });
    }
}
