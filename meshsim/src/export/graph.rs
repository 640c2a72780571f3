//! The topology of a trace as GraphML, Graphviz DOT and Shadow-style GML.
//!
//! All three write the underlay: every node (with its name, and its position and peer id
//! when the trace has them) and every link as two directed edges, one per direction, each
//! with that direction's shape. Times are in milliseconds, loss is a probability, bandwidth
//! is in bits per second and left out when unlimited.
//!
//! - [`to_graphml`]: keys declared with `attr.type`; node attributes `name`, `x`, `y`,
//!   `peer_id`; edge attributes `latency` and `jitter` (milliseconds, key ids `latency_ms`
//!   and `jitter_ms`), `loss`, `bandwidth` (bits per second). The attribute names are the
//!   ones [`Topology::from_graphml`](crate::Topology::from_graphml) reads, so the file imports
//!   back into the same links and shapes. XML cannot carry most control characters, even
//!   escaped: they become U+FFFD in names.
//! - [`to_dot`]: a `digraph`; nodes `n<i>` labelled with their names (quotes, backslashes
//!   and line breaks escaped), edges with `latency_ms`, `jitter_ms`, `loss`, `bandwidth_bps`
//!   and a `label`; overlay connections between nodes with no direct link are dashed,
//!   undirected edges with `overlay="true"`.
//! - [`to_gml`]: Shadow's network-graph GML (`directed 1`, `latency "40 ms"`,
//!   `packet_loss`), plus `jitter` and a per-edge `bandwidth "<n> bit"` that
//!   [`Topology::from_gml`](crate::Topology::from_gml) reads. Labels use GML's `&...;`
//!   entities for `"`, `&`, `[`, `]` and non-ASCII characters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use crate::topology::{LinkShape, NodeId, NodeSpec};
use crate::trace::Trace;

/// The nodes to write: the topology's, plus any the links or events name that it lacks, in
/// id order.
fn nodes(trace: &Trace) -> Vec<NodeSpec> {
    let mut by_id: BTreeMap<NodeId, NodeSpec> = trace
        .topology
        .nodes
        .iter()
        .map(|s| (s.id, s.clone()))
        .collect();
    let linked = trace.topology.links.iter().flat_map(|l| [l.a, l.b]);
    for n in super::all_nodes(trace).into_iter().chain(linked) {
        by_id.entry(n).or_insert_with(|| NodeSpec {
            id: n,
            name: n.to_string(),
            position: None,
            peer_id: None,
        });
    }
    by_id.into_values().collect()
}

/// Each link direction: `(from, to, shape)`.
fn directions(trace: &Trace) -> Vec<(NodeId, NodeId, LinkShape)> {
    trace
        .topology
        .links
        .iter()
        .flat_map(|l| [(l.a, l.b, l.a_to_b), (l.b, l.a, l.b_to_a)])
        .collect()
}

/// A duration in milliseconds, written exactly (nanosecond precision, no float rounding).
pub(crate) fn millis(d: Duration) -> String {
    let ns = d.as_nanos();
    let (whole, frac) = (ns / 1_000_000, ns % 1_000_000);
    if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:06}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
}

/// A duration with the coarsest unit that holds it exactly: `"40 ms"`, `"1500 us"`, `"7 ns"`.
fn with_unit(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns.is_multiple_of(1_000_000) {
        format!("{} ms", ns / 1_000_000)
    } else if ns.is_multiple_of(1_000) {
        format!("{} us", ns / 1_000)
    } else {
        format!("{ns} ns")
    }
}

fn float(x: f64) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        "0".into()
    }
}

/// Text for XML (or HTML) content or a double-quoted attribute value.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            // XML 1.0 allows no other C0 controls, not even as references, nor U+FFFE/FFFF.
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The topology as a GraphML document (see the module docs).
pub fn to_graphml(trace: &Trace) -> String {
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://graphml.graphdrawing.org/xmlns \
         http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd\">\n",
    );
    let keys: [(&str, &str, &str, &str, &str); 10] = [
        (
            "description",
            "graph",
            "description",
            "string",
            "how the topology was made",
        ),
        (
            "test",
            "graph",
            "test",
            "string",
            "the test that recorded the trace",
        ),
        ("name", "node", "name", "string", "the node's name"),
        ("x", "node", "x", "double", "position, x"),
        ("y", "node", "y", "double", "position, y"),
        (
            "peer_id",
            "node",
            "peer_id",
            "string",
            "libp2p peer id (base58)",
        ),
        (
            "latency_ms",
            "edge",
            "latency",
            "double",
            "one-way latency in milliseconds",
        ),
        (
            "jitter_ms",
            "edge",
            "jitter",
            "double",
            "jitter in milliseconds (latency varies uniformly by +- this)",
        ),
        ("loss", "edge", "loss", "double", "packet loss probability"),
        (
            "bandwidth",
            "edge",
            "bandwidth",
            "long",
            "bits per second (absent: unlimited)",
        ),
    ];
    for (id, for_, name, ty, desc) in keys {
        let _ = writeln!(
            s,
            "  <key id=\"{id}\" for=\"{for_}\" attr.name=\"{name}\" attr.type=\"{ty}\"><desc>{desc}</desc></key>"
        );
    }
    s.push_str("  <graph id=\"topology\" edgedefault=\"directed\">\n");
    let _ = writeln!(
        s,
        "    <data key=\"description\">{}</data>",
        xml_escape(&trace.topology.description)
    );
    let _ = writeln!(
        s,
        "    <data key=\"test\">{}</data>",
        xml_escape(&trace.meta.test)
    );
    for n in nodes(trace) {
        let _ = write!(
            s,
            "    <node id=\"n{}\"><data key=\"name\">{}</data>",
            n.id.0,
            xml_escape(&n.name)
        );
        if let Some((x, y)) = n.position {
            let _ = write!(
                s,
                "<data key=\"x\">{}</data><data key=\"y\">{}</data>",
                float(x),
                float(y)
            );
        }
        if let Some(p) = &n.peer_id {
            let _ = write!(s, "<data key=\"peer_id\">{}</data>", xml_escape(p));
        }
        s.push_str("</node>\n");
    }
    for (i, (from, to, shape)) in directions(trace).into_iter().enumerate() {
        let _ = write!(
            s,
            "    <edge id=\"e{i}\" source=\"n{}\" target=\"n{}\">\
             <data key=\"latency_ms\">{}</data><data key=\"jitter_ms\">{}</data>\
             <data key=\"loss\">{}</data>",
            from.0,
            to.0,
            millis(shape.latency),
            millis(shape.jitter),
            float(shape.loss)
        );
        if let Some(b) = shape.bandwidth {
            let _ = write!(s, "<data key=\"bandwidth\">{b}</data>");
        }
        s.push_str("</edge>\n");
    }
    s.push_str("  </graph>\n</graphml>\n");
    s
}

/// A DOT double-quoted string: `"` and `\` escaped, line breaks as `\n`, control characters
/// other than tab replaced by U+FFFD.
pub(crate) fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("\\n");
                }
            }
            '\t' => out.push('\t'),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The topology as a Graphviz `digraph` (see the module docs).
pub fn to_dot(trace: &Trace) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph meshsim {{");
    let _ = writeln!(
        s,
        "  graph [label={}, labelloc=\"t\", test={}];",
        dot_quote(&trace.topology.description),
        dot_quote(&trace.meta.test)
    );
    let _ = writeln!(s, "  node [shape=\"ellipse\"];");
    for n in nodes(trace) {
        let _ = write!(s, "  n{} [label={}", n.id.0, dot_quote(&n.name));
        if let Some((x, y)) = n.position {
            let _ = write!(s, ", pos=\"{},{}\"", float(x), float(y));
        }
        if let Some(p) = &n.peer_id {
            let _ = write!(s, ", peer_id={}", dot_quote(p));
        }
        s.push_str("];\n");
    }
    for (from, to, shape) in directions(trace) {
        let mut label = format!("{} ms", millis(shape.latency));
        let _ = write!(
            s,
            "  n{} -> n{} [latency_ms=\"{}\", jitter_ms=\"{}\", loss=\"{}\"",
            from.0,
            to.0,
            millis(shape.latency),
            millis(shape.jitter),
            float(shape.loss)
        );
        if let Some(b) = shape.bandwidth {
            let _ = write!(s, ", bandwidth_bps=\"{b}\"");
            let _ = write!(label, ", {b} bit/s");
        }
        let _ = writeln!(s, ", label={}];", dot_quote(&label));
    }
    let linked: BTreeSet<(NodeId, NodeId)> = trace
        .topology
        .links
        .iter()
        .map(|l| (l.a.min(l.b), l.a.max(l.b)))
        .collect();
    let overlay: BTreeSet<(NodeId, NodeId)> = trace
        .topology
        .overlay
        .iter()
        .map(|&(a, b)| (a.min(b), a.max(b)))
        .filter(|p| p.0 != p.1 && !linked.contains(p))
        .collect();
    for (a, b) in overlay {
        let _ = writeln!(
            s,
            "  n{} -> n{} [style=\"dashed\", dir=\"none\", color=\"gray\", overlay=\"true\"];",
            a.0, b.0
        );
    }
    s.push_str("}\n");
    s
}

/// A GML string: `"`, `&`, `[`, `]`, control and non-ASCII characters as `&...;` entities.
fn gml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("&quot;"),
            '&' => out.push_str("&amp;"),
            c if c == '[' || c == ']' || c.is_control() || !c.is_ascii() => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The topology as a Shadow-style GML network graph (see the module docs). Node `id`s are
/// the node numbers.
pub fn to_gml(trace: &Trace) -> String {
    let mut s = String::from("graph [\n  directed 1\n");
    for n in nodes(trace) {
        let _ = write!(
            s,
            "  node [\n    id {}\n    label {}\n",
            n.id.0,
            gml_quote(&n.name)
        );
        if let Some((x, y)) = n.position {
            let _ = write!(s, "    x {}\n    y {}\n", float(x), float(y));
        }
        if let Some(p) = &n.peer_id {
            let _ = writeln!(s, "    peer_id {}", gml_quote(p));
        }
        s.push_str("  ]\n");
    }
    for (from, to, shape) in directions(trace) {
        let _ = write!(
            s,
            "  edge [\n    source {}\n    target {}\n    latency \"{}\"\n    jitter \"{}\"\n    packet_loss {}\n",
            from.0,
            to.0,
            with_unit(shape.latency),
            with_unit(shape.jitter),
            float(shape.loss)
        );
        if let Some(b) = shape.bandwidth {
            let _ = writeln!(s, "    bandwidth \"{b} bit\"");
        }
        s.push_str("  ]\n");
    }
    s.push_str("]\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Topology;
    use crate::export::sample::{self, ODD_NAME};

    /// The links of an imported topology, as the trace records them.
    fn links_of(t: &Topology) -> Vec<crate::topology::Link> {
        let mut v: Vec<_> = t.links().copied().collect();
        v.sort_by_key(|l| (l.a, l.b));
        v
    }

    #[test]
    fn graphml_imports_back_to_the_same_links_and_shapes() {
        let trace = sample::trace();
        let xml = to_graphml(&trace);
        let t = Topology::from_graphml(&xml).unwrap();
        assert_eq!(t.node_count(), 4);
        assert_eq!(links_of(&t), trace.topology.links);
        for s in &trace.topology.nodes {
            assert_eq!(t.node_spec(s.id).unwrap().name, s.name);
            assert_eq!(t.node_spec(s.id).unwrap().position, s.position);
        }
        // Every key declares its type; every data element uses a declared key.
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let keys: BTreeMap<&str, &str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("key"))
            .map(|k| {
                (
                    k.attribute("id").unwrap(),
                    k.attribute("attr.type").unwrap(),
                )
            })
            .collect();
        assert_eq!(keys["latency_ms"], "double");
        assert_eq!(keys["bandwidth"], "long");
        for d in doc.descendants().filter(|n| n.has_tag_name("data")) {
            assert!(keys.contains_key(d.attribute("key").unwrap()));
        }
        assert_eq!(
            doc.descendants().filter(|n| n.has_tag_name("edge")).count(),
            6
        );
        // Peer ids only where the trace has them (n3 has none).
        let peer_ids = doc
            .descendants()
            .filter(|n| n.has_tag_name("data") && n.attribute("key") == Some("peer_id"))
            .count();
        assert_eq!(peer_ids, 3);
    }

    #[test]
    fn graphml_round_trip_of_odd_shapes() {
        let mut trace = sample::trace();
        for (i, l) in trace.topology.links.iter_mut().enumerate() {
            l.a_to_b.latency = Duration::from_nanos(1 + 999_999_937 * i as u64);
            l.a_to_b.jitter = Duration::from_nanos(3_333_333);
            l.b_to_a.latency = Duration::from_secs(3599) + Duration::from_nanos(999_999_999);
            l.b_to_a.loss = 0.123456789;
            l.b_to_a.bandwidth = Some(123_456_789_012);
        }
        let t = Topology::from_graphml(&to_graphml(&trace)).unwrap();
        assert_eq!(links_of(&t), trace.topology.links);
    }

    #[test]
    fn gml_imports_back_to_the_same_links_and_shapes() {
        let trace = sample::trace();
        let t = Topology::from_gml(&to_gml(&trace)).unwrap();
        assert_eq!(links_of(&t), trace.topology.links);
        assert_eq!(t.node_spec(NodeId(1)).unwrap().name, "n1");
        // The odd name cannot break out of its block: no quote, no bracket inside it.
        let gml = to_gml(&trace);
        let block = gml.split("node [").nth(4).unwrap();
        let block = &block[..block.find(']').unwrap()];
        assert_eq!(
            block.trim_start().lines().nth(1).unwrap().trim(),
            "label \"evil&quot; -> n0 &#91;label=&quot;x\\&#10;line&#93;&#9;&amp;<b>\""
        );
        assert_eq!(block.matches('"').count(), 2, "{block}");
    }

    /// Splits DOT text into tokens, unescaping quoted strings as Graphviz does (`\"` is a
    /// quote; any other backslash stays, to be read by label escapes such as `\n` and `\\`).
    fn dot_tokens(s: &str) -> Vec<(bool, String)> {
        let mut out = Vec::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                let mut v = String::new();
                loop {
                    match chars.next().expect("unterminated string") {
                        '\\' => match chars.next().unwrap() {
                            '"' => v.push('"'),
                            other => {
                                v.push('\\');
                                v.push(other)
                            }
                        },
                        '"' => break,
                        c => v.push(c),
                    }
                }
                out.push((true, v));
            } else if c.is_whitespace() {
            } else if c.is_alphanumeric() || c == '_' {
                let mut v = c.to_string();
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' {
                        v.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push((false, v));
            } else if c == '-' && chars.peek() == Some(&'>') {
                chars.next();
                out.push((false, "->".into()));
            } else {
                out.push((false, c.to_string()));
            }
        }
        out
    }

    /// What a label escape sequence shows: `\\` a backslash, `\n` a line break.
    fn label_text(s: &str) -> String {
        s.replace("\\n", "\n").replace("\\\\", "\\")
    }

    #[test]
    fn dot_survives_hostile_names() {
        let mut trace = sample::trace();
        trace.topology.nodes[0].name = "a\\".into();
        trace.topology.nodes[1].name = "\"; rankdir=LR; x=\"".into();
        trace.topology.nodes[2].name = "two\r\nlines\u{7}".into();
        let dot = to_dot(&trace);
        let toks = dot_tokens(&dot);
        // Only the structure meshsim wrote is outside strings: 6 link directions plus the
        // dashed overlay pair n0 - n2.
        let arrows = toks.iter().filter(|(q, t)| !q && t == "->").count();
        assert_eq!(arrows, 7);
        let bare: Vec<&str> = toks
            .iter()
            .filter(|(q, _)| !q)
            .map(|(_, t)| t.as_str())
            .collect();
        assert!(!bare.contains(&"rankdir"), "a name escaped its string");
        assert_eq!(bare.iter().filter(|t| **t == "{").count(), 1);
        assert_eq!(bare.iter().filter(|t| **t == "}").count(), 1);
        let labels: Vec<String> = toks
            .windows(3)
            .filter(|w| !w[0].0 && w[0].1 == "label" && w[1].1 == "=" && w[2].0)
            .map(|w| label_text(&w[2].1))
            .collect();
        for want in [
            "a\\",
            "\"; rankdir=LR; x=\"",
            "two\nlines\u{fffd}",
            ODD_NAME,
        ] {
            assert!(
                labels.iter().any(|l| l == want),
                "{want:?} not among {labels:?}"
            );
        }
        assert!(dot.contains("overlay=\"true\""));
        assert!(dot.contains("latency_ms=\"12.345678\""));
        assert!(dot.contains("bandwidth_bps=\"10000000\""));
    }

    #[test]
    fn millis_are_exact() {
        assert_eq!(millis(Duration::from_millis(40)), "40");
        assert_eq!(millis(Duration::from_micros(2500)), "2.5");
        assert_eq!(millis(Duration::from_nanos(12_345_678)), "12.345678");
        assert_eq!(millis(Duration::from_nanos(1)), "0.000001");
        assert_eq!(with_unit(Duration::from_micros(2500)), "2500 us");
        assert_eq!(with_unit(Duration::from_nanos(7)), "7 ns");
    }
}
