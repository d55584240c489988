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

/// The claims of a token this server issued, as introspection reports them.
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
}

/// Check that `token` is a live token this server issued: signed by one of the published keys
/// (`jwks`) with the key's own algorithm, `typ` at+jwt, `iss` = `issuer`, not expired at `now`.
/// Anything else (another issuer, a retired key, a forgery, garbage) is `None`: RFC 7662
/// answers all of those the same way, `active: false`.
pub fn check_issued(
    token: &str,
    jwks: &[crate::keys::Jwk],
    issuer: &str,
    now: i64,
) -> Option<IssuedClaims> {
    if token.len() > 16 * 1024 {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some("at+jwt") {
        return None;
    }
    let kid = header.kid?;
    let jwk = jwks
        .iter()
        .find(|k| k.kid.as_deref() == Some(kid.as_str()))?;
    let alg = match jwk.alg.as_deref()? {
        "RS256" => jsonwebtoken::Algorithm::RS256,
        "ES256" => jsonwebtoken::Algorithm::ES256,
        "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
        _ => return None,
    };
    if header.alg != alg {
        return None;
    }
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(serde_json::to_value(jwk).ok()?).ok()?;
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).ok()?;
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_issuer(&[issuer]);
    v.validate_aud = false;
    // Expiry is checked against the injected clock below, not jsonwebtoken's system clock.
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<IssuedClaims>(token, &key, &v)
        .ok()?
        .claims;
    (now < claims.exp).then_some(claims)
}
