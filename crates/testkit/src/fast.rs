//! Fast mode: fixed answers built once, for benchmarks where the upstream must not be the bottleneck.

use std::collections::VecDeque;
use std::io;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Response, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use crate::body::ResponseBody;
use crate::message::{Block, Reply, Usage};
use crate::sse;

const TEXT: &str = "Hello from the scripted upstream in fast mode. This reply is fixed and \
                    pre-built so that benchmarks measure the gateway rather than the upstream; \
                    it is long enough to look like a short real answer from the model, with \
                    a few sentences of plain text and no tool calls.";

/// The pre-built answers, shared by every connection.
pub(crate) struct Canned {
    /// Streamed as two chunks: the opening events, then the rest.
    sse: [Bytes; 2],
    json: Bytes,
}

impl Canned {
    pub(crate) fn new() -> Self {
        let reply = Reply {
            id: "msg_mock_fast".to_owned(),
            model: "claude-mock-fast".to_owned(),
            blocks: vec![Block::Text(TEXT.to_owned())],
            stop_reason: "end_turn",
            usage: Usage {
                input: 120,
                output: 30,
                cache_write: 0,
                cache_read: 0,
            },
            extra_field: false,
        };
        let mut head = BytesMut::new();
        head.extend_from_slice(&sse::message_start(&reply));
        head.extend_from_slice(&sse::ping());
        let mut tail = BytesMut::new();
        tail.extend_from_slice(&sse::text_start(0));
        for piece in sse::pieces(TEXT, 4) {
            tail.extend_from_slice(&sse::text_delta(0, piece));
        }
        tail.extend_from_slice(&sse::block_stop(0));
        for event in sse::message_end(&reply) {
            tail.extend_from_slice(&event);
        }
        Canned {
            sse: [head.freeze(), tail.freeze()],
            json: Bytes::from(reply.message_json()),
        }
    }

    #[cfg(test)]
    pub(crate) fn parts(&self) -> (&[Bytes; 2], &Bytes) {
        (&self.sse, &self.json)
    }
}

/// Whether the body asks for streaming. `"stream"` usually comes last, so the tail is tried first.
fn wants_stream(body: &[u8]) -> bool {
    const NEEDLES: [&str; 2] = [r#""stream":true"#, r#""stream": true"#];
    let tail_start = body.len().saturating_sub(64);
    let in_tail = |needle: &str| {
        body[tail_start..]
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    if NEEDLES.iter().any(|n| in_tail(n)) {
        return true;
    }
    // `str::contains` uses a vectorised search; a non-UTF-8 body is no JSON request anyway.
    std::str::from_utf8(body).is_ok_and(|s| NEEDLES.iter().any(|n| s.contains(n)))
}

pub(crate) async fn respond(
    canned: &Canned,
    req: http::Request<Incoming>,
) -> Result<Response<ResponseBody>, io::Error> {
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    let (content_type, body) = if wants_stream(&body) {
        (
            "text/event-stream",
            ResponseBody::Frames(VecDeque::from(canned.sse.clone())),
        )
    } else {
        ("application/json", ResponseBody::full(canned.json.clone()))
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("request-id", HeaderValue::from_static("req_mock_fast"));
    headers.insert(
        "anthropic-ratelimit-requests-remaining",
        HeaderValue::from_static("999"),
    );
    headers.insert(
        "anthropic-ratelimit-tokens-remaining",
        HeaderValue::from_static("999999"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_flag_is_detected_anywhere() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(
            format!(r#"{{"stream": true,"x":"{}"}}"#, "y".repeat(500)).as_bytes()
        ));
        assert!(!wants_stream(br#"{"model":"m","stream":false}"#));
        assert!(!wants_stream(b""));
    }

    #[test]
    fn canned_sizes_are_realistic() {
        let canned = Canned::new();
        let (sse, json) = canned.parts();
        assert!((500..=700).contains(&json.len()), "{}", json.len());
        let events = sse
            .iter()
            .map(|b| String::from_utf8_lossy(b).matches("event: ").count())
            .sum::<usize>();
        assert_eq!(events, 10);
    }
}
