//! The client-credentials grant (RFC 6749 §4.4): which scopes, audience and lifetime a token
//! request gets.

use crate::oauth::error::caller_text;
use crate::oauth::form::{self, FormError};
use crate::oauth::{Audience, Client, ErrorCode, OAuthError, ScopeSet};

/// The client-credentials grant type.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

pub use crate::oauth::assertion::JWT_BEARER;

/// The parameters of a token request this server reads; any other is ignored (RFC 6749 §3.2).
pub const TOKEN_PARAMETERS: &[&str] = &[
    "grant_type",
    "scope",
    "resource",
    "audience",
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
    "assertion",
];

/// A parsed token request (after client authentication has been split off). Its `Debug` shows
/// no secret or assertion.
#[derive(Default)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope`, if given and non-empty.
    pub scope: Option<String>,
    /// `resource` (RFC 8707) values and `audience`, in order.
    pub targets: Vec<String>,
    /// `client_id` from the body.
    pub client_id: Option<String>,
    /// `client_secret` from the body.
    pub client_secret: Option<String>,
    /// `client_assertion_type` (RFC 7521 §4.2).
    pub client_assertion_type: Option<String>,
    /// `client_assertion`: a `private_key_jwt` JWT.
    pub client_assertion: Option<String>,
    /// `assertion`: the external JWT of the JWT-bearer grant (RFC 7523 §2.1).
    pub assertion: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("scope", &self.scope)
            .field("targets", &self.targets)
            .field("client_id", &self.client_id)
            .field("client_assertion_type", &self.client_assertion_type)
            .finish_non_exhaustive()
    }
}

impl TokenRequest {
    /// Parse the form body. RFC 6749 §3.1: a parameter sent without a value is treated as
    /// omitted; §3.2: a known parameter given twice is `invalid_request` (except `resource`),
    /// unknown ones are ignored, repeated or not.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let pairs = form::parse(body, TOKEN_PARAMETERS, &["resource"])
            .map_err(|e: FormError| OAuthError::invalid_request(e.to_string()))?;
        let mut req = TokenRequest::default();
        let mut audience = None;
        for (name, value) in pairs {
            if value.is_empty() {
                continue;
            }
            match name {
                "grant_type" => req.grant_type = Some(value),
                "scope" => req.scope = Some(value),
                "resource" => req.targets.push(value),
                "audience" => audience = Some(value),
                "client_id" => req.client_id = Some(value),
                "client_secret" => req.client_secret = Some(value),
                "client_assertion_type" => req.client_assertion_type = Some(value),
                "client_assertion" => req.client_assertion = Some(value),
                "assertion" => req.assertion = Some(value),
                _ => {} // Only known names come back from the parser.
            }
        }
        req.targets.extend(audience);
        Ok(req)
    }

    /// Check the grant type before any (costly) client authentication.
    pub fn check_grant_type(&self) -> Result<(), OAuthError> {
        match self.grant_type.as_deref() {
            None => Err(OAuthError::invalid_request("missing grant_type")),
            Some(CLIENT_CREDENTIALS) => Ok(()),
            Some(JWT_BEARER) if self.assertion.is_none() => {
                Err(OAuthError::invalid_request("missing assertion"))
            }
            Some(JWT_BEARER) => Ok(()),
            Some(_) => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "supported grant types: client_credentials, urn:ietf:params:oauth:grant-type:jwt-bearer",
            )),
        }
    }
}

/// What an authenticated client is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// The token's `aud`.
    pub audience: Audience,
    /// Lifetime in seconds.
    pub lifetime: u32,
}

/// Decide the grant for an authenticated client. `fallback_audience` is used when the client has
/// no audiences registered (the issuer, so that `aud` is never empty as RFC 9068 requires).
pub fn decide(
    client: &Client,
    req: &TokenRequest,
    fallback_audience: &Audience,
) -> Result<Grant, OAuthError> {
    let scopes = match &req.scope {
        None => client.scopes.clone(),
        Some(s) => {
            let requested = ScopeSet::parse(s)
                .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?;
            if !requested.is_subset(&client.scopes) {
                let extra: Vec<&str> = requested
                    .difference(&client.scopes)
                    .map(|s| s.as_str())
                    .collect();
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!(
                        "scope not allowed for this client: {}",
                        caller_text(&extra.join(" "))
                    ),
                ));
            }
            requested
        }
    };
    let audience = match req.targets.as_slice() {
        [] => client
            .audiences
            .first()
            .cloned()
            .unwrap_or_else(|| fallback_audience.clone()),
        [one] => client
            .audiences
            .iter()
            .find(|a| a.as_str() == one)
            .cloned()
            .ok_or_else(|| {
                OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "resource/audience not allowed for this client",
                )
            })?,
        _ => {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "one resource or audience per token request",
            ))
        }
    };
    Ok(Grant {
        scopes,
        audience,
        lifetime: client.token_ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ClientId;

    fn client() -> Client {
        Client {
            id: ClientId::parse("c1").unwrap(),
            name: "c".into(),
            scopes: ScopeSet::parse("a b").unwrap(),
            audiences: vec![
                Audience::parse("https://api").unwrap(),
                Audience::parse("https://other").unwrap(),
            ],
            token_ttl: 60,
            enabled: true,
            expires_at: None,
            auth: crate::oauth::ClientAuth::Secret,
            claims: Default::default(),
            max_tokens_per_minute: None,
            secrets: vec![],
            created_at: 0,
            updated_at: 0,
        }
    }

    fn req(body: &str) -> TokenRequest {
        TokenRequest::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn defaults_and_subsets() {
        let fb = Audience::parse("https://issuer").unwrap();
        let g = decide(&client(), &req("grant_type=client_credentials"), &fb).unwrap();
        assert_eq!(g.scopes.to_string(), "a b");
        assert_eq!(g.audience.as_str(), "https://api");
        assert_eq!(g.lifetime, 60);
        let g = decide(&client(), &req("scope=b&resource=https%3A%2F%2Fother"), &fb).unwrap();
        assert_eq!(g.scopes.to_string(), "b");
        assert_eq!(g.audience.as_str(), "https://other");
        // Empty scope is the same as no scope (RFC 6749 §3.1).
        assert_eq!(
            decide(&client(), &req("scope="), &fb)
                .unwrap()
                .scopes
                .to_string(),
            "a b"
        );
    }

    #[test]
    fn refusals() {
        let fb = Audience::parse("https://issuer").unwrap();
        let code = |b: &str| decide(&client(), &req(b), &fb).unwrap_err().code;
        assert_eq!(code("scope=a+c"), ErrorCode::InvalidScope);
        assert_eq!(code("scope=a++b"), ErrorCode::InvalidScope);
        assert_eq!(
            code("audience=https%3A%2F%2Fevil"),
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            code("resource=https%3A%2F%2Fapi&resource=https%3A%2F%2Fother"),
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            TokenRequest::parse(b"scope=a&scope=b").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            req("").check_grant_type().unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            req("grant_type=password")
                .check_grant_type()
                .unwrap_err()
                .code,
            ErrorCode::UnsupportedGrantType
        );
    }
}
