//! The admin API under `/admin/v1/`: workspaces, teams, users, gateway keys, admin
//! credentials, policies, provider credentials, the journal, spend and the audit log.
//!
//! Every call but `/openapi.json` needs a credential as a Bearer token: an admin credential
//! (with its role) or a user's own gateway key (acting as a member). Each handler asks
//! `tollgate_govern::roles` whether the actor may act on the target, answers a refusal with
//! 403 `permission_error`, and writes every change to the audit log with the target before and
//! after. Changes take effect on the next request.
//!
//! # Layout
//! - `auth`: the credential → actor middleware, `whoami`.
//! - `entities`: workspaces, teams, users, gateway keys.
//! - `admins`: admin credentials.
//! - `policies`: stored policies, with the budget caps of team and workspace admins.
//! - `credentials`: provider credentials and the master key.
//! - `reports`: the journal, spend and the audit log, as each role may see them.
//! - `openapi`: the OpenAPI document of all of the above.

mod admins;
mod auth;
mod credentials;
mod entities;
mod openapi;
mod policies;
mod reports;

use crate::state::AppState;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Router, middleware};
use serde_json::{Value, json};
use std::sync::Arc;
use tollgate_govern::roles::{Actor, Decision, Place};
use tollgate_store::{AuditRecord, Store, StoreError};

pub use reports::since_to_unix_ms;

/// An admin API failure, rendered as `{"error":{"type","message"}}`.
pub struct AdminError(StatusCode, &'static str, String);

impl AdminError {
    /// 400: the caller's input is unusable.
    pub fn bad(msg: impl Into<String>) -> AdminError {
        AdminError(StatusCode::BAD_REQUEST, "invalid_request", msg.into())
    }

    /// 403: the actor's role does not allow it.
    pub fn forbidden(msg: impl Into<String>) -> AdminError {
        AdminError(StatusCode::FORBIDDEN, "permission_error", msg.into())
    }

    /// 404: the target does not exist.
    pub fn not_found(msg: impl Into<String>) -> AdminError {
        AdminError(StatusCode::NOT_FOUND, "not_found", msg.into())
    }

    /// 503: a backing service (the counter store) cannot answer right now.
    pub fn unavailable(msg: impl Into<String>) -> AdminError {
        AdminError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", msg.into())
    }

    fn internal(msg: impl Into<String>) -> AdminError {
        AdminError(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg.into())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error": {"type": self.1, "message": self.2}})),
        )
            .into_response()
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AdminError::not_found(format!("{m} not found")),
            StoreError::Conflict(m) => AdminError(
                StatusCode::CONFLICT,
                "conflict",
                format!("{m} already exists"),
            ),
            StoreError::Invalid(m) => AdminError::bad(m),
            StoreError::Secret(e) => {
                // The message names rows and key versions, never secrets; still, the client
                // gets only the category.
                tracing::error!(error = %e, "provider credential store failure");
                AdminError::internal("provider credential store error (see the gateway log)")
            }
            StoreError::Db(e) => {
                tracing::error!(error = %e, "admin store failure");
                AdminError::internal("database error")
            }
        }
    }
}

type AdminResult = Result<Json<Value>, AdminError>;

/// Turns an authorisation decision into `Ok` or a 403.
fn check(d: Decision) -> Result<(), AdminError> {
    d.into_result().map_err(AdminError::forbidden)
}

/// The admin routes as mounted: every `at` both mounts a handler and records it, so the
/// OpenAPI test and the role matrix see exactly what is served.
struct Mount {
    router: Router<Arc<AppState>>,
    routes: Vec<(&'static str, &'static str)>,
}

impl Mount {
    fn at(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: MethodRouter<Arc<AppState>>,
    ) -> Self {
        self.router = self.router.route(path, handler);
        self.routes.push((method, path));
        self
    }
}

fn mount() -> Mount {
    Mount {
        router: Router::new(),
        routes: Vec::new(),
    }
    .at("GET", "/whoami", get(auth::whoami))
    .at("GET", "/workspaces", get(entities::list_workspaces))
    .at("POST", "/workspaces", post(entities::create_workspace))
    .at("GET", "/teams", get(entities::list_teams))
    .at("POST", "/teams", post(entities::create_team))
    .at("GET", "/users", get(entities::list_users))
    .at("POST", "/users", post(entities::create_user))
    .at("GET", "/keys", get(entities::list_keys))
    .at("POST", "/keys", post(entities::create_key))
    .at("DELETE", "/keys/{id}", delete(entities::revoke_key))
    .at("GET", "/admins", get(admins::list_admins))
    .at("POST", "/admins", post(admins::create_admin))
    .at("DELETE", "/admins/{id}", delete(admins::revoke_admin))
    .at("GET", "/policies", get(policies::list_policies))
    .at("POST", "/policies", post(policies::create_policy))
    .at("GET", "/policies/{id}", get(policies::get_policy))
    .at("PUT", "/policies/{id}", put(policies::replace_policy))
    .at("DELETE", "/policies/{id}", delete(policies::delete_policy))
    .at("GET", "/policies/{id}/usage", get(policies::policy_usage))
    .at(
        "POST",
        "/policies/{id}/reset",
        post(policies::reset_policy_budgets),
    )
    .at("GET", "/providers", get(credentials::list_providers))
    .at(
        "PUT",
        "/providers/{name}/credentials",
        put(credentials::put_credential),
    )
    .at(
        "DELETE",
        "/providers/{name}/credentials",
        delete(credentials::delete_credential),
    )
    .at(
        "POST",
        "/master-key/rotate",
        post(credentials::rotate_master_key),
    )
    .at("GET", "/requests", get(reports::list_requests))
    .at("GET", "/spend", get(reports::spend))
    .at("GET", "/audit", get(reports::audit))
    .at("GET", "/alerts", get(reports::alerts))
}

/// Path of the OpenAPI document, served without a credential.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Every authenticated admin route as `(method, path)` relative to `/admin/v1`, in the form the
/// OpenAPI document uses (`{id}`).
pub fn mounted_routes() -> Vec<(&'static str, &'static str)> {
    mount().routes
}

/// The admin routes, to be nested under `/admin/v1`.
pub fn router(state: Arc<AppState>) -> Router {
    mount()
        .router
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_actor,
        ))
        // Added after the layer: the API description is public.
        .route(OPENAPI_PATH, get(openapi::document))
        .with_state(state)
}

/// Runs a store call off the async runtime.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AdminError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|_| AdminError::internal("admin task failed"))?
        .map_err(AdminError::from)
}

/// Runs a journal query off the async runtime, after every request finished so far is
/// committed (read-your-writes for scripts that check the journal right after a request).
async fn journal_read<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&tollgate_ledger::journal::JournalReader) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, AdminError> {
    let (reader, journal) = (state.journal_reader.clone(), state.journal.clone());
    tokio::task::spawn_blocking(move || {
        journal.flush();
        f(&reader)
    })
    .await
    .map_err(|_| AdminError::internal("query task failed"))?
    .map_err(|e| AdminError::internal(e.to_string()))
}

/// What was changed, for the audit log.
struct Change<'a> {
    action: &'a str,
    target: &'a str,
    place: &'a Place,
    before: Option<Value>,
    after: Option<Value>,
}

/// Writes the audit entry of a change.
async fn audit(state: &Arc<AppState>, actor: &Arc<Actor>, c: Change<'_>) -> Result<(), AdminError> {
    let (actor, action, target, place) = (
        actor.clone(),
        c.action.to_string(),
        c.target.to_string(),
        c.place.clone(),
    );
    let (before, after) = (c.before, c.after);
    blocking(state, move |s| {
        s.record_audit(&AuditRecord {
            actor: &actor,
            action: &action,
            target: &target,
            place: &place,
            before,
            after,
        })
    })
    .await
}

/// Makes a key, user or team change visible to the request path (identities and the policies
/// that name them).
async fn refresh_request_path(state: &Arc<AppState>) -> Result<(), AdminError> {
    let st = state.clone();
    blocking(state, move |_| {
        st.refresh_identities()?;
        st.refresh_policies()
    })
    .await
}

/// Reads a JSON body, answering unusable ones with 400 and the parser's message, or 413 when
/// it is over the admin API's body limit.
fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, AdminError> {
    body.map(|Json(b)| b).map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AdminError(e.status(), "request_too_large", e.body_text()),
        _ => AdminError::bad(e.body_text()),
    })
}
