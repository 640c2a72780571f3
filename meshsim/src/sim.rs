//! The simulation: [`Sim`] describes one (test name, seed, backend, node parameters, topics);
//! [`Simulation`] is one running, with everything a test does to it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::time::Instant;

use crate::backend::{Backend, NodeConfig, Nodes};
use crate::error::{Error, Result, TopologyError, list_nodes};
use crate::node::{self, GossipsubNode, GossipsubParams, NodeSoftware, Readiness, Security};
use crate::runner::TestContext;
use crate::time::TimeMode;
use crate::topology::{Link, LinkShape, NodeId, NodeSpec, Topology};
use crate::trace::recorder::{Live, Recorder, State};
use crate::trace::{
    Delivery, EventKind, LinkLag, Meta, MsgId, SoftwareInfo, SoftwareRun, TopologySnapshot, Trace,
    trace_dir,
};

/// The topic nodes subscribe to unless the test names others.
pub const DEFAULT_TOPIC: &str = "meshsim";

/// A simulation not yet started: what to run and how. `#[meshsim::test]` hands one to the test.
#[derive(Debug, Clone)]
pub struct Sim {
    test: String,
    seed: u64,
    backend: Backend,
    params: GossipsubParams,
    topics: Vec<String>,
    ready_timeout: Duration,
    lag_threshold: Duration,
    security: Security,
    /// Node software instead of the built-in node, for every node not in `software_on`.
    software: Option<Software>,
    /// Node software for some nodes (later entries win).
    software_on: Vec<(BTreeSet<NodeId>, Software)>,
    dilation: f64,
    /// The dilation was chosen by the test runner, not fixed by the test.
    auto_dilation: bool,
    ctx: Option<Arc<TestContext>>,
}

/// Node software as a [`Sim`] holds it.
#[derive(Clone)]
struct Software(Arc<dyn NodeSoftware>);

impl std::fmt::Debug for Software {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.info())
    }
}

/// The p99 link lag above which a trace is flagged (see [`Sim::with_lag_threshold`]).
pub const DEFAULT_LAG_THRESHOLD: Duration = Duration::from_millis(5);

impl Sim {
    /// A simulation named `test` (traces go to [`trace_dir`]`(test)`), on the backend named by
    /// `MESHSIM_BACKEND` or else in-process, with seed 0 and libp2p's default parameters.
    pub fn new(test: impl Into<String>) -> Result<Self> {
        Ok(Sim {
            test: test.into(),
            seed: 0,
            backend: Backend::from_env()?.unwrap_or_default(),
            params: GossipsubParams::default(),
            topics: vec![DEFAULT_TOPIC.to_string()],
            ready_timeout: Duration::from_secs(60),
            lag_threshold: DEFAULT_LAG_THRESHOLD,
            security: Security::Noise,
            software: None,
            software_on: Vec::new(),
            dilation: 1.0,
            auto_dilation: false,
            ctx: None,
        })
    }

    /// The simulation a test gets: `dilation` is fixed by the test's attribute, or else
    /// (`auto`) chosen by the runner from an earlier attempt's lag.
    pub(crate) fn for_test(
        ctx: Arc<TestContext>,
        seed: u64,
        backend: Backend,
        dilation: f64,
        auto: bool,
    ) -> Self {
        Sim {
            test: ctx.name().to_string(),
            seed,
            backend,
            params: GossipsubParams::default(),
            topics: vec![DEFAULT_TOPIC.to_string()],
            ready_timeout: Duration::from_secs(60),
            lag_threshold: DEFAULT_LAG_THRESHOLD,
            security: Security::Noise,
            software: None,
            software_on: Vec::new(),
            dilation,
            auto_dilation: auto,
            ctx: Some(ctx),
        }
    }

    /// The seed: drives link randomness and node keys. Pass it to topology generators too.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The test's name.
    pub fn test_name(&self) -> &str {
        &self.test
    }

    /// The backend that will run the nodes.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Chooses the backend (overrides `MESHSIM_BACKEND`).
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// How the built-in nodes secure their connections (default [`Security::Noise`]).
    /// [`Security::Plaintext`] skips the noise handshakes that dominate the start-up of large
    /// in-process networks; the Docker backend refuses it.
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Runs `software` on every node (instead of meshsim's built-in gossipsub node, see
    /// [`node`](crate::node)); nodes added during the run get it too. In-process backend.
    pub fn with_software(mut self, software: impl NodeSoftware) -> Self {
        self.software = Some(Software(Arc::new(software)));
        self
    }

    /// Runs `software` on `nodes`, for a mixed network: the others run what
    /// [`Sim::with_software`] chose, or the built-in node. Node ids the topology does not
    /// have are an error at start. In-process backend.
    pub fn with_software_on(
        mut self,
        nodes: impl IntoIterator<Item = NodeId>,
        software: impl NodeSoftware,
    ) -> Self {
        self.software_on
            .push((nodes.into_iter().collect(), Software(Arc::new(software))));
        self
    }

    /// Sets the gossipsub parameters of the built-in nodes.
    pub fn with_params(mut self, params: GossipsubParams) -> Self {
        self.params = params;
        self
    }

    /// Every node subscribes to these topics at start (instead of [`DEFAULT_TOPIC`]).
    pub fn with_topics<S: Into<String>>(mut self, topics: impl IntoIterator<Item = S>) -> Self {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// The p99 link lag above which the run is flagged (default [`DEFAULT_LAG_THRESHOLD`],
    /// 5 ms; in-process backend). The links measure how late the busy CPU lets nodes take
    /// what arrived; the trace records it ([`Trace::lag`](crate::Trace::lag)), and above this
    /// the trace says so, the simulation warns when it stops, and assertion failures add it.
    pub fn with_lag_threshold(mut self, threshold: Duration) -> Self {
        self.lag_threshold = threshold;
        self
    }

    /// Time dilation (in-process backend): runs the network `k` times slower than the
    /// simulated time the test sees, so that a CPU too slow for the network's real-time pace
    /// still keeps its timing. Every link latency and jitter, every gossipsub duration
    /// (heartbeat, its initial delay, TTLs, backoffs, IWANT follow-up, queue durations,
    /// `validation_delay`) and the simulated retransmission timeout are multiplied by `k`,
    /// bandwidth is divided by it; the trace's times, the links' lag, and every duration the
    /// test passes ([`Simulation::wait_delivered`], [`Simulation::run_for`], timeouts) are in
    /// simulated time, so the test reads as if `k` were 1.
    ///
    /// Not scaled: CPU work (handshakes, encoding, validation, scheduling) is `k` times
    /// cheaper in simulated time, which is the point; timer resolution becomes `k` times
    /// finer; libp2p timers that gossipsub does not expose stay in wall time: libp2p-swarm's
    /// 10 s substream negotiation timeout (keep `k` times the slowest round trip well under
    /// 10 s, or gossipsub's substreams time out before they are negotiated),
    /// `graft_flood_threshold` (used only by peer scoring, which meshsim leaves off) and a
    /// remote PRUNE backoff's one-hour cap; and the Docker backend refuses any `k` other than 1.
    ///
    /// `k` must be from 1 (the default) to [`MAX_DILATION`]. Under `#[meshsim::test]`, a test that
    /// does not fix it (here or with `dilation = k` on the attribute) gets it from the
    /// runner: a run whose links lagged above the threshold, and which passed or failed on
    /// timing ([`Error::Timeout`], [`Error::Assertion`]), is run again with
    /// [`Trace::suggested_dilation`], capped by the slowest round trip (half of libp2p's 10 s
    /// negotiation timeout over it).
    pub fn with_dilation(mut self, k: f64) -> Self {
        self.dilation = k;
        self.auto_dilation = false;
        self
    }

    /// The time dilation the simulation will run with (see [`Sim::with_dilation`]).
    pub fn dilation(&self) -> f64 {
        self.dilation
    }

    /// How long [`Sim::start`] waits for the overlay to form (default 60 s).
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts every node, connects the overlay, and waits until it has formed: every overlay
    /// connection up, every node aware of its peers' subscriptions, and every mesh holding
    /// at least `min(D_lo, subscribed peers)` peers.
    pub async fn start(self, topology: Topology) -> Result<Simulation> {
        let timeout = self.ready_timeout;
        let sim = self.start_unready(topology).await?;
        sim.wait_ready(timeout).await?;
        Ok(sim)
    }

    /// Starts every node and dials the overlay, without waiting for it to form.
    pub async fn start_unready(self, topology: Topology) -> Result<Simulation> {
        topology.validate()?;
        let k = self.dilation;
        if !(k.is_finite() && (1.0..=MAX_DILATION).contains(&k)) {
            return Err(Error::Dilation {
                value: k,
                why: "must be a number from 1 to 10,000 (MAX_DILATION)",
            });
        }
        if k != 1.0 && self.backend == Backend::Docker {
            return Err(Error::BackendUnavailable {
                backend: self.backend.to_string(),
                reason: format!(
                    "time dilation ({k}) is offered on the in-process backend only; containers run in real time"
                ),
            });
        }
        if self.security == Security::Plaintext && self.backend == Backend::Docker {
            return Err(Error::BackendUnavailable {
                backend: self.backend.to_string(),
                reason: "plaintext security is offered on the in-process backend only; containers run noise".into(),
            });
        }
        // Virtual time is the thread's: a simulation started on a thread that
        // `time::run_virtual` made runs in it.
        let time = if meshsim_time::is_virtual() {
            TimeMode::Virtual
        } else {
            TimeMode::Real
        };
        if time == TimeMode::Virtual {
            let why = if self.backend == Backend::Docker {
                Some("containers run in real time; start them outside virtual time (time = \"real\")".to_string())
            } else if k != 1.0 {
                Some(format!(
                    "time dilation ({k}) makes up for lag in real time; virtual time has none"
                ))
            } else if !crate::time::virtual_time_available() {
                Some(format!(
                    "libp2p's timers do not follow virtual time: add `[patch.crates-io] futures-timer = {{ {} }}` to the workspace's Cargo.toml",
                    crate::time::PATCH_SOURCE
                ))
            } else {
                None
            };
            if let Some(reason) = why {
                return Err(Error::BackendUnavailable {
                    backend: self.backend.to_string(),
                    reason: format!("in virtual time: {reason}"),
                });
            }
        }
        let overlay = topology.overlay_pairs()?;
        let n = topology.node_count();
        let builtin = Software(Arc::new(
            GossipsubNode::new(self.params.clone()).with_security(self.security),
        ));
        let default_software = self.software.clone().unwrap_or(builtin);
        let mut software = vec![default_software.clone(); n];
        for (nodes, sw) in &self.software_on {
            for &node in nodes {
                *software
                    .get_mut(node.index())
                    .ok_or(Error::UnknownNode(node))? = sw.clone();
            }
        }
        // Each distinct software once, in order of first use, with its nodes.
        let mut runs: Vec<(Software, SoftwareRun)> = Vec::new();
        for (i, sw) in software.iter().enumerate() {
            match runs.iter_mut().find(|(s, _)| Arc::ptr_eq(&s.0, &sw.0)) {
                Some((_, run)) => run.nodes.push(NodeId(i as u32)),
                None => {
                    sw.0.check()?;
                    runs.push((
                        sw.clone(),
                        SoftwareRun {
                            info: sw.0.info(),
                            nodes: vec![NodeId(i as u32)],
                        },
                    ));
                }
            }
        }
        if !runs
            .iter()
            .any(|(s, _)| Arc::ptr_eq(&s.0, &default_software.0))
        {
            default_software.0.check()?;
        }
        let custom = self.software.is_some() || !self.software_on.is_empty();
        if custom && self.backend == Backend::Docker {
            return Err(Error::BackendUnavailable {
                backend: self.backend.to_string(),
                reason: "node software other than the built-in gossipsub node runs in process only so far; containers run meshsim-agent".into(),
            });
        }
        let readiness: Vec<Readiness> = software.iter().map(|s| s.0.readiness()).collect();
        let max_sizes: Vec<Option<usize>> =
            software.iter().map(|s| s.0.max_message_size()).collect();
        let dilated = if k == 1.0 {
            String::new()
        } else {
            format!(", time dilated x{k}")
        };
        println!(
            "meshsim: backend {} ({}), {} nodes, {} links, {} peer connections, seed {}{dilated}",
            self.backend,
            self.backend.shaping(),
            n,
            topology.link_count(),
            overlay.len(),
            self.seed
        );
        let snapshot = TopologySnapshot {
            description: topology.description().to_string(),
            nodes: topology
                .nodes()
                .map(|i| NodeSpec {
                    peer_id: Some(
                        node::keypair(self.seed, i)
                            .public()
                            .to_peer_id()
                            .to_string(),
                    ),
                    ..topology.node_spec(i).expect("own node").clone()
                })
                .collect(),
            links: topology.links().copied().collect(),
            overlay: overlay.clone(),
        };
        let recorder = Arc::new(Recorder::new(
            Meta {
                test: self.test.clone(),
                backend: self.backend.to_string(),
                shaping: self.backend.shaping().to_string(),
                seed: self.seed,
                node_software: runs
                    .iter()
                    .map(|(_, r)| r.info.to_string())
                    .collect::<Vec<_>>()
                    .join(" + "),
                params: runs
                    .first()
                    .map(|(_, r)| r.info.params.clone())
                    .unwrap_or_default(),
                software: runs.iter().map(|(_, r)| r.clone()).collect(),
                started_at_unix_ns: 0,
                meshsim_version: env!("CARGO_PKG_VERSION").to_string(),
                dilation: k,
                time,
                deterministic: time == TimeMode::Virtual,
            },
            snapshot,
        ));
        recorder.set_lag_threshold(self.lag_threshold);
        let trace_file = match &self.ctx {
            Some(ctx) => ctx.register(recorder.clone(), self.auto_dilation),
            None => trace_dir(&self.test).join("trace.json"),
        };
        let (nodes, shaping) = Nodes::start(
            self.backend,
            topology.map_shapes(|s| *s = s.dilated(k)),
            &overlay,
            NodeConfig {
                seed: self.seed,
                params: &self.params,
                software: software.into_iter().map(|s| s.0).collect(),
                default_software: default_software.0.clone(),
                topics: &self.topics,
                dilation: k,
            },
            recorder.clone(),
        )
        .await?;
        recorder.lock().trace.meta.shaping = shaping;
        let sim = Simulation {
            nodes,
            recorder,
            overlay: overlay.clone(),
            readiness,
            default_readiness: default_software.0.readiness(),
            max_sizes,
            default_max_size: default_software.0.max_message_size(),
            default_info: default_software.0.info(),
            next_msg: AtomicU64::new(0),
            given_payloads: Mutex::new(HashMap::new()),
            trace_file,
            dilation: k,
        };
        for (a, b) in overlay {
            sim.nodes.dial(a, b).await?;
        }
        Ok(sim)
    }
}

/// One container's health, from [`Simulation::container_stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStats {
    /// The node.
    pub node: NodeId,
    /// Resident memory of the agent process.
    pub rss_bytes: u64,
    /// Packets the NFQUEUE delayer has held and released (0 with netem).
    pub packets_delayed: u64,
    /// Packets it dropped for link loss.
    pub packets_dropped: u64,
    /// The latest it released a packet after its due time (its scheduling error).
    pub max_release_lag: Duration,
    /// The container's `CLOCK_MONOTONIC` minus the harness's, in ns, measured when it
    /// started; the times it reports are corrected by it. On one host both read the same
    /// kernel clock, so it is zero to within half of `clock_round_trip`.
    pub clock_offset_ns: i64,
    /// The round trip of the clock measurement: the offset is known to half of it.
    pub clock_round_trip: Duration,
}

/// The payload of a message of `size` bytes: its number, then filler that differs per message
/// (so content-addressed message ids stay distinct).
fn sized_payload(msg: MsgId, size: usize) -> Vec<u8> {
    let mut data = msg.0.to_be_bytes().to_vec();
    data.extend((0..size - 8).map(|i| (i as u64).wrapping_mul(31).wrapping_add(msg.0) as u8));
    data
}

/// The largest time dilation [`Sim::with_dilation`] accepts. libp2p's 10 s substream
/// negotiation timeout already caps useful factors near `10 s / slowest round trip`; above
/// this, hour-long link latencies and gossipsub timers would no longer fit a `Duration`
/// comfortably and the start-up dial budget (which grows with `k`) would be meaningless.
pub const MAX_DILATION: f64 = 10_000.0;

/// A running simulation. Dropping it stops every node (and removes every container).
pub struct Simulation {
    nodes: Nodes,
    recorder: Arc<Recorder>,
    overlay: Vec<(NodeId, NodeId)>,
    /// Each node's readiness rule, and the rule of nodes added later.
    readiness: Vec<Readiness>,
    default_readiness: Readiness,
    /// Each node's largest message, and that of nodes added later.
    max_sizes: Vec<Option<usize>>,
    default_max_size: Option<usize>,
    /// What nodes added later run, as the trace records it.
    default_info: SoftwareInfo,
    next_msg: AtomicU64,
    /// The payloads of messages published with given bytes, for [`Simulation::publish_again`]
    /// (those of sized publishes are made again from their number and size).
    given_payloads: Mutex<HashMap<MsgId, Arc<[u8]>>>,
    trace_file: PathBuf,
    dilation: f64,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("nodes", &self.nodes.len())
            .field("trace_file", &self.trace_file)
            .finish_non_exhaustive()
    }
}

impl Simulation {
    fn check_node(&self, n: NodeId) -> Result<()> {
        if n.index() < self.nodes.len() {
            Ok(())
        } else {
            Err(Error::UnknownNode(n))
        }
    }

    fn check_running(&self, n: NodeId) -> Result<()> {
        self.check_node(n)?;
        if self.nodes.is_running(n) {
            Ok(())
        } else {
            Err(Error::NodeStopped(n))
        }
    }

    /// A simulated duration in wall time (times the dilation).
    fn wall(&self, d: Duration) -> Duration {
        Duration::try_from_secs_f64(d.as_secs_f64() * self.dilation).unwrap_or(Duration::MAX)
    }

    /// The time dilation it runs with (see [`Sim::with_dilation`]).
    pub fn dilation(&self) -> f64 {
        self.dilation
    }

    /// Number of nodes (running or stopped).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Where the trace is written when saved.
    pub fn trace_file(&self) -> &std::path::Path {
        &self.trace_file
    }

    /// The overlay's peer connections, as `(dialer, listener)`.
    pub fn overlay(&self) -> &[(NodeId, NodeId)] {
        &self.overlay
    }

    /// Waits until `check` holds on the live trace, re-checking after recorded events.
    /// `check(state, explain)` returns `Ok(value)` when satisfied, else `Err(progress)`; it
    /// only needs to describe the progress when `explain` is true (once, at the timeout), so
    /// the frequent checks stay cheap. Checks run under the recorder's lock, which every node
    /// needs to record, so a check that takes `d` is not repeated within `10 d`.
    pub(crate) async fn wait_live<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&State, bool) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let deadline = Instant::now()
            .checked_add(self.wall(timeout))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        let mut changes = self.recorder.watch();
        loop {
            changes.borrow_and_update();
            let started = Instant::now();
            if let Ok(v) = check(&self.recorder.lock(), false) {
                return Ok(v);
            }
            let pause = started.elapsed() * 10;
            let next = async {
                crate::time::sleep(pause).await;
                changes.changed().await
            };
            if crate::time::timeout_at(deadline, next).await.is_err() {
                let progress = match check(&self.recorder.lock(), true) {
                    Ok(v) => return Ok(v),
                    Err(p) => p,
                };
                return Err(Error::Timeout {
                    after: timeout,
                    what: format!("{what}: {progress} (trace: {})", self.trace_file.display()),
                });
            }
        }
    }

    /// Waits until `predicate` holds on the trace, re-checking after recorded events. `what`
    /// describes the condition for the timeout error. The predicate sees a copy of the
    /// trace, taken without holding anything the nodes or the simulation need, so it may
    /// call anything on the simulation; each check costs a copy of the trace, and a check
    /// that takes `d` is not repeated within `10 d`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut predicate: impl FnMut(&Trace) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now()
            .checked_add(self.wall(timeout))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        let mut changes = self.recorder.watch();
        loop {
            changes.borrow_and_update();
            let started = Instant::now();
            if predicate(&self.recorder.snapshot()) {
                return Ok(());
            }
            let pause = started.elapsed() * 10;
            let next = async {
                crate::time::sleep(pause).await;
                changes.changed().await
            };
            if crate::time::timeout_at(deadline, next).await.is_err() {
                if predicate(&self.recorder.snapshot()) {
                    return Ok(());
                }
                return Err(Error::Timeout {
                    after: timeout,
                    what: format!("{what} (trace: {})", self.trace_file.display()),
                });
            }
        }
    }

    /// Waits until the overlay has formed (see [`Sim::start`]).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let mut adjacency = vec![Vec::new(); self.nodes.len()];
        for &(a, b) in &self.overlay {
            adjacency[a.index()].push(b);
            adjacency[b.index()].push(a);
        }
        self.wait_live(timeout, "the overlay to form", |st, explain| {
            let live = &st.live;
            let mut not_ready = Vec::new();
            let mut first = String::new();
            for &n in &live.up {
                let rule = *self
                    .readiness
                    .get(n.index())
                    .unwrap_or(&self.default_readiness);
                let peers = &adjacency[n.index()];
                if let Some(problem) = not_ready_because(live, n, peers, rule) {
                    if !explain {
                        return Err(String::new());
                    }
                    if not_ready.is_empty() {
                        first = problem;
                    }
                    not_ready.push(n);
                }
            }
            if not_ready.is_empty() {
                return Ok(());
            }
            Err(format!(
                "{} of {} running nodes not ready ({}); first: {first}",
                not_ready.len(),
                live.up.len(),
                list_nodes(&not_ready, 8)
            ))
        })
        .await
    }

    /// Publishes a message of `size` bytes (at least 8: meshsim's payload starts with the
    /// message number) from `node` on `topic`, and returns its number. Publishes may run
    /// concurrently; a failed one gives its number back unless a later publish has taken one
    /// since.
    pub async fn publish(&self, node: NodeId, topic: &str, size: usize) -> Result<MsgId> {
        if size < 8 {
            return Err(Error::Publish {
                node,
                topic: topic.into(),
                reason: format!(
                    "size {size} is below 8 bytes, the message-number header meshsim puts first"
                ),
            });
        }
        self.check_size(node, topic, size)?;
        let msg = self.next_msg();
        self.publish_payload(node, topic, msg, sized_payload(msg, size))
            .await
    }

    /// Publishes message `msg` again, byte for byte, from `node`: a second origin of the
    /// same content, as when two validators broadcast the same block. Whether the network
    /// treats it as the same message is the message-id function's to say: with
    /// [`MessageIdFn::ContentHash`](crate::node::MessageIdFn::ContentHash) a node that has
    /// seen it refuses it as a duplicate ([`Error::Publish`]); with libp2p's default
    /// (source and sequence number) it is a new message and spreads again, each copy recorded
    /// as a duplicate of `msg`. The trace records the second `published` event; `msg`'s
    /// expected receivers no longer include `node`.
    pub async fn publish_again(&self, node: NodeId, msg: MsgId) -> Result<()> {
        self.check_running(node)?;
        let (topic, size) = {
            let st = self.recorder.lock();
            let m = st.trace.message(msg).ok_or(Error::UnknownMessage(msg.0))?;
            (m.topic.clone(), m.size)
        };
        let given = self
            .given_payloads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&msg)
            .cloned();
        let data = match given {
            Some(data) => data.to_vec(),
            None => sized_payload(msg, size),
        };
        let res = self.nodes.publish(node, msg, &topic, data).await?;
        res.map_err(|reason| Error::Publish {
            node,
            topic,
            reason,
        })
    }

    /// Publishes `data` from `node`; meshsim puts its 8-byte message number in front.
    pub async fn publish_bytes(&self, node: NodeId, topic: &str, data: &[u8]) -> Result<MsgId> {
        self.check_size(node, topic, data.len().saturating_add(8))?;
        let msg = self.next_msg();
        let mut payload = msg.0.to_be_bytes().to_vec();
        payload.extend_from_slice(data);
        let kept: Arc<[u8]> = payload.as_slice().into();
        let msg = self.publish_payload(node, topic, msg, payload).await?;
        self.given_payloads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(msg, kept);
        Ok(msg)
    }

    /// Refuses a message larger than `node`'s software can publish, before building it.
    fn check_size(&self, node: NodeId, topic: &str, size: usize) -> Result<()> {
        self.check_node(node)?;
        match self.max_sizes.get(node.index()).copied().flatten() {
            Some(limit) if size > limit => Err(Error::Publish {
                node,
                topic: topic.into(),
                reason: format!(
                    "{size} bytes is above the {limit}-byte limit of {node}'s node software (gossipsub's max_transmit_size for the built-in node)"
                ),
            }),
            _ => Ok(()),
        }
    }

    fn next_msg(&self) -> MsgId {
        MsgId(self.next_msg.fetch_add(1, Ordering::Relaxed))
    }

    async fn publish_payload(
        &self,
        node: NodeId,
        topic: &str,
        msg: MsgId,
        data: Vec<u8>,
    ) -> Result<MsgId> {
        let res = match self.check_running(node) {
            Ok(()) => self.nodes.publish(node, msg, topic, data).await,
            Err(e) => Err(e),
        };
        let res = res.and_then(|res| {
            res.map_err(|reason| Error::Publish {
                node,
                topic: topic.into(),
                reason,
            })
        });
        if res.is_err() {
            // Give the number back unless a later publish has taken one since: run one after
            // another, failed publishes leave no gap in the numbers.
            let _ = self.next_msg.compare_exchange(
                msg.0 + 1,
                msg.0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        res.map(|()| msg)
    }

    /// Waits until every node expected to receive `msg` (subscribed at publish time) has it.
    /// On timeout the error names the missing nodes and what the trace says about them.
    pub async fn wait_delivered(&self, msg: MsgId, timeout: Duration) -> Result<Delivery> {
        let expected = self.expected(msg)?;
        self.wait_delivered_to(msg, &expected, timeout).await
    }

    /// Waits until each of `nodes` has received `msg`.
    pub async fn wait_delivered_to(
        &self,
        msg: MsgId,
        nodes: &[NodeId],
        timeout: Duration,
    ) -> Result<Delivery> {
        for &n in nodes {
            self.check_node(n)?;
        }
        self.expected(msg)?;
        let res = self
            .wait_live(
                timeout,
                &format!("{msg} to reach {} nodes", nodes.len()),
                |st, explain| {
                    let got = st.live.delivered.get(&msg);
                    if !explain {
                        let all = nodes.iter().all(|n| got.is_some_and(|g| g.contains(n)));
                        return if all { Ok(()) } else { Err(String::new()) };
                    }
                    let missing: Vec<NodeId> = nodes
                        .iter()
                        .copied()
                        .filter(|n| !got.is_some_and(|g| g.contains(n)))
                        .collect();
                    if missing.is_empty() {
                        Ok(())
                    } else {
                        let info = st.trace.message(msg).expect("registered");
                        Err(format!(
                            "reached {}/{}; missing: {}",
                            nodes.len() - missing.len(),
                            nodes.len(),
                            crate::trace::explain_missing(&st.trace, info, &missing)
                        ))
                    }
                },
            )
            .await;
        res?;
        self.delivery(msg)
    }

    fn expected(&self, msg: MsgId) -> Result<Vec<NodeId>> {
        let st = self.recorder.lock();
        st.trace
            .message(msg)
            .map(|m| m.expected.clone())
            .ok_or(Error::UnknownMessage(msg.0))
    }

    /// The message's fate so far.
    pub fn delivery(&self, msg: MsgId) -> Result<Delivery> {
        Ok(self
            .trace()
            .delivery(msg)?
            .with_saved_to(Some(self.trace_file.clone())))
    }

    /// Lets the simulation run for `duration` (an observation window: to check that
    /// something does *not* happen).
    pub async fn run_for(&self, duration: Duration) {
        crate::time::sleep(self.wall(duration)).await;
    }

    /// Sets the shape of both directions of the link `a - b`, re-shaping live connections
    /// that use it.
    pub async fn set_link(&mut self, a: NodeId, b: NodeId, shape: LinkShape) -> Result<()> {
        self.set_direction(a, b, shape).await?;
        self.set_direction(b, a, shape).await
    }

    /// Sets the shape of traffic from `from` to `to` on their link.
    pub async fn set_direction(
        &mut self,
        from: NodeId,
        to: NodeId,
        shape: LinkShape,
    ) -> Result<()> {
        shape.validate(from, to)?;
        self.nodes
            .set_direction(from, to, shape.dilated(self.dilation))
            .await?;
        self.recorder
            .record(Some(from), EventKind::LinkChanged { to, shape });
        Ok(())
    }

    /// Cuts all traffic between the nodes of `a` and those of `b` until [`Simulation::heal`].
    pub async fn partition(&mut self, a: &[NodeId], b: &[NodeId]) -> Result<()> {
        let (a, b) = self.groups(a, b)?;
        let recorder = self.recorder.clone();
        let (ra, rb) = (a.clone(), b.clone());
        let announce = move || recorder.record(None, EventKind::Partition { a: ra, b: rb });
        self.nodes.partition(a, b, announce).await
    }

    /// Heals the partition made between `a` and `b`.
    pub async fn heal(&mut self, a: &[NodeId], b: &[NodeId]) -> Result<()> {
        let (a, b) = self.groups(a, b)?;
        let recorder = self.recorder.clone();
        let (ra, rb) = (a.clone(), b.clone());
        let announce = move || recorder.record(None, EventKind::Heal { a: ra, b: rb });
        if !self.nodes.heal(&a, &b, announce).await? {
            return Err(Error::Topology(TopologyError::InvalidParameter {
                generator: "heal",
                param: "groups",
                value: format!("[{}] / [{}]", list_nodes(&a, 4), list_nodes(&b, 4)),
                why: "no partition between exactly these groups".into(),
            }));
        }
        Ok(())
    }

    fn groups(&self, a: &[NodeId], b: &[NodeId]) -> Result<(Vec<NodeId>, Vec<NodeId>)> {
        let bad = |why: &str| {
            Error::Topology(TopologyError::InvalidParameter {
                generator: "partition",
                param: "groups",
                value: format!("[{}] / [{}]", list_nodes(a, 4), list_nodes(b, 4)),
                why: why.into(),
            })
        };
        for &n in a.iter().chain(b) {
            self.check_node(n)?;
        }
        if a.is_empty() || b.is_empty() {
            return Err(bad("both groups need at least one node"));
        }
        let sa: BTreeSet<NodeId> = a.iter().copied().collect();
        if let Some(n) = b.iter().find(|n| sa.contains(n)) {
            return Err(bad(&format!("{n} is in both groups")));
        }
        let sb: BTreeSet<NodeId> = b.iter().copied().collect();
        Ok((sa.into_iter().collect(), sb.into_iter().collect()))
    }

    /// Stops a node gracefully: in process, its software is told to stop (its command queue
    /// closes) and has two seconds to close its connections the protocol's way (the
    /// built-in node closes each; peers see them close one latency later, or after a heal);
    /// in a container, the container stops.
    pub async fn stop_node(&mut self, n: NodeId) -> Result<()> {
        self.halt(n, false).await
    }

    /// Kills a node abruptly, as a crash would: in a container, SIGKILL; in process, its
    /// task ends at once, with no goodbye, and its connections reset (peers' reads fail with
    /// `ConnectionReset` one latency later). The trace records it as killed.
    pub async fn kill_node(&mut self, n: NodeId) -> Result<()> {
        self.halt(n, true).await
    }

    async fn halt(&mut self, n: NodeId, kill: bool) -> Result<()> {
        self.check_running(n)?;
        self.nodes.stop(n, kill).await?;
        let reason = if kill {
            "killed by the test"
        } else {
            "stopped by the test"
        };
        self.recorder.record(
            Some(n),
            EventKind::NodeDown {
                reason: reason.into(),
            },
        );
        Ok(())
    }

    /// Restarts a stopped node with the same identity and topics, and dials its overlay peers.
    pub async fn restart_node(&mut self, n: NodeId) -> Result<()> {
        self.check_node(n)?;
        if self.nodes.is_running(n) {
            return Err(Error::NodeRunning(n));
        }
        self.nodes.restart(n).await?;
        let peers: Vec<NodeId> = self
            .overlay
            .iter()
            .filter_map(|&(a, b)| {
                if a == n {
                    Some(b)
                } else if b == n {
                    Some(a)
                } else {
                    None
                }
            })
            .filter(|&p| self.nodes.is_running(p))
            .collect();
        for p in peers {
            self.nodes.dial(n, p).await?;
        }
        Ok(())
    }

    /// Adds a node linked to `links` (each with its shape, both directions), starts it, and
    /// connects it to those peers. Wait with [`Simulation::wait_ready`] if it must have formed
    /// its mesh.
    pub async fn add_node(&mut self, links: &[(NodeId, LinkShape)]) -> Result<NodeId> {
        for &(p, shape) in links {
            self.check_node(p)?;
            shape.validate(p, NodeId(self.nodes.len() as u32))?;
        }
        let dilated: Vec<(NodeId, LinkShape)> = links
            .iter()
            .map(|&(p, s)| (p, s.dilated(self.dilation)))
            .collect();
        let n = self.nodes.add(&dilated).await?;
        self.readiness.push(self.default_readiness);
        self.max_sizes.push(self.default_max_size);
        // Read before `add_node`, which takes the same lock.
        let seed = self.recorder.lock().trace.meta.seed;
        self.recorder.add_node(
            NodeSpec {
                id: n,
                name: n.to_string(),
                position: None,
                peer_id: Some(node::keypair(seed, n).public().to_peer_id().to_string()),
            },
            links
                .iter()
                .map(|&(p, shape)| Link {
                    a: p.min(n),
                    b: p.max(n),
                    a_to_b: shape,
                    b_to_a: shape,
                })
                .collect(),
            links.iter().map(|&(p, _)| (n, p)).collect(),
        );
        {
            let software = &mut self.recorder.lock().trace.meta.software;
            match software.iter_mut().find(|r| r.info == self.default_info) {
                Some(run) => run.nodes.push(n),
                None => software.push(SoftwareRun {
                    info: self.default_info.clone(),
                    nodes: vec![n],
                }),
            }
        }
        for &(p, _) in links {
            self.overlay.push((n, p));
            if self.nodes.is_running(p) {
                self.nodes.dial(n, p).await?;
            }
        }
        Ok(n)
    }

    /// Subscribes a node to a topic.
    pub async fn subscribe(&self, n: NodeId, topic: &str) -> Result<()> {
        self.topic_command(n, topic, true).await
    }

    /// Unsubscribes a node from a topic.
    pub async fn unsubscribe(&self, n: NodeId, topic: &str) -> Result<()> {
        self.topic_command(n, topic, false).await
    }

    async fn topic_command(&self, n: NodeId, topic: &str, subscribe: bool) -> Result<()> {
        self.check_running(n)?;
        self.nodes
            .topic(n, topic, subscribe)
            .await?
            .map_err(|reason| Error::Node { node: n, reason })
    }

    /// Closes the connection between two nodes (the overlay is not redialled).
    pub async fn disconnect(&self, a: NodeId, b: NodeId) -> Result<()> {
        self.check_node(b)?;
        self.check_running(a)?;
        self.nodes.disconnect(a, b).await
    }

    /// Health of every running container (Docker backend): the agent's resident memory and
    /// its packet delayer's counters. Errors on the in-process backend, which has none.
    pub async fn container_stats(&self) -> Result<Vec<ContainerStats>> {
        match &self.nodes {
            #[cfg(feature = "docker")]
            Nodes::Docker(d) => d
                .health()
                .await
                .into_iter()
                .map(|(node, h)| {
                    h.map(|(h, (clock_offset_ns, clock_round_trip))| ContainerStats {
                        node,
                        rss_bytes: h.rss_bytes,
                        packets_delayed: h.packets_delayed,
                        packets_dropped: h.packets_dropped,
                        max_release_lag: Duration::from_nanos(h.max_release_lag_ns),
                        clock_offset_ns,
                        clock_round_trip,
                    })
                })
                .collect(),
            _ => Err(Error::BackendUnavailable {
                backend: "in-process".into(),
                reason: "container stats exist only on the Docker backend".into(),
            }),
        }
    }

    /// Adds a note to the trace.
    pub fn annotate(&self, text: impl Into<String>) {
        self.recorder
            .record(None, EventKind::Annotation { text: text.into() });
    }

    /// A copy of the trace so far.
    pub fn trace(&self) -> Trace {
        self.recorder.snapshot()
    }

    /// Nodes currently running.
    pub fn running(&self) -> HashSet<NodeId> {
        self.recorder.lock().live.up.iter().copied().collect()
    }

    /// Writes the trace to [`Simulation::trace_file`] and returns the path.
    pub fn save_trace(&self) -> Result<PathBuf> {
        self.trace().save(&self.trace_file)?;
        Ok(self.trace_file.clone())
    }

    /// How late the simulated links have delivered so far (in-process backend; `None` on
    /// Docker, whose delay is in the kernel).
    pub fn link_lag(&self) -> Option<LinkLag> {
        self.recorder.lag()
    }

    /// Stops every node (removing every container) and returns the final trace. Warns when
    /// the links ran later than the lag threshold.
    pub async fn stop(mut self) -> Trace {
        for n in self.nodes.shutdown().await {
            self.recorder.record(
                Some(n),
                EventKind::NodeDown {
                    reason: "end of simulation".into(),
                },
            );
        }
        let trace = self.recorder.snapshot();
        if let Some(lag) = trace.lag.filter(|l| l.exceeded) {
            let hint = match trace.suggested_dilation() {
                Some(k) => format!("; Sim::with_dilation({k}) should bring it under"),
                None => String::new(),
            };
            println!("meshsim: warning: {lag}{hint}");
        }
        trace
    }
}

/// Why node `n` is not ready yet by `rule`, if it is not: an overlay peer not connected,
/// and for the mesh rule a connected peer's subscription not yet heard or a mesh below
/// `min(D_lo, subscribed peers)`.
fn not_ready_because(
    live: &Live,
    n: NodeId,
    overlay_peers: &[NodeId],
    rule: Readiness,
) -> Option<String> {
    if rule == Readiness::Reported {
        return (!live.ready.contains(&n)).then(|| format!("{n} has not reported itself ready"));
    }
    let connected = live.connected.get(&n);
    let is_connected = |p: &NodeId| connected.is_some_and(|c| c.contains(p));
    if let Some(p) = overlay_peers
        .iter()
        .find(|p| live.up.contains(p) && !is_connected(p))
    {
        return Some(format!("{n} not yet connected to {p}"));
    }
    let Readiness::Mesh { d_lo } = rule else {
        return None;
    };
    for topic in live.subscriptions.get(&n).into_iter().flatten() {
        let subscribed = connected
            .into_iter()
            .flatten()
            .filter(|p| live.subscriptions.get(p).is_some_and(|t| t.contains(topic)));
        let known = live.known_subscriptions.get(&n);
        let mut count = 0;
        for p in subscribed {
            count += 1;
            if !known.is_some_and(|k| k.contains(&(*p, topic.clone()))) {
                return Some(format!(
                    "{n} has not yet heard {p}'s subscription to {topic:?}"
                ));
            }
        }
        let mesh = live.mesh.get(&(n, topic.clone())).map_or(0, BTreeSet::len);
        let want = d_lo.min(count);
        if mesh < want {
            return Some(format!(
                "{n} has {mesh} mesh peers for {topic:?}, wants {want}"
            ));
        }
    }
    None
}
