//! Policies written through the admin API, kept as validated JSON specs.

use crate::Store;
use crate::db::{Row, args};
use crate::entities::{new_id, now};
use crate::error::StoreError;
use serde::Serialize;
use tollgate_govern::policy::PolicySpec;

/// A stored policy.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyRow {
    pub id: String,
    #[serde(flatten)]
    pub spec: PolicySpec,
    pub created_at: String,
    pub updated_at: String,
}

fn row(r: &Row) -> Result<(String, String, String, String), StoreError> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode(
    (id, spec, created_at, updated_at): (String, String, String, String),
) -> Option<PolicyRow> {
    match serde_json::from_str::<PolicySpec>(&spec) {
        Ok(spec) => Some(PolicyRow {
            id,
            spec,
            created_at,
            updated_at,
        }),
        Err(e) => {
            // Specs are validated on the way in, so this is a downgrade reading a newer
            // schema; skipping it is logged loudly rather than failing every request.
            tracing::error!(policy = %id, error = %e, "stored policy cannot be read; it is not enforced");
            None
        }
    }
}

fn encode(spec: &PolicySpec) -> Result<String, StoreError> {
    spec.validate().map_err(StoreError::Invalid)?;
    serde_json::to_string(spec).map_err(|e| StoreError::Invalid(e.to_string()))
}

impl Store {
    /// Stores a new policy after validating it.
    pub fn create_policy(&self, spec: &PolicySpec) -> Result<PolicyRow, StoreError> {
        let json = encode(spec)?;
        let id = new_id("pol");
        let at = now();
        self.db().exec(
            "INSERT INTO policies (id, scope, spec, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            args![&id, spec.scope.0.to_string(), json, &at],
        )?;
        Ok(PolicyRow {
            id,
            spec: spec.clone(),
            created_at: at.clone(),
            updated_at: at,
        })
    }

    /// Every stored policy, oldest first.
    pub fn list_policies(&self) -> Result<Vec<PolicyRow>, StoreError> {
        let rows = self.db().query(
            "SELECT id, spec, created_at, updated_at FROM policies ORDER BY created_at, id",
            args![],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.extend(decode(row(r)?));
        }
        Ok(out)
    }

    /// One stored policy.
    pub fn get_policy(&self, id: &str) -> Result<PolicyRow, StoreError> {
        self.db()
            .query_opt(
                "SELECT id, spec, created_at, updated_at FROM policies WHERE id = ?1",
                args![id],
            )?
            .as_ref()
            .map(row)
            .transpose()?
            .and_then(decode)
            .ok_or_else(|| StoreError::NotFound(format!("policy {id}")))
    }

    /// Replaces a policy's spec; returns the row as it was before and as it is now.
    pub fn replace_policy(
        &self,
        id: &str,
        spec: &PolicySpec,
    ) -> Result<(PolicyRow, PolicyRow), StoreError> {
        let before = self.get_policy(id)?;
        let json = encode(spec)?;
        let at = now();
        self.db().exec(
            "UPDATE policies SET scope = ?2, spec = ?3, updated_at = ?4 WHERE id = ?1",
            args![id, spec.scope.0.to_string(), json, &at],
        )?;
        let after = PolicyRow {
            id: id.to_string(),
            spec: spec.clone(),
            created_at: before.created_at.clone(),
            updated_at: at,
        };
        Ok((before, after))
    }

    /// Deletes a policy; returns what it was.
    pub fn delete_policy(&self, id: &str) -> Result<PolicyRow, StoreError> {
        let before = self.get_policy(id)?;
        self.db()
            .exec("DELETE FROM policies WHERE id = ?1", args![id])?;
        Ok(before)
    }
}
