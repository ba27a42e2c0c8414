//! Admin credentials: hashed secrets with a role and the part of the hierarchy it governs.

use crate::Store;
use crate::db::{Db, Row, args};
use crate::entities::{find_team, find_user, find_workspace, new_id, now, valid_name};
use crate::error::StoreError;
use serde::Serialize;
use tollgate_govern::KeyHash;
use tollgate_govern::roles::{Place, Role};

/// An admin credential as listed: never the secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AdminRow {
    pub id: String,
    pub name: Option<String>,
    pub role: Role,
    pub workspace_id: Option<String>,
    pub workspace: Option<String>,
    pub team_id: Option<String>,
    pub team: Option<String>,
    pub user_id: Option<String>,
    pub user: Option<String>,
    pub prefix: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl AdminRow {
    /// The part of the hierarchy the credential governs (empty for org admins and auditors).
    pub fn place(&self) -> Place {
        Place {
            workspace_id: self.workspace_id.clone(),
            team_id: self.team_id.clone(),
            user_id: self.user_id.clone(),
        }
    }

    /// That part in words, e.g. `team platform`; empty for org-wide roles.
    pub fn scope_label(&self) -> String {
        match self.role {
            Role::OrgAdmin | Role::Auditor => String::new(),
            Role::WorkspaceAdmin => {
                format!("workspace {}", self.workspace.as_deref().unwrap_or("?"))
            }
            Role::TeamAdmin => format!("team {}", self.team.as_deref().unwrap_or("?")),
            Role::Member => format!("user {}", self.user.as_deref().unwrap_or("?")),
        }
    }
}

/// A new admin credential; the role decides which of workspace, team and user it names.
#[derive(Debug, Clone)]
pub struct NewAdmin {
    pub hash: KeyHash,
    pub prefix: String,
    pub name: String,
    pub role: Role,
    pub workspace: Option<String>,
    pub team: Option<String>,
    pub user: Option<String>,
}

const ADMIN_SELECT: &str = "SELECT a.id, a.name, a.role, a.workspace_id, w.name, a.team_id, t.name,
     a.user_id, u.name, a.prefix, a.created_at, a.revoked_at
     FROM admin_credentials a LEFT JOIN workspaces w ON w.id = a.workspace_id
     LEFT JOIN teams t ON t.id = a.team_id LEFT JOIN users u ON u.id = a.user_id";

fn admin_row(r: &Row) -> Result<AdminRow, StoreError> {
    let role: String = r.get(2)?;
    Ok(AdminRow {
        id: r.get(0)?,
        name: r.get(1)?,
        // Roles are validated on the way in; an unknown one (a newer schema) grants least.
        role: role.parse().unwrap_or(Role::Auditor),
        workspace_id: r.get(3)?,
        workspace: r.get(4)?,
        team_id: r.get(5)?,
        team: r.get(6)?,
        user_id: r.get(7)?,
        user: r.get(8)?,
        prefix: r.get(9)?,
        created_at: r.get(10)?,
        revoked_at: r.get(11)?,
    })
}

fn find_admin(db: &mut Db<'_>, id: &str) -> Result<Option<AdminRow>, StoreError> {
    db.query_opt(&format!("{ADMIN_SELECT} WHERE a.id = ?1"), args![id])?
        .as_ref()
        .map(admin_row)
        .transpose()
}

impl Store {
    /// Stores the hash of the bootstrap admin credential (`admin.key`), an org admin.
    pub fn add_admin_credential(&self, hash: &KeyHash) -> Result<(), StoreError> {
        self.db().exec(
            "INSERT INTO admin_credentials (id, key_hash, created_at, name, role)
             VALUES (?1, ?2, ?3, 'admin.key', 'org_admin') ON CONFLICT DO NOTHING",
            args![new_id("adm"), &hash[..], now()],
        )?;
        Ok(())
    }

    /// Whether any admin credential was ever stored (active or revoked): a store that has one
    /// is past its first start, so no replica mints a bootstrap credential for it again.
    pub fn has_admin_credentials(&self) -> Result<bool, StoreError> {
        Ok(self
            .db()
            .query_opt("SELECT 1 FROM admin_credentials LIMIT 1", args![])?
            .is_some())
    }

    /// Hashes of every active admin credential.
    pub fn admin_credentials(&self) -> Result<Vec<KeyHash>, StoreError> {
        let rows = self.db().query(
            "SELECT key_hash FROM admin_credentials WHERE revoked_at IS NULL",
            args![],
        )?;
        let mut out = Vec::new();
        for r in &rows {
            if let Ok(h) = <KeyHash>::try_from(r.get::<Vec<u8>>(0)?.as_slice()) {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// Resolves where a new credential would sit without storing it, so the caller can
    /// authorise the grant first. Checks that the role names exactly what it needs.
    pub fn admin_place(
        &self,
        role: Role,
        workspace: Option<&str>,
        team: Option<&str>,
        user: Option<&str>,
    ) -> Result<(Place, String), StoreError> {
        let mut db = self.db();
        let given = |w: bool, t: bool, u: bool| {
            workspace.is_some() == w && team.is_some() == t && user.is_some() == u
        };
        let invalid = |need: &str| StoreError::Invalid(format!("role {role} needs {need}"));
        match role {
            Role::OrgAdmin | Role::Auditor => {
                if !given(false, false, false) {
                    return Err(invalid("no workspace, team or user (it is org-wide)"));
                }
                Ok((Place::org(), "the organisation".into()))
            }
            Role::WorkspaceAdmin => {
                let (true, Some(w)) = (given(true, false, false), workspace) else {
                    return Err(invalid("a workspace and no team or user"));
                };
                let ws = find_workspace(&mut db, w)?
                    .ok_or_else(|| StoreError::NotFound(format!("workspace '{w}'")))?;
                Ok((Place::workspace(ws.id), format!("workspace {}", ws.name)))
            }
            Role::TeamAdmin => {
                let (true, Some(t)) = (given(false, true, false), team) else {
                    return Err(invalid("a team and no workspace or user"));
                };
                let team = find_team(&mut db, t)?
                    .ok_or_else(|| StoreError::NotFound(format!("team '{t}'")))?;
                Ok((team.place(), format!("team {}", team.name)))
            }
            Role::Member => {
                let (true, Some(u)) = (given(false, false, true), user) else {
                    return Err(invalid("a user and no workspace or team"));
                };
                let user = find_user(&mut db, u)?
                    .ok_or_else(|| StoreError::NotFound(format!("user '{u}'")))?;
                Ok((user.place(), format!("user {}", user.name)))
            }
        }
    }

    /// Stores a new admin credential.
    pub fn create_admin(&self, new: &NewAdmin) -> Result<AdminRow, StoreError> {
        let name = valid_name("admin credential", &new.name)?.to_string();
        let (place, _) = self.admin_place(
            new.role,
            new.workspace.as_deref(),
            new.team.as_deref(),
            new.user.as_deref(),
        )?;
        let id = new_id("adm");
        let mut db = self.db();
        db.exec(
            "INSERT INTO admin_credentials (id, key_hash, created_at, name, role, workspace_id,
             team_id, user_id, prefix) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            args![
                &id,
                &new.hash[..],
                now(),
                name,
                new.role.as_str(),
                place.workspace_id,
                place.team_id,
                place.user_id,
                &new.prefix
            ],
        )?;
        find_admin(&mut db, &id)?
            .ok_or_else(|| StoreError::NotFound(format!("admin credential '{id}'")))
    }

    /// Every admin credential, oldest first.
    pub fn list_admins(&self) -> Result<Vec<AdminRow>, StoreError> {
        self.db()
            .query(
                &format!("{ADMIN_SELECT} ORDER BY a.created_at, a.id"),
                args![],
            )?
            .iter()
            .map(admin_row)
            .collect()
    }

    /// One admin credential by id.
    pub fn admin(&self, id: &str) -> Result<AdminRow, StoreError> {
        find_admin(&mut self.db(), id)?
            .ok_or_else(|| StoreError::NotFound(format!("admin credential '{id}'")))
    }

    /// The active credential with this hash.
    pub fn admin_by_hash(&self, hash: &KeyHash) -> Result<Option<AdminRow>, StoreError> {
        self.db()
            .query_opt(
                &format!("{ADMIN_SELECT} WHERE a.key_hash = ?1 AND a.revoked_at IS NULL"),
                args![&hash[..]],
            )?
            .as_ref()
            .map(admin_row)
            .transpose()
    }

    /// Revokes an admin credential; returns it before and after.
    pub fn revoke_admin(&self, id: &str) -> Result<(AdminRow, AdminRow), StoreError> {
        let before = self.admin(id)?;
        self.db().exec(
            "UPDATE admin_credentials SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            args![id, now()],
        )?;
        Ok((before, self.admin(id)?))
    }
}
