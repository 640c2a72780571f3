//! A user-defined rust-libp2p behaviour: gossipsub with an application validation rule,
//! next to identify, the way a blockchain client composes its network.
//!
//! Messages whose content (after meshsim's 8-byte message number) starts with
//! [`REJECT_MARKER`] are rejected by every node that receives them, so gossipsub does not
//! forward them: they stop at the first hop. Every other message is accepted and spreads.
//! Each node notes in the trace when identify tells it about a peer.

use std::time::Duration;

use libp2p::gossipsub::{self, MessageAcceptance, ValidationMode};
use libp2p::identify;
use libp2p::swarm::NetworkBehaviour;
use meshsim::node::{Gossipsub, Libp2p, Libp2pBehaviour, NodeEvents, Readiness};

/// Content that makes a message invalid.
pub const REJECT_MARKER: &[u8] = b"INVALID";

/// The protocol version identify announces.
pub const PROTOCOL_VERSION: &str = "/validated-gossip/1.0.0";

/// Gossipsub with validation, and identify.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub struct Validated {
    /// meshsim's observed gossipsub: every copy, graft and prune lands in the trace.
    pub gossipsub: Gossipsub,
    /// Peers tell each other who they are.
    pub identify: identify::Behaviour,
}

impl Libp2pBehaviour for Validated {
    fn gossipsub(&mut self) -> Option<&mut Gossipsub> {
        Some(&mut self.gossipsub)
    }

    fn on_event(&mut self, event: ValidatedEvent, events: &NodeEvents) {
        match event {
            ValidatedEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let content = message.data.get(8..).unwrap_or_default();
                let verdict = if content.starts_with(REJECT_MARKER) {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Accept
                };
                self.gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    verdict,
                );
            }
            ValidatedEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if let Some(peer) = events.peers().node(&peer_id) {
                    events.note(format!("identified {peer}: {}", info.protocol_version));
                }
            }
            _ => {}
        }
    }
}

/// The node software: every node runs [`Validated`], gossipsub with a 100 ms heartbeat (in
/// the network's time), ready once its mesh has formed.
pub fn software() -> Libp2p<Validated> {
    Libp2p::new("validated-gossip", env!("CARGO_PKG_VERSION"), |ctx| {
        let config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(ctx.dilate(Duration::from_millis(100)))
            .validation_mode(ValidationMode::Strict)
            .validate_messages()
            .build()?;
        let identify = identify::Behaviour::new(identify::Config::new(
            PROTOCOL_VERSION.into(),
            ctx.keypair().public(),
        ));
        Ok(Validated {
            gossipsub: ctx.gossipsub(config)?,
            identify,
        })
    })
    .with_readiness(Readiness::Mesh { d_lo: 5 })
    .with_params(serde_json::json!({ "heartbeat_ms": 100, "reject_marker": "INVALID" }))
}
