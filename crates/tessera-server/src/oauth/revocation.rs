//! The request of the revocation (RFC 7009 §2.1) and introspection (RFC 7662 §2.1) endpoints:
//! a `token` and the client's credentials.

use crate::oauth::{form, OAuthError};

/// A parsed revocation or introspection request.
#[derive(Default)]
pub struct TokenParams {
    /// The token to revoke or introspect.
    pub token: String,
    /// `client_id` from the body, if present and non-empty.
    pub client_id: Option<String>,
    /// `client_secret` from the body, if present and non-empty.
    pub client_secret: Option<String>,
    /// `client_assertion_type`, if present and non-empty.
    pub client_assertion_type: Option<String>,
    /// `client_assertion` (`private_key_jwt`), if present and non-empty.
    pub client_assertion: Option<String>,
}

impl std::fmt::Debug for TokenParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenParams")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenParams {
    /// Parse the form body; `token` is required. A parameter sent without a value is treated as
    /// omitted (RFC 6749 §3.1); unknown parameters are ignored (`token_type_hint` among them:
    /// this server has one kind of token).
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let pairs = form::parse(
            body,
            &[
                "token",
                "token_type_hint",
                "client_id",
                "client_secret",
                "client_assertion_type",
                "client_assertion",
            ],
            &[],
        )
        .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        let mut p = TokenParams::default();
        let mut token = None;
        for (name, value) in pairs {
            if value.is_empty() {
                continue;
            }
            match name {
                "token" => token = Some(value),
                "client_id" => p.client_id = Some(value),
                "client_secret" => p.client_secret = Some(value),
                "client_assertion_type" => p.client_assertion_type = Some(value),
                "client_assertion" => p.client_assertion = Some(value),
                _ => {}
            }
        }
        p.token = token.ok_or_else(|| OAuthError::invalid_request("missing token"))?;
        Ok(p)
    }
}
