//! A signing key's life: generated and sealed in one step, published before it signs, retired
//! once every token it signed has expired, and its private half erased after that. The CLI's
//! `keys rotate`, the server's rotation schedule and the registry's housekeeping all go through
//! these functions, so the policy exists once.

use std::time::Duration;

use crate::audit::{announce, Actor};
use crate::clock::Clock;
use crate::keys::{
    active_key, generate, Alg, Kid, MasterKey, MasterKeyError, SignError, StoredKey,
};
use crate::store::{Rotation, Store, StoreError};

/// Clock skew allowed to verifiers, added to every retirement time.
pub const VERIFIER_LEEWAY_SECS: i64 = 60;

/// Margin added to the JWKS `max-age` when pre-publishing a new key.
pub const PUBLISH_MARGIN_SECS: i64 = 60;

/// Why a key could not be made or rotated.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Generating the key pair failed inside aws-lc.
    #[error(transparent)]
    Generate(#[from] SignError),
    /// Sealing it under the master key failed.
    #[error(transparent)]
    Seal(#[from] MasterKeyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A rotation is already under way: this key is published and not yet signing.
    #[error("a rotation is already under way: key {0} is published and not yet signing")]
    AlreadyPending(Kid),
}

/// Generate a key pair for `alg` and seal its private half under `master`: published from
/// `created_at`, signing from `activates_at`. The only way a new [`StoredKey`] comes to be.
pub fn new_sealed_key(
    alg: Alg,
    master: &MasterKey,
    created_at: i64,
    activates_at: i64,
) -> Result<StoredKey, LifecycleError> {
    let generated = generate(alg)?;
    Ok(StoredKey {
        sealed_private_key: master.encrypt(generated.kid.as_str(), &generated.pkcs8)?,
        kid: generated.kid,
        alg,
        public_jwk: generated.public_jwk,
        created_at,
        activates_at,
        retires_at: None,
    })
}

/// How a rotation is timed.
#[derive(Debug, Clone, Copy)]
pub struct RotationTiming {
    /// Seconds the new key is published before it signs: at least the JWKS `max-age` the servers
    /// advertise plus a margin, so every verifier's cache has it before any token uses it.
    pub publish_ahead: i64,
}

impl RotationTiming {
    /// The timing for servers that advertise `jwks_max_age`: that plus [`PUBLISH_MARGIN_SECS`].
    pub fn for_jwks_max_age(jwks_max_age: u32) -> Self {
        Self {
            publish_ahead: i64::from(jwks_max_age) + PUBLISH_MARGIN_SECS,
        }
    }
}

/// What [`rotate`] did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The new key (pending until its `activates_at`).
    pub key: StoredKey,
    /// When the keys that sign until then leave the JWKS.
    pub previous_retire_at: i64,
}

/// Start a rotation: generate a key for `alg`, publish it now, let it sign after
/// `timing.publish_ahead`, and retire the current key once every token it can still sign has
/// expired (activation + the longest client token lifetime + leeway). The schedule is stored in
/// the database, so every replica switches at the same moment. Recorded as `keys.rotate`, or
/// `keys.rotate_scheduled` when the server rotates on its own, in the rotation's transaction.
pub async fn rotate(
    store: &Store,
    master: &MasterKey,
    by: &Actor,
    alg: Alg,
    timing: RotationTiming,
    now: i64,
) -> Result<Rotated, LifecycleError> {
    erase_retired(store, now).await?;
    // Strictly after the current key's activation: keys are ordered by activation time (whole
    // seconds), so a tie would leave the choice of signer to kid order.
    let current = store.load_keys().await?;
    let after_current = active_key(&current, now).map_or(i64::MIN, |k| k.activates_at + 1);
    let activates_at = (now + timing.publish_ahead.max(0)).max(after_current);
    let longest = store.longest_token_ttl().await?.unwrap_or(300).max(300);
    let retire_at = activates_at + longest + VERIFIER_LEEWAY_SECS;
    let key = new_sealed_key(alg, master, now, activates_at)?;
    let action = if *by == Actor::Server {
        "keys.rotate_scheduled"
    } else {
        "keys.rotate"
    };
    let detail = serde_json::json!({"kid": key.kid.as_str(), "alg": alg.as_str(), "activates_at": activates_at,
        "previous_retire_at": retire_at});
    let audit = by.record(action, None, detail, now);
    match store.rotate_key(&key, retire_at, now, &audit).await? {
        Rotation::Scheduled { retires_at } => {
            announce(&audit);
            Ok(Rotated {
                key,
                previous_retire_at: retires_at,
            })
        }
        Rotation::AlreadyPending(kid) => Err(LifecycleError::AlreadyPending(kid)),
    }
}

/// Whether a scheduled rotation is due at `now`: the active key has signed for `every` and no
/// rotation is pending.
pub fn rotation_due(keys: &[StoredKey], now: i64, every: Duration) -> bool {
    let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
    let due = active_key(keys, now).is_some_and(|k| now - k.activates_at >= every);
    let pending = keys
        .iter()
        .any(|k| k.is_published(now) && k.activates_at > now);
    due && !pending
}

/// Erase the private keys of keys retired by `now`: a retired key never signs again (only
/// published keys can), so its private half has no use left. Returns how many.
pub async fn erase_retired(store: &Store, now: i64) -> Result<u64, StoreError> {
    let n = store.erase_retired_private_keys(now).await?;
    if n > 0 {
        tracing::info!(erased = n, "private keys of retired signing keys erased");
    }
    Ok(n)
}

/// Rotate on a schedule: when the active key has been signing for `every`, start a rotation with
/// `alg`. Every replica may run this; the store's locked rotation (refused while one is pending)
/// makes sure one rotation happens, not one per replica.
pub fn spawn_schedule(
    store: Store,
    master: MasterKey,
    alg: Alg,
    every: Duration,
    timing: RotationTiming,
    clock: Clock,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let check = (every / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::time::sleep(check).await;
            let now = clock.now();
            let Ok(stored) = store.load_keys().await else {
                continue;
            };
            if rotation_due(&stored, now, every) {
                if let Err(e) = rotate(&store, &master, &Actor::Server, alg, timing, now).await {
                    tracing::debug!(error = %e, "scheduled rotation not started");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, activates_at: i64, retires_at: Option<i64>) -> StoredKey {
        let master = MasterKey::from_base64(&crate::random::base64url(32)).unwrap();
        let mut k = new_sealed_key(Alg::Es256, &master, 0, activates_at).unwrap();
        k.kid = Kid::new(kid.into());
        k.retires_at = retires_at;
        k
    }

    #[test]
    fn rotation_is_due_after_the_interval_unless_one_is_pending() {
        let every = Duration::from_secs(100);
        let keys = vec![key("a", 0, None)];
        assert!(!rotation_due(&keys, 99, every));
        assert!(rotation_due(&keys, 100, every));
        let keys = vec![key("a", 0, Some(500)), key("b", 150, None)];
        assert!(!rotation_due(&keys, 120, every), "b is pending");
        assert!(!rotation_due(&keys, 200, every), "b signs since 150");
        assert!(rotation_due(&keys, 250, every));
    }
}
