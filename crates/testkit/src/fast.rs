//! Fast mode: fixed answers built once, for benchmarks where the upstream must not be the bottleneck.
//!
//! The answer is chosen by path alone, so one upstream can stand in for every dialect a gateway
//! converts to: `POST /model/{id}/invoke` and `…/invoke-with-response-stream` answer as Bedrock,
//! `POST /v1/chat/completions` as an OpenAI-compatible server, anything else as the Anthropic
//! Messages API. All of them carry the same text and token counts.

use std::collections::VecDeque;
use std::io;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Response, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tollgate_wire::bedrock::encode_chunk_frame;

use crate::body::ResponseBody;
use crate::message::{Block, Reply, Usage, js};
use crate::sse;

const TEXT: &str = "Hello from the scripted upstream in fast mode. This reply is fixed and \
                    pre-built so that benchmarks measure the gateway rather than the upstream; \
                    it is long enough to look like a short real answer from the model, with \
                    a few sentences of plain text and no tool calls.";

const INPUT_TOKENS: u64 = 120;
const OUTPUT_TOKENS: u64 = 30;

/// Member order and values as Bedrock sends them on the final chunk.
const INVOCATION_METRICS: &str = concat!(
    r#""amazon-bedrock-invocationMetrics":{"inputTokenCount":120,"outputTokenCount":30,"#,
    r#""invocationLatency":250,"firstByteLatency":120,"cacheReadInputTokenCount":0,"#,
    r#""cacheWriteInputTokenCount":0}"#
);

/// Members every Chat Completions chunk repeats before `choices`.
const CHUNK_HEAD: &str = concat!(
    r#"{"id":"chatcmpl-mock-fast","object":"chat.completion.chunk","created":1700000000,"#,
    r#""model":"gpt-mock-fast","service_tier":"default","system_fingerprint":"fp_mock_fast","#
);

/// The pre-built answers, shared by every connection. Streams are sent as two chunks, the
/// opening events and then the rest, so a client sees a stream rather than one write.
pub(crate) struct Canned {
    sse: [Bytes; 2],
    json: Bytes,
    event_stream: [Bytes; 2],
    chat_sse: [Bytes; 2],
    chat_json: Bytes,
}

impl Canned {
    pub(crate) fn new() -> Self {
        let reply = Reply {
            id: "msg_mock_fast".to_owned(),
            model: "claude-mock-fast".to_owned(),
            blocks: vec![Block::Text(TEXT.to_owned())],
            stop_reason: "end_turn",
            usage: Usage {
                input: INPUT_TOKENS,
                output: OUTPUT_TOKENS,
                cache_write: 0,
                cache_read: 0,
            },
            extra_field: false,
        };
        let head = vec![sse::message_start(&reply), sse::ping()];
        let mut tail = vec![sse::text_start(0)];
        tail.extend(
            sse::pieces(TEXT, 4)
                .into_iter()
                .map(|p| sse::text_delta(0, p)),
        );
        tail.push(sse::block_stop(0));
        tail.extend(sse::message_end(&reply));
        Canned {
            sse: [concat(&head), concat(&tail)],
            json: Bytes::from(reply.message_json()),
            event_stream: [chunk_frames(&head, false), chunk_frames(&tail, true)],
            chat_sse: chat_stream(),
            chat_json: Bytes::from(chat_completion()),
        }
    }

    #[cfg(test)]
    pub(crate) fn parts(&self) -> (&[Bytes; 2], &Bytes) {
        (&self.sse, &self.json)
    }
}

fn concat(parts: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    for part in parts {
        out.extend_from_slice(part);
    }
    out.freeze()
}

/// The JSON of one `event: NAME\ndata: JSON\n\n` event as `sse::event` frames it.
fn event_data(event: &[u8]) -> &[u8] {
    const DATA: &[u8] = b"\ndata: ";
    let start = event
        .windows(DATA.len())
        .position(|w| w == DATA)
        .map_or(0, |i| i + DATA.len());
    event[start..].trim_ascii_end()
}

/// The events as Bedrock `chunk` frames; with `last`, the final one carries the invocation
/// metrics as Bedrock's does.
fn chunk_frames(events: &[Bytes], last: bool) -> Bytes {
    let mut out = BytesMut::new();
    for (i, event) in events.iter().enumerate() {
        let json = event_data(event);
        if last && i + 1 == events.len() {
            let mut with_metrics = json[..json.len() - 1].to_vec();
            with_metrics.push(b',');
            with_metrics.extend_from_slice(INVOCATION_METRICS.as_bytes());
            with_metrics.push(b'}');
            out.extend_from_slice(&encode_chunk_frame(&with_metrics));
        } else {
            out.extend_from_slice(&encode_chunk_frame(json));
        }
    }
    out.freeze()
}

fn chat_usage() -> String {
    format!(
        concat!(
            r#"{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"#,
            r#""prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"#,
            r#""completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"#,
            r#""accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#
        ),
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        INPUT_TOKENS + OUTPUT_TOKENS
    )
}

fn chat_completion() -> String {
    format!(
        concat!(
            r#"{{"id":"chatcmpl-mock-fast","object":"chat.completion","created":1700000000,"#,
            r#""model":"gpt-mock-fast","choices":[{{"index":0,"message":{{"role":"assistant","#,
            r#""content":{},"refusal":null,"annotations":[]}},"logprobs":null,"#,
            r#""finish_reason":"stop"}}],"usage":{},"service_tier":"default","#,
            r#""system_fingerprint":"fp_mock_fast"}}"#
        ),
        js(TEXT),
        chat_usage()
    )
}

/// A Chat Completions stream as OpenAI sends it with `stream_options.include_usage`: a role
/// chunk, content deltas, the finish reason, a usage chunk with no choices, then `[DONE]`.
fn chat_stream() -> [Bytes; 2] {
    let chunk = |choices: &str, usage: &str| {
        format!("data: {CHUNK_HEAD}\"choices\":[{choices}],\"usage\":{usage}}}\n\n")
    };
    let choice = |delta: &str, finish: &str| {
        format!(r#"{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}"#)
    };
    let head = chunk(
        &choice(
            r#"{"role":"assistant","content":"","refusal":null}"#,
            "null",
        ),
        "null",
    );
    let mut tail = String::new();
    for piece in sse::pieces(TEXT, 4) {
        let delta = format!(r#"{{"content":{}}}"#, js(piece));
        tail.push_str(&chunk(&choice(&delta, "null"), "null"));
    }
    tail.push_str(&chunk(&choice("{}", r#""stop""#), "null"));
    tail.push_str(&chunk("", &chat_usage()));
    tail.push_str("data: [DONE]\n\n");
    [Bytes::from(head), Bytes::from(tail)]
}

/// Which API a request is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Anthropic,
    BedrockInvoke,
    BedrockStream,
    Chat,
}

fn dialect(method: &Method, path: &str) -> Dialect {
    if method != Method::POST {
        return Dialect::Anthropic;
    }
    if path.starts_with("/model/") {
        if path.ends_with("/invoke-with-response-stream") {
            return Dialect::BedrockStream;
        }
        if path.ends_with("/invoke") {
            return Dialect::BedrockInvoke;
        }
    }
    if path == "/v1/chat/completions" {
        return Dialect::Chat;
    }
    Dialect::Anthropic
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

fn frames(parts: &[Bytes; 2]) -> ResponseBody {
    ResponseBody::Frames(VecDeque::from(parts.clone()))
}

pub(crate) async fn respond(
    canned: &Canned,
    req: http::Request<Incoming>,
) -> Result<Response<ResponseBody>, io::Error> {
    let dialect = dialect(req.method(), req.uri().path());
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    let (content_type, body) = match dialect {
        Dialect::Anthropic if wants_stream(&body) => ("text/event-stream", frames(&canned.sse)),
        Dialect::Anthropic | Dialect::BedrockInvoke => {
            ("application/json", ResponseBody::full(canned.json.clone()))
        }
        Dialect::BedrockStream => (
            "application/vnd.amazon.eventstream",
            frames(&canned.event_stream),
        ),
        Dialect::Chat if wants_stream(&body) => ("text/event-stream", frames(&canned.chat_sse)),
        Dialect::Chat => (
            "application/json",
            ResponseBody::full(canned.chat_json.clone()),
        ),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    dialect_headers(dialect, headers);
    Ok(response)
}

/// The request id and accounting headers each real API adds.
fn dialect_headers(dialect: Dialect, headers: &mut HeaderMap) {
    let fixed: &[(&str, &str)] = match dialect {
        Dialect::Anthropic => &[
            ("request-id", "req_mock_fast"),
            ("anthropic-ratelimit-requests-remaining", "999"),
            ("anthropic-ratelimit-tokens-remaining", "999999"),
        ],
        Dialect::BedrockInvoke => &[
            ("x-amzn-requestid", "00000000-0000-4000-8000-00000000fa57"),
            ("x-amzn-bedrock-invocation-latency", "250"),
            ("x-amzn-bedrock-input-token-count", "120"),
            ("x-amzn-bedrock-output-token-count", "30"),
        ],
        Dialect::BedrockStream => &[("x-amzn-requestid", "00000000-0000-4000-8000-00000000fa57")],
        Dialect::Chat => &[
            ("x-request-id", "req_mock_fast"),
            ("x-ratelimit-remaining-requests", "999"),
            ("x-ratelimit-remaining-tokens", "999999"),
        ],
    };
    for (name, value) in fixed {
        headers.insert(*name, HeaderValue::from_static(value));
    }
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

    #[test]
    fn paths_pick_the_dialect() {
        let post = Method::POST;
        let id = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0";
        assert_eq!(
            dialect(&post, &format!("/model/{id}/invoke")),
            Dialect::BedrockInvoke
        );
        assert_eq!(
            dialect(&post, &format!("/model/{id}/invoke-with-response-stream")),
            Dialect::BedrockStream
        );
        assert_eq!(dialect(&post, "/v1/chat/completions"), Dialect::Chat);
        assert_eq!(dialect(&post, "/v1/messages"), Dialect::Anthropic);
        assert_eq!(
            dialect(&Method::GET, "/v1/chat/completions"),
            Dialect::Anthropic
        );
    }

    #[test]
    fn event_data_is_the_json() {
        assert_eq!(
            event_data(&sse::event("ping", r#"{"type":"ping"}"#)),
            br#"{"type":"ping"}"#
        );
    }
}
