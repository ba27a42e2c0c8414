//! `GET /v1/models`: the models the caller may use, in the Anthropic list format.

use super::settle::Recorder;
use crate::state::AppState;
use axum::body::Body;
use http::{HeaderValue, Response};

/// Lists every priced model and every catalogue name (all of them are allowed until model
/// policies exist). `openai_shape` answers in the OpenAI list format, for clients that send no
/// `anthropic-version`.
pub fn list(state: &AppState, rec: &mut Recorder, openai_shape: bool) -> Response<Body> {
    let mut ids: Vec<&str> = state.prices.models().chain(state.catalog.names()).collect();
    ids.sort_unstable();
    ids.dedup();
    if openai_shape {
        let data: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "tollgate"}))
            .collect();
        let body = serde_json::json!({"object": "list", "data": data}).to_string();
        return respond(rec, body);
    }
    let data: Vec<serde_json::Value> = ids
        .into_iter()
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
    respond(rec, body)
}

fn respond(rec: &mut Recorder, body: String) -> Response<Body> {
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
