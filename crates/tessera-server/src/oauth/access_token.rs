//! The RFC 9068 JWT access-token claims.

use serde::Serialize;

use crate::oauth::{Client, Grant};

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    /// Issuer, exactly as configured.
    pub iss: &'a str,
    /// Subject: the client id (there is no end user in client credentials).
    pub sub: &'a str,
    /// Audience.
    pub aud: &'a str,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique token id (128 random bits), for revocation.
    pub jti: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// Granted scopes, space separated.
    pub scope: &'a str,
}

impl<'a> AccessTokenClaims<'a> {
    /// Claims for `client` and `grant`, issued at `now`.
    pub fn new(
        issuer: &'a str,
        client: &'a Client,
        grant: &'a Grant,
        scope: &'a str,
        jti: &'a str,
        now: i64,
    ) -> Self {
        Self {
            iss: issuer,
            sub: client.id.as_str(),
            aud: grant.audience.as_str(),
            exp: now + i64::from(grant.lifetime),
            iat: now,
            nbf: now,
            jti,
            client_id: client.id.as_str(),
            scope,
        }
    }
}

/// The claims of a token this server issued, as introspection reports them (read from a token
/// that `tessera-verifier` has checked).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct IssuedClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience (one value, as this server issues).
    pub aud: serde_json::Value,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// Client id.
    pub client_id: String,
    /// Scopes.
    pub scope: String,
    /// Any other claims (the client's custom claims).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}
