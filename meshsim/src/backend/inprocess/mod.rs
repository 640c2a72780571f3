//! The in-process backend: every node a task in the test process, every peer connection a
//! pair of simulated links (see [`link`] for the model).

mod link;
mod net;

pub(crate) use net::SimNet;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::{Error, Result, TopologyError};
use crate::node::handle::{NodeHandle, NodeSetup, spawn};
use crate::node::network::Network;
use crate::node::{self, NodeSoftware, Peers};
use crate::topology::{LinkShape, NodeId, Topology};
use crate::trace::recorder::Recorder;

/// Dials in flight at once while starting: noise handshakes are CPU-bound, and thousands at
/// once would time out on a small machine. Times the dilation: a dilated handshake spends
/// `k` times longer waiting on its links, not on the CPU.
const DIALS_IN_FLIGHT: usize = 256;

/// The running nodes of an in-process simulation.
pub(crate) struct InProcess {
    net: Arc<SimNet>,
    recorder: Arc<Recorder>,
    peers: Arc<Peers>,
    nodes: Vec<Option<NodeHandle>>,
    /// Each node's software; nodes added later run `default_software`.
    software: Vec<Arc<dyn NodeSoftware>>,
    default_software: Arc<dyn NodeSoftware>,
    topics: Vec<String>,
    seed: u64,
    dilation: f64,
    dials: Arc<Semaphore>,
}

impl InProcess {
    /// Starts every node of `topology` (not yet connected), node `i` running `software[i]`;
    /// returns once every node has taken its start-up subscriptions.
    pub(crate) async fn start(
        topology: Topology,
        seed: u64,
        software: Vec<Arc<dyn NodeSoftware>>,
        default_software: Arc<dyn NodeSoftware>,
        topics: Vec<String>,
        dilation: f64,
        recorder: Arc<Recorder>,
    ) -> Result<Self> {
        let n = topology.node_count();
        let mut this = InProcess {
            net: SimNet::new(topology, seed, dilation),
            recorder,
            peers: Arc::new(Peers::default()),
            nodes: Vec::new(),
            software,
            default_software,
            topics,
            seed,
            dilation,
            dials: Arc::new(Semaphore::new(
                DIALS_IN_FLIGHT.saturating_mul(dilation.ceil() as usize),
            )),
        };
        // Lag is real time's: in virtual time every arrival is taken exactly when due.
        if !meshsim_time::is_virtual() {
            this.recorder.measure_lag(this.net.lag());
        }
        // Every identity is known before any node starts: a node may dial one that has not.
        for i in 0..n {
            let id = NodeId(i as u32);
            this.peers
                .insert(node::keypair(seed, id).public().to_peer_id(), id);
        }
        for i in 0..n {
            let handle = this.spawn(NodeId(i as u32))?;
            this.nodes.push(Some(handle));
        }
        for handle in this.nodes.iter_mut().flatten() {
            handle.started().await?;
        }
        Ok(this)
    }

    /// Starts node `n` and waits until it has taken its start-up subscriptions.
    async fn start_node(&self, n: NodeId) -> Result<NodeHandle> {
        let mut handle = self.spawn(n)?;
        handle.started().await?;
        Ok(handle)
    }

    fn spawn(&self, n: NodeId) -> Result<NodeHandle> {
        let software = self
            .software
            .get(n.index())
            .unwrap_or(&self.default_software);
        let links = self.net.clone();
        spawn(
            software.as_ref(),
            NodeSetup {
                node: n,
                keypair: node::keypair(self.seed, n),
                seed: self.seed,
                dilation: self.dilation,
                topics: &self.topics,
                report: self.recorder.clone(),
                peers: self.peers.clone(),
                network: Box::new(move |events| Network::simulated(n, links, events.clone())),
            },
        )
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn is_running(&self, n: NodeId) -> bool {
        matches!(self.nodes.get(n.index()), Some(Some(_)))
    }

    pub(crate) fn handle(&self, n: NodeId) -> Result<&NodeHandle> {
        match self.nodes.get(n.index()) {
            None => Err(Error::UnknownNode(n)),
            Some(None) => Err(Error::NodeStopped(n)),
            Some(Some(h)) => Ok(h),
        }
    }

    pub(crate) async fn dial(&self, from: NodeId, to: NodeId) -> Result<()> {
        let handle = self.handle(from)?;
        let permit = self
            .dials
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        handle.connect(to, permit).await
    }

    pub(crate) fn set_direction(&self, from: NodeId, to: NodeId, shape: LinkShape) -> Result<()> {
        Ok(self
            .net
            .update_topology(|t| t.set_direction(from, to, shape))?)
    }

    pub(crate) fn partition(&self, a: Vec<NodeId>, b: Vec<NodeId>) {
        self.net.partition(a, b);
    }

    pub(crate) fn heal(&self, a: &[NodeId], b: &[NodeId], announce: impl FnOnce()) -> bool {
        self.net.heal(a, b, announce)
    }

    /// Stops a node: gracefully (its software closes its connections), or (`kill`) at once,
    /// its connections reset.
    pub(crate) async fn stop(&mut self, n: NodeId, kill: bool) -> Result<()> {
        self.handle(n)?;
        let handle = self.nodes[n.index()].take().expect("checked above");
        if kill {
            self.net.kill(n);
            handle.kill().await;
        } else {
            handle.stop(self.dilation).await;
        }
        Ok(())
    }

    pub(crate) async fn restart(&mut self, n: NodeId) -> Result<()> {
        self.nodes[n.index()] = Some(self.start_node(n).await?);
        Ok(())
    }

    /// Adds a node linked to `links`, all or nothing, and starts it.
    pub(crate) async fn add(&mut self, links: &[(NodeId, LinkShape)]) -> Result<NodeId> {
        let n = self.net.update_topology(|t| {
            let mut grown = t.clone();
            let n = grown.add_node();
            for &(p, shape) in links {
                grown.link(n, p, shape)?;
            }
            *t = grown;
            Ok::<_, TopologyError>(n)
        })?;
        self.peers
            .insert(node::keypair(self.seed, n).public().to_peer_id(), n);
        self.nodes.push(Some(self.start_node(n).await?));
        Ok(n)
    }

    /// Stops every node; returns those that were running.
    pub(crate) fn shutdown(&mut self) -> Vec<NodeId> {
        let mut were = Vec::new();
        for (i, slot) in self.nodes.iter_mut().enumerate() {
            if slot.take().is_some() {
                were.push(NodeId(i as u32));
            }
        }
        were
    }
}
