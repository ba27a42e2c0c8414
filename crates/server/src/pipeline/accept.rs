//! Phase 1, accept: map the URL to an endpoint, enforce size and time limits, decode the body.

use super::settle::Recorder;
use crate::decode::decode_body;
use crate::error::GatewayError;
use crate::state::AppState;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Limited};

/// The model API endpoints of the Anthropic dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Messages,
    CountTokens,
    Models,
}

/// A request whose endpoint is known and whose body is read and decoded.
#[derive(Debug)]
pub struct Accepted {
    pub endpoint: Endpoint,
    pub method: Method,
    /// The path from `/v1/` on, with the query: what the upstream receives.
    pub api_path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
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
    let (endpoint, at) = endpoint_of(&parts.method, parts.uri.path())?;
    let api_path_and_query = match parts.uri.query() {
        Some(q) => format!("{}?{q}", &parts.uri.path()[at..]),
        None => parts.uri.path()[at..].to_string(),
    };
    let max = state.limits.max_body_bytes;
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(too_large(max));
    }
    let collected = tokio::time::timeout(
        state.limits.request_body_timeout,
        Limited::new(body, max).collect(),
    )
    .await
    .map_err(|_| {
        GatewayError::new(
            http::StatusCode::REQUEST_TIMEOUT,
            crate::error::ErrorKind::InvalidRequest,
            "request body was not received in time",
        )
    })?;
    let raw = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large(max)),
        Err(e) => {
            return Err(GatewayError::invalid(format!(
                "request body could not be read: {e}"
            )));
        }
    };
    rec.bytes_in(raw.len());
    let body = decode_body(&parts.headers, raw, max)?;
    rec.capture_request_body(&body);
    Ok(Accepted {
        endpoint,
        method: parts.method,
        api_path_and_query,
        headers: parts.headers,
        body,
    })
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
}
