//! The JWKS cache as a public API, for code that checks JWS signatures of JWTs other than
//! access tokens: a token server checking `private_key_jwt` client assertions (RFC 7523 §2.2)
//! against a client's registered keys, or external identity tokens (RFC 7523 §2.1) against
//! their issuer's keys.
//!
//! [`KeyCaches`] holds one [`Keys`] per key source (an issuer's discovery document, a JWKS URL,
//! or a fixed JWKS), so every user of one issuer shares one cache. The cache rules are those of
//! [`crate::Verifier`] (it is the same cache): `max-age` clamped to bounds, background refresh,
//! one fetch in flight, unknown-`kid` refetches at most once per cooldown, stale keys kept for a
//! bounded time while the source is down.
//!
//! Only the signature is checked here; the claims are the caller's to check, since their rules
//! differ (an assertion's `aud` is the token server, an identity token's is whatever the trust
//! says).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;

use crate::alg::Algorithm;
use crate::cache::{CachePolicy, JwksCache, KeySet, Lookup, Source};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, InvalidToken, VerifyError};
use crate::fetch::Fetcher;

/// Where a key set comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// An issuer's discovery document at `metadata_url`, whose `issuer` must equal `issuer`
    /// exactly (RFC 8414 §3.3, OIDC Discovery §4.3) and whose `jwks_uri` names the keys.
    Discovery {
        /// The issuer identifier.
        issuer: String,
        /// The discovery document's URL.
        metadata_url: String,
    },
    /// A JWKS at this URL.
    JwksUrl(String),
    /// A fixed JWKS document (JSON); nothing is fetched.
    Static(String),
}

impl KeySource {
    /// OpenID Connect discovery: `{issuer}/.well-known/openid-configuration` (what CI/CD
    /// platforms and Kubernetes publish).
    pub fn oidc_discovery(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        let metadata_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        Self::Discovery {
            issuer,
            metadata_url,
        }
    }

    /// RFC 8414 discovery: `{issuer}/.well-known/oauth-authorization-server`.
    pub fn oauth_discovery(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        let metadata_url = tessera_proto::metadata_url(&issuer);
        Self::Discovery {
            issuer,
            metadata_url,
        }
    }
}

/// Cache settings for [`Keys`] (the defaults are [`crate::Verifier`]'s).
#[derive(Debug, Clone)]
pub struct KeyCacheSettings {
    /// Least time keys are kept (default 60 s), whatever the source's `max-age`.
    pub min_ttl: Duration,
    /// Most time keys are kept before a refresh (default 1 h).
    pub max_ttl: Duration,
    /// Time kept when the source sends no `max-age` (default 5 min).
    pub default_ttl: Duration,
    /// Least time between fetches caused by unknown `kid`s or failures (default 30 s).
    pub cooldown: Duration,
    /// How long the last good keys keep working while the source is down (default 1 h).
    pub max_staleness: Duration,
    /// Which keys to use: `None` takes keys marked `"use": "sig"` or unmarked; `Some(u)` only
    /// keys marked `"use": u` (a SPIFFE bundle marks its JWT-SVID keys `jwt-svid`).
    pub key_use: Option<String>,
}

impl Default for KeyCacheSettings {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3600),
            default_ttl: Duration::from_secs(300),
            cooldown: Duration::from_secs(30),
            max_staleness: Duration::from_secs(3600),
            key_use: None,
        }
    }
}

impl KeyCacheSettings {
    fn policy(&self) -> CachePolicy {
        CachePolicy {
            min_ttl: self.min_ttl,
            max_ttl: self.max_ttl.max(self.min_ttl),
            default_ttl: self.default_ttl,
            cooldown: self.cooldown,
            max_staleness: self.max_staleness,
        }
    }
}

/// A JWS whose signature verified.
#[derive(Debug, Clone)]
pub struct SignedPayload {
    /// The header's algorithm (`Ed25519` is read as [`Algorithm::EdDSA`]).
    pub alg: Algorithm,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    /// The header's `typ`, if any.
    pub typ: Option<String>,
    /// The payload (the JWT claims), as text.
    pub payload: String,
}

/// One source's keys, cached. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Keys {
    cache: Arc<JwksCache>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

/// Most keys tried for a JWS without `kid` (RFC 7515 makes `kid` optional; Authlib sends none).
pub const MAX_KEYS_TRIED: usize = 10;

#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

impl Keys {
    /// A cache over `source`. A static JWKS that does not parse, or has no usable key, is an
    /// error here; remote sources are fetched at first use.
    pub fn new(
        source: KeySource,
        settings: &KeyCacheSettings,
        fetcher: Option<Arc<dyn Fetcher>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        let fetcher = || -> Result<Arc<dyn Fetcher>, ConfigError> {
            match fetcher {
                Some(f) => Ok(f),
                #[cfg(feature = "reqwest")]
                None => Ok(Arc::new(
                    crate::fetch::ReqwestFetcher::new().map_err(|_| ConfigError::NoFetcher)?,
                )),
                #[cfg(not(feature = "reqwest"))]
                None => Err(ConfigError::NoFetcher),
            }
        };
        let (source, initial) = match source {
            KeySource::Static(json) => {
                let jwks: JwkSet = crate::cache::parse_jwks(json.as_bytes())
                    .map_err(|e| ConfigError::Jwks(format!("not a JWKS: {e}")))?;
                let mut set = KeySet::from_jwks(&jwks, settings.key_use.as_deref());
                if set.keys.is_empty() && set.unnamed.is_empty() {
                    return Err(ConfigError::Jwks("no usable public signing key".into()));
                }
                set.fetched_at = Some(clock.now());
                (Source::Static, set)
            }
            KeySource::JwksUrl(url) => (
                Source::Remote {
                    fetcher: fetcher()?,
                    jwks_url: Mutex::new(Some(url)),
                    discovery: None,
                },
                KeySet::empty(),
            ),
            KeySource::Discovery {
                issuer,
                metadata_url,
            } => (
                Source::Remote {
                    fetcher: fetcher()?,
                    jwks_url: Mutex::new(None),
                    discovery: Some((issuer, metadata_url)),
                },
                KeySet::empty(),
            ),
        };
        let cache = JwksCache::new(
            source,
            initial,
            settings.policy(),
            settings.key_use.clone(),
            clock,
            None,
        );
        Ok(Self { cache })
    }

    /// Fetch now (if remote and nothing usable is cached).
    pub async fn warm_up(&self) -> Result<(), VerifyError> {
        self.cache
            .usable_keys()
            .await
            .map(|_| ())
            .map_err(VerifyError::KeysUnavailable)
    }

    /// The `kid`s of the keys at hand (nothing is fetched).
    pub fn key_ids(&self) -> Vec<String> {
        self.cache.current_kids()
    }

    /// How many fetches ran.
    pub fn fetch_count(&self) -> u64 {
        self.cache.fetch_count()
    }

    /// Check the signature of the compact JWS `jws` (at most `max_bytes`) with one of these
    /// keys: the one its `kid` names (refetching once per cooldown for an unknown `kid`), or,
    /// without `kid`, each key that fits the algorithm, at most [`MAX_KEYS_TRIED`]. The header's
    /// `alg` must be in `algorithms` (which cannot name `none` or HS*); a `crit` header is
    /// refused; `jku`, `x5u` and `jwk` are never used.
    ///
    /// Errors: [`VerifyError::InvalidToken`] for the JWS, [`VerifyError::KeysUnavailable`] when
    /// no usable keys can be had (the source is down and nothing usable is cached).
    pub async fn verify(
        &self,
        jws: &str,
        algorithms: &[Algorithm],
        max_bytes: usize,
    ) -> Result<SignedPayload, VerifyError> {
        if jws.len() > max_bytes {
            return Err(InvalidToken::TooLarge.into());
        }
        let mut parts = jws.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidToken::Malformed.into());
        };
        let decode = |s: &str| {
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| InvalidToken::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(h64)?).map_err(|_| InvalidToken::Malformed)?;
        // RFC 9864: `Ed25519` is the fully specified name of EdDSA over Ed25519.
        let alg = match header.alg.as_str() {
            "Ed25519" => Algorithm::EdDSA,
            other => other
                .parse::<Algorithm>()
                .map_err(|_| InvalidToken::AlgorithmNotAllowed)?,
        };
        if !algorithms.contains(&alg) {
            return Err(InvalidToken::AlgorithmNotAllowed.into());
        }
        if header.crit.is_some() {
            return Err(InvalidToken::CriticalHeader.into());
        }
        let sig = decode(s64)?;
        let signing_input = &jws.as_bytes()[..h64.len() + 1 + p64.len()];
        let candidates = match header.kid.as_deref() {
            Some(kid) => match self.cache.lookup(Some(kid)).await {
                Lookup::Found(k) => vec![k],
                Lookup::Unknown => return Err(InvalidToken::UnknownKey.into()),
                Lookup::Unavailable(e) => return Err(VerifyError::KeysUnavailable(e)),
            },
            None => {
                let set = self
                    .cache
                    .usable_keys()
                    .await
                    .map_err(VerifyError::KeysUnavailable)?;
                set.candidates(alg, MAX_KEYS_TRIED)
            }
        };
        if candidates.is_empty() {
            return Err(InvalidToken::UnknownKey.into());
        }
        let mut fitting = false;
        for entry in candidates {
            let Some(key) = entry.for_alg(alg) else {
                continue;
            };
            fitting = true;
            if key.verify_sig(signing_input, &sig).is_ok() {
                let payload =
                    String::from_utf8(decode(p64)?).map_err(|_| InvalidToken::Malformed)?;
                return Ok(SignedPayload {
                    alg,
                    kid: header.kid,
                    typ: header.typ,
                    payload,
                });
            }
        }
        Err(if fitting {
            InvalidToken::BadSignature
        } else {
            InvalidToken::KeyMismatch
        }
        .into())
    }
}

/// Validate a JWKS document: it parses and holds at least one usable public signing key (of the
/// given `use`, see [`KeyCacheSettings::key_use`]). Returns the key ids (keys without one are
/// counted but have no id).
pub fn check_jwks(json: &str, key_use: Option<&str>) -> Result<(Vec<String>, usize), ConfigError> {
    let jwks: JwkSet = crate::cache::parse_jwks(json.as_bytes())
        .map_err(|e| ConfigError::Jwks(format!("not a JWKS: {e}")))?;
    let set = KeySet::from_jwks(&jwks, key_use);
    let count = set.keys.len() + set.unnamed.len();
    if count == 0 {
        return Err(ConfigError::Jwks("no usable public signing key".into()));
    }
    Ok((set.kids(), count))
}

/// Key caches shared by source: every trust naming one issuer, every client naming one JWKS URL,
/// uses one [`Keys`]. Bounded: beyond `max_sources` the least recently added cache is dropped
/// (it is rebuilt, and refetched, when needed again).
pub struct KeyCaches {
    settings: KeyCacheSettings,
    fetcher: Option<Arc<dyn Fetcher>>,
    clock: Arc<dyn Clock>,
    max_sources: usize,
    map: Mutex<(
        HashMap<KeySource, Keys>,
        std::collections::VecDeque<KeySource>,
    )>,
}

impl std::fmt::Debug for KeyCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCaches")
            .field("settings", &self.settings)
            .field("max_sources", &self.max_sources)
            .finish_non_exhaustive()
    }
}

impl KeyCaches {
    /// Caches with `settings`, fetching with `fetcher` (default: reqwest, 5 s timeout).
    pub fn new(settings: KeyCacheSettings, fetcher: Option<Arc<dyn Fetcher>>) -> Self {
        Self {
            settings,
            fetcher,
            clock: Arc::new(SystemClock),
            max_sources: 10_000,
            map: Mutex::new(Default::default()),
        }
    }

    /// Inject the clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The cache for `source` with the shared settings, created on first use.
    pub fn get(&self, source: &KeySource) -> Result<Keys, ConfigError> {
        self.get_with(source, None)
    }

    /// The cache for `source`, taking only keys marked `"use": key_use` (see
    /// [`KeyCacheSettings::key_use`]).
    pub fn get_with(&self, source: &KeySource, key_use: Option<&str>) -> Result<Keys, ConfigError> {
        let mut guard = match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // The use filter is part of the identity: the same bundle read for two uses is two sets.
        let key = match key_use {
            None => source.clone(),
            Some(u) => match source {
                KeySource::Static(json) => KeySource::Static(format!("{u}\u{0}{json}")),
                KeySource::JwksUrl(url) => KeySource::JwksUrl(format!("{u}\u{0}{url}")),
                KeySource::Discovery {
                    issuer,
                    metadata_url,
                } => KeySource::Discovery {
                    issuer: issuer.clone(),
                    metadata_url: format!("{u}\u{0}{metadata_url}"),
                },
            },
        };
        if let Some(k) = guard.0.get(&key) {
            return Ok(k.clone());
        }
        let mut settings = self.settings.clone();
        settings.key_use = key_use.map(str::to_owned);
        let keys = Keys::new(
            source.clone(),
            &settings,
            self.fetcher.clone(),
            self.clock.clone(),
        )?;
        let (map, order) = &mut *guard;
        while map.len() >= self.max_sources {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
        map.insert(key.clone(), keys.clone());
        order.push_back(key);
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};

    fn signed(key: &Ed25519KeyPair, header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[tokio::test]
    async fn static_keys_without_kid_and_the_rfc9864_name() {
        let key = Ed25519KeyPair::generate().unwrap();
        let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
        // As WebCrypto exports it: `alg` is the fully specified name.
        let jwks =
            format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","alg":"Ed25519"}}]}}"#);
        assert_eq!(check_jwks(&jwks, None).unwrap().1, 1);
        // A mistyped key beside it is ignored, not a reason to refuse the set (RFC 7517 §5).
        let mixed = format!(
            r#"{{"keys":[{{"kty":"EC","alg":false}},{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}]}}"#
        );
        assert_eq!(check_jwks(&mixed, None).unwrap().1, 1);
        let keys = Keys::new(
            KeySource::Static(jwks),
            &KeyCacheSettings::default(),
            None,
            Arc::new(SystemClock),
        )
        .unwrap();
        let algs = [Algorithm::EdDSA];
        for alg in ["EdDSA", "Ed25519"] {
            let jws = signed(&key, &format!(r#"{{"alg":"{alg}"}}"#), r#"{"sub":"a"}"#);
            let ok = keys.verify(&jws, &algs, 4096).await.unwrap();
            assert_eq!(
                (ok.alg, ok.payload.as_str()),
                (Algorithm::EdDSA, r#"{"sub":"a"}"#)
            );
        }
        // Not allowed, or not signed: refused before any key is used.
        for (header, want) in [
            (r#"{"alg":"HS256"}"#, InvalidToken::AlgorithmNotAllowed),
            (r#"{"alg":"none"}"#, InvalidToken::AlgorithmNotAllowed),
            (
                r#"{"alg":"EdDSA","crit":["x"]}"#,
                InvalidToken::CriticalHeader,
            ),
            (r#"{"alg":"EdDSA","kid":"other"}"#, InvalidToken::UnknownKey),
        ] {
            let jws = signed(&key, header, "{}");
            assert_eq!(
                keys.verify(&jws, &algs, 4096).await.unwrap_err(),
                want.into(),
                "{header}"
            );
        }
        let other = Ed25519KeyPair::generate().unwrap();
        let forged = signed(&other, r#"{"alg":"EdDSA"}"#, "{}");
        assert_eq!(
            keys.verify(&forged, &algs, 4096).await.unwrap_err(),
            InvalidToken::BadSignature.into()
        );
        assert_eq!(
            keys.verify(&forged, &algs, 10).await.unwrap_err(),
            InvalidToken::TooLarge.into()
        );
    }
}
