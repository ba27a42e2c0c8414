//! Entity rows and their queries: workspaces, teams, users and gateway keys.

use crate::Store;
use crate::db::{Db, Row, args};
use crate::error::StoreError;
use serde::Serialize;
use tollgate_govern::policy::Scope;
use tollgate_govern::roles::Place;
use tollgate_govern::{KeyHash, Principal};

/// The organisation every entity belongs to until multi-org administration exists.
pub const DEFAULT_ORG: &str = "org_default";
/// The workspace teams land in when none is named (and where teams made before workspaces
/// existed were moved).
pub const DEFAULT_WORKSPACE: &str = "ws_default";
/// Service keys act as this pseudo-user followed by the team (`svc:platform`), so journal
/// records and `user:` policies still name who spent.
pub const SERVICE_USER_PREFIX: &str = "svc:";

/// A workspace: a group of teams with its own admins, caps and provider credentials.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// A team, inside one workspace.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub workspace_id: String,
    pub workspace: String,
    pub created_at: String,
}

impl Team {
    /// Where the team sits.
    pub fn place(&self) -> Place {
        Place::team(&self.workspace_id, &self.id)
    }
}

/// A user; `team` is the user's default team, if any. Users without a team belong to the
/// default workspace.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub team: Option<String>,
    pub team_id: Option<String>,
    pub workspace_id: String,
    pub created_at: String,
}

impl User {
    /// Where the user sits.
    pub fn place(&self) -> Place {
        Place {
            workspace_id: Some(self.workspace_id.clone()),
            team_id: self.team_id.clone(),
            user_id: Some(self.id.clone()),
        }
    }
}

/// A gateway key as listed: never the secret, only its display prefix. A key without a user
/// is a team's service key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub name: Option<String>,
    pub prefix: String,
    pub user: Option<String>,
    pub user_id: Option<String>,
    pub team: Option<String>,
    pub team_id: Option<String>,
    pub workspace_id: String,
    /// The project requests are attributed to when they send no `x-tollgate-project`.
    pub project: Option<String>,
    pub service: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl KeyRow {
    /// Where the key sits (its user's place, with the team the key bills to).
    pub fn place(&self) -> Place {
        Place {
            workspace_id: Some(self.workspace_id.clone()),
            team_id: self.team_id.clone(),
            user_id: self.user_id.clone(),
        }
    }
}

/// What is needed to store a new key; the secret itself never reaches the store. Without a
/// user it is a service key of `team`.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub hash: KeyHash,
    pub prefix: String,
    pub name: Option<String>,
    pub user: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
}

pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn new_id(prefix: &str) -> String {
    let u = uuid::Uuid::now_v7().simple().to_string();
    format!("{prefix}_{}", &u[u.len() - 16..])
}

impl Store {
    /// Creates a workspace with a unique name.
    pub fn create_workspace(&self, name: &str) -> Result<Workspace, StoreError> {
        let name = valid_name("workspace", name)?;
        let mut db = self.db();
        if find_workspace(&mut db, name)?.is_some() {
            return Err(StoreError::Conflict(format!("workspace '{name}'")));
        }
        let ws = Workspace {
            id: new_id("ws"),
            name: name.to_string(),
            created_at: now(),
        };
        db.exec(
            "INSERT INTO workspaces (id, org_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            args![&ws.id, DEFAULT_ORG, &ws.name, &ws.created_at],
        )?;
        Ok(ws)
    }

    /// Every workspace, by name.
    pub fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        self.db()
            .query(
                "SELECT id, name, created_at FROM workspaces ORDER BY name",
                args![],
            )?
            .iter()
            .map(workspace_row)
            .collect()
    }

    /// A workspace by id or name.
    pub fn workspace(&self, key: &str) -> Result<Workspace, StoreError> {
        find_workspace(&mut self.db(), key)?
            .ok_or_else(|| StoreError::NotFound(format!("workspace '{key}'")))
    }

    /// Creates a team with a unique name in `workspace` (name or id; the default workspace
    /// when `None`).
    pub fn create_team(&self, name: &str, workspace: Option<&str>) -> Result<Team, StoreError> {
        let name = valid_name("team", name)?;
        let mut db = self.db();
        if find_team(&mut db, name)?.is_some() {
            return Err(StoreError::Conflict(format!("team '{name}'")));
        }
        let ws_key = workspace.unwrap_or(DEFAULT_WORKSPACE);
        let ws = find_workspace(&mut db, ws_key)?
            .ok_or_else(|| StoreError::NotFound(format!("workspace '{ws_key}'")))?;
        let team = Team {
            id: new_id("team"),
            name: name.to_string(),
            workspace_id: ws.id,
            workspace: ws.name,
            created_at: now(),
        };
        db.exec(
            "INSERT INTO teams (id, org_id, name, created_at, workspace_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![&team.id, DEFAULT_ORG, &team.name, &team.created_at, &team.workspace_id],
        )?;
        Ok(team)
    }

    /// Every team, by name.
    pub fn list_teams(&self) -> Result<Vec<Team>, StoreError> {
        self.db()
            .query(&format!("{TEAM_SELECT} ORDER BY t.name"), args![])?
            .iter()
            .map(team_row)
            .collect()
    }

    /// A team by id or name.
    pub fn team(&self, key: &str) -> Result<Team, StoreError> {
        find_team(&mut self.db(), key)?.ok_or_else(|| StoreError::NotFound(format!("team '{key}'")))
    }

    /// Creates a user; `team` (name or id) must exist.
    pub fn create_user(
        &self,
        name: &str,
        team: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, StoreError> {
        let name = valid_name("user", name)?;
        if name.starts_with(SERVICE_USER_PREFIX) {
            return Err(StoreError::Invalid(format!(
                "user names starting with '{SERVICE_USER_PREFIX}' are reserved for service keys"
            )));
        }
        let mut db = self.db();
        if find_user(&mut db, name)?.is_some() {
            return Err(StoreError::Conflict(format!("user '{name}'")));
        }
        let team = match team {
            Some(t) => Some(
                find_team(&mut db, t)?
                    .ok_or_else(|| StoreError::NotFound(format!("team '{t}'")))?,
            ),
            None => None,
        };
        let user = User {
            id: new_id("usr"),
            name: name.to_string(),
            email: email.map(str::to_string),
            team: team.as_ref().map(|t| t.name.clone()),
            team_id: team.as_ref().map(|t| t.id.clone()),
            workspace_id: team
                .as_ref()
                .map_or(DEFAULT_WORKSPACE.to_string(), |t| t.workspace_id.clone()),
            created_at: now(),
        };
        db.exec(
            "INSERT INTO users (id, org_id, name, email, team_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![
                &user.id,
                DEFAULT_ORG,
                &user.name,
                &user.email,
                &user.team_id,
                &user.created_at
            ],
        )?;
        Ok(user)
    }

    /// Every user, by name.
    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.db()
            .query(&format!("{USER_SELECT} ORDER BY u.name"), args![])?
            .iter()
            .map(user_row)
            .collect()
    }

    /// A user by id or name.
    pub fn user(&self, key: &str) -> Result<User, StoreError> {
        find_user(&mut self.db(), key)?.ok_or_else(|| StoreError::NotFound(format!("user '{key}'")))
    }

    /// Creates a key. With a user, the key's team defaults to the user's team; without one it
    /// is a service key and needs a team.
    pub fn create_key(&self, new: &NewKey) -> Result<KeyRow, StoreError> {
        let mut db = self.db();
        let user = match new.user.as_deref() {
            Some(u) => Some(
                find_user(&mut db, u)?
                    .ok_or_else(|| StoreError::NotFound(format!("user '{u}'")))?,
            ),
            None => None,
        };
        let team_key = new
            .team
            .as_deref()
            .or_else(|| user.as_ref().and_then(|u| u.team_id.as_deref()));
        let team = match team_key {
            Some(t) => Some(
                find_team(&mut db, t)?
                    .ok_or_else(|| StoreError::NotFound(format!("team '{t}'")))?,
            ),
            None => None,
        };
        if user.is_none() && team.is_none() {
            return Err(StoreError::Invalid(
                "a key needs a user, or a team for a service key".into(),
            ));
        }
        let project = match new.project.as_deref() {
            Some(p) => Some(valid_name("project", p)?.to_string()),
            None => None,
        };
        let row = KeyRow {
            id: new_id("key"),
            name: new.name.clone(),
            prefix: new.prefix.clone(),
            user: user.as_ref().map(|u| u.name.clone()),
            user_id: user.as_ref().map(|u| u.id.clone()),
            team: team.as_ref().map(|t| t.name.clone()),
            team_id: team.as_ref().map(|t| t.id.clone()),
            workspace_id: team
                .as_ref()
                .map_or(DEFAULT_WORKSPACE.to_string(), |t| t.workspace_id.clone()),
            project,
            service: user.is_none(),
            created_at: now(),
            revoked_at: None,
        };
        db.exec(
            "INSERT INTO api_keys (id, key_hash, prefix, name, user_id, team_id, project, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![
                &row.id,
                &new.hash[..],
                &row.prefix,
                &row.name,
                &row.user_id,
                &row.team_id,
                &row.project,
                &row.created_at
            ],
        )?;
        Ok(row)
    }

    /// Every key, newest first.
    pub fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        self.db()
            .query(
                &format!("{KEY_SELECT} ORDER BY k.created_at DESC, k.id DESC"),
                args![],
            )?
            .iter()
            .map(key_row)
            .collect()
    }

    /// One key by id.
    pub fn key(&self, id: &str) -> Result<KeyRow, StoreError> {
        find_key(&mut self.db(), id)?.ok_or_else(|| StoreError::NotFound(format!("key '{id}'")))
    }

    /// Revokes a key; revoking twice is not an error and keeps the first revocation time.
    pub fn revoke_key(&self, id: &str) -> Result<KeyRow, StoreError> {
        let mut db = self.db();
        let n = db.exec(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            args![id, now()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("key '{id}'")));
        }
        find_key(&mut db, id)?.ok_or_else(|| StoreError::NotFound(format!("key '{id}'")))
    }

    /// Every active key with its principal: the input of the identity snapshot.
    pub fn active_identities(&self) -> Result<Vec<(KeyHash, Principal)>, StoreError> {
        let rows = self.db().query(
            "SELECT k.key_hash, k.id, k.name, u.id, u.name, t.id, t.name, w.id, w.name, k.project,
                    w.org_id
             FROM api_keys k LEFT JOIN users u ON u.id = k.user_id
             LEFT JOIN teams t ON t.id = k.team_id
             JOIN workspaces w ON w.id = COALESCE(t.workspace_id, ?1)
             WHERE k.revoked_at IS NULL",
            args![DEFAULT_WORKSPACE],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let team_id: Option<String> = r.get(5)?;
            let team: Option<String> = r.get(6)?;
            let user_id: Option<String> = r.get(3)?;
            let user: Option<String> = r.get(4)?;
            let (user_id, user) = match (user_id, user) {
                (Some(id), Some(name)) => (id, name),
                // A service key: the team stands in for the user.
                _ => (
                    format!("{SERVICE_USER_PREFIX}{}", team_id.as_deref().unwrap_or("")),
                    format!("{SERVICE_USER_PREFIX}{}", team.as_deref().unwrap_or("")),
                ),
            };
            let hash: Vec<u8> = r.get(0)?;
            let Ok(hash) = <KeyHash>::try_from(hash.as_slice()) else {
                continue;
            };
            out.push((
                hash,
                Principal {
                    org_id: r.get(10)?,
                    workspace_id: r.get(7)?,
                    workspace: r.get(8)?,
                    team_id,
                    team,
                    user_id,
                    user,
                    key_id: r.get(1)?,
                    key_name: r.get(2)?,
                    default_project: r.get(9)?,
                },
            ));
        }
        Ok(out)
    }
}

impl Store {
    /// Where a policy scope sits. Workspace, team, user and key scopes must name something
    /// that exists; project, model and provider scopes cut across the hierarchy and sit at the
    /// organisation.
    pub fn place_of_scope(&self, scope: &Scope) -> Result<Place, StoreError> {
        let mut db = self.db();
        let missing = |what: &str, k: &str| {
            StoreError::Invalid(format!("scope {what}:{k} names no existing {what}"))
        };
        Ok(match scope {
            Scope::Org | Scope::Project(_) | Scope::Model(_) | Scope::Provider(_) => Place::org(),
            Scope::Workspace(w) => Place::workspace(
                find_workspace(&mut db, w)?
                    .ok_or_else(|| missing("workspace", w))?
                    .id,
            ),
            Scope::Team(t) => find_team(&mut db, t)?
                .ok_or_else(|| missing("team", t))?
                .place(),
            Scope::User(u) => find_user(&mut db, u)?
                .ok_or_else(|| missing("user", u))?
                .place(),
            Scope::Key(k) => find_key(&mut db, k)?
                .ok_or_else(|| missing("key", k))?
                .place(),
        })
    }
}

const TEAM_SELECT: &str = "SELECT t.id, t.name, w.id, w.name, t.created_at
     FROM teams t JOIN workspaces w ON w.id = COALESCE(t.workspace_id, 'ws_default')";

const USER_SELECT: &str = "SELECT u.id, u.name, u.email, t.name, t.id,
     COALESCE(t.workspace_id, 'ws_default'), u.created_at
     FROM users u LEFT JOIN teams t ON t.id = u.team_id";

const KEY_SELECT: &str = "SELECT k.id, k.name, k.prefix, u.name, u.id, t.name, t.id,
     COALESCE(t.workspace_id, 'ws_default'), k.project, k.created_at, k.revoked_at
     FROM api_keys k LEFT JOIN users u ON u.id = k.user_id LEFT JOIN teams t ON t.id = k.team_id";

fn workspace_row(r: &Row) -> Result<Workspace, StoreError> {
    Ok(Workspace {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

fn team_row(r: &Row) -> Result<Team, StoreError> {
    Ok(Team {
        id: r.get(0)?,
        name: r.get(1)?,
        workspace_id: r.get(2)?,
        workspace: r.get(3)?,
        created_at: r.get(4)?,
    })
}

fn user_row(r: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        email: r.get(2)?,
        team: r.get(3)?,
        team_id: r.get(4)?,
        workspace_id: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn key_row(r: &Row) -> Result<KeyRow, StoreError> {
    let user_id: Option<String> = r.get(4)?;
    Ok(KeyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        prefix: r.get(2)?,
        user: r.get(3)?,
        service: user_id.is_none(),
        user_id,
        team: r.get(5)?,
        team_id: r.get(6)?,
        workspace_id: r.get(7)?,
        project: r.get(8)?,
        created_at: r.get(9)?,
        revoked_at: r.get(10)?,
    })
}

pub(crate) fn valid_name<'a>(what: &str, name: &'a str) -> Result<&'a str, StoreError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} name must be 1 to 200 printable characters"
        )));
    }
    Ok(name)
}

/// A workspace by id or name.
pub(crate) fn find_workspace(db: &mut Db<'_>, key: &str) -> Result<Option<Workspace>, StoreError> {
    db.query_opt(
        "SELECT id, name, created_at FROM workspaces WHERE id = ?1 OR (org_id = ?2 AND name = ?1)",
        args![key, DEFAULT_ORG],
    )?
    .as_ref()
    .map(workspace_row)
    .transpose()
}

/// A team by id or name.
pub(crate) fn find_team(db: &mut Db<'_>, key: &str) -> Result<Option<Team>, StoreError> {
    db.query_opt(
        &format!("{TEAM_SELECT} WHERE t.id = ?1 OR (t.org_id = ?2 AND t.name = ?1)"),
        args![key, DEFAULT_ORG],
    )?
    .as_ref()
    .map(team_row)
    .transpose()
}

/// A user by id or name.
pub(crate) fn find_user(db: &mut Db<'_>, key: &str) -> Result<Option<User>, StoreError> {
    db.query_opt(
        &format!("{USER_SELECT} WHERE u.id = ?1 OR (u.org_id = ?2 AND u.name = ?1)"),
        args![key, DEFAULT_ORG],
    )?
    .as_ref()
    .map(user_row)
    .transpose()
}

/// A key by id.
fn find_key(db: &mut Db<'_>, id: &str) -> Result<Option<KeyRow>, StoreError> {
    db.query_opt(&format!("{KEY_SELECT} WHERE k.id = ?1"), args![id])?
        .as_ref()
        .map(key_row)
        .transpose()
}
