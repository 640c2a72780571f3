//! tracestat's figures: the [`Tally`] of a trace in the shape `tracestat -json` prints.

use crate::trace::{EventCounts, MsgId, Tally, Trace};

/// The figures in `tracestat -json`'s shape:
/// `{"Events":{"PerPeer":{<peer id>:{..}},"Totals":{..}},"Delays":{"PerMessage":{<hex message id>:[ms,..]},"CDF":[{"Millis","Count"}]}}`,
/// with tracestat's counters (`Publish`, `Deliver`, `Duplicate`, `Reject`, `SendRPC`,
/// `DropRPC`; meshsim records no rejects or RPCs, so those are 0), peers by the peer ids
/// and messages by the message ids the go-libp2p-pubsub export gives them.
pub fn to_json(tally: &Tally, trace: &Trace) -> serde_json::Value {
    let counts = |c: &EventCounts| {
        serde_json::json!({
            "Publish": c.publish,
            "Deliver": c.deliver,
            "Duplicate": c.duplicate,
            "Reject": 0,
            "SendRPC": 0,
            "DropRPC": 0,
        })
    };
    let peers = super::PeerIds::new(trace);
    let hex = |m: MsgId| {
        super::pubsub::message_id(m)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    serde_json::json!({
        "Events": {
            "PerPeer": tally.per_node.iter().map(|(n, c)| (peers.get(*n).to_base58(), counts(c))).collect::<serde_json::Map<_, _>>(),
            "Totals": counts(&tally.totals),
        },
        "Delays": {
            "PerMessage": tally.delays.iter().map(|(m, d)| (hex(*m), serde_json::json!(d))).collect::<serde_json::Map<_, _>>(),
            "CDF": tally.cdf.iter().map(|p| serde_json::json!({"Millis": p.millis, "Count": p.count})).collect::<Vec<_>>(),
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::topology::NodeId;

    #[test]
    fn figures_follow_the_tally_with_export_ids() {
        let t = crate::trace::tally::tests::sample();
        let json = super::to_json(&t.tally(), &t);
        assert_eq!(json["Events"]["Totals"]["Deliver"], 2);
        assert_eq!(json["Events"]["Totals"]["SendRPC"], 0);
        assert_eq!(json["Delays"]["PerMessage"]["0000000000000000"][1], 21);
        let peer = super::super::peer_id(&t, NodeId(1)).to_base58();
        assert_eq!(json["Events"]["PerPeer"][&peer]["Duplicate"], 1);
        assert_eq!(json["Delays"]["CDF"][1]["Count"], 2);
    }
}
