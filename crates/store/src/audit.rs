//! The admin audit log: who changed what, when, and the target before and after.

use crate::Store;
use crate::db::args;
use crate::entities::now;
use crate::error::StoreError;
use serde::Serialize;
use serde_json::Value;
use tollgate_govern::roles::{Actor, Place};

/// One admin action as read back.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    /// The actor's credential name.
    pub actor: String,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub target: String,
    /// The target before the change (`null` when it was created).
    pub before: Value,
    /// The target after the change (`null` when it was deleted).
    pub after: Value,
    pub workspace_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
}

/// One admin action to record. `before` and `after` are the caller's redacted views of the
/// target: secrets never reach this type.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub target: &'a str,
    /// Where the target sits, so admins of that part of the hierarchy can read the entry.
    pub place: &'a Place,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Store {
    /// Appends an admin action to the audit log.
    pub fn record_audit(&self, rec: &AuditRecord<'_>) -> Result<(), StoreError> {
        let json = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        self.db().exec(
            "INSERT INTO admin_audit (at, actor, action, target, detail, actor_id, actor_role,
             before_json, after_json, workspace_id, team_id, user_id)
             VALUES (?1, ?2, ?3, ?4, '{}', ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            args![
                now(),
                &rec.actor.name,
                rec.action,
                rec.target,
                &rec.actor.id,
                rec.actor.role.as_str(),
                json(&rec.before),
                json(&rec.after),
                &rec.place.workspace_id,
                &rec.place.team_id,
                &rec.place.user_id
            ],
        )?;
        Ok(())
    }

    /// The newest audit entries first, only those whose target lies `within` a place (every
    /// field that is set must match; `Place::org()` reads everything).
    pub fn audit_log(&self, limit: u32, within: &Place) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self.db().query(
            "SELECT seq, at, actor, actor_id, actor_role, action, target, before_json, after_json,
                    detail, workspace_id, team_id, user_id
             FROM admin_audit
             WHERE (?2 IS NULL OR workspace_id = ?2) AND (?3 IS NULL OR team_id = ?3)
               AND (?4 IS NULL OR user_id = ?4)
             ORDER BY seq DESC LIMIT ?1",
            args![
                limit,
                &within.workspace_id,
                &within.team_id,
                &within.user_id
            ],
        )?;
        let parse = |s: Option<String>| {
            s.and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(Value::Null)
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let before = parse(r.get(7)?);
            let mut after = parse(r.get(8)?);
            // Entries written before before/after existed kept the new state in `detail`.
            if before.is_null() && after.is_null() {
                after = parse(r.get(9)?)["after"].take();
            }
            out.push(AuditEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                actor_id: r.get(3)?,
                actor_role: r.get(4)?,
                action: r.get(5)?,
                target: r.get(6)?,
                before,
                after,
                workspace_id: r.get(10)?,
                team_id: r.get(11)?,
                user_id: r.get(12)?,
            });
        }
        Ok(out)
    }
}
