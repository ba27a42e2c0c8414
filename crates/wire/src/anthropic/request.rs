//! Reading the few request fields the gateway acts on.

use serde::Deserialize;

/// The request fields the gateway acts on; everything else stays raw in the body bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: Option<String>,
    pub stream: bool,
    pub max_tokens: Option<u64>,
}

/// Why a body is not an acceptable Messages request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Not valid JSON (serde's message, with line and column).
    Malformed(String),
    /// Valid JSON, but not an object.
    NotAnObject,
    /// A field has the wrong type.
    Field(&'static str, String),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Malformed(m) => write!(f, "request body is not valid JSON: {m}"),
            RequestError::NotAnObject => f.write_str("request body must be a JSON object"),
            RequestError::Field(field, m) => write!(f, "{field}: {m}"),
        }
    }
}

#[derive(Deserialize)]
struct Partial<'a> {
    #[serde(default)]
    model: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<serde_json::Value>,
    #[serde(default)]
    max_tokens: Option<serde_json::Value>,
    #[serde(skip)]
    _borrow: std::marker::PhantomData<&'a ()>,
}

/// Validates the whole body as JSON and extracts [`RequestFacts`]. Unknown fields are skipped
/// without allocation; their bytes are forwarded untouched by the caller.
pub fn read_request(body: &[u8]) -> Result<RequestFacts, RequestError> {
    // serde_json skips unknown strings without checking their UTF-8; the API would reject them.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(RequestError::Malformed(format!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        )));
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first != Some(b'{') {
        // Serde would accept a JSON array for a struct; the API accepts only an object.
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(RequestError::NotAnObject),
            Err(e) => Err(RequestError::Malformed(e.to_string())),
        };
    }
    let partial: Partial<'_> =
        serde_json::from_slice(body).map_err(|e| RequestError::Malformed(e.to_string()))?;
    let model = match partial.model {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => return Err(RequestError::Field("model", "must be a string".into())),
    };
    let stream = match partial.stream {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return Err(RequestError::Field("stream", "must be a boolean".into())),
    };
    let max_tokens = match partial.max_tokens {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(v) => Some(v),
            None => {
                return Err(RequestError::Field(
                    "max_tokens",
                    "must be a non-negative integer".into(),
                ));
            }
        },
        Some(_) => {
            return Err(RequestError::Field(
                "max_tokens",
                "must be an integer".into(),
            ));
        }
    };
    Ok(RequestFacts {
        model,
        stream,
        max_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_facts_and_ignores_the_rest() {
        let f = read_request(
            br#"{"messages":[{"role":"user","content":"hi"}],"model":"claude-x","max_tokens":5,"stream":true,"zz":{"a":[1,2]}}"#,
        )
        .expect("valid");
        assert_eq!(f.model.as_deref(), Some("claude-x"));
        assert!(f.stream);
        assert_eq!(f.max_tokens, Some(5));
    }

    #[test]
    fn rejects_malformed_and_wrong_types() {
        assert!(matches!(
            read_request(b"{\"model\": "),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            read_request(b"[1,2]"),
            Err(RequestError::NotAnObject)
        ));
        assert!(matches!(
            read_request(b"{\"model\": 3}"),
            Err(RequestError::Field("model", _))
        ));
        assert!(matches!(
            read_request(b"{\"stream\": \"yes\"}"),
            Err(RequestError::Field("stream", _))
        ));
    }
}
