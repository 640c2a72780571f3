//! How true the links are: one hop between two nodes, configured versus measured latency,
//! jitter, loss and bandwidth, per backend.

use std::time::Duration;

use meshsim::{Backend, DEFAULT_TOPIC, GossipsubParams, LinkShape, Sim, Topology, ms, node, secs};

use crate::stats::{cells, percentile, sorted};

/// The columns of [`row`].
pub const COLUMNS: &[&str] = &[
    "backend",
    "link",
    "configured",
    "measured p50",
    "measured p99",
    "samples",
    "note",
];

/// What a series of one-hop messages measured.
struct Hops {
    /// Each message's publish-to-delivery time, ms.
    latencies_ms: Vec<f64>,
    /// Docker only: packets the delayer released and dropped.
    packets: Option<(u64, u64)>,
}

/// Sends `messages` messages of `size` bytes, alternately each way, over one link of
/// `shape`, waiting for each.
async fn hops(
    backend: Backend,
    shape: LinkShape,
    messages: usize,
    size: usize,
) -> meshsim::Result<Hops> {
    let params = GossipsubParams {
        max_transmit_size: 4 << 20,
        ..GossipsubParams::default()
    };
    let sim = Sim::new("bench.fidelity")?
        .with_backend(backend)
        .with_params(params)
        .with_ready_timeout(secs(300))
        .start(Topology::line(2)?.with_shape(shape))
        .await?;
    let mut latencies_ms = Vec::new();
    for i in 0..messages {
        let msg = sim
            .publish(node((i % 2) as u32), DEFAULT_TOPIC, size)
            .await?;
        let d = sim.wait_delivered(msg, secs(120)).await?;
        latencies_ms.extend(d.latencies().values().map(|l| l.as_secs_f64() * 1e3));
        sim.run_for(ms(5)).await;
    }
    let packets = match backend {
        Backend::Docker => Some(sim.container_stats().await?.iter().fold((0, 0), |a, s| {
            (a.0 + s.packets_delayed, a.1 + s.packets_dropped)
        })),
        Backend::InProcess => None,
    };
    sim.stop().await;
    Ok(Hops {
        latencies_ms,
        packets,
    })
}

fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Latency with and without jitter: measured minus configured, p50 and p99.
pub async fn latency(
    backend: Backend,
    latency_ms: u64,
    jitter: bool,
    messages: usize,
) -> meshsim::Result<()> {
    let mut shape = LinkShape::latency(ms(latency_ms));
    if jitter {
        shape = shape.with_jitter(ms(latency_ms / 10));
    }
    let h = hops(backend, shape, messages, 256).await?;
    let errors = sorted(
        h.latencies_ms
            .iter()
            .map(|l| l - latency_ms as f64)
            .collect(),
    );
    let link = if jitter {
        format!("{latency_ms} ms ± {} ms", latency_ms / 10)
    } else {
        format!("{latency_ms} ms")
    };
    let note = if jitter {
        "error = measured - configured; jitter spreads it over ± the jitter"
    } else {
        "error = measured - configured"
    };
    cells(&[
        backend.to_string(),
        link,
        "error 0 ms".into(),
        format!("{:+.2} ms", percentile(&errors, 0.5).unwrap_or(f64::NAN)),
        format!("{:+.2} ms", percentile(&errors, 0.99).unwrap_or(f64::NAN)),
        errors.len().to_string(),
        note.into(),
    ]);
    Ok(())
}

/// Loss: the configured packet loss against what was measured. In process, loss on the
/// reliable stream becomes a retransmission delay, so the measure is the share of
/// messages delayed by at least half a retransmission timeout; in containers it is the
/// delayer's own count of dropped packets.
pub async fn loss(backend: Backend, loss: f64, messages: usize) -> meshsim::Result<()> {
    let latency = ms(10);
    let shape = LinkShape::latency(latency).with_loss(loss);
    let h = hops(backend, shape, messages, 256).await?;
    let (measured, samples, note) = match h.packets {
        Some((delayed, dropped)) => (
            dropped as f64 / (delayed + dropped).max(1) as f64,
            delayed + dropped,
            "packets the delayer dropped / packets it saw (both directions, all traffic)",
        ),
        None => {
            // RTO = RTT + 200 ms; a retransmitted write arrives at least that much later.
            let late = ms_of(latency) + ms_of(latency * 2 + ms(200)) / 2.0;
            let hit = h.latencies_ms.iter().filter(|&&l| l >= late).count();
            (
                hit as f64 / h.latencies_ms.len().max(1) as f64,
                h.latencies_ms.len() as u64,
                "messages delayed by a retransmission / messages (a message is one or two writes)",
            )
        }
    };
    cells(&[
        backend.to_string(),
        "10 ms, loss".into(),
        format!("{:.1} %", loss * 100.0),
        format!("{:.1} %", measured * 100.0),
        String::new(),
        samples.to_string(),
        note.into(),
    ]);
    Ok(())
}

/// Bandwidth: a large message's transfer time beyond the latency gives the throughput.
pub async fn bandwidth(
    backend: Backend,
    mbit: u64,
    size: usize,
    messages: usize,
) -> meshsim::Result<()> {
    let latency = ms(10);
    let shape = LinkShape::latency(latency).with_bandwidth(mbit * 1_000_000);
    let h = hops(backend, shape, messages, size).await?;
    let rates = sorted(
        h.latencies_ms
            .iter()
            .map(|l| size as f64 * 8.0 / ((l - ms_of(latency)) / 1e3) / 1e6)
            .collect(),
    );
    cells(&[
        backend.to_string(),
        format!("10 ms, {mbit} Mbit/s"),
        format!("{mbit} Mbit/s"),
        format!("{:.2} Mbit/s", percentile(&rates, 0.5).unwrap_or(f64::NAN)),
        format!("min {:.2}", rates.first().copied().unwrap_or(f64::NAN)),
        rates.len().to_string(),
        format!(
            "payload bits / (delivery - latency) for {} KiB messages; framing (gossipsub, yamux, noise) counts against it",
            size >> 10
        ),
    ]);
    Ok(())
}
