//! Node software written the way a crate outside meshsim writes it, using only meshsim's
//! public API; the examples run it and meshsim's tests check it.
//!
//! - [`flood`]: a gossip protocol that is not libp2p, on plain byte streams.
//! - [`validated`]: a rust-libp2p behaviour of the user's (gossipsub with a validation rule,
//!   and identify).

pub mod flood;
pub mod validated;
