//! Generators, imports and underlay routing.

use std::collections::HashSet;

use meshsim::{GeoParams, LinkShape, Overlay, Topology, ms, node};

fn degrees(t: &Topology) -> Vec<usize> {
    t.nodes().map(|n| t.neighbours(n).len()).collect()
}

#[test]
fn simple_generators_have_the_right_shape() {
    assert_eq!(degrees(&Topology::line(4).unwrap()), vec![1, 2, 2, 1]);
    assert_eq!(degrees(&Topology::ring(5).unwrap()), vec![2; 5]);
    assert_eq!(degrees(&Topology::star(5).unwrap()), vec![4, 1, 1, 1, 1]);
    assert_eq!(degrees(&Topology::full_mesh(5).unwrap()), vec![4; 5]);
    let g = Topology::grid(3, 2).unwrap();
    assert_eq!(degrees(&g), vec![2, 3, 2, 2, 3, 2]);
    assert_eq!(g.node_spec(node(4)).unwrap().position, Some((1.0, 1.0)));
}

#[test]
fn random_regular_is_regular_simple_and_seeded() {
    let t = Topology::random_regular(1000, 8, 42).unwrap();
    assert!(degrees(&t).iter().all(|&d| d == 8));
    assert_eq!(t.link_count(), 4000);
    assert!(t.validate().is_ok(), "connected");
    let pairs = |t: &Topology| t.links().map(|l| (l.a, l.b)).collect::<Vec<_>>();
    assert_eq!(
        pairs(&t),
        pairs(&Topology::random_regular(1000, 8, 42).unwrap())
    );
    assert_ne!(
        pairs(&t),
        pairs(&Topology::random_regular(1000, 8, 43).unwrap())
    );
}

#[test]
fn erdos_renyi_and_barabasi_albert() {
    let er = Topology::erdos_renyi(200, 0.05, 1).unwrap();
    let expected = 0.05 * (200.0 * 199.0 / 2.0);
    assert!(
        (er.link_count() as f64 - expected).abs() < expected * 0.2,
        "{}",
        er.link_count()
    );
    let ba = Topology::barabasi_albert(300, 2, 1).unwrap();
    // m + 1 initial full mesh, then m links per new node.
    assert_eq!(ba.link_count(), 3 + 2 * (300 - 3));
    let d = degrees(&ba);
    assert!(d.iter().all(|&x| x >= 2));
    assert!(
        *d.iter().max().unwrap() > 20,
        "preferential attachment makes hubs"
    );
}

#[test]
fn geographic_wires_nearest_within_threshold() {
    let p = GeoParams::default();
    let t = Topology::geographic(60, p, 3).unwrap();
    assert!(degrees(&t).iter().all(|&d| d <= p.k + 1));
    for l in t.links() {
        let (a, b) = (
            t.node_spec(l.a).unwrap().position.unwrap(),
            t.node_spec(l.b).unwrap().position.unwrap(),
        );
        let dist = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
        let want = p.latency_per_unit.mul_f64(dist);
        assert!(l.a_to_b.latency.abs_diff(want) < std::time::Duration::from_micros(1));
        assert!(l.a_to_b.latency < p.max_latency);
    }
    // Each node's links go to nearer nodes than most: its nearest neighbour is linked unless
    // that neighbour was already full.
    let linked: HashSet<_> = t.links().map(|l| (l.a, l.b)).collect();
    assert!(
        linked.len() >= 60,
        "about k/2 links per node or more: {}",
        linked.len()
    );
}

const SHADOW_GML: &str = r#"
# A Shadow network graph: two regions.
graph [
  directed 0
  node [
    id 10
    label "europe"
    host_bandwidth_down "100 Mbit"
    host_bandwidth_up "50 Mbit"
  ]
  node [
    id 20
    label "na_east"
    host_bandwidth_down "1 Gbit"
    host_bandwidth_up "1 Gbit"
  ]
  node [ id 30 host_bandwidth_up "81920 Kibit" host_bandwidth_down "81920 Kibit" ]
  edge [ source 10 target 10 latency "2 ms" packet_loss 0.0 ]
  edge [ source 10 target 20 latency "70 ms" packet_loss 0.01 ]
  edge [ source 20 target 30 latency "1.5 s" jitter "3 ms" packet_loss 0.0 ]
]
"#;

#[test]
fn shadow_gml_import() {
    let t = Topology::from_gml(SHADOW_GML).unwrap();
    assert_eq!(t.node_count(), 3);
    assert_eq!(t.link_count(), 2, "the self-loop is skipped");
    assert_eq!(t.node_spec(node(0)).unwrap().name, "europe");
    let l = t.get_link(node(0), node(1)).unwrap();
    assert_eq!(l.a_to_b.latency, ms(70));
    assert_eq!(l.a_to_b.loss, 0.01);
    // europe up 50 Mbit -> na_east down 1 Gbit; back: na_east up 1 Gbit -> europe down 100 Mbit.
    assert_eq!(l.a_to_b.bandwidth, Some(50_000_000));
    assert_eq!(l.b_to_a.bandwidth, Some(100_000_000));
    let l = t.get_link(node(1), node(2)).unwrap();
    assert_eq!((l.a_to_b.latency, l.a_to_b.jitter), (ms(1500), ms(3)));
    assert_eq!(l.a_to_b.bandwidth, Some(81920 * 1024));
}

#[test]
fn directed_gml_gives_each_direction_its_shape() {
    let t = Topology::from_gml(
        "graph [ directed 1 node [ id 0 ] node [ id 1 ]
           edge [ source 0 target 1 latency \"10 ms\" ] edge [ source 1 target 0 latency \"30 ms\" ] ]",
    )
    .unwrap();
    let l = t.get_link(node(0), node(1)).unwrap();
    assert_eq!((l.a_to_b.latency, l.b_to_a.latency), (ms(10), ms(30)));
}

#[test]
fn graphml_import() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="d0" for="edge" attr.name="latency" attr.type="double"/>
  <key id="d1" for="edge" attr.name="bandwidth" attr.type="string"/>
  <key id="d2" for="node" attr.name="x" attr.type="double"/>
  <key id="d3" for="node" attr.name="y" attr.type="double"/>
  <graph id="G" edgedefault="undirected">
    <node id="a"><data key="d2">1</data><data key="d3">2</data></node>
    <node id="b"/>
    <node id="c"/>
    <edge source="a" target="b"><data key="d0">25</data><data key="d1">10 Mbit</data></edge>
    <edge source="b" target="c"><data key="d0">5</data></edge>
  </graph>
</graphml>"#;
    let t = Topology::from_graphml(xml).unwrap();
    assert_eq!((t.node_count(), t.link_count()), (3, 2));
    assert_eq!(t.node_spec(node(0)).unwrap().position, Some((1.0, 2.0)));
    let l = t.get_link(node(0), node(1)).unwrap();
    assert_eq!(
        (l.a_to_b.latency, l.a_to_b.bandwidth),
        (ms(25), Some(10_000_000))
    );
    assert_eq!(t.get_link(node(1), node(2)).unwrap().b_to_a.latency, ms(5));
}

#[test]
fn paths_combine_hops_per_direction() {
    let mut t = Topology::with_nodes(4);
    t.link_directed(
        node(0),
        node(1),
        LinkShape::latency(ms(10)).with_loss(0.1),
        LinkShape::latency(ms(1)),
    )
    .unwrap();
    t.link(
        node(1),
        node(2),
        LinkShape::latency(ms(20))
            .with_bandwidth(1_000_000)
            .with_loss(0.1),
    )
    .unwrap();
    t.link(node(0), node(3), LinkShape::latency(ms(100)))
        .unwrap();
    t.link(node(3), node(2), LinkShape::latency(ms(100)))
        .unwrap();
    let there = t.path_shape(node(0), node(2)).unwrap();
    assert_eq!(there.latency, ms(30), "through n1, not n3");
    assert_eq!(there.bandwidth, Some(1_000_000));
    assert!((there.loss - 0.19).abs() < 1e-9);
    assert_eq!(t.path_shape(node(2), node(0)).unwrap().latency, ms(21));
    let mut isolated = Topology::with_nodes(2).allow_disconnected();
    assert_eq!(isolated.path_shape(node(0), node(1)), None);
    isolated.add_node();
    assert_eq!(isolated.path_shape(node(0), node(9)), None);
}

#[test]
fn random_peer_overlay() {
    let t = Topology::line(20)
        .unwrap()
        .with_overlay(Overlay::RandomPeers { k: 3, seed: 1 });
    let pairs = t.overlay_pairs().unwrap();
    let mut degree = [0; 20];
    for (a, b) in &pairs {
        assert_ne!(a, b);
        degree[a.index()] += 1;
        degree[b.index()] += 1;
    }
    assert!(degree.iter().all(|&d| d >= 3));
    assert_eq!(pairs, t.overlay_pairs().unwrap(), "seeded");
    let bad = Topology::line(3)
        .unwrap()
        .with_overlay(Overlay::RandomPeers { k: 3, seed: 1 });
    assert!(bad.overlay_pairs().is_err());
}
