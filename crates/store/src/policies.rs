//! Policies written through the admin API, kept as validated JSON specs.

use crate::entities::{Store, new_id, now};
use crate::error::StoreError;
use rusqlite::{OptionalExtension, params};
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

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
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
        self.conn().execute(
            "INSERT INTO policies (id, scope, spec, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![id, spec.scope.0.to_string(), json, at],
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
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, spec, created_at, updated_at FROM policies ORDER BY created_at, id",
        )?;
        let rows = st.query_map([], row)?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(decode(r?));
        }
        Ok(out)
    }

    /// One stored policy.
    pub fn get_policy(&self, id: &str) -> Result<PolicyRow, StoreError> {
        self.conn()
            .query_row(
                "SELECT id, spec, created_at, updated_at FROM policies WHERE id = ?1",
                [id],
                row,
            )
            .optional()?
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
        self.conn().execute(
            "UPDATE policies SET scope = ?2, spec = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, spec.scope.0.to_string(), json, at],
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
        self.conn()
            .execute("DELETE FROM policies WHERE id = ?1", [id])?;
        Ok(before)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tollgate_govern::policy::{RateSpec, Scope, ScopeField};

    #[test]
    fn policies_are_validated_stored_and_replaced() {
        let dir = std::env::temp_dir().join(format!("tg-pol-{}", new_id("t")));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Store::open(&dir.join("db.sqlite")).unwrap();
        let mut spec = PolicySpec {
            scope: ScopeField(Scope::Team("platform".into())),
            rate: Some(RateSpec {
                requests_per_minute: Some(60),
                ..RateSpec::default()
            }),
            ..PolicySpec::default()
        };
        let row = s.create_policy(&spec).unwrap();
        assert_eq!(s.list_policies().unwrap(), vec![row.clone()]);
        spec.rate = Some(RateSpec {
            requests_per_minute: Some(0),
            ..RateSpec::default()
        });
        assert!(matches!(
            s.create_policy(&spec),
            Err(StoreError::Invalid(_))
        ));
        spec.rate = None;
        let (before, after) = s.replace_policy(&row.id, &spec).unwrap();
        assert_eq!(before, row);
        assert_eq!(s.get_policy(&row.id).unwrap(), after);
        s.delete_policy(&row.id).unwrap();
        assert!(matches!(
            s.get_policy(&row.id),
            Err(StoreError::NotFound(_))
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
