//! One node driven by `meshsim-agent` inside a container: the same node as in process, on
//! TCP, reporting to a telemetry stream instead of the recorder.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use libp2p::Multiaddr;
use tokio::sync::Semaphore;

use super::handle::{NodeHandle, NodeSetup, spawn};
use super::network::Network;
use super::{GossipsubNode, GossipsubParams, Peers};
use crate::control::proto::{self, telemetry::Kind};
use crate::control::telemetry_of;
use crate::topology::NodeId;
pub use crate::trace::clock::mono_ns;
use crate::trace::recorder::Report;
use crate::trace::{EventKind, MsgId};

/// Wall-clock nanoseconds since the Unix epoch (containers share the host's clock).
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Sends what the node sees down the agent's telemetry stream.
struct Telemetry(Box<dyn Fn(proto::Telemetry) + Send + Sync>);

impl Telemetry {
    fn send(&self, kind: Kind) {
        (self.0)(proto::Telemetry {
            unix_ns: unix_ns(),
            mono_ns: mono_ns(),
            kind: Some(kind),
        });
    }
}

impl Report for Telemetry {
    fn record(&self, _node: Option<NodeId>, kind: EventKind) {
        if let Some(t) = telemetry_of(unix_ns(), mono_ns(), &kind) {
            (self.0)(t);
        }
    }

    fn published(&self, msg: MsgId, _origin: NodeId, topic: &str, size: usize) {
        self.send(Kind::Published(proto::Published {
            msg: msg.0,
            topic: topic.into(),
            size: size as u64,
        }));
    }

    fn peer_subscription(&self, _node: NodeId, peer: NodeId, topic: &str, subscribed: bool) {
        self.send(Kind::PeerSubscription(proto::PeerSubscription {
            peer: peer.0,
            topic: topic.into(),
            subscribed,
        }));
    }
}

/// The node of one agent.
pub struct AgentNode {
    node: NodeId,
    seed: u64,
    port: u16,
    handle: NodeHandle,
    book: Arc<Peers>,
    addrs: Arc<RwLock<HashMap<NodeId, Multiaddr>>>,
    dials: Arc<Semaphore>,
}

impl AgentNode {
    /// Starts the node `cfg` describes; `events` gets its telemetry (on the node's task, in
    /// order: send it down the same stream as replies so a reply never overtakes the events
    /// before it). Returns the node and its peer id.
    pub fn start(
        cfg: &proto::Configure,
        events: impl Fn(proto::Telemetry) + Send + Sync + 'static,
    ) -> Result<(AgentNode, String), String> {
        let params: GossipsubParams =
            serde_json::from_str(&cfg.params_json).map_err(|e| format!("params_json: {e}"))?;
        params.validate().map_err(|e| e.to_string())?;
        let port =
            u16::try_from(cfg.port).map_err(|_| format!("port {} out of range", cfg.port))?;
        let node = NodeId(cfg.node);
        let keypair = super::keypair(cfg.seed, node);
        let peer_id = keypair.public().to_peer_id().to_string();
        let book = Arc::new(Peers::default());
        let addrs = Arc::new(RwLock::new(HashMap::new()));
        learn(cfg.seed, port, &book, &addrs, &cfg.peers)?;
        let tcp = addrs.clone();
        let handle = spawn(
            &GossipsubNode::new(params),
            NodeSetup {
                node,
                keypair,
                seed: cfg.seed,
                dilation: 1.0,
                topics: &cfg.topics,
                report: Arc::new(Telemetry(Box::new(events))),
                peers: book.clone(),
                network: Box::new(move |events| Network::tcp(node, port, tcp, events.clone())),
            },
        )
        .map_err(|e| e.to_string())?;
        let this = AgentNode {
            node,
            seed: cfg.seed,
            port,
            handle,
            book,
            addrs,
            dials: Arc::new(Semaphore::new(64)),
        };
        Ok((this, peer_id))
    }

    /// Learns (or updates) peers' addresses.
    pub fn set_peers(&self, peers: &[proto::Peer]) -> Result<(), String> {
        learn(self.seed, self.port, &self.book, &self.addrs, peers)
    }

    fn known(&self, peer: u32) -> Result<NodeId, String> {
        let n = NodeId(peer);
        if n == self.node || self.book.peer(n).is_none() {
            return Err(format!("{n} is not a peer this agent knows"));
        }
        Ok(n)
    }

    /// Dials a peer (the connection shows up as telemetry).
    pub async fn connect(&self, peer: u32) -> Result<(), String> {
        let peer = self.known(peer)?;
        let permit = self
            .dials
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        self.handle
            .connect(peer, permit)
            .await
            .map_err(|e| e.to_string())
    }

    /// Closes the connections to a peer.
    pub async fn disconnect(&self, peer: u32) -> Result<(), String> {
        let peer = self.known(peer)?;
        self.handle
            .disconnect(peer)
            .await
            .map_err(|e| e.to_string())
    }

    /// Subscribes to a topic.
    pub async fn subscribe(&self, topic: String) -> Result<(), String> {
        self.handle
            .topic(&topic, true)
            .await
            .map_err(|e| e.to_string())?
    }

    /// Unsubscribes from a topic.
    pub async fn unsubscribe(&self, topic: String) -> Result<(), String> {
        self.handle
            .topic(&topic, false)
            .await
            .map_err(|e| e.to_string())?
    }

    /// Publishes a message.
    pub async fn publish(&self, msg: u64, topic: String, data: Vec<u8>) -> Result<(), String> {
        self.handle
            .publish(MsgId(msg), &topic, data)
            .await
            .map_err(|e| e.to_string())?
    }
}

/// Notes each peer's id (derived from the seed) and address.
fn learn(
    seed: u64,
    port: u16,
    book: &Peers,
    addrs: &RwLock<HashMap<NodeId, Multiaddr>>,
    peers: &[proto::Peer],
) -> Result<(), String> {
    for p in peers {
        let ip: Ipv4Addr =
            p.ip.parse()
                .map_err(|_| format!("peer {}: bad IPv4 address {:?}", p.node, p.ip))?;
        let n = NodeId(p.node);
        book.insert(super::keypair(seed, n).public().to_peer_id(), n);
        let addr = format!("/ip4/{ip}/tcp/{port}")
            .parse()
            .expect("valid address");
        addrs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n, addr);
    }
    Ok(())
}
