//! The in-process backend: every node a task in the test process, every peer connection a
//! pair of simulated links (see [`link`] for the model).

mod link;
mod net;
mod transport;

pub(crate) use net::SimNet;
pub(crate) use transport::{SimTransport, addr_of};
