//! Provider credentials held by the gateway, sealed with the master key (see `secrets`).
//! Listings return metadata only; plaintext leaves this module solely through
//! [`Store::open_credentials`], for the in-memory vault.

use crate::Store;
use crate::db::{Db, Row, args, in_transaction};
use crate::entities::{new_id, now};
use crate::error::StoreError;
use crate::secrets::{MasterKey, SecretError};
use serde::Serialize;

/// A stored provider credential, without its secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CredentialRow {
    pub id: String,
    pub provider: String,
    /// `org`, `workspace:<id>` or `team:<id>`.
    pub scope: String,
    /// What the secret is: `api_key`, `aws` or `service_account`.
    pub kind: String,
    pub key_version: u32,
    pub created_at: String,
    /// When the secret was last replaced.
    pub rotated_at: String,
}

fn aad(row: &CredentialRow) -> Vec<u8> {
    // NUL cannot occur in the parts, so different rows never share an AAD.
    format!(
        "tollgate provider credential\0{}\0{}\0{}\0{}",
        row.id, row.provider, row.scope, row.kind
    )
    .into_bytes()
}

const CRED_SELECT: &str =
    "SELECT id, provider, scope, kind, key_version, created_at, rotated_at, nonce, ciphertext
     FROM provider_credentials";

type SealedRow = (CredentialRow, Vec<u8>, Vec<u8>);

fn sealed_row(r: &Row) -> Result<SealedRow, StoreError> {
    Ok((
        CredentialRow {
            id: r.get(0)?,
            provider: r.get(1)?,
            scope: r.get(2)?,
            kind: r.get(3)?,
            key_version: r.get(4)?,
            created_at: r.get(5)?,
            rotated_at: r.get(6)?,
        },
        r.get(7)?,
        r.get(8)?,
    ))
}

fn find_credential(
    db: &mut Db<'_>,
    provider: &str,
    scope: &str,
) -> Result<Option<CredentialRow>, StoreError> {
    Ok(db
        .query_opt(
            &format!("{CRED_SELECT} WHERE provider = ?1 AND scope = ?2"),
            args![provider, scope],
        )?
        .as_ref()
        .map(sealed_row)
        .transpose()?
        .map(|(row, _, _)| row))
}

/// How often a start retries when another replica registers a master key at the same moment.
const REGISTER_TRIES: usize = 5;

impl Store {
    /// Checks `key` against the key versions on record and gives it its version. A key never
    /// seen before is recorded as a new version only while no credential is sealed under
    /// another key; otherwise the start fails with [`SecretError::WrongKey`].
    pub fn register_master_key(&self, key: &mut MasterKey) -> Result<(), StoreError> {
        let mut db = self.db();
        let check = key.check_value().to_vec();
        for _ in 0..REGISTER_TRIES {
            let known: Option<u32> = db
                .query_opt(
                    "SELECT version FROM master_keys WHERE check_value = ?1",
                    args![&check],
                )?
                .map(|r| r.get(0))
                .transpose()?;
            let other: Option<u32> = db
                .query_opt(
                    "SELECT key_version FROM provider_credentials
                     WHERE key_version IS DISTINCT FROM ?1
                     ORDER BY key_version DESC LIMIT 1",
                    args![known],
                )?
                .map(|r| r.get(0))
                .transpose()?;
            if let Some(version) = other {
                return Err(SecretError::WrongKey { version }.into());
            }
            if let Some(v) = known {
                key.set_version(v);
                return Ok(());
            }
            // Replicas starting together may pick the same next version: the loser's insert
            // changes nothing and it looks again (finding its key, or taking the next one).
            let v: u32 = db
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM master_keys",
                    args![],
                )?
                .get(0)?;
            db.exec(
                "INSERT INTO master_keys (version, check_value, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                args![v, &check, now()],
            )?;
        }
        Err(StoreError::Db(
            "could not record the master key: other replicas kept registering theirs".into(),
        ))
    }

    /// Seals and stores the credential of `provider` at `scope`, replacing any previous one
    /// (same id, fresh nonce). Returns the row before (if any) and after.
    pub fn put_credential(
        &self,
        key: &MasterKey,
        provider: &str,
        scope: &str,
        kind: &str,
        secret: &[u8],
    ) -> Result<(Option<CredentialRow>, CredentialRow), StoreError> {
        let mut db = self.db();
        let before = find_credential(&mut db, provider, scope)?;
        let at = now();
        let after = CredentialRow {
            id: before
                .as_ref()
                .map_or_else(|| new_id("cred"), |b| b.id.clone()),
            provider: provider.to_string(),
            scope: scope.to_string(),
            kind: kind.to_string(),
            key_version: key.version(),
            created_at: before
                .as_ref()
                .map_or_else(|| at.clone(), |b| b.created_at.clone()),
            rotated_at: at,
        };
        let sealed = key.seal(&aad(&after), secret)?;
        db.exec(
            "INSERT INTO provider_credentials (id, provider, scope, kind, ciphertext, nonce,
             key_version, created_at, rotated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (provider, scope) DO UPDATE SET kind = excluded.kind,
             ciphertext = excluded.ciphertext, nonce = excluded.nonce,
             key_version = excluded.key_version, rotated_at = excluded.rotated_at",
            args![
                &after.id,
                &after.provider,
                &after.scope,
                &after.kind,
                sealed.ciphertext,
                &sealed.nonce[..],
                after.key_version,
                &after.created_at,
                &after.rotated_at
            ],
        )?;
        Ok((before, after))
    }

    /// Every stored credential's metadata, by provider and scope.
    pub fn list_credentials(&self) -> Result<Vec<CredentialRow>, StoreError> {
        self.db()
            .query(&format!("{CRED_SELECT} ORDER BY provider, scope"), args![])?
            .iter()
            .map(|r| sealed_row(r).map(|(row, _, _)| row))
            .collect()
    }

    /// Deletes the credential of `provider` at `scope`; returns what it was.
    pub fn delete_credential(
        &self,
        provider: &str,
        scope: &str,
    ) -> Result<CredentialRow, StoreError> {
        let mut db = self.db();
        let before = find_credential(&mut db, provider, scope)?.ok_or_else(|| {
            StoreError::NotFound(format!("credential of provider '{provider}' at {scope}"))
        })?;
        db.exec(
            "DELETE FROM provider_credentials WHERE id = ?1",
            args![&before.id],
        )?;
        Ok(before)
    }

    /// Every credential decrypted, for the in-memory vault. Fails whole on a wrong key or an
    /// altered row rather than serving a partial set silently.
    pub fn open_credentials(
        &self,
        key: &MasterKey,
    ) -> Result<Vec<(CredentialRow, Vec<u8>)>, StoreError> {
        let rows = self
            .db()
            .query(&format!("{CRED_SELECT} ORDER BY provider, scope"), args![])?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let (row, nonce, ct) = sealed_row(r)?;
            if row.key_version != key.version() {
                return Err(SecretError::WrongKey {
                    version: row.key_version,
                }
                .into());
            }
            let plain = key.open(&row.id, &aad(&row), &nonce, &ct)?;
            out.push((row, plain));
        }
        Ok(out)
    }

    /// Re-seals every credential under `new` in one transaction and records `new` as the next
    /// key version; on any failure nothing changes. Returns how many were re-sealed.
    pub fn rotate_master_key(
        &self,
        old: &MasterKey,
        new: &mut MasterKey,
    ) -> Result<usize, StoreError> {
        if old.check_value() == new.check_value() {
            return Err(StoreError::Invalid(
                "the new master key is the current one".into(),
            ));
        }
        let mut db = self.db();
        in_transaction(&mut db, |tx| {
            let version: u32 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM master_keys",
                    args![],
                )?
                .get(0)?;
            tx.exec(
                "INSERT INTO master_keys (version, check_value, created_at) VALUES (?1, ?2, ?3)",
                args![version, &new.check_value()[..], now()],
            )?;
            let rows = tx
                .query(CRED_SELECT, args![])?
                .iter()
                .map(sealed_row)
                .collect::<Result<Vec<_>, _>>()?;
            for (row, nonce, ct) in &rows {
                if row.key_version != old.version() {
                    return Err(SecretError::WrongKey {
                        version: row.key_version,
                    }
                    .into());
                }
                let plain = old.open(&row.id, &aad(row), nonce, ct)?;
                let resealed_row = CredentialRow {
                    key_version: version,
                    ..row.clone()
                };
                let sealed = new.seal(&aad(&resealed_row), &plain)?;
                tx.exec(
                    "UPDATE provider_credentials SET ciphertext = ?2, nonce = ?3, key_version = ?4
                     WHERE id = ?1",
                    args![&row.id, sealed.ciphertext, &sealed.nonce[..], version],
                )?;
            }
            new.set_version(version);
            Ok(rows.len())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::suite::temp_store;

    /// SQLite only: the file itself is searched. The shared suite checks the same on both
    /// engines through SQL.
    #[test]
    fn the_sqlite_file_never_holds_a_credential_in_clear() {
        let (s, dir) = temp_store("cred-file");
        let (mut k, _) = MasterKey::generate().unwrap();
        s.register_master_key(&mut k).unwrap();
        s.put_credential(&k, "anthropic", "org", "api_key", b"sk-canary-1234567890")
            .unwrap();
        // Read while open, so the write-ahead log is searched too.
        let mut all = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            all.extend(std::fs::read(e.unwrap().path()).unwrap());
        }
        assert!(!all.windows(20).any(|w| w == b"sk-canary-1234567890"));
        drop(s);
        std::fs::remove_dir_all(&dir).ok();
    }
}
