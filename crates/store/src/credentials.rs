//! Provider credentials held by the gateway, sealed with the master key (see `secrets`).
//! Listings return metadata only; plaintext leaves this module solely through
//! [`Store::open_credentials`], for the in-memory vault.

use crate::entities::{Store, new_id, now};
use crate::error::StoreError;
use crate::secrets::{MasterKey, SecretError};
use rusqlite::{OptionalExtension, params};
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

fn sealed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SealedRow> {
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

impl Store {
    /// Checks `key` against the key versions on record and gives it its version. A key never
    /// seen before is recorded as a new version only while no credential is sealed under
    /// another key; otherwise the start fails with [`SecretError::WrongKey`].
    pub fn register_master_key(&self, key: &mut MasterKey) -> Result<(), StoreError> {
        let conn = self.conn();
        let known: Option<u32> = conn
            .query_row(
                "SELECT version FROM master_keys WHERE check_value = ?1",
                [&key.check_value()[..]],
                |r| r.get(0),
            )
            .optional()?;
        let other: Option<u32> = conn
            .query_row(
                "SELECT key_version FROM provider_credentials WHERE key_version IS NOT ?1
                 ORDER BY key_version DESC LIMIT 1",
                [known],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(version) = other {
            return Err(SecretError::WrongKey { version }.into());
        }
        let version = match known {
            Some(v) => v,
            None => {
                let v: u32 = conn.query_row(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM master_keys",
                    [],
                    |r| r.get(0),
                )?;
                conn.execute(
                    "INSERT INTO master_keys (version, check_value, created_at) VALUES (?1, ?2, ?3)",
                    params![v, &key.check_value()[..], now()],
                )?;
                v
            }
        };
        key.set_version(version);
        Ok(())
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
        let conn = self.conn();
        let before = conn
            .query_row(
                &format!("{CRED_SELECT} WHERE provider = ?1 AND scope = ?2"),
                params![provider, scope],
                sealed_row,
            )
            .optional()?
            .map(|(row, _, _)| row);
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
        conn.execute(
            "INSERT INTO provider_credentials (id, provider, scope, kind, ciphertext, nonce,
             key_version, created_at, rotated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (provider, scope) DO UPDATE SET kind = excluded.kind,
             ciphertext = excluded.ciphertext, nonce = excluded.nonce,
             key_version = excluded.key_version, rotated_at = excluded.rotated_at",
            params![
                after.id,
                after.provider,
                after.scope,
                after.kind,
                sealed.ciphertext,
                &sealed.nonce[..],
                after.key_version,
                after.created_at,
                after.rotated_at
            ],
        )?;
        Ok((before, after))
    }

    /// Every stored credential's metadata, by provider and scope.
    pub fn list_credentials(&self) -> Result<Vec<CredentialRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("{CRED_SELECT} ORDER BY provider, scope"))?;
        let rows = st.query_map([], sealed_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?.0);
        }
        Ok(out)
    }

    /// Deletes the credential of `provider` at `scope`; returns what it was.
    pub fn delete_credential(
        &self,
        provider: &str,
        scope: &str,
    ) -> Result<CredentialRow, StoreError> {
        let conn = self.conn();
        let before = conn
            .query_row(
                &format!("{CRED_SELECT} WHERE provider = ?1 AND scope = ?2"),
                params![provider, scope],
                sealed_row,
            )
            .optional()?
            .map(|(row, _, _)| row)
            .ok_or_else(|| {
                StoreError::NotFound(format!("credential of provider '{provider}' at {scope}"))
            })?;
        conn.execute(
            "DELETE FROM provider_credentials WHERE id = ?1",
            [&before.id],
        )?;
        Ok(before)
    }

    /// Every credential decrypted, for the in-memory vault. Fails whole on a wrong key or an
    /// altered row rather than serving a partial set silently.
    pub fn open_credentials(
        &self,
        key: &MasterKey,
    ) -> Result<Vec<(CredentialRow, Vec<u8>)>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("{CRED_SELECT} ORDER BY provider, scope"))?;
        let rows = st.query_map([], sealed_row)?;
        let mut out = Vec::new();
        for r in rows {
            let (row, nonce, ct) = r?;
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
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let version: u32 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM master_keys",
            [],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO master_keys (version, check_value, created_at) VALUES (?1, ?2, ?3)",
            params![version, &new.check_value()[..], now()],
        )?;
        let rows: Vec<SealedRow> = {
            let mut st = tx.prepare(CRED_SELECT)?;
            let rows = st.query_map([], sealed_row)?;
            rows.collect::<Result<_, _>>()?
        };
        new.set_version(version);
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
            tx.execute(
                "UPDATE provider_credentials SET ciphertext = ?2, nonce = ?3, key_version = ?4
                 WHERE id = ?1",
                params![row.id, sealed.ciphertext, &sealed.nonce[..], version],
            )?;
        }
        tx.commit()?;
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::entities::tests::temp_store;

    fn db_bytes(dir: &std::path::Path) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            all.extend(std::fs::read(e.unwrap().path()).unwrap());
        }
        all
    }

    #[test]
    fn credentials_are_sealed_at_rest_and_open_with_the_key() {
        let (s, dir) = temp_store("cred");
        let (mut k, _) = MasterKey::generate().unwrap();
        s.register_master_key(&mut k).unwrap();
        assert_eq!(k.version(), 1);
        let (before, row) = s
            .put_credential(&k, "anthropic", "org", "api_key", b"sk-canary-1234567890")
            .unwrap();
        assert!(before.is_none());
        assert!(
            !db_bytes(&dir)
                .windows(20)
                .any(|w| w == b"sk-canary-1234567890")
        );
        let (before, again) = s
            .put_credential(&k, "anthropic", "org", "api_key", b"sk-second")
            .unwrap();
        assert_eq!(before.unwrap().id, row.id);
        assert_eq!(again.id, row.id);
        let open = s.open_credentials(&k).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].1, b"sk-second");
        assert_eq!(s.list_credentials().unwrap(), vec![again.clone()]);
        assert_eq!(s.delete_credential("anthropic", "org").unwrap(), again);
        assert!(s.list_credentials().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_wrong_master_key_is_named_as_such() {
        let (s, dir) = temp_store("cred-wrong");
        let (mut k, _) = MasterKey::generate().unwrap();
        s.register_master_key(&mut k).unwrap();
        s.put_credential(&k, "anthropic", "org", "api_key", b"sk-x")
            .unwrap();
        let (mut wrong, _) = MasterKey::generate().unwrap();
        let e = s.register_master_key(&mut wrong).unwrap_err();
        assert!(
            matches!(e, StoreError::Secret(SecretError::WrongKey { version: 1 })),
            "{e}"
        );
        assert!(e.to_string().contains("does not match"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn altered_or_swapped_rows_do_not_open() {
        let (s, dir) = temp_store("cred-tamper");
        let (mut k, _) = MasterKey::generate().unwrap();
        s.register_master_key(&mut k).unwrap();
        s.put_credential(&k, "anthropic", "team:team_a", "api_key", b"sk-team-a")
            .unwrap();
        s.put_credential(&k, "anthropic", "team:team_b", "api_key", b"sk-team-b")
            .unwrap();
        // Swap: team b's row gets team a's sealed value.
        s.conn()
            .execute_batch(
                "UPDATE provider_credentials SET
                   ciphertext = (SELECT ciphertext FROM provider_credentials WHERE scope = 'team:team_a'),
                   nonce = (SELECT nonce FROM provider_credentials WHERE scope = 'team:team_a')
                 WHERE scope = 'team:team_b'",
            )
            .unwrap();
        let e = s.open_credentials(&k).unwrap_err();
        assert!(
            matches!(e, StoreError::Secret(SecretError::Tampered { .. })),
            "{e}"
        );
        s.delete_credential("anthropic", "team:team_b").unwrap();
        // Flip one ciphertext bit.
        let mut ct: Vec<u8> = s
            .conn()
            .query_row("SELECT ciphertext FROM provider_credentials", [], |r| {
                r.get(0)
            })
            .unwrap();
        ct[1] ^= 0x40;
        s.conn()
            .execute("UPDATE provider_credentials SET ciphertext = ?1", [ct])
            .unwrap();
        assert!(matches!(
            s.open_credentials(&k),
            Err(StoreError::Secret(SecretError::Tampered { .. }))
        ));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn rotating_the_master_key_reseals_everything() {
        let (s, dir) = temp_store("cred-rotate");
        let (mut old, old_text) = MasterKey::generate().unwrap();
        s.register_master_key(&mut old).unwrap();
        s.put_credential(&old, "anthropic", "org", "api_key", b"sk-1")
            .unwrap();
        s.put_credential(&old, "bedrock", "org", "aws", b"{}")
            .unwrap();
        let (mut new, new_text) = MasterKey::generate().unwrap();
        assert_eq!(s.rotate_master_key(&old, &mut new).unwrap(), 2);
        assert_eq!(new.version(), 2);
        let open = s.open_credentials(&new).unwrap();
        assert_eq!(open[0].1, b"sk-1");
        assert!(open.iter().all(|(r, _)| r.key_version == 2));
        // The old key is now the wrong one.
        let mut old_again = MasterKey::parse(&old_text).unwrap();
        assert!(matches!(
            s.register_master_key(&mut old_again),
            Err(StoreError::Secret(SecretError::WrongKey { version: 2 }))
        ));
        let mut new_again = MasterKey::parse(&new_text).unwrap();
        s.register_master_key(&mut new_again).unwrap();
        assert_eq!(new_again.version(), 2);
        std::fs::remove_dir_all(&dir).ok();
    }
}
