//! What traces cost: the recorder's rate, bytes per event, and the time to save, load,
//! check, summarise, export and view a trace of a million events.

use std::path::Path;
use std::time::Instant;

use meshsim::export::{chrome, interop, pubsub};
use meshsim::{Event, EventKind, MsgId, Trace};

use crate::stats::cells;

/// A trace of at least `events` events: `trace`'s message events (publish, deliveries,
/// duplicates) repeated with fresh message ids, each copy after the previous one ends.
pub fn grow(trace: &Trace, events: usize) -> Trace {
    let is_message = |e: &Event| {
        matches!(
            e.kind,
            EventKind::Published { .. } | EventKind::Delivered { .. } | EventKind::Duplicate { .. }
        )
    };
    let per_copy = trace.events.iter().filter(|e| is_message(e)).count().max(1);
    let copies = events.saturating_sub(trace.events.len()).div_ceil(per_copy);
    let span = trace.events.last().map_or(0, |e| e.t_ns) + 1_000_000;
    let ids = trace.messages.iter().map(|m| m.id.0 + 1).max().unwrap_or(1);
    let mut out = trace.clone();
    for c in 1..=copies as u64 {
        let shift = |msg: MsgId| MsgId(msg.0 + c * ids);
        out.messages.extend(trace.messages.iter().map(|m| {
            let mut m = m.clone();
            m.id = shift(m.id);
            m.published_ns += c * span;
            m
        }));
        out.events
            .extend(trace.events.iter().filter(|e| is_message(e)).map(|e| {
                let kind = match e.kind.clone() {
                    EventKind::Published { msg, topic, size } => EventKind::Published {
                        msg: shift(msg),
                        topic,
                        size,
                    },
                    EventKind::Delivered { msg, from } => EventKind::Delivered {
                        msg: shift(msg),
                        from,
                    },
                    EventKind::Duplicate { msg, from } => EventKind::Duplicate {
                        msg: shift(msg),
                        from,
                    },
                    other => other,
                };
                Event {
                    t_ns: e.t_ns + c * span,
                    node: e.node,
                    kind,
                }
            }));
    }
    out
}

fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let v = f();
    (t.elapsed().as_secs_f64(), v)
}

/// The columns of the trace-cost table.
pub const COLUMNS: &[&str] = &["figure", "value", "note"];

/// The recorder's rate with 1 and 2 threads recording at once.
pub fn record_rate(events: usize) {
    for threads in [1, 2] {
        let (t, n) = meshsim::__private::record_throughput(events / threads, threads);
        cells(&[
            format!("events recorded per second, {threads} thread(s)"),
            format!("{:.2} M/s", n as f64 / t.as_secs_f64() / 1e6),
            format!(
                "{n} delivery and duplicate events into a 1,000-node recorder (lock, live state, push, wake-up)"
            ),
        ]);
    }
}

/// Every cost of one big trace, `dir` for the files it writes.
pub fn big_trace(trace: &Trace, dir: &Path) -> Result<(), String> {
    let n = trace.events.len();
    let per = |bytes: usize| format!("{bytes} bytes, {:.0} bytes/event", bytes as f64 / n as f64);
    let row = |what: &str, secs: f64, note: String| {
        cells(&[what.into(), format!("{secs:.2} s"), note]);
    };
    cells(&[
        "trace size".into(),
        format!("{n} events, {} messages", trace.messages.len()),
        "a real 1,000-node trace's messages repeated with new ids".into(),
    ]);
    let path = dir.join("trace.json");
    let (t, saved) = timed(|| trace.save(&path));
    saved.map_err(|e| e.to_string())?;
    let bytes = std::fs::metadata(&path).map_err(|e| e.to_string())?.len() as usize;
    row("save as JSON", t, per(bytes));
    let (t, loaded) = timed(|| Trace::load(&path));
    let loaded = loaded.map_err(|e| e.to_string())?;
    row(
        "load JSON",
        t,
        format!("{} events read back", loaded.events.len()),
    );
    let (t, problems) = timed(|| trace.check());
    row(
        "check (consistency)",
        t,
        format!("{} problems", problems.len()),
    );
    let (t, _) = timed(|| trace.tally());
    row("tally (meshsim stats)", t, "counts, delays, CDF".into());
    let (t, s) = timed(|| trace.summary());
    row(
        "summary (per-message table)",
        t,
        format!("{} rows", s.lines().count().saturating_sub(1)),
    );
    let (t, pb) = timed(|| pubsub::to_protobuf(trace));
    row("export pubsub protobuf", t, per(pb.len()));
    let (t, gz) = timed(|| pubsub::to_protobuf_gz(trace));
    row("export pubsub protobuf gzip", t, per(gz.len()));
    let (t, js) = timed(|| pubsub::to_json(trace));
    row("export pubsub ND-JSON", t, per(js.len()));
    let (t, ch) = timed(|| chrome::to_json(trace));
    row("export Chrome/Perfetto JSON", t, per(ch.len()));
    let (t, files) = timed(|| interop::write(trace, &dir.join("interop")));
    let files = files.map_err(|e| e.to_string())?;
    row(
        "export gossipsub-interop",
        t,
        format!("{} files", files.len()),
    );
    let (t, back) = timed(|| pubsub::import(&pb));
    let back = back.map_err(|e| e.to_string())?;
    row(
        "import pubsub protobuf",
        t,
        format!("{} events", back.events.len()),
    );
    let (t, html) = timed(|| meshsim::view::render(trace));
    row("viewer page (render)", t, per(html.len()));
    Ok(())
}
