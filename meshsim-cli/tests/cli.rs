//! The `meshsim` binary run as a user runs it, on a trace from a real simulation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use meshsim::{EventKind, Sim, Topology, Trace, ms, node, secs};

fn meshsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshsim"))
}

fn run(args: &[&str]) -> Output {
    meshsim()
        .args(args)
        .output()
        .expect("the meshsim binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fresh folder for one test.
fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A 6-node ring with 20 ms links, two messages delivered everywhere.
fn real_trace() -> &'static Trace {
    static TRACE: OnceLock<Trace> = OnceLock::new();
    TRACE.get_or_init(|| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let sim = Sim::new("cli.fixture").unwrap().with_seed(3);
            let sim = sim
                .start(Topology::ring(6).unwrap().with_latency(ms(20)))
                .await
                .unwrap();
            for origin in [0, 3] {
                let msg = sim
                    .publish(node(origin), meshsim::DEFAULT_TOPIC, 1000)
                    .await
                    .unwrap();
                sim.wait_delivered(msg, secs(10)).await.unwrap();
            }
            sim.run_for(ms(100)).await;
            sim.stop().await
        })
    })
}

fn trace_file(name: &str) -> PathBuf {
    let path = dir(name).join("trace.json");
    real_trace().save(&path).unwrap();
    path
}

fn count(t: &Trace, f: impl Fn(&EventKind) -> bool) -> usize {
    t.events.iter().filter(|e| f(&e.kind)).count()
}

#[test]
fn validate_accepts_a_real_trace() {
    let path = trace_file("validate_ok");
    let out = run(&["validate", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(": ok (6 nodes, 2 messages"),
        "{}",
        text(&out)
    );
}

#[test]
fn validate_names_the_line_and_column_of_a_cut_file() {
    let path = trace_file("validate_cut");
    let full = std::fs::read_to_string(&path).unwrap();
    let cut = &full[..full.len() / 2];
    std::fs::write(&path, cut).unwrap();
    let expected_line = cut.matches('\n').count() + 1;
    let out = run(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains(&format!("invalid JSON at line {expected_line}, column")),
        "{msg}"
    );
}

#[test]
fn validate_points_at_an_inconsistent_event() {
    let path = trace_file("validate_inconsistent");
    let mut t = real_trace().clone();
    let i = t
        .events
        .iter()
        .position(|e| matches!(e.kind, EventKind::Delivered { .. }))
        .unwrap();
    if let EventKind::Delivered { from, .. } = &mut t.events[i].kind {
        *from = meshsim::NodeId(99);
    }
    t.save(&path).unwrap();
    let out = run(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "events[{i}].from: node 99 is not in topology.nodes"
        )),
        "{}",
        text(&out)
    );
}

#[test]
fn stats_counts_what_the_trace_holds() {
    let path = trace_file("stats");
    let t = real_trace();
    let deliver = count(t, |k| matches!(k, EventKind::Delivered { .. }));
    let dups = count(t, |k| matches!(k, EventKind::Duplicate { .. }));
    let grafts = count(t, |k| matches!(k, EventKind::Graft { .. }));

    let out = run(&["stats", "--cdf", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let s = text(&out);
    let total: Vec<&str> = s
        .lines()
        .find(|l| l.starts_with("total"))
        .expect("a total row")
        .split_whitespace()
        .collect();
    assert_eq!(total[1], "2", "publishes: {s}");
    assert_eq!(total[2], deliver.to_string(), "{s}");
    assert_eq!(total[3], dups.to_string(), "{s}");
    assert_eq!(total[4], grafts.to_string(), "{s}");
    assert!(s.contains("100.0%"), "the CDF ends at every delivery: {s}");

    let out = run(&["stats", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["Events"]["Totals"]["Deliver"], deliver);
    let cdf = json["Delays"]["CDF"].as_array().unwrap();
    assert_eq!(cdf.last().unwrap()["Count"], deliver);
    // 20 ms links: no first delivery can come sooner than one hop.
    assert!(cdf[0]["Millis"].as_u64().unwrap() >= 20, "{cdf:?}");
}

#[test]
fn view_writes_the_page_beside_the_trace() {
    let path = trace_file("view");
    let out = run(&["view", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(path.with_extension("html")).unwrap();
    assert_eq!(html, meshsim::view::render(real_trace()));
    assert!(text(&out).contains("trace.html"), "{}", text(&out));
}

/// One HTTP/1.1 request; returns the status line and the body.
fn get(addr: &str, host: &str, target: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn view_serves_the_page_on_loopback() {
    let path = trace_file("serve");
    let mut child = meshsim()
        .args(["view", "--serve", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .map(str::to_string);
    let result = std::panic::catch_unwind(|| {
        let addr = addr.expect("the URL is printed");
        assert!(addr.starts_with("127.0.0.1:"), "{line}");
        let (status, body) = get(&addr, &addr, "/");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, meshsim::view::render(real_trace()));
        let (status, _) = get(&addr, &addr, "/../../etc/passwd");
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        let (status, _) = get(&addr, "evil.example:80", "/");
        assert_eq!(status, "HTTP/1.1 403 Forbidden", "DNS rebinding is refused");
    });
    child.kill().unwrap();
    child.wait().unwrap();
    result.unwrap();
}

#[test]
fn export_writes_every_format_beside_the_trace() {
    let path = trace_file("export");
    for (format, name) in [
        ("pubsub-pb", "trace.pb"),
        ("pubsub-json", "trace.pubsub.json"),
        ("chrome", "trace.chrome.json"),
        ("graphml", "trace.graphml"),
        ("dot", "trace.dot"),
        ("interop", "trace.interop"),
        ("pubsub-pb-gz", "trace.pb.gz"),
        ("gml", "trace.gml"),
        ("all", "trace.exports"),
    ] {
        let out = run(&["export", "--format", format, path.to_str().unwrap()]);
        assert!(out.status.success(), "{format}: {}", text(&out));
        let written = path.with_file_name(name);
        assert!(written.exists(), "{format}: {} missing", written.display());
        assert!(text(&out).contains(name), "{}", text(&out));
    }
    let all = path.with_file_name("trace.exports");
    assert_eq!(
        std::fs::read(all.join(meshsim::export::files::PUBSUB_PB)).unwrap(),
        meshsim::export::pubsub::to_protobuf(real_trace())
    );
    let pb = std::fs::read(path.with_file_name("trace.pb")).unwrap();
    assert_eq!(pb, meshsim::export::pubsub::to_protobuf(real_trace()));
    let out = run(&[
        "export",
        "--format",
        "dot",
        "--out",
        "-",
        path.to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        meshsim::export::graph::to_dot(real_trace())
    );
}

#[test]
fn import_reads_back_an_exported_go_trace() {
    let path = trace_file("import");
    let pb = path.with_file_name("trace.pb");
    std::fs::write(&pb, meshsim::export::pubsub::to_protobuf(real_trace())).unwrap();
    let out = run(&["import", pb.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let imported = Trace::load(&path.with_file_name("trace.meshsim.json")).unwrap();
    let t = real_trace();
    assert_eq!(imported.messages.len(), t.messages.len());
    assert_eq!(
        count(&imported, |k| matches!(k, EventKind::Delivered { .. })),
        count(t, |k| matches!(k, EventKind::Delivered { .. }))
    );
    let out = run(&[
        "validate",
        path.with_file_name("trace.meshsim.json").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn bad_arguments_are_named() {
    let out = run(&["export", "--format", "svg", "x.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("invalid value 'svg'"), "{}", text(&out));
    let out = run(&["stats", "/nonexistent/trace.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("/nonexistent/trace.json"),
        "{}",
        text(&out)
    );
}
