//! URL and headers of a Vertex AI rawPredict call.

use crate::call::{Operation, UpstreamCall, encode_segment, forward_client_headers};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use tollgate_wire::headers::ANTHROPIC_BETA;

/// The model-path name of the token-counting endpoint (the model goes in the body).
pub const COUNT_TOKENS_MODEL: &str = "count-tokens";

/// The only betas Vertex's `count-tokens:rawPredict` is known to accept: it answers 400 to
/// betas that `streamRawPredict` takes (`tool-search-tool-2025-10-19`, `web-search-2025-03-05`,
/// BerriAI/litellm#39597), and these three are the ones Claude Code itself sends there.
pub const COUNT_TOKENS_BETAS: &[&str] = &[
    "claude-code-20250219",
    "interleaved-thinking-2025-05-14",
    "context-management-2025-06-27",
];

/// `{prefix}/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:{action}`;
/// `prefix` is the API version path (`/v1`) under the endpoint.
pub fn path(prefix: &str, project: &str, region: &str, call: &UpstreamCall<'_>) -> String {
    let (model, action) = match call.operation {
        Operation::CountTokens => (COUNT_TOKENS_MODEL.to_string(), "rawPredict"),
        Operation::Messages => (
            // Model versions follow `@` (`claude-sonnet-4-5@20250929`), legal in a segment.
            encode_segment(call.model, b"@"),
            if call.stream {
                "streamRawPredict"
            } else {
                "rawPredict"
            },
        ),
    };
    format!(
        "{prefix}/projects/{}/locations/{}/publishers/anthropic/models/{model}:{action}",
        encode_segment(project, &[]),
        encode_segment(region, &[]),
    )
}

/// Headers before authentication: the client's (minus what Vertex must not get), JSON
/// content negotiation, and the betas.
pub fn headers(call: &UpstreamCall<'_>) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(call.client_headers.len() + 4);
    forward_client_headers(call.client_headers, &mut h, withheld);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Anthropic's Vertex SDKs send `application/json` for streaming calls too.
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let betas: Vec<&str> = call
        .betas
        .iter()
        .map(String::as_str)
        .filter(|b| call.operation == Operation::Messages || COUNT_TOKENS_BETAS.contains(b))
        .collect();
    if !betas.is_empty()
        && let Ok(v) = HeaderValue::from_str(&betas.join(","))
    {
        h.insert(&ANTHROPIC_BETA, v);
    }
    h
}

/// Client headers Vertex does not get: every `anthropic-*` (the betas are re-added from the
/// filtered list; the API version is the body's `anthropic_version`, and Anthropic's Vertex
/// SDKs send no `anthropic-version` header), `x-goog-*` (e.g. `x-goog-user-project` would
/// move billing to another project), the Azure-style `api-key`, and the content negotiation
/// set here.
fn withheld(name: &str) -> bool {
    name.starts_with("anthropic-")
        || name.starts_with("x-goog-")
        || name == "api-key"
        || name == "content-type"
        || name == "accept"
}
