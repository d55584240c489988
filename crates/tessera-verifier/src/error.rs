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
    /// `typ` is not `at+jwt`.
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
    /// `iss` is not the configured issuer.
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
}

impl VerifyError {
    /// The HTTP status a resource server should answer with: 401, 403 or 503.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidToken(_) => 401,
            Self::InsufficientScope { .. } => 403,
            Self::KeysUnavailable(_) => 503,
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
}
