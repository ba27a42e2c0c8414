//! The admin API under `/admin/v1/`: teams, users, gateway keys, the journal and spend.
//! Every call needs the admin credential as a Bearer token; every change is written to the
//! admin audit log and takes effect on the next request.

use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Router, middleware};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tollgate_govern::{generate_gateway_key, hash_key, keys::display_prefix};
use tollgate_ledger::journal::{JournalQuery, SpendBy};
use tollgate_store::{NewKey, Store, StoreError};

/// An admin API failure, rendered as `{"error":{"type","message"}}`.
pub struct AdminError(StatusCode, &'static str, String);

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
            StoreError::NotFound(m) => {
                AdminError(StatusCode::NOT_FOUND, "not_found", format!("{m} not found"))
            }
            StoreError::Conflict(m) => AdminError(
                StatusCode::CONFLICT,
                "conflict",
                format!("{m} already exists"),
            ),
            StoreError::Invalid(m) => AdminError(StatusCode::BAD_REQUEST, "invalid_request", m),
            StoreError::Secret(e) => {
                tracing::error!(error = %e, "admin secret failure");
                AdminError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "secret store error".into(),
                )
            }
            StoreError::Db(e) => {
                tracing::error!(error = %e, "admin store failure");
                AdminError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "database error".into(),
                )
            }
        }
    }
}

type AdminResult = Result<Json<Value>, AdminError>;

/// The admin routes, to be nested under `/admin/v1`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/teams", get(list_teams).post(create_team))
        .route("/users", get(list_users).post(create_user))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", delete(revoke_key))
        .route("/requests", get(list_requests))
        .route("/spend", get(spend))
        .route("/audit", get(audit))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
        .with_state(state)
}

async fn require_admin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = token.is_some_and(|t| state.admin_keys.load().contains(&hash_key(t.trim())));
    if !ok {
        return AdminError(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "admin credential required: Authorization: Bearer <admin key> (see <data-dir>/admin.key)".into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// Runs a store call off the async runtime.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AdminError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|_| {
            AdminError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "admin task failed".into(),
            )
        })?
        .map_err(AdminError::from)
}

/// Runs a journal query off the async runtime, after every request finished so far is
/// committed (read-your-writes for scripts that check the journal right after a request).
async fn journal_read<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&tollgate_ledger::journal::JournalReader) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, AdminError> {
    let (reader, journal) = (state.journal_reader.clone(), state.journal.clone());
    let internal = |m: String| AdminError(StatusCode::INTERNAL_SERVER_ERROR, "internal", m);
    tokio::task::spawn_blocking(move || {
        journal.flush();
        f(&reader)
    })
    .await
    .map_err(|_| internal("query task failed".into()))?
    .map_err(|e| internal(e.to_string()))
}

/// Writes the audit entry of a change and makes the change visible to the request path.
async fn changed(
    state: &Arc<AppState>,
    action: &str,
    target: &str,
    detail: Value,
) -> Result<(), AdminError> {
    let (action, target) = (action.to_string(), target.to_string());
    let actor = tollgate_govern::roles::Actor {
        id: "admin.key".into(),
        name: "admin".into(),
        role: tollgate_govern::roles::Role::OrgAdmin,
        place: tollgate_govern::roles::Place::org(),
        scope_label: String::new(),
    };
    blocking(state, move |s| {
        s.record_audit(&tollgate_store::AuditRecord {
            actor: &actor,
            action: &action,
            target: &target,
            place: &tollgate_govern::roles::Place::org(),
            before: None,
            after: Some(detail),
        })
    })
    .await?;
    let st = state.clone();
    blocking(state, move |_| st.refresh_identities()).await
}

fn bad(msg: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, "invalid_request", msg.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTeam {
    name: String,
}

async fn create_team(
    State(state): State<Arc<AppState>>,
    body: Result<Json<CreateTeam>, axum::extract::rejection::JsonRejection>,
) -> AdminResult {
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let team = blocking(&state, move |s| s.create_team(&b.name, None)).await?;
    changed(&state, "team.create", &team.id, json!({"after": team})).await?;
    Ok(Json(json!(team)))
}

async fn list_teams(State(state): State<Arc<AppState>>) -> AdminResult {
    let teams = blocking(&state, |s| s.list_teams()).await?;
    Ok(Json(json!({"data": teams})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    name: String,
    team: Option<String>,
    email: Option<String>,
}

async fn create_user(
    State(state): State<Arc<AppState>>,
    body: Result<Json<CreateUser>, axum::extract::rejection::JsonRejection>,
) -> AdminResult {
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let user = blocking(&state, move |s| {
        s.create_user(&b.name, b.team.as_deref(), b.email.as_deref())
    })
    .await?;
    changed(&state, "user.create", &user.id, json!({"after": user})).await?;
    Ok(Json(json!(user)))
}

async fn list_users(State(state): State<Arc<AppState>>) -> AdminResult {
    let users = blocking(&state, |s| s.list_users()).await?;
    Ok(Json(json!({"data": users})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    user: String,
    team: Option<String>,
    name: Option<String>,
}

/// Creates a key, creating its user and team first when they do not exist: handing out a key
/// is the one step most administrators want.
async fn create_key(
    State(state): State<Arc<AppState>>,
    body: Result<Json<CreateKey>, axum::extract::rejection::JsonRejection>,
) -> AdminResult {
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let secret = generate_gateway_key();
    let new = NewKey {
        hash: hash_key(&secret),
        prefix: display_prefix(&secret),
        name: b.name.clone(),
        user: Some(b.user.clone()),
        team: b.team.clone(),
        project: None,
    };
    let row = blocking(&state, move |s| {
        if let Some(t) = new.team.as_deref()
            && !s.list_teams()?.iter().any(|x| x.name == t || x.id == t)
        {
            s.create_team(t, None)?;
        }
        if !s
            .list_users()?
            .iter()
            .any(|u| Some(&u.name) == new.user.as_ref() || Some(&u.id) == new.user.as_ref())
        {
            s.create_user(
                new.user.as_deref().unwrap_or_default(),
                new.team.as_deref(),
                None,
            )?;
        }
        s.create_key(&new)
    })
    .await?;
    changed(&state, "key.create", &row.id, json!({"after": row})).await?;
    let mut v = json!(row);
    v["key"] = json!(secret);
    Ok(Json(v))
}

async fn list_keys(State(state): State<Arc<AppState>>) -> AdminResult {
    let keys = blocking(&state, |s| s.list_keys()).await?;
    Ok(Json(json!({"data": keys})))
}

async fn revoke_key(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> AdminResult {
    let row = blocking(&state, move |s| s.revoke_key(&id)).await?;
    changed(&state, "key.revoke", &row.id, json!({"after": row})).await?;
    Ok(Json(json!(row)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    limit: Option<u32>,
    user: Option<String>,
    team: Option<String>,
    session: Option<String>,
    status: Option<u16>,
    since: Option<String>,
}

/// Parses `30s`, `15m`, `2h`, `7d` into a start time in Unix milliseconds.
pub fn since_to_unix_ms(since: &str) -> Result<i64, String> {
    let s = since.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid duration '{since}' (e.g. 30s, 15m, 2h, 7d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("invalid duration unit in '{since}' (s, m, h, d)")),
    };
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    Ok(now_ms - secs * 1000)
}

async fn list_requests(
    State(state): State<Arc<AppState>>,
    q: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let since = q
        .since
        .as_deref()
        .map(since_to_unix_ms)
        .transpose()
        .map_err(bad)?;
    let query = JournalQuery {
        limit: q.limit.unwrap_or(100),
        user: q.user,
        team: q.team,
        session: q.session,
        status: q.status,
        since_unix_ms: since,
    };
    let rows = journal_read(&state, move |reader| reader.list(&query)).await?;
    Ok(Json(json!({"data": rows})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SpendQuery {
    by: Option<String>,
    since: Option<String>,
}

async fn spend(
    State(state): State<Arc<AppState>>,
    q: Result<Query<SpendQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let by: SpendBy = q.by.as_deref().unwrap_or("user").parse().map_err(bad)?;
    let since = q
        .since
        .as_deref()
        .map(since_to_unix_ms)
        .transpose()
        .map_err(bad)?;
    let rows = journal_read(&state, move |reader| reader.spend(by, since)).await?;
    Ok(Json(json!({"data": rows})))
}

async fn audit(State(state): State<Arc<AppState>>) -> AdminResult {
    let rows = blocking(&state, |s| {
        s.audit_log(1000, &tollgate_govern::roles::Place::org())
    })
    .await?;
    Ok(Json(json!({"data": rows})))
}
