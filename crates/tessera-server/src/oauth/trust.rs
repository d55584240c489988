//! Workload identity federation (RFC 7523 §2.1): a *trust* binds tokens from an external issuer
//! (a CI/CD platform, a Kubernetes cluster, a SPIFFE trust domain) to a registered client. These
//! are the matching rules; the signature is checked against the issuer's keys elsewhere.

use serde_json::{Map, Value};

use crate::oauth::assertion::{self, numeric, string, Refusal, LEEWAY};
use crate::oauth::ClientId;

/// The `use` SPIFFE trust bundles give the keys that sign JWT-SVIDs.
pub const SPIFFE_JWT_SVID_USE: &str = "jwt-svid";

/// Whose tokens a trust takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustIssuer {
    /// Tokens whose `iss` is exactly this.
    Issuer(String),
    /// SPIFFE JWT-SVIDs of this trust domain (`sub` = `spiffe://DOMAIN/…`); a JWT-SVID need not
    /// carry `iss`.
    SpiffeTrustDomain(String),
}

/// Where a trust's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustKeys {
    /// The issuer's OpenID discovery document names them (its `issuer` must match exactly).
    Discovery,
    /// A JWKS URL.
    JwksUri(String),
    /// A JWKS document (for private clusters; for SPIFFE, the trust bundle).
    Jwks(String),
}

/// The `sub` a trust accepts: exact, or a prefix (written with a trailing `*`, the only
/// wildcard; no regular expressions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectPattern {
    /// Exactly this subject.
    Exact(String),
    /// Any subject starting with this.
    Prefix(String),
}

impl SubjectPattern {
    /// Parse `repo:acme/app:*` (prefix) or `system:serviceaccount:ns:name` (exact).
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 512 {
            return None;
        }
        match s.strip_suffix('*') {
            // A bare `*` would take every subject the issuer signs for this audience.
            Some(prefix) if prefix.contains('*') || prefix.is_empty() => None,
            Some(prefix) => Some(Self::Prefix(prefix.to_owned())),
            None if s.contains('*') => None,
            None => Some(Self::Exact(s.to_owned())),
        }
    }

    /// Whether `sub` matches.
    pub fn matches(&self, sub: &str) -> bool {
        match self {
            Self::Exact(e) => sub == e,
            Self::Prefix(p) => sub.starts_with(p.as_str()),
        }
    }
}

impl std::fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(e) => f.write_str(e),
            Self::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// A trust, as registered.
#[derive(Debug, Clone)]
pub struct Trust {
    /// Its id (`tt_…`).
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// Whose tokens it takes.
    pub issuer: TrustIssuer,
    /// The `aud` the external token must carry (one of, if an array).
    pub audience: String,
    /// The `sub` it must carry.
    pub subject: SubjectPattern,
    /// Claims that must match exactly, name → value as text.
    pub claims: Vec<(String, String)>,
    /// Where the issuer's keys are.
    pub keys: TrustKeys,
    /// If set, `iat` must be at most this many seconds old.
    pub max_token_age: Option<u32>,
    /// The client whose scopes, audiences and lifetime apply.
    pub client_id: ClientId,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

impl Trust {
    /// Whether this trust is about the issuer of `claims` (an unverified peek is enough to pick
    /// the keys; every claim is checked again after the signature).
    pub fn covers(&self, claims: &Map<String, Value>) -> bool {
        match &self.issuer {
            TrustIssuer::Issuer(iss) => string(claims, "iss") == Some(iss.as_str()),
            TrustIssuer::SpiffeTrustDomain(domain) => {
                string(claims, "sub").is_some_and(|s| spiffe_domain(s) == Some(domain.as_str()))
            }
        }
    }

    /// Check a signed external token against this trust at `now`: `aud`, `exp` (required),
    /// `nbf` and `iat` (30 s leeway), `iat` age when a maximum is set, subject, then claims.
    pub fn check(&self, claims: &Map<String, Value>, now: i64) -> Result<(), Refusal> {
        if !self.covers(claims) {
            return Err(Refusal::UntrustedIssuer);
        }
        if !assertion::audience_contains(claims, &self.audience) {
            return Err(Refusal::Audience);
        }
        let exp = numeric(claims, "exp").ok_or(Refusal::MissingExpiry)?;
        if now >= exp {
            return Err(Refusal::Expired);
        }
        let iat = numeric(claims, "iat");
        let future = |t: Option<i64>| t.is_some_and(|t| t > now + LEEWAY);
        if future(numeric(claims, "nbf")) || future(iat) {
            return Err(Refusal::NotYetValid);
        }
        if let Some(max) = self.max_token_age {
            match iat {
                Some(iat) if now - iat <= i64::from(max) => {}
                _ => return Err(Refusal::TooOld),
            }
        }
        if !string(claims, "sub").is_some_and(|s| self.subject.matches(s)) {
            return Err(Refusal::Subject);
        }
        for (name, want) in &self.claims {
            if !claim_matches(claims.get(name), want) {
                return Err(Refusal::Claims);
            }
        }
        Ok(())
    }
}

/// The trust domain of a SPIFFE ID (`spiffe://DOMAIN/path`).
pub fn spiffe_domain(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("spiffe://")?;
    let domain = rest.split('/').next()?;
    (!domain.is_empty()).then_some(domain)
}

/// A required claim value against the token's: strings match exactly; numbers and booleans by
/// their JSON text (`true`, `42`); an array matches when it holds a matching element; objects
/// (nested claims) never match.
pub fn claim_matches(value: Option<&Value>, want: &str) -> bool {
    match value {
        Some(Value::String(s)) => s == want,
        Some(v @ (Value::Bool(_) | Value::Number(_))) => {
            serde_json::from_str::<Value>(want).is_ok_and(|w| w == *v)
        }
        Some(Value::Array(items)) => items
            .iter()
            .any(|i| !i.is_array() && claim_matches(Some(i), want)),
        _ => false,
    }
}

/// Whether `url` may name an issuer or a key set: `https://`, or `http://` on loopback only.
pub fn url_allowed(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trust(subject: &str, claims: &[(&str, &str)]) -> Trust {
        Trust {
            id: "tt_1".into(),
            name: "gh".into(),
            issuer: TrustIssuer::Issuer("https://token.actions.githubusercontent.com".into()),
            audience: "https://tessera.example".into(),
            subject: SubjectPattern::parse(subject).unwrap_or(SubjectPattern::Exact(String::new())),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            keys: TrustKeys::Discovery,
            max_token_age: None,
            client_id: ClientId::parse("tc_x").unwrap_or_else(ClientId::generate),
            created_at: 0,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn subjects_and_claims() {
        let now = 1_000;
        let base = json!({"iss": "https://token.actions.githubusercontent.com",
            "aud": "https://tessera.example", "sub": "repo:acme/app:ref:refs/heads/main",
            "exp": now + 300, "iat": now, "ref_protected": true, "groups": ["a", "b"], "n": 7});
        let t = trust(
            "repo:acme/app:*",
            &[("ref_protected", "true"), ("groups", "b"), ("n", "7")],
        );
        assert_eq!(t.check(&obj(base.clone()), now), Ok(()));
        // The prefix includes the ':' so that repo:acme/app-evil does not match repo:acme/app.
        let mut evil = obj(base.clone());
        evil.insert(
            "sub".into(),
            json!("repo:acme/app-evil:ref:refs/heads/main"),
        );
        assert_eq!(t.check(&evil, now), Err(Refusal::Subject));
        let exact = trust("repo:acme/app", &[]);
        let mut app_evil = obj(base.clone());
        app_evil.insert("sub".into(), json!("repo:acme/app-evil"));
        assert_eq!(exact.check(&app_evil, now), Err(Refusal::Subject));
        for (k, v) in [
            ("ref_protected", json!(false)),
            ("ref_protected", json!("yes")),
            ("groups", json!(["c"])),
            ("n", json!({"nested": 7})),
        ] {
            let mut c = obj(base.clone());
            c.insert(k.into(), v);
            assert_eq!(t.check(&c, now), Err(Refusal::Claims), "{k}");
        }
        let mut c = obj(base.clone());
        c.insert("aud".into(), json!(["x", "https://tessera.example"]));
        assert_eq!(t.check(&c, now), Ok(()));
        assert_eq!(
            t.check(&obj(base.clone()), now + 300),
            Err(Refusal::Expired)
        );
        let mut aged = t.clone();
        aged.max_token_age = Some(60);
        assert_eq!(aged.check(&obj(base), now + 61), Err(Refusal::TooOld));
    }

    #[test]
    fn patterns_and_urls() {
        assert_eq!(SubjectPattern::parse("a*b"), None);
        assert_eq!(SubjectPattern::parse("*a*"), None);
        assert_eq!(
            SubjectPattern::parse("a:*"),
            Some(SubjectPattern::Prefix("a:".into()))
        );
        assert_eq!(
            spiffe_domain("spiffe://example.org/ns/x"),
            Some("example.org")
        );
        assert_eq!(spiffe_domain("https://example.org"), None);
        for ok in [
            "https://x.example",
            "http://127.0.0.1:8080/j",
            "http://localhost:1",
            "http://[::1]:9/",
        ] {
            assert!(url_allowed(ok), "{ok}");
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "ftp://x",
            "https://",
            "http://127.0.0.1.evil.com/",
        ] {
            assert!(!url_allowed(bad), "{bad}");
        }
    }
}
