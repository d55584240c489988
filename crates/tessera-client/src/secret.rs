//! The access tokens a token source gets back (`Debug` never shows them). The client secret it
//! sends is `tessera_proto::ClientSecret`, shared with the server.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
