//! Provider credentials held by the gateway: written here, sealed in the store, decrypted
//! into the vault, and never returned. No message in this module repeats what the request
//! body contained, so a secret pasted into the wrong field cannot come back in an error.

use super::{AdminError, AdminResult, Change, audit, blocking, check, json_body};
use crate::state::AppState;
use crate::vault::{CredentialScope, KeySource, ProviderSecret};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tollgate_govern::roles::{
    Actor, Place, Resource, Role, Verb, authorize, authorize_capability, authorize_list,
};
use tollgate_providers::ProviderKind;
use tollgate_store::{CredentialRow, StoreError};

/// The body of `PUT /providers/{name}/credentials`: exactly one form of secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    scope: Option<String>,
    api_key: Option<String>,
    aws_access_key_id: Option<String>,
    aws_secret_access_key: Option<String>,
    aws_session_token: Option<String>,
    service_account_json: Option<Value>,
}

const BODY_SHAPE: &str = "the body must be a JSON object with an optional \"scope\" and exactly one secret: {\"api_key\"}, {\"aws_access_key_id\", \"aws_secret_access_key\", \"aws_session_token\"?} or {\"service_account_json\"}";

impl CredentialBody {
    fn secret(self) -> Result<ProviderSecret, AdminError> {
        let nonempty = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let aws = self.aws_access_key_id.is_some()
            || self.aws_secret_access_key.is_some()
            || self.aws_session_token.is_some();
        match (self.api_key, aws, self.service_account_json) {
            (Some(k), false, None) if !k.trim().is_empty() => {
                Ok(ProviderSecret::ApiKey { api_key: k })
            }
            (None, true, None)
                if nonempty(&self.aws_access_key_id) && nonempty(&self.aws_secret_access_key) =>
            {
                Ok(ProviderSecret::Aws {
                    access_key_id: self.aws_access_key_id.unwrap_or_default(),
                    secret_access_key: self.aws_secret_access_key.unwrap_or_default(),
                    session_token: self.aws_session_token.filter(|t| !t.trim().is_empty()),
                })
            }
            (None, false, Some(sa)) => {
                // Accept the key file as an object or as its text.
                let obj = match sa {
                    Value::String(s) => serde_json::from_str::<Value>(&s).ok(),
                    v => Some(v),
                };
                match obj {
                    Some(o) if o["client_email"].is_string() && o["private_key"].is_string() => {
                        Ok(ProviderSecret::ServiceAccount {
                            service_account_json: o.to_string(),
                        })
                    }
                    _ => Err(AdminError::bad(
                        "service_account_json must be a Google service-account key (a JSON object with client_email and private_key)",
                    )),
                }
            }
            _ => Err(AdminError::bad(BODY_SHAPE)),
        }
    }
}

/// Which secret kinds a provider kind can use.
fn accepts(kind: ProviderKind, secret: &ProviderSecret) -> bool {
    match (kind, secret) {
        (ProviderKind::Bedrock, ProviderSecret::Aws { .. } | ProviderSecret::ApiKey { .. }) => true,
        (ProviderKind::Vertex, ProviderSecret::ServiceAccount { .. }) => true,
        (ProviderKind::Bedrock | ProviderKind::Vertex, _) => false,
        (_, ProviderSecret::ApiKey { .. }) => true,
        _ => false,
    }
}

fn configured_kind(state: &AppState, name: &str) -> Result<ProviderKind, AdminError> {
    state
        .config
        .providers
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.kind)
        .ok_or_else(|| AdminError::not_found(format!("provider '{name}' is not configured")))
}

/// Resolves a requested scope (`org`, `workspace:NAME`, `team:NAME`, by name or id) to its
/// stored form and place; without one, the actor's own scope.
async fn resolve_scope(
    state: &Arc<AppState>,
    actor: &Actor,
    scope: Option<String>,
) -> Result<(CredentialScope, Place, String), AdminError> {
    let scope = scope.unwrap_or_else(|| match actor.role {
        Role::WorkspaceAdmin => format!(
            "workspace:{}",
            actor.place.workspace_id.as_deref().unwrap_or("")
        ),
        Role::TeamAdmin => format!("team:{}", actor.place.team_id.as_deref().unwrap_or("")),
        _ => "org".into(),
    });
    const SHAPE: &str = "scope must be \"org\", \"workspace:NAME\" or \"team:NAME\"";
    if scope == "org" {
        return Ok((CredentialScope::Org, Place::org(), "org".into()));
    }
    let Some((kind, key)) = scope.split_once(':') else {
        return Err(AdminError::bad(SHAPE));
    };
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(AdminError::bad(SHAPE));
    }
    let missing = |what: &'static str| {
        move |e: StoreError| match e {
            StoreError::NotFound(_) => {
                AdminError::not_found(format!("the {what} named in scope does not exist"))
            }
            other => AdminError::from(other),
        }
    };
    let store = state.store.clone();
    match kind {
        "workspace" => {
            let ws = tokio::task::spawn_blocking(move || store.workspace(&key))
                .await
                .map_err(|_| AdminError::internal("admin task failed"))?
                .map_err(missing("workspace"))?;
            Ok((
                CredentialScope::Workspace(ws.id.clone()),
                Place::workspace(&ws.id),
                format!("workspace:{}", ws.name),
            ))
        }
        "team" => {
            let team = tokio::task::spawn_blocking(move || store.team(&key))
                .await
                .map_err(|_| AdminError::internal("admin task failed"))?
                .map_err(missing("team"))?;
            Ok((
                CredentialScope::Team(team.id.clone()),
                team.place(),
                format!("team:{}", team.name),
            ))
        }
        _ => Err(AdminError::bad(SHAPE)),
    }
}

fn credential_json(row: &CredentialRow, scope_name: &str) -> Value {
    let mut v = json!(row);
    v["scope_name"] = json!(scope_name);
    v
}

pub async fn put_credential(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> AdminResult {
    check(authorize_capability(
        &actor,
        Verb::Write,
        Resource::Credential,
    ))?;
    // Parsed by hand: the JSON extractor's messages quote the offending value.
    let b: CredentialBody =
        serde_json::from_slice(&body).map_err(|_| AdminError::bad(BODY_SHAPE))?;
    let kind = configured_kind(&state, &name)?;
    let (scope, place, scope_name) = resolve_scope(&state, &actor, b.scope.clone()).await?;
    check(authorize(
        &actor,
        Verb::Write,
        Resource::Credential,
        &place,
        &format!("credentials of provider {name} at {scope_name}"),
    ))?;
    let secret = b.secret()?;
    if !accepts(kind, &secret) {
        return Err(AdminError::bad(format!(
            "provider '{name}' ({kind}) cannot use a credential of kind {}",
            secret.kind()
        )));
    }
    let st = state.clone();
    let provider = name.clone();
    let (before, after) =
        blocking(&state, move |s| st.vault.put(s, &provider, &scope, &secret)).await?;
    audit(
        &state,
        &actor,
        Change {
            action: if before.is_some() {
                "credential.rotate"
            } else {
                "credential.create"
            },
            target: &format!("{name}@{scope_name}"),
            place: &place,
            before: before.as_ref().map(|b| credential_json(b, &scope_name)),
            after: Some(credential_json(&after, &scope_name)),
        },
    )
    .await?;
    Ok(Json(credential_json(&after, &scope_name)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScopeQuery {
    scope: Option<String>,
}

pub async fn delete_credential(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    Path(name): Path<String>,
    q: Result<Query<ScopeQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    check(authorize_capability(
        &actor,
        Verb::Write,
        Resource::Credential,
    ))?;
    let Query(q) = q.map_err(|_| AdminError::bad("the only query parameter is scope"))?;
    let (scope, place, scope_name) = resolve_scope(&state, &actor, q.scope).await?;
    check(authorize(
        &actor,
        Verb::Write,
        Resource::Credential,
        &place,
        &format!("credentials of provider {name} at {scope_name}"),
    ))?;
    let st = state.clone();
    let provider = name.clone();
    let before = blocking(&state, move |s| st.vault.delete(s, &provider, &scope)).await?;
    audit(
        &state,
        &actor,
        Change {
            action: "credential.delete",
            target: &format!("{name}@{scope_name}"),
            place: &place,
            before: Some(credential_json(&before, &scope_name)),
            after: None,
        },
    )
    .await?;
    Ok(Json(
        json!({"deleted": credential_json(&before, &scope_name)}),
    ))
}

/// `GET /providers`: configured providers and, per provider, which scopes hold a credential
/// and when it was last rotated. Never a secret.
pub async fn list_providers(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
) -> AdminResult {
    check(authorize_list(&actor, Resource::Credential))?;
    let (rows, teams, workspaces) = blocking(&state, |s| {
        Ok((s.list_credentials()?, s.list_teams()?, s.list_workspaces()?))
    })
    .await?;
    let teams: HashMap<String, _> = teams.into_iter().map(|t| (t.id.clone(), t)).collect();
    let ws_names: HashMap<String, String> =
        workspaces.into_iter().map(|w| (w.id, w.name)).collect();
    let mut by_provider: HashMap<String, Vec<Value>> = HashMap::new();
    for row in rows {
        let (place, scope_name) = match CredentialScope::parse_stored(&row.scope) {
            Some(CredentialScope::Org) | None => (Place::org(), "org".to_string()),
            Some(CredentialScope::Workspace(id)) => (
                Place::workspace(&id),
                format!(
                    "workspace:{}",
                    ws_names.get(&id).map_or(id.as_str(), String::as_str)
                ),
            ),
            Some(CredentialScope::Team(id)) => match teams.get(&id) {
                Some(t) => (t.place(), format!("team:{}", t.name)),
                None => (Place::org(), format!("team:{id}")),
            },
        };
        if actor.reaches(Verb::Read, &place) {
            by_provider
                .entry(row.provider.clone())
                .or_default()
                .push(credential_json(&row, &scope_name));
        }
    }
    let mut data = Vec::new();
    for p in &state.config.providers {
        data.push(json!({
            "name": p.name,
            "kind": p.kind.as_str(),
            "configured": true,
            "config_credential": p.api_key.is_some() || p.access_key_id.is_some(),
            "credentials": by_provider.remove(&p.name).unwrap_or_default(),
        }));
    }
    // Credentials of providers no longer in the configuration are still listed, so they can
    // be found and deleted.
    let mut rest: Vec<_> = by_provider.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, creds) in rest {
        data.push(json!({
            "name": name,
            "kind": null,
            "configured": false,
            "config_credential": false,
            "credentials": creds,
        }));
    }
    Ok(Json(json!({"data": data})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateMasterKey {
    /// A file on the gateway's host holding the new key, so the key never crosses the wire.
    new_key_file: String,
}

/// `POST /master-key/rotate`: re-seals every provider credential under a new master key
/// without a restart. Org admins only.
pub async fn rotate_master_key(
    State(state): State<Arc<AppState>>,
    Extension(actor): Extension<Arc<Actor>>,
    body: Result<Json<RotateMasterKey>, JsonRejection>,
) -> AdminResult {
    check(authorize(
        &actor,
        Verb::Write,
        Resource::Credential,
        &Place::org(),
        "the master key",
    ))?;
    let b = json_body(body)?;
    let st = state.clone();
    let (resealed, old_version, version) = tokio::task::spawn_blocking(move || {
        let text = std::fs::read_to_string(&b.new_key_file)
            .map_err(|e| format!("cannot read {}: {e}", b.new_key_file))?;
        st.vault.rotate(&st.store, &text)
    })
    .await
    .map_err(|_| AdminError::internal("admin task failed"))?
    .map_err(AdminError::bad)?;
    let source = match state.vault.key_source() {
        KeySource::Env => "env",
        KeySource::File(_) => "file",
    };
    audit(
        &state,
        &actor,
        Change {
            action: "master_key.rotate",
            target: "master-key",
            place: &Place::org(),
            before: Some(json!({"key_version": old_version})),
            after: Some(json!({"key_version": version, "resealed": resealed})),
        },
    )
    .await?;
    let mut v = json!({"resealed": resealed, "key_version": version, "key_source": source});
    if source == "env" {
        v["note"] = json!(
            "set TOLLGATE_MASTER_KEY to the new key before the next start; the old key no longer decrypts the store"
        );
    }
    Ok(Json(v))
}
