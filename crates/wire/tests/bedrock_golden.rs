//! A realistic Bedrock response stream (thinking, text, a tool call, invocation metrics, the
//! `p` padding member Bedrock adds to chunk payloads) decodes to the Anthropic SSE a client of
//! the Anthropic API would have received, with the usage Bedrock billed.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use tollgate_wire::Usage;
use tollgate_wire::bedrock::{
    BedrockEvent, BedrockStreamWatch, EventStreamDecoder, SseToEventStream, chunk_to_sse,
    encode_chunk_frame, exception_to_sse, strip_invocation_metrics,
};
use tollgate_wire::sse::SseScanner;

const EVENTS: &[&str] = &[
    r#"{"type":"message_start","message":{"id":"msg_bdrk_01Kx4TzV3n8Q","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":2238,"cache_read_input_tokens":14486,"cache_creation":{"ephemeral_5m_input_tokens":2238,"ephemeral_1h_input_tokens":0},"output_tokens":4}}}"#,
    r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants a file written."}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYIBxgCKkBqTx3Yl0w=="}}"#,
    r#"{"type":"content_block_stop","index":0}"#,
    r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
    r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"I'll create the file \u2014 \"wire-test\"."}}"#,
    r#"{"type":"content_block_stop","index":1}"#,
    r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_bdrk_01XyZ","name":"Bash","input":{}}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"echo wire-test > f\""}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":", \"description\": \"write\"}"}}"#,
    r#"{"type":"content_block_stop","index":2}"#,
    r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":85}}"#,
    r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":87,"invocationLatency":2312,"firstByteLatency":611,"cacheReadInputTokenCount":14486,"cacheWriteInputTokenCount":2238}}"#,
];

const GOLDEN_SSE: &str = concat!(
    "event: message_start\n",
    r#"data: {"type":"message_start","message":{"id":"msg_bdrk_01Kx4TzV3n8Q","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":2238,"cache_read_input_tokens":14486,"cache_creation":{"ephemeral_5m_input_tokens":2238,"ephemeral_1h_input_tokens":0},"output_tokens":4}}}"#,
    "\n\n",
    "event: content_block_start\n",
    r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
    "\n\n",
    "event: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants a file written."}}"#,
    "\n\n",
    "event: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYIBxgCKkBqTx3Yl0w=="}}"#,
    "\n\n",
    "event: content_block_stop\n",
    r#"data: {"type":"content_block_stop","index":0}"#,
    "\n\n",
    "event: content_block_start\n",
    r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
    "\n\n",
    "event: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"I'll create the file \u2014 \"wire-test\"."}}"#,
    "\n\n",
    "event: content_block_stop\n",
    r#"data: {"type":"content_block_stop","index":1}"#,
    "\n\n",
    "event: content_block_start\n",
    r#"data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_bdrk_01XyZ","name":"Bash","input":{}}}"#,
    "\n\n",
    "event: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
    "\n\n",
    "event: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"echo wire-test > f\""}}"#,
    "\n\n",
    "event: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":", \"description\": \"write\"}"}}"#,
    "\n\n",
    "event: content_block_stop\n",
    r#"data: {"type":"content_block_stop","index":2}"#,
    "\n\n",
    "event: message_delta\n",
    r#"data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":85}}"#,
    "\n\n",
    "event: message_stop\n",
    r#"data: {"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":87,"invocationLatency":2312,"firstByteLatency":611,"cacheReadInputTokenCount":14486,"cacheWriteInputTokenCount":2238}}"#,
    "\n\n",
);

/// The Bedrock wire bytes: each chunk with a `p` member of varying length, as Bedrock pads
/// payloads against length side channels.
fn bedrock_stream() -> Vec<u8> {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let pad = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = Vec::new();
    for (i, json) in EVENTS.iter().enumerate() {
        let payload = format!(
            r#"{{"bytes":"{}","p":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode(json),
            &pad[..(i * 7) % pad.len()]
        );
        let m = Message::new_from_parts(
            vec![
                Header::new(":event-type", HeaderValue::String("chunk".into())),
                Header::new(
                    ":content-type",
                    HeaderValue::String("application/json".into()),
                ),
                Header::new(":message-type", HeaderValue::String("event".into())),
            ],
            payload.into_bytes(),
        );
        write_message_to(&m, &mut out).unwrap();
    }
    out
}

fn transcode(wire: &[u8], piece: usize) -> (String, BedrockStreamWatch) {
    let mut d = EventStreamDecoder::new();
    let mut watch = BedrockStreamWatch::new();
    let mut sse = Vec::new();
    for part in wire.chunks(piece) {
        for ev in d.feed(part).unwrap() {
            watch.observe(&ev);
            match &ev {
                BedrockEvent::Chunk(json) => sse.extend_from_slice(&chunk_to_sse(json)),
                BedrockEvent::Exception { kind, message } => {
                    sse.extend_from_slice(&exception_to_sse(kind, message))
                }
                BedrockEvent::Other { .. } => {}
            }
        }
    }
    d.finish().unwrap();
    (String::from_utf8(sse).unwrap(), watch)
}

#[test]
fn golden_stream_decodes_to_anthropic_sse_and_billed_usage() {
    let wire = bedrock_stream();
    for piece in [1, 3, 17, 64, 1000, wire.len()] {
        let (sse, watch) = transcode(&wire, piece);
        assert_eq!(sse, GOLDEN_SSE, "piece size {piece}");
        let facts = watch.facts();
        assert!(facts.complete);
        assert_eq!(facts.message_id.as_deref(), Some("msg_bdrk_01Kx4TzV3n8Q"));
        assert_eq!(facts.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(facts.stop_reason.as_deref(), Some("tool_use"));
        // The stream said 85 output tokens, the invocation metrics 87: the metrics win.
        assert_eq!(
            facts.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 87,
                cache_creation_input_tokens: 2238,
                cache_read_input_tokens: 14486,
                cache_creation_5m_input_tokens: 2238,
                cache_creation_1h_input_tokens: 0,
            }
        );
        let m = watch.metrics().unwrap();
        assert_eq!((m.invocation_latency, m.first_byte_latency), (2312, 611));
    }
}

#[test]
fn golden_sse_is_valid_sse_for_the_scanner() {
    let mut s = SseScanner::new();
    let mut names = Vec::new();
    s.feed(GOLDEN_SSE.as_bytes(), |e| names.push(e.name.to_owned()));
    assert_eq!(names.len(), EVENTS.len());
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
}

#[test]
fn metrics_can_be_stripped_for_strict_clients() {
    let last = EVENTS[EVENTS.len() - 1].as_bytes();
    let stripped = strip_invocation_metrics(last).unwrap();
    assert_eq!(
        &chunk_to_sse(&stripped)[..],
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
}

#[test]
fn golden_sse_reframed_for_a_bedrock_client_gives_back_the_events() {
    let mut conv = SseToEventStream::new();
    let mut wire = Vec::new();
    for piece in GOLDEN_SSE.as_bytes().chunks(11) {
        wire.extend_from_slice(&conv.feed(piece));
    }
    let expected: Vec<u8> = EVENTS
        .iter()
        .flat_map(|j| encode_chunk_frame(j.as_bytes()).to_vec())
        .collect();
    assert_eq!(wire, expected);
    assert_eq!(conv.facts().usage.output_tokens, 85);
    let (sse, _) = transcode(&wire, 5);
    assert_eq!(sse, GOLDEN_SSE);
}
