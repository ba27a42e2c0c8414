//! Between Bedrock event streams and Anthropic SSE: chunks to SSE events, invocation metrics to
//! usage, and Anthropic SSE back into event-stream frames for Bedrock clients.
//!
//! # Format
//! Each `chunk` carries one Anthropic stream event JSON whose `type` is the SSE event name. The
//! final chunk (`message_stop`) also carries Bedrock's own accounting:
//! `"amazon-bedrock-invocationMetrics": {"inputTokenCount", "outputTokenCount",
//! "invocationLatency", "firstByteLatency", "cacheReadInputTokenCount",
//! "cacheWriteInputTokenCount"}` (latencies in milliseconds). Those counts are Bedrock's billed
//! totals, so they override what `message_start`/`message_delta` reported.

use super::envelope::TopLevel;
use super::errors::{anthropic_error_type, exception_for_anthropic};
use super::eventstream::{BedrockEvent, encode_chunk_frame, encode_exception_frame};
use crate::anthropic::{ResponseFacts, StreamWatch, error_event, read_response};
use crate::sse::{SseEvent, SseScanner};
use crate::usage::Usage;
use bytes::Bytes;
use serde::Deserialize;
use std::borrow::Cow;

/// The member of the final chunk that holds Bedrock's invocation metrics.
pub const INVOCATION_METRICS_KEY: &str = "amazon-bedrock-invocationMetrics";

#[derive(Deserialize)]
struct Typed<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

/// The `type` of an Anthropic stream event JSON, which is also its SSE event name. `None` for
/// anything that is not a JSON object with a string `type` usable as an SSE field.
pub fn chunk_event_name(json: &[u8]) -> Option<Cow<'_, str>> {
    let typed: Typed<'_> = serde_json::from_slice(json).ok()?;
    typed
        .kind
        .filter(|k| !k.is_empty() && !k.contains(['\r', '\n']))
}

/// The SSE event for one chunk: `event: <type>\ndata: <json>\n\n`.
///
/// The JSON is kept byte for byte except for raw line breaks, which in valid JSON can only be
/// insignificant whitespace and would otherwise end the `data:` line. A chunk without a usable
/// `type` has no SSE name to travel under and yields nothing, as in Anthropic's own Bedrock SDK.
pub fn chunk_to_sse(json: &[u8]) -> Bytes {
    let Some(name) = chunk_event_name(json) else {
        return Bytes::new();
    };
    let mut out = Vec::with_capacity(json.len() + name.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend(json.iter().copied().filter(|&b| b != b'\n' && b != b'\r'));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// An upstream exception as an Anthropic `event: error`, typed by the mapping in
/// [`anthropic_error_type`], so Anthropic clients retry what is retryable.
pub fn exception_to_sse(kind: &str, message: &str) -> Bytes {
    error_event(anthropic_error_type(kind), message)
}

/// Bedrock's accounting for one invocation, from the final chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InvocationMetrics {
    pub input_token_count: u64,
    pub output_token_count: u64,
    /// Milliseconds from request to last byte.
    pub invocation_latency: u64,
    /// Milliseconds from request to first byte.
    pub first_byte_latency: u64,
    pub cache_read_input_token_count: u64,
    pub cache_write_input_token_count: u64,
}

impl InvocationMetrics {
    /// Overrides the token totals of `usage` with these authoritative ones. The 5-minute/1-hour
    /// split of cache writes is not in the metrics: the streamed split is kept only when it still
    /// adds up to the metric's total, otherwise dropped so every write is priced at the default
    /// TTL rate rather than split wrongly.
    pub fn apply_to(&self, usage: &mut Usage) {
        usage.input_tokens = self.input_token_count;
        usage.output_tokens = self.output_token_count;
        usage.cache_read_input_tokens = self.cache_read_input_token_count;
        usage.cache_creation_input_tokens = self.cache_write_input_token_count;
        let split = usage.cache_creation_5m_input_tokens + usage.cache_creation_1h_input_tokens;
        if split != self.cache_write_input_token_count {
            usage.cache_creation_5m_input_tokens = 0;
            usage.cache_creation_1h_input_tokens = 0;
        }
    }

    /// These totals as a [`Usage`] of their own.
    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        self.apply_to(&mut u);
        u
    }
}

#[derive(Deserialize)]
struct WithMetrics {
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
}

/// Reads `amazon-bedrock-invocationMetrics` from a chunk JSON, if it has them.
pub fn read_invocation_metrics(json: &[u8]) -> Option<InvocationMetrics> {
    // Cheap pre-check: only the final chunk of a stream carries them.
    memchr::memmem::find(json, INVOCATION_METRICS_KEY.as_bytes())?;
    serde_json::from_slice::<WithMetrics>(json).ok()?.metrics
}

/// The chunk JSON without `amazon-bedrock-invocationMetrics` (every other member byte for byte),
/// or `None` when it has none or is not a JSON object. For clients that must see exactly what
/// the Anthropic API would send.
pub fn strip_invocation_metrics(json: &[u8]) -> Option<Bytes> {
    memchr::memmem::find(json, INVOCATION_METRICS_KEY.as_bytes())?;
    let mut top = TopLevel::parse(json).ok()?;
    top.remove(INVOCATION_METRICS_KEY)?;
    Some(top.to_bytes())
}

/// Watches a decoded Bedrock stream and accumulates [`ResponseFacts`], preferring the invocation
/// metrics for usage when the stream ends with them.
#[derive(Debug, Default)]
pub struct BedrockStreamWatch {
    watch: StreamWatch,
    metrics: Option<InvocationMetrics>,
}

impl BedrockStreamWatch {
    /// A watch that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one decoded event into account.
    pub fn observe(&mut self, event: &BedrockEvent) {
        match event {
            BedrockEvent::Chunk(json) => {
                let Some(name) = chunk_event_name(json) else {
                    return;
                };
                self.watch.observe(&SseEvent {
                    name: &name,
                    data: Cow::Borrowed(json),
                });
                if name == "message_stop"
                    && let Some(m) = read_invocation_metrics(json)
                {
                    self.metrics = Some(m);
                }
            }
            BedrockEvent::Exception { kind, message } => {
                self.watch.facts.error =
                    Some((anthropic_error_type(kind).to_owned(), message.clone()));
            }
            BedrockEvent::Other { .. } => {}
        }
    }

    /// The invocation metrics, once the final chunk has carried them.
    pub fn metrics(&self) -> Option<&InvocationMetrics> {
        self.metrics.as_ref()
    }

    /// What the stream has told so far; usage from the metrics when present.
    pub fn facts(&self) -> ResponseFacts {
        let mut facts = self.watch.facts.clone();
        if let Some(m) = &self.metrics {
            m.apply_to(&mut facts.usage);
        }
        facts
    }
}

/// How an Anthropic `event: error` reaches a Bedrock client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorFraming {
    /// An `exception` frame named by [`exception_for_anthropic`] (`overloaded_error` →
    /// `serviceUnavailableException`, `rate_limit_error` → `throttlingException`, …): what Bedrock
    /// does, and what boto3 raises as `EventStreamError`.
    #[default]
    Exception,
    /// A `chunk` frame carrying the Anthropic error JSON unchanged. Anthropic's Bedrock SDKs
    /// (Claude Code's included) turn it into an SSE `error` event of the exact Anthropic type, so
    /// their retry rules for `overloaded_error` vs `rate_limit_error` keep working; plain AWS
    /// SDK clients see an ordinary chunk.
    AnthropicChunk,
}

/// Re-frames an Anthropic SSE stream as a Bedrock event stream, incrementally.
///
/// Each SSE event with data becomes one `chunk` frame holding its `data` JSON (unknown events
/// and fields included); an `event: error` becomes an exception frame per [`ErrorFraming`]. SSE
/// comments and empty events have no Bedrock counterpart and are dropped. An event too large to
/// scan ends the stream with an `internalServerException` frame rather than a silent stall.
#[derive(Debug, Default)]
pub struct SseToEventStream {
    scanner: SseScanner,
    framing: ErrorFraming,
    watch: StreamWatch,
    overflow_reported: bool,
}

impl SseToEventStream {
    /// A converter using [`ErrorFraming::Exception`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A converter using `framing` for errors.
    pub fn with_error_framing(framing: ErrorFraming) -> Self {
        Self {
            framing,
            ..Self::default()
        }
    }

    /// Feeds SSE bytes and returns the frames for every event they complete (possibly none).
    pub fn feed(&mut self, sse: &[u8]) -> Bytes {
        let mut out = Vec::new();
        let framing = self.framing;
        let watch = &mut self.watch;
        self.scanner.feed(sse, |ev| {
            watch.observe(&ev);
            if ev.name == "error" && framing == ErrorFraming::Exception {
                let (kind, message) = read_response(&ev.data).error.unwrap_or_else(|| {
                    (
                        "api_error".into(),
                        String::from_utf8_lossy(&ev.data).into_owned(),
                    )
                });
                let stream_name = exception_for_anthropic(&kind).stream_name;
                out.extend_from_slice(&encode_exception_frame(stream_name, &message));
            } else if !ev.data.is_empty() {
                // The scanner caps events at 16 MiB, 21.4 MiB once base64-encoded: under the
                // 24 MiB payload limit of botocore and of our own decoder.
                out.extend_from_slice(&encode_chunk_frame(&ev.data));
            }
        });
        if self.scanner.overflowed() && !self.overflow_reported {
            self.overflow_reported = true;
            out.extend_from_slice(&encode_exception_frame(
                "internalServerException",
                "upstream stream event exceeds the gateway's size limit",
            ));
        }
        Bytes::from(out)
    }

    /// What the converted stream has told so far (usage, stop reason, errors).
    pub fn facts(&self) -> &ResponseFacts {
        &self.watch.facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bedrock::EventStreamDecoder;

    #[test]
    fn chunks_become_named_sse_events() {
        assert_eq!(
            &chunk_to_sse(br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\nb"}}"#)[..],
            &b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\nb\"}}\n\n"[..]
        );
        assert_eq!(
            &chunk_to_sse(b"{\n  \"type\": \"ping\"\r\n}")[..],
            b"event: ping\ndata: {  \"type\": \"ping\"}\n\n"
        );
        for no_name in [
            &b"{}"[..],
            b"",
            b"[1]",
            br#"{"type":3}"#,
            br#"{"type":"a\nb"}"#,
            br#"{"type":""}"#,
        ] {
            assert!(chunk_to_sse(no_name).is_empty(), "{no_name:?}");
        }
    }

    #[test]
    fn exceptions_become_typed_error_events() {
        assert_eq!(
            &exception_to_sse("throttlingException", "slow down")[..],
            &b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n"[..]
        );
    }

    const STOP: &[u8] = br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":7,"outputTokenCount":126,"invocationLatency":4069,"firstByteLatency":1117,"cacheReadInputTokenCount":14486,"cacheWriteInputTokenCount":2238}}"#;

    #[test]
    fn invocation_metrics_are_read_and_stripped() {
        let m = read_invocation_metrics(STOP).unwrap();
        assert_eq!(
            m,
            InvocationMetrics {
                input_token_count: 7,
                output_token_count: 126,
                invocation_latency: 4069,
                first_byte_latency: 1117,
                cache_read_input_token_count: 14486,
                cache_write_input_token_count: 2238,
            }
        );
        assert_eq!(
            &strip_invocation_metrics(STOP).unwrap()[..],
            br#"{"type":"message_stop"}"#
        );
        assert_eq!(read_invocation_metrics(br#"{"type":"message_stop"}"#), None);
        assert_eq!(
            strip_invocation_metrics(br#"{"type":"message_stop"}"#),
            None
        );
        // Older models omit the cache counts.
        let m = read_invocation_metrics(
            br#"{"amazon-bedrock-invocationMetrics":{"inputTokenCount":1,"outputTokenCount":2}}"#,
        )
        .unwrap();
        assert_eq!(
            m.usage(),
            Usage {
                input_tokens: 1,
                output_tokens: 2,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn metrics_override_streamed_usage_but_keep_a_consistent_ttl_split() {
        let mut u = Usage {
            input_tokens: 1,
            output_tokens: 1,
            cache_creation_input_tokens: 2238,
            cache_creation_5m_input_tokens: 2000,
            cache_creation_1h_input_tokens: 238,
            cache_read_input_tokens: 0,
        };
        let m = read_invocation_metrics(STOP).unwrap();
        m.apply_to(&mut u);
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_input_tokens),
            (7, 126, 14486)
        );
        assert_eq!(
            (
                u.cache_creation_5m_input_tokens,
                u.cache_creation_1h_input_tokens
            ),
            (2000, 238)
        );
        u.cache_creation_1h_input_tokens = 1;
        m.apply_to(&mut u);
        assert_eq!(
            (
                u.cache_creation_5m_input_tokens,
                u.cache_creation_1h_input_tokens
            ),
            (0, 0)
        );
        assert_eq!(u.cache_write_5m(), 2238);
    }

    #[test]
    fn sse_is_reframed_and_errors_become_exceptions() {
        let sse = concat!(
            ": keep-alive\n\n",
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: brand_new\ndata: {\"type\":\"brand_new\",\"x\":1}\n\n",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        );
        let mut conv = SseToEventStream::new();
        let mut frames = Vec::new();
        for piece in sse.as_bytes().chunks(5) {
            frames.extend_from_slice(&conv.feed(piece));
        }
        let events = EventStreamDecoder::new().feed(&frames).unwrap();
        assert_eq!(
            events,
            vec![
                BedrockEvent::Chunk(Bytes::from_static(b"{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}")),
                BedrockEvent::Chunk(Bytes::from_static(b"{\"type\":\"brand_new\",\"x\":1}")),
                BedrockEvent::Exception { kind: "serviceUnavailableException".into(), message: "Overloaded".into() },
            ]
        );
        assert_eq!(conv.facts().usage.input_tokens, 3);
        assert_eq!(
            conv.facts().error,
            Some(("overloaded_error".into(), "Overloaded".into()))
        );

        let mut conv = SseToEventStream::with_error_framing(ErrorFraming::AnthropicChunk);
        let frames = conv.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"r\"}}\n\nevent: error\ndata: not json\n\n");
        let events = EventStreamDecoder::new().feed(&frames).unwrap();
        assert_eq!(
            events,
            vec![
                BedrockEvent::Chunk(Bytes::from_static(b"{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"r\"}}")),
                BedrockEvent::Chunk(Bytes::from_static(b"not json")),
            ]
        );
        let frames = SseToEventStream::new().feed(b"event: error\ndata: not json\n\n");
        assert_eq!(
            EventStreamDecoder::new().feed(&frames).unwrap(),
            vec![BedrockEvent::Exception {
                kind: "internalServerException".into(),
                message: "not json".into()
            }]
        );
    }

    #[test]
    fn an_oversize_event_ends_the_stream_with_one_exception() {
        let mut conv = SseToEventStream::new();
        let mut big = b"event: content_block_delta\ndata: ".to_vec();
        big.resize(crate::sse::MAX_EVENT_BYTES + 1, b'x');
        let frames = conv.feed(&big);
        assert_eq!(
            EventStreamDecoder::new().feed(&frames).unwrap(),
            vec![BedrockEvent::Exception {
                kind: "internalServerException".into(),
                message: "upstream stream event exceeds the gateway's size limit".into()
            }]
        );
        assert!(conv.feed(b"\n\nevent: ping\ndata: {}\n\n").is_empty());
    }

    #[test]
    fn bedrock_watch_prefers_metrics_and_records_exceptions() {
        let mut w = BedrockStreamWatch::new();
        w.observe(&BedrockEvent::Chunk(Bytes::from_static(br#"{"type":"message_start","message":{"id":"msg_bdrk_1","model":"claude-x","usage":{"input_tokens":5,"output_tokens":1}}}"#)));
        w.observe(&BedrockEvent::Chunk(Bytes::from_static(br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":100}}"#)));
        assert_eq!(w.facts().usage.output_tokens, 100);
        w.observe(&BedrockEvent::Chunk(Bytes::from_static(STOP)));
        w.observe(&BedrockEvent::Other {
            event_type: "x".into(),
            payload: Bytes::new(),
        });
        let f = w.facts();
        assert!(f.complete);
        assert_eq!(f.message_id.as_deref(), Some("msg_bdrk_1"));
        assert_eq!(f.usage.output_tokens, 126);
        assert_eq!(f.usage.cache_read_input_tokens, 14486);
        assert_eq!(w.metrics().map(|m| m.first_byte_latency), Some(1117));
        w.observe(&BedrockEvent::Exception {
            kind: "modelStreamErrorException".into(),
            message: "boom".into(),
        });
        assert_eq!(w.facts().error, Some(("api_error".into(), "boom".into())));
    }
}
