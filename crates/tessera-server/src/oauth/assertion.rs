//! JWT assertions (RFC 7521, RFC 7523): the claim rules of `private_key_jwt` client assertions
//! (§2.2) and of external identity tokens presented with the JWT-bearer grant (§2.1). Signatures
//! are checked elsewhere (by `tessera-verifier`'s key caches); this module reads claims only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `grant_type` of the JWT-bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Clock skew allowed for `nbf` and `iat` in the future and for `exp` just past (seconds).
pub const LEEWAY: i64 = 30;

/// Largest assertion read, in bytes (a 4096-bit RSA signature with generous claims fits).
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;

/// The claims of a JWT whose signature has *not* been checked yet: only good for finding which
/// keys to check it with. Anything longer than [`MAX_ASSERTION_BYTES`] or not a three-part
/// compact JWS with a JSON object payload is `None`.
pub fn peek_claims(jwt: &str) -> Option<Map<String, Value>> {
    if jwt.len() > MAX_ASSERTION_BYTES {
        return None;
    }
    let mut parts = jwt.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Which check an assertion failed: recorded in the audit event, never sent to the caller
/// (RFC 6749 `invalid_client` / `invalid_grant` carry no detail that helps an attacker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a JWS, or its claims are not a JSON object.
    Malformed,
    /// `iss` or `sub` missing, or not the client id.
    IssuerOrSubject,
    /// `aud` missing, not accepted, or an array of more than one.
    Audience,
    /// `exp` missing.
    MissingExpiry,
    /// `exp` passed.
    Expired,
    /// `iat` missing (required for client assertions).
    MissingIssuedAt,
    /// `exp` too far after `iat`.
    LifetimeTooLong,
    /// `nbf` or `iat` more than the leeway in the future.
    NotYetValid,
    /// `iat` older than the trust allows.
    TooOld,
    /// `jti` missing.
    MissingJti,
    /// `jti` seen before.
    Replayed,
    /// The signature did not verify, or no key matched.
    Signature,
    /// No trust matches the issuer.
    UntrustedIssuer,
    /// A trust for the issuer exists but its subject does not match.
    Subject,
    /// The subject matched but a required claim did not.
    Claims,
    /// The client is unknown, disabled, expired or does not use this method.
    Client,
    /// The trust's client is disabled or expired, or is not the client that authenticated.
    BoundClient,
}

impl Refusal {
    /// A short name for audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed assertion",
            Self::IssuerOrSubject => "iss/sub is not the client id",
            Self::Audience => "wrong aud",
            Self::MissingExpiry => "no exp",
            Self::Expired => "expired",
            Self::MissingIssuedAt => "no iat",
            Self::LifetimeTooLong => "exp too far after iat",
            Self::NotYetValid => "nbf/iat in the future",
            Self::TooOld => "iat older than the trust allows",
            Self::MissingJti => "no jti",
            Self::Replayed => "jti replayed",
            Self::Signature => "bad signature or unknown key",
            Self::UntrustedIssuer => "no trust for this issuer",
            Self::Subject => "subject does not match",
            Self::Claims => "claims do not match",
            Self::Client => "client unknown, disabled or not private_key_jwt",
            Self::BoundClient => "the trust's client is disabled, expired or not the caller",
        }
    }
}

/// A NumericDate claim as whole seconds (fractions are allowed by RFC 7519 and truncated).
pub fn numeric(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    claims.get(name)?.as_f64().map(|f| f as i64)
}

/// A string claim.
pub fn string<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name)?.as_str()
}

/// The single `aud` of a client assertion: a string, or an array of exactly one string (read as
/// that string). Longer arrays are refused: RFC 7523bis makes `aud` a single value, so that an
/// assertion made for one server cannot be replayed at another listed beside it.
pub fn single_audience(claims: &Map<String, Value>) -> Option<&str> {
    match claims.get("aud")? {
        Value::String(s) => Some(s),
        Value::Array(a) if a.len() == 1 => a[0].as_str(),
        _ => None,
    }
}

/// Whether `aud` (string or array) contains `want`.
pub fn audience_contains(claims: &Map<String, Value>, want: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(s)) => s == want,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(want)),
        _ => false,
    }
}

/// What a client assertion must satisfy (besides its signature).
#[derive(Debug, Clone)]
pub struct ClientAssertionRules<'a> {
    /// The client id it must name in `iss` and `sub`.
    pub client_id: &'a str,
    /// Accepted `aud` values: the issuer identifier and the token endpoint URL.
    pub audiences: [&'a str; 2],
    /// Longest `exp - iat`, in seconds.
    pub max_lifetime: i64,
    /// Now, unix seconds.
    pub now: i64,
}

/// A client assertion that passed [`check_client_assertion`]: its id and until when to remember
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedAssertion {
    /// `jti`.
    pub jti: String,
    /// Keep the `jti` until this time: `exp` plus the leeway, after which the assertion is
    /// refused as expired anyway.
    pub remember_until: i64,
}

/// RFC 7523 §3 for a client assertion: `iss` = `sub` = the client id; one `aud`, the issuer or
/// the token endpoint; `exp` required and not passed; `iat` required, `exp - iat` at most the
/// maximum; `nbf` and `iat` not in the future beyond the leeway; `jti` required (its replay is
/// checked by the caller, against the shared store).
pub fn check_client_assertion(
    claims: &Map<String, Value>,
    rules: &ClientAssertionRules<'_>,
) -> Result<AcceptedAssertion, Refusal> {
    let id = Some(rules.client_id);
    if string(claims, "iss") != id || string(claims, "sub") != id {
        return Err(Refusal::IssuerOrSubject);
    }
    match single_audience(claims) {
        Some(aud) if rules.audiences.contains(&aud) => {}
        _ => return Err(Refusal::Audience),
    }
    let exp = numeric(claims, "exp").ok_or(Refusal::MissingExpiry)?;
    if rules.now >= exp.saturating_add(LEEWAY) {
        return Err(Refusal::Expired);
    }
    let iat = numeric(claims, "iat").ok_or(Refusal::MissingIssuedAt)?;
    if iat > rules.now + LEEWAY || numeric(claims, "nbf").is_some_and(|n| n > rules.now + LEEWAY) {
        return Err(Refusal::NotYetValid);
    }
    if exp.saturating_sub(iat) > rules.max_lifetime {
        return Err(Refusal::LifetimeTooLong);
    }
    let jti = string(claims, "jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(Refusal::MissingJti)?;
    Ok(AcceptedAssertion {
        jti: jti.to_owned(),
        remember_until: exp.saturating_add(LEEWAY),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn rules(now: i64) -> ClientAssertionRules<'static> {
        ClientAssertionRules {
            client_id: "tc_a",
            audiences: ["https://as.example", "https://as.example/oauth/token"],
            max_lifetime: 3600,
            now,
        }
    }

    #[test]
    fn client_assertion_rules() {
        let now = 1_000_000;
        let good = json!({"iss": "tc_a", "sub": "tc_a", "aud": "https://as.example",
            "iat": now, "exp": now + 60, "jti": "j1"});
        assert_eq!(
            check_client_assertion(&claims(good.clone()), &rules(now)),
            Ok(AcceptedAssertion {
                jti: "j1".into(),
                remember_until: now + 60 + LEEWAY
            })
        );
        let with = |k: &str, v: Value| {
            let mut c = claims(good.clone());
            c.insert(k.into(), v);
            c
        };
        let without = |k: &str| {
            let mut c = claims(good.clone());
            c.remove(k);
            c
        };
        let table: Vec<(Map<String, Value>, Refusal)> = vec![
            (with("iss", json!("tc_b")), Refusal::IssuerOrSubject),
            (with("sub", json!("tc_b")), Refusal::IssuerOrSubject),
            (with("aud", json!("https://other")), Refusal::Audience),
            (
                with("aud", json!(["https://as.example", "https://b"])),
                Refusal::Audience,
            ),
            (without("aud"), Refusal::Audience),
            (without("exp"), Refusal::MissingExpiry),
            (with("exp", json!(now - LEEWAY)), Refusal::Expired),
            (without("iat"), Refusal::MissingIssuedAt),
            (with("iat", json!(now + LEEWAY + 1)), Refusal::NotYetValid),
            (with("nbf", json!(now + LEEWAY + 1)), Refusal::NotYetValid),
            (with("exp", json!(now + 3601)), Refusal::LifetimeTooLong),
            (without("jti"), Refusal::MissingJti),
            (with("jti", json!("")), Refusal::MissingJti),
        ];
        for (c, want) in table {
            assert_eq!(check_client_assertion(&c, &rules(now)), Err(want), "{c:?}");
        }
        // An array of one is read as that string; the token endpoint URL is accepted too.
        for aud in [
            json!(["https://as.example"]),
            json!("https://as.example/oauth/token"),
        ] {
            assert!(check_client_assertion(&with("aud", aud), &rules(now)).is_ok());
        }
    }

    #[test]
    fn peek_needs_three_parts_and_an_object() {
        let p = URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
        assert!(peek_claims(&format!("e30.{p}.c2ln")).is_some());
        assert!(peek_claims(&format!("e30.{p}")).is_none());
        assert!(peek_claims(&format!("e30.{p}.a.b")).is_none());
        let arr = URL_SAFE_NO_PAD.encode(b"[1]");
        assert!(peek_claims(&format!("e30.{arr}.c2ln")).is_none());
    }
}
