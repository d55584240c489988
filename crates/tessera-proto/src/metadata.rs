//! RFC 8414 authorization-server metadata and the check every reader of it must make.

use serde::{Deserialize, Serialize};

/// Authorization-server metadata (RFC 8414 §2), as Tessera serves it at
/// `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`, and as
/// its client and verifier read it. Readers need only `issuer` and the endpoint they look for;
/// every other field is optional on read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The issuer identifier, exactly as tokens carry it.
    pub issuer: String,
    /// The token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// The JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 7009 revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 7662 introspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Client authentication methods at the revocation endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication methods at the introspection endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Grant types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Algorithms for `private_key_jwt` at the token endpoint (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Algorithms for `private_key_jwt` at the revocation endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Algorithms for `private_key_jwt` at the introspection endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// Response types: none, for a server without an authorization endpoint (serialised as
    /// `[]`, since RFC 8414 makes the member required).
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// The scopes clients may ask for.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// Extension metadata (RFC 8414 §2 allows it): the algorithms access tokens are signed
    /// with, so verifiers can build their allowlist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_token_signing_alg_values_supported: Vec<String>,
    /// OpenID Connect Discovery's algorithm list, which OIDC libraries (go-oidc v3 among them)
    /// read once at start-up as their allowlist for every JWT of this issuer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// OpenID Connect Discovery's subject identifier types (`public` here: `sub` is the
    /// client id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_types_supported: Vec<String>,
}

/// Why a metadata document was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Not a JSON object with a string `issuer`.
    #[error("metadata is not valid JSON metadata: {0}")]
    Malformed(String),
    /// RFC 8414 §3.3: the document names another issuer than the one configured.
    #[error("metadata issuer does not equal the configured issuer")]
    IssuerMismatch,
}

impl Metadata {
    /// Parse a metadata document fetched for `configured_issuer`, refusing it unless its
    /// `issuer` is identical to that one (RFC 8414 §3.3): otherwise whoever answers the
    /// well-known URL could send a reader to their own token endpoint or keys.
    ///
    /// Reading is lenient about everything but `issuer`: a member of another type than RFC 8414
    /// gives it (another issuer's extension, say) is read as absent, not as an error.
    pub fn from_json(body: &[u8], configured_issuer: &str) -> Result<Self, MetadataError> {
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| MetadataError::Malformed(e.to_string()))?;
        let issuer = doc
            .get("issuer")
            .and_then(|v| v.as_str())
            .ok_or_else(|| MetadataError::Malformed("no string issuer".into()))?;
        if issuer != configured_issuer {
            return Err(MetadataError::IssuerMismatch);
        }
        let string = |name: &str| doc.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let strings = |name: &str| -> Vec<String> {
            doc.get(name)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Self {
            issuer: issuer.to_owned(),
            token_endpoint: string("token_endpoint"),
            jwks_uri: string("jwks_uri"),
            revocation_endpoint: string("revocation_endpoint"),
            introspection_endpoint: string("introspection_endpoint"),
            revocation_endpoint_auth_methods_supported: strings(
                "revocation_endpoint_auth_methods_supported",
            ),
            introspection_endpoint_auth_methods_supported: strings(
                "introspection_endpoint_auth_methods_supported",
            ),
            grant_types_supported: strings("grant_types_supported"),
            token_endpoint_auth_methods_supported: strings("token_endpoint_auth_methods_supported"),
            token_endpoint_auth_signing_alg_values_supported: strings(
                "token_endpoint_auth_signing_alg_values_supported",
            ),
            revocation_endpoint_auth_signing_alg_values_supported: strings(
                "revocation_endpoint_auth_signing_alg_values_supported",
            ),
            introspection_endpoint_auth_signing_alg_values_supported: strings(
                "introspection_endpoint_auth_signing_alg_values_supported",
            ),
            response_types_supported: strings("response_types_supported"),
            scopes_supported: strings("scopes_supported"),
            access_token_signing_alg_values_supported: strings(
                "access_token_signing_alg_values_supported",
            ),
            id_token_signing_alg_values_supported: strings("id_token_signing_alg_values_supported"),
            subject_types_supported: strings("subject_types_supported"),
        })
    }
}

/// Where the RFC 8414 metadata of `issuer` is served: `<issuer>/.well-known/oauth-authorization-server`.
/// (RFC 8414 §3 inserts the well-known segment before an issuer's path; Tessera serves the
/// document at the issuer's root, which is the same URL for an issuer without a path.)
pub fn metadata_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/oauth-authorization-server",
        issuer.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_must_match_exactly() {
        let doc = br#"{"issuer":"https://a.example/","jwks_uri":"https://a.example/jwks.json"}"#;
        assert!(Metadata::from_json(doc, "https://a.example/").is_ok());
        for other in [
            "https://a.example",
            "https://A.example/",
            "https://b.example/",
        ] {
            assert_eq!(
                Metadata::from_json(doc, other),
                Err(MetadataError::IssuerMismatch),
                "{other}"
            );
        }
        assert!(matches!(
            Metadata::from_json(b"{}", "x"),
            Err(MetadataError::Malformed(_))
        ));
        assert!(matches!(
            Metadata::from_json(b"[1]", "x"),
            Err(MetadataError::Malformed(_))
        ));
        // Other members of unexpected types are read as absent.
        let odd = br#"{"issuer":"x","jwks_uri":7,"scopes_supported":["a",1,null],"grant_types_supported":"y"}"#;
        let m = Metadata::from_json(odd, "x").unwrap();
        assert_eq!(m.jwks_uri, None);
        assert_eq!(m.scopes_supported, vec!["a".to_string()]);
        assert!(m.grant_types_supported.is_empty());
    }

    #[test]
    fn url() {
        assert_eq!(
            metadata_url("https://a.example/"),
            "https://a.example/.well-known/oauth-authorization-server"
        );
    }
}
