//! How a token source proves who it is, and what each way puts on the wire: a client secret
//! (`client_secret_basic`, RFC 6749 §2.3.1), a client assertion signed with our private key
//! (`private_key_jwt`, RFC 7523 §2.2), or someone else's assertion as the grant itself
//! (JWT-bearer, RFC 7523 §2.1).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::request::form_encode;
use crate::{AssertionSource, ClientSecret, KeyError, PrivateKey, TokenError};

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of our client assertions: long enough for clock skew and a slow request, short
/// enough that a captured one is of little use (the server also refuses a repeated `jti`).
const CLIENT_ASSERTION_LIFETIME_SECS: u64 = 60;

/// The credential a token source sends. `Debug` redacts every secret part.
#[derive(Debug)]
pub(crate) enum Credential {
    Secret {
        client_id: String,
        secret: ClientSecret,
    },
    PrivateKeyJwt {
        client_id: String,
        key: PrivateKey,
    },
    Assertion(AssertionSource),
}

/// A credential's part of one token request.
pub(crate) struct Wire {
    /// `Authorization: Basic` id and secret, already form-encoded.
    pub(crate) basic: Option<(String, String)>,
    /// The form parameters, `grant_type` first.
    pub(crate) form: Vec<(&'static str, String)>,
}

impl Credential {
    /// The client id, for the modes that have one.
    pub(crate) fn client_id(&self) -> Option<&str> {
        match self {
            Self::Secret { client_id, .. } | Self::PrivateKeyJwt { client_id, .. } => {
                Some(client_id)
            }
            Self::Assertion(_) => None,
        }
    }

    /// What to send for one token request. A client assertion is signed afresh each time, so
    /// every request carries a new `jti`; `audience` is its `aud`, the server's issuer
    /// identifier (or, when that is not configured, the token endpoint URL, which RFC 7523 §3
    /// also allows).
    pub(crate) async fn wire(
        &self,
        http: &reqwest::Client,
        audience: &str,
    ) -> Result<Wire, TokenError> {
        Ok(match self {
            Self::Secret { client_id, secret } => Wire {
                // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic's base64.
                basic: Some((form_encode(client_id), form_encode(secret.expose()))),
                form: vec![("grant_type", "client_credentials".into())],
            },
            Self::PrivateKeyJwt { client_id, key } => Wire {
                basic: None,
                form: vec![
                    ("grant_type", "client_credentials".into()),
                    ("client_id", client_id.clone()),
                    ("client_assertion_type", CLIENT_ASSERTION_TYPE.into()),
                    (
                        "client_assertion",
                        client_assertion(key, client_id, audience, unix_now())?,
                    ),
                ],
            },
            Self::Assertion(source) => Wire {
                basic: None,
                form: vec![
                    ("grant_type", JWT_BEARER_GRANT.into()),
                    ("assertion", source.fetch(http).await?),
                ],
            },
        })
    }
}

/// A `private_key_jwt` client assertion (RFC 7523 §3): `iss` = `sub` = the client id.
pub(crate) fn client_assertion(
    key: &PrivateKey,
    client_id: &str,
    audience: &str,
    now: u64,
) -> Result<String, KeyError> {
    let mut jti = [0u8; 16];
    aws_lc_rs::rand::fill(&mut jti).map_err(|_| KeyError::Crypto {
        alg: key.alg(),
        what: "signing",
    })?;
    key.sign_jwt(&serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + CLIENT_ASSERTION_LIFETIME_SECS,
        "jti": URL_SAFE_NO_PAD.encode(jti),
    }))
}

/// Wall-clock seconds. `iat` and `exp` are read by the server against its own clock, so this
/// is the one place the monotonic [`crate::Clock`] cannot serve.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
