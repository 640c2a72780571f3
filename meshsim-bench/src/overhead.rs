//! Harness overhead: one gossip scenario run directly on rust-libp2p (memory transport, no
//! meshsim) and through meshsim, in the same process and the same way.
//!
//! The scenario: `n` gossipsub nodes (libp2p's default config, signed messages, noise,
//! yamux) connected along meshsim's random 8-regular graph with seed 1 and zero link
//! latency; wait until every node is connected to its graph peers, has heard their
//! subscriptions, and has a mesh of at least `min(D_lo, peers)`; node 0 publishes one
//! 1 KiB message; wait until every other node has it. Timed from the first node's start to
//! the last delivery, with the CPU time the process used over the same span.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::transport::{MemoryTransport, Transport};
use libp2p::core::upgrade::Version;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId, noise, yamux};
use meshsim::{DEFAULT_TOPIC, Sim, Topology, node, secs};
use tokio::sync::{mpsc, watch};

use crate::machine::cpu_seconds;

/// One run's cost: wall seconds, CPU seconds, and how many nodes got the message.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub delivered: usize,
}

/// The graph both sides use: meshsim's generator, so it is the same edges.
fn graph(n: usize) -> Vec<(usize, usize)> {
    Topology::random_regular(n, 8, 1)
        .expect("a valid graph")
        .links()
        .map(|l| (l.a.index(), l.b.index()))
        .collect()
}

/// The scenario through meshsim.
pub async fn through_meshsim(n: usize) -> meshsim::Result<Cost> {
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let sim = Sim::new("bench.overhead")?.with_seed(1);
    let sim = sim
        .with_ready_timeout(secs(600))
        .start(Topology::random_regular(n, 8, 1)?)
        .await?;
    let msg = sim.publish(node(0), DEFAULT_TOPIC, 1024).await?;
    let d = sim.wait_delivered(msg, secs(600)).await?;
    let cost = Cost {
        wall_s: t.elapsed().as_secs_f64(),
        cpu_s: cpu_seconds() - cpu,
        delivered: d.stats().delivered,
    };
    sim.stop().await;
    Ok(cost)
}

/// What a raw node tells the coordinator.
enum Report {
    Ready,
    Received,
}

/// Memory-transport ports handed out so far: every run takes fresh ones.
static NEXT_PORT: AtomicU64 = AtomicU64::new(1_000_000);

/// The scenario directly on rust-libp2p.
pub async fn raw(n: usize) -> Cost {
    let edges = graph(n);
    let mut peers = vec![Vec::new(); n];
    for &(a, b) in &edges {
        peers[a].push(b);
        peers[b].push(a);
    }
    let base = NEXT_PORT.fetch_add(n as u64, Ordering::Relaxed);
    let port = |i: usize| base + i as u64;
    let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
    let ids: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
    let (t, cpu) = (Instant::now(), cpu_seconds());
    // Every node listens before any dials: a memory dial to a port nobody holds fails.
    let mut swarms: Vec<Swarm<gossipsub::Behaviour>> = keys.iter().map(swarm).collect();
    let topic = IdentTopic::new(DEFAULT_TOPIC);
    for (i, s) in swarms.iter_mut().enumerate() {
        s.listen_on(Protocol::Memory(port(i)).into())
            .expect("listen on memory");
        s.behaviour_mut().subscribe(&topic).expect("subscribe");
    }
    for &(a, b) in &edges {
        let addr = Multiaddr::from(Protocol::Memory(port(b))).with(Protocol::P2p(ids[b]));
        swarms[a].dial(addr).expect("dial");
    }
    let (reports, mut rx) = mpsc::unbounded_channel();
    let (publish, publish_rx) = watch::channel(false);
    let d_lo = gossipsub::Config::default().mesh_n_low();
    let mut tasks = Vec::new();
    for (i, mut swarm) in swarms.into_iter().enumerate() {
        let expect: Vec<PeerId> = peers[i].iter().map(|&p| ids[p]).collect();
        let reports = reports.clone();
        let mut publish_rx = publish_rx.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let mut ready = false;
            let mut published = i != 0;
            loop {
                tokio::select! {
                    ev = swarm.select_next_some() => {
                        if let SwarmEvent::Behaviour(gossipsub::Event::Message { .. }) = ev {
                            let _ = reports.send(Report::Received);
                        }
                    }
                    Ok(()) = publish_rx.changed(), if !published => {
                        published = true;
                        let mut data = vec![7u8; 1024];
                        data[..8].copy_from_slice(&base.to_be_bytes());
                        swarm.behaviour_mut().publish(topic.clone(), data).expect("publish");
                    }
                }
                if !ready && is_ready(&swarm, &topic, &expect, d_lo) {
                    ready = true;
                    let _ = reports.send(Report::Ready);
                }
            }
        }));
    }
    let (mut ready, mut delivered) = (0, 0);
    while ready < n {
        if let Some(Report::Ready) = rx.recv().await {
            ready += 1;
        }
    }
    publish.send(true).expect("node 0 listens");
    while delivered < n - 1 {
        if let Some(Report::Received) = rx.recv().await {
            delivered += 1;
        }
    }
    let cost = Cost {
        wall_s: t.elapsed().as_secs_f64(),
        cpu_s: cpu_seconds() - cpu,
        delivered,
    };
    // Every node ends (and drops its swarm) before the next run starts.
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    cost
}

/// A node as meshsim builds one, without meshsim: memory transport, noise, yamux,
/// gossipsub with libp2p's default config and signed messages.
fn swarm(key: &Keypair) -> Swarm<gossipsub::Behaviour> {
    let transport = MemoryTransport::default()
        .upgrade(Version::V1)
        .authenticate(noise::Config::new(key).expect("noise config"))
        .multiplex(yamux::Config::default())
        .boxed();
    let behaviour = gossipsub::Behaviour::new(
        MessageAuthenticity::Signed(key.clone()),
        gossipsub::Config::default(),
    )
    .expect("gossipsub config");
    Swarm::new(
        transport,
        behaviour,
        key.public().to_peer_id(),
        libp2p::swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(Duration::from_secs(24 * 3600)),
    )
}

/// meshsim's readiness rule: connected to every graph peer, heard each one's
/// subscription, and a mesh of at least `min(D_lo, peers)`.
fn is_ready(
    swarm: &Swarm<gossipsub::Behaviour>,
    topic: &IdentTopic,
    expect: &[PeerId],
    d_lo: usize,
) -> bool {
    let hash = topic.hash();
    let gs = swarm.behaviour();
    let subscribed: Vec<&PeerId> = gs
        .all_peers()
        .filter(|(_, topics)| topics.contains(&&hash))
        .map(|(p, _)| p)
        .collect();
    expect
        .iter()
        .all(|p| swarm.is_connected(p) && subscribed.contains(&p))
        && gs.mesh_peers(&hash).count() >= d_lo.min(expect.len())
}
