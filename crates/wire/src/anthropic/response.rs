//! Reading usage, model and outcome from responses: whole JSON bodies and SSE streams.

use crate::sse::SseEvent;
use crate::usage::Usage;
use serde::Deserialize;

/// What the gateway learns from a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    pub model: Option<String>,
    pub message_id: Option<String>,
    pub usage: Usage,
    pub stop_reason: Option<String>,
    /// `error.type` and `error.message` of an error body or an `event: error`.
    pub error: Option<(String, String)>,
    /// A stream reached `message_stop`.
    pub complete: bool,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<WireCacheCreation>,
}

#[derive(Deserialize, Default)]
struct WireCacheCreation {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct WireMessage {
    id: Option<String>,
    model: Option<String>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    model: Option<String>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
    error: Option<WireError>,
    message: Option<WireMessage>,
    delta: Option<WireDelta>,
}

#[derive(Deserialize)]
struct WireDelta {
    stop_reason: Option<String>,
}

impl WireUsage {
    /// Later reports win field by field: `message_delta` repeats or completes `message_start`.
    fn merge_into(self, u: &mut Usage) {
        if let Some(v) = self.input_tokens {
            u.input_tokens = v;
        }
        if let Some(v) = self.output_tokens {
            u.output_tokens = v;
        }
        if let Some(v) = self.cache_creation_input_tokens {
            u.cache_creation_input_tokens = v;
        }
        if let Some(v) = self.cache_read_input_tokens {
            u.cache_read_input_tokens = v;
        }
        if let Some(c) = self.cache_creation {
            if let Some(v) = c.ephemeral_5m_input_tokens {
                u.cache_creation_5m_input_tokens = v;
            }
            if let Some(v) = c.ephemeral_1h_input_tokens {
                u.cache_creation_1h_input_tokens = v;
            }
        }
    }
}

/// Reads a whole non-streaming response body: a Message or an error envelope.
pub fn read_response(body: &[u8]) -> ResponseFacts {
    let mut facts = ResponseFacts::default();
    let Ok(b) = serde_json::from_slice::<WireBody>(body) else {
        return facts;
    };
    if let Some(e) = b.error {
        facts.error = Some((e.kind, e.message));
    }
    if b.kind.as_deref() == Some("message") {
        facts.complete = true;
    }
    facts.model = b.model;
    facts.message_id = b.id;
    facts.stop_reason = b.stop_reason;
    if let Some(u) = b.usage {
        u.merge_into(&mut facts.usage);
    }
    facts
}

/// Watches the events of a Messages stream and accumulates [`ResponseFacts`].
#[derive(Debug, Default)]
pub struct StreamWatch {
    pub facts: ResponseFacts,
}

/// Events whose payload the watcher must parse; all others are only counted past.
fn interesting(name: &str) -> bool {
    matches!(
        name,
        "message_start" | "message_delta" | "message_stop" | "error"
    )
}

impl StreamWatch {
    /// Takes one SSE event into account.
    pub fn observe(&mut self, ev: &SseEvent<'_>) {
        if !interesting(ev.name) {
            return;
        }
        if ev.name == "message_stop" {
            self.facts.complete = true;
            return;
        }
        let Ok(b) = serde_json::from_slice::<WireBody>(&ev.data) else {
            return;
        };
        match ev.name {
            "message_start" => {
                if let Some(m) = b.message {
                    self.facts.message_id = m.id;
                    self.facts.model = m.model;
                    if m.stop_reason.is_some() {
                        self.facts.stop_reason = m.stop_reason;
                    }
                    if let Some(u) = m.usage {
                        u.merge_into(&mut self.facts.usage);
                    }
                }
            }
            "message_delta" => {
                if let Some(d) = b.delta
                    && d.stop_reason.is_some()
                {
                    self.facts.stop_reason = d.stop_reason;
                }
                if let Some(u) = b.usage {
                    u.merge_into(&mut self.facts.usage);
                }
            }
            _ => {
                if let Some(e) = b.error {
                    self.facts.error = Some((e.kind, e.message));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseScanner;

    #[test]
    fn stream_usage_is_merged_from_start_and_delta() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":20,\"cache_read_input_tokens\":30,\"cache_creation\":{\"ephemeral_5m_input_tokens\":5,\"ephemeral_1h_input_tokens\":15},\"output_tokens\":1}}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":42}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
        let mut s = SseScanner::new();
        let mut w = StreamWatch::default();
        for piece in stream.as_bytes().chunks(7) {
            s.feed(piece, |e| w.observe(&e));
        }
        let f = w.facts;
        assert!(f.complete);
        assert_eq!(f.model.as_deref(), Some("claude-x"));
        assert_eq!(f.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(
            f.usage,
            Usage {
                input_tokens: 10,
                output_tokens: 42,
                cache_creation_input_tokens: 20,
                cache_read_input_tokens: 30,
                cache_creation_5m_input_tokens: 5,
                cache_creation_1h_input_tokens: 15,
            }
        );
    }

    #[test]
    fn error_bodies_and_events_are_read() {
        let f = read_response(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(
            f.error,
            Some(("overloaded_error".into(), "Overloaded".into()))
        );
        let mut w = StreamWatch::default();
        w.observe(&SseEvent {
            name: "error",
            data: std::borrow::Cow::Borrowed(
                br#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
            ),
        });
        assert_eq!(w.facts.error, Some(("api_error".into(), "boom".into())));
        assert!(!w.facts.complete);
    }
}
