//! The network a node is given: connections to peers as plain byte streams, shaped by the
//! backend's links ([`Network`], [`Listener`], [`Connection`]).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::Multiaddr;
use tokio::sync::mpsc;

use super::events::NodeEvents;
use crate::topology::NodeId;

/// A byte stream between two nodes.
pub(crate) trait RawStream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> RawStream for T {}

/// A boxed [`RawStream`].
pub(crate) type ByteStream = Box<dyn RawStream>;

/// Incoming connections of one node, with the dialing node.
pub(crate) type Incoming = mpsc::Receiver<(ByteStream, NodeId)>;

/// How many connections may wait for a node to accept them, as a TCP listen backlog: beyond
/// it a dial is refused, so node software that never accepts cannot make the queue grow.
pub const LISTEN_BACKLOG: usize = 4096;

/// What a backend offers node software: listening and dialing over its links.
pub(crate) trait Links: Send + Sync {
    /// Registers `n`'s listener; the token removes only this registration.
    fn listen(&self, n: NodeId) -> (u64, Incoming);
    /// Removes `n`'s listener if it is still the one registered with `token`.
    fn unlisten(&self, n: NodeId, token: u64);
    /// Opens a connection `from -> to`: the dialer's end, and how long the connection takes
    /// to open (one round trip) before the dialer may use it.
    fn connect(&self, from: NodeId, to: NodeId) -> io::Result<(ByteStream, Duration)>;
}

/// A registered listener; unregisters itself when dropped.
pub(crate) struct Listening {
    links: Arc<dyn Links>,
    me: NodeId,
    token: u64,
    pub(crate) incoming: Incoming,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.links.unlisten(self.me, self.token);
    }
}

/// How a node reaches its peers.
pub(crate) enum NetKind {
    /// The backend's simulated links; the listener is registered from the start.
    Sim {
        links: Arc<dyn Links>,
        listener: Mutex<Option<Listening>>,
    },
    /// Real TCP (inside a container): listen on `port`, dial the addresses in `addrs`.
    Tcp {
        port: u16,
        addrs: Arc<RwLock<HashMap<NodeId, Multiaddr>>>,
    },
}

/// The network one node is given. In process, every connection is a pair of simulated
/// links with the topology's shape in each direction (latency, jitter, loss, bandwidth),
/// partitions and the lag measurement; the node is listening from the moment it starts.
///
/// Connections opened with [`Network::dial`] and [`Listener::accept`] are recorded as the
/// node's peer connections (connected when the first to a peer opens, disconnected when the
/// last one is dropped). The default readiness rule counts a node ready from that moment,
/// so a test may publish right after: take a new connection into use before handling the
/// next [`Command`](super::Command) (poll dials from the node's own loop rather than in
/// spawned tasks that hand connections back later).
pub struct Network {
    me: NodeId,
    pub(crate) kind: NetKind,
    events: NodeEvents,
    open: Arc<Mutex<HashMap<NodeId, usize>>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("node", &self.me)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// `me`'s view of simulated links, its listener registered now.
    pub(crate) fn simulated(me: NodeId, links: Arc<dyn Links>, events: NodeEvents) -> Self {
        let (token, incoming) = links.listen(me);
        let listening = Listening {
            links: links.clone(),
            me,
            token,
            incoming,
        };
        Network {
            me,
            kind: NetKind::Sim {
                links,
                listener: Mutex::new(Some(listening)),
            },
            events,
            open: Arc::default(),
        }
    }

    /// Real TCP inside a container.
    pub(crate) fn tcp(
        me: NodeId,
        port: u16,
        addrs: Arc<RwLock<HashMap<NodeId, Multiaddr>>>,
        events: NodeEvents,
    ) -> Self {
        Network {
            me,
            kind: NetKind::Tcp { port, addrs },
            events,
            open: Arc::default(),
        }
    }

    /// The node this network belongs to.
    pub fn node(&self) -> NodeId {
        self.me
    }

    /// Takes the registered listener (once).
    pub(crate) fn take_listener(&self) -> Option<Listening> {
        match &self.kind {
            NetKind::Sim { listener, .. } => {
                listener.lock().unwrap_or_else(|e| e.into_inner()).take()
            }
            NetKind::Tcp { .. } => None,
        }
    }

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "byte-stream connections are offered on the in-process backend only",
        )
    }

    /// The node's listener: every connection a peer opens to it. Can be taken once.
    pub fn listen(&self) -> io::Result<Listener> {
        let listening = match &self.kind {
            NetKind::Sim { .. } => self.take_listener().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}'s listener was already taken", self.me),
                )
            })?,
            NetKind::Tcp { .. } => return Err(Self::unsupported()),
        };
        Ok(Listener {
            listening,
            events: self.events.clone(),
            open: self.open.clone(),
        })
    }

    /// Opens a connection to `peer`; it is usable after one round trip, as a TCP connection
    /// is. Fails when the peer is not running, is partitioned away, or has no route.
    pub async fn dial(&self, peer: NodeId) -> io::Result<Connection> {
        let NetKind::Sim { links, .. } = &self.kind else {
            return Err(Self::unsupported());
        };
        let (stream, handshake) = links.connect(self.me, peer)?;
        crate::time::sleep(handshake).await;
        Ok(Connection::new(
            stream,
            peer,
            self.events.clone(),
            self.open.clone(),
        ))
    }
}

/// Connections peers open to a node.
pub struct Listener {
    listening: Listening,
    events: NodeEvents,
    open: Arc<Mutex<HashMap<NodeId, usize>>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("node", &self.listening.me)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// The next connection a peer opened; `None` once the network is gone.
    pub async fn accept(&mut self) -> Option<Connection> {
        let (stream, peer) = self.listening.incoming.recv().await?;
        Some(Connection::new(
            stream,
            peer,
            self.events.clone(),
            self.open.clone(),
        ))
    }
}

/// A connection to a peer: an ordered, reliable byte stream (`futures` and `tokio`
/// `AsyncRead + AsyncWrite`). Dropping it closes it: the peer reads the end of the stream
/// one latency later. A peer that was killed
/// ([`Simulation::kill_node`](crate::Simulation::kill_node)) resets it instead: reads fail
/// with `ConnectionReset`.
pub struct Connection {
    stream: ByteStream,
    peer: NodeId,
    events: NodeEvents,
    open: Arc<Mutex<HashMap<NodeId, usize>>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("node", &self.events.node())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn new(
        stream: ByteStream,
        peer: NodeId,
        events: NodeEvents,
        open: Arc<Mutex<HashMap<NodeId, usize>>>,
    ) -> Self {
        let first = {
            let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
            let n = open.entry(peer).or_default();
            *n += 1;
            *n == 1
        };
        if first {
            events.connected(peer);
        }
        Connection {
            stream,
            peer,
            events,
            open,
        }
    }

    /// The node at the other end.
    pub fn peer(&self) -> NodeId {
        self.peer
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let last = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let n = open.entry(self.peer).or_default();
            *n = n.saturating_sub(1);
            let last = *n == 0;
            if last {
                open.remove(&self.peer);
            }
            last
        };
        if last {
            self.events.disconnected(self.peer);
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}

impl tokio::io::AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = std::task::ready!(AsyncRead::poll_read(self, cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(self, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(self, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_close(self, cx)
    }
}
