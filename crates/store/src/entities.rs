//! Entity rows and their queries.

use crate::error::StoreError;
use crate::schema::migrate;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;
use tollgate_govern::{KeyHash, Principal};

/// The organisation every entity belongs to until multi-org administration exists.
pub const DEFAULT_ORG: &str = "org_default";

/// A team.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// A user; `team` is the user's default team, if any.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub team: Option<String>,
    pub created_at: String,
}

/// A gateway key as listed: never the secret, only its display prefix.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub name: Option<String>,
    pub prefix: String,
    pub user: String,
    pub team: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// What is needed to store a new key; the secret itself never reaches the store.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub hash: KeyHash,
    pub prefix: String,
    pub name: Option<String>,
    pub user: String,
    pub team: Option<String>,
}

/// One admin action.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
}

/// The entity store. Calls are synchronous and short; async callers run them on a blocking
/// thread.
pub struct Store {
    conn: Mutex<Connection>,
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
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        conn.execute(
            "INSERT OR IGNORE INTO orgs (id, name, created_at) VALUES (?1, 'default', ?2)",
            params![DEFAULT_ORG, now()],
        )?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores the hash of an admin credential.
    pub fn add_admin_credential(&self, hash: &KeyHash) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO admin_credentials (id, key_hash, created_at) VALUES (?1, ?2, ?3)",
            params![new_id("adm"), &hash[..], now()],
        )?;
        Ok(())
    }

    /// Hashes of every admin credential.
    pub fn admin_credentials(&self) -> Result<Vec<KeyHash>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT key_hash FROM admin_credentials")?;
        let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            if let Ok(h) = <KeyHash>::try_from(r?.as_slice()) {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// Creates a team with a unique name.
    pub fn create_team(&self, name: &str) -> Result<Team, StoreError> {
        let name = valid_name("team", name)?;
        let conn = self.conn();
        if find_team(&conn, name)?.is_some() {
            return Err(StoreError::Conflict(format!("team '{name}'")));
        }
        let team = Team {
            id: new_id("team"),
            name: name.to_string(),
            created_at: now(),
        };
        conn.execute(
            "INSERT INTO teams (id, org_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![team.id, DEFAULT_ORG, team.name, team.created_at],
        )?;
        Ok(team)
    }

    /// Every team, by name.
    pub fn list_teams(&self) -> Result<Vec<Team>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id, name, created_at FROM teams ORDER BY name")?;
        let rows = st.query_map([], |r| {
            Ok(Team {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Creates a user; `team` (name or id) must exist.
    pub fn create_user(
        &self,
        name: &str,
        team: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, StoreError> {
        let name = valid_name("user", name)?;
        let conn = self.conn();
        if find_user(&conn, name)?.is_some() {
            return Err(StoreError::Conflict(format!("user '{name}'")));
        }
        let team = match team {
            Some(t) => Some(
                find_team(&conn, t)?.ok_or_else(|| StoreError::NotFound(format!("team '{t}'")))?,
            ),
            None => None,
        };
        let user = User {
            id: new_id("usr"),
            name: name.to_string(),
            email: email.map(str::to_string),
            team: team.as_ref().map(|t| t.name.clone()),
            created_at: now(),
        };
        conn.execute(
            "INSERT INTO users (id, org_id, name, email, team_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                user.id,
                DEFAULT_ORG,
                user.name,
                user.email,
                team.map(|t| t.id),
                user.created_at
            ],
        )?;
        Ok(user)
    }

    /// Every user, by name.
    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT u.id, u.name, u.email, t.name, u.created_at FROM users u
             LEFT JOIN teams t ON t.id = u.team_id ORDER BY u.name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(User {
                id: r.get(0)?,
                name: r.get(1)?,
                email: r.get(2)?,
                team: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Creates a key for an existing user; the key's team defaults to the user's team.
    pub fn create_key(&self, new: &NewKey) -> Result<KeyRow, StoreError> {
        let conn = self.conn();
        let (user_id, user_name, user_team) = find_user(&conn, &new.user)?
            .ok_or_else(|| StoreError::NotFound(format!("user '{}'", new.user)))?;
        let team = match new.team.as_deref() {
            Some(t) => Some(
                find_team(&conn, t)?.ok_or_else(|| StoreError::NotFound(format!("team '{t}'")))?,
            ),
            None => match user_team {
                Some(tid) => find_team(&conn, &tid)?,
                None => None,
            },
        };
        let row = KeyRow {
            id: new_id("key"),
            name: new.name.clone(),
            prefix: new.prefix.clone(),
            user: user_name,
            team: team.as_ref().map(|t| t.name.clone()),
            created_at: now(),
            revoked_at: None,
        };
        conn.execute(
            "INSERT INTO api_keys (id, key_hash, prefix, name, user_id, team_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.id,
                &new.hash[..],
                row.prefix,
                row.name,
                user_id,
                team.map(|t| t.id),
                row.created_at
            ],
        )?;
        Ok(row)
    }

    /// Every key, newest first, revoked ones included.
    pub fn list_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "{KEY_SELECT} ORDER BY k.created_at DESC, k.id DESC"
        ))?;
        let rows = st.query_map([], key_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a key; revoking twice is not an error and keeps the first revocation time.
    pub fn revoke_key(&self, id: &str) -> Result<KeyRow, StoreError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, now()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("key '{id}'")));
        }
        conn.query_row(&format!("{KEY_SELECT} WHERE k.id = ?1"), [id], key_row)
            .map_err(StoreError::from)
    }

    /// Every active key with its principal: the input of the identity snapshot.
    pub fn active_identities(&self) -> Result<Vec<(KeyHash, Principal)>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT k.key_hash, k.id, k.name, u.id, u.name, u.org_id, t.id, t.name
             FROM api_keys k JOIN users u ON u.id = k.user_id
             LEFT JOIN teams t ON t.id = k.team_id
             WHERE k.revoked_at IS NULL",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                Principal {
                    key_id: r.get(1)?,
                    key_name: r.get(2)?,
                    user_id: r.get(3)?,
                    user: r.get(4)?,
                    org_id: r.get(5)?,
                    team_id: r.get(6)?,
                    team: r.get(7)?,
                    ..Principal::default()
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, p) = row?;
            if let Ok(h) = <KeyHash>::try_from(hash.as_slice()) {
                out.push((h, p));
            }
        }
        Ok(out)
    }

    /// Appends an admin action to the audit log.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO admin_audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now(), actor, action, target, detail.to_string()],
        )?;
        Ok(())
    }

    /// The newest audit entries first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT at, actor, action, target, detail FROM admin_audit ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| {
            let detail: String = r.get(4)?;
            Ok(AuditEntry {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

const KEY_SELECT: &str = "SELECT k.id, k.name, k.prefix, u.name, t.name, k.created_at, k.revoked_at
     FROM api_keys k JOIN users u ON u.id = k.user_id LEFT JOIN teams t ON t.id = k.team_id";

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        prefix: r.get(2)?,
        user: r.get(3)?,
        team: r.get(4)?,
        created_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

fn valid_name<'a>(what: &str, name: &'a str) -> Result<&'a str, StoreError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} name must be 1 to 200 printable characters"
        )));
    }
    Ok(name)
}

/// A team by id or name.
fn find_team(conn: &Connection, key: &str) -> Result<Option<Team>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, name, created_at FROM teams WHERE id = ?1 OR (org_id = ?2 AND name = ?1)",
            params![key, DEFAULT_ORG],
            |r| {
                Ok(Team {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// A user by id or name: (id, name, team id).
fn find_user(
    conn: &Connection,
    key: &str,
) -> Result<Option<(String, String, Option<String>)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, name, team_id FROM users WHERE id = ?1 OR (org_id = ?2 AND name = ?1)",
            params![key, DEFAULT_ORG],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tollgate_govern::hash_key;

    fn key(user: &str, team: Option<&str>, secret: &str) -> NewKey {
        NewKey {
            hash: hash_key(secret),
            prefix: secret[..3].into(),
            name: Some("laptop".into()),
            user: user.into(),
            team: team.map(str::to_string),
        }
    }

    #[test]
    fn keys_resolve_to_principals_until_revoked() {
        let dir = std::env::temp_dir().join(format!("tg-store-{}", new_id("t")));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Store::open(&dir.join("db.sqlite")).unwrap();
        s.create_team("platform").unwrap();
        assert!(matches!(
            s.create_team("platform"),
            Err(StoreError::Conflict(_))
        ));
        s.create_user("alice", Some("platform"), None).unwrap();
        let k = s.create_key(&key("alice", None, "tg-secret-1")).unwrap();
        assert_eq!(k.team.as_deref(), Some("platform"));
        let ids = s.active_identities().unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].0, hash_key("tg-secret-1"));
        assert_eq!(ids[0].1.user, "alice");
        assert_eq!(ids[0].1.team.as_deref(), Some("platform"));
        let r = s.revoke_key(&k.id).unwrap();
        assert!(r.revoked_at.is_some());
        assert!(s.active_identities().unwrap().is_empty());
        assert!(matches!(
            s.create_key(&key("bob", None, "tg-x")),
            Err(StoreError::NotFound(_))
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
