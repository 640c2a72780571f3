/* meshsim trace viewer: replays an embedded trace as animated traffic.
 *
 * Structure (no framework, no modules, no network):
 *   - Model:          static indexes built once from the trace (nodes, edges, messages).
 *   - Replay:         a state machine fed event by event with push(event); advanceTo(t) applies
 *                     pushed events up to the playhead. Keeps per-node state, per-message stats,
 *                     and the "flights" (a dot per copy of a message on its way). reset() and
 *                     re-feeding is how the playhead moves backwards.
 *   - EmbeddedSource: feeds the embedded trace's events to a Replay, a little ahead of the
 *                     playhead so dots can leave before their delivery. A live source (e.g. a
 *                     websocket from a running simulation) can call the same Replay.push.
 *   - computeLayout:  positions from the trace (scaled to fit), else a deterministic layout:
 *                     Pivot MDS for the overall shape, refined by a Barnes-Hut force layout.
 *   - Renderer/Viewer: SVG for nodes and links (only changed elements are touched), a canvas
 *                     overlay for dots and bubbles, and the controls.
 * Everything above the "DOM" line runs without a browser (node can load this file).
 *
 * DOM contract (kept stable for tests):
 *   #play      button, toggles play/pause.          #step   button, applies the next event.
 *   #speed     <select>: trace seconds per wall second, "0.001" ... "1000", or "max" (the whole
 *              trace in about 90 frames, never skipping less than to the next event).
 *   #timeline  <input type=range>, value = playhead in MICROSECONDS of trace time.
 *   #clock     the playhead as text, "<seconds with 6 decimals> s", e.g. "1.234567 s".
 *   #message   <select>: "all" or a message id.      #goto-msg jumps to just before its publish.
 *   Also: #skip-idle (checkbox), #colorby ("received" | "duplicates"), #linkcolor ("latency" |
 *   "loss" | "bandwidth"), #fit, #log (newest event first), #current-event, #node-info,
 *   #message-info, #lag-banner, #partition-banner, #annotation-banner (hidden when nothing to show).
 *   #stats     figures for the selected message at the playhead, in elements with
 *              data-stat="reach|p50|p99|dissemination|duplicates" (text) and data-value (raw:
 *              reach as a fraction, latencies in ns, duplicates as a count; "" when none).
 *              Final figures (whole trace) are in data-final="..." siblings.
 *   #cdf       SVG delivery-latency CDF of the selected message (final curve, and the part
 *              delivered by the playhead highlighted).
 *   Nodes:     <g data-node="<id>" data-has="<sorted message ids held>" data-up="true|false">.
 *              "Held" = published or first-delivered at or before the playhead. Nodes whose first
 *              lifecycle event is node_up are down (not started) until it.
 *   body[data-phase]: "loading", then "ready" after the first render, "playing", "paused",
 *              "ended" (playhead at the end: last event + one bubble), "error" if the trace
 *              cannot be read.
 *   URL hash:  #t=<ms>&msg=<id|all>&speed=<option>&node=<id>&play=1 (any subset).
 *   window.meshsimViewer: the controller (play, pause, step, seek(ns), select(id), push(event)).
 *
 * Trace strings are untrusted: they only reach the page through textContent, option.text and
 * setAttribute of data-* values; never through HTML parsing.
 */
'use strict';

(function () {
  // ---------------------------------------------------------------------------------------
  // Formatting and small helpers

  /** Compact duration: "850 ns", "12.3 µs", "41.2 ms", "1.23 s". */
  function fmtDuration(ns) {
    if (ns === null || ns === undefined || !Number.isFinite(ns)) return '–';
    const a = Math.abs(ns);
    const sig = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
    if (a < 1e3) return `${Math.round(ns)} ns`;
    if (a < 1e6) return `${sig(ns / 1e3)} µs`;
    if (a < 1e9) return `${sig(ns / 1e6)} ms`;
    return `${sig(ns / 1e9)} s`;
  }

  /** The #clock format: seconds with microsecond precision. */
  function fmtClock(ns) {
    return `${(ns / 1e9).toFixed(6)} s`;
  }

  function fmtBandwidth(bps) {
    if (bps === null || bps === undefined || !Number.isFinite(bps)) return 'unlimited';
    const units = [[1e9, 'Gbit/s'], [1e6, 'Mbit/s'], [1e3, 'kbit/s']];
    for (const [f, u] of units) {
      if (bps >= f) return `${+(bps / f).toPrecision(3)} ${u}`;
    }
    return `${bps} bit/s`;
  }

  function fmtSize(bytes) {
    if (!Number.isFinite(bytes)) return '?';
    if (bytes >= 1 << 20) return `${+(bytes / (1 << 20)).toPrecision(3)} MiB`;
    if (bytes >= 1 << 10) return `${+(bytes / (1 << 10)).toPrecision(3)} KiB`;
    return `${bytes} B`;
  }

  function fmtPercent(f) {
    if (f === null || f === undefined || !Number.isFinite(f)) return '–';
    return f === 1 ? '100%' : `${(f * 100).toFixed(1)}%`;
  }

  /** Nearest-rank percentile of an ascending array, as meshsim's Rust queries compute it. */
  function percentile(sorted, p) {
    const n = sorted.length;
    if (!n) return null;
    const rank = Math.ceil((p * n) / 100 - 1e-9);
    return sorted[Math.min(Math.max(rank, 1), n) - 1];
  }

  function median(values) {
    if (!values.length) return null;
    const v = values.slice().sort((a, b) => a - b);
    return v[(v.length - 1) >> 1];
  }

  /** Deterministic PRNG (mulberry32). */
  function mulberry32(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
  const clamp = (x, lo, hi) => Math.min(Math.max(x, lo), hi);
  const str = (x) => (typeof x === 'string' ? x : x === undefined || x === null ? '' : String(x));

  // Colours ------------------------------------------------------------------------------
  const MSG_COLORS = ['#4e9cff', '#3fd47e', '#d2a8ff', '#f0c23b', '#39d0d8', '#ff9bce', '#a0e86f', '#ffa657', '#8b9cff', '#e8e8e8'];
  const DUP_COLOR = '#ff6b6b';
  const RAMP_GOOD_BAD = ['#3fb950', '#d2b322', '#f0883e', '#f85149'];
  const RAMP_COUNT = ['#2b3543', '#2f5f8a', '#2f9e8f', '#7ccf63', '#f2e45c'];
  const RAMP_HEAT = ['#3b2f2f', '#8a4b2a', '#d9752b', '#ff5b4a', '#ffd0c8'];

  function hexToRgb(h) {
    const n = parseInt(h.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  const rampCache = new Map();
  /** Colour at f in [0, 1] along a list of hex stops (quantised to 64 steps, cached). */
  function ramp(stops, f) {
    const q = Math.round(clamp(Number.isFinite(f) ? f : 0, 0, 1) * 63);
    let lut = rampCache.get(stops);
    if (!lut) rampCache.set(stops, (lut = new Array(64)));
    return lut[q] || (lut[q] = rampExact(stops, q / 63));
  }
  function rampExact(stops, f) {
    const x = f * (stops.length - 1);
    const i = Math.min(Math.floor(x), stops.length - 2);
    const u = x - i;
    const a = hexToRgb(stops[i]);
    const b = hexToRgb(stops[i + 1]);
    const c = a.map((v, k) => Math.round(v + (b[k] - v) * u));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  // ---------------------------------------------------------------------------------------
  // Model: static indexes over the trace

  const LIFECYCLE = { node_up: 'up', node_down: 'down' };

  /** A link direction's shape, tolerant of `latency_ns` or `latency` keys. */
  function normShape(s) {
    if (!s || typeof s !== 'object') return null;
    const pick = (a, b) => (isNum(s[a]) ? s[a] : isNum(s[b]) ? s[b] : null);
    const bw = pick('bandwidth_bps', 'bandwidth');
    return {
      latency: pick('latency_ns', 'latency') || 0,
      jitter: pick('jitter_ns', 'jitter') || 0,
      loss: isNum(s.loss) ? s.loss : 0,
      bandwidth: bw !== null && bw > 0 ? bw : null,
    };
  }

  function validEvent(e) {
    return e && typeof e === 'object' && isNum(e.t_ns) && e.t_ns >= 0 && typeof e.type === 'string';
  }

  class Model {
    constructor(trace) {
      trace = trace && typeof trace === 'object' ? trace : {};
      const topo = trace.topology && typeof trace.topology === 'object' ? trace.topology : {};
      this.meta = trace.meta && typeof trace.meta === 'object' ? trace.meta : {};
      /** The links' measured lag (in-process traces), or null. */
      this.lag = trace.lag && typeof trace.lag === 'object' ? trace.lag : null;
      this.description = str(topo.description);
      this.nodes = [];
      this.nodeIndex = new Map();
      this.edges = [];
      this.edgeIndex = new Map();
      this.messages = [];
      this.msgIndex = new Map();
      for (const n of Array.isArray(topo.nodes) ? topo.nodes : []) if (n && typeof n === 'object') this.ensureNode(n.id, n);
      for (const l of Array.isArray(topo.links) ? topo.links : []) this.addLink(l);
      for (const p of Array.isArray(topo.overlay) ? topo.overlay : []) {
        if (Array.isArray(p)) this.ensureEdge(this.ensureNode(p[0]), this.ensureNode(p[1]), 'overlay');
      }
      for (const m of Array.isArray(trace.messages) ? trace.messages : []) {
        if (m && typeof m === 'object') this.ensureMessage(m.id, m);
      }
      // Events: keep valid ones, in time order (stable), and learn every node they mention.
      const events = (Array.isArray(trace.events) ? trace.events : []).filter(validEvent);
      let sorted = true;
      for (let i = 1; i < events.length; i++) if (events[i].t_ns < events[i - 1].t_ns) { sorted = false; break; }
      if (!sorted) events.sort((a, b) => a.t_ns - b.t_ns);
      for (const e of events) this.scanEvent(e);
      this.events = events;
    }

    ensureNode(id, spec) {
      if (!isNum(id)) return -1;
      let i = this.nodeIndex.get(id);
      if (i !== undefined) return i;
      i = this.nodes.length;
      const name = spec && typeof spec.name === 'string' && spec.name !== '' ? spec.name : `n${id}`;
      const p = spec && spec.position;
      const pos = Array.isArray(p) && isNum(p[0]) && isNum(p[1]) ? [p[0], p[1]] : null;
      const peerId = spec && typeof spec.peer_id === 'string' ? spec.peer_id : null;
      this.nodes.push({ id, idx: i, name, pos, peerId, edges: [], firstLife: null, origin: false });
      this.nodeIndex.set(id, i);
      return i;
    }

    idx(id) {
      const i = this.nodeIndex.get(id);
      return i === undefined ? -1 : i;
    }

    /** A numeric key for the unordered pair (node indexes are far below 2^26). */
    edgeKey(a, b) {
      return a < b ? a * 67108864 + b : b * 67108864 + a;
    }

    edgeBetween(a, b) {
      const e = this.edgeIndex.get(this.edgeKey(a, b));
      return e === undefined ? null : this.edges[e];
    }

    ensureEdge(a, b, kind) {
      if (a < 0 || b < 0 || a === b) return null;
      const key = this.edgeKey(a, b);
      const found = this.edgeIndex.get(key);
      if (found !== undefined) {
        const e = this.edges[found];
        if (kind === 'link' && e.kind !== 'link') e.kind = 'link';
        return e;
      }
      const e = { idx: this.edges.length, a, b, kind, ab: null, ba: null };
      this.edges.push(e);
      this.edgeIndex.set(key, e.idx);
      this.nodes[a].edges.push(e.idx);
      this.nodes[b].edges.push(e.idx);
      return e;
    }

    addLink(l) {
      if (!l || typeof l !== 'object') return;
      const a = this.ensureNode(l.a);
      const b = this.ensureNode(l.b);
      const e = this.ensureEdge(a, b, 'link');
      if (!e) return;
      // Shapes are stored per direction of the edge's own (a, b).
      const ab = normShape(l.a_to_b);
      const ba = normShape(l.b_to_a);
      if (e.a === a) { e.ab = ab; e.ba = ba; } else { e.ab = ba; e.ba = ab; }
    }

    ensureMessage(id, info) {
      if (!isNum(id)) return -1;
      let i = this.msgIndex.get(id);
      const origin = info && isNum(info.origin) ? this.ensureNode(info.origin) : -1;
      if (i !== undefined) {
        const m = this.messages[i];
        if (m.origin < 0 && origin >= 0) m.origin = origin;
        if (m.published === null && info && isNum(info.published_ns)) m.published = info.published_ns;
        if (!m.topic && info && typeof info.topic === 'string') m.topic = info.topic;
        if (m.size === null && info && isNum(info.size)) m.size = info.size;
        return i;
      }
      i = this.messages.length;
      const expected = new Set();
      const listed = info && Array.isArray(info.expected);
      if (listed) for (const n of info.expected) { const k = this.ensureNode(n); if (k >= 0) expected.add(k); }
      this.messages.push({
        id,
        idx: i,
        origin,
        topic: info && typeof info.topic === 'string' ? info.topic : '',
        size: info && isNum(info.size) ? info.size : null,
        published: info && isNum(info.published_ns) ? info.published_ns : null,
        expected,
        // A message only seen in events (live mode): expected is taken from subscriptions.
        synthetic: !listed,
        color: MSG_COLORS[i % MSG_COLORS.length],
      });
      this.msgIndex.set(id, i);
      return i;
    }

    msg(id) {
      const i = this.msgIndex.get(id);
      return i === undefined ? -1 : i;
    }

    /** Learns the nodes, edges and messages an event mentions (idempotent). */
    scanEvent(e) {
      const n = e.node !== undefined ? this.ensureNode(e.node) : -1;
      switch (e.type) {
        case 'node_up':
        case 'node_down':
          if (n >= 0 && this.nodes[n].firstLife === null) this.nodes[n].firstLife = LIFECYCLE[e.type];
          break;
        case 'peer_connected':
        case 'peer_disconnected':
        case 'graft':
        case 'prune':
          this.ensureNode(e.peer);
          break;
        case 'published': {
          const m = this.ensureMessage(e.msg, { origin: e.node, topic: e.topic, size: e.size, published_ns: e.t_ns });
          if (n >= 0 && m >= 0 && this.messages[m].origin === n) this.nodes[n].origin = true;
          break;
        }
        case 'delivered':
        case 'duplicate': {
          const f = this.ensureNode(e.from);
          this.ensureMessage(e.msg, null);
          if (!this.edgeBetween(n, f)) this.ensureEdge(n, f, 'overlay');
          break;
        }
        case 'link_changed': {
          const to = this.ensureNode(e.to);
          this.ensureEdge(n, to, 'link');
          break;
        }
        case 'partition':
        case 'heal':
          for (const side of [e.a, e.b]) if (Array.isArray(side)) for (const id of side) this.ensureNode(id);
          break;
        default:
          break;
      }
    }

    /** Latency of the link direction from -> to in the given shapes (null when no link). */
    linkLatency(shapes, from, to) {
      const e = this.edgeBetween(from, to);
      if (!e || e.kind !== 'link') return null;
      const s = shapes[e.idx] || e;
      const sh = from === e.a ? s.ab : s.ba;
      return sh ? sh.latency : null;
    }

    nodeName(i) {
      return i >= 0 && i < this.nodes.length ? this.nodes[i].name : '?';
    }
  }

  // ---------------------------------------------------------------------------------------
  // Replay: the state at the playhead, fed by a stream of events

  const RECENT_KEEP = 400;

  class Replay {
    /**
     * @param {Model} model
     * @param {object} opts keepFlights (default true), scan (default true), fallbackLatency (ns)
     */
    constructor(model, opts = {}) {
      this.model = model;
      this.keepFlights = opts.keepFlights !== false;
      // Whether push() must teach the model about the event (not needed for events the model
      // was built from; needed for live events).
      this.scan = opts.scan !== false;
      this.fallbackLatency = opts.fallbackLatency || 10e6;
      this.epoch = 0;
      this.reset();
    }

    /** Forgets everything: back to before the first event. */
    reset() {
      this.epoch++;
      this.t = 0; // the playhead (ns); events with t_ns <= t are applied
      this.fedT = 0; // the latest pushed event time
      this.pending = [];
      this.head = 0; // pending[head] is the next event to apply
      this.seq = 0; // applied events so far
      this.version = 0; // bumps on every applied event
      this.statsVersion = 0; // bumps when a message's figures change
      this.nodes = [];
      this.msgs = [];
      this.known = []; // feed side: per message, node -> time it had it (for flights)
      this.shapes = []; // current shapes per edge: {ab, ba}
      this.feedShapes = []; // the same on the feed side
      this.cut = []; // per edge: how many active partitions cut it
      this.partitions = [];
      this.annotation = null;
      this.recent = [];
      this.flights = [];
      this.flightHead = 0;
      this.maxFlight = 0;
      this.flightDurations = [];
      this.dirtyNodes = new Set();
      this.dirtyEdges = new Set();
      for (let i = 0; i < this.model.nodes.length; i++) this.node(i);
    }

    node(i) {
      let s = this.nodes[i];
      if (!s) {
        const first = this.model.nodes[i] ? this.model.nodes[i].firstLife : null;
        const up = first !== 'up';
        s = this.nodes[i] = {
          up, started: up, reason: null, subs: new Set(), peers: new Set(), mesh: new Map(),
          held: [], heldStr: '', heldStale: false, dups: 0,
        };
      }
      return s;
    }

    ms(mi) {
      let s = this.msgs[mi];
      if (!s) {
        s = this.msgs[mi] = { got: [], from: [], dups: [], dupTotal: 0, lat: [], latSorted: true, delivered: 0, pubT: null, pubNode: -1 };
      }
      return s;
    }

    shapeOf(ei) {
      let s = this.shapes[ei];
      if (!s) { const e = this.model.edges[ei]; s = this.shapes[ei] = { ab: e.ab, ba: e.ba }; }
      return s;
    }

    /** Accepts the next event of the stream (in time order); it applies at advanceTo. */
    push(ev) {
      if (!validEvent(ev)) return false;
      const m = this.model;
      if (this.scan) m.scanEvent(ev);
      if (ev.t_ns > this.fedT) this.fedT = ev.t_ns;
      const n = ev.node !== undefined ? m.idx(ev.node) : -1;
      if (ev.type === 'published' && n >= 0 && m.msg(ev.msg) >= 0) {
        const mi = m.msg(ev.msg);
        const k = this.known[mi] || (this.known[mi] = []);
        if (k[n] === undefined) k[n] = ev.t_ns;
      } else if ((ev.type === 'delivered' || ev.type === 'duplicate') && n >= 0) {
        this.planFlight(ev, n);
      } else if (ev.type === 'link_changed' && n >= 0) {
        const e = m.edgeBetween(n, m.idx(ev.to));
        if (e) {
          const s = this.feedShapes[e.idx] || (this.feedShapes[e.idx] = { ab: e.ab, ba: e.ba });
          if (n === e.a) s.ab = normShape(ev.shape); else s.ba = normShape(ev.shape);
        }
      }
      this.pending.push(ev);
      return true;
    }

    /** A dot from the sender to the receiver, arriving at the event's time. */
    planFlight(ev, to) {
      const m = this.model;
      const mi = m.msg(ev.msg);
      const from = m.idx(ev.from);
      if (mi < 0 || from < 0 || from === to) return;
      const k = this.known[mi] || (this.known[mi] = []);
      const t = ev.t_ns;
      const had = k[from];
      const lat = m.linkLatency(this.feedShapes, from, to);
      // Over a link: its latency. Without one (a multi-hop underlay path): since the sender
      // had it. Never leave before the sender had the message.
      let start = lat !== null ? t - lat : had !== undefined ? had : t - this.fallbackLatency;
      if (had !== undefined && start < had) start = had;
      if (start > t) start = t;
      const dup = ev.type === 'duplicate';
      if (!dup && k[to] === undefined) k[to] = t;
      const d = t - start;
      if (d > this.maxFlight) this.maxFlight = d;
      if (this.keepFlights) this.flights.push({ start, end: t, from, to, mi, dup });
      else this.flightDurations.push(d);
    }

    /** Applies every pushed event with t_ns <= t and moves the playhead to t. */
    advanceTo(t) {
      const p = this.pending;
      while (this.head < p.length && p[this.head].t_ns <= t) this.apply(p[this.head++]);
      this.t = t;
      if (this.head > 4096 && this.head > p.length / 2) {
        this.pending = p.slice(this.head);
        this.head = 0;
      }
    }

    /** Applies exactly one pushed event (stepping); returns it, or null when none is pending. */
    applyOne() {
      if (this.head >= this.pending.length) return null;
      const ev = this.pending[this.head++];
      this.apply(ev);
      if (ev.t_ns > this.t) this.t = ev.t_ns;
      return ev;
    }

    nextPendingTime() {
      return this.head < this.pending.length ? this.pending[this.head].t_ns : null;
    }

    dirtyNode(i) {
      this.dirtyNodes.add(i);
    }

    markEdgesOf(i) {
      for (const e of this.model.nodes[i].edges) this.dirtyEdges.add(e);
    }

    hold(i, mi) {
      const s = this.node(i);
      s.held.push(this.model.messages[mi].id);
      s.heldStale = true;
      this.dirtyNode(i);
    }

    /** Sorted, space-separated ids of the messages node i holds (the data-has value). */
    heldString(i) {
      const s = this.node(i);
      if (s.heldStale) {
        s.held.sort((a, b) => a - b);
        s.heldStr = s.held.join(' ');
        s.heldStale = false;
      }
      return s.heldStr;
    }

    apply(ev) {
      const m = this.model;
      const n = ev.node !== undefined ? m.idx(ev.node) : -1;
      const s = n >= 0 ? this.node(n) : null;
      switch (ev.type) {
        case 'node_up':
          if (s) { s.up = true; s.started = true; s.reason = null; this.dirtyNode(n); this.markEdgesOf(n); }
          break;
        case 'node_down':
          if (s) { s.up = false; s.reason = str(ev.reason); this.dirtyNode(n); this.markEdgesOf(n); }
          break;
        case 'peer_connected':
          if (s) s.peers.add(m.idx(ev.peer));
          break;
        case 'peer_disconnected':
          if (s) s.peers.delete(m.idx(ev.peer));
          break;
        case 'subscribed':
          if (s) s.subs.add(str(ev.topic));
          break;
        case 'unsubscribed':
          if (s) s.subs.delete(str(ev.topic));
          break;
        case 'graft':
        case 'prune':
          if (s) {
            const topic = str(ev.topic);
            let set = s.mesh.get(topic);
            if (!set) s.mesh.set(topic, (set = new Set()));
            if (ev.type === 'graft') set.add(m.idx(ev.peer)); else set.delete(m.idx(ev.peer));
          }
          break;
        case 'published': {
          const mi = m.msg(ev.msg);
          if (mi < 0 || !s) break;
          const st = this.ms(mi);
          const info = m.messages[mi];
          if (st.pubT === null) {
            st.pubT = ev.t_ns;
            st.pubNode = n;
            if (info.synthetic && info.expected.size === 0) {
              // Not listed in the trace's messages: the subscribers at publish are expected.
              const topic = str(ev.topic);
              for (let i = 0; i < this.nodes.length; i++) {
                if (i !== n && this.nodes[i] && this.nodes[i].up && this.nodes[i].subs.has(topic)) info.expected.add(i);
              }
            }
          }
          if (st.got[n] === undefined) { st.got[n] = ev.t_ns; st.from[n] = n; this.hold(n, mi); }
          this.statsVersion++;
          break;
        }
        case 'delivered': {
          const mi = m.msg(ev.msg);
          if (mi < 0 || !s) break;
          const st = this.ms(mi);
          if (st.got[n] !== undefined) break; // a second "first" copy: the first one counts
          st.got[n] = ev.t_ns;
          st.from[n] = m.idx(ev.from);
          this.hold(n, mi);
          const used = m.edgeBetween(n, st.from[n]);
          if (used) this.dirtyEdges.add(used.idx); // now part of the propagation tree
          const info = m.messages[mi];
          if (info.expected.has(n)) {
            const pub = info.published !== null ? info.published : st.pubT;
            if (pub !== null) {
              const lat = Math.max(0, ev.t_ns - pub);
              if (st.lat.length && lat < st.lat[st.lat.length - 1]) st.latSorted = false;
              st.lat.push(lat);
            }
            st.delivered++;
          }
          this.statsVersion++;
          break;
        }
        case 'duplicate': {
          const mi = m.msg(ev.msg);
          if (mi < 0 || !s) break;
          const st = this.ms(mi);
          st.dups[n] = (st.dups[n] || 0) + 1;
          st.dupTotal++;
          s.dups++;
          this.dirtyNode(n);
          this.statsVersion++;
          break;
        }
        case 'link_changed': {
          const e = n >= 0 ? m.edgeBetween(n, m.idx(ev.to)) : null;
          if (e) {
            const sh = this.shapeOf(e.idx);
            if (n === e.a) sh.ab = normShape(ev.shape); else sh.ba = normShape(ev.shape);
            this.dirtyEdges.add(e.idx);
          }
          break;
        }
        case 'partition': {
          const p = this.sides(ev);
          this.partitions.push(p);
          this.cutEdges(p, 1);
          break;
        }
        case 'heal': {
          const p = this.sides(ev);
          let k = this.partitions.findIndex((q) => q.key === p.key || q.rkey === p.key);
          // A heal that names different groups heals the oldest partition it overlaps.
          if (k < 0) k = this.partitions.findIndex((q) => [...p.a, ...p.b].some((x) => q.a.has(x) || q.b.has(x)));
          if (k >= 0) {
            this.cutEdges(this.partitions[k], -1);
            this.partitions.splice(k, 1);
          }
          break;
        }
        case 'annotation':
          this.annotation = { t: ev.t_ns, text: str(ev.text) };
          break;
        default:
          break;
      }
      this.seq++;
      this.version++;
      this.recent.push({ seq: this.seq, ev });
      if (this.recent.length > RECENT_KEEP * 2) this.recent = this.recent.slice(-RECENT_KEEP);
    }

    sides(ev) {
      const m = this.model;
      const conv = (xs) => (Array.isArray(xs) ? xs.map((id) => m.idx(id)).filter((i) => i >= 0) : []);
      const a = conv(ev.a);
      const b = conv(ev.b);
      const ka = a.slice().sort((x, y) => x - y).join(',');
      const kb = b.slice().sort((x, y) => x - y).join(',');
      return { a: new Set(a), b: new Set(b), key: `${ka}|${kb}`, rkey: `${kb}|${ka}`, aList: a, bList: b };
    }

    cutEdges(p, delta) {
      for (const e of this.model.edges) {
        if ((p.a.has(e.a) && p.b.has(e.b)) || (p.a.has(e.b) && p.b.has(e.a))) {
          this.cut[e.idx] = (this.cut[e.idx] || 0) + delta;
          this.dirtyEdges.add(e.idx);
        }
      }
    }

    /** Time node i first had message mi (published or delivered), or undefined. */
    gotAt(mi, i) {
      const st = this.msgs[mi];
      return st ? st.got[i] : undefined;
    }

    dupsAt(mi, i) {
      const st = this.msgs[mi];
      return st ? st.dups[i] || 0 : 0;
    }

    /** Hops from the origin to node i along first deliveries (null when unknown). */
    hops(mi, i) {
      const st = this.msgs[mi];
      if (!st || st.got[i] === undefined) return null;
      let h = 0;
      let cur = i;
      while (st.from[cur] !== cur) {
        cur = st.from[cur];
        h++;
        if (cur === undefined || cur < 0 || h > this.nodes.length) return null;
      }
      return h;
    }

    /**
     * Figures for message mi (or all messages when mi < 0), as of the playhead, defined as
     * meshsim's Rust `MessageStats`: latencies of expected nodes from publish, nearest rank.
     */
    stats(mi) {
      const list = mi >= 0 ? [mi] : this.model.messages.map((x) => x.idx);
      let expected = 0;
      let delivered = 0;
      let duplicates = 0;
      let lat = [];
      for (const k of list) {
        expected += this.model.messages[k].expected.size;
        const st = this.msgs[k];
        if (!st) continue;
        delivered += st.delivered;
        duplicates += st.dupTotal;
        if (!st.latSorted) { st.lat.sort((a, b) => a - b); st.latSorted = true; }
        if (list.length === 1) lat = st.lat;
        else for (const x of st.lat) lat.push(x);
      }
      if (list.length > 1) lat.sort((a, b) => a - b);
      return {
        expected,
        delivered,
        reach: expected ? delivered / expected : list.length ? 1 : null,
        p50: percentile(lat, 50),
        p99: percentile(lat, 99),
        dissemination: lat.length ? lat[lat.length - 1] : null,
        duplicates,
        latencies: lat,
      };
    }

    /** Calls fn(flight, phase, progress) for each dot in the air ("dot") or bubble ("bubble"). */
    forVisible(t, bubbleNs, fn) {
      const f = this.flights;
      while (this.flightHead < f.length && f[this.flightHead].end + bubbleNs < t) this.flightHead++;
      for (let i = this.flightHead; i < f.length; i++) {
        const x = f[i];
        if (x.start > t) continue;
        if (t < x.end) fn(x, 'dot', x.end > x.start ? (t - x.start) / (x.end - x.start) : 1);
        else if (t <= x.end + bubbleNs) fn(x, 'bubble', bubbleNs > 0 ? (t - x.end) / bubbleNs : 1);
      }
      if (this.flightHead > 8192 && this.flightHead > f.length / 2) {
        this.flights = f.slice(this.flightHead);
        this.flightHead = 0;
      }
    }

    /** The earliest dot departure after t among pushed events (null when none). */
    nextFlightStart(t) {
      let best = null;
      for (let i = this.flightHead; i < this.flights.length; i++) {
        const s = this.flights[i].start;
        if (s > t && (best === null || s < best)) best = s;
      }
      return best;
    }

    /** Whether any dot or bubble is visible at t. */
    anyVisible(t, bubbleNs) {
      for (let i = this.flightHead; i < this.flights.length; i++) {
        const x = this.flights[i];
        if (x.start <= t && t <= x.end + bubbleNs) return true;
      }
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------
  // EmbeddedSource: the embedded trace as a stream

  class EmbeddedSource {
    constructor(events) {
      this.events = events;
      this.i = 0;
    }
    rewind() {
      this.i = 0;
    }
    /** Pushes every event with t_ns <= t. */
    feedUntil(replay, t) {
      const ev = this.events;
      let i = this.i;
      while (i < ev.length && ev[i].t_ns <= t) replay.push(ev[i++]);
      this.i = i;
    }
    feedNext(replay) {
      if (this.i >= this.events.length) return false;
      replay.push(this.events[this.i++]);
      return true;
    }
    peekTime() {
      return this.i < this.events.length ? this.events[this.i].t_ns : null;
    }
    endTime() {
      const ev = this.events;
      return ev.length ? ev[ev.length - 1].t_ns : 0;
    }
    /** The latest event time strictly before t (0 when none). */
    prevTime(t) {
      const ev = this.events;
      let lo = 0;
      let hi = ev.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ev[mid].t_ns < t) lo = mid + 1; else hi = mid;
      }
      return lo > 0 ? ev[lo - 1].t_ns : 0;
    }
    /** Adds an event (live mode); kept in time order. */
    append(e) {
      const ev = this.events;
      let k = ev.length;
      while (k > 0 && ev[k - 1].t_ns > e.t_ns) k--;
      ev.splice(k, 0, e);
      if (k < this.i) this.i++;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Layout

  /**
   * Positions in a W x H box: the trace's positions scaled to fit when every node has one;
   * otherwise a deterministic force layout (nodes with positions stay pinned).
   */
  function computeLayout(model, W, H, seed) {
    const n = model.nodes.length;
    const xs = new Float64Array(n);
    const ys = new Float64Array(n);
    if (!n) return { xs, ys };
    const fixed = new Uint8Array(n);
    let nFixed = 0;
    model.nodes.forEach((nd, i) => {
      if (nd.pos) { xs[i] = nd.pos[0]; ys[i] = nd.pos[1]; fixed[i] = 1; nFixed++; }
    });
    if (nFixed < n) {
      const side = Math.sqrt(n) * 1.2;
      if (nFixed > 0) fitInto(xs, ys, fixed, side * 0.1, side * 0.1, side * 0.8, side * 0.8);
      const edges = new Int32Array(model.edges.length * 2);
      model.edges.forEach((e, k) => { edges[2 * k] = e.a; edges[2 * k + 1] = e.b; });
      forceLayout(xs, ys, fixed, edges, side, seed);
    }
    const pad = Math.min(W, H) * 0.05;
    fitInto(xs, ys, null, pad, pad, W - 2 * pad, H - 2 * pad);
    return { xs, ys };
  }

  /** Scales (the selected) points uniformly to fit and centre in the box. */
  function fitInto(xs, ys, only, x0, y0, w, h) {
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let i = 0; i < xs.length; i++) {
      if (only && !only[i]) continue;
      minX = Math.min(minX, xs[i]); maxX = Math.max(maxX, xs[i]);
      minY = Math.min(minY, ys[i]); maxY = Math.max(maxY, ys[i]);
    }
    if (!Number.isFinite(minX)) return;
    const bw = maxX - minX;
    const bh = maxY - minY;
    const s = bw === 0 && bh === 0 ? 1 : Math.min(bw > 0 ? w / bw : Infinity, bh > 0 ? h / bh : Infinity);
    const ox = x0 + (w - bw * s) / 2;
    const oy = y0 + (h - bh * s) / 2;
    for (let i = 0; i < xs.length; i++) {
      if (only && !only[i]) continue;
      xs[i] = ox + (xs[i] - minX) * s;
      ys[i] = oy + (ys[i] - minY) * s;
    }
  }

  /**
   * Fruchterman-Reingold with ideal edge length 1: repulsion 1/d between all pairs, estimated
   * with a Barnes-Hut quadtree (O(n log n) per iteration), attraction d^2 along edges, weak
   * gravity, linear cooling and a fixed iteration count, from seeded random starting points:
   * the same input always gives the same picture.
   */
  function forceLayout(xs, ys, fixed, edges, side, seed) {
    const n = xs.length;
    const rand = mulberry32(seed);
    // Start from Pivot MDS (graph distances), which gets the global shape right; fall back
    // to random points. Pinned nodes keep their positions.
    const start = pivotMds(n, edges, seed);
    for (let i = 0; i < n; i++) {
      if (fixed[i]) continue;
      if (start) { xs[i] = start.xs[i] + (rand() - 0.5) * 0.05; ys[i] = start.ys[i] + (rand() - 0.5) * 0.05; }
      else { xs[i] = rand() * side; ys[i] = rand() * side; }
    }
    if (start) {
      // Centre the MDS picture in the box the pinned nodes were scaled to.
      let mx = 0, my = 0, k = 0;
      for (let i = 0; i < n; i++) if (!fixed[i]) { mx += xs[i]; my += ys[i]; k++; }
      for (let i = 0; i < n; i++) if (!fixed[i] && k) { xs[i] += side / 2 - mx / k; ys[i] += side / 2 - my / k; }
    }
    const iters = n <= 300 ? 250 : n <= 2000 ? 60 : 40;
    const dx = new Float64Array(n);
    const dy = new Float64Array(n);
    const tree = new QuadTree(n);
    const gravity = 0.02;
    let temp = side * (start ? 0.04 : 0.12);
    const cool = temp / (iters + 1);
    const centre = side / 2;
    for (let it = 0; it < iters; it++) {
      tree.build(xs, ys);
      for (let i = 0; i < n; i++) {
        const f = tree.force(xs[i], ys[i], i, 1.0);
        dx[i] = f[0];
        dy[i] = f[1];
      }
      for (let k = 0; k < edges.length; k += 2) {
        const a = edges[k];
        const b = edges[k + 1];
        const ddx = xs[a] - xs[b];
        const ddy = ys[a] - ys[b];
        const d = Math.sqrt(ddx * ddx + ddy * ddy);
        dx[a] -= ddx * d; dy[a] -= ddy * d;
        dx[b] += ddx * d; dy[b] += ddy * d;
      }
      for (let i = 0; i < n; i++) {
        if (fixed[i]) continue;
        const fx = dx[i] - (xs[i] - centre) * gravity;
        const fy = dy[i] - (ys[i] - centre) * gravity;
        const d = Math.sqrt(fx * fx + fy * fy);
        if (d > 0) {
          const step = Math.min(d, temp);
          xs[i] += (fx / d) * step;
          ys[i] += (fy / d) * step;
        }
      }
      temp = Math.max(temp - cool, side * 0.002);
    }
  }

  /**
   * Pivot MDS (Brandes and Pich): BFS distances from up to 50 pivots chosen max-min, double
   * centred, projected on the top two eigenvectors. Coordinates are in hops. Returns null for
   * graphs too small or without edges.
   */
  function pivotMds(n, edges, seed) {
    if (n < 3 || edges.length === 0) return null;
    const deg = new Int32Array(n + 1);
    for (let k = 0; k < edges.length; k++) deg[edges[k] + 1]++;
    for (let i = 0; i < n; i++) deg[i + 1] += deg[i];
    const adj = new Int32Array(edges.length);
    const at = deg.slice(0, n);
    for (let k = 0; k < edges.length; k += 2) {
      adj[at[edges[k]]++] = edges[k + 1];
      adj[at[edges[k + 1]]++] = edges[k];
    }
    const kp = Math.min(50, n);
    const dist = new Float64Array(n * kp); // dist[i * kp + j]: hops from pivot j to node i
    const queue = new Int32Array(n);
    const d = new Int32Array(n);
    const minD = new Float64Array(n).fill(Infinity);
    let pivot = (seed >>> 0) % n;
    for (let j = 0; j < kp; j++) {
      d.fill(-1);
      d[pivot] = 0;
      let qh = 0, qt = 0;
      queue[qt++] = pivot;
      let far = 0;
      while (qh < qt) {
        const u = queue[qh++];
        for (let e = deg[u]; e < deg[u + 1]; e++) {
          const v = adj[e];
          if (d[v] < 0) { d[v] = d[u] + 1; queue[qt++] = v; if (d[v] > far) far = d[v]; }
        }
      }
      for (let i = 0; i < n; i++) {
        // Other components: a little beyond the farthest reachable node.
        const x = d[i] < 0 ? far + 2 : d[i];
        dist[i * kp + j] = x;
        if (x < minD[i]) minD[i] = x;
      }
      let best = -1;
      for (let i = 0; i < n; i++) if (best < 0 || minD[i] > minD[best]) best = i;
      pivot = best;
    }
    // Double centring of the squared distances.
    const c = new Float64Array(n * kp);
    const colMean = new Float64Array(kp);
    const rowMean = new Float64Array(n);
    let all = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < kp; j++) {
        const v = dist[i * kp + j] * dist[i * kp + j];
        c[i * kp + j] = v;
        rowMean[i] += v / kp;
        colMean[j] += v / n;
        all += v / (n * kp);
      }
    }
    for (let i = 0; i < n; i++) for (let j = 0; j < kp; j++) c[i * kp + j] = -0.5 * (c[i * kp + j] - rowMean[i] - colMean[j] + all);
    // B = C^T C (kp x kp), then its top two eigenvectors by power iteration with deflation.
    const b = new Float64Array(kp * kp);
    for (let i = 0; i < n; i++) {
      const row = i * kp;
      for (let p = 0; p < kp; p++) {
        const cp = c[row + p];
        if (cp === 0) continue;
        for (let q = p; q < kp; q++) b[p * kp + q] += cp * c[row + q];
      }
    }
    for (let p = 0; p < kp; p++) for (let q = 0; q < p; q++) b[p * kp + q] = b[q * kp + p];
    const rand = mulberry32(seed ^ 0x5bd1e995);
    const vecs = [];
    for (let v = 0; v < 2; v++) {
      let x = new Float64Array(kp).map(() => rand() - 0.5);
      for (let it = 0; it < 200; it++) {
        const y = new Float64Array(kp);
        for (let p = 0; p < kp; p++) { let sum = 0; for (let q = 0; q < kp; q++) sum += b[p * kp + q] * x[q]; y[p] = sum; }
        for (const u of vecs) { let dot = 0; for (let p = 0; p < kp; p++) dot += y[p] * u[p]; for (let p = 0; p < kp; p++) y[p] -= dot * u[p]; }
        let norm = 0;
        for (let p = 0; p < kp; p++) norm += y[p] * y[p];
        norm = Math.sqrt(norm);
        if (norm < 1e-12) break;
        for (let p = 0; p < kp; p++) y[p] /= norm;
        x = y;
      }
      vecs.push(x);
    }
    const xs = new Float64Array(n);
    const ys = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let sx = 0, sy = 0;
      for (let p = 0; p < kp; p++) { sx += c[i * kp + p] * vecs[0][p]; sy += c[i * kp + p] * vecs[1][p]; }
      xs[i] = sx;
      ys[i] = sy;
    }
    // Scale so that the mean edge is one unit long (the force layout's ideal length).
    let len = 0;
    for (let k = 0; k < edges.length; k += 2) len += Math.hypot(xs[edges[k]] - xs[edges[k + 1]], ys[edges[k]] - ys[edges[k + 1]]);
    len /= edges.length / 2;
    if (!(len > 1e-9)) return null;
    for (let i = 0; i < n; i++) { xs[i] /= len; ys[i] /= len; }
    return { xs, ys };
  }

  /** A Barnes-Hut quadtree over points, in flat typed arrays, rebuilt every iteration. */
  class QuadTree {
    constructor(n) {
      const cap = Math.max(16, n * 4 + 16);
      this.cap = cap;
      this.child = new Int32Array(cap * 4); // 4 children per cell, -1 none
      this.mass = new Float64Array(cap);
      this.mx = new Float64Array(cap); // centre of mass
      this.my = new Float64Array(cap);
      this.size = new Float64Array(cap);
      this.cx = new Float64Array(cap); // cell centre
      this.cy = new Float64Array(cap);
      this.point = new Int32Array(cap); // the point of a leaf, -1 for inner cells
      this.stack = new Int32Array(cap);
      this.out = [0, 0];
      this.count = 0;
      this.root = 0;
      this.xs = null;
      this.ys = null;
    }

    alloc(cx, cy, size) {
      if (this.count >= this.cap) this.grow();
      const c = this.count++;
      this.child.fill(-1, c * 4, c * 4 + 4);
      this.mass[c] = 0; this.mx[c] = 0; this.my[c] = 0;
      this.cx[c] = cx; this.cy[c] = cy; this.size[c] = size;
      this.point[c] = -1;
      return c;
    }

    grow() {
      const old = this;
      const cap = this.cap * 2;
      const copy = (a, T, k = 1) => { const b = new T(cap * k); b.set(a); return b; };
      this.child = copy(old.child, Int32Array, 4);
      for (const f of ['mass', 'mx', 'my', 'size', 'cx', 'cy']) this[f] = copy(old[f], Float64Array);
      this.point = copy(old.point, Int32Array);
      this.stack = new Int32Array(cap);
      this.cap = cap;
    }

    build(xs, ys) {
      const n = xs.length;
      let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
      for (let i = 0; i < n; i++) {
        if (xs[i] < minX) minX = xs[i];
        if (xs[i] > maxX) maxX = xs[i];
        if (ys[i] < minY) minY = ys[i];
        if (ys[i] > maxY) maxY = ys[i];
      }
      const size = Math.max(maxX - minX, maxY - minY, 1e-6) * 1.01;
      this.count = 0;
      this.xs = xs;
      this.ys = ys;
      this.root = this.alloc((minX + maxX) / 2, (minY + maxY) / 2, size);
      for (let i = 0; i < n; i++) this.insert(i);
    }

    insert(i) {
      const xs = this.xs, ys = this.ys;
      const x = xs[i], y = ys[i];
      let c = this.root;
      for (let depth = 0; ; depth++) {
        // Accumulate the centre of mass on the way down.
        const m = this.mass[c];
        this.mx[c] = (this.mx[c] * m + x) / (m + 1);
        this.my[c] = (this.my[c] * m + y) / (m + 1);
        this.mass[c] = m + 1;
        if (m === 0) { this.point[c] = i; return; } // was empty: becomes a leaf
        if (depth > 40) return; // coincident points: keep them lumped
        const p = this.point[c];
        if (p >= 0) {
          // A leaf with one point: split it, pushing the old point one level down.
          this.point[c] = -1;
          const q = this.quadrant(c, xs[p], ys[p]);
          const k = this.alloc(this.cx[c] + (q & 1 ? 0.25 : -0.25) * this.size[c], this.cy[c] + (q & 2 ? 0.25 : -0.25) * this.size[c], this.size[c] / 2);
          this.child[c * 4 + q] = k;
          this.mass[k] = 1; this.mx[k] = xs[p]; this.my[k] = ys[p]; this.point[k] = p;
        }
        const q = this.quadrant(c, x, y);
        let k = this.child[c * 4 + q];
        if (k < 0) {
          k = this.alloc(this.cx[c] + (q & 1 ? 0.25 : -0.25) * this.size[c], this.cy[c] + (q & 2 ? 0.25 : -0.25) * this.size[c], this.size[c] / 2);
          this.child[c * 4 + q] = k;
        }
        c = k;
      }
    }

    quadrant(c, x, y) {
      return (x >= this.cx[c] ? 1 : 0) | (y >= this.cy[c] ? 2 : 0);
    }

    /** Repulsion on point i at (x, y): the sum of (p - q) / |p - q|^2 over the others. */
    force(x, y, i, theta) {
      let fx = 0, fy = 0;
      let sp = 0;
      const st = this.stack;
      st[sp++] = this.root;
      const t2 = theta * theta;
      while (sp > 0) {
        const c = st[--sp];
        const m = this.mass[c];
        if (m === 0) continue;
        let ddx = x - this.mx[c];
        let ddy = y - this.my[c];
        let d2 = ddx * ddx + ddy * ddy;
        const leaf = this.point[c] >= 0;
        if (leaf || (this.size[c] * this.size[c]) < t2 * d2) {
          if (leaf && this.point[c] === i) continue;
          if (d2 < 1e-6) {
            const a = ((i * 7919 + c * 104729) % 628) / 100;
            ddx = Math.cos(a) * 1e-3; ddy = Math.sin(a) * 1e-3; d2 = 1e-6;
          }
          fx += (ddx * m) / d2;
          fy += (ddy * m) / d2;
          continue;
        }
        for (let q = 0; q < 4; q++) { const k = this.child[c * 4 + q]; if (k >= 0) st[sp++] = k; }
      }
      this.out[0] = fx;
      this.out[1] = fy;
      return this.out;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Event descriptions (plain text)

  function listNames(model, ids) {
    if (!Array.isArray(ids)) return '';
    const names = ids.slice(0, 6).map((id) => model.nodeName(model.idx(id)));
    return ids.length > 6 ? `${names.join(', ')} +${ids.length - 6}` : names.join(', ');
  }

  function describe(model, ev, pubTime) {
    const N = ev.node !== undefined ? model.nodeName(model.idx(ev.node)) : '';
    const P = (id) => model.nodeName(model.idx(id));
    switch (ev.type) {
      case 'node_up': return `${N} up`;
      case 'node_down': return `${N} down: ${str(ev.reason)}`;
      case 'peer_connected': return `${N} connected to ${P(ev.peer)}`;
      case 'peer_disconnected': return `${N} disconnected from ${P(ev.peer)}`;
      case 'subscribed': return `${N} subscribed to ${str(ev.topic)}`;
      case 'unsubscribed': return `${N} unsubscribed from ${str(ev.topic)}`;
      case 'published': return `${N} published #${str(ev.msg)} (${fmtSize(ev.size)}) on ${str(ev.topic)}`;
      case 'delivered': {
        const pub = pubTime(ev.msg);
        return `${N} got #${str(ev.msg)} from ${P(ev.from)}${pub !== null ? ` after ${fmtDuration(ev.t_ns - pub)}` : ''}`;
      }
      case 'duplicate': return `${N} duplicate of #${str(ev.msg)} from ${P(ev.from)}`;
      case 'graft': return `${N} grafted ${P(ev.peer)} (${str(ev.topic)})`;
      case 'prune': return `${N} pruned ${P(ev.peer)} (${str(ev.topic)})`;
      case 'link_changed': return `link ${N} → ${P(ev.to)}: ${shapeText(normShape(ev.shape))}`;
      case 'partition': return `partition: {${listNames(model, ev.a)}} | {${listNames(model, ev.b)}}`;
      case 'heal': return `heal: {${listNames(model, ev.a)}} | {${listNames(model, ev.b)}}`;
      case 'annotation': return `note: ${str(ev.text)}`;
      default: return `${N} ${str(ev.type)}`;
    }
  }

  function shapeText(s) {
    if (!s) return 'no shape';
    const parts = [fmtDuration(s.latency)];
    if (s.jitter) parts[0] += ` ± ${fmtDuration(s.jitter)}`;
    if (s.bandwidth !== null) parts.push(fmtBandwidth(s.bandwidth));
    if (s.loss) parts.push(`${+(s.loss * 100).toPrecision(3)}% loss`);
    return parts.join(', ');
  }

  const api = { Model, Replay, EmbeddedSource, computeLayout, percentile, median, fmtDuration, fmtClock, fmtBandwidth, describe, normShape };
  if (typeof module === 'object' && module && module.exports) module.exports = api;
  if (typeof document === 'undefined') return;

  // =======================================================================================
  // DOM: everything below needs a browser.

  const SVGNS = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    if (attrs) for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]));
    if (parent) parent.appendChild(e);
    return e;
  }

  function html(tag, cls, text, parent) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
  }

  const SPEEDS = ['0.001', '0.002', '0.005', '0.01', '0.02', '0.05', '0.1', '0.2', '0.5', '1', '2', '5', '10', '20', '50', '100', '200', '500', '1000'];
  const MAX_FRAMES = 90; // "max" speed plays the whole trace in about this many frames
  const LOG_MAX = 150;

  // Node class bits
  const C_DOWN = 1, C_UNSTARTED = 2, C_ORIGIN = 4, C_HAS = 8, C_EXPECTED = 16, C_PINNED = 32, C_STOPPED = 64;
  const CLASS_BITS = [[C_DOWN, 'down'], [C_UNSTARTED, 'unstarted'], [C_ORIGIN, 'origin'], [C_HAS, 'has'], [C_EXPECTED, 'expected'], [C_PINNED, 'pinned'], [C_STOPPED, 'stopped']];

  class Viewer {
    constructor(trace) {
      const t0 = performance.now();
      this.timings = {};
      this.trace = trace;
      const model = (this.model = new Model(trace));
      this.timings.model = performance.now() - t0;
      this.source = new EmbeddedSource(model.events);

      // Typical link latency: sets the bubble length and the default speed.
      const lats = [];
      for (const e of model.edges) for (const s of [e.ab, e.ba]) if (s && s.latency > 0) lats.push(s.latency);

      // One pass over the whole trace for the final figures and the longest flight.
      this.final = new Replay(model, { keepFlights: false, scan: false });
      const src = new EmbeddedSource(model.events);
      src.feedUntil(this.final, Infinity);
      this.final.advanceTo(Infinity);
      this.typical = median(lats) || median(this.final.flightDurations) || 10e6;
      this.bubbleNs = Math.max(this.typical, 1000);
      this.lookahead = Math.min(this.final.maxFlight, 30e9) + 1;
      this.endT = this.source.endTime() + this.bubbleNs;
      // Largest duplicate counts (one message at a node; all messages at a node): colour scales.
      this.maxDups = 1;
      for (const st of this.final.msgs) if (st) for (const d of st.dups) if (d > this.maxDups) this.maxDups = d;
      this.maxNodeDups = 1;
      for (const s of this.final.nodes) if (s && s.dups > this.maxNodeDups) this.maxNodeDups = s.dups;

      this.timings.finalPass = performance.now() - t0 - this.timings.model;
      this.replay = new Replay(model, { fallbackLatency: this.typical, scan: false });
      this.playing = false;
      this.sel = -1; // selected message index, -1 = all
      this.hover = -1;
      this.pinned = -1;
      this.lastFrame = null;
      this.scheduled = false;
      this.scrubbing = false;
      // What is on screen, to redraw only what changed.
      this.drawn = { epoch: -1, statsKey: '', logSeq: 0, panelKey: '', t: -1, panelsAt: -Infinity, logFull: false };

      let t1 = performance.now();
      this.buildStatic();
      this.buildGraph();
      this.timings.build = performance.now() - t1;
      this.bindControls();
      this.applyHash();
      t1 = performance.now();
      this.seek(this.replay.t, true);
      this.render();
      this.timings.firstRender = performance.now() - t1;
      this.timings.total = performance.now() - t0;
      this.setPhase(this.atEnd() ? 'ended' : 'ready');
      if (this.autoplay) this.play();
    }

    // ---- setup --------------------------------------------------------------------------

    buildStatic() {
      const m = this.model;
      const meta = m.meta;
      $('test-name').textContent = str(meta.test) || 'meshsim trace';
      const links = m.edges.filter((e) => e.kind === 'link').length;
      const bits = [
        `${m.nodes.length} nodes`,
        `${links} links`,
        `${m.messages.length} messages`,
        `${m.events.length} events`,
        str(meta.backend),
        str(meta.node_software),
        meta.seed !== undefined ? `seed ${str(meta.seed)}` : '',
        Number(meta.dilation) > 1 ? `time dilated x${Number(meta.dilation)}` : '',
        meta.time === 'virtual'
          ? (meta.deterministic === true ? 'virtual time (same seed, same trace)' : 'virtual time')
          : '',
        m.description,
      ].filter(Boolean);
      $('meta').textContent = bits.join(' · ');
      // A run whose links ran late is flagged for its whole length: its timings are the CPU's.
      const lag = m.lag;
      if (lag && lag.exceeded === true) {
        const ms = (ns) => `${(Number(ns) / 1e6).toFixed(2)} ms`;
        const lb = $('lag-banner');
        lb.textContent = `links ran late: p99 ${ms(lag.p99_ns)}, max ${ms(lag.max_ns)} ` +
          `(threshold ${ms(lag.threshold_ns)}); timings in this run are set by the CPU, not the links`;
        lb.hidden = false;
      }
      $('meta').title = [str(meta.shaping), str(meta.meshsim_version) && `meshsim ${str(meta.meshsim_version)}`].filter(Boolean).join(' · ');
      const sel = $('message');
      for (const msg of m.messages) this.addMessageOption(msg);
      sel.value = 'all';
      // Default speed: a typical link latency takes about a second of wall time.
      const want = this.typical / 1.2e9;
      let best = '1';
      for (const s of SPEEDS) if (Math.abs(Math.log(+s / want)) < Math.abs(Math.log(+best / want))) best = s;
      $('speed').value = best;
      $('duration').textContent = `/ ${fmtClock(this.endT)}`;
      const tl = $('timeline');
      tl.max = String(Math.ceil(this.endT / 1000));
      this.buildMarks();
    }

    addMessageOption(msg) {
      const o = document.createElement('option');
      o.value = String(msg.id);
      o.text = `#${msg.id} · ${this.model.nodeName(msg.origin)} · ${msg.topic} · ${fmtSize(msg.size)} @ ${fmtDuration(msg.published)}`;
      $('message').appendChild(o);
    }

    /** Ticks above the timeline: publishes, partitions, failures, annotations. */
    buildMarks() {
      const g = $('marks');
      clear(g);
      g.setAttribute('viewBox', '0 0 1000 8');
      const x = (t) => (t / this.endT) * 1000;
      const open = [];
      for (const ev of this.model.events) {
        let color = null;
        if (ev.type === 'published') {
          const mi = this.model.msg(ev.msg);
          color = mi >= 0 ? this.model.messages[mi].color : '#8cc4ff';
        } else if (ev.type === 'node_down') color = '#ff8f8f';
        else if (ev.type === 'annotation') color = '#e3b341';
        else if (ev.type === 'partition') open.push(ev.t_ns);
        else if (ev.type === 'heal' && open.length) {
          const t0 = open.shift();
          svg('rect', { x: x(t0), y: 5, width: Math.max(x(ev.t_ns) - x(t0), 1), height: 3, fill: '#ff4d4f', opacity: 0.8 }, g);
        }
        if (color) svg('rect', { x: x(ev.t_ns) - 1, y: 0, width: 2.5, height: 5, fill: color }, g);
      }
      for (const t0 of open) svg('rect', { x: x(t0), y: 5, width: Math.max(1000 - x(t0), 1), height: 3, fill: '#ff4d4f', opacity: 0.8 }, g);
    }

    buildGraph() {
      const m = this.model;
      const stage = $('stage');
      const w = stage.clientWidth || 1000;
      const h = stage.clientHeight || 700;
      this.W = 1000;
      this.H = Math.round((1000 * h) / w) || 700;
      const t0 = performance.now();
      const seed = (Number(m.meta.seed) >>> 0) ^ 0x9e3779b9;
      const { xs, ys } = computeLayout(m, this.W, this.H, seed);
      this.layoutMs = performance.now() - t0;
      this.xs = Array.from(xs);
      this.ys = Array.from(ys);
      const n = m.nodes.length;
      this.r = clamp(110 / Math.sqrt(Math.max(n, 1)), 3.5, 11);
      this.many = n > 150 || m.edges.length > 600;
      this.view = { x: 0, y: 0, w: this.W, h: this.H };
      $('stage').classList.toggle('many', this.many);
      this.applyView();

      // Link colour scales over the shapes in the trace (including changes).
      this.edgeEls = [];
      this.edgeLabels = [];
      this.edgeCache = [];
      this.showEdgeLabels = m.edges.filter((e) => e.kind === 'link').length <= 300;
      this.edgeTitles = m.edges.length <= 1500;
      this.linkMode = $('linkcolor').value;
      this.colorBy = $('colorby').value;
      this.computeScales();
      // Build detached, attach once.
      const edgesG = $('edges');
      const labelsG = $('edge-labels');
      const nodesG = $('nodes');
      this.edgeParent = document.createDocumentFragment();
      this.labelParent = document.createDocumentFragment();
      this.nodeParent = document.createDocumentFragment();
      for (const e of m.edges) this.addEdge(e);

      this.nodeEls = [];
      this.nodeCache = [];
      this.showNodeLabels = n <= 80;
      for (const nd of m.nodes) this.addNode(nd);
      this.placeEdgeLabels();
      edgesG.appendChild(this.edgeParent);
      labelsG.appendChild(this.labelParent);
      nodesG.appendChild(this.nodeParent);
      this.edgeParent = edgesG;
      this.labelParent = labelsG;
      this.nodeParent = nodesG;
      this.buildLegend();
    }

    computeScales() {
      const lat = [], loss = [], bw = [];
      const add = (s) => {
        if (!s) return;
        lat.push(s.latency);
        loss.push(s.loss);
        if (s.bandwidth !== null) bw.push(s.bandwidth);
      };
      for (const e of this.model.edges) { add(e.ab); add(e.ba); }
      for (const ev of this.model.events) if (ev.type === 'link_changed') add(normShape(ev.shape));
      // A loop, not Math.min(...v): spreading 100k+ values overflows the call stack.
      const range = (v) => {
        if (!v.length) return [0, 0];
        let lo = Infinity;
        let hi = -Infinity;
        for (const x of v) { if (x < lo) lo = x; if (x > hi) hi = x; }
        return [lo, hi];
      };
      this.scales = { latency: range(lat), loss: range(loss), bandwidth: range(bw) };
    }

    /** Stroke colour of an edge from its current shapes and the link colour mode. */
    edgeColor(sh) {
      if (!sh || (!sh.ab && !sh.ba)) return null;
      const mode = this.linkMode;
      const both = [sh.ab, sh.ba].filter(Boolean);
      const [lo, hi] = this.scales[mode] || [0, 0];
      let f;
      if (mode === 'loss') {
        const v = Math.max(...both.map((s) => s.loss));
        f = hi > 0 ? v / hi : 0;
      } else if (mode === 'bandwidth') {
        const v = Math.min(...both.map((s) => (s.bandwidth === null ? Infinity : s.bandwidth)));
        f = !Number.isFinite(v) || hi <= lo ? 0 : 1 - (Math.log(v) - Math.log(lo)) / (Math.log(hi) - Math.log(lo));
      } else {
        const v = Math.max(...both.map((s) => s.latency));
        f = hi > lo ? (v - lo) / (hi - lo) : 0;
      }
      return ramp(RAMP_GOOD_BAD, f);
    }

    edgeLabelText(sh) {
      const both = [sh.ab, sh.ba];
      if (!both[0] && !both[1]) return '';
      const lat = both.filter(Boolean).map((s) => fmtDuration(s.latency));
      const bws = both.filter(Boolean).map((s) => (s.bandwidth === null ? null : fmtBandwidth(s.bandwidth)));
      let text = lat[0] === lat[lat.length - 1] ? lat[0] : lat.join(' / ');
      const b = bws.filter((x) => x !== null);
      if (b.length) text += ` · ${b[0] === b[b.length - 1] ? b[0] : b.join(' / ')}`;
      return text;
    }

    edgeTitle(e, sh) {
      const A = this.model.nodeName(e.a);
      const B = this.model.nodeName(e.b);
      if (e.kind !== 'link' || (!sh.ab && !sh.ba)) return `${A} ↔ ${B}: peer connection (no direct link; traffic crosses the underlay)`;
      return `${A} → ${B}: ${shapeText(sh.ab)}\n${B} → ${A}: ${shapeText(sh.ba)}`;
    }

    addEdge(e) {
      const sh = this.replay.shapeOf(e.idx);
      const line = svg('line', {
        class: e.kind === 'link' ? 'edge' : 'edge overlay',
        x1: this.xs[e.a].toFixed(1), y1: this.ys[e.a].toFixed(1),
        x2: this.xs[e.b].toFixed(1), y2: this.ys[e.b].toFixed(1),
      }, this.edgeParent);
      let title = null;
      if (this.edgeTitles) {
        title = svg('title', null, line);
        title.textContent = this.edgeTitle(e, sh);
      }
      this.edgeEls[e.idx] = { line, title };
      this.edgeCache[e.idx] = { color: undefined, cls: -1, ab: null, ba: null };
    }

    /**
     * Link labels ("40 ms · 10 Mbit/s") where they fit: longest links first, skipping any
     * label that would overlap another label or a node. None when there are many links.
     */
    placeEdgeLabels() {
      if (!this.showEdgeLabels) return;
      const m = this.model;
      const cell = 40;
      const grid = new Map();
      const key = (cx, cy) => cx * 100003 + cy;
      const boxes = [];
      const cellsOf = (x0, y0, x1, y1, fn) => {
        for (let cx = Math.floor(x0 / cell); cx <= Math.floor(x1 / cell); cx++) {
          for (let cy = Math.floor(y0 / cell); cy <= Math.floor(y1 / cell); cy++) if (fn(key(cx, cy)) === false) return false;
        }
        return true;
      };
      const add = (b) => {
        boxes.push(b);
        cellsOf(b[0], b[1], b[2], b[3], (k) => { const l = grid.get(k); if (l) l.push(b); else grid.set(k, [b]); });
      };
      const free = (b) => cellsOf(b[0], b[1], b[2], b[3], (k) => {
        for (const o of grid.get(k) || []) if (b[0] < o[2] && o[0] < b[2] && b[1] < o[3] && o[1] < b[3]) return false;
        return true;
      });
      const pad = this.r + 2;
      for (let i = 0; i < m.nodes.length; i++) add([this.xs[i] - pad, this.ys[i] - pad, this.xs[i] + pad, this.ys[i] + pad + (this.showNodeLabels ? 12 : 0)]);
      const cands = m.edges
        .filter((e) => e.kind === 'link')
        .map((e) => ({ e, len: Math.hypot(this.xs[e.a] - this.xs[e.b], this.ys[e.a] - this.ys[e.b]) }))
        .filter((c) => c.len > 45)
        .sort((a, b) => b.len - a.len || a.e.idx - b.e.idx);
      for (const { e } of cands) {
        const text = this.edgeLabelText(this.replay.shapeOf(e.idx));
        if (!text) continue;
        const x = (this.xs[e.a] + this.xs[e.b]) / 2;
        const y = (this.ys[e.a] + this.ys[e.b]) / 2;
        const w = text.length * 4.6 + 4;
        const b = [x - w / 2, y - 6, x + w / 2, y + 6];
        if (!free(b)) continue;
        add(b);
        svg('rect', { class: 'edge-label-bg', x: (b[0] + 1).toFixed(1), y: (y - 5.5).toFixed(1), width: (w - 2).toFixed(1), height: 11, rx: 3 }, this.labelParent);
        const label = svg('text', { class: 'edge-label', x: x.toFixed(1), y: y.toFixed(1) }, this.labelParent);
        label.textContent = text;
        this.edgeLabels[e.idx] = label;
      }
    }

    addNode(nd) {
      const i = nd.idx;
      if (this.xs[i] === undefined) this.placeNew(i);
      const r = this.r;
      const g = svg('g', {
        class: 'node',
        'data-node': String(nd.id),
        'data-has': '',
        'data-up': 'true',
        transform: `translate(${this.xs[i].toFixed(1)} ${this.ys[i].toFixed(1)})`,
      }, this.nodeParent);
      const body = svg('circle', { class: 'body', r: r.toFixed(2) }, g);
      svg('circle', { class: 'ring', r: (r + 2.5).toFixed(2) }, g);
      const k = r * 0.75;
      svg('path', { class: 'cross', d: `M${-k} ${-k}L${k} ${k}M${-k} ${k}L${k} ${-k}` }, g);
      const title = svg('title', null, g);
      title.textContent = `${nd.name} (id ${nd.id})${nd.peerId ? `\n${nd.peerId}` : ''}`;
      if (this.showNodeLabels) {
        const t = svg('text', { y: (r + 11).toFixed(1) }, g);
        t.textContent = nd.name;
      }
      this.nodeEls[i] = { g, body };
      this.nodeCache[i] = { fill: null, cls: -1, has: '', up: 'true' };
    }

    /** A spot for a node that appeared after layout (live mode): next to a neighbour. */
    placeNew(i) {
      const nd = this.model.nodes[i];
      for (const ei of nd.edges) {
        const e = this.model.edges[ei];
        const o = e.a === i ? e.b : e.a;
        if (this.xs[o] !== undefined) {
          const a = (i * 2.399963) % (2 * Math.PI);
          this.xs[i] = this.xs[o] + Math.cos(a) * this.r * 5;
          this.ys[i] = this.ys[o] + Math.sin(a) * this.r * 5;
          return;
        }
      }
      const a = (i * 2.399963) % (2 * Math.PI);
      this.xs[i] = this.W / 2 + Math.cos(a) * this.W * 0.45;
      this.ys[i] = this.H / 2 + Math.sin(a) * this.H * 0.45;
    }

    /** Adds elements for nodes, edges and messages that appeared since (live mode). */
    syncStructure() {
      const m = this.model;
      for (let i = this.nodeEls.length; i < m.nodes.length; i++) this.addNode(m.nodes[i]);
      for (let k = this.edgeEls.length; k < m.edges.length; k++) this.addEdge(m.edges[k]);
      const options = $('message').options.length - 1;
      for (let k = options; k < m.messages.length; k++) this.addMessageOption(m.messages[k]);
    }

    buildLegend() {
      const lg = $('legend');
      clear(lg);
      const item = (draw, text) => {
        const box = html('span', 'item', null, lg);
        const s = svg('svg', { width: 26, height: 14, viewBox: '0 0 26 14' }, box);
        draw(s);
        html('span', null, text, box);
      };
      const sel = this.sel >= 0 ? this.model.messages[this.sel] : null;
      const color = sel ? sel.color : ramp(RAMP_COUNT, 1);
      const dupMode = $('colorby').value === 'duplicates';
      if (dupMode) {
        item((s) => { svg('circle', { cx: 7, cy: 7, r: 5, fill: ramp(RAMP_HEAT, 0.35) }, s); svg('circle', { cx: 19, cy: 7, r: 5, fill: ramp(RAMP_HEAT, 1) }, s); }, 'few → many duplicates received');
      } else {
        item((s) => svg('circle', { cx: 13, cy: 7, r: 5, fill: color, stroke: '#e6edf3' }, s), sel ? `holds #${sel.id}` : 'holds all messages');
        item((s) => svg('circle', { cx: 13, cy: 7, r: 5, fill: sel ? '#2b3543' : ramp(RAMP_COUNT, 0.4), stroke: '#7d8da0' }, s), sel ? 'expected, not yet' : 'holds some');
        if (sel) item((s) => svg('circle', { cx: 13, cy: 7, r: 5, fill: '#161c24', stroke: '#5d6b7c' }, s), 'not subscribed');
      }
      item((s) => { svg('circle', { cx: 13, cy: 7, r: 4, fill: color }, s); svg('circle', { cx: 13, cy: 7, r: 6, fill: 'none', stroke: '#fff', 'stroke-width': 1.5 }, s); }, 'origin');
      item((s) => { svg('circle', { cx: 13, cy: 7, r: 5, fill: '#3a3f47' }, s); svg('path', { d: 'M9.5 3.5L16.5 10.5M9.5 10.5L16.5 3.5', stroke: '#ff4d4f', 'stroke-width': 1.6 }, s); }, 'down');
      item((s) => svg('circle', { cx: 13, cy: 7, r: 5, fill: 'none', stroke: '#6b7280', 'stroke-dasharray': '2 2' }, s), 'not started');
      item((s) => { svg('line', { x1: 1, y1: 7, x2: 25, y2: 7, stroke: '#5d6b7c' }, s); svg('circle', { cx: 13, cy: 7, r: 3.2, fill: color }, s); }, 'copy in flight');
      item((s) => { svg('line', { x1: 1, y1: 7, x2: 25, y2: 7, stroke: '#5d6b7c' }, s); svg('circle', { cx: 13, cy: 7, r: 3, fill: 'none', stroke: DUP_COLOR, 'stroke-width': 1.5 }, s); }, 'duplicate copy');
      const mode = $('linkcolor').value;
      const [lo, hi] = this.scales[mode];
      const fmt = mode === 'loss' ? (v) => `${+(v * 100).toPrecision(3)}%` : mode === 'bandwidth' ? fmtBandwidth : fmtDuration;
      item((s) => {
        for (let k = 0; k < 6; k++) svg('rect', { x: 1 + k * 4, y: 5, width: 4, height: 4, fill: ramp(RAMP_GOOD_BAD, k / 5) }, s);
      }, mode === 'bandwidth' ? `link ${mode} ${fmt(hi)} → ${fmt(lo)}` : `link ${mode} ${fmt(lo)} → ${fmt(hi)}`);
      if (sel) item((s) => svg('line', { x1: 1, y1: 7, x2: 25, y2: 7, stroke: sel.color, 'stroke-width': 2.6 }, s), 'carried a first copy');
      item((s) => svg('line', { x1: 1, y1: 7, x2: 25, y2: 7, stroke: '#ff4d4f', 'stroke-dasharray': '4 3', 'stroke-width': 1.8 }, s), 'cut by a partition');
    }

    bindControls() {
      $('play').addEventListener('click', () => this.toggle());
      $('step').addEventListener('click', () => this.step());
      const onSpeed = () => this.kick();
      $('speed').addEventListener('change', onSpeed);
      $('speed').addEventListener('input', onSpeed);
      const onMsg = () => this.select($('message').value);
      $('message').addEventListener('change', onMsg);
      $('message').addEventListener('input', onMsg);
      $('goto-msg').addEventListener('click', () => {
        if (this.sel < 0) return;
        const m = this.model.messages[this.sel];
        if (m.published !== null) this.seek(Math.max(0, m.published - this.typical * 0.5));
      });
      $('colorby').addEventListener('change', () => { this.drawn.epoch = -1; this.buildLegend(); this.kick(); });
      $('linkcolor').addEventListener('change', () => {
        for (const c of this.edgeCache) c.color = undefined;
        this.drawn.epoch = -1;
        this.buildLegend();
        this.kick();
      });
      $('skip-idle').addEventListener('change', () => this.kick());
      const tl = $('timeline');
      tl.addEventListener('input', () => { this.scrubbing = true; this.seek(Number(tl.value) * 1000); });
      tl.addEventListener('change', () => { this.scrubbing = false; this.seek(Number(tl.value) * 1000); });
      tl.addEventListener('pointerup', () => { this.scrubbing = false; });

      // Hover and pin nodes.
      const nodesG = $('nodes');
      const nodeOf = (target) => {
        const g = target && target.closest ? target.closest('[data-node]') : null;
        return g ? this.model.idx(Number(g.getAttribute('data-node'))) : -1;
      };
      nodesG.addEventListener('mouseover', (ev) => { this.hover = nodeOf(ev.target); this.kick(); });
      nodesG.addEventListener('mouseout', () => { this.hover = -1; this.kick(); });
      let downAt = null;
      const g = $('stage');
      g.addEventListener('click', (ev) => {
        if (downAt && downAt.moved) return;
        const i = nodeOf(ev.target);
        this.pin(i === this.pinned ? -1 : i);
      });

      // Zoom (wheel) and pan (drag).
      g.addEventListener('wheel', (ev) => {
        ev.preventDefault();
        const f = Math.exp(clamp(ev.deltaY, -100, 100) * 0.002);
        const p = this.toWorld(ev.clientX, ev.clientY);
        const v = this.view;
        const w = clamp(v.w * f, this.W / 40, this.W * 3);
        const k = w / v.w;
        this.view = { x: p.x - (p.x - v.x) * k, y: p.y - (p.y - v.y) * k, w, h: v.h * k };
        this.applyView();
        this.kick();
      }, { passive: false });
      g.addEventListener('pointerdown', (ev) => {
        if (ev.button !== 0) return;
        downAt = { x: ev.clientX, y: ev.clientY, view: { ...this.view }, moved: false };
      });
      window.addEventListener('pointermove', (ev) => {
        if (!downAt || (ev.buttons & 1) === 0) return;
        const dx = ev.clientX - downAt.x;
        const dy = ev.clientY - downAt.y;
        if (!downAt.moved && Math.hypot(dx, dy) < 4) return;
        downAt.moved = true;
        g.classList.add('panning');
        const s = this.viewScale().s;
        this.view = { ...downAt.view, x: downAt.view.x - dx / s, y: downAt.view.y - dy / s };
        this.applyView();
        this.kick();
      });
      window.addEventListener('pointerup', () => {
        g.classList.remove('panning');
        setTimeout(() => { downAt = null; }, 0);
      });
      $('fit').addEventListener('click', () => { this.view = { x: 0, y: 0, w: this.W, h: this.H }; this.applyView(); this.kick(); });

      document.addEventListener('keydown', (ev) => {
        const tag = ev.target && ev.target.tagName;
        if (tag === 'INPUT' || tag === 'SELECT' || tag === 'BUTTON' || tag === 'TEXTAREA') return;
        if (ev.key === ' ') { ev.preventDefault(); this.toggle(); }
        else if (ev.key === 'ArrowRight') { ev.preventDefault(); this.step(); }
        else if (ev.key === 'ArrowLeft') { ev.preventDefault(); this.stepBack(); }
      });
      if (typeof ResizeObserver === 'function') new ResizeObserver(() => this.kick()).observe($('stage'));
      else window.addEventListener('resize', () => this.kick());
      document.addEventListener('visibilitychange', () => { this.lastFrame = null; this.kick(); });
    }

    /** #t=<ms>&msg=<id|all>&speed=<value>&node=<id>&play=1 */
    applyHash() {
      const raw = (location.hash || '').replace(/^#/, '');
      if (!raw) return;
      const q = new URLSearchParams(raw);
      const msg = q.get('msg');
      if (msg !== null) this.select(msg);
      const speed = q.get('speed');
      if (speed !== null && (speed === 'max' || SPEEDS.includes(speed))) $('speed').value = speed;
      const node = q.get('node');
      if (node !== null && node !== '' && Number.isFinite(Number(node))) this.pin(this.model.idx(Number(node)));
      const t = Number(q.get('t'));
      if (q.get('t') !== null && Number.isFinite(t)) this.replay.t = clamp(t * 1e6, 0, this.endT);
      this.autoplay = q.get('play') === '1';
    }

    // ---- control ------------------------------------------------------------------------

    setPhase(p) {
      if (document.body.dataset.phase !== p) document.body.dataset.phase = p;
    }

    atEnd() {
      return this.replay.t >= this.endT;
    }

    play() {
      if (this.atEnd()) this.seek(0);
      this.playing = true;
      this.lastFrame = null;
      this.setPhase('playing');
      this.kick();
    }

    pause() {
      this.playing = false;
      this.setPhase(this.atEnd() ? 'ended' : 'paused');
      this.kick();
    }

    toggle() {
      if (this.playing) this.pause(); else this.play();
    }

    /** Moves the playhead to t (ns): forwards by feeding, backwards by reset and re-feed. */
    seek(t, force) {
      t = clamp(Number.isFinite(t) ? t : 0, 0, this.endT);
      const r = this.replay;
      if (force || t < r.t) {
        r.reset();
        this.source.rewind();
      }
      this.source.feedUntil(r, t + this.lookahead);
      r.advanceTo(t);
      if (!this.playing) this.setPhase(this.atEnd() ? 'ended' : 'paused');
      this.kick();
    }

    /** Applies the next event (one at a time, even when several share a timestamp). */
    step() {
      this.playing = false;
      const r = this.replay;
      if (r.nextPendingTime() === null) this.source.feedNext(r);
      const ev = r.applyOne();
      if (ev) {
        this.source.feedUntil(r, r.t + this.lookahead);
        if (r.nextPendingTime() === null && this.source.peekTime() === null) r.t = Math.max(r.t, this.endT);
      } else {
        r.t = this.endT;
      }
      this.setPhase(this.atEnd() ? 'ended' : 'paused');
      this.kick();
    }

    stepBack() {
      this.playing = false;
      this.seek(this.source.prevTime(Math.min(this.replay.t, this.source.endTime() + 1)));
    }

    select(value) {
      const v = str(value);
      const mi = v === 'all' ? -1 : this.model.msg(Number(v));
      if (v !== 'all' && mi < 0) return;
      this.sel = mi;
      if ($('message').value !== (mi < 0 ? 'all' : String(this.model.messages[mi].id))) {
        $('message').value = mi < 0 ? 'all' : String(this.model.messages[mi].id);
      }
      this.drawn.epoch = -1; // repaint every node
      this.buildLegend();
      this.kick();
    }

    pin(i) {
      this.pinned = i;
      this.drawn.epoch = -1;
      this.kick();
    }

    /** Live mode: adds an event as if it had been in the trace. */
    push(ev) {
      if (!validEvent(ev)) return false;
      this.model.scanEvent(ev);
      this.source.append(ev);
      this.final.push(ev);
      this.final.advanceTo(Infinity);
      this.endT = Math.max(this.endT, ev.t_ns + this.bubbleNs);
      $('timeline').max = String(Math.ceil(this.endT / 1000));
      $('duration').textContent = `/ ${fmtClock(this.endT)}`;
      this.syncStructure();
      if (ev.t_ns <= this.replay.fedT) this.seek(this.replay.t, true);
      this.kick();
      return true;
    }

    speed() {
      const v = $('speed').value;
      return v === 'max' ? 'max' : Number(v) > 0 ? Number(v) : 1;
    }

    /** Schedules a frame (rAF when visible, a timer when the page is hidden). */
    kick() {
      if (this.scheduled) return;
      this.scheduled = true;
      const run = (now) => { this.scheduled = false; this.frame(now); };
      if (document.hidden) setTimeout(() => run(performance.now()), 16);
      else requestAnimationFrame(run);
    }

    frame(now) {
      // Follow a selection changed without an event (tests may set .value directly).
      const mv = $('message').value;
      if (mv !== (this.sel < 0 ? 'all' : String(this.model.messages[this.sel].id))) this.select(mv);
      if (this.playing) {
        const dt = this.lastFrame === null ? 16 : clamp(now - this.lastFrame, 0, 100);
        this.lastFrame = now;
        this.advance(dt);
      }
      this.render();
      if (this.playing) this.kick();
    }

    advance(dtMs) {
      const r = this.replay;
      const sp = this.speed();
      let t;
      if (sp === 'max') {
        this.source.feedUntil(r, r.t + this.lookahead);
        const next = r.nextPendingTime() ?? this.source.peekTime();
        t = Math.max(r.t + this.endT / MAX_FRAMES, next !== null ? Math.min(next, this.endT) : this.endT);
      } else {
        const perMs = sp * 1e6; // trace ns per wall ms
        t = r.t + dtMs * perMs;
        if ($('skip-idle').checked) {
          this.source.feedUntil(r, t + this.lookahead);
          if (!r.anyVisible(t, this.bubbleNs)) {
            const cands = [r.nextPendingTime(), r.nextFlightStart(t), this.source.peekTime()].filter((x) => x !== null && x > t);
            const next = cands.length ? Math.min(...cands) : null;
            if (next !== null && (next - t) / perMs > 400) t = Math.max(t, next - 150 * perMs);
            else if (next === null && (this.endT - t) / perMs > 400) t = this.endT;
          }
        }
      }
      if (t >= this.endT) {
        this.seek(this.endT);
        this.playing = false;
        this.setPhase('ended');
      } else {
        this.seek(t);
      }
    }

    // ---- rendering ----------------------------------------------------------------------

    applyView() {
      const v = this.view;
      const box = `${v.x} ${v.y} ${v.w} ${v.h}`;
      $('graph').setAttribute('viewBox', box);
      $('graph-links').setAttribute('viewBox', box);
    }

    /** The world -> CSS pixel transform of the SVG (viewBox with "meet"). */
    viewScale() {
      const stage = $('stage');
      const cw = stage.clientWidth || 1;
      const ch = stage.clientHeight || 1;
      const v = this.view;
      const s = Math.min(cw / v.w, ch / v.h);
      return { s, ox: (cw - v.w * s) / 2 - v.x * s, oy: (ch - v.h * s) / 2 - v.y * s, cw, ch };
    }

    toWorld(clientX, clientY) {
      const rect = $('stage').getBoundingClientRect();
      const { s, ox, oy } = this.viewScale();
      return { x: (clientX - rect.left - ox) / s, y: (clientY - rect.top - oy) / s };
    }

    /**
     * Draws the state at the playhead. The graph, clock and data-* attributes follow every
     * frame; the text panels (statistics, CDF, log, node details) at most ten times a second
     * while playing, and at once when paused.
     */
    render() {
      const r = this.replay;
      this.linkMode = $('linkcolor').value;
      this.colorBy = $('colorby').value;
      const full = this.drawn.epoch !== r.epoch;
      this.renderNodes(full);
      this.renderEdges(full);
      this.drawn.epoch = r.epoch;
      this.renderOverlay();
      this.renderClock();
      const now = performance.now();
      if (full) this.drawn.logFull = true;
      if (!this.playing || !(now - this.drawn.panelsAt < 100)) {
        this.drawn.panelsAt = now;
        this.renderBanners();
        this.renderStats();
        this.renderLog(this.drawn.logFull);
        this.drawn.logFull = false;
        this.renderPanel();
      }
    }

    nodeState(i) {
      const r = this.replay;
      const s = r.node(i);
      const m = this.model;
      let cls = 0;
      let fill;
      if (!s.started) cls |= C_UNSTARTED;
      if (!s.up) cls |= C_DOWN;
      // Stopped at the end of the run (not a failure): a grey cross rather than a red one.
      if (!s.up && s.reason && /end of simulation/i.test(s.reason)) cls |= C_STOPPED;
      if (i === this.pinned) cls |= C_PINNED;
      const dupMode = this.colorBy === 'duplicates';
      if (this.sel >= 0) {
        const info = m.messages[this.sel];
        const has = r.gotAt(this.sel, i) !== undefined;
        if (has) cls |= C_HAS;
        if (info.expected.has(i)) cls |= C_EXPECTED;
        if (info.origin === i) cls |= C_ORIGIN;
        if (dupMode) {
          const d = r.dupsAt(this.sel, i);
          fill = d ? ramp(RAMP_HEAT, 0.2 + (0.8 * d) / this.maxDups) : '#1f2630';
        } else fill = has ? info.color : cls & C_EXPECTED ? '#2b3543' : '#161c24';
      } else {
        const held = s.held.length;
        if (held) cls |= C_HAS;
        if (m.nodes[i].origin) cls |= C_ORIGIN;
        if (dupMode) fill = s.dups ? ramp(RAMP_HEAT, 0.2 + (0.8 * s.dups) / (this.maxNodeDups || 1)) : '#1f2630';
        else fill = held ? ramp(RAMP_COUNT, 0.25 + (0.75 * held) / Math.max(m.messages.length, 1)) : '#2b3543';
      }
      return { cls, fill, up: s.up ? 'true' : 'false' };
    }

    renderNodes(full) {
      const r = this.replay;
      const todo = full ? this.model.nodes.map((n) => n.idx) : r.dirtyNodes;
      for (const i of todo) {
        const el = this.nodeEls[i];
        if (!el) continue;
        const c = this.nodeCache[i];
        const st = this.nodeState(i);
        if (st.fill !== c.fill) { el.body.setAttribute('fill', st.fill); c.fill = st.fill; }
        if (st.cls !== c.cls) {
          // c.cls < 0: a new element, which has none of these classes yet.
          const prev = c.cls < 0 ? 0 : c.cls;
          for (const [bit, name] of CLASS_BITS) if ((st.cls & bit) !== (prev & bit)) el.g.classList.toggle(name, !!(st.cls & bit));
          c.cls = st.cls;
        }
        const has = r.heldString(i);
        if (has !== c.has) { el.g.setAttribute('data-has', has); c.has = has; }
        if (st.up !== c.up) { el.g.setAttribute('data-up', st.up); c.up = st.up; }
      }
      r.dirtyNodes.clear();
    }

    renderEdges(full) {
      const r = this.replay;
      const todo = full ? this.model.edges.map((e) => e.idx) : r.dirtyEdges;
      for (const k of todo) {
        const el = this.edgeEls[k];
        if (!el) continue;
        const e = this.model.edges[k];
        const c = this.edgeCache[k];
        const sh = r.shapeOf(k);
        if (c.ab !== sh.ab || c.ba !== sh.ba || c.color === undefined) {
          c.ab = sh.ab;
          c.ba = sh.ba;
          const color = this.edgeColor(sh);
          if (color) el.line.setAttribute('stroke', color); else el.line.removeAttribute('stroke');
          c.color = color;
          if (el.title) el.title.textContent = this.edgeTitle(e, sh);
          if (this.edgeLabels[k]) this.edgeLabels[k].textContent = this.edgeLabelText(sh);
        }
        const cut = (r.cut[k] || 0) > 0 ? 1 : 0;
        const dim = !r.node(e.a).up || !r.node(e.b).up ? 2 : 0;
        // Part of the selected message's propagation tree (carried a first delivery)?
        let tree = 0;
        if (this.sel >= 0 && r.msgs[this.sel]) {
          const from = r.msgs[this.sel].from;
          if ((from[e.a] === e.b && e.a !== e.b) || from[e.b] === e.a) tree = 4;
        }
        const cls = cut | dim | tree;
        if (c.cls < 0 && cls === 0) c.cls = 0; // a new element: nothing to remove
        if (cls !== c.cls) {
          el.line.classList.toggle('cut', !!cut);
          el.line.classList.toggle('dim', !!dim && !cut);
          el.line.classList.toggle('tree', !!tree && !cut);
          if (tree) el.line.style.setProperty('--tree', this.model.messages[this.sel].color);
          c.cls = cls;
        }
      }
      r.dirtyEdges.clear();
    }

    renderOverlay() {
      const canvas = $('overlay');
      const { s, ox, oy, cw, ch } = this.viewScale();
      const dpr = window.devicePixelRatio || 1;
      const pw = Math.round(cw * dpr);
      const ph = Math.round(ch * dpr);
      if (canvas.width !== pw || canvas.height !== ph) { canvas.width = pw; canvas.height = ph; }
      const ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, cw, ch);
      const r = this.replay;
      const t = r.t;
      const nodeR = this.r * s;
      const dotR = clamp(nodeR * 0.75, 2.2, 5);
      const grow = clamp(nodeR * 2.5, 10, 26);
      const X = (i) => ox + this.xs[i] * s;
      const Y = (i) => oy + this.ys[i] * s;
      const msgs = this.model.messages;
      const dots = [];
      r.forVisible(t, this.bubbleNs, (f, phase, p) => {
        const alpha = this.sel < 0 || f.mi === this.sel ? 1 : 0.13;
        if (phase === 'dot') { dots.push([f, p, alpha]); return; }
        // A bubble where the copy arrived: grows and fades.
        const color = f.dup ? DUP_COLOR : msgs[f.mi].color;
        ctx.globalAlpha = alpha * (1 - p) * (f.dup ? 0.55 : 0.85);
        ctx.strokeStyle = color;
        ctx.lineWidth = f.dup ? 1.2 : 2;
        ctx.beginPath();
        ctx.arc(X(f.to), Y(f.to), nodeR + p * (f.dup ? grow * 0.5 : grow), 0, Math.PI * 2);
        ctx.stroke();
      });
      for (const [f, p, alpha] of dots) {
        const x = X(f.from) + (X(f.to) - X(f.from)) * p;
        const y = Y(f.from) + (Y(f.to) - Y(f.from)) * p;
        ctx.globalAlpha = alpha;
        ctx.beginPath();
        ctx.arc(x, y, f.dup ? dotR * 0.9 : dotR, 0, Math.PI * 2);
        if (f.dup) {
          ctx.strokeStyle = DUP_COLOR;
          ctx.lineWidth = 1.5;
          ctx.stroke();
        } else {
          ctx.fillStyle = msgs[f.mi].color;
          ctx.fill();
          ctx.strokeStyle = 'rgba(13,17,23,0.9)';
          ctx.lineWidth = 1;
          ctx.stroke();
        }
      }
      ctx.globalAlpha = 1;
    }

    renderClock() {
      const t = this.replay.t;
      if (t === this.drawn.t) return;
      this.drawn.t = t;
      $('clock').textContent = fmtClock(t);
      if (!this.scrubbing) $('timeline').value = this.atEnd() ? $('timeline').max : String(Math.round(t / 1000));
    }

    renderBanners() {
      const r = this.replay;
      const pb = $('partition-banner');
      if (r.partitions.length) {
        const p = r.partitions[r.partitions.length - 1];
        const names = (l) => listNames(this.model, l.map((i) => this.model.nodes[i].id));
        const more = r.partitions.length > 1 ? ` (+${r.partitions.length - 1} more)` : '';
        pb.textContent = `⚡ partitioned: {${names(p.aList)}} | {${names(p.bList)}}${more}`;
        pb.hidden = false;
      } else pb.hidden = true;
      const ab = $('annotation-banner');
      if (r.annotation) {
        ab.textContent = `${fmtClock(r.annotation.t)} · ${r.annotation.text}`;
        ab.hidden = false;
      } else ab.hidden = true;
    }

    pubTime(id) {
      const mi = this.model.msg(id);
      if (mi < 0) return null;
      const m = this.model.messages[mi];
      if (m.published !== null) return m.published;
      const st = this.replay.msgs[mi];
      return st ? st.pubT : null;
    }

    renderStats() {
      const r = this.replay;
      const key = `${r.epoch}:${r.statsVersion}:${this.sel}:${this.final.statsVersion}`;
      const t = r.t;
      if (key === this.drawn.statsKey && (this.sel < 0 || t === this.drawn.cdfT)) return;
      const changed = key !== this.drawn.statsKey;
      this.drawn.statsKey = key;
      this.drawn.cdfT = t;
      const now = r.stats(this.sel);
      const fin = this.final.stats(this.sel);
      if (changed) {
        const put = (name, text, value, finText) => {
          const v = document.querySelector(`#stats [data-stat="${name}"]`);
          v.textContent = text;
          v.setAttribute('data-value', value === null || value === undefined ? '' : String(value));
          document.querySelector(`#stats [data-final="${name}"]`).textContent = finText;
        };
        put('reach', fmtPercent(now.reach), now.reach, fmtPercent(fin.reach));
        const reach = document.querySelector('#stats [data-stat="reach"]');
        reach.title = `${now.delivered} of ${now.expected} expected nodes (final ${fin.delivered})`;
        put('p50', fmtDuration(now.p50), now.p50, fmtDuration(fin.p50));
        put('p99', fmtDuration(now.p99), now.p99, fmtDuration(fin.p99));
        put('dissemination', fmtDuration(now.dissemination), now.dissemination, fmtDuration(fin.dissemination));
        put('duplicates', String(now.duplicates), now.duplicates, String(fin.duplicates));
        document.querySelector('#stats [data-stat="duplicates"]').title = 'duplicate copies received, all nodes together';
        this.renderMessageInfo(fin);
      }
      this.renderCdf(now, fin);
    }

    renderMessageInfo(fin) {
      const box = $('message-info');
      clear(box);
      const m = this.model;
      if (this.sel < 0) {
        const topics = [...new Set(m.messages.map((x) => x.topic))];
        html('span', null, `${m.messages.length} messages on ${topics.length} topic${topics.length === 1 ? '' : 's'}: ${topics.join(', ')}`, box);
        return;
      }
      const info = m.messages[this.sel];
      const kv = html('div', 'kv', null, box);
      const row = (k, v, swatch) => {
        html('div', null, k, kv);
        const d = html('div', null, null, kv);
        if (swatch) { const s = html('span', 'swatch', null, d); s.style.background = swatch; }
        d.appendChild(document.createTextNode(v));
      };
      row('origin', `${m.nodeName(info.origin)} (id ${info.origin >= 0 ? m.nodes[info.origin].id : '?'})`, info.color);
      row('topic', info.topic);
      row('size', fmtSize(info.size));
      row('published', info.published !== null ? fmtClock(info.published) : '–');
      row('expected', `${info.expected.size} nodes; final ${fin.delivered} reached`);
    }

    /**
     * The CDF: x = latency from publish, y = fraction of expected nodes reached. The frame,
     * the final curve and the p50/p99 markers are drawn when the selection changes; the
     * curve so far and the playhead cursor are updated in place.
     */
    renderCdf(now, fin) {
      const g = $('cdf');
      const W = 340, H = 170, L = 38, R = 12, T = 10, B = 24;
      const pw = W - L - R;
      const ph = H - T - B;
      const total = fin.expected;
      const lat = fin.latencies;
      const frameKey = `${this.sel}:${this.final.statsVersion}`;
      if (this.cdf && this.cdf.key !== frameKey) this.cdf = null;
      if (!this.cdf) {
        clear(g);
        this.cdf = { key: frameKey, now: null, cursor: null };
        if (!total || !lat.length) {
          const t = svg('text', { x: W / 2, y: H / 2, class: 'empty' }, g);
          t.textContent = total ? 'no deliveries' : 'no expected receivers';
          return;
        }
        const xmax = niceCeil(lat[lat.length - 1] || 1);
        const X = (v) => L + (v / xmax) * pw;
        const Y = (f) => T + ph - f * ph;
        Object.assign(this.cdf, { X, Y, xmax });
        for (const f of [0, 0.25, 0.5, 0.75, 1]) {
          svg('line', { class: 'grid', x1: L, x2: L + pw, y1: Y(f), y2: Y(f) }, g);
          const t = svg('text', { x: L - 4, y: Y(f) + 3, 'text-anchor': 'end' }, g);
          t.textContent = `${f * 100}%`;
        }
        for (let k = 0; k <= 4; k++) {
          const v = (xmax * k) / 4;
          svg('line', { class: 'axis', x1: X(v), x2: X(v), y1: T + ph, y2: T + ph + 3 }, g);
          const t = svg('text', { x: X(v), y: H - 8, 'text-anchor': k === 0 ? 'start' : k === 4 ? 'end' : 'middle' }, g);
          t.textContent = v === 0 ? '0' : fmtDuration(v);
        }
        svg('line', { class: 'axis', x1: L, x2: L + pw, y1: T + ph, y2: T + ph }, g);
        svg('line', { class: 'axis', x1: L, x2: L, y1: T, y2: T + ph }, g);
        svg('path', { class: 'final', d: this.cdfPath(lat, total) }, g);
        for (const [name, v] of [['p50', fin.p50], ['p99', fin.p99]]) {
          if (v === null) continue;
          svg('line', { class: 'marker', x1: X(v), x2: X(v), y1: T, y2: T + ph, stroke: name === 'p50' ? '#8b949e' : '#d2a8ff' }, g);
          const right = X(v) > L + pw * 0.7;
          const t = svg('text', { x: X(v) + (right ? -3 : 3), y: T + (name === 'p50' ? 18 : 8), 'text-anchor': right ? 'end' : 'start' }, g);
          t.textContent = `${name} ${fmtDuration(v)}`;
        }
        const color = this.sel >= 0 ? this.model.messages[this.sel].color : '#58a6ff';
        this.cdf.now = svg('path', { class: 'now', d: '', stroke: color }, g);
        this.cdf.cursor = svg('line', { class: 'cursor', x1: 0, x2: 0, y1: T, y2: T + ph, visibility: 'hidden' }, g);
      }
      const c = this.cdf;
      if (!c.now) return;
      // For one message, the cursor sits at "playhead - publish" and the curve runs up to it.
      let cursor;
      if (this.sel >= 0) {
        const pub = this.model.messages[this.sel].published;
        if (pub !== null && this.replay.t >= pub) cursor = Math.min(this.replay.t - pub, c.xmax);
      }
      const d = now.latencies.length || cursor !== undefined ? this.cdfPath(now.latencies, total, cursor) : '';
      if (d !== c.d) { c.now.setAttribute('d', d); c.d = d; }
      const vis = cursor !== undefined ? 'visible' : 'hidden';
      c.cursor.setAttribute('visibility', vis);
      if (cursor !== undefined) {
        const x = c.X(cursor).toFixed(1);
        c.cursor.setAttribute('x1', x);
        c.cursor.setAttribute('x2', x);
      }
    }

    /** A step path through sorted latencies (at most ~300 steps), optionally to x = upto. */
    cdfPath(values, total, upto) {
      const { X, Y } = this.cdf;
      const n = values.length;
      const stride = Math.max(1, Math.floor(n / 300));
      let d = `M${X(0).toFixed(1)} ${Y(0).toFixed(1)}`;
      for (let k = 0; k < n; k += stride) {
        const kk = Math.min(n - 1, k + stride - 1);
        d += `H${X(values[k]).toFixed(1)}V${Y((kk + 1) / total).toFixed(1)}`;
      }
      if (upto !== undefined && (!n || upto > values[n - 1])) d += `H${X(upto).toFixed(1)}`;
      return d;
    }

    renderLog(full) {
      const r = this.replay;
      const ol = $('log');
      if (full || r.seq < this.drawn.logSeq) {
        clear(ol);
        this.drawn.logSeq = 0;
      }
      const fresh = r.recent.filter((x) => x.seq > this.drawn.logSeq).slice(-LOG_MAX);
      if (!fresh.length) return;
      const pub = (id) => this.pubTime(id);
      for (const { ev } of fresh) {
        const li = document.createElement('li');
        li.className = /^[a-z_]+$/.test(ev.type) ? ev.type : 'other';
        html('span', 't', fmtClock(ev.t_ns), li);
        li.appendChild(document.createTextNode(describe(this.model, ev, pub)));
        ol.insertBefore(li, ol.firstChild);
      }
      while (ol.childNodes.length > LOG_MAX) ol.removeChild(ol.lastChild);
      this.drawn.logSeq = r.seq;
      const last = fresh[fresh.length - 1].ev;
      $('current-event').textContent = `${fmtClock(last.t_ns)}  ${describe(this.model, last, pub)}`;
    }

    renderPanel() {
      const i = this.hover >= 0 ? this.hover : this.pinned;
      const r = this.replay;
      const key = `${i}:${r.epoch}:${r.version}:${this.sel}`;
      if (key === this.drawn.panelKey) return;
      this.drawn.panelKey = key;
      const box = $('node-info');
      clear(box);
      if (i < 0) {
        html('span', null, `${this.model.nodes.length} nodes. Hover a node for details; click to pin it.`, box);
        return;
      }
      const m = this.model;
      const nd = m.nodes[i];
      const s = r.node(i);
      const kv = html('div', 'kv', null, box);
      const row = (k, v) => { html('div', null, k, kv); html('div', null, v, kv).title = v; };
      row('name', nd.name);
      row('id', String(nd.id));
      if (nd.peerId) row('peer id', nd.peerId);
      row('state', s.up ? 'up' : s.started ? `down: ${s.reason || ''}` : 'not started');
      row('topics', [...s.subs].join(', ') || '–');
      const mesh = [...s.mesh].map(([topic, set]) => `${topic}: ${set.size}`).join(', ');
      row('peers', `${s.peers.size} connected${mesh ? `; mesh ${mesh}` : ''}`);
      row('holds', `${s.held.length} of ${m.messages.length} messages`);
      if (this.sel >= 0) {
        const info = m.messages[this.sel];
        const got = r.gotAt(this.sel, i);
        const st = r.msgs[this.sel];
        const pub = info.published !== null ? info.published : st ? st.pubT : null;
        let text;
        if (info.origin === i) text = got !== undefined ? 'published it' : 'will publish it';
        else if (got !== undefined) {
          const from = st.from[i];
          const hops = r.hops(this.sel, i);
          text = `${pub !== null ? `after ${fmtDuration(got - pub)} ` : ''}from ${m.nodeName(from)}${hops !== null ? ` (${hops} hop${hops === 1 ? '' : 's'})` : ''}`;
        } else text = info.expected.has(i) ? 'not yet' : 'not expected (not subscribed)';
        row(`#${info.id}`, text);
        row('duplicates', `${r.dupsAt(this.sel, i)} of #${info.id}; ${s.dups} in all`);
      } else {
        row('duplicates', `${s.dups} in all`);
      }
    }
  }

  /** A round number at or above v (1, 2, 2.5, 5 x 10^k). */
  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= v) return k * p;
    return 10 * p;
  }

  function boot() {
    try {
      const el = document.getElementById('meshsim-trace');
      const trace = JSON.parse(el ? el.textContent : 'null');
      if (!trace || typeof trace !== 'object') throw new Error('no trace embedded in this page');
      window.meshsimViewer = new Viewer(trace);
    } catch (err) {
      document.body.dataset.phase = 'error';
      const box = document.createElement('div');
      box.id = 'fatal';
      box.textContent = `meshsim viewer: cannot show this trace: ${err && err.message ? err.message : String(err)}`;
      document.body.insertBefore(box, document.body.firstChild);
      if (typeof console !== 'undefined') console.error(err);
    }
  }

  boot();
})();
