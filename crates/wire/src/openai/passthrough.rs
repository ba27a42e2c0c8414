//! Chat Completions client to Chat Completions upstream: the body goes on as the client wrote
//! it, with only the model id replaced (and usage requested for streams), and the answer comes
//! back as the upstream wrote it while the gateway reads usage on the side.
//!
//! # Format
//! The request is rewritten member by member at the top level: every value but `model` (and
//! `stream_options`, `max_completion_tokens`/`max_tokens` when they must change) is copied as the
//! client's bytes; only whitespace between top-level members is lost. A stream whose client did
//! not ask for `stream_options.include_usage` gets it anyway, because without it a Chat stream
//! reports no usage; the gateway then takes the usage chunk (`choices: []`) and the `"usage":
//! null` members the option adds out of what the client sees.

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use super::error::ConvertError;
use super::mapping::usage_from_chat;
use crate::anthropic::ResponseFacts;
use crate::sse::{SseEvent, SseScanner};

/// A Chat request ready for a Chat upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassthroughRequest {
    /// The body to send.
    pub body: Bytes,
    /// The gateway added `include_usage`, so the usage chunk must be kept from the client.
    pub usage_added: bool,
}

/// The client's Chat body for a Chat upstream: `model` becomes `model`, a stream asks for usage,
/// and `limit` (a policy's clamp) replaces a larger or missing output limit.
pub fn chat_passthrough_request(
    body: &[u8],
    model: &str,
    limit: Option<u64>,
) -> Result<PassthroughRequest, ConvertError> {
    let members: Vec<(String, &RawValue)> = serde_json::from_slice::<OrderedMembers<'_>>(body)
        .map_err(|e| ConvertError::new("body", format!("not a JSON object: {e}")))?
        .0;
    let stream = members
        .iter()
        .any(|(k, v)| k == "stream" && v.get().trim() == "true");
    let mut usage_added = false;
    let mut limit_written = false;
    let mut out: Vec<(String, String)> = Vec::with_capacity(members.len() + 2);
    for (key, raw) in &members {
        let value = match key.as_str() {
            "model" => json_string(model),
            "stream_options" if stream => {
                let mut options: serde_json::Map<String, Value> =
                    serde_json::from_str(raw.get())
                        .map_err(|_| ConvertError::new("stream_options", "must be an object"))?;
                if options.get("include_usage") != Some(&Value::Bool(true)) {
                    options.insert("include_usage".into(), Value::Bool(true));
                    usage_added = true;
                    Value::Object(options).to_string()
                } else {
                    raw.get().to_string()
                }
            }
            "max_completion_tokens" | "max_tokens" => {
                limit_written = true;
                match (limit, raw.get().trim().parse::<u64>()) {
                    (Some(n), Ok(asked)) if asked > n => n.to_string(),
                    (Some(n), Err(_)) => n.to_string(),
                    _ => raw.get().to_string(),
                }
            }
            _ => raw.get().to_string(),
        };
        out.push((key.clone(), value));
    }
    if !out.iter().any(|(k, _)| k == "model") {
        out.push(("model".into(), json_string(model)));
    }
    if stream && !out.iter().any(|(k, _)| k == "stream_options") {
        out.push(("stream_options".into(), r#"{"include_usage":true}"#.into()));
        usage_added = true;
    }
    if let (Some(n), false) = (limit, limit_written) {
        out.push(("max_completion_tokens".into(), n.to_string()));
    }
    let mut buf = Vec::with_capacity(body.len() + 64);
    buf.push(b'{');
    for (i, (k, v)) in out.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(json_string(k).as_bytes());
        buf.push(b':');
        buf.extend_from_slice(v.as_bytes());
    }
    buf.push(b'}');
    Ok(PassthroughRequest {
        body: Bytes::from(buf),
        usage_added,
    })
}

fn json_string(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A JSON object's members in the order written, values kept as raw text.
struct OrderedMembers<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for OrderedMembers<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = OrderedMembers<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(OrderedMembers(members))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The members of a chunk or completion the gateway reads.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default, rename = "message")]
    _message: Option<IgnoredAny>,
}

fn error_of(err: &Value) -> (String, String) {
    let kind = err
        .get("type")
        .and_then(Value::as_str)
        .or_else(|| err.get("code").and_then(Value::as_str))
        .unwrap_or("api_error");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the upstream failed");
    (kind.to_string(), message.to_string())
}

impl Head {
    fn take_into(self, facts: &mut ResponseFacts) {
        if facts.message_id.is_none() {
            facts.message_id = self.id;
        }
        if facts.model.is_none() {
            facts.model = self.model;
        }
        if let Some(u) = self.usage.as_ref().filter(|u| u.is_object()) {
            facts.usage = usage_from_chat(u);
        }
        if let Some(e) = self.error.as_ref() {
            facts.error = Some(error_of(e));
        }
        if let Some(reason) = self
            .choices
            .into_iter()
            .flatten()
            .find_map(|c| c.finish_reason)
        {
            facts.stop_reason = Some(reason);
        }
    }
}

/// What the journal needs from a whole Chat answer (a completion or an error body).
pub fn chat_response_facts(body: &[u8]) -> ResponseFacts {
    let mut facts = ResponseFacts::default();
    if let Ok(head) = serde_json::from_slice::<Head>(body) {
        head.take_into(&mut facts);
    }
    facts
}

/// Watches a Chat Completions stream on its way to a Chat client: usage, the end (`[DONE]`) and
/// errors go into [`ResponseFacts`]; the bytes pass unchanged unless the usage the gateway asked
/// for must be taken out.
#[derive(Debug, Default)]
pub struct ChatStreamWatch {
    scanner: SseScanner,
    strip_usage: bool,
}

impl ChatStreamWatch {
    /// A watcher; `strip_usage` when the gateway added `include_usage` for itself.
    pub fn new(strip_usage: bool) -> Self {
        Self {
            scanner: SseScanner::new(),
            strip_usage,
        }
    }

    /// Takes the next upstream bytes and returns what the client gets.
    pub fn feed(&mut self, chunk: Bytes, facts: &mut ResponseFacts) -> Bytes {
        let strip = self.strip_usage;
        let mut out = Vec::new();
        self.scanner.feed(&chunk, |ev| {
            if let Some(kept) = observe(&ev, facts, strip) {
                out.extend_from_slice(&kept);
            }
        });
        if strip { Bytes::from(out) } else { chunk }
    }

    /// Called at the end of the upstream stream; returns a final event the upstream left
    /// unterminated, when events are being rewritten.
    pub fn finish(&mut self, facts: &mut ResponseFacts) -> Bytes {
        let strip = self.strip_usage;
        let mut out = Vec::new();
        self.scanner.feed(b"\n\n", |ev| {
            if let Some(kept) = observe(&ev, facts, strip) {
                out.extend_from_slice(&kept);
            }
        });
        if strip {
            Bytes::from(out)
        } else {
            Bytes::new()
        }
    }
}

/// One event: read into `facts`; when rewriting, the event as the client gets it (or `None`).
fn observe(ev: &SseEvent<'_>, facts: &mut ResponseFacts, strip: bool) -> Option<Vec<u8>> {
    let data = ev.data.trim_ascii();
    if data == b"[DONE]" {
        facts.complete = true;
    } else if !data.is_empty()
        && let Ok(head) = serde_json::from_slice::<Head>(data)
    {
        let usage_only = head.choices.as_ref().is_some_and(Vec::is_empty)
            && head.usage.as_ref().is_some_and(Value::is_object);
        head.take_into(facts);
        if strip && usage_only {
            return None;
        }
    }
    if !strip {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    if !ev.name.is_empty() {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(ev.name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&without_null_usage(data));
    out.extend_from_slice(b"\n\n");
    Some(out)
}

/// A chunk without the `"usage":null` member `include_usage` adds to every chunk. A quote inside
/// a JSON string is always escaped, so the unescaped member text can only be the member itself.
fn without_null_usage(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    for pattern in [&b",\"usage\":null"[..], b"\"usage\":null,"] {
        if let Some(at) = data.windows(pattern.len()).position(|w| w == pattern) {
            let mut v = data[..at].to_vec();
            v.extend_from_slice(&data[at + pattern.len()..]);
            return std::borrow::Cow::Owned(v);
        }
    }
    std::borrow::Cow::Borrowed(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(r: &PassthroughRequest) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn only_the_model_changes_and_values_keep_their_bytes() {
        let body = br#"{"model":"gpt-client","messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":2,"n":2,"seed":7,"temperature":0.70,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}"#;
        let out = chat_passthrough_request(body, "gpt-upstream", None).unwrap();
        assert!(!out.usage_added);
        let text = std::str::from_utf8(&out.body).unwrap();
        assert_eq!(
            text,
            std::str::from_utf8(body)
                .unwrap()
                .replace("gpt-client", "gpt-upstream")
        );
        // Whitespace between members goes; values stay as written.
        let spaced = b"{ \"model\" : \"a\",\n \"temperature\": 1.50 }";
        let out = chat_passthrough_request(spaced, "b", None).unwrap();
        assert_eq!(&out.body[..], br#"{"model":"b","temperature":1.50}"#);
    }

    #[test]
    fn streams_ask_for_usage() {
        let out = chat_passthrough_request(br#"{"model":"a","stream":true}"#, "b", None).unwrap();
        assert!(out.usage_added);
        assert_eq!(
            parsed(&out),
            json!({"model": "b", "stream": true, "stream_options": {"include_usage": true}})
        );
        let body = br#"{"model":"a","stream":true,"stream_options":{"include_obfuscation":false}}"#;
        let out = chat_passthrough_request(body, "b", None).unwrap();
        assert!(out.usage_added);
        assert_eq!(
            parsed(&out)["stream_options"],
            json!({"include_obfuscation": false, "include_usage": true})
        );
        let body = br#"{"model":"a","stream":true,"stream_options":{"include_usage":true}}"#;
        let out = chat_passthrough_request(body, "b", None).unwrap();
        assert!(!out.usage_added);
        let out = chat_passthrough_request(br#"{"model":"a","stream":false}"#, "b", None).unwrap();
        assert!(!out.usage_added && parsed(&out).get("stream_options").is_none());
    }

    #[test]
    fn a_clamp_lowers_or_sets_the_limit() {
        let limit = |body: &[u8]| parsed(&chat_passthrough_request(body, "m", Some(100)).unwrap());
        assert_eq!(
            limit(br#"{"max_completion_tokens":500}"#)["max_completion_tokens"],
            100
        );
        assert_eq!(limit(br#"{"max_tokens":50}"#)["max_tokens"], 50);
        assert_eq!(limit(br#"{"model":"x"}"#)["max_completion_tokens"], 100);
        assert!(chat_passthrough_request(b"[1]", "m", None).is_err());
        assert!(chat_passthrough_request(b"{", "m", None).is_err());
    }

    fn chunk(v: Value) -> String {
        format!("data: {}\n\n", serde_json::to_string(&v).unwrap())
    }

    #[test]
    fn the_stream_watch_reads_usage_and_strips_what_the_gateway_added() {
        let usage = json!({"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100}});
        let stream = [
            chunk(json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}], "usage": null})),
            chunk(json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": null})),
            chunk(json!({"id": "c1", "model": "m", "choices": [], "usage": usage})),
            "data: [DONE]\n\n".into(),
        ]
        .concat();
        // The client asked for usage itself: bytes unchanged, in any split.
        let mut facts = ResponseFacts::default();
        let mut w = ChatStreamWatch::new(false);
        let mut seen = Vec::new();
        for piece in stream.as_bytes().chunks(7) {
            seen.extend_from_slice(&w.feed(Bytes::copy_from_slice(piece), &mut facts));
        }
        seen.extend_from_slice(&w.finish(&mut facts));
        assert_eq!(seen, stream.as_bytes());
        assert!(facts.complete);
        assert_eq!(
            (
                facts.usage.input_tokens,
                facts.usage.cache_read_input_tokens
            ),
            (20, 100)
        );
        assert_eq!(facts.usage.output_tokens, 30);
        assert_eq!(facts.stop_reason.as_deref(), Some("stop"));

        // The gateway asked: the usage chunk and the null members are gone.
        let mut facts = ResponseFacts::default();
        let mut w = ChatStreamWatch::new(true);
        let mut seen = Vec::new();
        for piece in stream.as_bytes().chunks(11) {
            seen.extend_from_slice(&w.feed(Bytes::copy_from_slice(piece), &mut facts));
        }
        let seen = String::from_utf8(seen).unwrap();
        assert!(!seen.contains("usage"), "{seen}");
        assert_eq!(seen.matches("data: ").count(), 3, "{seen}");
        assert!(seen.ends_with("data: [DONE]\n\n"));
        assert_eq!(facts.usage.output_tokens, 30);
        assert!(facts.complete);
    }

    #[test]
    fn errors_are_read_from_streams_and_bodies() {
        let mut facts = ResponseFacts::default();
        let mut w = ChatStreamWatch::new(false);
        w.feed(
            Bytes::from(chunk(
                json!({"error": {"message": "boom", "type": "server_error"}}),
            )),
            &mut facts,
        );
        assert_eq!(facts.error, Some(("server_error".into(), "boom".into())));
        assert!(!facts.complete);
        let f =
            chat_response_facts(br#"{"error":{"message":"bad","type":"invalid_request_error"}}"#);
        assert_eq!(f.error.unwrap().0, "invalid_request_error");
        let f = chat_response_facts(
            br#"{"id":"c","model":"m","choices":[{"index":0,"message":{},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
        );
        assert_eq!((f.usage.input_tokens, f.usage.output_tokens), (5, 2));
        assert_eq!(f.stop_reason.as_deref(), Some("length"));
    }
}
