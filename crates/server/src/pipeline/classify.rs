//! Phase 3, classify: read only the body fields and headers the gateway acts on.

use super::accept::Endpoint;
use super::accept::Ingress;
use super::authenticate::Authenticated;
use super::dialect::{ClientDialect, ClientSide};
use crate::error::GatewayError;
use http::{HeaderMap, HeaderName, HeaderValue};
use tollgate_wire::anthropic::{RequestFacts, read_request};
use tollgate_wire::bedrock::bedrock_body_to_messages;
use tollgate_wire::headers::{ANTHROPIC_BETA, ANTHROPIC_VERSION};
use tollgate_wire::headers::{
    X_CLAUDE_CODE_AGENT_ID, X_CLAUDE_CODE_SESSION_ID, X_TOLLGATE_PROJECT, X_TOLLGATE_PROVIDER,
    X_TOLLGATE_ROUTE, X_TOLLGATE_TAGS,
};
use tollgate_wire::openai::{ConvertOptions, chat_to_messages_request};
use tollgate_wire::vertex::vertex_body_to_messages;

/// Who and what a request is attributed to, from headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub project: Option<String>,
    pub tags: Vec<String>,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub provider: Option<String>,
    pub user_agent: Option<String>,
}

/// A request whose facts are known. Whatever dialect it arrived in, `auth.accepted.body` is
/// now an Anthropic Messages body.
#[derive(Debug)]
pub struct Classified {
    pub auth: Authenticated,
    pub facts: RequestFacts,
    pub client: ClientSide,
}

/// A header's value, trimmed; `None` when absent, empty or not visible ASCII.
pub(super) fn header<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The longest value an attribution header (and each tag) may have. These values go into
/// every journal record and key rate limits and spend reports; real ones (a UUID session id,
/// a project name) are far shorter.
pub const MAX_LABEL_BYTES: usize = 256;

/// The most tags `x-tollgate-tags` may list.
pub const MAX_TAGS: usize = 32;

/// The headers whose values are labels, bounded by [`MAX_LABEL_BYTES`].
static LABELS: [&HeaderName; 5] = [
    &X_TOLLGATE_PROJECT,
    &X_TOLLGATE_PROVIDER,
    &X_TOLLGATE_ROUTE,
    &X_CLAUDE_CODE_SESSION_ID,
    &X_CLAUDE_CODE_AGENT_ID,
];

/// A header's value cut to [`MAX_LABEL_BYTES`], for the record of a request that is refused
/// for its length (or, for `User-Agent`, kept whatever its length).
fn owned(h: &HeaderMap, name: &HeaderName) -> Option<String> {
    header(h, name).map(cut)
}

/// The first [`MAX_LABEL_BYTES`] of a header value. `header` passes visible ASCII only, so
/// any byte is a character boundary.
fn cut(v: &str) -> String {
    v[..v.len().min(MAX_LABEL_BYTES)].to_string()
}

fn tag_list(h: &HeaderMap) -> impl Iterator<Item = &str> {
    header(h, &X_TOLLGATE_TAGS)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The comma-separated `x-tollgate-tags`, trimmed, without empty entries.
pub fn tags(h: &HeaderMap) -> Vec<String> {
    tag_list(h).take(MAX_TAGS).map(cut).collect()
}

/// Reads the attribution headers (once per request, when the journal record is started).
pub fn attribution(h: &HeaderMap) -> Attribution {
    Attribution {
        project: owned(h, &X_TOLLGATE_PROJECT),
        tags: tags(h),
        session_id: owned(h, &X_CLAUDE_CODE_SESSION_ID),
        agent_id: owned(h, &X_CLAUDE_CODE_AGENT_ID),
        provider: owned(h, &X_TOLLGATE_PROVIDER),
        user_agent: owned(h, &http::header::USER_AGENT),
    }
}

/// Refuses label headers longer than [`MAX_LABEL_BYTES`] and more than [`MAX_TAGS`] tags,
/// naming the header, rather than keeping or acting on a value no client sends honestly.
fn check_labels(h: &HeaderMap) -> Result<(), GatewayError> {
    let too_long = |name: &HeaderName| {
        GatewayError::invalid(format!("{name}: longer than {MAX_LABEL_BYTES} bytes"))
    };
    for name in LABELS {
        if header(h, name).is_some_and(|v| v.len() > MAX_LABEL_BYTES) {
            return Err(too_long(name));
        }
    }
    let mut count = 0;
    for tag in tag_list(h) {
        count += 1;
        if tag.len() > MAX_LABEL_BYTES {
            return Err(too_long(&X_TOLLGATE_TAGS));
        }
    }
    if count > MAX_TAGS {
        return Err(GatewayError::invalid(format!(
            "{X_TOLLGATE_TAGS}: more than {MAX_TAGS} tags"
        )));
    }
    Ok(())
}

/// Runs the classify phase.
pub fn classify(mut auth: Authenticated) -> Result<Classified, GatewayError> {
    check_labels(&auth.accepted.headers)?;
    let mut client = normalize(&mut auth.accepted)?;
    let mut facts =
        read_request(&auth.accepted.body).map_err(|e| GatewayError::invalid(e.to_string()))?;
    if client.unconvertible.is_some() {
        // Still the Chat body: its output limit may carry the other name, and admission needs
        // one (what the conversion would have defaulted to).
        let limit: ChatLimit = serde_json::from_slice(&auth.accepted.body).unwrap_or_default();
        facts.max_tokens = limit
            .max_completion_tokens
            .or(limit.max_tokens)
            .or(Some(tollgate_wire::openai::DEFAULT_MAX_TOKENS));
    }
    if facts.model.is_none() {
        return Err(GatewayError::invalid("model: field required"));
    }
    if auth.accepted.endpoint == Endpoint::Messages && facts.max_tokens.is_none() {
        return Err(GatewayError::invalid("max_tokens: field required"));
    }
    if client.model.is_empty() {
        client.model = facts.model.clone().unwrap_or_default();
    }
    Ok(Classified {
        auth,
        facts,
        client,
    })
}

#[derive(serde::Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(serde::Deserialize, Default)]
struct ChatLimit {
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
struct OpenAiHead {
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

/// Rewrites a Bedrock, Vertex or OpenAI request into an Anthropic Messages request (body and
/// the headers an Anthropic upstream needs), keeping what the answer must echo.
fn normalize(a: &mut super::accept::Accepted) -> Result<ClientSide, GatewayError> {
    let invalid = |e: &dyn std::fmt::Display| GatewayError::invalid(e.to_string());
    let facts = match a.ingress.clone() {
        Ingress::Anthropic => ClientSide {
            dialect: ClientDialect::Anthropic,
            model: String::new(),
            include_usage: false,
            chat_body: None,
            unconvertible: None,
        },
        Ingress::OpenAi => {
            let head = read_request(&a.body).map_err(|e| invalid(&e))?;
            let model = head
                .model
                .ok_or_else(|| GatewayError::invalid("model: field required"))?;
            let opts: OpenAiHead = serde_json::from_slice(&a.body).unwrap_or_default();
            let original = a.body.clone();
            // A body the Anthropic form cannot carry (`n`, `logprobs`, …) can still go to an
            // OpenAI-dialect upstream unchanged: the refusal waits until a target needs the
            // conversion, and the rest of the pipeline reads the Chat body's own facts.
            let unconvertible = match chat_to_messages_request(
                &a.body,
                &ConvertOptions {
                    target_model: model.clone(),
                    ..Default::default()
                },
            ) {
                Ok(body) => {
                    a.body = body;
                    None
                }
                Err(e) => Some(e.to_string()),
            };
            ClientSide {
                dialect: ClientDialect::OpenAi,
                model,
                include_usage: opts.stream_options.is_some_and(|o| o.include_usage),
                chat_body: Some(original),
                unconvertible,
            }
        }
        Ingress::Bedrock { model, stream } => {
            let (body, betas) =
                bedrock_body_to_messages(&a.body, &model, stream).map_err(|e| invalid(&e))?;
            a.body = body;
            let present: Vec<String> = a
                .headers
                .get_all(&ANTHROPIC_BETA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(',').map(|b| b.trim().to_string()))
                .collect();
            for b in betas.iter().filter(|b| !present.contains(b)) {
                if let Ok(v) = HeaderValue::from_str(b) {
                    a.headers.append(&ANTHROPIC_BETA, v);
                }
            }
            // AWS SDK bookkeeping and signing headers mean nothing past the gateway.
            let aws: Vec<http::HeaderName> = a
                .headers
                .keys()
                .filter(|k| k.as_str().starts_with("x-amz-") || k.as_str().starts_with("amz-sdk-"))
                .cloned()
                .collect();
            for k in aws {
                a.headers.remove(k);
            }
            ClientSide {
                dialect: ClientDialect::Bedrock,
                model,
                include_usage: false,
                chat_body: None,
                unconvertible: None,
            }
        }
        Ingress::Vertex { model, stream } => {
            match &model {
                Some(m) => {
                    a.body =
                        vertex_body_to_messages(&a.body, m, stream).map_err(|e| invalid(&e))?;
                }
                None => {
                    // count-tokens: the model is already in the body; only the envelope's
                    // version field must go (the Messages API refuses unknown fields).
                    let mut v: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_slice(&a.body).map_err(|e| invalid(&e))?;
                    v.remove("anthropic_version");
                    a.body = serde_json::to_vec(&v).map_err(|e| invalid(&e))?.into();
                }
            }
            ClientSide {
                dialect: ClientDialect::Vertex,
                model: model.unwrap_or_default(),
                include_usage: false,
                chat_body: None,
                unconvertible: None,
            }
        }
    };
    if facts.dialect != ClientDialect::Anthropic {
        // The body is now JSON the gateway wrote, whatever the client declared (boto3 sends
        // no content type at all).
        a.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if facts.dialect != ClientDialect::Anthropic && !a.headers.contains_key(&ANTHROPIC_VERSION) {
        // Bedrock and Vertex carry the version in the body; the Messages API wants the header.
        a.headers
            .insert(&ANTHROPIC_VERSION, HeaderValue::from_static("2023-06-01"));
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&HeaderName, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_str(value).expect("ASCII"));
        }
        h
    }

    #[test]
    fn labels_are_bounded_in_length_and_number() {
        let long = "s".repeat(MAX_LABEL_BYTES + 1);
        let h = headers(&[(&X_CLAUDE_CODE_SESSION_ID, long.clone())]);
        let e = check_labels(&h).expect_err("too long");
        assert_eq!(e.message, "x-claude-code-session-id: longer than 256 bytes");
        // The record of the refused request keeps the first 256 bytes.
        assert_eq!(
            attribution(&h).session_id.map(|s| s.len()),
            Some(MAX_LABEL_BYTES)
        );

        let many = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect::<Vec<_>>();
        let h = headers(&[(&X_TOLLGATE_TAGS, many.join(", "))]);
        assert_eq!(
            check_labels(&h).expect_err("too many").message,
            "x-tollgate-tags: more than 32 tags"
        );
        assert_eq!(tags(&h).len(), MAX_TAGS);

        let h = headers(&[(&X_TOLLGATE_TAGS, format!("a, {long}"))]);
        assert!(check_labels(&h).is_err());

        // A User-Agent is the client's, not a label: cut in the record, never refused.
        let h = headers(&[
            (&http::header::USER_AGENT, "u".repeat(1000)),
            (&X_TOLLGATE_PROJECT, "p".repeat(MAX_LABEL_BYTES)),
            (&X_TOLLGATE_TAGS, many[..MAX_TAGS].join(",")),
        ]);
        assert!(check_labels(&h).is_ok());
        assert_eq!(
            attribution(&h).user_agent.map(|s| s.len()),
            Some(MAX_LABEL_BYTES)
        );
    }
}
