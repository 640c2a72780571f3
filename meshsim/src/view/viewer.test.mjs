// Tests of the viewer's browser-free part (Model, Replay, EmbeddedSource, layout).
// Run: node --test meshsim/src/view/viewer.test.mjs   (node 20+, no packages)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const V = require('./viewer.js');

const MS = 1e6;
const shape = (ms, bw = 10e6) => ({ latency_ns: ms * MS, jitter_ns: 0, loss: 0, bandwidth_bps: bw });

/** A line 0 - 1 - 2 - 3 plus node 4 reached over no link (multi-hop underlay). */
function sample() {
  const link = (a, b, ms) => ({ a, b, a_to_b: shape(ms), b_to_a: shape(ms) });
  return {
    format: 'meshsim-trace',
    version: 1,
    meta: { test: 't', backend: 'in-process', shaping: '', seed: 1, node_software: '', params: {}, started_at_unix_ns: 0, meshsim_version: '0' },
    topology: {
      description: 'line',
      nodes: [0, 1, 2, 3].map((id) => ({ id, name: `n${id}` })),
      links: [link(0, 1, 10), link(1, 2, 20), link(2, 3, 30)],
      overlay: [[0, 1], [1, 2], [2, 3], [3, 4]],
    },
    messages: [{ id: 0, origin: 0, topic: 'b', size: 10, published_ns: 100 * MS, expected: [1, 2, 3] }],
    events: [
      ...[0, 1, 2, 3, 4].map((n) => ({ t_ns: n * MS, node: n, type: 'node_up' })),
      { t_ns: 100 * MS, node: 0, type: 'published', msg: 0, topic: 'b', size: 10 },
      { t_ns: 112 * MS, node: 1, type: 'delivered', msg: 0, from: 0 },
      { t_ns: 135 * MS, node: 2, type: 'delivered', msg: 0, from: 1 },
      { t_ns: 150 * MS, node: 1, type: 'duplicate', msg: 0, from: 2 },
      { t_ns: 170 * MS, node: 3, type: 'delivered', msg: 0, from: 2 },
      { t_ns: 200 * MS, node: 4, type: 'delivered', msg: 0, from: 3 },
      { t_ns: 210 * MS, type: 'partition', a: [0, 1], b: [2, 3] },
      { t_ns: 220 * MS, node: 9, type: 'node_down', reason: 'stopped' },
      { t_ns: 230 * MS, type: 'heal', a: [2, 3], b: [0, 1] },
      { t_ns: 240 * MS, node: 1, type: 'link_changed', to: 2, shape: shape(5) },
    ],
  };
}

function play(trace, t = Infinity, opts = {}) {
  const m = new V.Model(trace);
  const r = new V.Replay(m, opts);
  const s = new V.EmbeddedSource(m.events);
  s.feedUntil(r, t);
  r.advanceTo(t);
  return { m, r, s };
}

test('statistics follow the Rust definitions', () => {
  const { m, r } = play(sample());
  const st = r.stats(m.msg(0));
  assert.equal(st.expected, 3);
  assert.equal(st.delivered, 3);
  assert.equal(st.reach, 1);
  // Latencies of expected nodes only (node 4 is not expected): 12, 35, 70 ms.
  assert.deepEqual(st.latencies, [12 * MS, 35 * MS, 70 * MS]);
  assert.equal(st.p50, 35 * MS);
  assert.equal(st.p99, 70 * MS);
  assert.equal(st.dissemination, 70 * MS);
  assert.equal(st.duplicates, 1);
  assert.equal(V.percentile([1, 2, 3, 4], 50), 2);
  assert.equal(V.percentile(Array.from({ length: 100 }, (_, i) => i + 1), 99), 99);
  assert.equal(V.percentile([], 50), null);
});

test('state at the playhead: held messages, up/down, partitions, link changes', () => {
  const { m, r } = play(sample(), 140 * MS);
  assert.equal(r.heldString(m.idx(0)), '0');
  assert.equal(r.heldString(m.idx(2)), '0');
  assert.equal(r.heldString(m.idx(3)), '');
  const later = play(sample(), 215 * MS).r;
  const cut = later.model.edgeBetween(later.model.idx(1), later.model.idx(2));
  assert.equal(later.cut[cut.idx], 1, 'the 1-2 link is cut while partitioned');
  assert.equal(later.partitions.length, 1);
  const end = play(sample()).r;
  assert.equal(end.partitions.length, 0, 'healed (sides given in the other order)');
  assert.equal(end.cut[cut.idx], 0);
  assert.equal(end.node(end.model.idx(9)).up, false, 'a node only named by an event exists');
  assert.equal(end.shapeOf(cut.idx).ab.latency, 5 * MS);
});

test('nodes whose first lifecycle event is node_up start down', () => {
  const { m, r } = play(sample(), 0.5 * MS);
  assert.equal(r.node(m.idx(0)).up, true, 'node_up at 0 is applied at t = 0');
  assert.equal(r.node(m.idx(3)).up, false);
  assert.equal(r.node(m.idx(3)).started, false);
  assert.equal(r.node(m.idx(9)).up, true, 'first seen going down: up until then');
});

test('scrubbing back (reset and re-feed) and stepping give the same state as playing', () => {
  const trace = sample();
  const times = [0, 100 * MS, 134 * MS, 150 * MS, 215 * MS, Infinity];
  for (const t of times) {
    const direct = play(trace, t).r;
    const { m, r, s } = play(trace, Infinity);
    r.reset();
    s.rewind();
    s.feedUntil(r, t);
    r.advanceTo(t);
    for (let i = 0; i < m.nodes.length; i++) {
      assert.equal(r.heldString(i), direct.heldString(i));
      assert.equal(r.node(i).up, direct.node(i).up);
    }
    assert.deepEqual(r.stats(-1), direct.stats(-1));
  }
  const { r, s } = play(trace, -1);
  let n = 0;
  while (s.feedNext(r)) { r.applyOne(); n++; }
  assert.equal(n, trace.events.length);
  assert.deepEqual(r.stats(0), play(trace).r.stats(0));
});

test('dots travel for the link latency, or since the sender had the message', () => {
  const { m, r } = play(sample());
  const f = (to) => r.flights.find((x) => x.to === m.idx(to) && !x.dup);
  assert.deepEqual([f(1).start, f(1).end], [102 * MS, 112 * MS], 'link 0-1: 10 ms');
  assert.deepEqual([f(2).start, f(2).end], [115 * MS, 135 * MS], 'link 1-2: 20 ms');
  assert.deepEqual([f(4).start, f(4).end], [170 * MS, 200 * MS], 'no link 3-4: since node 3 had it');
  const dup = r.flights.find((x) => x.dup);
  // 2 -> 1 over a 20 ms link at 150 ms, but node 2 only had it at 135 ms: it leaves then.
  assert.deepEqual([dup.start, dup.end], [135 * MS, 150 * MS]);
  // Visible at 110 ms: the dot to node 1 (80 % of the way) and no bubble yet.
  const seen = [];
  r.forVisible(110 * MS, 5 * MS, (x, phase, p) => seen.push([x.to, phase, Math.round(p * 100)]));
  assert.deepEqual(seen, [[m.idx(1), 'dot', 80]]);
});

test('untrusted, malformed and out-of-order input is tolerated', () => {
  const trace = sample();
  trace.events = [
    { t_ns: 5, node: 7, type: 'delivered', msg: 42, from: 8 },
    null,
    { t_ns: 'x', type: 'node_up' },
    { t_ns: 1, node: 7, type: 'published', msg: 42, topic: '<b>', size: 1 },
    { t_ns: 3, type: 'mystery' },
  ];
  const { m, r } = play(trace);
  assert.equal(m.events.length, 3);
  assert.deepEqual(m.events.map((e) => e.t_ns), [1, 3, 5]);
  assert.ok(m.idx(7) >= 0 && m.idx(8) >= 0);
  assert.equal(m.messages[m.msg(42)].topic, '<b>');
  assert.equal(r.heldString(m.idx(7)), '42');
  assert.doesNotThrow(() => play({}));
  assert.doesNotThrow(() => play({ topology: { nodes: [null, { id: 'x' }], links: [{}], overlay: [[1]] }, events: {} }));
});

test('layout: positions scaled to fit when present, else deterministic force layout', () => {
  const m = new V.Model(sample());
  const a = V.computeLayout(m, 1000, 700, 7);
  const b = V.computeLayout(m, 1000, 700, 7);
  assert.deepEqual(Array.from(a.xs), Array.from(b.xs));
  for (let i = 0; i < m.nodes.length; i++) {
    assert.ok(a.xs[i] >= 0 && a.xs[i] <= 1000 && a.ys[i] >= 0 && a.ys[i] <= 700);
  }
  const geo = sample();
  geo.topology.nodes.forEach((n, i) => { n.position = [i * 100, i * 10]; });
  geo.topology.nodes.push({ id: 4, name: 'n4', position: [400, 40] });
  const g = V.computeLayout(new V.Model(geo), 1000, 700, 7);
  assert.ok(g.xs[0] < g.xs[1] && g.xs[1] < g.xs[2], 'order kept');
  assert.ok(Math.abs((g.ys[1] - g.ys[0]) / (g.xs[1] - g.xs[0]) - 0.1) < 1e-9, 'aspect kept');
});

test('layout of 1,000 nodes with 4,000 links finishes', () => {
  const n = 1000;
  const links = [];
  for (let i = 0; i < n; i++) for (const k of [1, 7, 31, 97]) links.push({ a: i, b: (i + k) % n, a_to_b: shape(1), b_to_a: shape(1) });
  const m = new V.Model({ topology: { nodes: [], links, overlay: [] }, events: [] });
  assert.equal(m.nodes.length, n);
  const t0 = performance.now();
  const { xs } = V.computeLayout(m, 1000, 700, 1);
  const ms = performance.now() - t0;
  assert.ok(xs.every(Number.isFinite));
  console.log(`# layout of ${n} nodes, ${m.edges.length} links: ${ms.toFixed(0)} ms`);
});
