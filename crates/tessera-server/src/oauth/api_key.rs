//! Managed API keys (`tak_…`): for callers that can only send a static header. A key is its own
//! principal with scopes, audiences, custom claims and an optional expiry; resource services
//! check it by introspection (RFC 7662) and cache the answer.

use aws_lc_rs::digest;

use crate::oauth::claims::CustomClaims;
use crate::oauth::{Audience, ScopeSet};

/// Every key starts with this, so a resource service can tell a key from a JWT at a glance.
pub const PREFIX: &str = tessera_proto::API_KEY_PREFIX;

/// A key's SHA-256. The key is 256 random bits, so a fast hash is enough: nobody can search
/// that space, and a lookup by hash compares no secret bytes.
pub type KeyHash = [u8; 32];

/// The hash of `key`.
pub fn hash(key: &str) -> KeyHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    out
}

/// A fresh key (shown once) and its hash (stored).
pub fn generate() -> (String, KeyHash) {
    let key = format!("{PREFIX}{}", crate::random::base64url(32));
    let h = hash(&key);
    (key, h)
}

/// Hex, for storage.
pub fn to_hex(h: &KeyHash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse stored hex.
pub fn from_hex(s: &str) -> Option<KeyHash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A registered API key (never the key itself).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Its id (`ak_…`), also the `client_id` and `sub` introspection reports.
    pub id: String,
    /// Who holds it (one key per caller, so one leak is revoked alone).
    pub name: String,
    /// SHA-256 of the key.
    pub hash: KeyHash,
    /// What it grants.
    pub scopes: ScopeSet,
    /// Where it may be used; the first is reported as `aud` (none: the issuer).
    pub audiences: Vec<Audience>,
    /// Claims reported with it.
    pub claims: CustomClaims,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Stops working then, if set.
    pub expires_at: Option<i64>,
    /// Revoked then, if it was.
    pub revoked_at: Option<i64>,
}

/// Why a key is not active (for audit events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    Active,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl ApiKey {
    /// Its state at `now`.
    pub fn state(&self, now: i64) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|e| now >= e) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_hashes() {
        let (key, h) = generate();
        assert!(key.starts_with(PREFIX));
        assert_eq!(key.len(), PREFIX.len() + 43, "256 bits, base64url");
        assert_eq!(hash(&key), h);
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_eq!(from_hex("zz"), None);
        assert_ne!(generate().0, key);
    }
}
