//! Gossipsub parameters of the built-in node: most knobs of rust-libp2p's `ConfigBuilder`,
//! checked before libp2p sees them (libp2p's own `build()` does not check
//! `D_lo <= D <= D_hi`). For the knobs not here (per-topic sizes, protocol ids, floodsub
//! support, ...) and peer scoring, run gossipsub as your own node software
//! ([`Libp2p`](super::Libp2p)), with any `ConfigBuilder`.

use std::time::Duration;

use libp2p::gossipsub;
use serde::{Deserialize, Serialize};

use crate::error::ParamsError;
use crate::trace::nanos;

/// How gossipsub identifies a message (and so what counts as a duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageIdFn {
    /// libp2p's default: the source peer id followed by the sequence number.
    #[default]
    SourceSeqno,
    /// The first 8 bytes of the data, as libp2p's gossipsub-interop test plans use.
    /// meshsim payloads start with their message number, so ids are unique.
    FirstEightBytes,
    /// The SHA-256 of the whole data (stable across Rust and meshsim releases, so other
    /// implementations can compute it too): identical payloads are the same message.
    ContentHash,
}

/// gossipsub's validation mode (see `libp2p::gossipsub::ValidationMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// Signatures, sequence numbers and sources required and checked (libp2p's default).
    #[default]
    Strict,
    /// Checked when present.
    Permissive,
    /// Must be absent; messages are anonymous.
    Anonymous,
    /// Nothing checked.
    None,
}

/// Every gossipsub parameter. The defaults are rust-libp2p 0.57's (gossipsub 0.50).
///
/// Names follow the gossipsub spec where it has one (`d`, `d_lo`, ...) and
/// libp2p's `ConfigBuilder` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GossipsubParams {
    /// D: target mesh degree (`mesh_n`).
    pub d: usize,
    /// D_lo: graft more peers below this (`mesh_n_low`).
    pub d_lo: usize,
    /// D_hi: prune peers above this (`mesh_n_high`).
    pub d_hi: usize,
    /// D_out: minimum outbound peers in the mesh (`mesh_outbound_min`).
    pub d_out: usize,
    /// D_lazy: peers to gossip IHAVE to (`gossip_lazy`).
    pub d_lazy: usize,
    /// Fraction of non-mesh peers to gossip to (`gossip_factor`).
    pub gossip_factor: f64,
    /// Time between heartbeats.
    #[serde(with = "nanos")]
    pub heartbeat_interval: Duration,
    /// Delay before the first heartbeat.
    #[serde(with = "nanos")]
    pub heartbeat_initial_delay: Duration,
    /// How long fanout state is kept.
    #[serde(with = "nanos")]
    pub fanout_ttl: Duration,
    /// Heartbeats of message history kept (`history_length`).
    pub history_length: usize,
    /// Heartbeats of history gossiped in IHAVE (`history_gossip`).
    pub history_gossip: usize,
    /// How long seen message ids are remembered.
    #[serde(with = "nanos")]
    pub duplicate_cache_time: Duration,
    /// Publish to every subscribed peer, not just the mesh.
    pub flood_publish: bool,
    /// Signature and field checks.
    pub validation: Validation,
    /// When set, every received message is held for this long before the node accepts it
    /// (application-level validation, like gossipsub-interop's `setTopicValidationDelay`).
    #[serde(with = "nanos::option", default)]
    pub validation_delay: Option<Duration>,
    /// How message ids are computed.
    pub message_id: MessageIdFn,
    /// Largest message accepted, in bytes.
    pub max_transmit_size: usize,
    /// Messages larger than this trigger IDONTWANT to mesh peers.
    pub idontwant_message_size_threshold: usize,
    /// Send IDONTWANT for our own published messages too.
    pub idontwant_on_publish: bool,
    /// Backoff after a PRUNE.
    #[serde(with = "nanos")]
    pub prune_backoff: Duration,
    /// Backoff after unsubscribing.
    #[serde(with = "nanos")]
    pub unsubscribe_backoff: Duration,
    /// Peer exchange on PRUNE.
    pub do_px: bool,
    /// Peers offered in peer exchange.
    pub prune_peers: usize,
    /// Heartbeats between opportunistic grafts.
    pub opportunistic_graft_ticks: u64,
    /// Peers grafted opportunistically.
    pub opportunistic_graft_peers: usize,
    /// How often a message may be retransmitted via IWANT.
    pub gossip_retransmission: u32,
    /// Message ids per IHAVE per heartbeat.
    pub max_ihave_messages: usize,
    /// Wait for an IWANT answer before penalising.
    #[serde(with = "nanos")]
    pub iwant_followup_time: Duration,
    /// Accept messages we published coming back.
    pub allow_self_origin: bool,
    /// Queue length per connection handler.
    pub connection_handler_queue_len: usize,
    /// Published messages not sent within this are dropped.
    #[serde(with = "nanos")]
    pub publish_queue_duration: Duration,
    /// Forwarded messages not sent within this are dropped.
    #[serde(with = "nanos")]
    pub forward_queue_duration: Duration,
    /// Largest control message, in bytes.
    pub max_control_message_size: usize,
}

impl Default for GossipsubParams {
    fn default() -> Self {
        let c = gossipsub::Config::default();
        GossipsubParams {
            d: c.mesh_n(),
            d_lo: c.mesh_n_low(),
            d_hi: c.mesh_n_high(),
            d_out: c.mesh_outbound_min(),
            d_lazy: c.gossip_lazy(),
            gossip_factor: c.gossip_factor(),
            heartbeat_interval: c.heartbeat_interval(),
            heartbeat_initial_delay: c.heartbeat_initial_delay(),
            fanout_ttl: c.fanout_ttl(),
            history_length: c.history_length(),
            history_gossip: c.history_gossip(),
            duplicate_cache_time: c.duplicate_cache_time(),
            flood_publish: c.flood_publish(),
            validation: Validation::Strict,
            validation_delay: None,
            message_id: MessageIdFn::SourceSeqno,
            max_transmit_size: c.max_transmit_size(),
            idontwant_message_size_threshold: c.idontwant_message_size_threshold(),
            idontwant_on_publish: c.idontwant_on_publish(),
            prune_backoff: c.prune_backoff(),
            unsubscribe_backoff: c.unsubscribe_backoff(),
            do_px: c.do_px(),
            prune_peers: c.prune_peers(),
            opportunistic_graft_ticks: c.opportunistic_graft_ticks(),
            opportunistic_graft_peers: c.opportunistic_graft_peers(),
            gossip_retransmission: c.gossip_retransimission(),
            max_ihave_messages: c.max_ihave_messages_heartbeat(),
            iwant_followup_time: c.iwant_followup_time(),
            allow_self_origin: c.allow_self_origin(),
            connection_handler_queue_len: c.connection_handler_queue_len(),
            publish_queue_duration: c.publish_queue_duration(),
            forward_queue_duration: c.forward_queue_duration(),
            max_control_message_size: c.max_control_message_size(),
        }
    }
}

impl GossipsubParams {
    /// Sets D, D_lo and D_hi together (D_out is lowered if it would exceed D_lo or D/2).
    pub fn with_degrees(mut self, d_lo: usize, d: usize, d_hi: usize) -> Self {
        self.d_lo = d_lo;
        self.d = d;
        self.d_hi = d_hi;
        self.d_out = self.d_out.min(d_lo).min(d / 2);
        self
    }

    /// The same parameters with every duration multiplied by `k` (time dilation: see
    /// [`Sim::with_dilation`](crate::Sim::with_dilation)). Counts (degrees, history lengths,
    /// heartbeat ticks) stay as they are, so they keep their meaning in heartbeats.
    pub(crate) fn dilated(&self, k: f64) -> Self {
        let d = |x: Duration| super::context::dilate(x, k);
        // Every field by name, no `..`: a field added later does not compile here until it
        // is sorted into durations (scaled) or the rest (kept).
        let GossipsubParams {
            d: mesh_n,
            d_lo,
            d_hi,
            d_out,
            d_lazy,
            gossip_factor,
            heartbeat_interval,
            heartbeat_initial_delay,
            fanout_ttl,
            history_length,
            history_gossip,
            duplicate_cache_time,
            flood_publish,
            validation,
            validation_delay,
            message_id,
            max_transmit_size,
            idontwant_message_size_threshold,
            idontwant_on_publish,
            prune_backoff,
            unsubscribe_backoff,
            do_px,
            prune_peers,
            opportunistic_graft_ticks,
            opportunistic_graft_peers,
            gossip_retransmission,
            max_ihave_messages,
            iwant_followup_time,
            allow_self_origin,
            connection_handler_queue_len,
            publish_queue_duration,
            forward_queue_duration,
            max_control_message_size,
        } = self.clone();
        GossipsubParams {
            d: mesh_n,
            d_lo,
            d_hi,
            d_out,
            d_lazy,
            gossip_factor,
            heartbeat_interval: d(heartbeat_interval),
            heartbeat_initial_delay: d(heartbeat_initial_delay),
            fanout_ttl: d(fanout_ttl),
            history_length,
            history_gossip,
            duplicate_cache_time: d(duplicate_cache_time),
            flood_publish,
            validation,
            validation_delay: validation_delay.map(d),
            message_id,
            max_transmit_size,
            idontwant_message_size_threshold,
            idontwant_on_publish,
            prune_backoff: d(prune_backoff),
            unsubscribe_backoff: d(unsubscribe_backoff),
            do_px,
            prune_peers,
            opportunistic_graft_ticks,
            opportunistic_graft_peers,
            gossip_retransmission,
            max_ihave_messages,
            iwant_followup_time: d(iwant_followup_time),
            allow_self_origin,
            connection_handler_queue_len,
            publish_queue_duration: d(publish_queue_duration),
            forward_queue_duration: d(forward_queue_duration),
            max_control_message_size,
        }
    }

    /// Checks every value, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if !(self.d_out <= self.d_lo
            && self.d_lo <= self.d
            && self.d <= self.d_hi
            && self.d_out * 2 <= self.d)
            || self.d == 0
        {
            return Err(ParamsError::MeshDegrees {
                d_out: self.d_out,
                d_lo: self.d_lo,
                d: self.d,
                d_hi: self.d_hi,
            });
        }
        let invalid = |name, value: String, why| Err(ParamsError::Invalid { name, value, why });
        if !(self.gossip_factor.is_finite() && (0.0..=1.0).contains(&self.gossip_factor)) {
            return invalid(
                "gossip_factor",
                self.gossip_factor.to_string(),
                "must be in [0, 1]",
            );
        }
        if self.heartbeat_interval.is_zero() {
            return invalid("heartbeat_interval", "0s".into(), "must be positive");
        }
        if self.history_length < self.history_gossip {
            return invalid(
                "history_gossip",
                self.history_gossip.to_string(),
                "must not exceed history_length",
            );
        }
        if self.history_gossip == 0 && self.history_length == 0 {
            return invalid("history_length", "0".into(), "must be at least 1");
        }
        if self.max_transmit_size < 64 {
            return invalid(
                "max_transmit_size",
                self.max_transmit_size.to_string(),
                "must be at least 64 bytes",
            );
        }
        if self.connection_handler_queue_len == 0 {
            return invalid(
                "connection_handler_queue_len",
                "0".into(),
                "must be positive",
            );
        }
        Ok(())
    }

    /// Builds libp2p's config, after [`GossipsubParams::validate`].
    pub(crate) fn to_config(&self) -> Result<gossipsub::Config, ParamsError> {
        self.validate()?;
        let mut b = gossipsub::ConfigBuilder::default();
        b.mesh_n(self.d)
            .mesh_n_low(self.d_lo)
            .mesh_n_high(self.d_hi)
            .mesh_outbound_min(self.d_out)
            .gossip_lazy(self.d_lazy)
            .gossip_factor(self.gossip_factor)
            .heartbeat_interval(self.heartbeat_interval)
            .heartbeat_initial_delay(self.heartbeat_initial_delay)
            .fanout_ttl(self.fanout_ttl)
            .history_length(self.history_length)
            .history_gossip(self.history_gossip)
            .duplicate_cache_time(self.duplicate_cache_time)
            .flood_publish(self.flood_publish)
            .validation_mode(match self.validation {
                Validation::Strict => gossipsub::ValidationMode::Strict,
                Validation::Permissive => gossipsub::ValidationMode::Permissive,
                Validation::Anonymous => gossipsub::ValidationMode::Anonymous,
                Validation::None => gossipsub::ValidationMode::None,
            })
            .max_transmit_size(self.max_transmit_size)
            .idontwant_message_size_threshold(self.idontwant_message_size_threshold)
            .idontwant_on_publish(self.idontwant_on_publish)
            .prune_backoff(self.prune_backoff)
            .unsubscribe_backoff(self.unsubscribe_backoff)
            .prune_peers(self.prune_peers)
            .opportunistic_graft_ticks(self.opportunistic_graft_ticks)
            .opportunistic_graft_peers(self.opportunistic_graft_peers)
            .gossip_retransimission(self.gossip_retransmission)
            .max_ihave_messages_heartbeat(self.max_ihave_messages)
            .iwant_followup_time(self.iwant_followup_time)
            .allow_self_origin(self.allow_self_origin)
            .connection_handler_queue_len(self.connection_handler_queue_len)
            .publish_queue_duration(self.publish_queue_duration)
            .forward_queue_duration(self.forward_queue_duration)
            .max_control_message_size(self.max_control_message_size);
        if self.do_px {
            b.do_px();
        }
        if self.validation_delay.is_some() {
            b.validate_messages();
        }
        match self.message_id {
            MessageIdFn::SourceSeqno => {}
            MessageIdFn::FirstEightBytes => {
                b.message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(m.data.get(..8).unwrap_or(&m.data).to_vec())
                });
            }
            MessageIdFn::ContentHash => {
                b.message_id_fn(|m: &gossipsub::Message| {
                    use sha2::Digest;
                    gossipsub::MessageId::from(sha2::Sha256::digest(&m.data).to_vec())
                });
            }
        }
        b.build().map_err(|e| ParamsError::Rejected(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_ids_are_sha256() {
        let config = GossipsubParams {
            message_id: MessageIdFn::ContentHash,
            ..GossipsubParams::default()
        }
        .to_config()
        .unwrap();
        let message = |data: &[u8]| gossipsub::Message {
            source: None,
            data: data.to_vec(),
            sequence_number: None,
            topic: gossipsub::IdentTopic::new("t").hash(),
        };
        // SHA-256("abc"), FIPS 180-2's test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let hex =
            |id: gossipsub::MessageId| id.0.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(config.message_id(&message(b"abc"))), abc);
        assert_ne!(
            config.message_id(&message(b"abd")),
            config.message_id(&message(b"abc"))
        );
    }

    #[test]
    fn dilation_scales_every_duration_and_no_count() {
        let p = GossipsubParams {
            validation_delay: Some(Duration::from_millis(3)),
            ..GossipsubParams::default()
        };
        let d = p.dilated(10.0);
        assert_eq!(d.heartbeat_interval, p.heartbeat_interval * 10);
        assert_eq!(d.heartbeat_initial_delay, p.heartbeat_initial_delay * 10);
        assert_eq!(d.fanout_ttl, p.fanout_ttl * 10);
        assert_eq!(d.duplicate_cache_time, p.duplicate_cache_time * 10);
        assert_eq!(d.validation_delay, Some(Duration::from_millis(30)));
        assert_eq!(d.prune_backoff, p.prune_backoff * 10);
        assert_eq!(d.unsubscribe_backoff, p.unsubscribe_backoff * 10);
        assert_eq!(d.iwant_followup_time, p.iwant_followup_time * 10);
        assert_eq!(d.publish_queue_duration, p.publish_queue_duration * 10);
        assert_eq!(d.forward_queue_duration, p.forward_queue_duration * 10);
        // Undo the durations: what is left must be the same, so no count was touched.
        let back = GossipsubParams {
            heartbeat_interval: p.heartbeat_interval,
            heartbeat_initial_delay: p.heartbeat_initial_delay,
            fanout_ttl: p.fanout_ttl,
            duplicate_cache_time: p.duplicate_cache_time,
            validation_delay: p.validation_delay,
            prune_backoff: p.prune_backoff,
            unsubscribe_backoff: p.unsubscribe_backoff,
            iwant_followup_time: p.iwant_followup_time,
            publish_queue_duration: p.publish_queue_duration,
            forward_queue_duration: p.forward_queue_duration,
            ..d
        };
        assert_eq!(back, p);
    }
}
