//! The bytes of a simulated answer: a Messages JSON body or its SSE stream, and error bodies,
//! in the shapes the Anthropic API sends.

use super::cache::CacheUse;
use bytes::Bytes;
use serde_json::json;

/// The words the simulated model says, one token each, in a loop.
const WORDS: [&str; 8] = [
    "The ",
    "simulated ",
    "model ",
    "answers ",
    "with ",
    "steady ",
    "tokens. ",
    "Again: ",
];

/// What one simulated message consists of.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub usage: CacheUse,
    pub output_tokens: u64,
}

/// The text of `n` tokens.
pub fn text(n: u64) -> String {
    (0..n).map(|i| WORDS[i as usize % WORDS.len()]).collect()
}

fn usage_json(u: &CacheUse, output_tokens: u64) -> serde_json::Value {
    json!({
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "output_tokens": output_tokens,
    })
}

/// A non-streaming Messages answer.
pub fn whole(m: &Message<'_>) -> Bytes {
    let body = json!({
        "id": m.id,
        "type": "message",
        "role": "assistant",
        "model": m.model,
        "content": [{"type": "text", "text": text(m.output_tokens)}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": usage_json(&m.usage, m.output_tokens),
    });
    Bytes::from(body.to_string())
}

fn event(name: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The events before any content: `message_start`, the text block's start and a `ping`.
pub fn stream_head(m: &Message<'_>) -> Vec<Bytes> {
    vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": m.id, "type": "message", "role": "assistant", "model": m.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": usage_json(&m.usage, 1),
            }}),
        ),
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ]
}

/// One `text_delta` carrying tokens `from..to`.
pub fn stream_delta(from: u64, to: u64) -> Bytes {
    let t: String = (from..to)
        .map(|i| WORDS[i as usize % WORDS.len()])
        .collect();
    event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": t}}),
    )
}

/// The events after the content: block stop, `message_delta` with the final usage, stop.
pub fn stream_tail(m: &Message<'_>) -> Vec<Bytes> {
    vec![
        event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": m.output_tokens}}),
        ),
        event("message_stop", &json!({"type": "message_stop"})),
    ]
}

/// The `error.type` and message the Anthropic API uses for a status.
pub fn error_kind(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("invalid_request_error", "Simulated invalid request"),
        401 => ("authentication_error", "invalid x-api-key"),
        403 => ("permission_error", "Simulated permission error"),
        404 => ("not_found_error", "Simulated not found"),
        413 => ("request_too_large", "Simulated request too large"),
        429 => (
            "rate_limit_error",
            "Number of request tokens has exceeded your rate limit",
        ),
        529 => ("overloaded_error", "Overloaded"),
        504 => ("timeout_error", "Simulated timeout"),
        s if s >= 500 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "Simulated client error"),
    }
}

/// `{"input_tokens": n}`, the count-tokens answer.
pub fn count_tokens(n: u64) -> Bytes {
    Bytes::from(json!({ "input_tokens": n }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_events_are_anthropic_sse() {
        let m = Message {
            id: "msg_sim_1",
            model: "claude-x\"y",
            usage: CacheUse {
                input_tokens: 3,
                cache_creation_input_tokens: 10,
                cache_read_input_tokens: 20,
            },
            output_tokens: 4,
        };
        let mut all = Vec::new();
        for b in stream_head(&m)
            .into_iter()
            .chain([stream_delta(0, 2), stream_delta(2, 4)])
            .chain(stream_tail(&m))
        {
            all.extend_from_slice(&b);
        }
        let text = String::from_utf8(all).expect("utf-8");
        let mut names = Vec::new();
        let mut deltas = String::new();
        for ev in text.split("\n\n").filter(|e| !e.is_empty()) {
            let (name, data) = ev.split_once('\n').expect("two lines");
            let v: serde_json::Value =
                serde_json::from_str(data.strip_prefix("data: ").expect("data")).expect("json");
            let name = name.strip_prefix("event: ").expect("event");
            assert_eq!(v["type"], name);
            if name == "content_block_delta" {
                deltas.push_str(v["delta"]["text"].as_str().expect("text"));
            }
            if name == "message_start" {
                assert_eq!(v["message"]["model"], "claude-x\"y");
                assert_eq!(v["message"]["usage"]["cache_read_input_tokens"], 20);
            }
            names.push(name.to_string());
        }
        assert_eq!(deltas, text_of(4));
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let w: serde_json::Value = serde_json::from_slice(&whole(&m)).expect("json");
        assert_eq!(w["usage"]["output_tokens"], 4);
        assert_eq!(w["content"][0]["text"], text_of(4));
    }

    fn text_of(n: u64) -> String {
        text(n)
    }
}
