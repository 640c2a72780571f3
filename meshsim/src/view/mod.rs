//! The trace viewer: one self-contained HTML file per trace.
//!
//! [`render`] turns a [`Trace`](crate::Trace) into a single HTML page that replays the run the
//! way the original meshsim animated live traffic: nodes and links (labelled with latency and
//! bandwidth, coloured by shape), a dot travelling along the link each copy of a message used,
//! a bubble where a node receives, nodes coloured by what they hold, duplicates, partitions and
//! node failures; with play, pause, speed, timeline scrubbing, stepping by event, a message
//! picker, per-message statistics and a delivery-latency CDF.
//!
//! The page needs no network and no build step: the JavaScript and CSS are inlined, and the
//! trace is embedded as JSON in `<script type="application/json" id="meshsim-trace">`. A trace
//! is untrusted input: the JSON is escaped so that nothing in it can close the script element,
//! the title is HTML-escaped, and the script only ever puts trace strings into the page as text.
//! A Content-Security-Policy allows no network access and no script but the viewer's own
//! (pinned by its SHA-256 hash).
//!
//! The DOM contract the page keeps (element ids, `data-*` attributes, `body[data-phase]`, URL
//! hash options) is documented at the top of `viewer.js`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::Trace;
use crate::error::TraceFileError;
use crate::export::graph::xml_escape;
use crate::trace::write_whole;

const TEMPLATE: &str = include_str!("viewer.html");
const SCRIPT: &str = include_str!("viewer.js");
const STYLE: &str = include_str!("viewer.css");

/// The viewer page for `trace`: one self-contained HTML document.
pub fn render(trace: &Trace) -> String {
    let json = serde_json::to_string(trace).expect("a trace always serialises");
    let trace_json = escape_json_for_script(&json);
    // XML escaping is valid HTML escaping (and drops control characters a title cannot hold).
    let title = xml_escape(&trace.meta.test);
    let hash = script_hash();
    fill(
        TEMPLATE,
        &[
            ("TITLE", &title),
            ("SCRIPT_HASH", hash),
            ("STYLE", STYLE),
            ("TRACE", &trace_json),
            ("SCRIPT", SCRIPT),
        ],
    )
}

/// Writes the viewer page for `trace` to `path`, creating folders as needed. Written to a
/// temporary file first and renamed, so a reader never sees half a page.
pub fn write(trace: &Trace, path: &Path) -> Result<(), TraceFileError> {
    write_whole(path, render(trace).as_bytes()).map_err(|source| TraceFileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The viewer file that goes next to a trace file: `trace.json` -> `trace.html`,
/// `trace-2.json` -> `trace-2.html`.
pub fn viewer_path(trace_path: &Path) -> PathBuf {
    trace_path.with_extension("html")
}

/// Replaces `{{NAME}}` placeholders in one pass, so substituted text is never scanned again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let extra: usize = values.iter().map(|(_, v)| v.len()).sum();
    let mut out = String::with_capacity(template.len() + extra);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let hit = after.find("}}").and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v, end))
        });
        match hit {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Makes JSON text safe inside a `<script>` element: `<`, `>` and `&` can only occur inside
/// JSON strings, where their `\u` escapes mean the same; U+2028 and U+2029 are escaped too.
fn escape_json_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The CSP source for the inlined script: `sha256-<base64 of its SHA-256>`.
fn script_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        format!(
            "sha256-{}",
            STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()))
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Trace;
    use crate::topology::{Link, LinkShape, NodeId, NodeSpec};
    use crate::trace::{Event, EventKind, MessageInfo, Meta, MsgId, TopologySnapshot};
    use std::time::Duration;

    fn sample(test: &str, name: &str) -> Trace {
        let shape = LinkShape {
            latency: Duration::from_millis(40),
            jitter: Duration::from_millis(2),
            loss: 0.005,
            bandwidth: Some(10_000_000),
        };
        Trace {
            format: crate::trace::FORMAT.into(),
            version: crate::trace::VERSION,
            meta: Meta {
                test: test.into(),
                backend: "in-process".into(),
                shaping: "simulated (user space)".into(),
                seed: 7,
                node_software: "rust-libp2p gossipsub".into(),
                params: serde_json::Value::Null,
                software: Vec::new(),
                started_at_unix_ns: 1_700_000_000_000_000_000,
                meshsim_version: "0.1.0".into(),
                dilation: 1.0,
                time: crate::time::TimeMode::Real,
                deterministic: false,
            },
            topology: TopologySnapshot {
                description: "line(2) \u{2028} & <b>".into(),
                nodes: vec![
                    NodeSpec {
                        id: NodeId(0),
                        name: name.into(),
                        position: Some((1.0, 2.0)),
                        peer_id: None,
                    },
                    NodeSpec {
                        id: NodeId(1),
                        name: "n1\u{2029}".into(),
                        position: None,
                        peer_id: Some("12D3KooW".into()),
                    },
                ],
                links: vec![Link {
                    a: NodeId(0),
                    b: NodeId(1),
                    a_to_b: shape,
                    b_to_a: shape,
                }],
                overlay: vec![(NodeId(0), NodeId(1))],
            },
            messages: vec![MessageInfo {
                id: MsgId(0),
                origin: NodeId(0),
                topic: "<img src=x onerror=\"window.__pwned=1\">".into(),
                size: 64,
                published_ns: 1_000,
                expected: vec![NodeId(1)],
            }],
            events: vec![
                Event {
                    t_ns: 1_000,
                    node: Some(NodeId(0)),
                    kind: EventKind::Published {
                        msg: MsgId(0),
                        topic: "t".into(),
                        size: 64,
                    },
                },
                Event {
                    t_ns: 41_000_000,
                    node: Some(NodeId(1)),
                    kind: EventKind::Delivered {
                        msg: MsgId(0),
                        from: NodeId(0),
                    },
                },
                Event {
                    t_ns: 50_000_000,
                    node: None,
                    kind: EventKind::Annotation {
                        text: "</script><script>window.__pwned=1</script> & done".into(),
                    },
                },
            ],
            lag: None,
        }
    }

    fn embedded_json(html: &str) -> &str {
        let open = "<script type=\"application/json\" id=\"meshsim-trace\">";
        let start = html.find(open).expect("the trace element") + open.len();
        let len = html[start..].find("</script>").expect("its end");
        &html[start..start + len]
    }

    #[test]
    fn embedded_json_round_trips() {
        let trace = sample("view::round_trip", "n0");
        let html = render(&trace);
        let json = embedded_json(&html);
        let back: Trace = serde_json::from_str(json).expect("valid JSON");
        assert_eq!(back, trace);
        assert!(!json.contains('\u{2028}') && !json.contains('\u{2029}'));
    }

    #[test]
    fn trace_strings_cannot_break_out() {
        let trace = sample("<b>x</b>", "</script><script>alert(1)</script>");
        let html = render(&trace);
        assert!(
            !html.contains("</script><script>"),
            "script element closed early"
        );
        assert!(!html.contains("<b>"), "raw markup from the test name");
        assert!(!html.contains("<img"), "raw markup from a topic");
        assert!(html.contains("<title>&lt;b&gt;x&lt;/b&gt;"));
        // Exactly the two script elements of the template close.
        assert_eq!(html.matches("</script>").count(), 2);
        let back: Trace = serde_json::from_str(embedded_json(&html)).unwrap();
        assert_eq!(
            back.topology.nodes[0].name,
            "</script><script>alert(1)</script>"
        );
    }

    #[test]
    fn page_is_self_contained() {
        let html = render(&sample("t", "n0"));
        for name in ["TITLE", "SCRIPT_HASH", "STYLE", "TRACE", "SCRIPT"] {
            assert!(
                !html.contains(&format!("{{{{{name}}}}}")),
                "{name} not filled"
            );
        }
        for needle in [
            "src=\"",
            "href=\"http",
            "@import",
            "url(",
            "fetch(",
            "XMLHttpRequest",
        ] {
            assert!(!html.contains(needle), "page contains {needle:?}");
        }
        assert!(html.contains("default-src 'none'"));
        assert!(html.contains(&format!("'{}'", script_hash())));
        // The inlined code cannot end its own element.
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"));
        assert!(!STYLE.to_ascii_lowercase().contains("</style"));
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("eval("));
    }

    #[test]
    fn viewer_path_replaces_the_extension() {
        assert_eq!(
            viewer_path(Path::new("target/meshsim/t/trace.json")),
            PathBuf::from("target/meshsim/t/trace.html")
        );
        assert_eq!(
            viewer_path(Path::new("trace-2.json")),
            PathBuf::from("trace-2.html")
        );
        assert_eq!(viewer_path(Path::new("trace")), PathBuf::from("trace.html"));
    }

    #[test]
    fn write_creates_folders() {
        let dir = std::env::temp_dir().join(format!("meshsim-view-{}", std::process::id()));
        let path = dir.join("a/b/trace.html");
        write(&sample("t", "n0"), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<!doctype html>"));
        assert!(!path.with_extension("html.partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn script_hash_is_the_csp_form_of_the_scripts_sha256() {
        // `echo -n abc | openssl dgst -sha256 -binary | base64`, the form CSP expects.
        assert_eq!(
            STANDARD.encode(Sha256::digest(b"abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        let hash = script_hash();
        assert!(
            hash.starts_with("sha256-") && hash.len() == 7 + 44,
            "{hash}"
        );
        assert!(render(&sample("t", "n0")).contains(&format!("'{hash}'")));
    }

    #[test]
    fn fill_does_not_rescan_values() {
        assert_eq!(
            fill("a{{X}}b{{Y}}c{{Z}}", &[("X", "{{Y}}"), ("Y", "2")]),
            "a{{Y}}b2c{{Z}}"
        );
    }

    /// Writes a viewer for the trace named by `MESHSIM_VIEW_TRACE` to
    /// `MESHSIM_VIEW_OUT` (or next to it): `cargo test -p meshsim --lib view -- --ignored`.
    #[test]
    #[ignore]
    fn render_file_from_env() {
        let Some(input) = std::env::var_os("MESHSIM_VIEW_TRACE") else {
            return;
        };
        let input = PathBuf::from(input);
        let trace = Trace::load(&input).unwrap();
        let out = std::env::var_os("MESHSIM_VIEW_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| viewer_path(&input));
        write(&trace, &out).unwrap();
        println!("wrote {}", out.display());
    }
}
