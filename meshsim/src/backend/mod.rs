//! Backends make a topology real. Only the in-process backend exists so far; the Docker
//! backend (real containers, kernel shaping) is planned and refused with a clear error.

pub(crate) mod inprocess;

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Where the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Every node inside the test process; links simulated in user space.
    #[default]
    InProcess,
    /// One container per node with kernel packet shaping (not built yet).
    Docker,
}

impl Backend {
    /// The backend named by `MESHSIM_BACKEND`, if set.
    pub fn from_env() -> Result<Option<Backend>, Error> {
        match std::env::var("MESHSIM_BACKEND") {
            Ok(v) if !v.trim().is_empty() => v.parse().map(Some),
            _ => Ok(None),
        }
    }

    /// How links are shaped on this backend, as recorded in traces.
    pub fn shaping(self) -> &'static str {
        match self {
            Backend::InProcess => {
                "simulated links in user space (latency, jitter, loss as retransmission delay, bandwidth)"
            }
            Backend::Docker => "kernel (tc netem or NFQUEUE + HTB)",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::InProcess => "in-process",
            Backend::Docker => "docker",
        })
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "in-process" | "inprocess" | "embedded" => Ok(Backend::InProcess),
            "docker" => Ok(Backend::Docker),
            other => Err(Error::BackendUnavailable {
                backend: other.to_string(),
                reason: "unknown backend; use \"in-process\" or \"docker\"".into(),
            }),
        }
    }
}
