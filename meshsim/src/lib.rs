//! meshsim: a test harness for peer-to-peer gossip protocols.
//!
//! Declare a network, start real rust-libp2p gossipsub nodes on it, shape every link
//! (latency, jitter, loss, bandwidth, per direction), publish messages, and assert on how they
//! propagated. Every run leaves a trace: what happened, with nanosecond timestamps.
//!
//! ```
//! use meshsim::{Topology, ms, node, secs};
//!
//! #[meshsim::test(seed = 7)]
//! async fn block_reaches_everyone(sim: meshsim::Sim) -> meshsim::Result<()> {
//!     let net = Topology::random_regular(20, 4, sim.seed())?.with_latency(ms(40)).with_jitter(ms(5));
//!     let sim = sim.start(net).await?; // 20 gossipsub nodes, meshes formed
//!     let msg = sim.publish(node(0), meshsim::DEFAULT_TOPIC, 1024).await?;
//!     let delivery = sim.wait_delivered(msg, secs(5)).await?;
//!     delivery.assert_reach(1.0)?.assert_p99_latency_below(ms(1000))?;
//!     Ok(()) // on failure: target/meshsim/<test>/trace.json, and trace.html to replay it
//! }
//! # // Doctests are not compiled as tests, so run the same body directly:
//! # meshsim::__private::run_test("doc::block_reaches_everyone", Default::default(), |sim| async move {
//! #     let net = Topology::random_regular(20, 4, sim.seed())?.with_latency(ms(40)).with_jitter(ms(5));
//! #     let sim = sim.start(net).await?;
//! #     let msg = sim.publish(node(0), meshsim::DEFAULT_TOPIC, 1024).await?;
//! #     sim.wait_delivered(msg, secs(5)).await?.assert_reach(1.0)?.assert_p99_latency_below(ms(1000))?;
//! #     meshsim::Result::<()>::Ok(())
//! # });
//! ```
//!
//! Outside a test, [`Sim::new`] makes the same simulation in any tokio runtime (real time),
//! or in virtual time inside [`time::run_virtual`].
//!
//! # The parts
//! Data flows one way, and the modules follow it:
//! - [`topology`]: what the network is. [`Topology`] holds nodes and links, each direction of a
//!   link with its own [`LinkShape`]; generators (`line`, `ring`, `star`, `full_mesh`, `grid`,
//!   `random_regular`, `erdos_renyi`, `barabasi_albert`, `geographic`) and imports (Shadow GML,
//!   GraphML). The [`Overlay`] says which peer connections the protocol makes; traffic between
//!   peers that are not directly linked follows the lowest-latency underlay path.
//! - [`node`]: node software, what runs on each node. [`NodeSoftware`] describes it; meshsim
//!   starts it once per node and drives it with commands (connect, subscribe, publish), and
//!   it reports what it sees (deliveries with the peer they came from, duplicates,
//!   connections, grafts and prunes). The default is the built-in rust-libp2p gossipsub node
//!   ([`GossipsubNode`], every parameter in [`GossipsubParams`], checked before libp2p sees
//!   it); see "Your own node software" below for the others.
//! - backends make a topology real: [`Backend::InProcess`] (the default) runs every node as a
//!   task in the test process over simulated links; [`Backend::Docker`] runs each node in its
//!   own container (`meshsim-agent`) on an internal Docker network, with every link shaped on
//!   real packets in the containers' kernels (see "The Docker backend" below).
//! - [`Sim`] and [`Simulation`]: start, wait for the overlay, publish, wait for delivery,
//!   change links, partition and heal, stop and restart nodes, add nodes, annotate.
//! - [`trace`]: the [`Trace`], its queries ([`Delivery`]: reach, latency percentiles,
//!   dissemination time, duplicates per node, propagation tree and hops), assertions whose
//!   failures explain themselves, the versioned JSON file, [`Trace::tally`] (tracestat's
//!   counts and delay CDF) and [`Trace::check`] (consistency).
//! - [`view`]: the viewer, one self-contained HTML page per trace that replays the
//!   propagation (written beside every trace a test saves).
//! - [`export`]: the trace in other tools' formats (go-libp2p-pubsub `TraceEvent` protobuf and
//!   JSON, gossipsub-interop output, Chrome/Perfetto JSON, GraphML, DOT, GML) and the import
//!   of go-libp2p-pubsub traces. The `meshsim` command-line tool (crate `meshsim-cli`) puts
//!   these and the viewer behind `meshsim view|stats|export|import|validate`.
//! - [`time`]: virtual time (the default in process: the same seed gives the same trace) and
//!   real time, and how node software waits on either.
//! - [`test`]: the `#[meshsim::test]` attribute.
//!
//! # Your own node software
//! [`Sim::with_software`] runs other node software on every node, [`Sim::with_software_on`]
//! on some of them (a mixed network); the trace records which ran where
//! ([`trace::Meta::software`]) and everything downstream works the same. Two families run
//! in process:
//! - a rust-libp2p `NetworkBehaviour` of your own, each node on its own `Swarm` over
//!   meshsim's links: [`node::Libp2p`]. Build your gossipsub with
//!   [`node::Libp2pContext::gossipsub`] and meshsim records every copy, graft and prune of
//!   it without further code; validation, scoring and extra protocols stay yours.
//! - a protocol not built on libp2p: implement [`NodeSoftware`] and use the node's
//!   [`node::Network`] (dial and accept [`node::Connection`]s, plain `AsyncRead + AsyncWrite`
//!   byte streams over the same shaped links) and report with [`node::NodeEvents`].
//!
//! ```
//! use meshsim::node::{Libp2p, Readiness};
//! use meshsim::{Sim, Topology, ms, node, secs};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let software = Libp2p::new("my-gossipsub", "0.1", |ctx| {
//!     let config = libp2p::gossipsub::ConfigBuilder::default()
//!         .heartbeat_interval(ctx.dilate(ms(100)))
//!         .build()?;
//!     ctx.gossipsub(config)
//! })
//! .with_readiness(Readiness::Mesh { d_lo: 4 });
//! let sim = Sim::new("doc.own_software")?
//!     .with_software(software)
//!     .start(Topology::ring(8)?.with_latency(ms(20)))
//!     .await?;
//! let msg = sim.publish(node(0), meshsim::DEFAULT_TOPIC, 256).await?;
//! sim.wait_delivered(msg, secs(5)).await?.assert_reach(1.0)?;
//! # meshsim::Result::<()>::Ok(())
//! # }).unwrap();
//! ```
//!
//! # The in-process link model
//! Each direction of a peer connection is a pipe. A write of `n` bytes occupies the link for
//! `8n / bandwidth` after the previous write (FIFO), then arrives `latency ± uniform(jitter)`
//! later, never before an earlier write (a stream delivers in order). Loss on a reliable
//! stream becomes delay: a write is cut into 1448-byte packets, and if one is lost (each with
//! probability `loss`) the write arrives one RTO later, `RTT + 200 ms`, doubling for each
//! further loss. A partition holds all bytes until the heal, then delivers them one latency
//! later. Opening a connection takes one round trip. Arrivals are released by a timer thread
//! on the kernel's high-resolution timers (tokio's own ticks are 1 ms), and on a busy CPU
//! deliveries run late: that lag is real and shows up in measured latencies. The
//! links measure it (how long after its modelled arrival each delivery was taken), the trace
//! records it ([`Trace::lag`], [`LinkLag`]), and a run whose p99 is above
//! [`Sim::with_lag_threshold`] (default 5 ms) is flagged in the trace, in a warning when the
//! simulation stops, in assertion failures, and in the viewer.
//!
//! # Time dilation
//! On a small machine a large in-process network cannot keep real time: at 1,000 nodes on 2
//! cores a burst of gossip keeps the CPU busy for longer than a hop lasts. [`Sim::with_dilation`]
//! runs the network `k` times slower than the time the test sees: every link latency and
//! jitter, every gossipsub duration (heartbeat, TTLs, backoffs, ...) and the simulated
//! retransmission timeout are multiplied by `k`, bandwidth is divided by it, and trace times,
//! the links' lag and every duration the test passes are divided back. The CPU's backlog,
//! which hardly changes with `k`, shrinks `k` times in simulated time. Under
//! `#[meshsim::test]`, a test that does not fix `k` runs in real time first and, if its links
//! lagged above the threshold and the verdict is one lag can explain (a pass, a timeout, a
//! failed trace assertion; never a panic or another error), again at the dilation the lag
//! suggests ([`Trace::suggested_dilation`]), capped by libp2p's 10 s negotiation timeout over
//! the slowest round trip; every attempt is printed with its verdict. What is not scaled is listed at [`Sim::with_dilation`].
//!
//! # The Docker backend
//! `#[meshsim::test(backend = "docker")]` (or `"both"`: one test per backend, named
//! `<test>::in_process` and `<test>::docker`) runs the same test in containers:
//! - the agent image is built on first use from nothing: a static `meshsim-agent` (cargo)
//!   on a base with iptables and tc, imported from Debian packages by `images/build-base.sh`
//!   (no registry needed), then `images/Dockerfile`; tagged by content hash, so unchanged code
//!   is never rebuilt, also across test processes;
//! - one internal Docker network per simulation (no route out), one container per node with
//!   `CAP_NET_ADMIN` added (never privileged), no port published: the harness talks to each
//!   agent over its attached stdin/stdout (length-delimited protobuf, `meshsim/proto`);
//! - links are shaped per direction in the kernel: `tc netem` under HTB classes per peer where
//!   the kernel has netem, else an NFQUEUE delayer on ingress (latency, jitter, loss) plus HTB
//!   (bandwidth); detected at start and recorded in the trace's `meta.shaping`;
//! - every time in the trace is read from one clock, `CLOCK_MONOTONIC`: the agents stamp
//!   their reports on it, corrected by each container's offset as measured at its start;
//! - partitions drop packets on ingress; `stop_node` stops the container, `kill_node` sends it
//!   SIGKILL, `restart_node` starts it again; a container that dies on its own is recorded as
//!   down with its exit code;
//! - every container and network is labelled and removed after the test, whether it passes,
//!   fails, panics or times out; leftovers of a killed test process are removed at the next
//!   start.
//!
//! Without a Docker engine, Docker tests are skipped with a message, unless `CI` or
//! `MESHSIM_REQUIRE_DOCKER` is set: then they fail.
//!
//! # Environment
//! - `MESHSIM_BACKEND`: `in-process` (default) or `docker`.
//! - `MESHSIM_REQUIRE_DOCKER=1`: a Docker test fails, rather than skips, without an engine.
//! - `MESHSIM_AGENT_BIN`: a prebuilt static `meshsim-agent` to put in the image (needed when
//!   meshsim's source is not in a workspace with `meshsim-agent` beside it).
//! - `MESHSIM_BASE_IMAGE`: the agent image's base (must have iptables and tc) instead of the
//!   one meshsim assembles.
//! - `MESHSIM_TRACE_DIR`: where traces go instead of `target/meshsim`.
//! - `MESHSIM_SAVE_TRACES=1`: save traces (and their viewers) of passing tests too.
//! - `MESHSIM_LOG`: log filter (tracing `EnvFilter` syntax), default `meshsim=info,warn`.

#![warn(missing_docs)]

extern crate self as meshsim;

mod backend;
mod control;
mod error;
pub mod export;
pub mod node;
mod runner;
mod sim;
mod skips;
pub mod time;
pub mod topology;
pub mod trace;
pub mod view;

pub use backend::Backend;
pub use error::{
    AssertionError, Error, ImportError, ParamsError, Result, TopologyError, TraceFileError,
    TraceFormatError,
};
pub use node::{GossipsubNode, GossipsubParams, NodeSoftware, Security};
pub use sim::{
    ContainerStats, DEFAULT_LAG_THRESHOLD, DEFAULT_TOPIC, MAX_DILATION, Sim, Simulation,
};
pub use topology::{GeoParams, Link, LinkShape, NodeId, Overlay, Topology, node};
pub use trace::{Delivery, Event, EventKind, LinkLag, MsgId, SoftwareInfo, Trace};

/// Marks an `async fn(sim: meshsim::Sim) -> meshsim::Result<()>` as a test.
///
/// It becomes a `#[test]` that builds a tokio runtime, hands the function a [`Sim`] named
/// after the test, and runs it under a timeout. In-process tests run in virtual time (see
/// [`time`]): deterministic from the seed, idle waiting free, timings exactly the links'. When the test fails, panics or times out,
/// every simulation it started has its trace (and the captured logs) written to
/// `target/meshsim/<module path>.<test name>/`, and the failure message says where.
///
/// Arguments, all optional:
/// - `backend = "in-process"`, `"docker"`, or `"both"` (two tests, `<name>::in_process` and
///   `<name>::docker`); otherwise `MESHSIM_BACKEND`, else in-process;
/// - `timeout = "90s"` (units `ms`, `s`, `m`; default 120 s);
/// - `seed = 7` (default 0), available as [`Sim::seed`];
/// - `time = "virtual"` (the default in process, when libp2p's timers can follow it; see
///   [`time`]) or `"real"` (the wall clock on a multi-threaded runtime; containers always
///   run in it);
/// - `dilation = 10` (real time only): run the in-process network ten times slower than
///   simulated time (see [`Sim::with_dilation`]). In real time without it the runner
///   chooses: if the links lagged above the threshold the test runs again at the dilation
///   the lag suggests ([`Trace::suggested_dilation`]), at most three runs in all, the last
///   one's verdict and trace counting. The timeout is in simulated time.
///
/// Works with `#[tracing_test::traced_test]` above or below it: meshsim then leaves
/// logging to it.
pub use meshsim_macros::test;

/// A duration of `n` milliseconds.
pub const fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

/// A duration of `n` seconds.
pub const fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

#[doc(hidden)]
pub mod __private {
    pub use crate::runner::{TestArgs, TestFailure, TestResult, run_test};
    pub use crate::skips::skip;
    pub use crate::trace::recorder::record_throughput;
}

/// What `meshsim-agent` (the program in each container) is built from. Not a public API.
#[doc(hidden)]
pub mod __agent {
    pub use crate::control::{FrameDecoder, FrameError, MAX_FRAME, encode, proto, shape_of};
    pub use crate::node::agent::{AgentNode, mono_ns, unix_ns};
    pub use crate::topology::LinkShape;
}
