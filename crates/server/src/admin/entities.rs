//! Workspaces, teams, users and gateway keys.

use super::{
    AdminError, AdminResult, Change, audit, blocking, check, json_body, refresh_request_path,
};
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tollgate_govern::roles::{
    Actor, Place, Resource, Role, Verb, authorize, authorize_capability, authorize_list,
};
use tollgate_govern::{generate_gateway_key, hash_key, keys::display_prefix};
use tollgate_store::{DEFAULT_WORKSPACE, NewKey, StoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    name: String,
}

pub async fn create_workspace(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    body: Result<Json<CreateWorkspace>, JsonRejection>,
) -> AdminResult {
    let b = json_body(body)?;
    check(authorize(
        &actor,
        Verb::Write,
        Resource::Workspace,
        &Place::org(),
        "workspaces",
    ))?;
    let ws = blocking(&state, move |s| s.create_workspace(&b.name)).await?;
    audit(
        &state,
        &actor,
        Change {
            action: "workspace.create",
            target: &ws.id,
            place: &Place::workspace(&ws.id),
            before: None,
            after: Some(json!(ws)),
        },
    )
    .await?;
    Ok(Json(json!(ws)))
}

pub async fn list_workspaces(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::Workspace))?;
    let mut rows = blocking(&state, |s| s.list_workspaces()).await?;
    rows.retain(|w| actor.reaches(Verb::Read, &Place::workspace(&w.id)));
    Ok(Json(json!({"data": rows})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: String,
    workspace: Option<String>,
}

pub async fn create_team(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    body: Result<Json<CreateTeam>, JsonRejection>,
) -> AdminResult {
    let b = json_body(body)?;
    check(authorize_capability(&actor, Verb::Write, Resource::Team))?;
    let ws_key = b
        .workspace
        .clone()
        .unwrap_or_else(|| DEFAULT_WORKSPACE.into());
    let ws = blocking(&state, move |s| s.workspace(&ws_key)).await?;
    check(authorize(
        &actor,
        Verb::Write,
        Resource::Team,
        &Place::workspace(&ws.id),
        &format!("teams of workspace {}", ws.name),
    ))?;
    let team = blocking(&state, move |s| s.create_team(&b.name, Some(&ws.id))).await?;
    audit(
        &state,
        &actor,
        Change {
            action: "team.create",
            target: &team.id,
            place: &team.place(),
            before: None,
            after: Some(json!(team)),
        },
    )
    .await?;
    refresh_request_path(&state).await?;
    Ok(Json(json!(team)))
}

pub async fn list_teams(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::Team))?;
    let mut rows = blocking(&state, |s| s.list_teams()).await?;
    rows.retain(|t| actor.reaches(Verb::Read, &t.place()));
    Ok(Json(json!({"data": rows})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    name: String,
    team: Option<String>,
    email: Option<String>,
}

/// Where a new user of `team` (or of no team) would sit.
async fn user_place(
    state: &Arc<AppState>,
    team: Option<String>,
) -> Result<(Place, String), AdminError> {
    Ok(match team {
        Some(t) => {
            let team = blocking(state, move |s| s.team(&t)).await?;
            (team.place(), format!("users of team {}", team.name))
        }
        None => (
            Place::workspace(DEFAULT_WORKSPACE),
            "users without a team (workspace default)".into(),
        ),
    })
}

pub async fn create_user(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    body: Result<Json<CreateUser>, JsonRejection>,
) -> AdminResult {
    let b = json_body(body)?;
    check(authorize_capability(&actor, Verb::Write, Resource::User))?;
    let (place, label) = user_place(&state, b.team.clone()).await?;
    check(authorize(
        &actor,
        Verb::Write,
        Resource::User,
        &place,
        &label,
    ))?;
    let user = blocking(&state, move |s| {
        s.create_user(&b.name, b.team.as_deref(), b.email.as_deref())
    })
    .await?;
    audit(
        &state,
        &actor,
        Change {
            action: "user.create",
            target: &user.id,
            place: &user.place(),
            before: None,
            after: Some(json!(user)),
        },
    )
    .await?;
    refresh_request_path(&state).await?;
    Ok(Json(json!(user)))
}

pub async fn list_users(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::User))?;
    let mut rows = blocking(&state, |s| s.list_users()).await?;
    rows.retain(|u| actor.reaches(Verb::Read, &u.place()));
    Ok(Json(json!({"data": rows})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    user: Option<String>,
    team: Option<String>,
    name: Option<String>,
    project: Option<String>,
}

fn found<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a key, creating its user and team first when they do not exist (each creation
/// authorised on its own): handing out a key is the one step most administrators want. A key
/// with a team and no user is the team's service key. A member gets keys for itself only.
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    body: Result<Json<CreateKey>, JsonRejection>,
) -> AdminResult {
    let mut b = json_body(body)?;
    check(authorize_capability(&actor, Verb::Write, Resource::Key))?;
    // A member naming nobody means itself; naming only a team asks for a service key, which
    // a member may not create.
    if actor.role == Role::Member && b.user.is_none() && b.team.is_none() {
        b.user = actor.place.user_id.clone();
    }
    if b.user.is_none() && b.team.is_none() {
        return Err(AdminError::bad(
            "a key needs a user, or a team for a service key",
        ));
    }
    let (user_key, team_key) = (b.user.clone(), b.team.clone());
    let (user, team) = blocking(&state, move |s| {
        let user = match &user_key {
            Some(u) => found(s.user(u))?,
            None => None,
        };
        let team = match &team_key {
            Some(t) => found(s.team(t))?,
            None => None,
        };
        Ok((user, team))
    })
    .await?;

    // The team the key bills to: the one named, else the user's.
    let new_team = b.team.is_some() && team.is_none();
    let key_team_place = match (&team, &user) {
        (Some(t), _) => t.place(),
        (None, Some(u)) if b.team.is_none() => Place {
            user_id: None,
            ..u.place()
        },
        _ => Place::workspace(DEFAULT_WORKSPACE),
    };
    if new_team {
        let name = b.team.clone().unwrap_or_default();
        check(authorize(
            &actor,
            Verb::Write,
            Resource::Team,
            &Place::workspace(DEFAULT_WORKSPACE),
            &format!("team {name} (new, in workspace default)"),
        ))?;
    }
    let new_user = b.user.is_some() && user.is_none();
    if new_user {
        let name = b.user.clone().unwrap_or_default();
        check(authorize(
            &actor,
            Verb::Write,
            Resource::User,
            &key_team_place,
            &format!("user {name} (new)"),
        ))?;
    }
    if let Some(u) = &user
        && !actor.reaches(Verb::Read, &u.place())
    {
        return Err(AdminError::forbidden(format!(
            "permission denied: {} may not create keys for user {}: the user is outside its reach",
            actor.describe(),
            u.name
        )));
    }
    let key_place = Place {
        user_id: user.as_ref().map(|u| u.id.clone()),
        ..key_team_place.clone()
    };
    let label = match (&b.user, &b.team) {
        (Some(u), Some(t)) => format!("gateway keys of user {u} in team {t}"),
        (Some(u), None) => format!("gateway keys of user {u}"),
        (None, t) => format!("service keys of team {}", t.as_deref().unwrap_or("")),
    };
    check(authorize(
        &actor,
        Verb::Write,
        Resource::Key,
        &key_place,
        &label,
    ))?;

    let secret = generate_gateway_key();
    let new = NewKey {
        hash: hash_key(&secret),
        prefix: display_prefix(&secret),
        name: b.name.clone(),
        user: b.user.clone(),
        team: b.team.clone(),
        project: b.project.clone(),
    };
    let (created_team, created_user, row) = blocking(&state, move |s| {
        let t = match (new_team, new.team.as_deref()) {
            (true, Some(t)) => Some(s.create_team(t, None)?),
            _ => None,
        };
        let u = match (new_user, new.user.as_deref()) {
            (true, Some(u)) => Some(s.create_user(u, new.team.as_deref(), None)?),
            _ => None,
        };
        Ok((t, u, s.create_key(&new)?))
    })
    .await?;
    if let Some(t) = created_team {
        audit(
            &state,
            &actor,
            Change {
                action: "team.create",
                target: &t.id,
                place: &t.place(),
                before: None,
                after: Some(json!(t)),
            },
        )
        .await?;
    }
    if let Some(u) = created_user {
        audit(
            &state,
            &actor,
            Change {
                action: "user.create",
                target: &u.id,
                place: &u.place(),
                before: None,
                after: Some(json!(u)),
            },
        )
        .await?;
    }
    audit(
        &state,
        &actor,
        Change {
            action: "key.create",
            target: &row.id,
            place: &row.place(),
            before: None,
            after: Some(json!(row)),
        },
    )
    .await?;
    refresh_request_path(&state).await?;
    let mut v = json!(row);
    v["key"] = json!(secret);
    Ok(Json(v))
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::Key))?;
    let mut rows = blocking(&state, |s| s.list_keys()).await?;
    rows.retain(|k| actor.reaches(Verb::Read, &k.place()));
    Ok(Json(json!({"data": rows})))
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    Path(id): Path<String>,
) -> AdminResult {
    check(authorize_capability(&actor, Verb::Write, Resource::Key))?;
    let key_id = id.clone();
    let before = blocking(&state, move |s| s.key(&key_id)).await?;
    // Members may revoke their own keys wherever they bill (a leaked key must be stoppable by
    // its owner), so revocation asks for read reach plus write capability.
    let place = if actor.role == Role::Member {
        Place {
            team_id: actor.place.team_id.clone(),
            ..before.place()
        }
    } else {
        before.place()
    };
    check(authorize(
        &actor,
        Verb::Write,
        Resource::Key,
        &place,
        &format!("key {id}"),
    ))?;
    let row = blocking(&state, move |s| s.revoke_key(&id)).await?;
    audit(
        &state,
        &actor,
        Change {
            action: "key.revoke",
            target: &row.id,
            place: &row.place(),
            before: Some(json!(before)),
            after: Some(json!(row)),
        },
    )
    .await?;
    refresh_request_path(&state).await?;
    Ok(Json(json!(row)))
}
