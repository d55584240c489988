//! The key ring a running server holds: the key that signs now, and the JWKS it publishes.

use std::sync::Arc;

use crate::keys::{Alg, Jwk, Kid, MasterKey, MasterKeyError, SignError, Signer};

/// A signing key as stored: the private key sealed under the master key, and its schedule.
/// A key is published from `created_at`, signs from `activates_at`, and is unpublished at
/// `retires_at`. The state is derived from these times so every replica agrees on it.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// Key id.
    pub kid: Kid,
    /// Algorithm.
    pub alg: Alg,
    /// nonce ‖ AES-256-GCM(PKCS#8) ‖ tag, with the kid as associated data.
    pub sealed_private_key: Vec<u8>,
    /// The public JWK.
    pub public_jwk: Jwk,
    /// Published from (unix seconds).
    pub created_at: i64,
    /// Signs from (unix seconds).
    pub activates_at: i64,
    /// Unpublished from (unix seconds), if scheduled.
    pub retires_at: Option<i64>,
}

impl StoredKey {
    /// Whether the sealed private key has been erased (done once the key is retired).
    pub fn private_key_erased(&self) -> bool {
        self.sealed_private_key.is_empty()
    }

    /// Whether the key belongs in the JWKS at `now`.
    pub fn is_published(&self, now: i64) -> bool {
        self.retires_at.is_none_or(|r| now < r)
    }

    /// The key's state at `now`, given which kid is the current signer.
    pub fn state(&self, now: i64, signing: Option<&Kid>) -> KeyState {
        if !self.is_published(now) {
            KeyState::Retired
        } else if signing == Some(&self.kid) {
            KeyState::Active
        } else if now < self.activates_at {
            KeyState::Pending
        } else {
            KeyState::Retiring
        }
    }
}

/// Where a key is in its life, derived from its stored times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    /// Signs new tokens.
    Active,
    /// Published, no longer signing: its tokens are still live.
    Retiring,
    /// Unpublished; its private half is (or is about to be) erased.
    Retired,
}

impl KeyState {
    /// The name `keys list` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }
}

/// The key that signs at `now`: of the published keys whose activation time has come, the one
/// activated last. Every replica computes the same answer from the same rows and clock.
pub fn active_key(keys: &[StoredKey], now: i64) -> Option<&StoredKey> {
    keys.iter()
        .filter(|k| k.is_published(now) && k.activates_at <= now)
        .max_by_key(|k| (k.activates_at, k.created_at))
}

/// Why a key ring could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// No stored key is active at this time.
    #[error("no signing key is active")]
    NoActiveKey,
    /// The master key does not open a stored key.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    /// A stored key does not parse.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// The active signer plus the serialised JWKS, rebuilt whenever the stored keys change.
#[derive(Debug)]
pub struct KeyRing {
    /// The key that signs new tokens.
    pub signer: Arc<Signer>,
    /// `{"keys":[…]}` of every published key, serialised once.
    pub jwks_json: Vec<u8>,
    /// Algorithms of the published keys.
    pub algs: Vec<Alg>,
    /// The published public keys (to check this server's own tokens on introspection).
    pub public_jwks: Vec<crate::keys::Jwk>,
}

impl KeyRing {
    /// Build from stored keys at `now`. The signer is the published key with the latest
    /// `activates_at` that is not in the future. `previous` lets an unchanged signer be reused
    /// rather than decrypted and parsed again.
    pub fn build(
        keys: &[StoredKey],
        master: &MasterKey,
        now: i64,
        previous: Option<&KeyRing>,
    ) -> Result<Self, KeyRingError> {
        let published: Vec<&StoredKey> = keys.iter().filter(|k| k.is_published(now)).collect();
        let active = active_key(keys, now).ok_or(KeyRingError::NoActiveKey)?;
        let signer = match previous.filter(|p| p.signer.kid() == &active.kid) {
            Some(p) => p.signer.clone(),
            None => {
                let pkcs8 = master.decrypt(active.kid.as_str(), &active.sealed_private_key)?;
                Arc::new(Signer::from_pkcs8(active.alg, active.kid.clone(), &pkcs8)?)
            }
        };
        let jwks = serde_json::json!({ "keys": published.iter().map(|k| &k.public_jwk).collect::<Vec<_>>() });
        let mut algs: Vec<Alg> = Vec::new();
        for k in &published {
            if !algs.contains(&k.alg) {
                algs.push(k.alg);
            }
        }
        Ok(Self {
            signer,
            jwks_json: jwks.to_string().into_bytes(),
            algs,
            public_jwks: published.iter().map(|k| k.public_jwk.clone()).collect(),
        })
    }
}
