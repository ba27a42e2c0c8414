//! Stored policies. A policy's scope decides who may write it (a team admin writes policies
//! for its own team, its users and keys); team and workspace admins may not grant a budget
//! above the cap written above them for the same period.

use super::{AdminError, AdminResult, Change, audit, blocking, check, json_body};
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::json;
use std::sync::Arc;
use tollgate_govern::admission::budget_counter;
use tollgate_govern::policy::{BudgetMode, PolicySpec, Scope};
use tollgate_govern::roles::{
    Actor, Cap, Place, Resource, Role, Verb, authorize, authorize_capability, authorize_list,
    within_caps,
};
use tollgate_store::PolicyRow;

/// Makes a policy change apply to the next request.
async fn refresh(state: &Arc<AppState>) -> Result<(), AdminError> {
    let st = state.clone();
    blocking(state, move |_| st.refresh_policies()).await
}

/// Where the policy's scope sits; a scope naming nothing that exists is a 400.
async fn place_of(state: &Arc<AppState>, scope: &Scope) -> Result<Place, AdminError> {
    let scope = scope.clone();
    blocking(state, move |s| s.place_of_scope(&scope)).await
}

/// The budget caps above `actor`: org policies for a workspace admin, plus its workspace's
/// policies for a team admin.
async fn caps_above(state: &Arc<AppState>, actor: &Actor) -> Result<Vec<Cap>, AdminError> {
    if !matches!(actor.role, Role::TeamAdmin | Role::WorkspaceAdmin) {
        return Ok(Vec::new());
    }
    // Config policies cap like stored ones (they are written by whoever runs the gateway).
    let configured: Vec<PolicyRow> = state
        .config
        .policies
        .iter()
        .map(|spec| PolicyRow {
            id: format!("cfg:{}", spec.display_name()),
            spec: spec.clone(),
            created_at: String::new(),
            updated_at: String::new(),
        })
        .collect();
    let policies = blocking(state, move |s| {
        let mut out = Vec::new();
        for p in configured.into_iter().chain(s.list_policies()?) {
            let place = match &p.spec.scope.0 {
                Scope::Org => Some(Place::org()),
                Scope::Workspace(_) => s.place_of_scope(&p.spec.scope.0).ok(),
                _ => None,
            };
            if let Some(place) = place {
                out.push((p, place));
            }
        }
        Ok(out)
    })
    .await?;
    let mut caps = Vec::new();
    for (p, place) in policies {
        let label = match &p.spec.scope.0 {
            Scope::Org => format!("org cap (policy {})", p.spec.display_name()),
            Scope::Workspace(_)
                if actor.role == Role::TeamAdmin
                    && place.workspace_id == actor.place.workspace_id =>
            {
                format!(
                    "workspace cap (policy {}, {})",
                    p.spec.display_name(),
                    p.spec.scope.0
                )
            }
            _ => continue,
        };
        // A soft budget alerts but blocks nothing, so it caps nothing either.
        caps.extend(
            p.spec
                .budgets
                .iter()
                .filter(|b| b.mode == BudgetMode::Hard)
                .map(|b| Cap {
                    label: label.clone(),
                    period: b.period,
                    amount_usd: b.amount_usd,
                }),
        );
    }
    Ok(caps)
}

/// Everything a written spec must pass: the actor reaches its scope, it is valid, and its
/// budgets stay under the caps above the actor.
async fn admit_spec(
    state: &Arc<AppState>,
    actor: &Actor,
    spec: &PolicySpec,
) -> Result<Place, AdminError> {
    let place = place_of(state, &spec.scope.0).await?;
    check(authorize(
        actor,
        Verb::Write,
        Resource::Policy,
        &place,
        &format!("policies for {}", spec.scope.0),
    ))?;
    spec.validate().map_err(AdminError::bad)?;
    let caps = caps_above(state, actor).await?;
    check(within_caps(
        actor,
        &spec.budgets,
        &caps,
        &spec.scope.0.to_string(),
    ))?;
    Ok(place)
}

pub async fn create_policy(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    body: Result<Json<PolicySpec>, JsonRejection>,
) -> AdminResult {
    check(authorize_capability(&actor, Verb::Write, Resource::Policy))?;
    let spec = json_body(body)?;
    let place = admit_spec(&state, &actor, &spec).await?;
    let row = blocking(&state, move |s| s.create_policy(&spec)).await?;
    audit(
        &state,
        &actor,
        Change {
            action: "policy.create",
            target: &row.id,
            place: &place,
            before: None,
            after: Some(json!(row)),
        },
    )
    .await?;
    refresh(&state).await?;
    Ok(Json(json!(row)))
}

pub async fn list_policies(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::Policy))?;
    let rows = blocking(&state, |s| {
        let mut out = Vec::new();
        for p in s.list_policies()? {
            // A scope whose team or user is gone is shown to those who see the whole org.
            let place = s.place_of_scope(&p.spec.scope.0).unwrap_or_default();
            out.push((p, place));
        }
        Ok(out)
    })
    .await?;
    let visible: Vec<PolicyRow> = rows
        .into_iter()
        .filter(|(_, place)| actor.reaches(Verb::Read, place))
        .map(|(p, _)| p)
        .collect();
    Ok(Json(json!({"data": visible})))
}

/// A stored policy and where it sits, if `actor` may `verb` it.
async fn existing(
    state: &Arc<AppState>,
    actor: &Actor,
    verb: Verb,
    id: &str,
) -> Result<(PolicyRow, Place), AdminError> {
    let key = id.to_string();
    let (row, place) = blocking(state, move |s| {
        let row = s.get_policy(&key)?;
        let place = s.place_of_scope(&row.spec.scope.0).unwrap_or_default();
        Ok((row, place))
    })
    .await?;
    check(authorize(
        actor,
        verb,
        Resource::Policy,
        &place,
        &format!("policy {id} ({})", row.spec.scope.0),
    ))?;
    Ok((row, place))
}

pub async fn get_policy(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    Path(id): Path<String>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::Policy))?;
    let (row, _) = existing(&state, &actor, Verb::Read, &id).await?;
    Ok(Json(json!(row)))
}

pub async fn replace_policy(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    Path(id): Path<String>,
    body: Result<Json<PolicySpec>, JsonRejection>,
) -> AdminResult {
    check(authorize_capability(&actor, Verb::Write, Resource::Policy))?;
    let spec = json_body(body)?;
    // Both where the policy is and where it would move to must be within reach.
    existing(&state, &actor, Verb::Write, &id).await?;
    let place = admit_spec(&state, &actor, &spec).await?;
    let (before, after) = blocking(&state, move |s| s.replace_policy(&id, &spec)).await?;
    audit(
        &state,
        &actor,
        Change {
            action: "policy.update",
            target: &after.id,
            place: &place,
            before: Some(json!(before)),
            after: Some(json!(after)),
        },
    )
    .await?;
    refresh(&state).await?;
    Ok(Json(json!(after)))
}

pub async fn delete_policy(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    Path(id): Path<String>,
) -> AdminResult {
    check(authorize_capability(&actor, Verb::Write, Resource::Policy))?;
    let (_, place) = existing(&state, &actor, Verb::Write, &id).await?;
    let before = blocking(&state, move |s| s.delete_policy(&id)).await?;
    audit(
        &state,
        &actor,
        Change {
            action: "policy.delete",
            target: &before.id,
            place: &place,
            before: Some(json!(before)),
            after: None,
        },
    )
    .await?;
    refresh(&state).await?;
    Ok(Json(json!({"deleted": before.id})))
}

/// A stored policy's budgets in their current periods: settled and reserved spend, cap and
/// when each resets.
pub async fn policy_usage(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    Path(id): Path<String>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::Policy))?;
    let (row, _) = existing(&state, &actor, Verb::Read, &id).await?;
    let now = state.clock.now();
    let mut budgets = Vec::new();
    for (idx, b) in row.spec.budgets.iter().enumerate() {
        let (key, window) = budget_counter(&row.id, idx, b, now);
        let spent = state
            .counters
            .store
            .spent(&key, window)
            .await
            .map_err(|e| AdminError::unavailable(format!("counter store: {e}")))?;
        budgets.push(json!({
            "index": idx,
            "period": b.period,
            "mode": b.mode,
            "cap_usd": b.amount_usd,
            "settled_usd": spent.settled_nanos as f64 / 1e9,
            "reserved_usd": spent.reserved_nanos as f64 / 1e9,
            "period_start_unix_ms": spent.period.start.0,
            "resets_at_unix_ms": spent.period.end.map(|e| e.0),
        }));
    }
    Ok(Json(json!({"policy": row.id, "budgets": budgets})))
}

/// Which budget of a policy to reset (all when absent).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    budget: Option<usize>,
}

/// Sets the settled spend of a policy's budgets back to zero for the current period (live
/// reservations stay held); audited with the spend before.
pub async fn reset_policy_budgets(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AdminResult {
    check(authorize_capability(&actor, Verb::Write, Resource::Policy))?;
    // The body is optional: empty means every budget.
    let only = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<ResetBody>(&body)
            .map_err(|e| AdminError::bad(format!("reset body: {e}")))?
            .budget
    };
    let (row, place) = existing(&state, &actor, Verb::Write, &id).await?;
    if let Some(i) = only
        && i >= row.spec.budgets.len()
    {
        return Err(AdminError::bad(format!(
            "policy {id} has {} budget(s); budget {i} does not exist",
            row.spec.budgets.len()
        )));
    }
    let now = state.clock.now();
    let mut before = Vec::new();
    for (idx, b) in row.spec.budgets.iter().enumerate() {
        if only.is_some_and(|i| i != idx) {
            continue;
        }
        let (key, window) = budget_counter(&row.id, idx, b, now);
        let unavailable = |e: tollgate_govern::limits::StoreError| {
            AdminError::unavailable(format!("counter store: {e}"))
        };
        let spent = state
            .counters
            .store
            .spent(&key, window)
            .await
            .map_err(unavailable)?;
        state
            .counters
            .store
            .reset_budget(&key, window)
            .await
            .map_err(unavailable)?;
        before.push(json!({"index": idx, "settled_usd": spent.settled_nanos as f64 / 1e9}));
    }
    audit(
        &state,
        &actor,
        Change {
            action: "policy.reset_budgets",
            target: &row.id,
            place: &place,
            before: Some(json!(before)),
            after: Some(json!({"settled_usd": 0})),
        },
    )
    .await?;
    Ok(Json(json!({"policy": row.id, "reset": before.len()})))
}
