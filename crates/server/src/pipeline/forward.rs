//! Phase 6, forward: send the request upstream and relay the answer back.
//!
//! Non-streaming answers are read whole (they are generated whole anyway), settled, then sent,
//! so their journal record exists before the client has the first byte. Streams are relayed
//! frame by frame by [`StreamRelay`]. An Anthropic upstream gets the client's bytes unchanged;
//! other upstreams go through [`convert`](super::convert).

use super::accept::{Accepted, Endpoint};
use super::convert;
use super::dialect::{self, ClientSide};
use super::route::Routed;
use super::settle::Recorder;
use super::stream_relay::StreamRelay;
use crate::error::GatewayError;
use crate::state::AppState;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use tollgate_providers::{Operation, Upstream, UpstreamBody, UpstreamCall};
use tollgate_routing::ModelOnProvider;
use tollgate_wire::anthropic::read_response;
use tollgate_wire::headers::{ANTHROPIC_BETA, HOP_BY_HOP, REQUEST_ID};

/// Non-streaming upstream answers larger than this are refused rather than buffered.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;

/// Runs the forward phase (and, for non-streaming answers, settle).
pub async fn forward(
    state: &Arc<AppState>,
    rec: &mut Recorder,
    routed: Routed,
) -> Result<Response<Body>, GatewayError> {
    let classified = routed.admitted.classified;
    let client = classified.client;
    let accepted = classified.auth.accepted;
    let stream = classified.facts.stream;
    let requested = classified.facts.model.unwrap_or_default();
    // One attempt per plan in this slice; fallback iterates here, before the first byte.
    let Some(target) = routed.plan.attempts.first() else {
        return Err(GatewayError::not_found("no route for this request"));
    };
    rec.set_provider(target.name());
    let model_id = match state.catalog.on_provider(&requested, target.name()) {
        ModelOnProvider::Unlisted => requested.clone(),
        ModelOnProvider::Mapped { id, .. } => id.to_string(),
        ModelOnProvider::NotServed { name } => {
            return Err(GatewayError::not_found(format!(
                "model '{name}' is not served by provider '{}' (see [[models]] in the gateway config)",
                target.name()
            )));
        }
    };
    match target.as_ref() {
        Upstream::Anthropic(a) => {
            let body = if model_id == requested {
                accepted.body
            } else {
                convert::with_model(&accepted.body, &model_id, stream)?
            };
            let req = a
                .request(
                    accepted.method,
                    &accepted.api_path_and_query,
                    &accepted.headers,
                    body,
                )
                .map_err(|e| {
                    GatewayError::bad_gateway(format!("cannot build upstream request: {e}"))
                })?;
            relay(state, rec, target, req, stream, &client).await
        }
        other => {
            let req = prepare_converted(state, other, &accepted, &model_id, stream).await?;
            relay(state, rec, target, req, stream, &client).await
        }
    }
}

/// Builds the request for an upstream of another dialect: beta filtering, body conversion,
/// endpoint and credentials.
async fn prepare_converted(
    state: &AppState,
    upstream: &Upstream,
    accepted: &Accepted,
    model_id: &str,
    stream: bool,
) -> Result<http::Request<UpstreamBody>, GatewayError> {
    let count_tokens = accepted.endpoint == Endpoint::CountTokens;
    let header_betas: Vec<&str> = accepted
        .headers
        .get_all(ANTHROPIC_BETA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let betas = state
        .betas
        .get(upstream.name())
        .map(|t| t.filter(upstream.kind(), &header_betas))
        .unwrap_or_default();
    let body = convert::request_body(
        upstream,
        &accepted.body,
        model_id,
        stream,
        count_tokens,
        &betas,
    )?;
    let call = UpstreamCall {
        operation: if count_tokens {
            Operation::CountTokens
        } else {
            Operation::Messages
        },
        stream,
        model: model_id,
        body,
        client_headers: &accepted.headers,
        betas: &betas,
    };
    let prepared = match upstream {
        Upstream::Bedrock(b) => b.prepare(&call).await,
        Upstream::Vertex(v) => v.prepare(&call).await,
        Upstream::OpenAi(o) => o.prepare(&call).await,
        Upstream::Anthropic(_) => {
            return Err(GatewayError::bad_gateway(
                "the Anthropic upstream takes the pass-through path",
            ));
        }
    };
    prepared.map_err(|e| {
        if e.retryable {
            GatewayError::bad_gateway(format!("provider '{}': {e}", upstream.name()))
        } else {
            GatewayError::not_found(format!("provider '{}': {e}", upstream.name()))
        }
    })
}

/// Sends the request and relays the answer, converting it to Anthropic when needed.
async fn relay(
    state: &Arc<AppState>,
    rec: &mut Recorder,
    target: &Upstream,
    req: http::Request<UpstreamBody>,
    stream: bool,
    client: &ClientSide,
) -> Result<Response<Body>, GatewayError> {
    let client_model = client.model.as_str();
    let idle = state.limits.upstream_idle_timeout;
    let resp = match tokio::time::timeout(idle, state.upstream_client().request(req)).await {
        Err(_) => {
            return Err(GatewayError::gateway_timeout(format!(
                "provider '{}' sent no response within {} s",
                target.name(),
                idle.as_secs()
            )));
        }
        Ok(Err(e)) => {
            return Err(GatewayError::bad_gateway(format!(
                "provider '{}' could not be reached: {}",
                target.name(),
                error_chain(&e)
            )));
        }
        Ok(Ok(r)) => r,
    };
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let same_dialect = matches!(target, Upstream::Anthropic(_));
    rec.set_upstream_request_id(
        parts
            .headers
            .get(REQUEST_ID)
            .or_else(|| parts.headers.get("x-amzn-requestid"))
            .or_else(|| parts.headers.get("x-request-id"))
            .and_then(|v| v.to_str().ok()),
    );
    let mut out = Response::builder().status(status);
    if let Some(h) = out.headers_mut() {
        if same_dialect {
            copy_response_headers(&parts.headers, h);
        } else if let Some(v) = parts.headers.get(http::header::RETRY_AFTER) {
            h.insert(http::header::RETRY_AFTER, v.clone());
        }
        rec.set_request_id_header(h);
    }
    let streaming = if same_dialect {
        is_event_stream(&parts.headers)
    } else {
        stream && status.is_success()
    };
    if streaming {
        if let Some(h) = out.headers_mut()
            && !same_dialect
        {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
        }
        let (encode, content_type) = dialect::stream_encoder(client);
        if let (Some(h), Some(ct)) = (out.headers_mut(), content_type) {
            h.insert(http::header::CONTENT_TYPE, ct);
            h.remove(http::header::CONTENT_LENGTH);
        }
        rec.mark_first_byte();
        let decode = convert::stream_decoder(target, client_model, rec.id());
        let relay = StreamRelay::new(body, rec.detach(), idle, status.as_u16())
            .with_transforms(decode, encode);
        return out
            .body(Body::new(relay))
            .map_err(|e| GatewayError::bad_gateway(format!("invalid upstream response: {e}")));
    }
    let bytes = read_whole(body, idle).await.map_err(|m| {
        GatewayError::bad_gateway(format!("provider '{}' response failed: {m}", target.name()))
    })?;
    let (status, bytes) = if same_dialect {
        (status, bytes)
    } else if status.is_success() {
        (status, convert::response_body(target, bytes, client_model)?)
    } else {
        convert::error_response(target, status, &parts.headers, &bytes)
    };
    if !same_dialect && let Some(h) = out.headers_mut() {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let facts = read_response(&bytes);
    let (status, extra, bytes) = dialect::whole_response(client, status, bytes);
    let mut out = out.status(status);
    if let Some(h) = out.headers_mut() {
        for (name, value) in extra {
            h.insert(name, value);
        }
    }
    rec.mark_first_byte();
    rec.capture_response(&bytes);
    rec.finish_response(status.as_u16(), &facts, bytes.len() as u64, None);
    out.body(Body::from(bytes))
        .map_err(|e| GatewayError::bad_gateway(format!("invalid upstream response: {e}")))
}

async fn read_whole(
    body: hyper::body::Incoming,
    idle: std::time::Duration,
) -> Result<Bytes, String> {
    match tokio::time::timeout(idle, Limited::new(body, MAX_UPSTREAM_BODY).collect()).await {
        Err(_) => Err(format!("no complete response within {} s", idle.as_secs())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

fn is_event_stream(h: &HeaderMap) -> bool {
    h.get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// Every upstream header except connection-level ones reaches the client: `retry-after`,
/// `x-should-retry`, `request-id` and the rate-limit headers included.
fn copy_response_headers(from: &HeaderMap, into: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            into.append(name.clone(), value.clone());
        }
    }
}

/// The innermost cause is the useful part of a connect error ("connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cur = c.source();
    }
    msg
}
