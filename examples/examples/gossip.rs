//! The main job: a realistic gossip scenario on the in-process backend.
//!
//! 60 gossipsub nodes placed on a 1000 x 600 km-like plane, each linked to its nearest
//! neighbours within 300 ms (1 ms per unit of distance, as the original meshsim wired
//! servers), every link 50 Mbit/s with 2 ms jitter and 0.5 % loss. Eight 64 KiB blocks are
//! published from different nodes; the program prints a table per message and writes the
//! trace and its viewer.
//!
//! It runs in virtual time, so every run writes the same trace, byte for byte; `--real`
//! runs it on the wall clock instead (its timings then include the CPU's lag, and vary).
//!
//! ```text
//! cargo run --release -p meshsim-examples --example gossip [-- --real]
//! ```

use meshsim::{GeoParams, GossipsubParams, Sim, Topology, ms, node, secs};

const SEED: u64 = 2026;

fn main() -> std::process::ExitCode {
    let real = std::env::args().skip(1).any(|a| a == "--real");
    let result = if real {
        tokio::runtime::Runtime::new()
            .expect("a tokio runtime")
            .block_on(run())
    } else {
        meshsim::time::run_virtual(SEED, run)
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> meshsim::Result<()> {
    let seed = SEED;
    let params = GeoParams {
        k: 6,
        ..GeoParams::default()
    };
    let net = Topology::geographic(60, params, seed)?.map_shapes(|s| {
        s.jitter = ms(2);
        s.loss = 0.005;
        s.bandwidth = Some(50_000_000);
    });
    // 64 KiB blocks need a larger limit than libp2p's default 64 KiB frame.
    let gossipsub = GossipsubParams {
        max_transmit_size: 1 << 20,
        ..GossipsubParams::default()
    };
    let sim = Sim::new("examples.gossip")?
        .with_seed(seed)
        .with_params(gossipsub)
        .with_topics(["blocks"]);
    let sim = sim.start(net).await?;
    println!("meshes formed; publishing 8 blocks of 64 KiB\n");
    let mut worst_reach: f64 = 1.0;
    for i in 0..8u32 {
        let msg = sim.publish(node(i * 7), "blocks", 64 * 1024).await?;
        let d = sim.wait_delivered(msg, secs(30)).await?;
        worst_reach = worst_reach.min(d.reach());
    }
    // Let the last duplicates and gossip arrive before summing up.
    sim.run_for(ms(500)).await;
    let trace = sim.trace();
    println!("{}", trace.summary());
    let dups: Vec<f64> = trace
        .messages
        .iter()
        .filter_map(|m| trace.delivery(m.id).ok())
        .map(|d| d.stats().duplicates_per_node)
        .collect();
    println!(
        "{} nodes, {} links; worst reach {:.1}%; mean duplicates per node per message {:.2}",
        trace.topology.nodes.len(),
        trace.topology.links.len(),
        worst_reach * 100.0,
        dups.iter().sum::<f64>() / dups.len().max(1) as f64
    );
    match trace.lag {
        Some(lag) => println!("{lag}"),
        None => println!("virtual time: the same seed gives this same trace again"),
    }
    let path = sim.save_trace()?;
    let viewer = meshsim::view::viewer_path(&path);
    meshsim::view::write(&trace, &viewer)?;
    println!("trace written to {}", path.display());
    println!("open {} to replay it", viewer.display());
    Ok(())
}
