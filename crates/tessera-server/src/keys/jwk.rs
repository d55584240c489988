//! RFC 7517 JSON Web Keys (public halves only) and RFC 7638 thumbprints.

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A public JWK as published in `/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `sig`.
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// The algorithm this key signs with; verifiers must match it against the token's `alg`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// RSA modulus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC curve (`P-256`) or OKP curve (`Ed25519`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate or OKP public key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl Jwk {
    pub(crate) fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// The RFC 7638 SHA-256 thumbprint: the required members in lexicographic order, no whitespace.
pub fn jwk_thumbprint(jwk: &Jwk) -> String {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let canonical = match jwk.kty.as_str() {
        "RSA" => serde_json::json!({"e": s(&jwk.e), "kty": "RSA", "n": s(&jwk.n)}),
        "EC" => {
            serde_json::json!({"crv": s(&jwk.crv), "kty": "EC", "x": s(&jwk.x), "y": s(&jwk.y)})
        }
        _ => serde_json::json!({"crv": s(&jwk.crv), "kty": jwk.kty, "x": s(&jwk.x)}),
    };
    // serde_json's Map is a BTreeMap (no preserve_order feature), so keys come out sorted.
    let text = canonical.to_string();
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = Jwk {
            kty: "RSA".into(),
            kid: None,
            use_: None,
            alg: None,
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
            y: None,
        };
        assert_eq!(
            jwk_thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
