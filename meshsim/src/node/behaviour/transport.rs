//! A libp2p `Transport` over a node's [`Network`](crate::node::Network): node `n` listens on
//! `/memory/<n + 1>`, and a dial opens a connection over the backend's links.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{self, BoxFuture, Ready};
use libp2p::core::multiaddr::{Multiaddr, Protocol};
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};

use crate::node::network::{ByteStream, Links, Listening};
use crate::topology::NodeId;

/// The address node `n` listens on.
pub(crate) fn addr_of(n: NodeId) -> Multiaddr {
    Multiaddr::empty().with(Protocol::Memory(n.0 as u64 + 1))
}

fn node_of(addr: &Multiaddr) -> Option<NodeId> {
    let mut it = addr.iter();
    match (it.next(), it.next(), it.next()) {
        (Some(Protocol::Memory(port)), None | Some(Protocol::P2p(_)), None) if port >= 1 => {
            u32::try_from(port - 1).ok().map(NodeId)
        }
        _ => None,
    }
}

/// A node's transport. The node's listener was registered when it started; `listen_on`
/// takes it (once).
pub(crate) struct SimTransport {
    links: Arc<dyn Links>,
    me: NodeId,
    registered: Option<Listening>,
    listener: Option<(ListenerId, Listening)>,
    events: VecDeque<TransportEvent<Ready<Result<ByteStream, io::Error>>, io::Error>>,
}

impl SimTransport {
    pub(crate) fn new(links: Arc<dyn Links>, me: NodeId, registered: Option<Listening>) -> Self {
        SimTransport {
            links,
            me,
            registered,
            listener: None,
            events: VecDeque::new(),
        }
    }
}

impl Transport for SimTransport {
    type Output = ByteStream;
    type Error = io::Error;
    type ListenerUpgrade = Ready<Result<ByteStream, io::Error>>;
    type Dial = BoxFuture<'static, Result<ByteStream, io::Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<io::Error>> {
        if node_of(&addr) != Some(self.me) || self.listener.is_some() {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        let Some(listening) = self.registered.take() else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        self.listener = Some((id, listening));
        self.events.push_back(TransportEvent::NewAddress {
            listener_id: id,
            listen_addr: addr,
        });
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        match &self.listener {
            Some((l, _)) if *l == id => {
                self.listener = None;
                self.events.push_back(TransportEvent::ListenerClosed {
                    listener_id: id,
                    reason: Ok(()),
                });
                true
            }
            _ => false,
        }
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<io::Error>> {
        let Some(to) = node_of(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let (stream, handshake) = self
            .links
            .connect(self.me, to)
            .map_err(TransportError::Other)?;
        // The TCP handshake: one round trip before the dialer may send.
        Ok(Box::pin(async move {
            crate::time::sleep(handshake).await;
            Ok(stream)
        }))
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, io::Error>> {
        let this = self.get_mut();
        if let Some(ev) = this.events.pop_front() {
            return Poll::Ready(ev);
        }
        if let Some((id, l)) = &mut this.listener
            && let Poll::Ready(Some((stream, from))) = l.incoming.poll_recv(cx)
        {
            return Poll::Ready(TransportEvent::Incoming {
                listener_id: *id,
                upgrade: future::ready(Ok(stream)),
                local_addr: addr_of(this.me),
                send_back_addr: addr_of(from),
            });
        }
        Poll::Pending
    }
}
