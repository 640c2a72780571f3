//! The Docker backend: one container per node running `meshsim-agent`, on an internal Docker
//! network of its own, with links shaped on real packets in each container's kernel.
//!
//! Built on bollard (the Docker client testcontainers uses) with API version negotiation:
//! testcontainers 0.28 pins Docker API 1.53, which engines older than Docker 29 refuse
//! (Debian 12's engine speaks 1.41).

mod agent;
mod cleanup;
mod image;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker as Client;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;
use futures::future::{join_all, try_join_all};
use tokio::sync::OnceCell;

use crate::control::proto::{self, reply, request};
use crate::control::shape_to;
use crate::error::{Error, Result, TopologyError};
use crate::node::GossipsubParams;
use crate::topology::{LinkShape, NodeId, Topology};
use crate::trace::recorder::Recorder;
use agent::Agent;

pub(super) const LABEL_MANAGED: &str = "meshsim.managed";
pub(super) const LABEL_RUN: &str = "meshsim.run";
pub(super) const LABEL_OWNER: &str = "meshsim.owner";

/// The port every node listens on inside its container.
const PORT: u32 = 4001;

/// Connects to the Docker engine (`DOCKER_HOST` or the local socket) at a version it speaks.
pub(crate) async fn connect() -> Result<Client> {
    let unavailable = |reason: String| Error::BackendUnavailable {
        backend: "docker".into(),
        reason,
    };
    let client = Client::connect_with_defaults()
        .map_err(|e| unavailable(format!("no Docker engine configured: {e}")))?;
    client
        .negotiate_version()
        .await
        .map_err(|e| unavailable(format!("no Docker engine reachable: {e}")))
}

/// The agent image, built once per process (and, by its content-hash tag, once per machine).
/// Only success is kept: after a failure (a transient apt or engine error, say) the next
/// Docker test tries again and reports its own outcome.
pub(crate) async fn prepare_image(client: &Client) -> Result<String> {
    IMAGE
        .get_or_try_init(|| image::ensure(client))
        .await
        .cloned()
}

static IMAGE: OnceCell<String> = OnceCell::const_new();
static RUNS: AtomicU64 = AtomicU64::new(0);

/// One node's container.
struct Node {
    container: String,
    ip: Ipv4Addr,
    agent: Option<Agent>,
}

/// The running containers of one simulation.
pub(crate) struct DockerNodes {
    client: Client,
    run: String,
    network: String,
    /// What every container and the network carry (see `cleanup`).
    labels: HashMap<String, String>,
    image: String,
    topology: Topology,
    overlay: Vec<(NodeId, NodeId)>,
    nodes: Vec<Node>,
    recorder: Arc<Recorder>,
    params_json: String,
    topics: Vec<String>,
    seed: u64,
    partitions: Vec<(Vec<NodeId>, Vec<NodeId>)>,
    /// The shaping mode the agents found, e.g. `nfqueue+htb`.
    pub(crate) shaping: String,
    cleaned: bool,
}

impl Drop for DockerNodes {
    fn drop(&mut self) {
        if !self.cleaned {
            self.nodes.clear();
            cleanup::remove_run_blocking(self.run.clone(), self.network.clone());
        }
    }
}

impl DockerNodes {
    /// Builds the image if needed, creates the network and one container per node in
    /// parallel, configures and shapes every agent. Connections are not yet dialled.
    pub(crate) async fn start(
        topology: Topology,
        overlay: Vec<(NodeId, NodeId)>,
        seed: u64,
        params: &GossipsubParams,
        topics: Vec<String>,
        recorder: Arc<Recorder>,
    ) -> Result<Self> {
        let client = connect().await?;
        cleanup::reap_leftovers(&client).await;
        let image = prepare_image(&client).await?;
        let run = format!(
            "meshsim-{}-{}-{:x}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed),
            recorder.lock().trace.meta.started_at_unix_ns & 0xffff_ffff
        );
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_RUN.to_string(), run.clone()),
            (LABEL_OWNER.to_string(), cleanup::owner()),
        ]);
        client
            .create_network(NetworkCreateRequest {
                name: run.clone(),
                driver: Some("bridge".into()),
                internal: Some(true),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Docker {
                what: format!("create network {run}"),
                reason: e.to_string(),
            })?;
        let mut this = DockerNodes {
            client,
            network: run.clone(),
            run,
            labels,
            image,
            topology,
            overlay,
            nodes: Vec::new(),
            recorder,
            params_json: serde_json::to_string(params).expect("params serialise"),
            topics,
            seed,
            partitions: Vec::new(),
            shaping: String::new(),
            cleaned: false,
        };
        let n = this.topology.node_count();
        let created = try_join_all((0..n).map(|i| this.create(NodeId(i as u32)))).await?;
        this.nodes = created;
        let peers = this.peer_list();
        let modes = try_join_all((0..n).map(|i| this.configure(NodeId(i as u32), &peers))).await?;
        this.shaping = modes.into_iter().next().unwrap_or_default();
        try_join_all((0..n).map(|i| this.shape(NodeId(i as u32)))).await?;
        Ok(this)
    }

    /// Creates and starts a node's container, attaches to it and reads its address.
    async fn create(&self, n: NodeId) -> Result<Node> {
        let name = format!("{}-{n}", self.run);
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            labels: Some(self.labels.clone()),
            open_stdin: Some(true),
            stdin_once: Some(false),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: Some(vec![format!("MESHSIM_NODE={n}")]),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                cap_add: Some(vec!["NET_ADMIN".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let docker_err = |what: &str, e: bollard::errors::Error| Error::Docker {
            what: format!("{what} {n}'s container"),
            reason: e.to_string(),
        };
        let created = self
            .client
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| docker_err("create", e))?;
        let mut node = Node {
            container: created.id,
            ip: Ipv4Addr::UNSPECIFIED,
            agent: None,
        };
        self.boot(n, &mut node).await?;
        Ok(node)
    }

    /// Starts a created (or stopped) container, attaches and reads its address.
    async fn boot(&self, n: NodeId, node: &mut Node) -> Result<()> {
        let docker_err = |what: &str, e: bollard::errors::Error| Error::Docker {
            what: format!("{what} {n}'s container"),
            reason: e.to_string(),
        };
        self.client
            .start_container(&node.container, None)
            .await
            .map_err(|e| docker_err("start", e))?;
        node.agent =
            Some(Agent::attach(&self.client, &node.container, n, self.recorder.clone()).await?);
        let info = self
            .client
            .inspect_container(&node.container, None)
            .await
            .map_err(|e| docker_err("inspect", e))?;
        node.ip = info
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|nets| nets.get(&self.network).and_then(|e| e.ip_address.clone()))
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| Error::Docker {
                what: format!("address of {n}'s container"),
                reason: format!("no IPv4 address on network {}", self.network),
            })?;
        Ok(())
    }

    fn peer_list(&self) -> Vec<proto::Peer> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| proto::Peer {
                node: i as u32,
                ip: node.ip.to_string(),
            })
            .collect()
    }

    fn agent(&self, n: NodeId) -> Result<&Agent> {
        match self.nodes.get(n.index()) {
            None => Err(Error::UnknownNode(n)),
            Some(Node { agent: None, .. }) => Err(Error::NodeStopped(n)),
            Some(Node { agent: Some(a), .. }) => Ok(a),
        }
    }

    /// Starts the node in its agent; returns the shaping mode the agent found.
    async fn configure(&self, n: NodeId, peers: &[proto::Peer]) -> Result<String> {
        let reply = self
            .agent(n)?
            .request(request::Body::Configure(proto::Configure {
                node: n.0,
                seed: self.seed,
                params_json: self.params_json.clone(),
                topics: self.topics.clone(),
                peers: peers.to_vec(),
                port: PORT,
            }))
            .await?;
        match reply {
            reply::Body::Configured(c) => {
                tracing::info!(target: "meshsim", node = %n, "agent up: shaping {} ({})", c.shaping, c.shaping_detail);
                Ok(format!("{} ({})", c.shaping, c.shaping_detail))
            }
            other => Err(Error::Node {
                node: n,
                reason: format!("unexpected reply to configure: {other:?}"),
            }),
        }
    }

    /// Sends a node the shapes of its traffic with every overlay neighbour, and blocks for
    /// the partitions it is in.
    async fn shape(&self, n: NodeId) -> Result<()> {
        let agent = self.agent(n)?;
        let mut peers = Vec::new();
        for &(a, b) in &self.overlay {
            let p = if a == n {
                b
            } else if b == n {
                a
            } else {
                continue;
            };
            let path = |x, y| {
                self.topology
                    .path_shape(x, y)
                    .ok_or(Error::Topology(TopologyError::NoRoute(x, y)))
            };
            peers.push(proto::PeerShape {
                peer: p.0,
                outgoing: Some(shape_to(&path(n, p)?)),
                incoming: Some(shape_to(&path(p, n)?)),
            });
        }
        agent
            .call(request::Body::Shapes(proto::Shapes { peers }))
            .await?;
        for (a, b) in &self.partitions {
            let other = if a.contains(&n) {
                b
            } else if b.contains(&n) {
                a
            } else {
                continue;
            };
            agent.call(block(other, true)).await?;
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes whose container runs.
    fn running(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len())
            .map(|i| NodeId(i as u32))
            .filter(|&n| self.is_running(n))
    }

    pub(crate) fn is_running(&self, n: NodeId) -> bool {
        self.agent(n).is_ok()
    }

    pub(crate) async fn dial(&self, from: NodeId, to: NodeId) -> Result<()> {
        self.agent(from)?
            .call(request::Body::Connect(proto::Connect { peer: to.0 }))
            .await
    }

    pub(crate) async fn disconnect(&self, a: NodeId, b: NodeId) -> Result<()> {
        self.agent(a)?
            .call(request::Body::Disconnect(proto::Disconnect { peer: b.0 }))
            .await
    }

    pub(crate) async fn topic(
        &self,
        n: NodeId,
        topic: &str,
        subscribe: bool,
    ) -> Result<std::result::Result<(), String>> {
        let t = proto::Topic {
            topic: topic.into(),
        };
        let body = if subscribe {
            request::Body::Subscribe(t)
        } else {
            request::Body::Unsubscribe(t)
        };
        Ok(self.answer(n, body).await)
    }

    pub(crate) async fn publish(
        &self,
        n: NodeId,
        msg: u64,
        topic: &str,
        data: Vec<u8>,
    ) -> Result<std::result::Result<(), String>> {
        Ok(self
            .answer(
                n,
                request::Body::Publish(proto::Publish {
                    msg,
                    topic: topic.into(),
                    data,
                }),
            )
            .await)
    }

    /// A request whose failure is the node's answer (not a harness error).
    async fn answer(&self, n: NodeId, body: request::Body) -> std::result::Result<(), String> {
        match self.agent(n) {
            Ok(a) => a.call(body).await.map_err(|e| match e {
                Error::Node { reason, .. } => reason,
                e => e.to_string(),
            }),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Changes one direction's shape and re-shapes every running node (an overlay pair's
    /// path may run over the changed link).
    pub(crate) async fn set_direction(
        &mut self,
        from: NodeId,
        to: NodeId,
        shape: LinkShape,
    ) -> Result<()> {
        self.topology.set_direction(from, to, shape)?;
        self.reshape_all().await
    }

    async fn reshape_all(&self) -> Result<()> {
        try_join_all(self.running().map(|n| self.shape(n))).await?;
        Ok(())
    }

    pub(crate) async fn partition(&mut self, a: Vec<NodeId>, b: Vec<NodeId>) -> Result<()> {
        self.block_both(&a, &b, true).await?;
        self.partitions.push((a, b));
        Ok(())
    }

    pub(crate) async fn heal(&mut self, a: &[NodeId], b: &[NodeId]) -> Result<bool> {
        let Some(i) = self
            .partitions
            .iter()
            .position(|(x, y)| (x == a && y == b) || (x == b && y == a))
        else {
            return Ok(false);
        };
        self.partitions.remove(i);
        self.block_both(a, b, false).await?;
        Ok(true)
    }

    async fn block_both(&self, a: &[NodeId], b: &[NodeId], blocked: bool) -> Result<()> {
        let calls = a
            .iter()
            .map(|&n| (n, b))
            .chain(b.iter().map(|&n| (n, a)))
            .filter(|(n, _)| self.is_running(*n))
            .map(|(n, other)| async move { self.agent(n)?.call(block(other, blocked)).await });
        try_join_all(calls).await?;
        Ok(())
    }

    /// Stops a node's container (SIGTERM, or SIGKILL with `kill`).
    pub(crate) async fn stop(&mut self, n: NodeId, kill: bool) -> Result<()> {
        self.agent(n)?;
        let node = &mut self.nodes[n.index()];
        let agent = node.agent.take().expect("checked above");
        agent.expected_exit.store(true, Ordering::SeqCst);
        let res = if kill {
            self.client
                .kill_container(
                    &node.container,
                    Some(
                        KillContainerOptionsBuilder::default()
                            .signal("SIGKILL")
                            .build(),
                    ),
                )
                .await
        } else {
            self.client
                .stop_container(
                    &node.container,
                    Some(StopContainerOptionsBuilder::default().t(2).build()),
                )
                .await
        };
        res.map_err(|e| Error::Docker {
            what: format!("stop {n}'s container"),
            reason: e.to_string(),
        })?;
        // Wait until the container has really exited, so a restart finds it stopped.
        let _ = self
            .client
            .wait_container(
                &node.container,
                None::<bollard::query_parameters::WaitContainerOptions>,
            )
            .collect::<Vec<_>>()
            .await;
        // (its result only says how it exited)
        drop(agent);
        Ok(())
    }

    /// Starts a stopped node's container again; peers learn its (possibly new) address.
    pub(crate) async fn restart(&mut self, n: NodeId) -> Result<()> {
        let mut node = Node {
            container: self.nodes[n.index()].container.clone(),
            ip: self.nodes[n.index()].ip,
            agent: None,
        };
        self.boot(n, &mut node).await?;
        let moved = node.ip != self.nodes[n.index()].ip;
        self.nodes[n.index()] = node;
        let peers = self.peer_list();
        self.configure(n, &peers).await?;
        if moved {
            self.tell_peers(n).await?;
            self.reshape_all().await
        } else {
            self.shape(n).await
        }
    }

    async fn tell_peers(&self, n: NodeId) -> Result<()> {
        let update = proto::Peers {
            peers: vec![proto::Peer {
                node: n.0,
                ip: self.nodes[n.index()].ip.to_string(),
            }],
        };
        let calls = self.running().filter(|&p| p != n).map(|p| {
            let update = update.clone();
            async move { self.agent(p)?.call(request::Body::Peers(update)).await }
        });
        try_join_all(calls).await?;
        Ok(())
    }

    /// Adds a node linked to `links` (all or nothing) and starts its container.
    pub(crate) async fn add(&mut self, links: &[(NodeId, LinkShape)]) -> Result<NodeId> {
        let mut grown = self.topology.clone();
        let n = grown.add_node();
        for &(p, shape) in links {
            grown.link(n, p, shape)?;
        }
        let node = self.create(n).await?;
        self.topology = grown;
        self.nodes.push(node);
        for &(p, _) in links {
            self.overlay.push((n, p));
        }
        let peers = self.peer_list();
        self.configure(n, &peers).await?;
        self.tell_peers(n).await?;
        self.reshape_all().await?;
        Ok(n)
    }

    /// Removes every container and the network; returns the nodes that were running.
    pub(crate) async fn shutdown(&mut self) -> Vec<NodeId> {
        let mut were = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(agent) = node.agent.take() {
                agent.expected_exit.store(true, Ordering::SeqCst);
                were.push(NodeId(i as u32));
            }
        }
        cleanup::remove_run(&self.client, &self.run, &self.network).await;
        self.nodes.clear();
        self.cleaned = true;
        were
    }

    /// Health of every running agent: resident memory and the delayer's counters, with its
    /// clock offset and the round trip that measured it.
    pub(crate) async fn health(
        &self,
    ) -> Vec<(
        NodeId,
        Result<(proto::HealthReport, (i64, std::time::Duration))>,
    )> {
        join_all(self.running().map(|n| async move {
            let res = async {
                let agent = self.agent(n)?;
                match agent
                    .request(request::Body::Health(proto::Health {}))
                    .await?
                {
                    reply::Body::Health(h) => Ok((h, agent.clock())),
                    other => Err(Error::Node {
                        node: n,
                        reason: format!("unexpected reply to health: {other:?}"),
                    }),
                }
            }
            .await;
            (n, res)
        }))
        .await
    }
}

fn block(peers: &[NodeId], blocked: bool) -> request::Body {
    request::Body::Block(proto::Block {
        peers: peers.iter().map(|p| p.0).collect(),
        blocked,
    })
}
