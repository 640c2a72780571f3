//! Backends make a topology real: [`Backend`] names one, [`Nodes`] runs one.

#[cfg(feature = "docker")]
pub(crate) mod docker;
pub(crate) mod inprocess;

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Where the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Every node inside the test process; links simulated in user space.
    #[default]
    InProcess,
    /// One container per node (`meshsim-agent`) on an internal Docker network, links shaped
    /// on real packets in each container's kernel (tc netem, or NFQUEUE and HTB).
    Docker,
}

impl Backend {
    /// The backend named by `MESHSIM_BACKEND`, if set.
    pub fn from_env() -> Result<Option<Backend>, Error> {
        match std::env::var("MESHSIM_BACKEND") {
            Ok(v) if !v.trim().is_empty() => v.parse().map(Some),
            _ => Ok(None),
        }
    }

    /// How links are shaped on this backend, as recorded in traces.
    pub fn shaping(self) -> &'static str {
        match self {
            Backend::InProcess => {
                "simulated links in user space (latency, jitter, loss as retransmission delay, bandwidth)"
            }
            Backend::Docker => "kernel, in each container",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::InProcess => "in-process",
            Backend::Docker => "docker",
        })
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "in-process" | "inprocess" | "embedded" => Ok(Backend::InProcess),
            "docker" => Ok(Backend::Docker),
            other => Err(Error::BackendUnavailable {
                backend: other.to_string(),
                reason: "unknown backend; use \"in-process\" or \"docker\"".into(),
            }),
        }
    }
}

use std::sync::Arc;

use crate::error::Result;
use crate::node::{GossipsubParams, NodeSoftware};
use crate::topology::{LinkShape, NodeId, Topology};
use crate::trace::MsgId;
use crate::trace::recorder::Recorder;

/// The running nodes of a simulation, on whichever backend.
pub(crate) enum Nodes {
    InProcess(inprocess::InProcess),
    #[cfg(feature = "docker")]
    Docker(Box<docker::DockerNodes>),
}

/// Calls the same method on whichever backend runs.
macro_rules! each {
    ($self:expr, $n:ident => $e:expr) => {
        match $self {
            Nodes::InProcess($n) => $e,
            #[cfg(feature = "docker")]
            Nodes::Docker($n) => $e,
        }
    };
}

/// How every node of a simulation runs: what `Nodes::start` needs besides the network.
pub(crate) struct NodeConfig<'a> {
    /// Drives node keys and link randomness.
    pub seed: u64,
    /// The built-in node's gossipsub parameters (what containers run).
    pub params: &'a GossipsubParams,
    /// Each node's software (in-process), and what nodes added later run.
    pub software: Vec<Arc<dyn NodeSoftware>>,
    pub default_software: Arc<dyn NodeSoftware>,
    /// Topics every node subscribes to at start.
    pub topics: &'a [String],
    /// Time dilation (in-process only): the topology's shapes are already multiplied by it;
    /// the links scale their retransmission timeout and lag by it, node software its timers.
    pub dilation: f64,
}

impl Nodes {
    /// Starts every node of `topology` (not yet connected); returns the nodes and how their
    /// links are shaped.
    pub(crate) async fn start(
        backend: Backend,
        topology: Topology,
        overlay: &[(NodeId, NodeId)],
        config: NodeConfig<'_>,
        recorder: Arc<Recorder>,
    ) -> Result<(Nodes, String)> {
        let NodeConfig {
            seed,
            params,
            software,
            default_software,
            topics,
            dilation,
        } = config;
        match backend {
            Backend::InProcess => {
                let _ = (overlay, params);
                let nodes = inprocess::InProcess::start(
                    topology,
                    seed,
                    software,
                    default_software,
                    topics.to_vec(),
                    dilation,
                    recorder,
                )
                .await?;
                Ok((Nodes::InProcess(nodes), backend.shaping().to_string()))
            }
            #[cfg(feature = "docker")]
            Backend::Docker => {
                let _ = (software, default_software);
                let nodes = docker::DockerNodes::start(
                    topology,
                    overlay.to_vec(),
                    seed,
                    params,
                    topics.to_vec(),
                    recorder,
                )
                .await?;
                let shaping = format!("kernel, in each container: {}", nodes.shaping);
                Ok((Nodes::Docker(Box::new(nodes)), shaping))
            }
            #[cfg(not(feature = "docker"))]
            Backend::Docker => Err(crate::error::Error::BackendUnavailable {
                backend: backend.to_string(),
                reason: "meshsim was built without its `docker` feature".into(),
            }),
        }
    }

    pub(crate) fn len(&self) -> usize {
        each!(self, n => n.len())
    }

    pub(crate) fn is_running(&self, node: NodeId) -> bool {
        each!(self, n => n.is_running(node))
    }

    pub(crate) async fn dial(&self, from: NodeId, to: NodeId) -> Result<()> {
        each!(self, n => n.dial(from, to).await)
    }

    pub(crate) async fn disconnect(&self, a: NodeId, b: NodeId) -> Result<()> {
        match self {
            Nodes::InProcess(n) => n.handle(a)?.disconnect(b).await,
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => n.disconnect(a, b).await,
        }
    }

    /// Subscribes or unsubscribes; the inner result is the node's answer.
    pub(crate) async fn topic(
        &self,
        node: NodeId,
        topic: &str,
        subscribe: bool,
    ) -> Result<std::result::Result<(), String>> {
        match self {
            Nodes::InProcess(n) => n.handle(node)?.topic(topic, subscribe).await,
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => n.topic(node, topic, subscribe).await,
        }
    }

    /// Publishes; the inner result is the node's answer.
    pub(crate) async fn publish(
        &self,
        node: NodeId,
        msg: MsgId,
        topic: &str,
        data: Vec<u8>,
    ) -> Result<std::result::Result<(), String>> {
        match self {
            Nodes::InProcess(n) => n.handle(node)?.publish(msg, topic, data).await,
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => n.publish(node, msg.0, topic, data).await,
        }
    }

    pub(crate) async fn set_direction(
        &mut self,
        from: NodeId,
        to: NodeId,
        shape: LinkShape,
    ) -> Result<()> {
        match self {
            Nodes::InProcess(n) => n.set_direction(from, to, shape),
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => n.set_direction(from, to, shape).await,
        }
    }

    /// Cuts traffic between the groups; `announce` records it (before packets stop).
    pub(crate) async fn partition(
        &mut self,
        a: Vec<NodeId>,
        b: Vec<NodeId>,
        announce: impl FnOnce(),
    ) -> Result<()> {
        announce();
        match self {
            Nodes::InProcess(n) => {
                n.partition(a, b);
                Ok(())
            }
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => n.partition(a, b).await,
        }
    }

    /// Heals a partition; `false` if there was none between exactly these groups.
    /// `announce` records it once traffic flows again.
    pub(crate) async fn heal(
        &mut self,
        a: &[NodeId],
        b: &[NodeId],
        announce: impl FnOnce(),
    ) -> Result<bool> {
        match self {
            Nodes::InProcess(n) => Ok(n.heal(a, b, announce)),
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => {
                let healed = n.heal(a, b).await?;
                if healed {
                    announce();
                }
                Ok(healed)
            }
        }
    }

    /// Stops a node (`kill`: abruptly, SIGKILL for a container).
    pub(crate) async fn stop(&mut self, node: NodeId, kill: bool) -> Result<()> {
        match self {
            Nodes::InProcess(n) => n.stop(node, kill).await,
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => n.stop(node, kill).await,
        }
    }

    pub(crate) async fn restart(&mut self, node: NodeId) -> Result<()> {
        match self {
            Nodes::InProcess(n) => n.restart(node).await,
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => n.restart(node).await,
        }
    }

    pub(crate) async fn add(&mut self, links: &[(NodeId, LinkShape)]) -> Result<NodeId> {
        match self {
            Nodes::InProcess(n) => n.add(links).await,
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => n.add(links).await,
        }
    }

    /// Stops every node; returns those that were running.
    pub(crate) async fn shutdown(&mut self) -> Vec<NodeId> {
        match self {
            Nodes::InProcess(n) => n.shutdown(),
            #[cfg(feature = "docker")]
            Nodes::Docker(n) => n.shutdown().await,
        }
    }
}
