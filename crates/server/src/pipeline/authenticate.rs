//! Phase 2, authenticate: the gateway key → a principal, from the in-memory snapshot.

use super::accept::Accepted;
use crate::error::GatewayError;
use crate::state::AppState;
use http::HeaderMap;
use std::sync::Arc;
use tollgate_govern::Principal;
use tollgate_wire::headers::{X_API_KEY, X_TOLLGATE_API_KEY};

/// A request with a known caller.
#[derive(Debug)]
pub struct Authenticated {
    pub accepted: Accepted,
    pub principal: Arc<Principal>,
}

/// Candidate keys in the order they are tried: the gateway's own header, then the two
/// Anthropic client styles (Claude Code may send both when both variables are set).
fn candidates(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let own = headers
        .get(&X_TOLLGATE_API_KEY)
        .and_then(|v| v.to_str().ok());
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let api_key = headers.get(&X_API_KEY).and_then(|v| v.to_str().ok());
    // Azure-style OpenAI clients send `api-key`.
    let azure = headers.get("api-key").and_then(|v| v.to_str().ok());
    [own, bearer, api_key, azure]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Runs the authenticate phase.
pub fn authenticate(state: &AppState, accepted: Accepted) -> Result<Authenticated, GatewayError> {
    let mut saw_any = false;
    let mut found = None;
    for key in candidates(&accepted.headers) {
        saw_any = true;
        if let Some(principal) = state.identities.authenticate(key) {
            found = Some(principal);
            break;
        }
    }
    if let Some(principal) = found {
        return Ok(Authenticated {
            accepted,
            principal,
        });
    }
    Err(GatewayError::unauthenticated(if saw_any {
        "invalid gateway key: it is unknown or has been revoked; ask your gateway administrator for a key (tollgate keys create)"
    } else {
        "missing gateway key: send it as 'Authorization: Bearer <key>' (ANTHROPIC_AUTH_TOKEN), 'x-api-key' or 'x-tollgate-api-key'"
    }))
}
