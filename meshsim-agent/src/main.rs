//! meshsim-agent: the program that will run inside each container of the Docker backend
//! (node, link shaping, telemetry, protobuf control channel).
//!
//! It is not built yet: the Docker backend is planned. Until then this binary only says so,
//! and exits with a failure status so nothing mistakes it for a working agent.

fn main() -> std::process::ExitCode {
    eprintln!(
        "meshsim-agent {}: the Docker backend and its agent are not built yet; \
         meshsim runs nodes in-process (MESHSIM_BACKEND=in-process)",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}
