//! The in-process backend: every node a task in the test process, every peer connection a
//! pair of simulated links (see [`link`] for the model).

pub(crate) mod lag;
mod link;
mod net;
mod timer;
mod transport;

pub(crate) use net::SimNet;
pub(crate) use transport::{SimTransport, addr_of};

use std::sync::Arc;

use tokio::sync::{Semaphore, oneshot};

use crate::error::{Error, Result, TopologyError};
use crate::node::{
    self, Command, GossipsubParams, NodeHandle, NodeSetup, PeerBook, Security, Wire,
};
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
    book: Arc<PeerBook>,
    nodes: Vec<Option<NodeHandle>>,
    params: GossipsubParams,
    topics: Vec<String>,
    seed: u64,
    security: Security,
    dials: Arc<Semaphore>,
}

impl InProcess {
    /// Starts every node of `topology` (not yet connected).
    pub(crate) fn start(
        topology: Topology,
        seed: u64,
        params: GossipsubParams,
        topics: Vec<String>,
        security: Security,
        dilation: f64,
        recorder: Arc<Recorder>,
    ) -> Result<Self> {
        let n = topology.node_count();
        let mut this = InProcess {
            net: SimNet::new(topology, seed, dilation),
            recorder,
            book: Arc::new(PeerBook::default()),
            nodes: Vec::new(),
            params,
            topics,
            seed,
            security,
            dials: Arc::new(Semaphore::new(
                DIALS_IN_FLIGHT.saturating_mul(dilation.ceil() as usize),
            )),
        };
        this.recorder.measure_lag(this.net.lag());
        for i in 0..n {
            let handle = this.spawn(NodeId(i as u32))?;
            this.nodes.push(Some(handle));
        }
        Ok(this)
    }

    fn spawn(&self, n: NodeId) -> Result<NodeHandle> {
        node::spawn(NodeSetup {
            node: n,
            keypair: node::keypair(self.seed, n),
            params: self.params.clone(),
            topics: self.topics.clone(),
            wire: Wire::Sim(self.net.clone()),
            security: self.security,
            recorder: self.recorder.clone(),
            book: self.book.clone(),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn is_running(&self, n: NodeId) -> bool {
        matches!(self.nodes.get(n.index()), Some(Some(_)))
    }

    fn handle(&self, n: NodeId) -> Result<&NodeHandle> {
        match self.nodes.get(n.index()) {
            None => Err(Error::UnknownNode(n)),
            Some(None) => Err(Error::NodeStopped(n)),
            Some(Some(h)) => Ok(h),
        }
    }

    fn send(&self, n: NodeId, cmd: Command) -> Result<()> {
        self.handle(n)?.commands.send(cmd).map_err(|_| Error::Node {
            node: n,
            reason: "the node's task has ended".into(),
        })
    }

    pub(crate) async fn dial(&self, from: NodeId, to: NodeId) -> Result<()> {
        let permit = self
            .dials
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        self.send(from, Command::Dial { peer: to, permit })
    }

    pub(crate) fn disconnect(&self, a: NodeId, b: NodeId) -> Result<()> {
        self.send(a, Command::Disconnect(b))
    }

    /// Sends a command that answers, and waits for the answer.
    pub(crate) async fn ask(
        &self,
        n: NodeId,
        make: impl FnOnce(oneshot::Sender<std::result::Result<(), String>>) -> Command,
    ) -> Result<std::result::Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        self.send(n, make(tx))?;
        rx.await.map_err(|_| Error::Node {
            node: n,
            reason: "the node's task ended".into(),
        })
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

    /// Stops a node; `false` if it was not running.
    pub(crate) async fn stop(&mut self, n: NodeId) -> Result<()> {
        self.handle(n)?;
        let handle = self.nodes[n.index()].take().expect("checked above");
        handle.stop().await;
        Ok(())
    }

    pub(crate) fn restart(&mut self, n: NodeId) -> Result<()> {
        self.nodes[n.index()] = Some(self.spawn(n)?);
        Ok(())
    }

    /// Adds a node linked to `links`, all or nothing, and starts it.
    pub(crate) fn add(&mut self, links: &[(NodeId, LinkShape)]) -> Result<NodeId> {
        let n = self.net.update_topology(|t| {
            let mut grown = t.clone();
            let n = grown.add_node();
            for &(p, shape) in links {
                grown.link(n, p, shape)?;
            }
            *t = grown;
            Ok::<_, TopologyError>(n)
        })?;
        self.nodes.push(Some(self.spawn(n)?));
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
