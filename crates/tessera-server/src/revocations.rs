//! Revoked token ids (RFC 7009): recorded by revocation, consulted by introspection, and kept
//! only until the token would have expired anyway.

use crate::oauth::ClientId;
use crate::store::{Store, StoreError};

/// The revocation list, in the database so every replica sees the same one.
#[derive(Debug, Clone)]
pub struct Revocations {
    store: Store,
}

impl Revocations {
    /// The list kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Record `jti` (a token of `client`) as revoked until `expires_at`, the token's `exp`.
    pub async fn revoke(
        &self,
        jti: &str,
        client: &ClientId,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.store.revoke_token(jti, client, expires_at).await
    }

    /// Whether `jti` was revoked.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        self.store.is_revoked(jti).await
    }

    /// Forget revocations of tokens that have expired by `now`; returns how many.
    pub async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        self.store.purge_revocations(now).await
    }
}
