//! The token endpoint's success body.

use std::fmt;

use serde::{Deserialize, Serialize};

/// RFC 6749 §5.1: the body of a successful token response. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `Bearer` (compared case-insensitively by readers, RFC 6749 §7.1).
    pub token_type: String,
    /// Lifetime in seconds (RECOMMENDED; Tessera always sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Granted scopes, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_redacts() {
        let t = TokenResponse {
            access_token: "eyJsecret".into(),
            token_type: "Bearer".into(),
            expires_in: Some(300),
            scope: Some("a b".into()),
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            json,
            r#"{"access_token":"eyJsecret","token_type":"Bearer","expires_in":300,"scope":"a b"}"#
        );
        assert_eq!(serde_json::from_str::<TokenResponse>(&json).unwrap(), t);
        assert!(!format!("{t:?}").contains("eyJsecret"));
        let minimal: TokenResponse =
            serde_json::from_str(r#"{"access_token":"x","token_type":"bearer"}"#).unwrap();
        assert_eq!(minimal.expires_in, None);
    }
}
