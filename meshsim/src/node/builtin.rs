//! meshsim's built-in node: rust-libp2p gossipsub alone, every parameter settable. It is
//! the [`Libp2p`](super::Libp2p) family's simplest member and the default node software.

use libp2p::gossipsub::MessageAuthenticity;

use super::behaviour::{Gossipsub, Security, start_swarm};
use super::context::{NodeContext, Readiness};
use super::{BoxError, GossipsubParams, NodeSoftware, NodeTask};
use crate::trace::SoftwareInfo;

/// The built-in node software: a rust-libp2p 0.57 gossipsub 0.50 node (noise or plaintext,
/// yamux) with [`GossipsubParams`], ready by gossipsub's mesh rule. What
/// [`Sim`](crate::Sim) runs unless told otherwise; [`Sim::with_params`](crate::Sim::with_params)
/// and [`Sim::with_security`](crate::Sim::with_security) configure it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GossipsubNode {
    params: GossipsubParams,
    security: Security,
}

impl GossipsubNode {
    /// The built-in node with these parameters (checked when a simulation starts).
    pub fn new(params: GossipsubParams) -> Self {
        GossipsubNode {
            params,
            security: Security::Noise,
        }
    }

    /// How its connections are secured (default [`Security::Noise`]).
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Its parameters.
    pub fn params(&self) -> &GossipsubParams {
        &self.params
    }

    /// Its connection security.
    pub fn security(&self) -> Security {
        self.security
    }
}

impl NodeSoftware for GossipsubNode {
    fn info(&self) -> SoftwareInfo {
        SoftwareInfo::new(
            "rust-libp2p",
            format!("0.57 gossipsub 0.50 ({}, yamux)", self.security.name()),
        )
        .with_params(&self.params)
    }

    fn readiness(&self) -> Readiness {
        Readiness::Mesh {
            d_lo: self.params.d_lo,
        }
    }

    fn max_message_size(&self) -> Option<usize> {
        Some(self.params.max_transmit_size)
    }

    fn check(&self) -> Result<(), crate::Error> {
        Ok(self.params.validate()?)
    }

    fn start(&self, ctx: NodeContext) -> Result<NodeTask, BoxError> {
        let params = self.params.dilated(ctx.dilation);
        let mut gossipsub = Gossipsub::new(
            ctx.events.clone(),
            ctx.keypair.public().to_peer_id(),
            MessageAuthenticity::Signed(ctx.keypair.clone()),
            params.to_config()?,
        )
        .map_err(|e| format!("gossipsub refused to start: {e}"))?;
        if let Some(delay) = params.validation_delay {
            gossipsub = gossipsub.with_validation_delay(delay);
        }
        start_swarm(ctx, gossipsub, self.security)
    }
}
