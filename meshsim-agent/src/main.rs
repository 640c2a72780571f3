//! meshsim-agent: the program in each meshsim container. It runs one gossipsub node (the
//! same as meshsim's in-process node, on TCP), shapes its links in the container's kernel,
//! and obeys the harness over a length-delimited protobuf channel on stdin/stdout
//! (`meshsim/proto/agent.proto`). Logs go to stderr, which the harness puts in the test log.

mod delay;
mod shaping;

use std::io::Write;
use std::sync::Arc;

use meshsim::__agent::{AgentNode, FrameDecoder, encode, proto};
use proto::{agent_message, reply, request};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MESHSIM_AGENT_LOG")
                .unwrap_or_else(|_| "info,libp2p_gossipsub=warn".into()),
        )
        .init();
    // Before any other thread exists: the delayer finds its netlink socket's descriptor.
    let delayer = delay::Delayer::open();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(serve(delayer));
}

/// Reads requests until stdin closes or SIGTERM arrives.
async fn serve(delayer: Result<delay::Delayer, String>) {
    // Unbounded on purpose: telemetry comes from the node's synchronous event hooks, which
    // may neither block nor drop an event. It holds only what the harness has not read yet,
    // and the harness keeps every event it reads in its trace anyway, so the queue never
    // holds more than the trace will; when the harness goes, stdin closes and the agent ends.
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<proto::AgentMessage>();
    // One writer, so replies and telemetry keep their order.
    let writer = std::thread::spawn(move || {
        let mut stdout = std::io::stdout().lock();
        while let Some(msg) = out_rx.blocking_recv() {
            let mut frame = encode(&msg);
            // Batch what is already queued into one write.
            while let Ok(more) = out_rx.try_recv() {
                frame.extend(encode(&more));
            }
            if stdout
                .write_all(&frame)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                break;
            }
        }
    });
    let agent = Arc::new(Agent {
        node: tokio::sync::OnceCell::new(),
        shaper: tokio::sync::Mutex::new(shaping::Shaper::new(delayer)),
        out: out_tx.clone(),
    });
    let mut stdin = tokio::io::stdin();
    let mut frames = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    loop {
        let n = tokio::select! {
            n = stdin.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = term.recv() => break,
        };
        frames.push(&buf[..n]);
        while let Some(req) = frames.decode_next::<proto::Request>() {
            match req {
                Ok(req) => {
                    let (agent, out) = (agent.clone(), out_tx.clone());
                    // Requests run concurrently (a publish need not wait for a dial), except
                    // configure, which everything else needs.
                    let configure = matches!(req.body, Some(request::Body::Configure(_)));
                    let task = tokio::spawn(async move {
                        let body = agent.handle(req.body).await;
                        let _ = out.send(reply_msg(req.id, body));
                    });
                    if configure {
                        let _ = task.await;
                    }
                }
                Err(e) => {
                    tracing::warn!("refused a frame: {e}");
                    let _ = out_tx.send(reply_msg(
                        0,
                        reply::Body::Error(proto::Error {
                            message: format!("refused a frame: {e}"),
                        }),
                    ));
                }
            }
        }
    }
    drop(out_tx);
    drop(agent);
    let _ = writer.join();
    std::process::exit(0);
}

fn reply_msg(id: u64, body: reply::Body) -> proto::AgentMessage {
    proto::AgentMessage {
        body: Some(agent_message::Body::Reply(proto::Reply {
            id,
            body: Some(body),
        })),
    }
}

struct Agent {
    node: tokio::sync::OnceCell<AgentNode>,
    shaper: tokio::sync::Mutex<shaping::Shaper>,
    /// Replies and telemetry, in the order they happen.
    out: mpsc::UnboundedSender<proto::AgentMessage>,
}

impl Agent {
    async fn handle(&self, body: Option<request::Body>) -> reply::Body {
        match self.dispatch(body).await {
            Ok(b) => b,
            Err(message) => reply::Body::Error(proto::Error { message }),
        }
    }

    fn node(&self) -> Result<&AgentNode, String> {
        self.node
            .get()
            .ok_or_else(|| "not configured yet: send configure first".to_string())
    }

    async fn dispatch(&self, body: Option<request::Body>) -> Result<reply::Body, String> {
        use request::Body as B;
        let ok = || Ok(reply::Body::Ok(proto::Ok {}));
        match body.ok_or("empty request")? {
            B::Configure(cfg) => {
                if self.node.get().is_some() {
                    return Err("already configured".into());
                }
                let (shaping, detail) = {
                    let mut shaper = self.shaper.lock().await;
                    shaper.detect().await?;
                    shaper.set_peers(&cfg.peers)?;
                    (shaper.mode_name().to_string(), shaper.detail().to_string())
                };
                let out = self.out.clone();
                let (node, peer_id) = AgentNode::start(&cfg, move |t| {
                    let _ = out.send(proto::AgentMessage {
                        body: Some(agent_message::Body::Event(t)),
                    });
                })?;
                tracing::info!(
                    "node {} up as {peer_id}; shaping: {shaping} ({detail})",
                    cfg.node
                );
                let _ = self.node.set(node);
                Ok(reply::Body::Configured(proto::Configured {
                    shaping,
                    shaping_detail: detail,
                    peer_id,
                }))
            }
            B::Peers(p) => {
                self.node()?.set_peers(&p.peers)?;
                self.shaper.lock().await.set_peers(&p.peers)?;
                ok()
            }
            B::Connect(c) => self.node()?.connect(c.peer).await.and_then(|()| ok()),
            B::Disconnect(d) => self.node()?.disconnect(d.peer).await.and_then(|()| ok()),
            B::Subscribe(t) => self.node()?.subscribe(t.topic).await.and_then(|()| ok()),
            B::Unsubscribe(t) => self.node()?.unsubscribe(t.topic).await.and_then(|()| ok()),
            B::Publish(p) => self
                .node()?
                .publish(p.msg, p.topic, p.data)
                .await
                .and_then(|()| ok()),
            B::Shapes(s) => {
                self.node()?;
                self.shaper.lock().await.apply(&s.peers).await?;
                ok()
            }
            B::Block(b) => {
                self.node()?;
                self.shaper.lock().await.block(&b.peers, b.blocked).await?;
                ok()
            }
            B::Health(_) => {
                let stats = self.shaper.lock().await.stats();
                Ok(reply::Body::Health(proto::HealthReport {
                    rss_bytes: rss_bytes(),
                    packets_held: stats.held,
                    packets_delayed: stats.delayed,
                    packets_dropped: stats.dropped,
                    max_release_lag_ns: stats.max_lag_ns,
                    mono_ns: meshsim::__agent::mono_ns(),
                }))
            }
        }
    }
}

/// Resident memory of this process, from `/proc/self/statm`.
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}
