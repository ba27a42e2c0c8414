//! Reading the few request fields the gateway acts on.

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

/// Validates the whole body as JSON and extracts [`RequestFacts`]. Other fields are skipped
/// without allocation; their bytes are forwarded untouched by the caller.
pub fn read_request(body: &[u8]) -> Result<RequestFacts, RequestError> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    if first.map(|i| body[i]) != Some(b'{') {
        // The API accepts only an object; say whether the rest was JSON at all.
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(RequestError::NotAnObject),
            Err(e) => Err(RequestError::Malformed(e.to_string())),
        };
    }
    let mut facts = RequestFacts::default();
    let (mut seen_model, mut seen_stream, mut seen_max) = (false, false, false);
    // Where the last member ended, to check that only `}` and whitespace follow it.
    let mut end = first.map_or(0, |i| i + 1);
    for member in sonic_rs::to_object_iter(body) {
        let (key, value) = member.map_err(malformed)?;
        let raw = value.as_raw_str();
        end = offset_in(body, raw).map_or(body.len(), |at| at + raw.len());
        match &*key {
            "model" => {
                first_time(&mut seen_model, "model")?;
                facts.model = model(raw)?;
            }
            "stream" => {
                first_time(&mut seen_stream, "stream")?;
                facts.stream = stream(raw)?;
            }
            "max_tokens" => {
                first_time(&mut seen_max, "max_tokens")?;
                facts.max_tokens = max_tokens(raw)?;
            }
            _ => {}
        }
    }
    let rest = body.get(end..).unwrap_or_default();
    let mut tail = rest.iter().skip_while(|b| b.is_ascii_whitespace());
    if tail.next() != Some(&b'}') || tail.any(|b| !b.is_ascii_whitespace()) {
        return Err(RequestError::Malformed(format!(
            "trailing characters after the object at byte {}",
            end + rest.iter().position(|b| *b == b'}').map_or(0, |i| i + 1)
        )));
    }
    Ok(facts)
}

/// The byte offset of `part` inside `whole`, when it is a sub-slice of it.
fn offset_in(whole: &[u8], part: &str) -> Option<usize> {
    let at = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (at + part.len() <= whole.len()).then_some(at)
}

fn malformed(e: sonic_rs::Error) -> RequestError {
    // sonic-rs appends a multi-line excerpt of the body; the first line names the position.
    let text = e.to_string();
    RequestError::Malformed(text.lines().next().unwrap_or_default().trim().to_string())
}

/// Refuses a second occurrence of a field the gateway acts on: the upstream may read the last
/// of duplicate keys while the gateway routed, priced and checked policy on the first.
fn first_time(seen: &mut bool, field: &'static str) -> Result<(), RequestError> {
    if std::mem::replace(seen, true) {
        return Err(RequestError::Field(field, "appears twice".into()));
    }
    Ok(())
}

fn model(raw: &str) -> Result<Option<String>, RequestError> {
    match raw.as_bytes().first() {
        Some(b'n') => Ok(None),
        Some(b'"') => serde_json::from_str::<String>(raw)
            .map(Some)
            .map_err(|e| RequestError::Malformed(e.to_string())),
        _ => Err(RequestError::Field("model", "must be a string".into())),
    }
}

fn stream(raw: &str) -> Result<bool, RequestError> {
    match raw {
        "true" => Ok(true),
        "false" | "null" => Ok(false),
        _ => Err(RequestError::Field("stream", "must be a boolean".into())),
    }
}

fn max_tokens(raw: &str) -> Result<Option<u64>, RequestError> {
    match raw.as_bytes().first() {
        Some(b'n') => Ok(None),
        Some(b'-' | b'0'..=b'9') => match serde_json::from_str::<serde_json::Number>(raw) {
            Ok(n) => n.as_u64().map(Some).ok_or_else(|| {
                RequestError::Field("max_tokens", "must be a non-negative integer".into())
            }),
            Err(e) => Err(RequestError::Malformed(e.to_string())),
        },
        _ => Err(RequestError::Field(
            "max_tokens",
            "must be an integer".into(),
        )),
    }
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
        assert!(matches!(
            read_request(b"{\"max_tokens\": -1}"),
            Err(RequestError::Field("max_tokens", _))
        ));
        assert!(matches!(
            read_request(b"{\"max_tokens\": 1.5}"),
            Err(RequestError::Field("max_tokens", _))
        ));
    }

    #[test]
    fn rejects_what_is_not_one_json_object() {
        for bad in [
            &b"{\"messages\":[{\"a\":1,}],\"model\":\"x\"}"[..],
            b"{\"messages\":[tru],\"model\":\"x\"}",
            b"{\"messages\":\"\\x\",\"model\":\"x\"}",
            b"{\"messages\":\"\xff\xfe\",\"model\":\"x\"}",
            b"{\"messages\":\"a\x01b\"}",
            b"{\"messages\":[1 2]}",
            b"{\"model\":\"x\"} trailing",
            b"{\"model\":\"x\"} {}",
            b"{\"model\":\"x\"",
            b"{\"messages\":01}",
            b"{",
        ] {
            let got = read_request(bad);
            assert!(
                matches!(got, Err(RequestError::Malformed(_))),
                "{:?} gave {got:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(read_request(b" {} \n"), Ok(RequestFacts::default()));
        assert_eq!(
            read_request(b"{\"model\":null}"),
            Ok(RequestFacts::default())
        );
    }

    #[test]
    fn refuses_a_duplicated_field_the_gateway_acts_on() {
        let got = read_request(b"{\"model\":\"cheap\",\"messages\":[],\"model\":\"dear\"}");
        assert!(
            matches!(got, Err(RequestError::Field("model", _))),
            "{got:?}"
        );
        // Duplicates of fields the gateway does not read are the upstream's business.
        assert!(read_request(b"{\"temperature\":1,\"temperature\":0}").is_ok());
    }

    #[test]
    fn unescapes_the_model_name() {
        let f = read_request(b"{\"model\":\"claude\\u002dx\"}").expect("valid");
        assert_eq!(f.model.as_deref(), Some("claude-x"));
    }
}
