//! Errors a caller can act on.

/// Getting a token failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The server refused with an RFC 6749 §5.2 error (`invalid_client`, `invalid_scope`,
    /// `invalid_target`, …). Not retried: repeating the request cannot help.
    #[error("token endpoint refused: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    OAuth {
        /// HTTP status.
        status: u16,
        /// The `error` code.
        code: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The server could not be reached or kept failing (connection errors, 5xx, 503) after
    /// every retry.
    #[error("token endpoint unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The server answered something that is not a token response.
    #[error("unexpected token endpoint response: {0}")]
    Protocol(String),
    /// Discovery failed (metadata unreachable, wrong issuer, no token endpoint).
    #[error("discovery: {0}")]
    Discovery(String),
    /// The builder's settings are unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Sending the authorized request failed (see [`crate::AuthorizedClient`]).
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
}

impl TokenError {
    /// The RFC 6749 error code, if the server sent one.
    pub fn oauth_code(&self) -> Option<&str> {
        match self {
            Self::OAuth { code, .. } => Some(code),
            _ => None,
        }
    }
}
