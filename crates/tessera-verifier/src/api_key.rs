//! Optional static API keys, for services that must also accept the shared keys their callers
//! used before they adopted an identity provider. Off unless you build one.
//!
//! Every key is **named** and **scoped**: one key per caller tier (`billing`, `reports`), each
//! granting its own scopes, so a leaked key is one tier's, the audit log says which tier called,
//! and a route's scope requirement applies to keys exactly as to tokens.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use aws_lc_rs::digest;

use crate::error::ConfigError;
use crate::token::AccessToken;

/// Where one named key's values come from. Several values may be valid at once
/// (comma- or newline-separated) so a key can be rotated without downtime: add the new one,
/// move the callers, remove the old one.
#[derive(Debug, Clone)]
pub enum ApiKeySource {
    /// An environment variable, read at every check (so a process that updates its environment
    /// from a config reload sees new keys without a restart).
    Env(String),
    /// A file (e.g. a mounted secret), re-read whenever its modification time changes.
    File(PathBuf),
}

/// Where a tier's key digests come from.
#[derive(Debug)]
enum Keys {
    Source(ApiKeySource),
    /// From [`ApiKeyAuthenticatorBuilder::config`]: hashed once, the text not kept.
    Fixed(Vec<[u8; 32]>),
}

/// One caller tier: its name, its keys, its scopes.
struct Tier {
    name: String,
    /// `static:{name}`: the principal's client id.
    principal: String,
    keys: Keys,
    scopes: BTreeSet<String>,
    file_cache: Mutex<Option<(SystemTime, Vec<[u8; 32]>)>>,
}

/// Accepts static API keys presented as `X-API-Key: KEY` or `Authorization: Bearer KEY`,
/// comparing in constant time, and yields an [`AccessToken`] principal whose client id is
/// `static:{name}` (the key's tier) and whose scopes are that tier's.
///
/// ```
/// use tessera_verifier::{ApiKeyAuthenticator, ApiKeySource};
///
/// # std::env::set_var("BILLING_API_KEY", "k-1");
/// let keys = ApiKeyAuthenticator::builder()
///     .key("billing", ApiKeySource::Env("BILLING_API_KEY".into()), ["s2s:read"])
///     .key("reports", ApiKeySource::File("/run/secrets/reports-key".into()), ["reports:read"])
///     .build();
/// # let _ = keys;
/// ```
pub struct ApiKeyAuthenticator {
    tiers: Vec<Tier>,
}

impl std::fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ApiKeyAuthenticator");
        for t in &self.tiers {
            // The source names where keys live (a variable, a path), never a key.
            let from: &dyn std::fmt::Debug = match &t.keys {
                Keys::Source(s) => s,
                Keys::Fixed(_) => &"config",
            };
            d.field(&t.name, &(from, &t.scopes));
        }
        d.finish()
    }
}

/// Builds an [`ApiKeyAuthenticator`]; [`ApiKeyAuthenticatorBuilder::build`] refuses a
/// configuration without keys.
#[derive(Debug, Default)]
pub struct ApiKeyAuthenticatorBuilder {
    tiers: Vec<(String, Keys, BTreeSet<String>)>,
    /// The first problem met in [`ApiKeyAuthenticatorBuilder::config`], reported by `build`.
    error: Option<ConfigError>,
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, b).as_ref());
    out
}

fn parse_keys(text: &str) -> Vec<[u8; 32]> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| sha256(k.as_bytes()))
        .collect()
}

impl ApiKeyAuthenticatorBuilder {
    /// A key tier `name` (1–64 of `A-Z a-z 0-9 . _ -`, unique), whose values come from
    /// `source`, granting `scopes`. A caller presenting one is `static:{name}`.
    pub fn key<I, S>(mut self, name: impl Into<String>, source: ApiKeySource, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tiers.push((
            name.into(),
            Keys::Source(source),
            scopes.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Key tiers from configuration text, one per line:
    ///
    /// ```text
    /// # NAME=KEY[,KEY…];scopes=SCOPE SCOPE…
    /// billing=9f1c…;scopes=s2s:read
    /// reports=old-key,new-key;scopes=reports:read reports:export
    /// ```
    ///
    /// Blank lines and lines starting with `#` are skipped; `scopes=` may be empty (the key then
    /// passes only routes that require no scope). The keys are hashed at once and the text is
    /// not kept, so they are fixed for the authenticator's life (use
    /// [`ApiKeyAuthenticatorBuilder::key`] with a source to pick up changes). A line that does
    /// not parse makes [`ApiKeyAuthenticatorBuilder::build`] fail, naming its number.
    pub fn config(mut self, text: &str) -> Self {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // A key may itself hold `=` (base64 padding), so the name ends at the first `=` and
            // the scopes start at the last `;scopes=`.
            let parsed = line.split_once('=').and_then(|(name, rest)| {
                let (keys, scopes) = rest.rsplit_once(";scopes=")?;
                Some((name.trim(), keys, scopes))
            });
            let Some((name, keys, scopes)) = parsed else {
                self.error.get_or_insert(ConfigError::ApiKey {
                    name: format!("line {}", n + 1),
                    reason: "expected NAME=KEY[,KEY…];scopes=SCOPE …".into(),
                });
                continue;
            };
            self.tiers.push((
                name.into(),
                Keys::Fixed(parse_keys(keys)),
                scopes.split_whitespace().map(str::to_owned).collect(),
            ));
        }
        self
    }

    /// Check the tiers and read every key source once. Refused ([`ConfigError`]): no tier at
    /// all, or a tier whose source holds no key — an environment variable that is unset or
    /// empty counts as none — ([`ConfigError::NoApiKeys`]); a bad or repeated name, a scope
    /// with spaces, an unreadable file, one key in two tiers ([`ConfigError::ApiKey`]).
    pub fn build(self) -> Result<ApiKeyAuthenticator, ConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.tiers.is_empty() {
            return Err(ConfigError::NoApiKeys { name: None });
        }
        let mut tiers: Vec<Tier> = Vec::with_capacity(self.tiers.len());
        let mut seen: Vec<([u8; 32], usize)> = Vec::new();
        for (name, keys, scopes) in self.tiers {
            let bad = |name: &str, reason: String| ConfigError::ApiKey {
                name: name.into(),
                reason,
            };
            let name_ok = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !name_ok {
                return Err(bad(&name, "a name is 1-64 of A-Z a-z 0-9 . _ -".into()));
            }
            if tiers.iter().any(|t| t.name == name) {
                return Err(bad(&name, "named twice".into()));
            }
            if scopes
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
            {
                return Err(bad(
                    &name,
                    "a scope must be non-empty, without spaces".into(),
                ));
            }
            let tier = Tier {
                principal: format!("static:{name}"),
                name,
                keys,
                scopes,
                file_cache: Mutex::new(None),
            };
            let now = match &tier.keys {
                Keys::Source(ApiKeySource::File(path)) => std::fs::read_to_string(path)
                    .map(|t| parse_keys(&t))
                    .map_err(|e| bad(&tier.name, format!("cannot read {}: {e}", path.display())))?,
                _ => tier.current_keys(),
            };
            if now.is_empty() {
                return Err(ConfigError::NoApiKeys {
                    name: Some(tier.name),
                });
            }
            for k in now {
                if let Some((_, other)) = seen.iter().find(|(s, i)| *s == k && *i != tiers.len()) {
                    return Err(bad(
                        &tier.name,
                        format!("a key of this tier is also one of {}", tiers[*other].name),
                    ));
                }
                seen.push((k, tiers.len()));
            }
            tiers.push(tier);
        }
        Ok(ApiKeyAuthenticator { tiers })
    }
}

impl Tier {
    fn current_keys(&self) -> Vec<[u8; 32]> {
        match &self.keys {
            Keys::Fixed(keys) => keys.clone(),
            Keys::Source(ApiKeySource::Env(var)) => std::env::var(var)
                .map(|v| parse_keys(&v))
                .unwrap_or_default(),
            Keys::Source(ApiKeySource::File(path)) => {
                let Ok(mtime) = std::fs::metadata(path).and_then(|m| m.modified()) else {
                    return Vec::new();
                };
                let Ok(mut cache) = self.file_cache.lock() else {
                    return Vec::new();
                };
                if let Some((t, keys)) = cache.as_ref() {
                    if *t == mtime {
                        return keys.clone();
                    }
                }
                let keys = std::fs::read_to_string(path)
                    .map(|t| parse_keys(&t))
                    .unwrap_or_default();
                *cache = Some((mtime, keys.clone()));
                keys
            }
        }
    }
}

impl ApiKeyAuthenticator {
    /// Start building: add tiers with [`ApiKeyAuthenticatorBuilder::key`] or
    /// [`ApiKeyAuthenticatorBuilder::config`].
    pub fn builder() -> ApiKeyAuthenticatorBuilder {
        ApiKeyAuthenticatorBuilder::default()
    }

    /// The tiers' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tiers.iter().map(|t| t.name.as_str())
    }

    /// Check a presented key. Both sides are hashed to a fixed length and every configured key
    /// of every tier is compared (no early exit), so timing reveals neither the key nor which
    /// one matched. A key found in two tiers (a source changed after start-up) is refused.
    pub fn authenticate(&self, presented: &str) -> Option<AccessToken> {
        if presented.is_empty() {
            return None;
        }
        let p = sha256(presented.as_bytes());
        let mut matched: Option<&Tier> = None;
        let mut matches = 0usize;
        for tier in &self.tiers {
            let mut hit = false;
            for k in tier.current_keys() {
                #[allow(deprecated)]
                let equal = aws_lc_rs::constant_time::verify_slices_are_equal(&k, &p).is_ok();
                hit |= equal;
            }
            if hit {
                matched = Some(tier);
                matches += 1;
            }
        }
        let tier = matched.filter(|_| matches == 1)?;
        Some(AccessToken::without_claims(&tier.principal, &tier.scopes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_rotate_and_are_reread() {
        let var = "TESSERA_VERIFIER_TEST_KEYS_1";
        std::env::set_var(var, "old-key-123, new-key-456");
        let a = ApiKeyAuthenticator::builder()
            .key("billing", ApiKeySource::Env(var.into()), ["s2s:internal"])
            .build()
            .unwrap();
        assert!(a.authenticate("old-key-123").is_some());
        let p = a.authenticate("new-key-456").unwrap();
        assert!(p.has_scope("s2s:internal"));
        assert_eq!(p.client_id(), "static:billing");
        assert!(a.authenticate("new-key-45").is_none());
        assert!(a.authenticate("").is_none());
        std::env::set_var(var, "new-key-456");
        assert!(
            a.authenticate("old-key-123").is_none(),
            "re-read without restart"
        );
        std::env::remove_var(var);
        assert!(a.authenticate("new-key-456").is_none());
    }

    #[test]
    fn debug_names_sources_never_keys() {
        let a = ApiKeyAuthenticator::builder()
            .config("billing=s3cr3t-value;scopes=a")
            .build()
            .unwrap();
        let d = format!("{a:?}");
        assert!(d.contains("billing") && !d.contains("s3cr3t"), "{d}");
    }
}
