//! The master key and AES-256-GCM sealing of secrets at rest.
//!
//! # Format
//! Each sealed value is the AES-256-GCM ciphertext with its 16-byte tag appended, plus a
//! random 96-bit nonce stored beside it. The additional authenticated data names the row the
//! value belongs to, so a ciphertext copied into another row (another provider or scope) fails
//! to open instead of handing one team's credential to another. The master key never touches
//! the database; only a check value (HMAC-SHA256 of a fixed label under the key) is stored per
//! key version, which tells "wrong master key" apart from "altered row".

use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
const CHECK_LABEL: &[u8] = b"tollgate master key check v1";

/// Why a secret could not be sealed or opened. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The configured master key is unusable.
    #[error("master key: {0}")]
    BadKey(String),
    /// The master key is valid but is not the one the stored secrets were sealed with.
    #[error(
        "the master key does not match the key that encrypted the stored provider credentials (key version {version}); start the gateway with the original TOLLGATE_MASTER_KEY or <data-dir>/master.key"
    )]
    WrongKey { version: u32 },
    /// The row was altered: ciphertext, nonce or the row it belongs to changed.
    #[error(
        "provider credential {id} cannot be decrypted: its ciphertext, nonce or row was altered"
    )]
    Tampered { id: String },
    /// The system could not supply randomness for a nonce.
    #[error("the system random number generator failed")]
    Random,
}

/// The key that seals provider credentials. `Debug` never shows it.
pub struct MasterKey {
    key: LessSafeKey,
    check: [u8; 32],
    version: u32,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A sealed value: ciphertext with tag, and its nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: [u8; NONCE_LEN],
}

impl MasterKey {
    /// A key from its 32 raw bytes (version 0 until registered with a store).
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, SecretError> {
        if bytes.len() != MASTER_KEY_LEN {
            return Err(SecretError::BadKey(format!(
                "must be {MASTER_KEY_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| SecretError::BadKey("rejected by AES-256-GCM".into()))?;
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes),
            CHECK_LABEL,
        );
        let mut check = [0u8; 32];
        check.copy_from_slice(tag.as_ref());
        Ok(MasterKey {
            key: LessSafeKey::new(key),
            check,
            version: 0,
        })
    }

    /// A key written as 64 hex digits or as base64 (standard or URL-safe, padded or not) of 32
    /// bytes. The error says what was wrong without repeating the text.
    pub fn parse(text: &str) -> Result<MasterKey, SecretError> {
        let t = text.trim();
        let bytes = if t.len() == 2 * MASTER_KEY_LEN && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..MASTER_KEY_LEN)
                .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| SecretError::BadKey("invalid hex".into()))?
        } else {
            use base64::engine::general_purpose::{
                STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
            };
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(t).ok())
                .ok_or_else(|| {
                    SecretError::BadKey(
                        "must be 32 bytes written as base64 (44 characters) or hex (64 digits)"
                            .into(),
                    )
                })?
        };
        MasterKey::from_bytes(&bytes)
    }

    /// A new random key and its text form (base64) for a key file.
    pub fn generate() -> Result<(MasterKey, String), SecretError> {
        let mut bytes = [0u8; MASTER_KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SecretError::Random)?;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        Ok((MasterKey::from_bytes(&bytes)?, text))
    }

    /// The stored check value: proves which key is which without revealing it.
    pub fn check_value(&self) -> &[u8; 32] {
        &self.check
    }

    /// The key version recorded with values it seals.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn set_version(&mut self, v: u32) {
        self.version = v;
    }

    /// Seals `plaintext` bound to `aad` under a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| SecretError::BadKey("sealing failed".into()))?;
        Ok(Sealed {
            ciphertext: buf,
            nonce,
        })
    }

    /// Opens a sealed value; any change to it, its nonce or `aad` fails (`id` names the row
    /// in the error).
    pub fn open(
        &self,
        id: &str,
        aad: &[u8],
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        let tampered = || SecretError::Tampered { id: id.to_string() };
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| tampered())?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| tampered())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_parse_from_hex_and_base64_and_errors_hide_the_text() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = MasterKey::parse(hex).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(
            (0..32)
                .map(|i| {
                    [
                        0x00u8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
                        0xcc, 0xdd, 0xee, 0xff,
                    ][i % 16]
                })
                .collect::<Vec<u8>>(),
        );
        let b = MasterKey::parse(&b64).unwrap();
        assert_eq!(a.check_value(), b.check_value());
        let e = MasterKey::parse("short-secret-text")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("short-secret-text"), "{e}");
        assert!(MasterKey::parse(&hex[..62]).is_err());
        assert!(!format!("{a:?}").contains("0011"));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_nonce_and_aad() {
        let (k, _) = MasterKey::generate().unwrap();
        let s = k.seal(b"row-1", b"sk-secret").unwrap();
        assert!(!s.ciphertext.windows(9).any(|w| w == b"sk-secret"));
        assert_eq!(
            k.open("r", b"row-1", &s.nonce, &s.ciphertext).unwrap(),
            b"sk-secret"
        );
        // Fresh nonce per value.
        assert_ne!(k.seal(b"row-1", b"sk-secret").unwrap().nonce, s.nonce);
        let mut bad = s.ciphertext.clone();
        bad[0] ^= 1;
        assert!(matches!(
            k.open("r", b"row-1", &s.nonce, &bad),
            Err(SecretError::Tampered { .. })
        ));
        assert!(k.open("r", b"row-2", &s.nonce, &s.ciphertext).is_err());
        let (other, _) = MasterKey::generate().unwrap();
        assert!(other.open("r", b"row-1", &s.nonce, &s.ciphertext).is_err());
        assert_ne!(other.check_value(), k.check_value());
    }
}
