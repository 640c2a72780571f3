//! The harness's end of one agent's control channel: requests down the container's stdin,
//! replies and telemetry up its stdout (attached through the Docker engine, so no port is
//! published), log lines from its stderr into the test's log.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::AttachContainerOptionsBuilder;
use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::control::proto::{self, agent_message, reply, request, telemetry::Kind};
use crate::control::{FrameDecoder, encode, event_of};
use crate::error::{Error, Result};
use crate::topology::NodeId;
use crate::trace::clock::mono_ns;
use crate::trace::recorder::Recorder;
use crate::trace::{EventKind, MsgId};

/// How long a request may take before the agent is considered hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<reply::Body>>>>;

/// Removes a request's entry from the pending table when dropped.
struct Forget<'a>(&'a Pending, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// A connected agent.
pub(super) struct Agent {
    node: NodeId,
    input: tokio::sync::Mutex<Pin<Box<dyn AsyncWrite + Send>>>,
    pending: Pending,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
    /// Set before the harness stops or kills the container, so its exit is not reported as
    /// a crash.
    pub(super) expected_exit: Arc<AtomicBool>,
    /// The container's clock minus the harness's (ns), as measured at attach; its reports
    /// are moved onto the harness's clock by it.
    offset_ns: Arc<AtomicI64>,
    /// The round trip of the measurement that set `offset_ns`: its uncertainty is half this.
    clock_round_trip: Duration,
}

/// How many round trips measure a container's clock offset; the shortest one is kept.
const CLOCK_SAMPLES: usize = 5;

impl Drop for Agent {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Agent {
    /// Attaches to the (running) container of `node`.
    pub(super) async fn attach(
        docker: &Docker,
        container: &str,
        node: NodeId,
        recorder: Arc<Recorder>,
    ) -> Result<Agent> {
        let opts = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let attached = docker
            .attach_container(container, Some(opts))
            .await
            .map_err(|e| Error::Docker {
                what: format!("attach to {node}'s container"),
                reason: e.to_string(),
            })?;
        let pending: Pending = Arc::default();
        let expected_exit = Arc::new(AtomicBool::new(false));
        let offset_ns = Arc::new(AtomicI64::new(0));
        let reader = tokio::spawn(read(
            attached.output,
            Reader {
                node,
                recorder,
                pending: pending.clone(),
                offset_ns: offset_ns.clone(),
            },
            expected_exit.clone(),
            docker.clone(),
            container.to_string(),
        ));
        let mut agent = Agent {
            node,
            input: tokio::sync::Mutex::new(attached.input),
            pending,
            next_id: AtomicU64::new(1),
            reader,
            expected_exit,
            offset_ns,
            clock_round_trip: Duration::ZERO,
        };
        agent.measure_clock().await?;
        Ok(agent)
    }

    /// Measures the container's clock against the harness's before the node starts (so
    /// every report is corrected): the agent reads its clock between our two readings, so
    /// with the shortest of a few round trips the offset is known to half of it. On one host
    /// both read the same kernel clock and the offset is zero within that bound.
    async fn measure_clock(&mut self) -> Result<()> {
        let mut best: Option<(Duration, i64)> = None;
        for _ in 0..CLOCK_SAMPLES {
            let before = mono_ns();
            let theirs = match self
                .request(request::Body::Health(proto::Health {}))
                .await?
            {
                reply::Body::Health(h) => h.mono_ns,
                other => {
                    return Err(Error::Node {
                        node: self.node,
                        reason: format!("unexpected reply to a clock reading: {other:?}"),
                    });
                }
            };
            let after = mono_ns();
            let round_trip = Duration::from_nanos(after - before);
            let ours = before + (after - before) / 2;
            let offset = theirs as i64 - ours as i64;
            if best.is_none_or(|(rt, _)| round_trip < rt) {
                best = Some((round_trip, offset));
            }
        }
        let (round_trip, offset) = best.expect("at least one sample");
        self.offset_ns.store(offset, Ordering::Relaxed);
        self.clock_round_trip = round_trip;
        Ok(())
    }

    /// The container's clock minus the harness's, and the round trip that bounds the error
    /// of that figure (half of it either way).
    pub(super) fn clock(&self) -> (i64, Duration) {
        (
            self.offset_ns.load(Ordering::Relaxed),
            self.clock_round_trip,
        )
    }

    /// Sends a request and waits for its reply; an agent's `Error` reply becomes `Err`.
    pub(super) async fn request(&self, body: request::Body) -> Result<reply::Body> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        // However this request ends (answered, timed out, write failed, or the caller gave
        // up), its entry goes: a hung agent cannot make the table grow.
        let _forget = Forget(&self.pending, id);
        let frame = encode(&proto::Request {
            id,
            body: Some(body),
        });
        let gone = |reason: String| Error::Node {
            node: self.node,
            reason,
        };
        {
            let mut input = self.input.lock().await;
            input
                .write_all(&frame)
                .await
                .map_err(|e| gone(format!("control channel closed: {e}")))?;
            input
                .flush()
                .await
                .map_err(|e| gone(format!("control channel closed: {e}")))?;
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Err(_) => Err(gone(format!(
                "agent did not answer within {REQUEST_TIMEOUT:?}"
            ))),
            Ok(Err(_)) => Err(gone("agent exited before answering".into())),
            Ok(Ok(reply::Body::Error(e))) => Err(gone(e.message)),
            Ok(Ok(body)) => Ok(body),
        }
    }

    /// Sends a request whose reply carries nothing.
    pub(super) async fn call(&self, body: request::Body) -> Result<()> {
        self.request(body).await.map(|_| ())
    }
}

/// Reads the container's output until it ends.
async fn read(
    mut output: Pin<
        Box<
            dyn futures::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>>
                + Send,
        >,
    >,
    reader: Reader,
    expected_exit: Arc<AtomicBool>,
    docker: Docker,
    container: String,
) {
    let Reader {
        node,
        ref recorder,
        ref pending,
        ..
    } = reader;
    let span = tracing::info_span!(target: "meshsim", "node", name = %node);
    let mut frames = FrameDecoder::new();
    let mut log_line = Vec::new();
    while let Some(item) = output.next().await {
        match item {
            Ok(LogOutput::StdOut { message }) => {
                frames.push(&message);
                while let Some(msg) = frames.decode_next::<proto::AgentMessage>() {
                    match msg {
                        Ok(m) => reader.handle(m),
                        Err(e) => {
                            tracing::error!(target: "meshsim", parent: &span, "bad frame from agent: {e}")
                        }
                    }
                }
            }
            Ok(LogOutput::StdErr { message }) => {
                log_line.extend_from_slice(&message);
                while let Some(end) = log_line.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = log_line.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line[..line.len() - 1]);
                    tracing::info!(target: "meshsim::agent", parent: &span, "{line}");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "meshsim", parent: &span, "control channel: {e}");
                break;
            }
        }
    }
    pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
    if !expected_exit.load(Ordering::SeqCst) {
        let state = docker
            .inspect_container(&container, None)
            .await
            .ok()
            .and_then(|c| c.state);
        let how = match state {
            Some(s) if s.oom_killed == Some(true) => "killed: out of memory".to_string(),
            Some(s) if s.running == Some(true) => "control channel closed".to_string(),
            Some(s) => format!("exit code {}", s.exit_code.unwrap_or(-1)),
            None => "container gone".to_string(),
        };
        tracing::warn!(target: "meshsim", parent: &span, "agent exited unexpectedly ({how})");
        recorder.record(
            Some(node),
            EventKind::NodeDown {
                reason: format!("container exited unexpectedly ({how})"),
            },
        );
    }
}

/// What the reader task needs to take an agent's messages.
struct Reader {
    node: NodeId,
    recorder: Arc<Recorder>,
    pending: Pending,
    offset_ns: Arc<AtomicI64>,
}

impl Reader {
    fn handle(&self, msg: proto::AgentMessage) {
        let Reader {
            node,
            recorder,
            pending,
            offset_ns,
        } = self;
        let node = *node;
        match msg.body {
            Some(agent_message::Body::Reply(r)) => {
                let tx = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&r.id);
                match (tx, r.body) {
                    (Some(tx), Some(body)) => {
                        let _ = tx.send(body);
                    }
                    (_, Some(reply::Body::Error(e))) => {
                        tracing::warn!(target: "meshsim", %node, "agent: {}", e.message)
                    }
                    _ => {}
                }
            }
            Some(agent_message::Body::Event(t)) => {
                let Some(kind) = t.kind else { return };
                // Onto the harness's clock.
                let ours = t
                    .mono_ns
                    .saturating_add_signed(-offset_ns.load(Ordering::Relaxed));
                let t_ns = recorder.since_start(ours);
                match &kind {
                    Kind::Published(p) => recorder.published_at(
                        Some(t_ns),
                        MsgId(p.msg),
                        node,
                        &p.topic,
                        p.size as usize,
                    ),
                    Kind::PeerSubscription(s) => {
                        recorder.peer_subscription(node, NodeId(s.peer), &s.topic, s.subscribed)
                    }
                    other => {
                        if let Some(kind) = event_of(other) {
                            recorder.record_at(t_ns, Some(node), kind);
                        }
                    }
                }
            }
            None => {}
        }
    }
}
