//! Principals and the snapshot that authenticates requests from memory.

use crate::keys::{KeyHash, hash_key};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything the pipeline knows about a caller once its key is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Principal {
    pub org_id: String,
    pub workspace_id: Option<String>,
    pub workspace: Option<String>,
    pub team_id: Option<String>,
    pub team: Option<String>,
    pub user_id: String,
    pub user: String,
    pub key_id: String,
    pub key_name: Option<String>,
    /// The project requests are attributed to when they name none (`x-tollgate-project`).
    pub default_project: Option<String>,
}

/// An immutable view of every active key, rebuilt whole on each change.
#[derive(Debug, Default)]
pub struct IdentitySnapshot {
    by_hash: HashMap<KeyHash, Arc<Principal>>,
}

impl IdentitySnapshot {
    /// A snapshot holding exactly these active keys.
    pub fn new(keys: impl IntoIterator<Item = (KeyHash, Principal)>) -> Self {
        Self {
            by_hash: keys.into_iter().map(|(h, p)| (h, Arc::new(p))).collect(),
        }
    }

    /// Number of active keys.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when no key is active.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// The live identity view: readers never lock, writers swap a new snapshot in.
#[derive(Debug, Default)]
pub struct Identities {
    current: ArcSwap<IdentitySnapshot>,
}

impl Identities {
    /// Starts from the given snapshot.
    pub fn new(snapshot: IdentitySnapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// Replaces the snapshot; requests already authenticated keep their principal.
    pub fn replace(&self, snapshot: IdentitySnapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// The principal owning `key`, if the key exists and is not revoked.
    pub fn authenticate(&self, key: &str) -> Option<Arc<Principal>> {
        let h = hash_key(key);
        self.current.load().by_hash.get(&h).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(key_id: &str) -> Principal {
        Principal {
            org_id: "org_default".into(),
            team_id: None,
            team: None,
            user_id: "usr_1".into(),
            user: "alice".into(),
            key_id: key_id.into(),
            key_name: None,
            ..Principal::default()
        }
    }

    #[test]
    fn revocation_is_a_snapshot_swap() {
        let ids = Identities::new(IdentitySnapshot::new([(
            hash_key("k1"),
            principal("key_1"),
        )]));
        assert_eq!(
            ids.authenticate("k1").map(|p| p.key_id.clone()),
            Some("key_1".into())
        );
        assert!(ids.authenticate("k2").is_none());
        ids.replace(IdentitySnapshot::default());
        assert!(ids.authenticate("k1").is_none());
    }
}
