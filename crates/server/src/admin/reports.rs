//! The journal, spend reports and the audit log, each narrowed to what the actor may see:
//! a member its own requests, a team admin its team's, a workspace admin its workspace's.

use super::{AdminError, AdminResult, blocking, check, journal_read};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tollgate_govern::roles::{Actor, Place, Resource, Role, authorize_list};
use tollgate_ledger::Nanos;
use tollgate_ledger::journal::{JournalQuery, SpendBy, SpendQuery, SpendRow};
use tollgate_store::DEFAULT_WORKSPACE;

/// Parses a point in time: a duration ago (`30s`, `15m`, `2h`, `7d`; a bare number is hours),
/// a date (`2026-11-01`, midnight UTC) or an RFC 3339 time. Returns Unix milliseconds.
pub fn since_to_unix_ms(since: &str) -> Result<i64, String> {
    let s = since.trim();
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &fmt) {
        return Ok((d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| {
        format!("invalid time '{since}' (a duration such as 30s, 15m, 2h, 7d; a date such as 2026-11-01; or an RFC 3339 time)")
    })?;
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

fn time_param(v: Option<&str>) -> Result<Option<i64>, AdminError> {
    v.map(since_to_unix_ms).transpose().map_err(AdminError::bad)
}

/// The journal rows an actor may see.
enum UsageView {
    All,
    /// Requests of these teams (`None`: requests without a team).
    Teams(Vec<Option<String>>),
    /// Requests of this user (the journal records names).
    User(String),
}

async fn usage_view(state: &Arc<AppState>, actor: &Actor) -> Result<UsageView, AdminError> {
    check(authorize_list(actor, Resource::Usage))?;
    let place = actor.place.clone();
    Ok(match actor.role {
        Role::OrgAdmin | Role::Auditor => UsageView::All,
        Role::WorkspaceAdmin => {
            let ws = place.workspace_id.unwrap_or_default();
            let teams = blocking(state, |s| s.list_teams()).await?;
            let mut names: Vec<Option<String>> = teams
                .into_iter()
                .filter(|t| t.workspace_id == ws)
                .map(|t| Some(t.name))
                .collect();
            // Users without a team belong to the default workspace.
            if ws == DEFAULT_WORKSPACE {
                names.push(None);
            }
            UsageView::Teams(names)
        }
        Role::TeamAdmin => {
            let id = place.team_id.unwrap_or_default();
            let team = blocking(state, move |s| s.team(&id)).await?;
            UsageView::Teams(vec![Some(team.name)])
        }
        Role::Member => {
            let id = place.user_id.unwrap_or_default();
            let user = blocking(state, move |s| s.user(&id)).await?;
            UsageView::User(user.name)
        }
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    limit: Option<u32>,
    user: Option<String>,
    team: Option<String>,
    session: Option<String>,
    status: Option<u16>,
    since: Option<String>,
    until: Option<String>,
}

pub async fn list_requests(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    q: Result<Query<RequestsQuery>, QueryRejection>,
) -> AdminResult {
    let Query(q) = q.map_err(|e| AdminError::bad(e.body_text()))?;
    let view = usage_view(&state, &actor).await?;
    let mut query = JournalQuery {
        limit: q.limit.unwrap_or(100),
        user: q.user,
        team: q.team,
        session: q.session,
        status: q.status,
        since_unix_ms: time_param(q.since.as_deref())?,
        until_unix_ms: time_param(q.until.as_deref())?,
        only_teams: None,
    };
    match view {
        UsageView::All => {}
        UsageView::Teams(t) => query.only_teams = Some(t),
        UsageView::User(u) => query.user = Some(u),
    }
    let rows = journal_read(&state, move |reader| reader.list(&query)).await?;
    Ok(Json(json!({"data": rows})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SpendParams {
    /// The grouping; `by` is its older name.
    group_by: Option<String>,
    by: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

const GROUPINGS: &str = "user, team, workspace, model, provider, project, session, day";

pub async fn spend(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    q: Result<Query<SpendParams>, QueryRejection>,
) -> AdminResult {
    let Query(q) = q.map_err(|e| AdminError::bad(e.body_text()))?;
    let view = usage_view(&state, &actor).await?;
    let group = q.group_by.or(q.by).unwrap_or_else(|| "user".into());
    let by_workspace = group == "workspace";
    let by: SpendBy = if by_workspace {
        SpendBy::Team
    } else {
        group
            .parse()
            .map_err(|_| AdminError::bad(format!("unknown grouping '{group}' ({GROUPINGS})")))?
    };
    let mut query = SpendQuery {
        since_unix_ms: time_param(q.since.as_deref())?,
        until_unix_ms: time_param(q.until.as_deref())?,
        ..SpendQuery::new(by)
    };
    match view {
        UsageView::All => {}
        UsageView::Teams(t) => query.only_teams = Some(t),
        UsageView::User(u) => query.user = Some(u),
    }
    let (since, until) = (query.since_unix_ms, query.until_unix_ms);
    let mut rows = journal_read(&state, move |reader| reader.spend_report(&query)).await?;
    if by_workspace {
        rows = by_workspace_rows(&state, rows).await?;
    }
    Ok(Json(json!({
        "group_by": group,
        "since_unix_ms": since,
        "until_unix_ms": until,
        "data": rows,
    })))
}

/// Folds per-team rows into per-workspace rows. The journal records the team; a team never
/// changes workspace, so today's mapping is the mapping at the time of each request.
async fn by_workspace_rows(
    state: &Arc<AppState>,
    rows: Vec<SpendRow>,
) -> Result<Vec<SpendRow>, AdminError> {
    let (teams, workspaces) =
        blocking(state, |s| Ok((s.list_teams()?, s.list_workspaces()?))).await?;
    let team_ws: HashMap<String, String> =
        teams.into_iter().map(|t| (t.name, t.workspace)).collect();
    let default_name = workspaces
        .into_iter()
        .find(|w| w.id == DEFAULT_WORKSPACE)
        .map_or_else(|| "default".to_string(), |w| w.name);
    let mut merged: BTreeMap<Option<String>, SpendRow> = BTreeMap::new();
    for r in rows {
        let ws = match &r.group {
            Some(team) => team_ws.get(team).cloned(),
            None => Some(default_name.clone()),
        };
        let e = merged.entry(ws.clone()).or_insert_with(|| SpendRow {
            group: ws,
            requests: 0,
            input_tokens: 0,
            output_tokens: 0,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            cost_nanos: 0,
            cost_usd: String::new(),
            unknown_cost_requests: 0,
        });
        e.requests += r.requests;
        e.input_tokens += r.input_tokens;
        e.output_tokens += r.output_tokens;
        e.cache_creation_input_tokens += r.cache_creation_input_tokens;
        e.cache_read_input_tokens += r.cache_read_input_tokens;
        e.cost_nanos = e.cost_nanos.saturating_add(r.cost_nanos);
        e.unknown_cost_requests += r.unknown_cost_requests;
    }
    let mut out: Vec<SpendRow> = merged
        .into_values()
        .map(|mut r| {
            r.cost_usd = Nanos(r.cost_nanos).usd_string();
            r
        })
        .collect();
    out.sort_by(|a, b| b.cost_nanos.cmp(&a.cost_nanos).then(a.group.cmp(&b.group)));
    Ok(out)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<u32>,
}

pub async fn audit(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> AdminResult {
    let Query(q) = q.map_err(|e| AdminError::bad(e.body_text()))?;
    check(authorize_list(&actor, Resource::Audit))?;
    let within = match actor.role {
        Role::OrgAdmin | Role::Auditor => Place::org(),
        Role::WorkspaceAdmin => Place {
            workspace_id: actor.place.workspace_id.clone(),
            ..Place::default()
        },
        // Members are refused above; a team admin reads its team's entries.
        Role::TeamAdmin | Role::Member => Place {
            team_id: actor.place.team_id.clone(),
            ..Place::default()
        },
    };
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let rows = blocking(&state, move |s| s.audit_log(limit, &within)).await?;
    Ok(Json(json!({"data": rows})))
}

/// The alert delivery log (org-wide: org admins and auditors).
pub async fn alerts(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::Audit))?;
    if !matches!(actor.role, Role::OrgAdmin | Role::Auditor) {
        return Err(AdminError::forbidden(format!(
            "permission denied: {} may not read the alert log (org admins and auditors only)",
            actor.describe()
        )));
    }
    let rows = blocking(&state, |s| s.alert_deliveries(1000)).await?;
    Ok(Json(json!({"data": rows})))
}
