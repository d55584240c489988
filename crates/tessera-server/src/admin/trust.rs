//! `trust add | list | show | remove`: workload identity federation trusts (see
//! [`crate::oauth::trust`]).

use serde::Serialize;

use super::{checked_jwks, parse_id, parse_name, Admin, AdminError};
use crate::audit::{announce, Actor};
use crate::oauth::trust::{
    url_allowed, SubjectPattern, Trust, TrustIssuer, TrustKeys, SPIFFE_JWT_SVID_USE,
};

/// Input for `trust add`.
#[derive(Debug, Clone, Default)]
pub struct TrustInput {
    /// Unique name.
    pub name: String,
    /// The external issuer (`iss`), exactly; `https://`, or `http://` on loopback.
    pub issuer: Option<String>,
    /// Instead of an issuer: a SPIFFE trust domain (JWT-SVIDs need not carry `iss`).
    pub spiffe_trust_domain: Option<String>,
    /// The `aud` the external token must carry.
    pub audience: String,
    /// The `sub` it must carry: exact, or a prefix ending in `*`.
    pub subject: String,
    /// `NAME=VALUE` claims that must match exactly.
    pub claims: Vec<String>,
    /// The issuer's JWKS URL (default: from its OpenID discovery document).
    pub jwks_uri: Option<String>,
    /// The issuer's JWKS document (private clusters; a SPIFFE bundle).
    pub jwks: Option<String>,
    /// Refuse tokens whose `iat` is older than this many seconds (off by default).
    pub max_token_age: Option<u32>,
    /// The bound client's id.
    pub client: String,
}

/// A trust as `trust list|show` shows it.
#[derive(Debug, Serialize)]
pub struct TrustView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// External issuer, if the trust names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// SPIFFE trust domain, if the trust names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spiffe_trust_domain: Option<String>,
    /// Required `aud`.
    pub audience: String,
    /// Required `sub` (a trailing `*` is a prefix match).
    pub subject: String,
    /// Required claims.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// `discovery`, `jwks_uri` or `jwks`.
    pub keys_from: &'static str,
    /// The JWKS URL, when the keys come from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Maximum token age in seconds, if set.
    pub max_token_age: Option<u32>,
    /// The bound client.
    pub client_id: String,
    /// Created, unix seconds.
    #[serde(serialize_with = "crate::clock::serde_rfc3339::serialize")]
    pub created_at: i64,
}

impl From<&Trust> for TrustView {
    fn from(t: &Trust) -> Self {
        let (issuer, spiffe_trust_domain) = match &t.issuer {
            TrustIssuer::Issuer(i) => (Some(i.clone()), None),
            TrustIssuer::SpiffeTrustDomain(d) => (None, Some(d.clone())),
        };
        let (keys_from, jwks_uri) = match &t.keys {
            TrustKeys::Discovery => ("discovery", None),
            TrustKeys::JwksUri(u) => ("jwks_uri", Some(u.clone())),
            TrustKeys::Jwks(_) => ("jwks", None),
        };
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            issuer,
            spiffe_trust_domain,
            audience: t.audience.clone(),
            subject: t.subject.to_string(),
            claims: t
                .claims
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().into()))
                .collect(),
            keys_from,
            jwks_uri,
            max_token_age: t.max_token_age,
            client_id: t.client_id.to_string(),
            created_at: t.created_at,
        }
    }
}

fn invalid(s: impl Into<String>) -> AdminError {
    AdminError::Invalid(s.into())
}

impl Admin {
    /// Register a trust bound to an existing client.
    pub async fn add_trust(&self, by: &Actor, input: TrustInput) -> Result<TrustView, AdminError> {
        let now = self.clock.now();
        let name = parse_name(&input.name)?;
        let issuer = match (&input.issuer, &input.spiffe_trust_domain) {
            (Some(iss), None) => {
                if !url_allowed(iss) || iss.len() > 512 {
                    return Err(invalid(format!(
                        "--issuer must be an https:// URL (http:// only on loopback): '{iss}'"
                    )));
                }
                TrustIssuer::Issuer(iss.clone())
            }
            (None, Some(domain)) => {
                let ok = !domain.is_empty()
                    && domain.len() <= 255
                    && domain.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b)
                    });
                if !ok {
                    return Err(invalid(format!(
                        "--spiffe-trust-domain must be a trust domain name such as example.org: '{domain}'"
                    )));
                }
                TrustIssuer::SpiffeTrustDomain(domain.clone())
            }
            _ => {
                return Err(invalid(
                    "give exactly one of --issuer and --spiffe-trust-domain",
                ))
            }
        };
        let spiffe = matches!(issuer, TrustIssuer::SpiffeTrustDomain(_));
        let keys = match (&input.jwks_uri, &input.jwks) {
            (None, None) if spiffe => {
                return Err(invalid(
                    "a SPIFFE trust needs the trust bundle: --jwks-file or --jwks-uri",
                ))
            }
            (None, None) => TrustKeys::Discovery,
            (Some(u), None) => {
                if !url_allowed(u) || u.len() > 2048 {
                    return Err(invalid(format!(
                        "--jwks-uri must be an https:// URL (http:// only on loopback): '{u}'"
                    )));
                }
                TrustKeys::JwksUri(u.clone())
            }
            (None, Some(json)) => {
                let key_use = spiffe.then_some(SPIFFE_JWT_SVID_USE);
                TrustKeys::Jwks(checked_jwks(json, key_use)?)
            }
            (Some(_), Some(_)) => return Err(invalid("give one of --jwks-uri and --jwks-file")),
        };
        if input.audience.is_empty() || input.audience.len() > 512 {
            return Err(invalid("--audience is required"));
        }
        let subject = SubjectPattern::parse(&input.subject).ok_or_else(|| {
            invalid(
                "--subject must be exact, or a prefix with one trailing '*' (no other wildcards)",
            )
        })?;
        if spiffe && !input.subject.starts_with("spiffe://") {
            return Err(invalid("a SPIFFE trust's --subject is a spiffe:// ID"));
        }
        let mut claims = Vec::new();
        for c in &input.claims {
            let (k, v) = c
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| invalid(format!("--claim must be NAME=VALUE: '{c}'")))?;
            if ["iss", "sub", "aud", "exp", "nbf", "iat"].contains(&k) {
                return Err(invalid(format!(
                    "--claim {k}: use --issuer, --subject or --audience; time claims are always checked"
                )));
            }
            if claims.iter().any(|(name, _)| name == k) {
                return Err(invalid(format!(
                    "--claim {k} is given twice; a claim has one required value"
                )));
            }
            claims.push((k.to_owned(), v.to_owned()));
        }
        let client_id = parse_id(&input.client)?;
        if self.store.get_client(&client_id).await?.is_none() {
            return Err(AdminError::NotFound(client_id.to_string()));
        }
        if self
            .store
            .load_trusts()
            .await?
            .iter()
            .any(|t| t.name == name)
        {
            return Err(AdminError::Conflict(format!(
                "a trust named '{name}' exists already"
            )));
        }
        let trust = Trust {
            id: format!("tt_{}", crate::random::base64url(12)),
            name,
            issuer,
            audience: input.audience.clone(),
            subject,
            claims,
            keys,
            max_token_age: input.max_token_age,
            client_id,
            created_at: now,
        };
        let view = TrustView::from(&trust);
        let detail = serde_json::to_value(&view).unwrap_or_default();
        let audit = by.record("trust.add", Some(&trust.client_id), detail, now);
        self.store.create_trust(&trust, &audit).await?;
        announce(&audit);
        Ok(view)
    }

    /// Every trust.
    pub async fn list_trusts(&self) -> Result<Vec<TrustView>, AdminError> {
        Ok(self
            .store
            .load_trusts()
            .await?
            .iter()
            .map(TrustView::from)
            .collect())
    }

    /// One trust, by name or id.
    pub async fn show_trust(&self, name_or_id: &str) -> Result<TrustView, AdminError> {
        self.store
            .load_trusts()
            .await?
            .iter()
            .find(|t| t.name == name_or_id || t.id == name_or_id)
            .map(TrustView::from)
            .ok_or_else(|| AdminError::Missing(format!("no trust named '{name_or_id}'")))
    }

    /// Remove a trust, by name or id. Replicas stop honouring it within one refresh interval.
    pub async fn remove_trust(&self, by: &Actor, name_or_id: &str) -> Result<(), AdminError> {
        let now = self.clock.now();
        let view = self.show_trust(name_or_id).await?;
        let audit = by.record(
            "trust.remove",
            crate::oauth::ClientId::parse(&view.client_id).as_ref(),
            serde_json::json!({"name": view.name, "id": view.id}),
            now,
        );
        if !self.store.delete_trust(&view.id, &audit).await? {
            return Err(AdminError::Missing(format!(
                "no trust named '{name_or_id}'"
            )));
        }
        announce(&audit);
        Ok(())
    }
}
