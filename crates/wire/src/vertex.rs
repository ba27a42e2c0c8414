//! Vertex AI rawPredict envelopes for Anthropic models.
//!
//! # Format
//! - Messages: `POST /v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:rawPredict`
//!   (or `:streamRawPredict`), on host `{location}-aiplatform.googleapis.com`
//!   (`aiplatform.googleapis.com` for the `global` location). The body is the Messages body
//!   without `model` (it is in the path), with `stream` kept and
//!   `"anthropic_version": "vertex-2023-10-16"` added. Betas stay in the `anthropic-beta`
//!   header, as Anthropic's Vertex SDKs send them; unlike Bedrock there is no body field.
//! - Token counting: `POST …/publishers/anthropic/models/count-tokens:rawPredict`, the Messages
//!   count_tokens body with `model` kept in the body.
//! - Responses are the Anthropic ones unchanged: Message JSON, plain SSE, Anthropic error JSON.
//!
//! Model ids carry a version after `@` (`claude-sonnet-4-5@20250929`); `@` is legal in a path
//! segment and is sent as is.

use crate::bedrock::{
    TopLevel, as_opt_bool, as_string, json_string, percent_decode, percent_encode_keep,
};
use bytes::Bytes;

pub use crate::bedrock::EnvelopeError;

/// The `anthropic_version` Vertex requires in the body.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The model-path name of the token-counting endpoint.
pub const COUNT_TOKENS_MODEL: &str = "count-tokens";

/// A Messages request moved into the rawPredict envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexRequest {
    /// The Messages body without `model`, with `anthropic_version`.
    pub body: Bytes,
    /// The Messages `model`; the caller maps it to a Vertex model id for the path.
    pub model: String,
    /// Whether to call `:streamRawPredict`.
    pub stream: bool,
}

/// Moves an Anthropic Messages body into the Vertex rawPredict envelope: `model` (required, a
/// string) leaves the body, `stream` stays and is reported, `anthropic_version` is added unless
/// present. Every other member is kept byte for byte and in order.
pub fn messages_to_vertex_body(anthropic_body: &[u8]) -> Result<VertexRequest, EnvelopeError> {
    let mut top = TopLevel::parse(anthropic_body)?;
    let model = match top.remove("model") {
        Some(raw) => as_string("model", &raw)?,
        None => return Err(EnvelopeError::new("model", "is required")),
    };
    let stream = as_opt_bool("stream", top.get("stream"))?.unwrap_or(false);
    if top.get("anthropic_version").is_none() {
        top.set("anthropic_version", json_string(VERTEX_ANTHROPIC_VERSION));
    }
    Ok(VertexRequest {
        body: top.to_bytes(),
        model,
        stream,
    })
}

/// Moves a Vertex rawPredict body back into a Messages body (the Vertex ingress): drops
/// `anthropic_version`, puts `model` first and sets `stream` (in place when the body had it,
/// else last). Every other member is kept byte for byte and in order.
pub fn vertex_body_to_messages(
    body: &[u8],
    model: &str,
    stream: bool,
) -> Result<Bytes, EnvelopeError> {
    let mut top = TopLevel::parse(body)?;
    top.remove("anthropic_version");
    top.set_first("model", json_string(model));
    top.set("stream", stream.to_string());
    Ok(top.to_bytes())
}

/// The API host for a location: regional, or the global endpoint.
pub fn vertex_host(location: &str) -> String {
    if location == "global" {
        "aiplatform.googleapis.com".to_owned()
    } else {
        format!(
            "{}-aiplatform.googleapis.com",
            percent_encode_keep(location, &[])
        )
    }
}

/// The rawPredict path for `model`: `…/models/{model}:rawPredict` or `:streamRawPredict`.
pub fn vertex_path(project: &str, region: &str, model: &str, stream: bool) -> String {
    let action = if stream {
        "streamRawPredict"
    } else {
        "rawPredict"
    };
    format!(
        "{}/{}:{action}",
        models_prefix(project, region),
        segment(model)
    )
}

/// The token-counting path: `…/models/count-tokens:rawPredict` (the model goes in the body).
pub fn vertex_count_tokens_path(project: &str, region: &str) -> String {
    format!(
        "{}/{COUNT_TOKENS_MODEL}:rawPredict",
        models_prefix(project, region)
    )
}

fn models_prefix(project: &str, region: &str) -> String {
    format!(
        "/v1/projects/{}/locations/{}/publishers/anthropic/models",
        segment(project),
        segment(region)
    )
}

/// A path segment: `@` (model versions) stays, anything that could change the path's structure
/// (`/`, `:`, `?`, `#`, `%`) is escaped.
fn segment(s: &str) -> String {
    percent_encode_keep(s, b"@")
}

/// What a Vertex ingress path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VertexAction {
    RawPredict,
    StreamRawPredict,
    /// `count-tokens:rawPredict`; the model is in the body.
    CountTokens,
}

/// A parsed Vertex ingress path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexPath {
    pub project: String,
    pub location: String,
    /// The decoded model id; `None` for [`VertexAction::CountTokens`].
    pub model: Option<String>,
    pub action: VertexAction,
}

impl VertexPath {
    /// Whether the response streams.
    pub fn stream(&self) -> bool {
        self.action == VertexAction::StreamRawPredict
    }
}

/// Parses `/v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict`,
/// `:streamRawPredict` and `…/models/count-tokens:rawPredict`. A query string is ignored; any
/// mount prefix must already be stripped. Segments are percent-decoded (`%40` → `@`).
pub fn parse_vertex_path(path: &str) -> Result<VertexPath, EnvelopeError> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let bad = || {
        EnvelopeError::new(
            "path",
            "expected /v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:rawPredict or :streamRawPredict",
        )
    };
    let parts: Vec<&str> = path.split('/').collect();
    let [
        "",
        "v1",
        "projects",
        project,
        "locations",
        location,
        "publishers",
        "anthropic",
        "models",
        last,
    ] = parts.as_slice()
    else {
        return Err(bad());
    };
    // The method follows the last `:`; model ids themselves never contain one.
    let (raw_model, method) = last.rsplit_once(':').ok_or_else(bad)?;
    let decode = |s: &str| {
        percent_decode(s).filter(|d| !d.is_empty()).ok_or_else(|| {
            EnvelopeError::new(
                "path",
                "a segment is empty or not valid percent-encoded UTF-8",
            )
        })
    };
    let (project, location, model) = (decode(project)?, decode(location)?, decode(raw_model)?);
    let (model, action) = match method {
        "rawPredict" if model == COUNT_TOKENS_MODEL => (None, VertexAction::CountTokens),
        "rawPredict" => (Some(model), VertexAction::RawPredict),
        "streamRawPredict" => (Some(model), VertexAction::StreamRawPredict),
        _ => return Err(bad()),
    };
    Ok(VertexPath {
        project,
        location,
        model,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_body_moves_into_the_envelope() {
        let body = br#"{"model":"claude-sonnet-4-5@20250929","messages":[{"role":"user","content":"hi"}],"max_tokens":1e3,"stream":true,"x":{"y":null}}"#;
        let r = messages_to_vertex_body(body).unwrap();
        assert_eq!(r.model, "claude-sonnet-4-5@20250929");
        assert!(r.stream);
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":1e3,"stream":true,"x":{"y":null},"anthropic_version":"vertex-2023-10-16"}"#
        );
        let r = messages_to_vertex_body(br#"{"anthropic_version":"v","model":"m"}"#).unwrap();
        assert!(!r.stream);
        assert_eq!(&r.body[..], br#"{"anthropic_version":"v"}"#);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let field = |b: &[u8]| messages_to_vertex_body(b).unwrap_err().field;
        assert_eq!(field(br#"{}"#), "model");
        assert_eq!(field(br#"{"model":null}"#), "model");
        assert_eq!(field(br#"{"model":"m","stream":1}"#), "stream");
        assert_eq!(field(b"nope"), "body");
        assert_eq!(
            vertex_body_to_messages(b"[]", "m", true).unwrap_err().field,
            "body"
        );
        assert_eq!(
            messages_to_vertex_body(br#"{"model":7}"#)
                .unwrap_err()
                .to_string(),
            "model: must be a string"
        );
    }

    #[test]
    fn vertex_body_moves_back_to_messages() {
        let body = br#"{"anthropic_version":"vertex-2023-10-16","messages":[],"stream":false,"max_tokens":4}"#;
        let out = vertex_body_to_messages(body, "claude-x@1", true).unwrap();
        assert_eq!(
            &out[..],
            br#"{"model":"claude-x@1","messages":[],"stream":true,"max_tokens":4}"#
        );
        let original = br#"{"model":"claude-x@1","messages":[],"max_tokens":4,"stream":true}"#;
        let r = messages_to_vertex_body(original).unwrap();
        assert_eq!(
            &vertex_body_to_messages(&r.body, &r.model, r.stream).unwrap()[..],
            &original[..]
        );
    }

    #[test]
    fn paths_are_built_and_parsed() {
        let p = vertex_path("my-proj", "us-east5", "claude-sonnet-4-5@20250929", true);
        assert_eq!(
            p,
            "/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
        assert_eq!(
            parse_vertex_path(&p).unwrap(),
            VertexPath {
                project: "my-proj".into(),
                location: "us-east5".into(),
                model: Some("claude-sonnet-4-5@20250929".into()),
                action: VertexAction::StreamRawPredict,
            }
        );
        let p = vertex_path("p", "global", "claude-haiku-4-5@20251001", false);
        let parsed = parse_vertex_path(&p).unwrap();
        assert_eq!(parsed.action, VertexAction::RawPredict);
        assert!(!parsed.stream());
        let c = vertex_count_tokens_path("p", "europe-west1");
        assert_eq!(
            c,
            "/v1/projects/p/locations/europe-west1/publishers/anthropic/models/count-tokens:rawPredict"
        );
        let parsed = parse_vertex_path(&c).unwrap();
        assert_eq!(
            (parsed.model, parsed.action),
            (None, VertexAction::CountTokens)
        );
        // Escaped `@` and a query string are accepted.
        let parsed = parse_vertex_path(
            "/v1/projects/p/locations/l/publishers/anthropic/models/claude-x%401:rawPredict?alt=json",
        )
        .unwrap();
        assert_eq!(parsed.model.as_deref(), Some("claude-x@1"));
        // Hostile ids cannot change the path's shape.
        assert_eq!(
            vertex_path("p/../x", "l", "m:streamRawPredict?", false),
            "/v1/projects/p%2F..%2Fx/locations/l/publishers/anthropic/models/m%3AstreamRawPredict%3F:rawPredict"
        );
        assert_eq!(
            vertex_host("us-east5"),
            "us-east5-aiplatform.googleapis.com"
        );
        assert_eq!(vertex_host("global"), "aiplatform.googleapis.com");
    }

    #[test]
    fn bad_paths_are_rejected() {
        for bad in [
            "/v1/projects/p/locations/l/publishers/anthropic/models/m",
            "/v1/projects/p/locations/l/publishers/google/models/m:rawPredict",
            "/v1/projects/p/locations/l/publishers/anthropic/models/m:predict",
            "/v1/projects/p/locations/l/publishers/anthropic/models/:rawPredict",
            "/v1/projects//locations/l/publishers/anthropic/models/m:rawPredict",
            "/v1/projects/p/locations/l/publishers/anthropic/models/m/x:rawPredict",
            "/v1beta1/projects/p/locations/l/publishers/anthropic/models/m:rawPredict",
            "/v1/projects/p/locations/l/publishers/anthropic/models/m%zz:rawPredict",
            "",
        ] {
            assert_eq!(parse_vertex_path(bad).unwrap_err().field, "path", "{bad}");
        }
    }
}
