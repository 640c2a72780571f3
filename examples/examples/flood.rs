//! Your own protocol, not built on libp2p: flooding on meshsim's byte streams
//! ([`meshsim_examples::flood`]), on a 40-node random network with 20 to 80 ms links.
//! Prints a table per message (reach, latencies, duplicates), and writes the trace and its viewer.
//!
//! ```text
//! cargo run --release -p meshsim-examples --example flood
//! ```

use meshsim::{DEFAULT_TOPIC, Sim, Topology, ms, node, secs};
use meshsim_examples::flood::Flood;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> meshsim::Result<()> {
    let seed = 7;
    let net = Topology::random_regular(40, 4, seed)?.with_random_latency(ms(20), ms(80), seed);
    let sim = Sim::new("examples.flood")?
        .with_seed(seed)
        .with_software(Flood::new())
        .start(net)
        .await?;
    for origin in [0, 13, 27] {
        let msg = sim.publish(node(origin), DEFAULT_TOPIC, 1024).await?;
        sim.wait_delivered(msg, secs(10)).await?.assert_reach(1.0)?;
    }
    // Let the last copies (duplicates) arrive before summing up.
    sim.run_for(ms(300)).await;
    let trace = sim.trace();
    println!("{}", trace.summary());
    let path = sim.save_trace()?;
    let viewer = meshsim::view::viewer_path(&path);
    meshsim::view::write(&trace, &viewer)?;
    println!("trace written to {}", path.display());
    println!("open {} to replay it", viewer.display());
    Ok(())
}
