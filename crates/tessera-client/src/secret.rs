//! The two secrets a token source handles: the client secret it sends and the access tokens it
//! gets back. Neither shows in `Debug`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A client secret. `Debug` never shows it; it is sent only to the token endpoint.
#[derive(Clone)]
pub struct ClientSecret(pub(crate) String);

impl ClientSecret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// An access token with what the token endpoint said about it. `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    pub(crate) token: Arc<str>,
    /// `expires_in` as granted.
    pub expires_in: Duration,
    /// The granted `scope`, if the server said.
    pub scope: Option<String>,
    /// The whole token response as JSON (it contains the token).
    pub(crate) response: Arc<serde_json::Value>,
}

impl AccessToken {
    /// The token, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// The complete token response (contains the token; do not log it).
    pub fn response(&self) -> &serde_json::Value {
        &self.response
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}
