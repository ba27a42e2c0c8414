//! `GET /v1/models`: the models the caller may use, in the Anthropic list format.

use super::settle::Recorder;
use crate::state::AppState;
use axum::body::Body;
use http::{HeaderValue, Response};

/// Lists every priced model (all of them are allowed until model policies exist).
pub fn list(state: &AppState, rec: &mut Recorder) -> Response<Body> {
    let data: Vec<serde_json::Value> = state
        .prices
        .models()
        .map(|id| {
            let name = state
                .prices
                .lookup(id)
                .map(|p| p.display_name.clone())
                .unwrap_or_else(|| id.to_string());
            serde_json::json!({
                "type": "model",
                "id": id,
                "display_name": name,
                "created_at": "2025-01-01T00:00:00Z",
            })
        })
        .collect();
    let first = data
        .first()
        .and_then(|m| m["id"].as_str())
        .map(str::to_string);
    let last = data
        .last()
        .and_then(|m| m["id"].as_str())
        .map(str::to_string);
    let body = serde_json::json!({
        "data": data,
        "has_more": false,
        "first_id": first,
        "last_id": last,
    })
    .to_string();
    let len = body.len();
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rec.set_request_id_header(resp.headers_mut());
    rec.finish_plain(200, len);
    resp
}
