//! Compiles the protobuf schemas with protox (no system `protoc` needed): the agent control
//! protocol, and go-libp2p-pubsub's published tracing schema (`proto/pubsub/trace.proto`,
//! used by `meshsim::export::pubsub`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/agent.proto");
    println!("cargo:rerun-if-changed=proto/pubsub/trace.proto");
    let fds = protox::compile(["proto/agent.proto", "proto/pubsub/trace.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
