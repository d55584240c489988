//! Optional static API keys, for services that must also accept the shared key their callers
//! used before they adopted an identity provider. Off unless you build one.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use aws_lc_rs::digest;

use crate::token::AccessToken;

/// Where the keys come from. Several keys may be valid at once (comma-separated) so a key can be
/// rotated without downtime: add the new one, move callers, remove the old one.
#[derive(Debug, Clone)]
pub enum ApiKeySource {
    /// An environment variable, read at every check (so a process that updates its environment
    /// from a config reload sees new keys without a restart).
    Env(String),
    /// A file (e.g. a mounted secret), re-read whenever its modification time changes.
    File(PathBuf),
}

/// Accepts static API keys presented as `X-API-Key: KEY` or `Authorization: Bearer KEY`,
/// comparing in constant time, and yields the same [`AccessToken`] principal as a JWT would.
pub struct ApiKeyAuthenticator {
    source: ApiKeySource,
    scopes: BTreeSet<String>,
    file_cache: Mutex<Option<(SystemTime, Vec<[u8; 32]>)>>,
}

impl std::fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyAuthenticator")
            .field("source", &self.source)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
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

impl ApiKeyAuthenticator {
    /// Keys from `source`; an accepted key grants `scopes`.
    pub fn new<I, S>(source: ApiKeySource, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            source,
            scopes: scopes.into_iter().map(Into::into).collect(),
            file_cache: Mutex::new(None),
        }
    }

    fn current_keys(&self) -> Vec<[u8; 32]> {
        match &self.source {
            ApiKeySource::Env(var) => std::env::var(var)
                .map(|v| parse_keys(&v))
                .unwrap_or_default(),
            ApiKeySource::File(path) => {
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

    /// Check a presented key. Both sides are hashed to a fixed length and every configured key is
    /// compared (no early exit), so timing reveals neither the key nor which one matched.
    pub fn authenticate(&self, presented: &str) -> Option<AccessToken> {
        if presented.is_empty() {
            return None;
        }
        let p = sha256(presented.as_bytes());
        let mut matched: Option<[u8; 32]> = None;
        for k in self.current_keys() {
            #[allow(deprecated)]
            if aws_lc_rs::constant_time::verify_slices_are_equal(&k, &p).is_ok() {
                matched = Some(k);
            }
        }
        let k = matched?;
        // The principal names the key by a short digest prefix, so logs can tell keys apart
        // without containing them.
        let id: String = k.iter().take(4).map(|b| format!("{b:02x}")).collect();
        Some(AccessToken::without_claims(
            format!("api-key:{id}"),
            &self.scopes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_keys_rotation_and_file_reload() {
        let var = "TESSERA_VERIFIER_TEST_KEYS_1";
        std::env::set_var(var, "old-key-123, new-key-456");
        let a = ApiKeyAuthenticator::new(ApiKeySource::Env(var.into()), ["s2s:internal"]);
        assert!(a.authenticate("old-key-123").is_some());
        let p = a.authenticate("new-key-456").unwrap();
        assert!(p.has_scope("s2s:internal"));
        assert!(p.client_id().starts_with("api-key:"));
        assert!(!p.client_id().contains("new-key"));
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
}
