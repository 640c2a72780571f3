//! The viewer in a real headless browser (Debian's `chromium`, driven over the DevTools
//! protocol): a trace from a real simulation is played to the end and every node's state in
//! the page is checked against the trace; hostile strings in a trace stay text; a 1,000-node
//! trace loads and plays. Screenshots are kept under `target/meshsim/viewer_tests.*/`.
//!
//! Without a browser these tests print `meshsim: skipping ...` and pass, unless `CI` or
//! `MESHSIM_REQUIRE_BROWSER` is set: then they fail. `MESHSIM_CHROMIUM` names the browser
//! binary (default: `chromium`, `chromium-browser` or `google-chrome` on the PATH).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use meshsim::trace::trace_dir;
use meshsim::{EventKind, GeoParams, NodeId, Sim, Topology, Trace, ms, node, secs};

/// How long the page may take to reach a phase. Generous: the machine may be busy with
/// other tests; this is a hang guard, not a speed check.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

fn required() -> bool {
    ["CI", "MESHSIM_REQUIRE_BROWSER"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0" && x != "false"))
}

fn find_browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MESHSIM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// A headless browser, or `None` (with a message) where there is none and none is required.
fn browser(test: &str) -> Option<Browser> {
    let Some(path) = find_browser() else {
        if required() {
            panic!(
                "{test}: no chromium found (CI or MESHSIM_REQUIRE_BROWSER is set); install Debian's `chromium` or set MESHSIM_CHROMIUM"
            );
        }
        meshsim::__private::skip(test, "no chromium on the PATH", "MESHSIM_REQUIRE_BROWSER");
        return None;
    };
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        // Tests run as root in CI, where Chromium's sandbox cannot start.
        .sandbox(false)
        .window_size(Some((1400, 900)))
        .idle_browser_timeout(PHASE_TIMEOUT)
        .build()
        .expect("launch options");
    Some(Browser::new(options).expect("chromium starts"))
}

/// A 30-node geographic network (positions, varied latencies), three messages; node 5
/// stops before the third, and the west and east halves are partitioned for a while.
fn real_trace() -> &'static Trace {
    static TRACE: OnceLock<Trace> = OnceLock::new();
    TRACE.get_or_init(|| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let params = GeoParams {
                k: 4,
                ..GeoParams::default()
            };
            let net = Topology::geographic(30, params, 11)
                .unwrap()
                .with_bandwidth(20_000_000);
            let sim = Sim::new("viewer_tests.real").unwrap().with_seed(11);
            let mut sim = sim.start(net).await.unwrap();
            for origin in [0, 17] {
                let msg = sim
                    .publish(node(origin), meshsim::DEFAULT_TOPIC, 4096)
                    .await
                    .unwrap();
                sim.wait_delivered(msg, secs(20)).await.unwrap();
            }
            sim.stop_node(node(5)).await.unwrap();
            let west: Vec<NodeId> = (0..10).filter(|&i| i != 5).map(node).collect();
            let east: Vec<NodeId> = (10..30).filter(|&i| i != 5).map(node).collect();
            sim.partition(&west, &east).await.unwrap();
            sim.annotate("west cut off");
            sim.publish(node(12), meshsim::DEFAULT_TOPIC, 4096)
                .await
                .unwrap();
            sim.run_for(ms(600)).await;
            sim.heal(&west, &east).await.unwrap();
            sim.run_for(secs(2)).await;
            sim.trace()
        })
    })
}

/// What each node holds and whether it is up once every event has happened.
fn final_state(t: &Trace) -> BTreeMap<u32, (BTreeSet<u64>, bool)> {
    state_after(t, t.events.len())
}

/// What each node holds and whether it is up after the first `k` events. A node whose first
/// up/down event is `node_up` had not started before it.
fn state_after(t: &Trace, k: usize) -> BTreeMap<u32, (BTreeSet<u64>, bool)> {
    let starts_later = |n: NodeId| {
        t.events
            .iter()
            .find(|e| {
                e.node == Some(n)
                    && matches!(e.kind, EventKind::NodeUp | EventKind::NodeDown { .. })
            })
            .is_some_and(|e| e.kind == EventKind::NodeUp)
    };
    let mut out: BTreeMap<u32, (BTreeSet<u64>, bool)> = t
        .topology
        .nodes
        .iter()
        .map(|n| (n.id.0, (BTreeSet::new(), !starts_later(n.id))))
        .collect();
    for e in &t.events[..k] {
        let Some(n) = e.node else { continue };
        let s = out.entry(n.0).or_default();
        match &e.kind {
            EventKind::Published { msg, .. } | EventKind::Delivered { msg, .. } => {
                s.0.insert(msg.0);
            }
            EventKind::NodeUp => s.1 = true,
            EventKind::NodeDown { .. } => s.1 = false,
            _ => {}
        }
    }
    out
}

/// Writes the trace's viewer under `target/meshsim/<name>/` and opens it.
fn open(browser: &Browser, name: &str, trace: &Trace) -> (Arc<Tab>, PathBuf) {
    let dir = trace_dir(name);
    let html = dir.join("trace.html");
    meshsim::view::write(trace, &html).unwrap();
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(PHASE_TIMEOUT);
    let url = format!("file://{}", std::fs::canonicalize(&html).unwrap().display());
    tab.navigate_to(&url).unwrap();
    tab.wait_until_navigated().unwrap();
    wait_phase(&tab, &["ready", "paused"]);
    (tab, dir)
}

fn eval(tab: &Tab, js: &str) -> serde_json::Value {
    tab.evaluate(js, false)
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .value
        .unwrap_or(serde_json::Value::Null)
}

fn wait_phase(tab: &Tab, phases: &[&str]) {
    let selector = phases
        .iter()
        .map(|p| format!("body[data-phase=\"{p}\"]"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Err(e) = tab.wait_for_element_with_custom_timeout(&selector, PHASE_TIMEOUT) {
        let phase = eval(tab, "document.body.dataset.phase || ''");
        panic!("the page never reached {phases:?} (phase {phase}): {e}");
    }
}

/// Sets the speed to "max", presses play and waits for the end.
fn play_to_end(tab: &Tab) {
    let speed = eval(
        tab,
        "(() => { const s = document.getElementById('speed'); s.value = 'max'; \
         s.dispatchEvent(new Event('change', {bubbles: true})); \
         s.dispatchEvent(new Event('input', {bubbles: true})); return s.value; })()",
    );
    assert_eq!(speed, "max", "the speed control offers max");
    tab.find_element("#play").unwrap().click().unwrap();
    wait_phase(tab, &["ended"]);
}

/// Every node element's `(id, has, up)` as the page shows it.
fn page_state(tab: &Tab) -> BTreeMap<u32, (BTreeSet<u64>, bool)> {
    let json = eval(
        tab,
        "JSON.stringify([...document.querySelectorAll('[data-node]')]\
         .map(e => [e.dataset.node, e.dataset.has || '', e.dataset.up]))",
    );
    let rows: Vec<(String, String, String)> =
        serde_json::from_str(json.as_str().expect("a JSON string")).unwrap();
    rows.into_iter()
        .map(|(id, has, up)| {
            let has = has
                .split_whitespace()
                .map(|m| m.parse().expect("message ids are numbers"))
                .collect();
            (
                id.parse().expect("node ids are numbers"),
                (has, up == "true"),
            )
        })
        .collect()
}

fn screenshot(tab: &Tab, path: &Path) {
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    std::fs::write(path, png).unwrap();
    println!("screenshot: {}", path.display());
}

#[test]
fn viewer_replays_a_real_trace_to_the_end() {
    let Some(browser) = browser("viewer_replays_a_real_trace_to_the_end") else {
        return;
    };
    let trace = real_trace();
    let expected = final_state(trace);
    assert!(!expected[&5].1, "the fixture stops node 5");
    assert!(
        expected.values().any(|(has, _)| has.len() == 3)
            && expected.values().any(|(has, _)| has.len() < 3),
        "the fixture's third message misses the cut-off half"
    );

    let (tab, dir) = open(&browser, "viewer_tests.real", trace);
    assert_eq!(
        page_state(&tab)
            .values()
            .map(|(h, _)| h.len())
            .sum::<usize>(),
        0,
        "nothing is held before playing"
    );
    play_to_end(&tab);
    assert_eq!(page_state(&tab), expected);
    // The statistics panel shows the selected message's reach.
    eval(
        &tab,
        "(() => { const m = document.getElementById('message'); m.value = '0'; \
         m.dispatchEvent(new Event('change', {bubbles: true})); })()",
    );
    let reach = eval(
        &tab,
        "document.querySelector('#stats [data-stat=reach]').textContent",
    );
    assert!(
        reach.as_str().unwrap_or("").contains("100"),
        "message 0 reached everyone: {reach}"
    );
    screenshot(&tab, &dir.join("screenshot.png"));
}

#[test]
fn viewer_scrubs_and_steps_through_the_events() {
    let Some(browser) = browser("viewer_scrubs_and_steps_through_the_events") else {
        return;
    };
    let trace = real_trace();
    let (tab, _) = open(&browser, "viewer_tests.steps", trace);
    // Scrub (the timeline is in microseconds) to just before each message's publish, then
    // step through the next 25 events one by one.
    for m in &trace.messages {
        let t_us = m.published_ns / 1000 - 1;
        eval(
            &tab,
            &format!(
                "(() => {{ const tl = document.getElementById('timeline'); tl.value = '{t_us}'; \
                 tl.dispatchEvent(new Event('input', {{bubbles: true}})); \
                 tl.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"
            ),
        );
        let before = trace.events.partition_point(|e| e.t_ns <= t_us * 1000);
        assert_eq!(page_state(&tab), state_after(trace, before), "at {t_us} us");
        let step = tab.find_element("#step").unwrap();
        for i in 1..=25 {
            step.click().unwrap();
            assert_eq!(
                page_state(&tab),
                state_after(trace, before + i),
                "{i} steps after {t_us} us"
            );
        }
    }
}

#[test]
fn viewer_shows_hostile_strings_as_text() {
    let Some(browser) = browser("viewer_shows_hostile_strings_as_text") else {
        return;
    };
    let mut trace = real_trace().clone();
    let hostile = [
        "<script>window.__pwned = 1</script>",
        "<img src=x onerror=\"window.__pwned = 2\">",
        "</script><script>window.__pwned = 3</script>",
    ];
    for (i, n) in trace.topology.nodes.iter_mut().enumerate() {
        n.name = format!("{}{i}", hostile[i % hostile.len()]);
    }
    let topic = "<svg onload=\"window.__pwned = 4\">";
    trace.meta.test = hostile[2].into();
    for m in &mut trace.messages {
        m.topic = topic.into();
    }
    for e in &mut trace.events {
        match &mut e.kind {
            EventKind::Published { topic: t, .. }
            | EventKind::Subscribed { topic: t }
            | EventKind::Graft { topic: t, .. }
            | EventKind::Prune { topic: t, .. } => *t = topic.into(),
            EventKind::Annotation { text } => *text = hostile[1].into(),
            EventKind::NodeDown { reason } => *reason = hostile[0].into(),
            _ => {}
        }
    }
    let (tab, _) = open(&browser, "viewer_tests.hostile", &trace);
    play_to_end(&tab);
    assert_eq!(eval(&tab, "typeof window.__pwned"), "undefined");
    assert_eq!(
        eval(
            &tab,
            "document.querySelectorAll('img, iframe, object, embed').length"
        ),
        0
    );
    let text = eval(&tab, "document.documentElement.textContent");
    let text = text.as_str().unwrap();
    for s in hostile.iter().chain([&topic]) {
        assert!(text.contains(s), "{s:?} is shown as text");
    }
    assert_eq!(page_state(&tab), final_state(&trace));
}

/// A synthetic 1,000-node trace: a random 8-regular graph, five messages flooding it
/// breadth first with 20 ms per hop, a duplicate from every other neighbour.
fn big_trace() -> Trace {
    let net = Topology::random_regular(1000, 8, 5).unwrap();
    let mut trace = real_trace().clone();
    trace.meta.test = "viewer_tests.big".into();
    trace.topology.nodes = (0..1000)
        .map(|i| meshsim::topology::NodeSpec {
            id: NodeId(i),
            name: format!("n{i}"),
            position: None,
            peer_id: None,
        })
        .collect();
    trace.topology.links = net.links().copied().collect();
    trace.topology.overlay = net.links().map(|l| (l.a, l.b)).collect();
    let mut events = Vec::new();
    let mut messages = Vec::new();
    for m in 0..5u64 {
        let origin = NodeId((m * 199) as u32);
        let t0 = m * 1_000_000_000;
        messages.push(meshsim::trace::MessageInfo {
            id: meshsim::MsgId(m),
            origin,
            topic: "blocks".into(),
            size: 1000,
            published_ns: t0,
            expected: (0..1000).map(NodeId).filter(|&n| n != origin).collect(),
        });
        let mut hop: BTreeMap<NodeId, u64> = BTreeMap::from([(origin, 0)]);
        let mut frontier = vec![origin];
        events.push((
            t0,
            origin,
            EventKind::Published {
                msg: meshsim::MsgId(m),
                topic: "blocks".into(),
                size: 1000,
            },
        ));
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for &from in &frontier {
                for to in net.neighbours(from) {
                    let t = t0 + (hop[&from] + 1) * 20_000_000;
                    let kind = if hop.contains_key(&to) {
                        EventKind::Duplicate {
                            msg: meshsim::MsgId(m),
                            from,
                        }
                    } else {
                        hop.insert(to, hop[&from] + 1);
                        next.push(to);
                        EventKind::Delivered {
                            msg: meshsim::MsgId(m),
                            from,
                        }
                    };
                    events.push((t, to, kind));
                }
            }
            frontier = next;
        }
    }
    events.sort_by_key(|e| e.0);
    trace.events = events
        .into_iter()
        .map(|(t_ns, n, kind)| meshsim::Event {
            t_ns,
            node: Some(n),
            kind,
        })
        .collect();
    trace.messages = messages;
    assert!(trace.check().is_empty(), "{:?}", trace.check());
    trace
}

#[test]
fn viewer_plays_a_thousand_nodes() {
    let Some(browser) = browser("viewer_plays_a_thousand_nodes") else {
        return;
    };
    let trace = big_trace();
    let (tab, dir) = open(&browser, "viewer_tests.big", &trace);
    play_to_end(&tab);
    let state = page_state(&tab);
    assert_eq!(state.len(), 1000);
    assert_eq!(state, final_state(&trace));
    screenshot(&tab, &dir.join("screenshot.png"));
}
