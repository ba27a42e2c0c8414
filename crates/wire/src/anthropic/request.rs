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
    /// Arrays and objects nest deeper than [`MAX_NESTING`].
    TooDeep,
}

/// The longest model name a request may give. Real ones, Bedrock inference-profile ARNs
/// included, stay under 150 bytes; the name is kept in every journal record and keys spend
/// reports, so an unbounded one would let a client bloat both.
pub const MAX_MODEL_BYTES: usize = 256;

/// The deepest nesting of arrays and objects a request body may have. Real requests nest a few
/// tens of levels. The validator recurses once per level, so without a bound one request of
/// `[[[[…` could exhaust a worker's stack and abort the whole gateway; at this depth it uses
/// about 3 MiB of stack in release builds and 8 MiB in debug builds. It is this high because
/// bodies with fewer brackets need no depth walk (see `nests_within`).
pub const MAX_NESTING: usize = 16_384;

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Malformed(m) => write!(f, "request body is not valid JSON: {m}"),
            RequestError::NotAnObject => f.write_str("request body must be a JSON object"),
            RequestError::Field(field, m) => write!(f, "{field}: {m}"),
            RequestError::TooDeep => write!(
                f,
                "request body nests arrays and objects deeper than {MAX_NESTING} levels"
            ),
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
    if !nests_within(body, MAX_NESTING) {
        return Err(RequestError::TooDeep);
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

/// Whether no array or object in `body` lies deeper than `limit` levels.
///
/// A body with no more opening brackets than `limit` cannot nest deeper, whatever its strings
/// hold: that count is vectorised (about 2 µs for a 120 KB body, against about 40 µs to
/// validate it) and, at the limit of 16,384, settles Claude Code bodies up to about 1.2 MB.
/// Only bodies with more brackets are walked, skipping strings, to find their real depth (about
/// half the validation's own time again).
fn nests_within(body: &[u8], limit: usize) -> bool {
    opening_brackets(body) <= limit || max_depth_within(body, limit)
}

/// Counts `[` and `{` bytes, inside strings or not.
fn opening_brackets(body: &[u8]) -> usize {
    // `[` is 0x5B and `{` is 0x7B: setting bit 5 maps both, and nothing else, to `{`. Summing
    // 64-byte chunks into a `u8` (at most 64) is what lets the compiler vectorise the loop.
    let is_open = |b: &u8| (b | 0x20) == b'{';
    let chunks = body.chunks_exact(64);
    let rest = chunks.remainder().iter().filter(|b| is_open(b)).count();
    chunks
        .map(|c| usize::from(c.iter().map(|b| u8::from(is_open(b))).sum::<u8>()))
        .sum::<usize>()
        + rest
}

/// Walks `body`, skipping strings, and says whether its nesting stays within `limit`. On
/// malformed input it may answer either way; the validator then reports the fault, and it
/// never nests deeper than this walk counted before it stops.
fn max_depth_within(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        match b {
            b'"' => loop {
                // Jump from quote to quote: escapes matter only where they precede one, and
                // Claude Code's strings (code, tool output) are full of `\n` and `\t`.
                let Some(at) = memchr::memchr(b'"', body.get(i..).unwrap_or_default()) else {
                    // An unterminated string: nothing after it nests.
                    return true;
                };
                let quote = i + at;
                i = quote + 1;
                let backslashes = body[..quote]
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b'\\')
                    .count();
                if backslashes % 2 == 0 {
                    break;
                }
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
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
        Some(b'"') => match serde_json::from_str::<String>(raw) {
            Ok(m) if m.len() > MAX_MODEL_BYTES => Err(RequestError::Field(
                "model",
                format!("is longer than {MAX_MODEL_BYTES} bytes"),
            )),
            Ok(m) => Ok(Some(m)),
            Err(e) => Err(RequestError::Malformed(e.to_string())),
        },
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
    fn nesting_is_bounded_without_counting_brackets_in_strings() {
        let nested = |levels: usize, inside: &str| {
            format!(
                r#"{{"model":"m","max_tokens":5,"messages":{}{inside}{}}}"#,
                "[".repeat(levels),
                "]".repeat(levels)
            )
        };
        // Deep enough to have overflowed the validator's stack before.
        let hostile = nested(1_000_000, "");
        assert_eq!(read_request(hostile.as_bytes()), Err(RequestError::TooDeep));
        // Inside a string, brackets are text, also after an escaped quote; and many shallow
        // containers are not deep ones. Both have more brackets than the limit, so both are
        // walked rather than settled by the count.
        let text = format!(r#""say \"{}\" to me""#, "[{".repeat(MAX_NESTING));
        assert_eq!(
            read_request(nested(3, &text).as_bytes()).map(|f| f.max_tokens),
            Ok(Some(5))
        );
        let wide = format!("[{}{{}}]", "{},".repeat(MAX_NESTING));
        assert!(read_request(nested(1, &wide).as_bytes()).is_ok());
        // The deepest allowed body (the outer object is a level) validates; debug builds need
        // more stack per level than a test thread has.
        let at_limit = nested(MAX_NESTING - 1, "");
        let over = nested(MAX_NESTING, "");
        let run = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                (
                    read_request(at_limit.as_bytes()),
                    read_request(over.as_bytes()),
                )
            })
            .expect("thread starts");
        let (at_limit, over) = run.join().expect("no overflow");
        assert_eq!(at_limit.map(|f| f.max_tokens), Ok(Some(5)));
        assert_eq!(over, Err(RequestError::TooDeep));
        // Few brackets are settled by the count alone, however they nest.
        assert!(read_request(nested(100, "").as_bytes()).is_ok());
        // A string left open ends the walk; the validator names the fault.
        let open = format!(r#"{{"messages":"{}"#, "[".repeat(MAX_NESTING + 1));
        assert!(matches!(
            read_request(open.as_bytes()),
            Err(RequestError::Malformed(_))
        ));
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
        let named = |len: usize| format!(r#"{{"model":"{}"}}"#, "m".repeat(len));
        assert!(read_request(named(MAX_MODEL_BYTES).as_bytes()).is_ok());
        assert_eq!(
            read_request(named(MAX_MODEL_BYTES + 1).as_bytes())
                .map_err(|e| e.to_string())
                .unwrap_err(),
            "model: is longer than 256 bytes"
        );
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
