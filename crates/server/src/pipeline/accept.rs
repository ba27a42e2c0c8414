//! Phase 1, accept: map the URL to an endpoint, enforce size and time limits, decode the body.

use super::dialect::{BEDROCK_MOUNT, VERTEX_MOUNT};
use super::settle::Recorder;
use crate::decode::decode_body;
use crate::error::GatewayError;
use crate::state::AppState;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use tollgate_wire::bedrock::parse_bedrock_path;
use tollgate_wire::vertex::{VertexAction, parse_vertex_path};

/// The model API endpoints of the Anthropic dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Messages,
    CountTokens,
    Models,
}

/// How the request arrived, with what its path says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingress {
    Anthropic,
    OpenAi,
    /// `/bedrock/model/{id}/invoke[-with-response-stream]`.
    Bedrock {
        model: String,
        stream: bool,
    },
    /// `/vertex/v1/projects/…/models/{model}:rawPredict|:streamRawPredict|count-tokens`.
    Vertex {
        model: Option<String>,
        stream: bool,
    },
}

/// A request whose endpoint is known and whose body is read and decoded.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub endpoint: Endpoint,
    pub ingress: Ingress,
    pub method: Method,
    /// The path from `/v1/` on, with the query: what the upstream receives.
    pub api_path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Recognises the Bedrock and Vertex mounts and the OpenAI chat path, else the Anthropic
/// endpoints (see [`endpoint_of`]). Returns the endpoint, the ingress, and the API path the
/// Anthropic upstream gets.
pub fn route_path(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<(Endpoint, Ingress, String), GatewayError> {
    let post_only = |what: &str| {
        if method == Method::POST {
            Ok(())
        } else {
            Err(GatewayError::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                crate::error::ErrorKind::InvalidRequest,
                format!("method {method} is not allowed on {what}"),
            ))
        }
    };
    if let Some(rest) = path.strip_prefix(BEDROCK_MOUNT) {
        post_only(path)?;
        let p = parse_bedrock_path(rest).map_err(|e| GatewayError::not_found(e.to_string()))?;
        let ingress = Ingress::Bedrock {
            model: p.model_id,
            stream: p.stream,
        };
        return Ok((Endpoint::Messages, ingress, "/v1/messages".into()));
    }
    if let Some(rest) = path.strip_prefix(VERTEX_MOUNT) {
        post_only(path)?;
        // The Vertex SDKs append `/projects/…` to the base URL, so the mount works with and
        // without the API version in it.
        let with_version;
        let rest = if rest.starts_with("/projects/") {
            with_version = format!("/v1{rest}");
            with_version.as_str()
        } else {
            rest
        };
        let p = parse_vertex_path(rest).map_err(|e| GatewayError::not_found(e.to_string()))?;
        let stream = p.stream();
        let count = p.action == VertexAction::CountTokens;
        let ingress = Ingress::Vertex {
            model: p.model,
            stream,
        };
        return Ok(if count {
            (
                Endpoint::CountTokens,
                ingress,
                "/v1/messages/count_tokens".into(),
            )
        } else {
            (Endpoint::Messages, ingress, "/v1/messages".into())
        });
    }
    if path.ends_with("/v1/chat/completions") {
        post_only(path)?;
        return Ok((Endpoint::Messages, Ingress::OpenAi, "/v1/messages".into()));
    }
    let (endpoint, at) = endpoint_of(method, path)?;
    let api = match query {
        Some(q) => format!("{}?{q}", &path[at..]),
        None => path[at..].to_string(),
    };
    Ok((endpoint, Ingress::Anthropic, api))
}

/// Recognises `[prefix]/v1/messages`, `[prefix]/v1/messages/count_tokens` and
/// `[prefix]/v1/models`; any path prefix is allowed, as Claude Code keeps the base URL's path.
pub fn endpoint_of(method: &Method, path: &str) -> Result<(Endpoint, usize), GatewayError> {
    let at = path.rfind("/v1/").ok_or_else(unknown(path))?;
    let endpoint = match (&path[at..], method) {
        ("/v1/messages", &Method::POST) => Endpoint::Messages,
        ("/v1/messages/count_tokens", &Method::POST) => Endpoint::CountTokens,
        ("/v1/models", &Method::GET) => Endpoint::Models,
        ("/v1/messages" | "/v1/messages/count_tokens" | "/v1/models", m) => {
            return Err(GatewayError::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                crate::error::ErrorKind::InvalidRequest,
                format!("method {m} is not allowed on {path}"),
            ));
        }
        _ => return Err(unknown(path)()),
    };
    Ok((endpoint, at))
}

fn unknown(path: &str) -> impl FnOnce() -> GatewayError + '_ {
    move || GatewayError::not_found(format!("no such endpoint: {path}"))
}

/// Runs the accept phase.
pub async fn accept(
    state: &AppState,
    rec: &mut Recorder,
    req: Request<Body>,
) -> Result<Accepted, GatewayError> {
    let (parts, body) = req.into_parts();
    let (endpoint, ingress, api_path_and_query) =
        route_path(&parts.method, parts.uri.path(), parts.uri.query())?;
    let max = state.limits.max_body_bytes;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let raw = tokio::time::timeout(
        state.limits.request_body_timeout,
        read_body(body, declared, max),
    )
    .await
    .map_err(|_| {
        GatewayError::new(
            http::StatusCode::REQUEST_TIMEOUT,
            crate::error::ErrorKind::InvalidRequest,
            "request body was not received in time",
        )
    })??;
    rec.bytes_in(raw.len());
    let body = decode_body(&parts.headers, raw, max)?;
    rec.capture_request_body(&body);
    Ok(Accepted {
        endpoint,
        ingress,
        method: parts.method,
        api_path_and_query,
        headers: parts.headers,
        body,
    })
}

/// The most a body's declared length reserves before its bytes arrive, so a client that
/// declares 32 MiB and stalls does not make the gateway hold 32 MiB.
const MAX_RESERVE: usize = 1 << 20;

/// Reads a whole request body of at most `max` bytes. A body that arrives in one piece is kept
/// as it came. One that arrives in pieces is copied into one buffer as each piece arrives, so
/// each piece (a slice of the connection's read buffer) is released at once: collecting the
/// pieces first would hold them all and then the copy, twice the body's size at the peak.
async fn read_body(
    mut body: Body,
    declared: Option<usize>,
    max: usize,
) -> Result<Bytes, GatewayError> {
    let mut whole = Bytes::new();
    let mut pieces: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| GatewayError::invalid(format!("request body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let have = pieces.as_ref().map_or(whole.len(), BytesMut::len);
        if have + data.len() > max {
            return Err(too_large(max));
        }
        match &mut pieces {
            Some(buf) => buf.extend_from_slice(&data),
            None if whole.is_empty() => whole = data,
            None => {
                let reserve = declared
                    .unwrap_or(0)
                    .min(MAX_RESERVE)
                    .max(have + data.len());
                let mut buf = BytesMut::with_capacity(reserve);
                buf.extend_from_slice(&whole);
                buf.extend_from_slice(&data);
                whole = Bytes::new();
                pieces = Some(buf);
            }
        }
    }
    Ok(pieces.map_or(whole, BytesMut::freeze))
}

fn too_large(max: usize) -> GatewayError {
    GatewayError::too_large(format!(
        "request body exceeds the gateway limit of {max} bytes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_with_and_without_prefix() {
        let e = |m: Method, p: &str| endpoint_of(&m, p).map(|x| x.0);
        assert_eq!(e(Method::POST, "/v1/messages"), Ok(Endpoint::Messages));
        assert_eq!(
            e(Method::POST, "/gw/anthropic/v1/messages"),
            Ok(Endpoint::Messages)
        );
        assert_eq!(
            e(Method::POST, "/v1/messages/count_tokens"),
            Ok(Endpoint::CountTokens)
        );
        assert_eq!(e(Method::GET, "/x/v1/models"), Ok(Endpoint::Models));
        assert_eq!(
            e(Method::GET, "/v1/messages").map_err(|e| e.status),
            Err(http::StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            e(Method::POST, "/v2/other").map_err(|e| e.status),
            Err(http::StatusCode::NOT_FOUND)
        );
    }

    #[test]
    fn dialect_mounts() {
        let r = |p: &str| route_path(&Method::POST, p, None).map(|x| (x.0, x.1));
        assert_eq!(
            r("/bedrock/model/us.anthropic.claude-x-v1%3A0/invoke-with-response-stream"),
            Ok((
                Endpoint::Messages,
                Ingress::Bedrock {
                    model: "us.anthropic.claude-x-v1:0".into(),
                    stream: true
                }
            ))
        );
        assert_eq!(
            r(
                "/vertex/v1/projects/p/locations/global/publishers/anthropic/models/claude-x@1:rawPredict"
            ),
            Ok((
                Endpoint::Messages,
                Ingress::Vertex {
                    model: Some("claude-x@1".into()),
                    stream: false
                }
            ))
        );
        assert_eq!(
            r("/v1/chat/completions"),
            Ok((Endpoint::Messages, Ingress::OpenAi))
        );
    }
}
