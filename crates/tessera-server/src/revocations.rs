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

    /// The feed (`GET /oauth/revocations`): revocations after `since`, of tokens alive at `now`,
    /// at most `limit`, and the cursor to ask from next.
    pub async fn since(&self, since: i64, now: i64, limit: usize) -> Result<FeedPage, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // The counter first: every number up to it belongs to a committed revocation (the number
        // is taken in the revoking transaction), so reading up to it misses nothing.
        let upto = self.store.revocation_cursor().await?;
        // A cursor ahead of the counter (a database restored from a backup, a cursor from
        // another installation) would stall the reader on empty pages: start it over instead.
        let since = if since > upto { 0 } else { since };
        let rows = self
            .store
            .revocations_since(since, upto, now, limit)
            .await?;
        let full = i64::try_from(rows.len()).unwrap_or(0) >= limit;
        let cursor = match rows.last() {
            Some((seq, _, _)) if full => *seq,
            // The whole tail was read: jump to the counter, past revocations of tokens that
            // have expired anyway.
            _ => upto.max(since),
        };
        Ok(FeedPage {
            revoked: rows.into_iter().map(|(_, jti, exp)| (jti, exp)).collect(),
            cursor,
            more: full,
        })
    }

    /// Forget revocations of tokens that have expired by `now`; returns how many.
    pub async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        self.store.purge_revocations(now).await
    }
}

/// One page of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// `(jti, exp)` of each revoked, still unexpired token.
    pub revoked: Vec<(String, i64)>,
    /// Ask from here next time.
    pub cursor: i64,
    /// Whether more entries follow right away (ask again at once).
    pub more: bool,
}
