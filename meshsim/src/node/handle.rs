//! The harness's side of a running node: start node software ([`spawn`]) and drive it
//! through its command queue ([`NodeHandle`]).

use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use super::NodeSoftware;
use super::context::{
    COMMAND_QUEUE, Command, Commands, Connect, NodeContext, PublishRequest, TopicRequest,
};
use super::events::{NodeEvents, Peers};
use super::network::Network;
use crate::error::{Error, Result};
use crate::topology::NodeId;
use crate::trace::recorder::Report;
use crate::trace::{EventKind, MsgId};

/// How long a stopped node may take to close its connections before it is cut off.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Everything a node needs to start.
pub(crate) struct NodeSetup<'a> {
    pub node: NodeId,
    pub keypair: Keypair,
    pub seed: u64,
    pub dilation: f64,
    pub topics: &'a [String],
    pub report: Arc<dyn Report>,
    pub peers: Arc<Peers>,
    /// Makes the node's network (its listener registered) once its events exist.
    pub network: Box<dyn FnOnce(&NodeEvents) -> Network + 'a>,
}

/// A running node.
pub(crate) struct NodeHandle {
    node: NodeId,
    /// `None` once the node is being stopped.
    commands: Option<mpsc::Sender<Command>>,
    events: NodeEvents,
    task: JoinHandle<()>,
    /// The answers to the start-up subscriptions, until [`NodeHandle::started`].
    startup: Vec<(String, oneshot::Receiver<std::result::Result<(), String>>)>,
}

/// Starts `software` as one node: records it up, queues its start-up subscriptions, and
/// spawns its task.
pub(crate) fn spawn(software: &dyn NodeSoftware, setup: NodeSetup<'_>) -> Result<NodeHandle> {
    let NodeSetup {
        node,
        keypair,
        seed,
        dilation,
        topics,
        report,
        peers,
        network,
    } = setup;
    peers.insert(keypair.public().to_peer_id(), node);
    let events = NodeEvents::new(node, report.clone(), peers);
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE.max(topics.len()));
    let ctx = NodeContext {
        node,
        keypair,
        seed,
        dilation,
        network: network(&events),
        commands: Commands(rx),
        events: events.clone(),
    };
    let span = tracing::info_span!(target: "meshsim", "node", name = %node);
    let task = span
        .in_scope(|| software.start(ctx))
        .map_err(|e| Error::Node {
            node,
            reason: format!("{} did not start: {e}", software.info()),
        })?;
    report.record(Some(node), EventKind::NodeUp);
    let mut startup = Vec::new();
    for topic in topics {
        let (reply, answer) = oneshot::channel();
        let _ = tx.try_send(Command::Subscribe(TopicRequest {
            topic: topic.clone(),
            subscribe: true,
            reply: Some(reply),
            events: events.clone(),
        }));
        startup.push((topic.clone(), answer));
    }
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let task = tokio::spawn(task.instrument(span).with_subscriber(dispatch));
    Ok(NodeHandle {
        node,
        commands: Some(tx),
        events,
        task,
        startup,
    })
}

impl NodeHandle {
    /// Waits until the node has taken its start-up subscriptions.
    pub(crate) async fn started(&mut self) -> Result<()> {
        for (topic, answer) in std::mem::take(&mut self.startup) {
            answer
                .await
                .map_err(|_| self.ended())?
                .map_err(|reason| Error::Node {
                    node: self.node,
                    reason: format!("cannot subscribe to {topic:?} at start: {reason}"),
                })?;
        }
        Ok(())
    }

    fn ended(&self) -> Error {
        Error::Node {
            node: self.node,
            reason: "the node's task has ended".into(),
        }
    }

    async fn send(&self, cmd: Command) -> Result<()> {
        let commands = self.commands.as_ref().ok_or_else(|| self.ended())?;
        commands.send(cmd).await.map_err(|_| self.ended())
    }

    /// Asks the node to connect to `peer`; `permit` is released when the attempt is over.
    pub(crate) async fn connect(&self, peer: NodeId, permit: OwnedSemaphorePermit) -> Result<()> {
        self.send(Command::Connect(Connect {
            peer,
            permit: Some(permit),
        }))
        .await
    }

    /// Asks the node to close its connections to `peer`.
    pub(crate) async fn disconnect(&self, peer: NodeId) -> Result<()> {
        self.send(Command::Disconnect(peer)).await
    }

    /// Subscribes or unsubscribes; the inner result is the node's answer.
    pub(crate) async fn topic(
        &self,
        topic: &str,
        subscribe: bool,
    ) -> Result<std::result::Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        let req = TopicRequest {
            topic: topic.into(),
            subscribe,
            reply: Some(tx),
            events: self.events.clone(),
        };
        self.send(if subscribe {
            Command::Subscribe(req)
        } else {
            Command::Unsubscribe(req)
        })
        .await?;
        rx.await.map_err(|_| self.ended())
    }

    /// Publishes; the inner result is the node's answer.
    pub(crate) async fn publish(
        &self,
        msg: MsgId,
        topic: &str,
        data: Vec<u8>,
    ) -> Result<std::result::Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Publish(PublishRequest {
            msg,
            topic: topic.into(),
            size: data.len(),
            data,
            reply: Some(tx),
            events: self.events.clone(),
        }))
        .await?;
        rx.await.map_err(|_| self.ended())
    }

    /// Stops the node gracefully: its command queue closes and it has [`STOP_GRACE`] (times
    /// `dilation`) to close its connections and end before it is cut off.
    pub(crate) async fn stop(mut self, dilation: f64) {
        self.commands = None;
        let grace = super::context::dilate(STOP_GRACE, dilation);
        if crate::time::timeout(grace, &mut self.task).await.is_err() {
            self.kill().await;
        }
    }

    /// Ends the node at once, as a crash would.
    pub(crate) async fn kill(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
