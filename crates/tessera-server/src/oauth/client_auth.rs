//! Client authentication for the token endpoint (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post` and `private_key_jwt` (RFC 7523 §2.2), exactly one per request.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use crate::oauth::form::decode_component;
use crate::oauth::{ClientId, OAuthError};
use crate::secrets::ClientSecret;

/// Standard base64, padding optional: some client libraries strip the `=`.
const BASIC_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with form-encoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 8414 / OIDC registry name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// The credentials a request presented. The secret has a redacting `Debug`.
pub struct ClientCredentials {
    /// Which method carried them.
    pub method: AuthMethod,
    /// The claimed client id.
    pub client_id: ClientId,
    /// The presented secret.
    pub secret: ClientSecret,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("method", &self.method)
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .finish()
    }
}

/// A request's `Authorization` header, as the HTTP layer found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// No `Authorization` header.
    None,
    /// Exactly one, as raw bytes.
    One(Vec<u8>),
    /// More than one: refused as `invalid_request`.
    Several,
}

/// The body parameters that bear on client authentication.
#[derive(Default)]
pub struct BodyCredentials<'a> {
    /// `client_id` from the body, if present and non-empty.
    pub client_id: Option<&'a str>,
    /// `client_secret` from the body, if present and non-empty.
    pub client_secret: Option<&'a str>,
    /// `client_assertion_type`, if present and non-empty.
    pub client_assertion_type: Option<&'a str>,
    /// `client_assertion`, if present and non-empty.
    pub client_assertion: Option<&'a str>,
}

/// A `private_key_jwt` client assertion, as presented (not yet checked).
pub struct ClientAssertion {
    /// `client_id` from the body, if sent (it must then equal the assertion's `iss` and `sub`).
    pub client_id: Option<String>,
    /// The JWT.
    pub jwt: String,
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertion")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The client authentication a request presented: exactly one method.
#[derive(Debug)]
pub enum Credentials {
    /// A secret, by Basic or in the body.
    Secret(ClientCredentials),
    /// A `private_key_jwt` assertion.
    Assertion(ClientAssertion),
}

/// Work out the client authentication: [`extract`] for secrets, or a `private_key_jwt`
/// assertion (RFC 7521 §4.2). An assertion beside a secret or an `Authorization` header is two
/// methods: `invalid_request`.
pub fn extract_any(
    authorization: &Authorization,
    body: BodyCredentials<'_>,
) -> Result<Credentials, OAuthError> {
    if body.client_assertion_type.is_none() && body.client_assertion.is_none() {
        return extract(authorization, body).map(Credentials::Secret);
    }
    if *authorization != Authorization::None || body.client_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method used",
        ));
    }
    match (body.client_assertion_type, body.client_assertion) {
        (Some(crate::oauth::assertion::CLIENT_ASSERTION_TYPE), Some(jwt)) => {
            Ok(Credentials::Assertion(ClientAssertion {
                client_id: body.client_id.map(str::to_owned),
                jwt: jwt.to_owned(),
            }))
        }
        (Some(crate::oauth::assertion::CLIENT_ASSERTION_TYPE), None) => {
            Err(OAuthError::invalid_request("missing client_assertion"))
        }
        (None, _) => Err(OAuthError::invalid_request("missing client_assertion_type")),
        (Some(_), _) => Err(OAuthError::new(
            crate::oauth::ErrorCode::InvalidClient,
            "unsupported client_assertion_type",
        )),
    }
}

/// Work out the client credentials from the `Authorization` header (raw bytes) and the body.
///
/// Errors: two methods at once is `invalid_request` (RFC 6749 §2.3); no credentials, a broken or
/// unsupported `Authorization` header, or a body `client_id` without a secret is
/// `invalid_client`. Whenever the `Authorization` header was used the error asks for the Basic
/// challenge, since RFC 6749 §5.2 requires a 401 with `WWW-Authenticate` then.
pub fn extract(
    authorization: &Authorization,
    body: BodyCredentials<'_>,
) -> Result<ClientCredentials, OAuthError> {
    match authorization {
        Authorization::Several => Err(OAuthError::invalid_request(
            "more than one Authorization header",
        )),
        Authorization::One(header) => {
            if body.client_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "more than one client authentication method used",
                ));
            }
            let creds = parse_basic(header).map_err(|e| e.with_basic_challenge(true))?;
            // RFC 6749 allows client_id in the body beside Basic only if it names the same client.
            if let Some(id) = body.client_id {
                if id != creds.client_id.as_str() {
                    return Err(OAuthError::invalid_request(
                        "client_id in the body differs from the Authorization header",
                    ));
                }
            }
            Ok(creds)
        }
        Authorization::None => match (body.client_id, body.client_secret) {
            (Some(id), Some(secret)) => Ok(ClientCredentials {
                method: AuthMethod::ClientSecretPost,
                client_id: ClientId::parse(id).ok_or_else(OAuthError::invalid_client)?,
                secret: ClientSecret::new(secret.to_owned()),
            }),
            _ => Err(OAuthError::invalid_client().with_basic_challenge(true)),
        },
    }
}

fn parse_basic(header: &[u8]) -> Result<ClientCredentials, OAuthError> {
    let malformed = || {
        OAuthError::new(
            crate::oauth::ErrorCode::InvalidClient,
            "malformed Basic credentials",
        )
    };
    let header = std::str::from_utf8(header).map_err(|_| malformed())?;
    let (scheme, rest) = header.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::new(
            crate::oauth::ErrorCode::InvalidClient,
            "unsupported authentication scheme; use Basic",
        ));
    }
    let decoded = BASIC_B64.decode(rest.trim()).map_err(|_| malformed())?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(malformed)?;
    let id = decode_component(&decoded[..colon]).map_err(|_| malformed())?;
    let secret = decode_component(&decoded[colon + 1..]).map_err(|_| malformed())?;
    if secret.is_empty() {
        return Err(OAuthError::invalid_client());
    }
    Ok(ClientCredentials {
        method: AuthMethod::ClientSecretBasic,
        client_id: ClientId::parse(&id).ok_or_else(OAuthError::invalid_client)?,
        secret: ClientSecret::new(secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ErrorCode;

    fn basic(s: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let c = extract(
            &Authorization::One(basic("my%3Aid:s%2Bc+r")),
            BodyCredentials::default(),
        )
        .unwrap();
        assert_eq!(c.client_id.as_str(), "my:id");
        assert_eq!(c.secret.expose(), "s+c r");
        assert_eq!(c.method, AuthMethod::ClientSecretBasic);
    }

    #[test]
    fn bad_headers_are_invalid_client_with_challenge() {
        let cases: Vec<Vec<u8>> = vec![
            b"Basic !!!".to_vec(),
            basic("no-colon"),
            basic("id:%zz"),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode([b'i', b':', 0xff, 0xfe])
            )
            .into_bytes(),
            b"Bearer abc".to_vec(),
            b"Basic".to_vec(),
            vec![0xff, 0xfe],
        ];
        for h in cases {
            let e =
                extract(&Authorization::One(h.clone()), BodyCredentials::default()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClient, "{h:?}");
            assert!(e.basic_challenge);
        }
    }

    #[test]
    fn two_methods_is_invalid_request() {
        let body = BodyCredentials {
            client_id: Some("a"),
            client_secret: Some("b"),
            ..Default::default()
        };
        let e = extract(&Authorization::One(basic("a:b")), body).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        // An assertion beside a secret, or beside Basic.
        let assertion = || BodyCredentials {
            client_assertion_type: Some(crate::oauth::assertion::CLIENT_ASSERTION_TYPE),
            client_assertion: Some("x.y.z"),
            ..Default::default()
        };
        let e = extract_any(&Authorization::One(basic("a:b")), assertion()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = extract_any(
            &Authorization::None,
            BodyCredentials {
                client_secret: Some("s"),
                ..assertion()
            },
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(matches!(
            extract_any(&Authorization::None, assertion()),
            Ok(Credentials::Assertion(_))
        ));
        let e = extract_any(
            &Authorization::None,
            BodyCredentials {
                client_assertion_type: Some("urn:other"),
                ..assertion()
            },
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
    }

    #[test]
    fn post_needs_both_fields() {
        let body = BodyCredentials {
            client_id: Some("a"),
            client_secret: None,
            ..Default::default()
        };
        assert_eq!(
            extract(&Authorization::None, body).unwrap_err().code,
            ErrorCode::InvalidClient
        );
        let body = BodyCredentials {
            client_id: Some("a"),
            client_secret: Some("b"),
            ..Default::default()
        };
        assert_eq!(
            extract(&Authorization::None, body).unwrap().method,
            AuthMethod::ClientSecretPost
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = extract(
            &Authorization::One(basic("id:hunter2")),
            BodyCredentials::default(),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
