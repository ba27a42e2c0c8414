//! Conversion errors, and the error envelope of the Chat Completions dialect.

use bytes::Bytes;
use serde::Serialize;

/// Why a body cannot be converted: the path of the offending field (`messages[3].content[1].type`)
/// and what is wrong with it. The gateway answers it as a 400 that names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    /// Path of the offending field; `body` when the body as a whole is at fault.
    pub field: String,
    /// What is wrong with it, in words a client can act on.
    pub message: String,
}

impl ConvertError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConvertError {}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// `{"error":{"message","type","param":null,"code"}}`: the envelope OpenAI SDKs parse, for bodies
/// and for the `data:` line of a failed stream.
pub fn openai_error_body(kind: &str, message: &str, code: Option<&str>) -> Bytes {
    let envelope = Envelope {
        error: ErrorBody {
            message,
            kind,
            param: None,
            code,
        },
    };
    // Plain strings only: serialisation cannot fail, but an empty body must never be sent.
    Bytes::from(serde_json::to_vec(&envelope).unwrap_or_else(|_| b"{\"error\":{}}".to_vec()))
}

/// The Anthropic error type closest to an OpenAI error object, so that Anthropic clients retry
/// what the upstream marked retryable.
pub(super) fn anthropic_error_kind(error: &serde_json::Value) -> &'static str {
    let field = |k: &str| error.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let (kind, code) = (field("type"), field("code"));
    if kind.contains("rate_limit") || code.contains("rate_limit") {
        "rate_limit_error"
    } else if kind.contains("overloaded") || code.contains("overloaded") {
        "overloaded_error"
    } else if kind == "invalid_request_error" {
        "invalid_request_error"
    } else {
        "api_error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_has_the_openai_shape() {
        let body = openai_error_body("invalid_request_error", "bad \"x\"", Some("bad_x"));
        assert_eq!(
            &body[..],
            br#"{"error":{"message":"bad \"x\"","type":"invalid_request_error","param":null,"code":"bad_x"}}"#
        );
        let v: serde_json::Value =
            serde_json::from_slice(&openai_error_body("x", "y", None)).unwrap();
        assert_eq!(v["error"]["code"], serde_json::Value::Null);
    }

    #[test]
    fn display_names_the_field() {
        let e = ConvertError::new("messages[3].content[1].type", "not supported");
        assert_eq!(e.to_string(), "messages[3].content[1].type: not supported");
    }

    #[test]
    fn error_kinds_map_to_anthropic_types() {
        assert_eq!(
            anthropic_error_kind(&json!({"type":"tokens","code":"rate_limit_exceeded"})),
            "rate_limit_error"
        );
        assert_eq!(
            anthropic_error_kind(&json!({"type":"invalid_request_error"})),
            "invalid_request_error"
        );
        assert_eq!(
            anthropic_error_kind(&json!({"type":"server_error"})),
            "api_error"
        );
        assert_eq!(
            anthropic_error_kind(&json!({"message":"Overloaded","code":"overloaded"})),
            "overloaded_error"
        );
    }
}
