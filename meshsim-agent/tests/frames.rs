//! The real agent process survives bad input on its control channel: malformed and oversized
//! frames get an error reply (request id 0) and the agent goes on answering. Only requests
//! that touch nothing outside the process are sent (no `configure`, which shapes links).

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use meshsim::__agent::{FrameDecoder, MAX_FRAME, encode, proto};
use proto::{agent_message, reply, request};

fn health(id: u64) -> Vec<u8> {
    encode(&proto::Request {
        id,
        body: Some(request::Body::Health(proto::Health {})),
    })
}

#[test]
fn bad_frames_get_errors_and_the_agent_keeps_answering() {
    let mut agent = Command::new(env!("CARGO_BIN_EXE_meshsim-agent"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    let mut input = agent.stdin.take().expect("stdin");
    let mut output = agent.stdout.take().expect("stdout");

    let mut bytes = Vec::new();
    bytes.extend([3, 0xff, 0xff, 0xff]); // a 3-byte frame that is not a Request
    bytes.extend(health(1));
    let mut huge = Vec::new();
    prost::encoding::encode_varint(MAX_FRAME as u64 + 1, &mut huge);
    bytes.extend(&huge);
    bytes.extend(vec![0u8; MAX_FRAME + 1]); // skipped, not buffered
    bytes.extend(encode(&proto::Request {
        id: 2,
        body: Some(request::Body::Connect(proto::Connect { peer: 1 })),
    }));
    bytes.extend(health(3));
    bytes.extend([0xff; 10]); // a length prefix that never ends
    input.write_all(&bytes).expect("write");
    input.flush().expect("flush");

    let mut frames = FrameDecoder::new();
    let mut replies = Vec::new();
    let mut read_replies = |replies: &mut Vec<proto::Reply>, until: usize| {
        let mut buf = [0u8; 4096];
        while replies.len() < until {
            let n = output.read(&mut buf).expect("read");
            assert!(n > 0, "the agent exited; replies so far: {replies:?}");
            frames.push(&buf[..n]);
            while let Some(m) = frames.decode_next::<proto::AgentMessage>() {
                if let Some(agent_message::Body::Reply(r)) =
                    m.expect("the agent's own frames decode").body
                {
                    replies.push(r);
                }
            }
        }
    };
    // Three errors and three answers, the bad prefix's error among them...
    read_replies(&mut replies, 6);
    // ...after which a clean frame on its own still works.
    input.write_all(&health(4)).expect("write");
    input.flush().expect("flush");
    read_replies(&mut replies, 7);
    drop(input);
    let _ = agent.wait();

    let errors: Vec<&proto::Reply> = replies.iter().filter(|r| r.id == 0).collect();
    assert_eq!(
        errors.len(),
        3,
        "undecodable, oversized, bad prefix: {replies:?}"
    );
    assert!(
        errors
            .iter()
            .all(|r| matches!(r.body, Some(reply::Body::Error(_))))
    );
    let answered = |id| {
        replies
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.body.clone())
    };
    for id in [1, 3, 4] {
        assert!(
            matches!(answered(id), Some(reply::Body::Health(h)) if h.rss_bytes > 0),
            "health {id}: {replies:?}"
        );
    }
    assert!(
        matches!(answered(2), Some(reply::Body::Error(e)) if e.message.contains("configure")),
        "connect before configure: {replies:?}"
    );
}
