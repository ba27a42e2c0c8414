//! Phase 6, forward: send the request upstream and relay the answer back.
//!
//! Non-streaming answers are read whole (they are generated whole anyway), settled, then sent,
//! so their journal record exists before the client has the first byte. Streams are relayed
//! frame by frame by [`StreamRelay`].

use super::route::Routed;
use super::settle::Recorder;
use super::stream_relay::StreamRelay;
use crate::error::GatewayError;
use crate::state::AppState;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use tollgate_wire::anthropic::read_response;
use tollgate_wire::headers::{HOP_BY_HOP, REQUEST_ID};

/// Non-streaming upstream answers larger than this are refused rather than buffered.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;

/// Runs the forward phase (and, for non-streaming answers, settle).
pub async fn forward(
    state: &Arc<AppState>,
    rec: &mut Recorder,
    routed: Routed,
) -> Result<Response<Body>, GatewayError> {
    let accepted = routed.admitted.classified.auth.accepted;
    // One attempt per plan in this slice; fallback iterates here, before the first byte.
    let Some(target) = routed.plan.attempts.first() else {
        return Err(GatewayError::not_found("no route for this request"));
    };
    rec.set_provider(&target.name);
    let upstream_req = target
        .request(
            accepted.method,
            &accepted.api_path_and_query,
            &accepted.headers,
            accepted.body,
        )
        .map_err(|e| GatewayError::bad_gateway(format!("cannot build upstream request: {e}")))?;
    let idle = state.limits.upstream_idle_timeout;
    let resp = match tokio::time::timeout(idle, state.upstream_client().request(upstream_req)).await
    {
        Err(_) => {
            return Err(GatewayError::gateway_timeout(format!(
                "provider '{}' sent no response within {} s",
                target.name,
                idle.as_secs()
            )));
        }
        Ok(Err(e)) => {
            return Err(GatewayError::bad_gateway(format!(
                "provider '{}' could not be reached: {}",
                target.name,
                error_chain(&e)
            )));
        }
        Ok(Ok(r)) => r,
    };
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    rec.set_upstream_request_id(parts.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()));
    let mut out = Response::builder().status(status);
    if let Some(h) = out.headers_mut() {
        copy_response_headers(&parts.headers, h);
        rec.set_request_id_header(h);
    }
    if is_event_stream(&parts.headers) {
        rec.mark_first_byte();
        let relay = StreamRelay::new(body, rec.detach(), idle, status.as_u16());
        return out
            .body(Body::new(relay))
            .map_err(|e| GatewayError::bad_gateway(format!("invalid upstream response: {e}")));
    }
    let bytes = read_whole(body, idle).await.map_err(|m| {
        GatewayError::bad_gateway(format!("provider '{}' response failed: {m}", target.name))
    })?;
    let facts = read_response(&bytes);
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
