//! Provider credentials held centrally: decrypted once into memory, looked up per request
//! without touching the database, replaced whole after every change.
//!
//! The master key comes from `TOLLGATE_MASTER_KEY` (base64 or hex of 32 bytes) or from
//! `<data-dir>/master.key`, created with mode 0600 on first start. Secrets are never logged:
//! [`ProviderSecret`]'s `Debug` is redacted and no error here carries a secret.

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tollgate_govern::Principal;
use tollgate_providers::{ProviderConfig, Upstream};
use tollgate_store::{Backend, CredentialRow, MasterKey, SecretError, Store, StoreError};

/// Environment variable holding the master key.
pub const MASTER_KEY_ENV: &str = "TOLLGATE_MASTER_KEY";
/// File holding the master key inside the data directory when the variable is not set.
pub const MASTER_KEY_FILE: &str = "master.key";
/// Where a rotation writes the next key before the database is re-sealed, so a crash in
/// between leaves the key that matches the database on disk.
const MASTER_KEY_NEXT: &str = "master.key.next";

/// A provider credential in clear, only ever in memory.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProviderSecret {
    /// An API key (Anthropic, OpenAI-style providers, Bedrock API keys).
    ApiKey { api_key: String },
    /// AWS credentials for SigV4 (Bedrock).
    Aws {
        access_key_id: String,
        secret_access_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<String>,
    },
    /// A Google service-account key file's JSON (Vertex).
    ServiceAccount { service_account_json: String },
}

impl ProviderSecret {
    /// The kind as stored and listed: `api_key`, `aws` or `service_account`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderSecret::ApiKey { .. } => "api_key",
            ProviderSecret::Aws { .. } => "aws",
            ProviderSecret::ServiceAccount { .. } => "service_account",
        }
    }
}

impl std::fmt::Debug for ProviderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProviderSecret::{}(<redacted>)", self.kind())
    }
}

/// Where a stored credential applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialScope {
    Org,
    Workspace(String),
    Team(String),
}

impl CredentialScope {
    /// Parses the stored form (`org`, `workspace:<id>`, `team:<id>`).
    pub fn parse_stored(s: &str) -> Option<CredentialScope> {
        match s.split_once(':') {
            None if s == "org" => Some(CredentialScope::Org),
            Some(("workspace", id)) if !id.is_empty() => {
                Some(CredentialScope::Workspace(id.to_string()))
            }
            Some(("team", id)) if !id.is_empty() => Some(CredentialScope::Team(id.to_string())),
            _ => None,
        }
    }

    /// The stored form.
    pub fn stored(&self) -> String {
        match self {
            CredentialScope::Org => "org".into(),
            CredentialScope::Workspace(id) => format!("workspace:{id}"),
            CredentialScope::Team(id) => format!("team:{id}"),
        }
    }
}

#[derive(Default)]
struct ProviderEntries {
    org: Option<Held>,
    workspaces: HashMap<String, Held>,
    teams: HashMap<String, Held>,
}

/// A credential and the provider built with it (the configured provider with this secret in
/// place of its own), so requests reuse one client state and one token cache per credential.
#[derive(Clone)]
struct Held {
    secret: Arc<ProviderSecret>,
    upstream: Option<Arc<Upstream>>,
}

/// The configured provider with `secret` in place of its own credential.
fn with_secret(config: &ProviderConfig, secret: &ProviderSecret) -> ProviderConfig {
    let mut c = config.clone();
    match secret {
        ProviderSecret::ApiKey { api_key } => c.api_key = Some(api_key.clone()),
        ProviderSecret::Aws {
            access_key_id,
            secret_access_key,
            session_token,
        } => {
            c.api_key = None;
            c.access_key_id = Some(access_key_id.clone());
            c.secret_access_key = Some(secret_access_key.clone());
            c.session_token = session_token.clone();
        }
        ProviderSecret::ServiceAccount {
            service_account_json,
        } => {
            c.credentials_file = None;
            c.credentials_json = Some(service_account_json.clone());
        }
    }
    c
}

#[derive(Default)]
struct Snapshot {
    by_provider: HashMap<String, ProviderEntries>,
}

/// Where the master key came from, which decides whether a rotation can persist it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

/// The decrypted provider credentials and the master key that seals new ones.
pub struct Vault {
    /// The configured providers, which stored credentials are applied to.
    providers: Vec<ProviderConfig>,
    key: ArcSwap<MasterKey>,
    source: KeySource,
    current: ArcSwap<Snapshot>,
    /// Serialises writers so a credential is never sealed under a key being rotated away.
    writes: Mutex<()>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Loads the master key (creating `master.key` on first start when no variable is set),
    /// checks it against the store and decrypts every credential. A wrong key stops the start
    /// with a message saying so.
    pub fn open(data_dir: &Path, store: &Store) -> Result<Vault, String> {
        Self::open_for(data_dir, store, Vec::new())
    }

    /// Like [`open`](Self::open), also building each configured provider with every stored
    /// credential for it, for [`upstream`](Self::upstream).
    pub fn open_for(
        data_dir: &Path,
        store: &Store,
        providers: Vec<ProviderConfig>,
    ) -> Result<Vault, String> {
        // Every replica of a cluster must seal and open with one key; a key minted per data
        // directory would leave each replica unable to read the others' credentials.
        let may_create = store.backend() == Backend::Sqlite;
        let (mut key, source) = load_master_key(data_dir, may_create)?;
        if let Err(e) = store.register_master_key(&mut key) {
            // A rotation interrupted after the database was re-sealed left the new key next to
            // the old one; it is the one that matches.
            let next = data_dir.join(MASTER_KEY_NEXT);
            match (&e, &source) {
                (StoreError::Secret(SecretError::WrongKey { .. }), KeySource::File(path))
                    if next.exists() =>
                {
                    let text = std::fs::read_to_string(&next)
                        .map_err(|err| format!("cannot read {}: {err}", next.display()))?;
                    key = MasterKey::parse(&text).map_err(|err| err.to_string())?;
                    store
                        .register_master_key(&mut key)
                        .map_err(|err| err.to_string())?;
                    std::fs::rename(&next, path).map_err(|err| {
                        format!("cannot move {} into place: {err}", next.display())
                    })?;
                    tracing::warn!("finished an interrupted master key rotation");
                }
                _ => return Err(e.to_string()),
            }
        }
        let vault = Vault {
            providers,
            key: ArcSwap::from_pointee(key),
            source,
            current: ArcSwap::from_pointee(Snapshot::default()),
            writes: Mutex::new(()),
        };
        vault.refresh(store).map_err(|e| e.to_string())?;
        Ok(vault)
    }

    /// Re-reads every credential; called after each change so new requests see it while
    /// requests in flight keep the secret they already hold.
    pub fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let mut snap = Snapshot::default();
        for (row, plain) in store.open_credentials(&self.key.load())? {
            let Ok(secret) = serde_json::from_slice::<ProviderSecret>(&plain) else {
                tracing::error!(credential = %row.id, provider = %row.provider, "stored provider credential has an unknown shape; skipped");
                continue;
            };
            let upstream = self
                .providers
                .iter()
                .find(|p| p.name == row.provider)
                .and_then(|p| match tollgate_providers::build(&with_secret(p, &secret)) {
                    Ok(u) => Some(Arc::new(u)),
                    Err(e) => {
                        // The error names the field at fault, never its value.
                        tracing::error!(credential = %row.id, provider = %row.provider, error = %e, "stored credential does not fit its provider; not used");
                        None
                    }
                });
            let held = Held {
                secret: Arc::new(secret),
                upstream,
            };
            let entries = snap.by_provider.entry(row.provider.clone()).or_default();
            match CredentialScope::parse_stored(&row.scope) {
                Some(CredentialScope::Org) => entries.org = Some(held),
                Some(CredentialScope::Workspace(id)) => {
                    entries.workspaces.insert(id, held);
                }
                Some(CredentialScope::Team(id)) => {
                    entries.teams.insert(id, held);
                }
                None => {
                    tracing::error!(credential = %row.id, "stored provider credential has an unknown scope; skipped")
                }
            }
        }
        self.current.store(Arc::new(snap));
        Ok(())
    }

    /// The credential `principal` should use for `provider`: its team's, else its
    /// workspace's, else the organisation's.
    pub fn credential(&self, provider: &str, principal: &Principal) -> Option<Arc<ProviderSecret>> {
        self.held(provider, principal).map(|h| h.secret)
    }

    /// The provider as `principal` should reach it when a stored credential applies (its
    /// team's, else its workspace's, else the organisation's); `None` means the configured one.
    pub fn upstream(&self, provider: &str, principal: &Principal) -> Option<Arc<Upstream>> {
        self.held(provider, principal).and_then(|h| h.upstream)
    }

    fn held(&self, provider: &str, principal: &Principal) -> Option<Held> {
        let snap = self.current.load();
        let e = snap.by_provider.get(provider)?;
        principal
            .team_id
            .as_ref()
            .and_then(|t| e.teams.get(t))
            .or_else(|| {
                principal
                    .workspace_id
                    .as_ref()
                    .and_then(|w| e.workspaces.get(w))
            })
            .or(e.org.as_ref())
            .cloned()
    }

    /// Seals and stores a credential, then refreshes. Returns the row before and after.
    pub fn put(
        &self,
        store: &Store,
        provider: &str,
        scope: &CredentialScope,
        secret: &ProviderSecret,
    ) -> Result<(Option<CredentialRow>, CredentialRow), StoreError> {
        let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let plain = serde_json::to_vec(secret)
            .map_err(|_| StoreError::Invalid("credential cannot be encoded".into()))?;
        let out = store.put_credential(
            &self.key.load(),
            provider,
            &scope.stored(),
            secret.kind(),
            &plain,
        )?;
        self.refresh(store)?;
        Ok(out)
    }

    /// Deletes a credential, then refreshes.
    pub fn delete(
        &self,
        store: &Store,
        provider: &str,
        scope: &CredentialScope,
    ) -> Result<CredentialRow, StoreError> {
        let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let row = store.delete_credential(provider, &scope.stored())?;
        self.refresh(store)?;
        Ok(row)
    }

    /// Re-seals every credential under `new_key` and starts using it. When the current key
    /// came from `master.key`, the file is replaced; when it came from the environment, the
    /// caller must update `TOLLGATE_MASTER_KEY` before the next start. Returns the number of
    /// credentials re-sealed, the old and the new key version. Requests keep being served
    /// throughout: the decrypted credentials in memory do not change.
    pub fn rotate(&self, store: &Store, new_key: &str) -> Result<(usize, u32, u32), String> {
        let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let old_version = self.key.load().version();
        let mut new = MasterKey::parse(new_key).map_err(|e| e.to_string())?;
        if let KeySource::File(path) = &self.source {
            let next = path.with_file_name(MASTER_KEY_NEXT);
            let _ = std::fs::remove_file(&next);
            crate::app::write_private(&next, new_key.trim())
                .map_err(|e| format!("cannot write {}: {e}", next.display()))?;
            let n = store
                .rotate_master_key(&self.key.load(), &mut new)
                .map_err(|e| {
                    let _ = std::fs::remove_file(&next);
                    e.to_string()
                })?;
            // The database is sealed under the new key from here on, so the process uses it
            // even if the file cannot be moved; the next start then finds it beside master.key.
            let v = new.version();
            self.key.store(Arc::new(new));
            std::fs::rename(&next, path).map_err(|e| {
                format!(
                    "credentials re-sealed, but {} could not replace master.key ({e}); the next start uses it",
                    next.display()
                )
            })?;
            return Ok((n, old_version, v));
        }
        let n = store
            .rotate_master_key(&self.key.load(), &mut new)
            .map_err(|e| e.to_string())?;
        let v = new.version();
        self.key.store(Arc::new(new));
        Ok((n, old_version, v))
    }

    /// Where the master key came from.
    pub fn key_source(&self) -> &KeySource {
        &self.source
    }
}

/// The master key from `TOLLGATE_MASTER_KEY`, else `<data-dir>/master.key` (created on first
/// start when `may_create`).
fn load_master_key(data_dir: &Path, may_create: bool) -> Result<(MasterKey, KeySource), String> {
    if let Ok(text) = std::env::var(MASTER_KEY_ENV)
        && !text.trim().is_empty()
    {
        let key = MasterKey::parse(&text).map_err(|e| format!("{MASTER_KEY_ENV}: {e}"))?;
        return Ok((key, KeySource::Env));
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !may_create => {
            return Err(format!(
                "cluster mode ([store] backend = \"postgres\") needs the same master key on every replica: set {MASTER_KEY_ENV} (32 random bytes in base64 or hex, e.g. `openssl rand -base64 32`) or put it in {}",
                path.display()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = MasterKey::generate().map_err(|e| e.to_string())?;
            crate::app::write_private(&path, &text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "created a master key for provider credentials; back it up: without it they cannot be decrypted");
            key
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    Ok((key, KeySource::File(path)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn principal(ws: &str, team: Option<&str>) -> Principal {
        Principal {
            workspace_id: Some(ws.into()),
            team_id: team.map(str::to_string),
            ..Principal::default()
        }
    }

    #[test]
    fn the_most_specific_scope_wins_and_debug_redacts() {
        let dir = std::env::temp_dir().join(format!(
            "tg-vault-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db.sqlite")).unwrap();
        let vault = Vault::open(&dir, &store).unwrap();
        let key = |k: &str| ProviderSecret::ApiKey {
            api_key: k.to_string(),
        };
        vault
            .put(&store, "anthropic", &CredentialScope::Org, &key("sk-org"))
            .unwrap();
        vault
            .put(
                &store,
                "anthropic",
                &CredentialScope::Workspace("ws_a".into()),
                &key("sk-ws"),
            )
            .unwrap();
        vault
            .put(
                &store,
                "anthropic",
                &CredentialScope::Team("team_a".into()),
                &key("sk-team"),
            )
            .unwrap();
        let got = |p: &Principal| vault.credential("anthropic", p).map(|s| (*s).clone());
        assert_eq!(
            got(&principal("ws_a", Some("team_a"))),
            Some(key("sk-team"))
        );
        assert_eq!(got(&principal("ws_a", Some("team_b"))), Some(key("sk-ws")));
        assert_eq!(got(&principal("ws_b", None)), Some(key("sk-org")));
        assert!(
            vault
                .credential("bedrock", &principal("ws_a", None))
                .is_none()
        );
        let shown = format!("{:?}", key("sk-visible"));
        assert!(!shown.contains("sk-visible"), "{shown}");
        // A second start with the file it created finds the same key.
        drop(vault);
        let again = Vault::open(&dir, &store).unwrap();
        assert_eq!(
            again
                .credential("anthropic", &principal("ws_b", None))
                .map(|s| (*s).clone()),
            Some(key("sk-org"))
        );
        // Rotation re-seals and replaces the file.
        let before = std::fs::read_to_string(dir.join(MASTER_KEY_FILE)).unwrap();
        let (_, text) = MasterKey::generate().unwrap();
        assert_eq!(again.rotate(&store, &text).unwrap().0, 3);
        let after = std::fs::read_to_string(dir.join(MASTER_KEY_FILE)).unwrap();
        assert_ne!(before, after);
        drop(again);
        let third = Vault::open(&dir, &store).unwrap();
        assert!(
            third
                .credential("anthropic", &principal("x", None))
                .is_some()
        );
        drop(third);

        // A rotation that stopped after re-sealing, before the file moved: the next start
        // finds the matching key beside master.key and finishes the move.
        let mut old =
            MasterKey::parse(&std::fs::read_to_string(dir.join(MASTER_KEY_FILE)).unwrap()).unwrap();
        store.register_master_key(&mut old).unwrap();
        let (mut next, next_text) = MasterKey::generate().unwrap();
        std::fs::write(dir.join(MASTER_KEY_NEXT), &next_text).unwrap();
        store.rotate_master_key(&old, &mut next).unwrap();
        let fourth = Vault::open(&dir, &store).unwrap();
        assert!(
            fourth
                .credential("anthropic", &principal("x", None))
                .is_some()
        );
        assert!(!dir.join(MASTER_KEY_NEXT).exists());
        assert_eq!(
            std::fs::read_to_string(dir.join(MASTER_KEY_FILE))
                .unwrap()
                .trim(),
            next_text
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_wrong_master_key_stops_the_start_with_a_clear_message() {
        let dir = std::env::temp_dir().join(format!(
            "tg-vault-wrong-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db.sqlite")).unwrap();
        let vault = Vault::open(&dir, &store).unwrap();
        let secret = ProviderSecret::ApiKey {
            api_key: "sk-x".into(),
        };
        vault
            .put(&store, "anthropic", &CredentialScope::Org, &secret)
            .unwrap();
        drop(vault);
        std::fs::remove_file(dir.join(MASTER_KEY_FILE)).unwrap();
        let (_, other) = MasterKey::generate().unwrap();
        std::fs::write(dir.join(MASTER_KEY_FILE), &other).unwrap();
        let e = Vault::open(&dir, &store).unwrap_err();
        assert!(e.contains("master key does not match"), "{e}");
        assert!(!e.contains(other.trim()), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
