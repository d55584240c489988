//! What can go wrong, in terms a caller can act on.

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Larger than the configured maximum.
    #[error("token too large")]
    TooLarge,
    /// Not a compact JWS, or its header or claims are not JSON.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not in the allowlist (this covers `none` and HS*).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// `typ` is not `at+jwt` (nor one of the types the verifier was told to take as well).
    #[error("wrong token type (expected at+jwt)")]
    WrongType,
    /// The header has `crit`: extensions this verifier does not understand.
    #[error("critical header extensions are not supported")]
    CriticalHeader,
    /// No key with the token's `kid`, even after a refresh.
    #[error("unknown signing key")]
    UnknownKey,
    /// The key named by `kid` is for another algorithm or key type.
    #[error("key does not match the token's algorithm")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not the configured issuer (for [`crate::Verifier::any_of`]: none of them).
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` is missing.
    #[error("token has no expiry")]
    MissingExpiry,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// The token's `jti` is on the revocation feed.
    #[error("token revoked")]
    Revoked,
    /// A managed API key Tessera does not accept (unknown, revoked, expired, or not for this
    /// service's audience).
    #[error("API key not accepted")]
    UnknownApiKey,
}

impl InvalidToken {
    /// A short fixed name (`expired`, `bad_signature`, …): the `reason` label of
    /// [`crate::metrics::TOKENS_REJECTED`].
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::WrongType => "wrong_type",
            Self::CriticalHeader => "critical_header",
            Self::UnknownKey => "unknown_key",
            Self::KeyMismatch => "key_mismatch",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingExpiry => "missing_expiry",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Revoked => "revoked",
            Self::UnknownApiKey => "unknown_api_key",
        }
    }
}

/// The result of a failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is not acceptable: answer 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(#[from] InvalidToken),
    /// A valid token without a required scope: answer 403 `insufficient_scope`.
    #[error("insufficient scope: requires {required}")]
    InsufficientScope {
        /// The scopes that were required (space separated).
        required: String,
    },
    /// The issuer's keys cannot be had (never fetched, or stale beyond the maximum): answer 503.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
    /// A valid token (or API key) whose principal does not hold a required role (see
    /// [`crate::RoleMap`]): answer 403 `insufficient_scope`, as for a missing scope.
    #[error("insufficient role: requires {required}")]
    MissingRole {
        /// The role that was required; when any of several would do, their names, space
        /// separated.
        required: String,
    },
    /// Strict revocation mode: the revocation feed has been unreachable beyond its bound, so
    /// no token can be checked against it: answer 503.
    #[error("revocation feed unavailable")]
    RevocationsUnavailable,
}

impl VerifyError {
    /// A short fixed name for what went wrong, for metrics and logs: the [`InvalidToken`]'s
    /// (`expired`, `bad_signature`, …), or `insufficient_scope`, `missing_role`,
    /// `keys_unavailable`, `revocations_unavailable`. Never anything from the token.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidToken(t) => t.as_str(),
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::KeysUnavailable(_) => "keys_unavailable",
            Self::MissingRole { .. } => "missing_role",
            Self::RevocationsUnavailable => "revocations_unavailable",
        }
    }

    /// The HTTP status a resource server should answer with: 401, 403 or 503.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidToken(_) => 401,
            Self::InsufficientScope { .. } | Self::MissingRole { .. } => 403,
            Self::KeysUnavailable(_) | Self::RevocationsUnavailable => 503,
        }
    }
}

/// The verifier's configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Issuer missing or not an http(s) URL.
    #[error("issuer must be an http(s) URL: {0}")]
    Issuer(String),
    /// Audience missing.
    #[error("audience is required")]
    Audience,
    /// An algorithm that must never be allowed (`none`, HS*), or an empty allowlist.
    #[error("algorithm allowlist: {0}")]
    Algorithms(String),
    /// No way to get keys: the `reqwest` feature is off and no fetcher or static JWKS was given.
    #[error("no JWKS fetcher: enable the `reqwest` feature, or pass a fetcher or static JWKS")]
    NoFetcher,
    /// A static JWKS that does not parse.
    #[error("static JWKS: {0}")]
    Jwks(String),
    /// [`crate::Verifier::any_of`] was given no verifier.
    #[error("a verifier set needs at least one verifier")]
    NoIssuers,
    /// [`crate::Verifier::any_of`] was given two verifiers for the same issuer: which one a
    /// token meets would be a matter of order.
    #[error("two verifiers for issuer {0}")]
    DuplicateIssuer(String),
    /// A role map that cannot be used (see [`crate::RoleMap`]).
    #[error("role map{}: {reason}", role.as_ref().map(|r| format!(" (role {r})")).unwrap_or_default())]
    RoleMap {
        /// The role the problem is in, when it is in one.
        role: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Static API keys were switched on but none are configured: none at all, or a key's
    /// source (an environment variable, a file) is missing or empty.
    #[error("no static API keys configured{}", name.as_ref().map(|n| format!(" for {n}")).unwrap_or_default())]
    NoApiKeys {
        /// The named key whose source holds no key; `None` when no key was named at all.
        name: Option<String>,
    },
    /// A static API key entry that cannot be used: a bad or repeated name, a bad scope, a line
    /// of configuration that does not parse.
    #[error("static API key {name}: {reason}")]
    ApiKey {
        /// The key's name (or the configuration line's number, `line N`).
        name: String,
        /// What is wrong.
        reason: String,
    },
}
