#!/usr/bin/env python3
"""Checks the exports of a meshsim trace with implementations independent of meshsim's.

Usage: python3 .ci/check_exports.py <dir>

<dir> is a folder as `meshsim::export::write_all` writes it (the test
`tests/tests/export.rs::exports_of_a_real_run` writes one to
`<trace dir>/export.exports_of_a_real_run/exports/`):

  trace.json          the meshsim trace (the reference for everything below)
  trace.pb            go-libp2p-pubsub TraceEvents, varint-length-delimited protobuf
  trace.pb.gz         the same, gzip-compressed (what `traced` writes, `tracestat` reads)
  trace.pubsub.json   the same events as go-libp2p-pubsub's JSONTracer writes them
  chrome.json         Chrome / Perfetto trace-event JSON
  topology.graphml    the topology as GraphML
  topology.dot        the topology as Graphviz DOT
  topology.gml        the topology as Shadow-style GML
  interop/            gossipsub-interop output: hosts/node<i>/*.stdout, shadow.yaml, graph.gml

The protobuf schema (meshsim/proto/pubsub/trace.proto, go-libp2p-pubsub's published one) is
compiled at run time with grpcio-tools into Python classes (installed with pip if missing),
and trace.pb is decoded frame by frame with them. Every check that fails is reported; the
exit status is 1 if any did.
"""

import base64
import gzip
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO = os.path.join(REPO, "meshsim", "proto", "pubsub", "trace.proto")

# go-libp2p-pubsub TraceEvent.Type values.
PUBLISH, REJECT, DUPLICATE, DELIVER, NEW_STREAM, CLOSED_STREAM = 0, 1, 2, 3, 4, 5
RECV_RPC, SEND_RPC, DROP_RPC, JOIN, LEAVE, GRAFT, PRUNE = 6, 7, 8, 9, 10, 11, 12
TYPE_OF_KIND = {
    "published": PUBLISH,
    "duplicate": DUPLICATE,
    "delivered": DELIVER,
    "peer_connected": NEW_STREAM,
    "peer_disconnected": CLOSED_STREAM,
    "subscribed": JOIN,
    "unsubscribed": LEAVE,
    "graft": GRAFT,
    "prune": PRUNE,
}
# Field order of the gogo-generated Go structs (encoding/json writes struct order).
GO_ORDER = [
    "type", "peerID", "timestamp", "publishMessage", "rejectMessage", "duplicateMessage",
    "deliverMessage", "onNewOutboundStream", "onClosedOutboundStream", "recvRPC", "sendRPC",
    "dropRPC", "join", "leave", "graft", "prune",
]
GO_SUB_ORDER = {
    "publishMessage": ["messageID", "topic"],
    "duplicateMessage": ["messageID", "receivedFrom", "topic"],
    "deliverMessage": ["messageID", "topic", "receivedFrom"],
    "onNewOutboundStream": ["peerID", "proto"],
    "onClosedOutboundStream": ["peerID"],
    "join": ["topic"],
    "leave": ["topic"],
    "graft": ["peerID", "topic"],
    "prune": ["peerID", "topic"],
}

failures = []
_PB2_DIR = None


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58_decode(s):
    n = 0
    for c in s:
        n = n * 58 + B58.index(c)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(s) - len(s.lstrip("1"))) + body


def load_pb2():
    try:
        import grpc_tools.protoc  # noqa: F401
        import google.protobuf  # noqa: F401
    except ImportError:
        subprocess.check_call(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "grpcio-tools", "protobuf"]
        )
    from grpc_tools import protoc

    global _PB2_DIR
    _PB2_DIR = tempfile.TemporaryDirectory(prefix="meshsim-pb2-")  # removed at exit
    out = _PB2_DIR.name
    rc = protoc.main(["protoc", f"-I{os.path.dirname(PROTO)}", f"--python_out={out}", PROTO])
    if rc != 0:
        sys.exit(f"FAIL: protoc could not compile {PROTO} (exit {rc})")
    sys.path.insert(0, out)
    return importlib.import_module("trace_pb2")


def read_frames(data):
    """Splits varint-length-delimited frames; returns (offset, bytes) pairs."""
    frames, off = [], 0
    while off < len(data):
        start, length, shift = off, 0, 0
        while True:
            if off >= len(data):
                fail(f"trace.pb: length prefix at byte {start} cut short")
                return frames
            b = data[off]
            off += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if off + length > len(data):
            fail(f"trace.pb: frame at byte {start} needs {length} bytes, {len(data) - off} left")
            return frames
        frames.append((start, data[off:off + length]))
        off += length
    return frames


class Trace:
    def __init__(self, path):
        with open(path) as f:
            self.t = json.load(f)
        check(self.t.get("format") == "meshsim-trace", "trace.json is not a meshsim trace")
        self.start = self.t["meta"]["started_at_unix_ns"]
        self.nodes = {n["id"]: n for n in self.t["topology"]["nodes"]}
        self.peer = {}
        for i, n in self.nodes.items():
            if check(n.get("peer_id"), f"trace.json: node {i} has no peer_id"):
                self.peer[i] = base58_decode(n["peer_id"])
        self.messages = {m["id"]: m for m in self.t["messages"]}
        self.events = self.t["events"]

    def kinds(self, kind):
        return [e for e in self.events if e["type"] == kind]

    def mapped(self):
        return [e for e in self.events if "node" in e and e["type"] in TYPE_OF_KIND]


def msg_id(m):
    return m.to_bytes(8, "big")


def check_pb_against_trace(tr, evs):
    mapped = tr.mapped()
    check(len(evs) == len(mapped),
          f"trace.pb: {len(evs)} TraceEvents for {len(mapped)} mappable trace events")
    for i, (e, ev) in enumerate(zip(mapped, evs)):
        where = f"trace.pb event {i} ({e['type']} at n{e['node']}, t={e['t_ns']})"
        if not check(ev.type == TYPE_OF_KIND[e["type"]], f"{where}: type {ev.type}"):
            continue
        check(ev.peerID == tr.peer[e["node"]], f"{where}: peerID")
        check(ev.timestamp == tr.start + e["t_ns"], f"{where}: timestamp {ev.timestamp}")
        k = e["type"]
        if k == "published":
            check(ev.publishMessage.messageID == msg_id(e["msg"]), f"{where}: messageID")
            check(ev.publishMessage.topic == e["topic"], f"{where}: topic")
        elif k == "delivered":
            d = ev.deliverMessage
            check(d.messageID == msg_id(e["msg"]), f"{where}: messageID")
            check(d.receivedFrom == tr.peer[e["from"]], f"{where}: receivedFrom")
            check(d.topic == tr.messages[e["msg"]]["topic"], f"{where}: topic")
        elif k == "duplicate":
            d = ev.duplicateMessage
            check(d.messageID == msg_id(e["msg"]), f"{where}: messageID")
            check(d.receivedFrom == tr.peer[e["from"]], f"{where}: receivedFrom")
        elif k == "peer_connected":
            check(ev.onNewOutboundStream.peerID == tr.peer[e["peer"]], f"{where}: peerID")
            check(ev.onNewOutboundStream.proto.startswith("/meshsub/"), f"{where}: proto")
        elif k == "peer_disconnected":
            check(ev.onClosedOutboundStream.peerID == tr.peer[e["peer"]], f"{where}: peerID")
        elif k in ("subscribed", "unsubscribed"):
            sub = ev.join if k == "subscribed" else ev.leave
            check(sub.topic == e["topic"], f"{where}: topic")
        else:
            sub = ev.graft if k == "graft" else ev.prune
            check(sub.peerID == tr.peer[e["peer"]], f"{where}: peerID")
            check(sub.topic == e["topic"], f"{where}: topic")
    counts = {}
    for ev in evs:
        counts[ev.type] = counts.get(ev.type, 0) + 1
    for kind, ty in [("published", PUBLISH), ("delivered", DELIVER), ("duplicate", DUPLICATE)]:
        n = len([e for e in tr.kinds(kind) if "node" in e])
        check(counts.get(ty, 0) == n, f"trace.pb: {counts.get(ty, 0)} of type {ty}, trace has {n} {kind}")
    check(counts.get(PUBLISH, 0) == len(tr.messages), "trace.pb: publishes != messages")
    return counts


def b64(s):
    return base64.b64decode(s, validate=True)


def check_json_against_pb(lines, evs):
    check(len(lines) == len(evs), f"trace.pubsub.json: {len(lines)} lines, trace.pb {len(evs)} events")
    for i, (line, ev) in enumerate(zip(lines, evs)):
        where = f"trace.pubsub.json line {i + 1}"
        try:
            o = json.loads(line)
        except ValueError as e:
            fail(f"{where}: not JSON: {e}")
            continue
        for c in "<>&":
            check(c not in line, f"{where}: raw {c!r} (Go escapes it as \\u00..)")
        keys = list(o.keys())
        check(keys == [k for k in GO_ORDER if k in o], f"{where}: keys {keys} not in Go struct order")
        check(o.get("type") == ev.type, f"{where}: type {o.get('type')} vs {ev.type}")
        check(b64(o.get("peerID", "")) == ev.peerID, f"{where}: peerID")
        check(o.get("timestamp") == ev.timestamp and isinstance(o.get("timestamp"), int),
              f"{where}: timestamp")
        subs = [k for k in o if k in GO_SUB_ORDER]
        if not check(len(subs) == 1, f"{where}: {len(subs)} sub-objects"):
            continue
        name = subs[0]
        sub, pbsub = o[name], getattr(ev, name)
        check(ev.HasField(name), f"{where}: trace.pb event has no {name}")
        check(list(sub.keys()) == [k for k in GO_SUB_ORDER[name] if k in sub],
              f"{where}: {name} keys not in Go struct order")
        for k, v in sub.items():
            want = getattr(pbsub, k)
            got = b64(v) if isinstance(want, bytes) else v
            check(got == want, f"{where}: {name}.{k} differs from trace.pb")


def check_interop(tr, folder):
    """Reads the folder as gossipsub-interop's analyze_message_deliveries.py does."""
    hosts = os.path.join(folder, "hosts")
    if not check(os.path.isdir(hosts), "interop/hosts missing"):
        return
    peer_of_node, deliveries, dups = {}, {}, {}
    for host in sorted(os.listdir(hosts)):
        files = [f for f in os.listdir(os.path.join(hosts, host)) if f.endswith(".stdout")]
        check(len(files) == 1, f"interop/hosts/{host}: {len(files)} .stdout files")
        for f in files:
            node_id, seen = None, set()
            with open(os.path.join(hosts, host, f)) as fh:
                for n, line in enumerate(fh, 1):
                    where = f"interop/hosts/{host}/{f}:{n}"
                    try:
                        p = json.loads(line)
                    except ValueError:
                        fail(f"{where}: not JSON")
                        continue
                    check("time" in p and "msg" in p, f"{where}: no time or msg")
                    ts = datetime.fromisoformat(p["time"])
                    if p["msg"] == "PeerID":
                        check(n == 1, f"{where}: PeerID not first")
                        node_id = p["node_id"]
                        check(isinstance(node_id, int), f"{where}: node_id is not an integer")
                        check(host == f"node{node_id}", f"{where}: node_id {node_id} in {host}")
                        check(base58_decode(p["id"]) == tr.peer.get(node_id), f"{where}: peer id")
                        peer_of_node[node_id] = p["id"]
                    elif p["msg"] == "Received Message":
                        mid = p["id"]
                        check(isinstance(mid, str) and mid.isdigit(), f"{where}: id {mid!r}")
                        us = (ts - datetime(1970, 1, 1, tzinfo=timezone.utc)) // datetime.resolution
                        if mid not in seen:
                            seen.add(mid)
                            deliveries.setdefault(mid, []).append((us, node_id))
                        else:
                            dups[mid] = dups.get(mid, 0) + 1
    check(len(peer_of_node) == len(tr.nodes), f"interop: {len(peer_of_node)} PeerID lines, {len(tr.nodes)} nodes")
    for m in tr.messages.values():
        mid = str(m["id"])
        receipts = [e for e in tr.events if e["type"] in ("delivered", "duplicate") and e.get("msg") == m["id"]]
        first = {}
        for e in receipts:
            first.setdefault(e["node"], e)
        got = {n for _, n in deliveries.get(mid, [])}
        check(got == set(first), f"interop: message {mid} delivered at {sorted(got)}, trace {sorted(first)}")
        check(dups.get(mid, 0) == len(receipts) - len(first),
              f"interop: message {mid} has {dups.get(mid, 0)} duplicates, trace {len(receipts) - len(first)}")
        for us, n in deliveries.get(mid, []):
            want = (tr.start + first[n]["t_ns"]) // 1000
            check(us == want, f"interop: message {mid} at node{n}: time {us} us, trace {want} us")
        expected = set(m["expected"])
        check(expected <= got, f"interop: message {mid} misses expected nodes {sorted(expected - got)}")
    # The analysis labels network node ids (shadow.yaml) with graph.gml's labels.
    with open(os.path.join(folder, "shadow.yaml")) as fh:
        net_ids = [int(x) for x in re.findall(r"network_node_id:\s*(\d+)", fh.read())]
    with open(os.path.join(folder, "graph.gml")) as fh:
        content = fh.read()
    labels = {}
    for block in re.findall(r"node\s*\[([^\]]*)\]", content, re.DOTALL):
        i, lab = re.search(r"id\s+(\d+)", block), re.search(r'label\s+"([^"]*)"', block)
        if i and lab:
            labels[int(i.group(1))] = lab.group(1)
    check(sorted(net_ids) == sorted(tr.nodes), "interop/shadow.yaml: hosts differ from the nodes")
    check(all(i in labels for i in net_ids), "interop/graph.gml: a network node has no label")


def check_graphml(tr, path):
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    root = ET.parse(path).getroot()
    keys = {}
    for k in root.findall("g:key", ns):
        check(k.get("attr.type") in ("string", "double", "long", "int", "float", "boolean"),
              f"graphml: key {k.get('id')} has no attr.type")
        keys[k.get("id")] = k.get("attr.name")
    graph = root.find("g:graph", ns)

    def data(el):
        return {keys[d.get("key")]: d.text or "" for d in el.findall("g:data", ns)}

    nodes = {n.get("id"): data(n) for n in graph.findall("g:node", ns)}
    check(len(nodes) == len(tr.nodes), f"graphml: {len(nodes)} nodes, trace {len(tr.nodes)}")
    for i, n in tr.nodes.items():
        d = nodes.get(f"n{i}", {})
        check(d.get("name") == n["name"], f"graphml: name of n{i}")
        check(d.get("peer_id") == n.get("peer_id"), f"graphml: peer_id of n{i}")
    edges = {(e.get("source"), e.get("target")): data(e) for e in graph.findall("g:edge", ns)}
    links = tr.t["topology"]["links"]
    check(len(edges) == 2 * len(links), f"graphml: {len(edges)} edges for {len(links)} links")
    for link in links:
        for a, b, shape in [(link["a"], link["b"], link["a_to_b"]), (link["b"], link["a"], link["b_to_a"])]:
            d = edges.get((f"n{a}", f"n{b}"))
            if not check(d is not None, f"graphml: no edge n{a} -> n{b}"):
                continue
            check(abs(float(d["latency"]) - shape["latency_ns"] / 1e6) < 1e-9, f"graphml: latency n{a}->n{b}")
            check(abs(float(d["jitter"]) - shape["jitter_ns"] / 1e6) < 1e-9, f"graphml: jitter n{a}->n{b}")
            check(float(d["loss"]) == shape["loss"], f"graphml: loss n{a}->n{b}")
            bw = shape.get("bandwidth_bps")
            check((int(d["bandwidth"]) if "bandwidth" in d else None) == bw, f"graphml: bandwidth n{a}->n{b}")


def dot_tokens(text):
    """Tokens of DOT text: (quoted, value); quoted strings unescaped (only \\" is an escape)."""
    toks, i = [], 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j, v = i + 1, []
            while text[j] != '"':
                if text[j] == "\\" and text[j + 1] == '"':
                    v.append('"')
                    j += 2
                else:
                    v.append(text[j])
                    j += 1
            toks.append((True, "".join(v)))
            i = j + 1
        elif c.isspace():
            i += 1
        elif text.startswith("->", i):
            toks.append((False, "->"))
            i += 2
        elif c.isalnum() or c == "_":
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            toks.append((False, text[i:j]))
            i = j
        else:
            toks.append((False, c))
            i += 1
    return toks


def check_dot(tr, path):
    with open(path) as fh:
        toks = dot_tokens(fh.read())
    check(toks[:2] == [(False, "digraph"), (False, "meshsim")], "dot: not a digraph")
    links = tr.t["topology"]["links"]
    linked = {(l["a"], l["b"]) for l in links}
    overlay = {tuple(sorted(p)) for p in tr.t["topology"]["overlay"] if p[0] != p[1]} - linked
    arrows = sum(1 for q, v in toks if not q and v == "->")
    check(arrows == 2 * len(links) + len(overlay), f"dot: {arrows} edges, want {2 * len(links) + len(overlay)}")
    labels = [toks[k + 2][1] for k in range(len(toks) - 2)
              if toks[k] == (False, "label") and toks[k + 1] == (False, "=") and toks[k + 2][0]]
    for i, n in tr.nodes.items():
        shown = n["name"].replace("\\", "\\\\").replace("\n", "\\n")
        check(shown in labels, f"dot: no label for n{i} ({n['name']!r})")


def check_chrome(tr, path):
    with open(path) as fh:
        doc = json.load(fh)
    check(doc.get("displayTimeUnit") == "ms", "chrome: displayTimeUnit")
    check(isinstance(doc.get("otherData"), dict), "chrome: otherData")
    evs = doc.get("traceEvents")
    if not check(isinstance(evs, list), "chrome: traceEvents is not a list"):
        return
    procs = {e["pid"]: e["args"]["name"] for e in evs if e.get("ph") == "M" and e.get("name") == "process_name"}
    for i, n in tr.nodes.items():
        check(procs.get(i + 1) == n["name"], f"chrome: no process named {n['name']!r} for n{i}")
    slices = [e for e in evs if e.get("ph") == "X"]
    for e in evs:
        ph = e.get("ph")
        check(ph in ("M", "X", "i", "s", "f"), f"chrome: phase {ph!r}")
        check(isinstance(e.get("pid"), int), f"chrome: event without pid: {e}")
        if ph != "M":
            check(isinstance(e.get("ts"), (int, float)) and e["ts"] >= 0, f"chrome: bad ts: {e}")
        if ph == "X":
            check(e.get("dur", 0) > 0, f"chrome: slice without duration: {e}")
        if ph == "i":
            check(e.get("s") in ("t", "p", "g"), f"chrome: instant without scope: {e}")

    def inside(f):
        return any(s["pid"] == f["pid"] and s["tid"] == f["tid"] and s["ts"] < f["ts"] < s["ts"] + s["dur"]
                   for s in slices)

    starts = {e["id"]: e for e in evs if e.get("ph") == "s"}
    ends = {e["id"]: e for e in evs if e.get("ph") == "f"}
    check(set(starts) == set(ends), "chrome: flow starts and ends do not pair up")
    for fid, s in starts.items():
        f = ends.get(fid)
        if f is None:
            continue
        check((s["cat"], s["name"]) == (f["cat"], f["name"]), f"chrome: flow {fid} cat/name differ")
        check(f.get("bp") == "e", f"chrome: flow end {fid} does not bind to its enclosing slice")
        check(inside(s), f"chrome: flow start {fid} is not inside a slice")
        check(inside(f), f"chrome: flow end {fid} is not inside a slice")
    delivered = len(tr.kinds("delivered"))
    check(len(starts) == delivered, f"chrome: {len(starts)} arrows, {delivered} first deliveries")
    check(len(slices) == delivered + len(tr.kinds("published")),
          f"chrome: {len(slices)} slices, want publishes + first deliveries")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    names = ["trace.json", "trace.pb", "trace.pb.gz", "trace.pubsub.json", "chrome.json",
             "topology.graphml", "topology.dot", "topology.gml", "interop"]
    missing = [n for n in names if not os.path.exists(os.path.join(d, n))]
    if missing:
        sys.exit(f"FAIL: {d} lacks {', '.join(missing)}")
    tr = Trace(os.path.join(d, "trace.json"))
    pb2 = load_pb2()
    with open(os.path.join(d, "trace.pb"), "rb") as fh:
        raw = fh.read()
    with open(os.path.join(d, "trace.pb.gz"), "rb") as fh:
        check(gzip.decompress(fh.read()) == raw, "trace.pb.gz does not decompress to trace.pb")
    evs = []
    for off, frame in read_frames(raw):
        try:
            evs.append(pb2.TraceEvent.FromString(frame))
        except Exception as e:  # noqa: BLE001 - any decode error is a failure to report
            fail(f"trace.pb: frame at byte {off} does not decode: {e}")
    counts = check_pb_against_trace(tr, evs)
    with open(os.path.join(d, "trace.pubsub.json")) as fh:
        text = fh.read()
    check(text.endswith("\n"), "trace.pubsub.json: no final newline (json.Encoder writes one)")
    check_json_against_pb(text.splitlines(), evs)
    check_interop(tr, os.path.join(d, "interop"))
    check_graphml(tr, os.path.join(d, "topology.graphml"))
    check_dot(tr, os.path.join(d, "topology.dot"))
    with open(os.path.join(d, "topology.gml")) as fh:
        gml = fh.read()
    check(len(re.findall(r"\bnode \[", gml)) == len(tr.nodes), "topology.gml: node count")
    check(len(re.findall(r"\bedge \[", gml)) == 2 * len(tr.t["topology"]["links"]), "topology.gml: edge count")
    check_chrome(tr, os.path.join(d, "chrome.json"))
    if failures:
        print(f"check_exports: {len(failures)} failure(s) in {d}", file=sys.stderr)
        sys.exit(1)
    print(
        f"check_exports: OK: {len(evs)} TraceEvents ({counts.get(PUBLISH, 0)} publish, "
        f"{counts.get(DELIVER, 0)} deliver, {counts.get(DUPLICATE, 0)} duplicate) match trace.json "
        f"and trace.pubsub.json; interop, GraphML, DOT, GML and Chrome exports consistent ({d})"
    )


if __name__ == "__main__":
    main()
