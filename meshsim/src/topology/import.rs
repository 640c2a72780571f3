//! Import of graphs people already have: Shadow's GML network graphs and GraphML.
//!
//! Attributes understood (both formats): on nodes `label`/`name`, `x`, `y`,
//! `host_bandwidth_up`/`host_bandwidth_down` (Shadow) or `bandwidth`; on edges `latency`,
//! `jitter`, `packet_loss`/`loss`, `bandwidth`. Times are strings with a unit (`"50 ms"`,
//! Shadow's form) or bare numbers in milliseconds; bandwidths are strings with a unit
//! (`"100 Mbit"`, `"10 MiB"`) or bare numbers in bits per second.
//!
//! A directed edge gives the shape of one direction; when only one direction of a pair is
//! given, the other gets the same shape. An undirected edge `a - b` gets its shape in both
//! directions, with bandwidth `min(a up, b down)` one way and `min(b up, a down)` the other
//! when nodes carry bandwidths. Self-loops (Shadow's latency within one graph node) are
//! skipped: each graph node is one simulated node.

use std::collections::HashMap;
use std::time::Duration;

use super::{LinkShape, NodeId, Topology};
use crate::error::ImportError;

#[derive(Default, Clone)]
struct NodeAttrs {
    name: Option<String>,
    x: Option<f64>,
    y: Option<f64>,
    up: Option<u64>,
    down: Option<u64>,
}

struct EdgeAttrs {
    source: String,
    target: String,
    shape: LinkShape,
    has_bandwidth: bool,
}

struct Graph {
    format: &'static str,
    directed: bool,
    nodes: Vec<(String, NodeAttrs)>,
    edges: Vec<EdgeAttrs>,
}

impl Topology {
    /// Imports a Shadow network graph in GML (`graph [ directed 0 node [ id 0 ... ] edge [ ... ] ]`).
    pub fn from_gml(text: &str) -> Result<Topology, ImportError> {
        gml::parse(text)?.build()
    }

    /// Imports a GraphML document.
    pub fn from_graphml(text: &str) -> Result<Topology, ImportError> {
        graphml::parse(text)?.build()
    }
}

impl Graph {
    fn build(self) -> Result<Topology, ImportError> {
        let format = self.format;
        let mut index = HashMap::new();
        let mut t = Topology::with_nodes(self.nodes.len());
        for (i, (id, attrs)) in self.nodes.iter().enumerate() {
            let n = NodeId(i as u32);
            if index.insert(id.clone(), n).is_some() {
                return Err(ImportError::Value {
                    format,
                    item: format!("node {id}"),
                    attribute: "id".into(),
                    value: id.clone(),
                    why: "declared twice".into(),
                });
            }
            t.set_name(n, attrs.name.clone().unwrap_or_else(|| n.to_string()));
            if let (Some(x), Some(y)) = (attrs.x, attrs.y) {
                t.set_position(n, (x, y));
            }
        }
        let lookup = |id: &str| {
            index
                .get(id)
                .copied()
                .ok_or_else(|| ImportError::UnknownNode {
                    format,
                    id: id.to_string(),
                })
        };
        // Collect the shape of each direction, keyed by (lo, hi).
        let mut dirs: HashMap<(NodeId, NodeId), (Option<LinkShape>, Option<LinkShape>)> =
            HashMap::new();
        let mut order = Vec::new();
        for e in &self.edges {
            let (s, d) = (lookup(&e.source)?, lookup(&e.target)?);
            if s == d {
                continue;
            }
            let node_bw = |from: NodeId, to: NodeId| {
                let up = self.nodes[from.index()].1.up;
                let down = self.nodes[to.index()].1.down;
                match (up, down) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            let shape_for = |from, to| {
                let mut shape = e.shape;
                if !e.has_bandwidth {
                    shape.bandwidth = node_bw(from, to);
                }
                shape
            };
            let key = (s.min(d), s.max(d));
            let entry = dirs.entry(key).or_insert_with(|| {
                order.push(key);
                (None, None)
            });
            let forward = s < d;
            if self.directed {
                let slot = if forward { &mut entry.0 } else { &mut entry.1 };
                *slot = Some(shape_for(s, d));
            } else {
                entry.0 = Some(shape_for(key.0, key.1));
                entry.1 = Some(shape_for(key.1, key.0));
            }
        }
        for key in order {
            let (ab, ba) = dirs[&key];
            let ab_ = ab.or(ba).expect("one direction is present");
            let ba_ = ba.or(ab).expect("one direction is present");
            t.link_directed(key.0, key.1, ab_, ba_)
                .map_err(|source| ImportError::Topology { format, source })?;
        }
        let kind = if format == "GML" { "gml" } else { "graphml" };
        Ok(t.described(format!(
            "{kind}(nodes={}, edges={})",
            self.nodes.len(),
            self.edges.len()
        )))
    }
}

/// Parses `"50 ms"`, `"1.5s"`, `"200 us"` or a bare number of milliseconds.
fn parse_time(v: &Value) -> Result<Duration, String> {
    let (num, unit) = split_unit(v)?;
    let scale = match unit.as_str() {
        "" | "ms" | "millisecond" | "milliseconds" => 1e-3,
        "s" | "sec" | "second" | "seconds" => 1.0,
        "us" | "μs" | "microsecond" | "microseconds" => 1e-6,
        "ns" | "nanosecond" | "nanoseconds" => 1e-9,
        other => return Err(format!("unknown time unit {other:?} (use ns, us, ms or s)")),
    };
    if !(num.is_finite() && num >= 0.0) {
        return Err("must be a non-negative number".into());
    }
    Ok(Duration::from_secs_f64(num * scale))
}

/// Parses `"100 Mbit"`, `"81920 Kibit"`, `"10 MiB"` (bytes) or a bare number of bits per second.
fn parse_bandwidth(v: &Value) -> Result<u64, String> {
    let (num, unit) = split_unit(v)?;
    let (prefix, bytes) = if let Some(p) = unit.strip_suffix("bit") {
        (p, false)
    } else if let Some(p) = unit.strip_suffix('B') {
        (p, true)
    } else if unit.is_empty() {
        ("", false)
    } else {
        return Err(format!(
            "unknown bandwidth unit {unit:?} (use bit, Kbit, Mbit, Gbit, Kibit, ... or B, KB, MiB, ...)"
        ));
    };
    let mult: f64 = match prefix {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        other => return Err(format!("unknown unit prefix {other:?}")),
    };
    let bits = num * mult * if bytes { 8.0 } else { 1.0 };
    if !(bits.is_finite() && bits >= 1.0) {
        return Err("must be a positive bandwidth".into());
    }
    Ok(bits.round() as u64)
}

fn parse_loss(v: &Value) -> Result<f64, String> {
    let (num, unit) = split_unit(v)?;
    if !unit.is_empty() {
        return Err("must be a bare number between 0 and 1".into());
    }
    if !(num.is_finite() && (0.0..1.0).contains(&num)) {
        return Err("must be a probability in [0, 1)".into());
    }
    Ok(num)
}

fn split_unit(v: &Value) -> Result<(f64, String), String> {
    match v {
        Value::Num(n) => Ok((*n, String::new())),
        Value::Str(s) => {
            let s = s.trim();
            let end = s
                .find(|c: char| {
                    !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e')
                })
                .unwrap_or(s.len());
            let (num, unit) = s.split_at(end);
            let num: f64 = num
                .trim()
                .parse()
                .map_err(|_| "is not a number".to_string())?;
            Ok((num, unit.trim().to_string()))
        }
        Value::List(_) => Err("is a list, expected a value".into()),
    }
}

/// A parsed attribute value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Num(f64),
    Str(String),
    List(Vec<(String, Value, usize)>),
}

impl Value {
    fn as_text(&self) -> String {
        match self {
            Value::Num(n) => n.to_string(),
            Value::Str(s) => s.clone(),
            Value::List(_) => "[...]".into(),
        }
    }
}

/// Applies one edge attribute; unknown attributes are ignored.
fn edge_attr(
    format: &'static str,
    e: &mut EdgeAttrs,
    key: &str,
    v: &Value,
) -> Result<(), ImportError> {
    let res = match key {
        "latency" => parse_time(v).map(|d| e.shape.latency = d),
        "jitter" => parse_time(v).map(|d| e.shape.jitter = d),
        "packet_loss" | "loss" => parse_loss(v).map(|l| e.shape.loss = l),
        "bandwidth" => parse_bandwidth(v).map(|b| {
            e.shape.bandwidth = Some(b);
            e.has_bandwidth = true;
        }),
        _ => Ok(()),
    };
    res.map_err(|why| ImportError::Value {
        format,
        item: format!("edge {} -> {}", e.source, e.target),
        attribute: key.into(),
        value: v.as_text(),
        why,
    })
}

/// Applies one node attribute; unknown attributes are ignored.
fn node_attr(
    format: &'static str,
    id: &str,
    n: &mut NodeAttrs,
    key: &str,
    v: &Value,
) -> Result<(), ImportError> {
    let num = |v: &Value| match v {
        Value::Num(x) if x.is_finite() => Ok(*x),
        _ => Err("must be a finite number".to_string()),
    };
    let res = match key {
        "label" | "name" => {
            n.name = Some(v.as_text());
            Ok(())
        }
        "x" => num(v).map(|x| n.x = Some(x)),
        "y" => num(v).map(|y| n.y = Some(y)),
        "host_bandwidth_up" => parse_bandwidth(v).map(|b| n.up = Some(b)),
        "host_bandwidth_down" => parse_bandwidth(v).map(|b| n.down = Some(b)),
        "bandwidth" => parse_bandwidth(v).map(|b| {
            n.up = Some(b);
            n.down = Some(b);
        }),
        _ => Ok(()),
    };
    res.map_err(|why| ImportError::Value {
        format,
        item: format!("node {id}"),
        attribute: key.into(),
        value: v.as_text(),
        why,
    })
}

mod gml {
    use super::*;

    const F: &str = "GML";

    fn syntax(line: usize, message: impl Into<String>) -> ImportError {
        ImportError::Syntax {
            format: F,
            line,
            message: message.into(),
        }
    }

    /// Parses GML's `key value` pairs, where a value is a number, a quoted string or a `[ ... ]` list.
    fn parse_list(
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
        line: &mut usize,
        opened_at: Option<usize>,
    ) -> Result<Vec<(String, Value, usize)>, ImportError> {
        let mut out = Vec::new();
        loop {
            skip_space(chars, line);
            let Some(&c) = chars.peek() else {
                return match opened_at {
                    Some(at) => Err(syntax(
                        at,
                        format!("the '[' opened at line {at} is never closed"),
                    )),
                    None => Ok(out),
                };
            };
            if c == ']' {
                chars.next();
                return if opened_at.is_some() {
                    Ok(out)
                } else {
                    Err(syntax(*line, "unexpected ']'"))
                };
            }
            if !(c.is_ascii_alphabetic() || c == '_') {
                return Err(syntax(*line, format!("expected a key, found {c:?}")));
            }
            let mut key = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    key.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            let key_line = *line;
            skip_space(chars, line);
            let value = match chars.peek() {
                None => return Err(syntax(*line, format!("key {key:?} has no value"))),
                Some('[') => {
                    chars.next();
                    Value::List(parse_list(chars, line, Some(*line))?)
                }
                Some('"') => {
                    chars.next();
                    let mut s = String::new();
                    loop {
                        match chars.next() {
                            None => {
                                return Err(syntax(
                                    key_line,
                                    format!("unterminated string for key {key:?}"),
                                ));
                            }
                            Some('"') => break,
                            Some(c) => {
                                if c == '\n' {
                                    *line += 1;
                                }
                                s.push(c);
                            }
                        }
                    }
                    Value::Str(s)
                }
                Some(_) => {
                    let mut s = String::new();
                    while let Some(&c) = chars.peek() {
                        if c.is_whitespace() || c == '[' || c == ']' {
                            break;
                        }
                        s.push(c);
                        chars.next();
                    }
                    Value::Num(s.parse().map_err(|_| {
                        syntax(
                            *line,
                            format!(
                                "value {s:?} of key {key:?} is not a number or a quoted string"
                            ),
                        )
                    })?)
                }
            };
            out.push((key, value, key_line));
        }
    }

    fn skip_space(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, line: &mut usize) {
        while let Some(&c) = chars.peek() {
            if c == '\n' {
                *line += 1;
                chars.next();
            } else if c.is_whitespace() {
                chars.next();
            } else if c == '#' {
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                }
            } else {
                break;
            }
        }
    }

    pub(super) fn parse(text: &str) -> Result<Graph, ImportError> {
        let mut line = 1;
        let top = parse_list(&mut text.chars().peekable(), &mut line, None)?;
        let Some((_, Value::List(items), _)) = top.into_iter().find(|(k, _, _)| k == "graph")
        else {
            return Err(syntax(1, "no 'graph [ ... ]' block"));
        };
        let mut g = Graph {
            format: F,
            directed: false,
            nodes: Vec::new(),
            edges: Vec::new(),
        };
        for (key, value, line) in items {
            match (key.as_str(), value) {
                ("directed", Value::Num(d)) => g.directed = d != 0.0,
                ("node", Value::List(attrs)) => {
                    let id = attrs
                        .iter()
                        .find(|(k, _, _)| k == "id")
                        .map(|(_, v, _)| v.as_text())
                        .ok_or_else(|| syntax(line, "node without id"))?;
                    let mut n = NodeAttrs::default();
                    for (k, v, _) in &attrs {
                        if k == "graphics" {
                            if let Value::List(gfx) = v {
                                for (k, v, _) in gfx {
                                    node_attr(F, &id, &mut n, k, v)?;
                                }
                            }
                        } else {
                            node_attr(F, &id, &mut n, k, v)?;
                        }
                    }
                    g.nodes.push((id, n));
                }
                ("edge", Value::List(attrs)) => {
                    let get = |name: &str| {
                        attrs
                            .iter()
                            .find(|(k, _, _)| k == name)
                            .map(|(_, v, _)| v.as_text())
                            .ok_or_else(|| syntax(line, format!("edge without {name}")))
                    };
                    let mut e = EdgeAttrs {
                        source: get("source")?,
                        target: get("target")?,
                        shape: LinkShape::default(),
                        has_bandwidth: false,
                    };
                    for (k, v, _) in &attrs {
                        edge_attr(F, &mut e, k, v)?;
                    }
                    g.edges.push(e);
                }
                ("node" | "edge", _) => {
                    return Err(syntax(line, format!("{key} must be a [ ... ] block")));
                }
                _ => {}
            }
        }
        Ok(g)
    }
}

mod graphml {
    use super::*;

    const F: &str = "GraphML";

    pub(super) fn parse(text: &str) -> Result<Graph, ImportError> {
        let doc = roxmltree::Document::parse(text).map_err(|e| ImportError::Syntax {
            format: F,
            line: e.pos().row as usize,
            message: e.to_string(),
        })?;
        let root = doc.root_element();
        // key id -> attribute name (attr.name, or the id itself)
        let mut keys = HashMap::new();
        for k in root.children().filter(|n| n.has_tag_name("key")) {
            if let Some(id) = k.attribute("id") {
                keys.insert(
                    id.to_string(),
                    k.attribute("attr.name").unwrap_or(id).to_string(),
                );
            }
        }
        let graph = root
            .children()
            .find(|n| n.has_tag_name("graph"))
            .ok_or_else(|| ImportError::Syntax {
                format: F,
                line: 1,
                message: "no <graph> element".into(),
            })?;
        let line_of = |n: roxmltree::Node| doc.text_pos_at(n.range().start).row as usize;
        let mut g = Graph {
            format: F,
            directed: graph.attribute("edgedefault") == Some("directed"),
            nodes: Vec::new(),
            edges: Vec::new(),
        };
        let data = |n: roxmltree::Node<'_, '_>| -> Vec<(String, Value)> {
            n.children()
                .filter(|c| c.has_tag_name("data"))
                .filter_map(|d| {
                    let key = d.attribute("key")?;
                    let name = keys.get(key).cloned().unwrap_or_else(|| key.to_string());
                    let text = d.text().unwrap_or("").trim().to_string();
                    let v = text
                        .parse::<f64>()
                        .map(Value::Num)
                        .unwrap_or(Value::Str(text));
                    Some((name, v))
                })
                .collect()
        };
        for n in graph.children().filter(|n| n.is_element()) {
            if n.has_tag_name("node") {
                let id = n.attribute("id").ok_or_else(|| ImportError::Syntax {
                    format: F,
                    line: line_of(n),
                    message: "<node> without id".into(),
                })?;
                let mut attrs = NodeAttrs::default();
                for (k, v) in data(n) {
                    node_attr(F, id, &mut attrs, &k, &v)?;
                }
                g.nodes.push((id.to_string(), attrs));
            } else if n.has_tag_name("edge") {
                let attr = |name| {
                    n.attribute(name)
                        .map(str::to_string)
                        .ok_or_else(|| ImportError::Syntax {
                            format: F,
                            line: line_of(n),
                            message: format!("<edge> without {name}"),
                        })
                };
                let mut e = EdgeAttrs {
                    source: attr("source")?,
                    target: attr("target")?,
                    shape: LinkShape::default(),
                    has_bandwidth: false,
                };
                for (k, v) in data(n) {
                    edge_attr(F, &mut e, &k, &v)?;
                }
                g.edges.push(e);
            }
        }
        Ok(g)
    }
}
