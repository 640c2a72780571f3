//! Flooding, a gossip protocol that is not libp2p, on meshsim's byte-stream API.
//!
//! Each message travels as a frame (a 4-byte big-endian length, then the payload) on plain
//! connections between overlay neighbours. A node that receives a message for the first time
//! forwards it to every neighbour but the one it came from; copies it has seen are counted
//! as duplicates and dropped. Topics are not part of the protocol: every node floods every
//! message.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use meshsim::node::{
    BoxError, Command, Connection, NodeContext, NodeEvents, NodeSoftware, NodeTask, SoftwareInfo,
};
use meshsim::{MsgId, NodeId};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The largest frame a node accepts.
const MAX_FRAME: usize = 16 << 20;

/// Flooding node software: hand it to [`meshsim::Sim::with_software`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Flood {
    busy: Duration,
}

impl Flood {
    /// Flooding that does no work on a message.
    pub fn new() -> Self {
        Flood::default()
    }

    /// Each node spends `busy` of CPU on every frame it receives before reading the next,
    /// blocking its thread as a node validating a block does. What arrives meanwhile is taken
    /// late, and meshsim's links measure that lag.
    pub fn with_busy(mut self, busy: Duration) -> Self {
        self.busy = busy;
        self
    }
}

impl NodeSoftware for Flood {
    fn info(&self) -> SoftwareInfo {
        SoftwareInfo::new("flood", env!("CARGO_PKG_VERSION"))
            .with_params(serde_json::json!({ "busy_ns": self.busy.as_nanos() as u64 }))
    }

    fn start(&self, ctx: NodeContext) -> Result<NodeTask, BoxError> {
        let listener = ctx.network.listen()?;
        Ok(Box::pin(run(ctx, listener, self.busy)))
    }
}

/// One neighbour: frames queued for it, and the task reading from it.
struct Neighbour {
    outbox: mpsc::UnboundedSender<Arc<[u8]>>,
    reader: JoinHandle<()>,
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn run(ctx: NodeContext, mut listener: meshsim::node::Listener, busy: Duration) {
    let NodeContext {
        network,
        mut commands,
        events,
        ..
    } = ctx;
    let mut neighbours: HashMap<NodeId, Neighbour> = HashMap::new();
    // Frames read from any neighbour.
    let (inbox_tx, mut inbox) = mpsc::unbounded_channel::<(NodeId, Arc<[u8]>)>();
    // Dials in progress. Polled by this loop, not spawned: a connection counts as open (and
    // the node as connected) when its dial completes, and this loop takes it on at once,
    // before it can handle a publish that expects it.
    let mut dials = FuturesUnordered::new();
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                // The harness is done with this node: dropping the neighbours closes every
                // connection (peers read the end of the stream).
                None => break,
                Some(Command::Connect(connect)) => {
                    let network = &network;
                    dials.push(async move {
                        // Holding `connect` until the dial is over keeps the harness's cap
                        // on dials in flight.
                        let result = network.dial(connect.peer()).await;
                        (connect, result)
                    });
                }
                Some(Command::Disconnect(peer)) => {
                    neighbours.remove(&peer);
                }
                Some(Command::Publish(publish)) => {
                    let frame: Arc<[u8]> = publish.data().into();
                    for neighbour in neighbours.values() {
                        let _ = neighbour.outbox.send(frame.clone());
                    }
                    publish.done(Ok(()));
                }
                Some(Command::Subscribe(request) | Command::Unsubscribe(request)) => {
                    request.done(Ok(()));
                }
                Some(other) => tracing::debug!("flood ignores {other:?}"),
            },
            Some((connect, result)) = dials.next() => match result {
                Ok(conn) => add(&mut neighbours, conn, &events, &inbox_tx, busy),
                Err(e) => tracing::debug!("dial {}: {e}", connect.peer()),
            },
            Some(conn) = listener.accept() => {
                add(&mut neighbours, conn, &events, &inbox_tx, busy);
            }
            Some((from, frame)) = inbox.recv() => {
                let Some(msg) = MsgId::from_payload(&frame) else {
                    continue;
                };
                if events.received(msg, from) {
                    for (&peer, neighbour) in &neighbours {
                        if peer != from {
                            let _ = neighbour.outbox.send(frame.clone());
                        }
                    }
                }
            }
        }
    }
}

/// Starts reading from and writing to a new connection.
fn add(
    neighbours: &mut HashMap<NodeId, Neighbour>,
    conn: Connection,
    events: &NodeEvents,
    inbox: &mpsc::UnboundedSender<(NodeId, Arc<[u8]>)>,
    busy: Duration,
) {
    let peer = conn.peer();
    let (read, write) = tokio::io::split(conn);
    let (outbox, queued) = mpsc::unbounded_channel();
    tokio::spawn(write_frames(write, queued));
    let reader = tokio::spawn(read_frames(read, peer, events.clone(), inbox.clone(), busy));
    // A second connection to the same peer (both dialled at once) replaces the first.
    neighbours.insert(peer, Neighbour { outbox, reader });
}

async fn write_frames(
    mut write: WriteHalf<Connection>,
    mut queued: mpsc::UnboundedReceiver<Arc<[u8]>>,
) {
    while let Some(frame) = queued.recv().await {
        let len = (frame.len() as u32).to_be_bytes();
        if write.write_all(&len).await.is_err() || write.write_all(&frame).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// Reads frames until the peer closes the connection; notes in the trace how it ended.
async fn read_frames(
    mut read: ReadHalf<Connection>,
    peer: NodeId,
    events: NodeEvents,
    inbox: mpsc::UnboundedSender<(NodeId, Arc<[u8]>)>,
    busy: Duration,
) {
    let ended = loop {
        match read_frame(&mut read).await {
            Ok(frame) => {
                if !busy.is_zero() {
                    std::thread::sleep(busy);
                }
                if inbox.send((peer, frame)).is_err() {
                    return;
                }
            }
            Err(e) => break e,
        }
    };
    match ended.kind() {
        io::ErrorKind::UnexpectedEof => events.note(format!("flood: {peer} closed the connection")),
        io::ErrorKind::ConnectionReset => {
            events.note(format!("flood: {peer} reset the connection"))
        }
        _ => events.note(format!("flood: connection to {peer} failed: {ended}")),
    }
}

async fn read_frame(read: &mut ReadHalf<Connection>) -> io::Result<Arc<[u8]>> {
    let mut len = [0u8; 4];
    read.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut frame = vec![0; len];
    read.read_exact(&mut frame).await?;
    Ok(frame.into())
}
