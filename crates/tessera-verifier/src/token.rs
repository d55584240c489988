//! A verified access token.

use std::collections::BTreeSet;
use std::fmt;

use crate::VerifyError;

/// A token that passed verification.
#[derive(Clone)]
pub struct AccessToken {
    /// `client_id` (or `sub` when the issuer omits `client_id`).
    pub client_id: String,
    /// `sub`.
    pub subject: String,
    /// The granted scopes.
    pub scopes: BTreeSet<String>,
    /// `aud`, as a list.
    pub audience: Vec<String>,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    /// `iat`, unix seconds, if present.
    pub issued_at: Option<i64>,
    /// `jti`, if present.
    pub jti: Option<String>,
    /// The claims as sent, as JSON text (parsed only if asked for: see [`AccessToken::claims`]).
    pub(crate) raw_claims: std::sync::Arc<str>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("client_id", &self.client_id)
            .field("subject", &self.subject)
            .field("scopes", &self.scopes)
            .field("audience", &self.audience)
            .field("expires_at", &self.expires_at)
            .field("jti", &self.jti)
            .finish_non_exhaustive()
    }
}

/// A required scope is missing.
pub type ScopeError = VerifyError;

impl AccessToken {
    /// Every claim as sent, including ones this crate does not interpret.
    pub fn claims(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.raw_claims).unwrap_or_default()
    }

    /// The claims as the JSON text the token carried.
    pub fn raw_claims(&self) -> &str {
        &self.raw_claims
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// `Ok` if the token carries `scope`, else [`VerifyError::InsufficientScope`].
    pub fn require_scope(&self, scope: &str) -> Result<(), ScopeError> {
        self.require_all([scope])
    }

    /// `Ok` if the token carries every one of `scopes`.
    pub fn require_all<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ScopeError> {
        let scopes: Vec<&str> = scopes.into_iter().collect();
        if scopes.iter().all(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(VerifyError::InsufficientScope {
                required: scopes.join(" "),
            })
        }
    }

    /// `Ok` if the token carries at least one of `scopes`.
    pub fn require_any<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ScopeError> {
        let scopes: Vec<&str> = scopes.into_iter().collect();
        if scopes.iter().any(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(VerifyError::InsufficientScope {
                required: scopes.join(" "),
            })
        }
    }
}
