use meshsim::{Topology, ms, node, secs};

#[meshsim::test(seed = 1)]
async fn ring_smoke(sim: meshsim::Sim) -> meshsim::Result<()> {
    let net = Topology::ring(6)?.with_latency(ms(20));
    let mut sim = sim.start(net).await?;
    let msg = sim.publish(node(0), meshsim::DEFAULT_TOPIC, 100).await?;
    let d = sim.wait_delivered(msg, secs(5)).await?;
    println!("{:?}", d.latencies());
    println!("{:?}", d.duplicates_per_node());
    println!("{}", d.trace().summary());
    d.assert_reach(1.0)?;
    Ok(())
}
