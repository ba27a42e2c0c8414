//! Gateway and admin keys: random secrets shown once, stored only as SHA-256 hashes.
//!
//! A key carries 256 bits of randomness, so a fast unsalted hash is enough: nothing short of
//! the key itself reproduces it, and lookups stay a hash-map probe.

use base64::Engine;
use ring::rand::SecureRandom;

/// SHA-256 of a key's full text.
pub type KeyHash = [u8; 32];

/// Prefix of user and team keys; makes leaked keys easy to spot in scanners.
pub const GATEWAY_KEY_PREFIX: &str = "tg-";
/// Prefix of admin credentials.
pub const ADMIN_KEY_PREFIX: &str = "tgadm_";

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The system RNG failing means the OS cannot give entropy; no key can be made safely then.
    #[allow(clippy::expect_used)]
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random number generator unavailable");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A new gateway key, e.g. `tg-3q2…`.
pub fn generate_gateway_key() -> String {
    format!("{GATEWAY_KEY_PREFIX}{}", random_token())
}

/// A new admin credential, e.g. `tgadm_…`.
pub fn generate_admin_key() -> String {
    format!("{ADMIN_KEY_PREFIX}{}", random_token())
}

/// The stored form of a key.
pub fn hash_key(key: &str) -> KeyHash {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The first characters of a key, safe to show in listings and logs.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(10).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_prefixed_and_hash_stably() {
        let a = generate_gateway_key();
        let b = generate_gateway_key();
        assert_ne!(a, b);
        assert!(a.starts_with("tg-") && a.len() > 40);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        assert!(generate_admin_key().starts_with("tgadm_"));
    }
}
