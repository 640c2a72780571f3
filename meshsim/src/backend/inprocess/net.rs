//! The simulated network of one simulation: who listens, and the state of every path.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::time::Instant;
use tokio::sync::{mpsc, watch};

use super::link::{PathState, pipe_between};
use crate::node::network::{ByteStream, Incoming, LISTEN_BACKLOG, Links};
use crate::topology::{NodeId, Topology};
use crate::trace::lag::LagMeter;

type Listener = mpsc::Sender<(ByteStream, NodeId)>;

/// Listeners, the topology, partitions, and one watched [`PathState`] per ordered pair.
pub(crate) struct SimNet {
    seed: u64,
    lag: Arc<LagMeter>,
    /// Listener registrations so far (each one's token).
    listens: AtomicU64,
    inner: Mutex<Inner>,
}

struct Inner {
    /// The topology, its shapes already dilated.
    topology: Topology,
    /// Time dilation: how many times slower than simulated time the links run.
    dilation: f64,
    /// Each node's listener, with a token naming the transport that registered it.
    listeners: HashMap<NodeId, (u64, Listener)>,
    /// Each node's kill flag, fresh for every start: the ends of its connections reset
    /// rather than close once it is set.
    killed: HashMap<NodeId, Arc<AtomicBool>>,
    paths: HashMap<(NodeId, NodeId), watch::Sender<PathState>>,
    /// Connections opened so far per ordered pair: a link's randomness comes from the seed,
    /// the pair and this count, not from the order connections elsewhere were made.
    dials: HashMap<(NodeId, NodeId), u64>,
    partitions: Vec<(Vec<NodeId>, Vec<NodeId>)>,
}

impl Inner {
    fn state(&self, from: NodeId, to: NodeId) -> Option<PathState> {
        let shape = self.topology.path_shape(from, to)?;
        let back = self.topology.path_shape(to, from)?;
        let blocked = self.partitions.iter().any(|(a, b)| {
            (a.contains(&from) && b.contains(&to)) || (b.contains(&from) && a.contains(&to))
        });
        Some(PathState {
            shape,
            reverse_latency: back.latency,
            blocked,
            min_rto: PathState::default().min_rto.mul_f64(self.dilation),
            ..PathState::default()
        })
    }

    fn path(&mut self, from: NodeId, to: NodeId) -> io::Result<watch::Receiver<PathState>> {
        if let Some(tx) = self.paths.get(&(from, to)) {
            return Ok(tx.subscribe());
        }
        let state = self.state(from, to).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::HostUnreachable,
                format!("no route from {from} to {to}"),
            )
        })?;
        let (tx, rx) = watch::channel(state);
        self.paths.insert((from, to), tx);
        Ok(rx)
    }

    /// Recomputes every known path after a change, notifying connections whose path changed.
    fn refresh(&mut self) {
        let keys: Vec<(NodeId, NodeId)> = self.paths.keys().copied().collect();
        for (from, to) in keys {
            if let Some(mut state) = self.state(from, to) {
                self.paths[&(from, to)].send_if_modified(|s| {
                    state.cuts = s.cuts + u64::from(state.blocked && !s.blocked);
                    state.last_heal = if s.blocked && !state.blocked {
                        Some(Instant::now())
                    } else {
                        s.last_heal
                    };
                    let changed = *s != state;
                    *s = state;
                    changed
                });
            }
        }
    }
}

impl SimNet {
    /// A network over `topology`, whose shapes are already multiplied by `dilation`.
    pub(crate) fn new(topology: Topology, seed: u64, dilation: f64) -> Arc<Self> {
        Arc::new(SimNet {
            seed,
            lag: Arc::new(LagMeter::new(dilation)),
            listens: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                topology,
                dilation,
                listeners: HashMap::new(),
                killed: HashMap::new(),
                paths: HashMap::new(),
                dials: HashMap::new(),
                partitions: Vec::new(),
            }),
        })
    }

    /// The meter every link of this network reports its lag to.
    pub(crate) fn lag(&self) -> Arc<LagMeter> {
        self.lag.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `n` killed: its connections reset as they are dropped.
    pub(crate) fn kill(&self, n: NodeId) {
        if let Some(flag) = self.lock().killed.get(&n) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    fn killed(inner: &mut Inner, n: NodeId) -> Arc<AtomicBool> {
        inner.killed.entry(n).or_default().clone()
    }
}

impl Links for SimNet {
    /// Registers `n`'s listener (a node starting, with a fresh kill flag); the token lets
    /// only this registration be removed.
    fn listen(&self, n: NodeId) -> (u64, Incoming) {
        let (tx, rx) = mpsc::channel(LISTEN_BACKLOG);
        let token = self.listens.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.listeners.insert(n, (token, tx));
        inner.killed.insert(n, Arc::default());
        (token, rx)
    }

    /// Removes `n`'s listener if it is still the one registered with `token` (a restarted
    /// node may already have registered a new one).
    fn unlisten(&self, n: NodeId, token: u64) {
        let mut inner = self.lock();
        if inner.listeners.get(&n).is_some_and(|(t, _)| *t == token) {
            inner.listeners.remove(&n);
        }
    }

    /// Opens a connection `from -> to`; returns the dialer's end and the handshake time (one RTT).
    fn connect(&self, from: NodeId, to: NodeId) -> io::Result<(ByteStream, Duration)> {
        let mut inner = self.lock();
        let listener = inner
            .listeners
            .get(&to)
            .map(|(_, l)| l.clone())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("{to} is not listening"),
                )
            })?;
        let out = inner.path(from, to)?;
        let back = inner.path(to, from)?;
        let (o, b) = (*out.borrow(), *back.borrow());
        if o.blocked || b.blocked {
            return Err(io::Error::new(
                io::ErrorKind::HostUnreachable,
                format!("{from} and {to} are partitioned"),
            ));
        }
        let k = {
            let count = inner.dials.entry((from, to)).or_default();
            *count += 1;
            *count
        };
        let seed = self.seed
            ^ (u64::from(from.0) << 40)
            ^ (u64::from(to.0) << 20)
            ^ k.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let killed = (Self::killed(&mut inner, from), Self::killed(&mut inner, to));
        let (dialer, listener_end) = pipe_between(out, back, seed, self.lag.clone(), killed);
        listener
            .try_send((Box::new(listener_end), from))
            .map_err(|e| {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => format!(
                        "{to}'s listen backlog is full ({LISTEN_BACKLOG} connections not yet accepted)"
                    ),
                    mpsc::error::TrySendError::Closed(_) => format!("{to} stopped listening"),
                };
                io::Error::new(io::ErrorKind::ConnectionRefused, why)
            })?;
        Ok((Box::new(dialer), o.shape.latency + b.shape.latency))
    }
}

impl SimNet {
    /// Changes the topology (link shapes, added nodes) and re-shapes live connections.
    pub(crate) fn update_topology<T>(&self, f: impl FnOnce(&mut Topology) -> T) -> T {
        let mut inner = self.lock();
        let out = f(&mut inner.topology);
        inner.refresh();
        out
    }

    pub(crate) fn partition(&self, a: Vec<NodeId>, b: Vec<NodeId>) {
        let mut inner = self.lock();
        inner.partitions.push((a, b));
        inner.refresh();
    }

    /// Removes the partition between exactly these groups; false if there was none.
    /// `announce` runs once the partition is found and before traffic flows again, so the
    /// heal is recorded before anything it lets through.
    pub(crate) fn heal(&self, a: &[NodeId], b: &[NodeId], announce: impl FnOnce()) -> bool {
        let mut inner = self.lock();
        let before = inner.partitions.len();
        inner
            .partitions
            .retain(|(x, y)| !((x == a && y == b) || (x == b && y == a)));
        let healed = inner.partitions.len() != before;
        if healed {
            announce();
            inner.refresh();
        }
        healed
    }
}
