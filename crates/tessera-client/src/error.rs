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
    /// The private key for `private_key_jwt` is unusable, or signing with it failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No assertion could be had for the JWT-bearer grant. Failures of the GitHub Actions
    /// runner's endpoint are retried like the token endpoint's and end as
    /// [`TokenError::Unavailable`]; the others are reported here at once.
    #[error(transparent)]
    Assertion(#[from] AssertionError),
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

/// A private key could not be parsed, generated or used. No variant carries key material.
///
/// Like [`AssertionError`], the message does not repeat its `source()`: print the chain
/// (`{:#}` with anyhow) to see both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a PEM private key.
    #[error("not a PEM private key: {reason}")]
    Pem {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The PEM block is another format than an unencrypted PKCS#8 `PRIVATE KEY`.
    #[error("the PEM block is {label:?}, not an unencrypted PKCS#8 \"PRIVATE KEY\"; convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY_FILE`")]
    NotPkcs8 {
        /// The label found (`RSA PRIVATE KEY`, `EC PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, …).
        label: String,
    },
    /// The PKCS#8 key is of a type or size that cannot sign client assertions.
    #[error("unsupported private key: use a P-256 (ES256), Ed25519 (EdDSA) or RSA of 2048 bits or more (RS256) key")]
    Unsupported,
    /// An algorithm name other than `ES256`, `EdDSA` or `RS256`.
    #[error("unknown algorithm {name:?}: use ES256, EdDSA or RS256")]
    UnknownAlg {
        /// The name given.
        name: String,
    },
    /// aws-lc failed to generate, serialize or sign with a key.
    #[error("{what} with the {alg} private key failed")]
    Crypto {
        /// The key's algorithm.
        alg: crate::KeyAlg,
        /// The step: `generating`, `serializing` or `signing`.
        what: &'static str,
    },
}

/// The assertion for the JWT-bearer grant could not be had. No variant carries the assertion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionError {
    /// The assertion file could not be read.
    #[error("reading the assertion file {}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file, callback or runner gave an empty assertion.
    #[error("the assertion is empty")]
    Empty,
    /// The caller's callback failed.
    #[error("the assertion callback failed")]
    Callback(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Not in a GitHub Actions job that may request ID tokens.
    #[error(
        "{variable} is not set: run in a GitHub Actions job with `permissions: id-token: write`"
    )]
    GitHubActionsUnavailable {
        /// The missing environment variable.
        variable: &'static str,
    },
    /// The GitHub Actions runner's ID token endpoint failed.
    #[error("GitHub Actions ID token request failed: {reason}")]
    GitHubActions {
        /// The HTTP status, if there was an answer.
        status: Option<u16>,
        /// What went wrong.
        reason: String,
    },
}

impl AssertionError {
    /// Whether asking again may help: the runner's endpoint was unreachable or failed with 5xx.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Self::GitHubActions { status, .. } if status.is_none_or(|s| s >= 500))
    }
}
