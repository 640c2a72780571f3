//! Your own rust-libp2p behaviour: gossipsub with an application validation rule, next to
//! identify ([`meshsim_examples::validated`]), on 30 nodes. A valid message reaches every
//! node; one the rule rejects stops at the publisher's direct peers.
//!
//! ```text
//! cargo run --release -p meshsim-examples --example validated
//! ```

use meshsim::{DEFAULT_TOPIC, Sim, Topology, ms, node, secs};
use meshsim_examples::validated::{self, REJECT_MARKER};

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
    let seed = 3;
    let net = Topology::random_regular(30, 6, seed)?.with_latency(ms(25));
    let sim = Sim::new("examples.validated")?
        .with_seed(seed)
        .with_software(validated::software())
        .start(net)
        .await?;
    let valid = sim.publish_bytes(node(0), DEFAULT_TOPIC, b"hello").await?;
    let d = sim.wait_delivered(valid, secs(10)).await?;
    println!(
        "valid message: reached {:.0}% of nodes, p99 {:?}",
        d.reach() * 100.0,
        d.latency_percentile(99.0).unwrap_or_default()
    );
    let invalid = sim
        .publish_bytes(
            node(0),
            DEFAULT_TOPIC,
            &[REJECT_MARKER, b" payload"].concat(),
        )
        .await?;
    // Several heartbeats: time for gossip to try to spread it anyway.
    sim.run_for(ms(1500)).await;
    let d = sim.delivery(invalid)?;
    println!(
        "rejected message: reached {} of {} nodes (the publisher's own peers only)",
        d.first_deliveries().len(),
        sim.node_count() - 1
    );
    let path = sim.save_trace()?;
    meshsim::view::write(&sim.trace(), &meshsim::view::viewer_path(&path))?;
    println!("trace written to {}", path.display());
    Ok(())
}
