//! Who is calling: an admin credential with its role, or a user's own gateway key acting as
//! a member. Unknown or missing credentials are answered with 401 before any handler runs.

use super::{AdminError, AdminResult, blocking};
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use tollgate_govern::hash_key;
use tollgate_govern::roles::{Actor, Place, Role};
use tollgate_store::SERVICE_USER_PREFIX;

fn unauthenticated(msg: &str) -> Response {
    AdminError(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        msg.to_string(),
    )
    .into_response()
}

/// Resolves the Bearer token to an [`Actor`] and hands it to the handler.
pub async fn require_actor(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return unauthenticated(
            "admin credential required: Authorization: Bearer <admin key> (see <data-dir>/admin.key)",
        );
    };
    let hash = hash_key(token);
    let admin = match blocking(&state, move |s| s.admin_by_hash(&hash)).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let actor = if let Some(row) = admin {
        Actor {
            id: row.id.clone(),
            name: row.name.clone().unwrap_or_else(|| row.id.clone()),
            role: row.role,
            place: row.place(),
            scope_label: row.scope_label(),
        }
    } else if let Some(p) = state.identities.authenticate(token) {
        // A user's own gateway key reads its usage and manages its keys; a team's service key
        // belongs to no person and administers nothing.
        if p.user_id.starts_with(SERVICE_USER_PREFIX) {
            return unauthenticated(
                "a service key cannot use the admin API; use an admin credential",
            );
        }
        Actor {
            id: p.key_id.clone(),
            name: p.user.clone(),
            role: Role::Member,
            place: Place {
                workspace_id: p.workspace_id.clone(),
                team_id: p.team_id.clone(),
                user_id: Some(p.user_id.clone()),
            },
            scope_label: format!("user {}", p.user),
        }
    } else {
        return unauthenticated("invalid admin credential: it is unknown or has been revoked");
    };
    req.extensions_mut().insert(Arc::new(actor));
    next.run(req).await
}

/// `GET /whoami`: the caller's role and scope.
pub async fn whoami(Extension(actor): Extension<Arc<Actor>>) -> AdminResult {
    Ok(axum::Json(json!({
        "id": actor.id,
        "name": actor.name,
        "role": actor.role,
        "scope": actor.scope_label,
        "workspace_id": actor.place.workspace_id,
        "team_id": actor.place.team_id,
        "user_id": actor.place.user_id,
    })))
}
