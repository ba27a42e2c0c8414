//! Admin credentials: created with a role and a scope, the secret shown once.

use super::{AdminError, AdminResult, Change, audit, blocking, check, json_body};
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tollgate_govern::roles::{
    Actor, Resource, Role, Verb, authorize, authorize_capability, authorize_grant, authorize_list,
};
use tollgate_govern::{generate_admin_key, hash_key, keys::display_prefix};
use tollgate_store::NewAdmin;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAdmin {
    name: String,
    role: String,
    workspace: Option<String>,
    team: Option<String>,
    user: Option<String>,
}

pub async fn create_admin(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    body: Result<Json<CreateAdmin>, JsonRejection>,
) -> AdminResult {
    let b = json_body(body)?;
    check(authorize_capability(&actor, Verb::Write, Resource::Admin))?;
    let role: Role = b.role.parse().map_err(AdminError::bad)?;
    let (ws, team, user) = (b.workspace.clone(), b.team.clone(), b.user.clone());
    let (place, label) = blocking(&state, move |s| {
        s.admin_place(role, ws.as_deref(), team.as_deref(), user.as_deref())
    })
    .await?;
    check(authorize_grant(
        &actor,
        role,
        &place,
        &format!("admin credentials for {label}"),
    ))?;
    let secret = generate_admin_key();
    let new = NewAdmin {
        hash: hash_key(&secret),
        prefix: display_prefix(&secret),
        name: b.name,
        role,
        workspace: b.workspace,
        team: b.team,
        user: b.user,
    };
    let row = blocking(&state, move |s| s.create_admin(&new)).await?;
    audit(
        &state,
        &actor,
        Change {
            action: "admin.create",
            target: &row.id,
            place: &row.place(),
            before: None,
            after: Some(json!(row)),
        },
    )
    .await?;
    let mut v = json!(row);
    v["key"] = json!(secret);
    Ok(Json(v))
}

pub async fn list_admins(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::Admin))?;
    let mut rows = blocking(&state, |s| s.list_admins()).await?;
    rows.retain(|a| actor.reaches(Verb::Read, &a.place()));
    Ok(Json(json!({"data": rows})))
}

pub async fn revoke_admin(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    Path(id): Path<String>,
) -> AdminResult {
    check(authorize_capability(&actor, Verb::Write, Resource::Admin))?;
    let key = id.clone();
    let row = blocking(&state, move |s| s.admin(&key)).await?;
    check(authorize(
        &actor,
        Verb::Write,
        Resource::Admin,
        &row.place(),
        &format!("admin credential {id}"),
    ))?;
    // Revoking a credential stronger than one's own would be a way around the grant rule.
    if !actor.may_grant(row.role) {
        return Err(AdminError::forbidden(format!(
            "permission denied: {} may not revoke a {} credential",
            actor.describe(),
            row.role
        )));
    }
    let (before, after) = blocking(&state, move |s| s.revoke_admin(&id)).await?;
    audit(
        &state,
        &actor,
        Change {
            action: "admin.revoke",
            target: &after.id,
            place: &after.place(),
            before: Some(json!(before)),
            after: Some(json!(after)),
        },
    )
    .await?;
    Ok(Json(json!(after)))
}
