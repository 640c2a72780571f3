//! The live trace: nodes record events as they happen; waits watch it change.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::clock;
use super::lag::LagMeter;
use super::{Event, EventKind, LinkLag, MessageInfo, Meta, MsgId, TopologySnapshot, Trace};
use crate::topology::{Link, NodeId, NodeSpec};

/// State derived from the events, kept up to date for cheap waits.
#[derive(Default)]
pub(crate) struct Live {
    /// Nodes currently up.
    pub up: BTreeSet<NodeId>,
    /// Current connections, per node.
    pub connected: HashMap<NodeId, HashSet<NodeId>>,
    /// Topics each node is subscribed to.
    pub subscriptions: HashMap<NodeId, BTreeSet<String>>,
    /// What each node has learned of its peers' subscriptions: (peer, topic).
    pub known_subscriptions: HashMap<NodeId, HashSet<(NodeId, String)>>,
    /// Mesh peers per (node, topic).
    pub mesh: HashMap<(NodeId, String), BTreeSet<NodeId>>,
    /// Nodes that received each message.
    pub delivered: HashMap<MsgId, HashSet<NodeId>>,
    /// Nodes whose software reported itself ready.
    pub ready: HashSet<NodeId>,
}

pub(crate) struct State {
    pub trace: Trace,
    pub live: Live,
}

/// Where a node reports what it sees: the [`Recorder`] in process, a telemetry stream in
/// `meshsim-agent`.
pub(crate) trait Report: Send + Sync {
    /// Records an event now.
    fn record(&self, node: Option<NodeId>, kind: EventKind);
    /// `origin` published `msg`.
    fn published(&self, msg: MsgId, origin: NodeId, topic: &str, size: usize);
    /// `node` learned that `peer` is subscribed (or not) to `topic`.
    fn peer_subscription(&self, node: NodeId, peer: NodeId, topic: &str, subscribed: bool);
    /// `node`'s software reports it is ready.
    fn ready(&self, node: NodeId) {
        let _ = node;
    }
}

impl Report for Recorder {
    fn record(&self, node: Option<NodeId>, kind: EventKind) {
        Recorder::record(self, node, kind)
    }

    fn published(&self, msg: MsgId, origin: NodeId, topic: &str, size: usize) {
        Recorder::published(self, msg, origin, topic, size)
    }

    fn peer_subscription(&self, node: NodeId, peer: NodeId, topic: &str, subscribed: bool) {
        Recorder::peer_subscription(self, node, peer, topic, subscribed)
    }

    fn ready(&self, node: NodeId) {
        self.lock().live.ready.insert(node);
        self.bump();
    }
}

/// Shared by the simulation handle and every node task.
pub(crate) struct Recorder {
    /// When the simulation started, on [`clock::mono_ns`], the one clock of every time in
    /// the trace (the harness's and the containers').
    start_mono_ns: u64,
    /// Time dilation: trace times are wall time since `start` divided by this.
    dilation: f64,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    lag: Mutex<LagSetting>,
}

/// The links' lag meter (in-process backend) and the p99 that flags a run.
#[derive(Default)]
struct LagSetting {
    threshold: Duration,
    meter: Option<Arc<LagMeter>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("events", &self.lock().trace.events.len())
            .finish()
    }
}

impl Recorder {
    pub(crate) fn new(meta_without_start: Meta, topology: TopologySnapshot) -> Self {
        let started_at_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let meta = Meta {
            started_at_unix_ns,
            ..meta_without_start
        };
        Recorder {
            start_mono_ns: clock::mono_ns(),
            dilation: meta.dilation,
            state: Mutex::new(State {
                trace: Trace {
                    format: super::FORMAT.into(),
                    version: super::VERSION,
                    meta,
                    topology,
                    messages: Vec::new(),
                    events: Vec::new(),
                    lag: None,
                },
                live: Live::default(),
            }),
            changed: watch::channel(0).0,
            lag: Mutex::new(LagSetting::default()),
        }
    }

    fn lag_setting(&self) -> MutexGuard<'_, LagSetting> {
        self.lag.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The p99 link lag above which the trace flags the run.
    pub(crate) fn set_lag_threshold(&self, threshold: Duration) {
        self.lag_setting().threshold = threshold;
    }

    /// Reports the links' lag in every snapshot from now on.
    pub(crate) fn measure_lag(&self, meter: Arc<LagMeter>) {
        self.lag_setting().meter = Some(meter);
    }

    /// The links' lag so far, when they measure it.
    pub(crate) fn lag(&self) -> Option<LinkLag> {
        let s = self.lag_setting();
        s.meter.as_ref().map(|m| m.report(s.threshold))
    }

    /// Nanoseconds of simulated time since the simulation started (wall time divided by
    /// the time dilation).
    pub(crate) fn now_ns(&self) -> u64 {
        self.since_start(clock::mono_ns())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that sees every change.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Adds a node the simulation started after the start, with its links, to the trace's
    /// topology (its `node_up` event says when).
    pub(crate) fn add_node(
        &self,
        spec: NodeSpec,
        links: Vec<Link>,
        overlay: Vec<(NodeId, NodeId)>,
    ) {
        let mut st = self.lock();
        let topology = &mut st.trace.topology;
        topology.nodes.push(spec);
        topology.links.extend(links);
        topology.overlay.extend(overlay);
    }

    /// Records an event now.
    pub(crate) fn record(&self, node: Option<NodeId>, kind: EventKind) {
        {
            let mut st = self.lock();
            // Taken under the lock, so events are in time order.
            let t_ns = self.now_ns();
            apply(&mut st.live, node, &kind);
            st.trace.events.push(Event { t_ns, node, kind });
        }
        self.bump();
    }

    /// Nanoseconds of simulated time since the start for a time on [`clock::mono_ns`] (the
    /// harness's, or a container's corrected by its measured offset).
    pub(crate) fn since_start(&self, mono_ns: u64) -> u64 {
        (mono_ns.saturating_sub(self.start_mono_ns) as f64 / self.dilation) as u64
    }

    #[cfg(feature = "docker")]
    /// Records an event that happened at `t_ns` (reported late, by an agent): it goes in
    /// its place in time order.
    pub(crate) fn record_at(&self, t_ns: u64, node: Option<NodeId>, kind: EventKind) {
        {
            let mut st = self.lock();
            apply(&mut st.live, node, &kind);
            insert_in_order(&mut st.trace.events, Event { t_ns, node, kind });
        }
        self.bump();
    }

    /// Notes that `node` learned `peer` is subscribed (or not) to `topic`. Not a trace event.
    pub(crate) fn peer_subscription(
        &self,
        node: NodeId,
        peer: NodeId,
        topic: &str,
        subscribed: bool,
    ) {
        {
            let mut st = self.lock();
            let set = st.live.known_subscriptions.entry(node).or_default();
            if subscribed {
                set.insert((peer, topic.to_string()));
            } else {
                set.remove(&(peer, topic.to_string()));
            }
        }
        self.bump();
    }

    /// Registers a published message with the nodes expected to receive it, and records the
    /// `published` event, atomically.
    pub(crate) fn published(&self, msg: MsgId, origin: NodeId, topic: &str, size: usize) {
        self.published_at(None, msg, origin, topic, size)
    }

    /// As [`Recorder::published`], at `t_ns` if given (an agent's report) or now.
    pub(crate) fn published_at(
        &self,
        t_ns: Option<u64>,
        msg: MsgId,
        origin: NodeId,
        topic: &str,
        size: usize,
    ) {
        {
            let mut st = self.lock();
            let t_ns = t_ns.unwrap_or_else(|| self.now_ns());
            let kind = EventKind::Published {
                msg,
                topic: topic.to_string(),
                size,
            };
            // Published again, by another node (`Simulation::publish_again`): one more
            // origin, which no longer counts as a receiver.
            if let Some(m) = st.trace.messages.iter_mut().find(|m| m.id == msg) {
                m.expected.retain(|&n| n != origin);
                apply(&mut st.live, Some(origin), &kind);
                insert_in_order(
                    &mut st.trace.events,
                    Event {
                        t_ns,
                        node: Some(origin),
                        kind,
                    },
                );
                drop(st);
                self.bump();
                return;
            }
            let expected: Vec<NodeId> = st
                .live
                .up
                .iter()
                .copied()
                .filter(|&n| {
                    n != origin
                        && st
                            .live
                            .subscriptions
                            .get(&n)
                            .is_some_and(|t| t.contains(topic))
                })
                .collect();
            st.trace.messages.push(MessageInfo {
                id: msg,
                origin,
                topic: topic.to_string(),
                size,
                published_ns: t_ns,
                expected,
            });
            apply(&mut st.live, Some(origin), &kind);
            insert_in_order(
                &mut st.trace.events,
                Event {
                    t_ns,
                    node: Some(origin),
                    kind,
                },
            );
        }
        self.bump();
    }

    /// A copy of the whole trace so far.
    pub(crate) fn snapshot(&self) -> Trace {
        let mut trace = self.lock().trace.clone();
        trace.lag = self.lag();
        trace
    }
}

/// Appends `e`, or inserts it after the last event not later than it: a binary search, and
/// a move of only the events later than it (a report a few milliseconds late moves a few).
fn insert_in_order(events: &mut Vec<Event>, e: Event) {
    let at = events.partition_point(|x| x.t_ns <= e.t_ns);
    events.insert(at, e);
}

fn apply(live: &mut Live, node: Option<NodeId>, kind: &EventKind) {
    let Some(n) = node else { return };
    match kind {
        EventKind::NodeUp => {
            live.up.insert(n);
        }
        EventKind::NodeDown { .. } => {
            live.up.remove(&n);
            live.connected.remove(&n);
            live.subscriptions.remove(&n);
            live.known_subscriptions.remove(&n);
            live.ready.remove(&n);
            live.mesh.retain(|(m, _), _| *m != n);
        }
        EventKind::PeerConnected { peer } => {
            live.connected.entry(n).or_default().insert(*peer);
        }
        EventKind::PeerDisconnected { peer } => {
            live.connected.entry(n).or_default().remove(peer);
            if let Some(k) = live.known_subscriptions.get_mut(&n) {
                k.retain(|(p, _)| p != peer);
            }
        }
        EventKind::Subscribed { topic } => {
            live.subscriptions
                .entry(n)
                .or_default()
                .insert(topic.clone());
        }
        EventKind::Unsubscribed { topic } => {
            live.subscriptions.entry(n).or_default().remove(topic);
        }
        EventKind::Delivered { msg, .. } => {
            live.delivered.entry(*msg).or_default().insert(n);
        }
        EventKind::Graft { peer, topic } => {
            live.mesh
                .entry((n, topic.clone()))
                .or_default()
                .insert(*peer);
        }
        EventKind::Prune { peer, topic } => {
            live.mesh
                .entry((n, topic.clone()))
                .or_default()
                .remove(peer);
        }
        _ => {}
    }
}

/// Records `per_thread` deliveries (a first copy, then seven duplicates, per node and
/// message, as gossipsub at degree 8 makes them) from each of `threads` threads into a fresh
/// recorder of 1,000 nodes; returns the wall time and the events recorded. For
/// `meshsim-bench`'s trace-cost figure: this is the cost every node task pays per event.
pub fn record_throughput(per_thread: usize, threads: usize) -> (Duration, usize) {
    let nodes = 1000u32;
    let recorder = Recorder::new(
        Meta {
            test: "bench.record".into(),
            backend: "in-process".into(),
            shaping: String::new(),
            seed: 0,
            node_software: String::new(),
            params: Default::default(),
            software: Vec::new(),
            started_at_unix_ns: 0,
            meshsim_version: env!("CARGO_PKG_VERSION").into(),
            dilation: 1.0,
            time: crate::time::TimeMode::Real,
            deterministic: false,
        },
        TopologySnapshot {
            description: "bench".into(),
            nodes: (0..nodes)
                .map(|i| NodeSpec {
                    id: NodeId(i),
                    name: i.to_string(),
                    position: None,
                    peer_id: None,
                })
                .collect(),
            links: Vec::new(),
            overlay: Vec::new(),
        },
    );
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let recorder = &recorder;
            s.spawn(move || {
                for i in 0..per_thread {
                    let node = NodeId(((i / 8 + t * 7919) % nodes as usize) as u32);
                    let msg = MsgId((i / (8 * nodes as usize)) as u64);
                    let from = NodeId((node.0 + 1 + (i % 8) as u32) % nodes);
                    let kind = if i % 8 == 0 {
                        EventKind::Delivered { msg, from }
                    } else {
                        EventKind::Duplicate { msg, from }
                    };
                    recorder.record(Some(node), kind);
                }
            });
        }
    });
    let events = recorder.lock().trace.events.len();
    (started.elapsed(), events)
}
