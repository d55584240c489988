//! The JWKS cache.
//!
//! Rules (each one is where widely used libraries fail their users):
//! - keys are kept for the issuer's `Cache-Control: max-age`, clamped to configured bounds, and
//!   refreshed in the background once 80 % of that has passed, so requests do not wait;
//! - an unknown `kid` triggers a refetch, but a single request is in flight however many callers
//!   wait for it, and at most one fetch starts per cooldown, so a flood of made-up kids cannot
//!   hammer the issuer; the cooldown also spaces out retries after a failed fetch, but not the
//!   regular refreshes the issuer's max-age asks for;
//! - a failed signature never triggers a refetch;
//! - no lock is held across the HTTP call: verifications with known keys go on during a refresh;
//! - when the issuer is down, the last good keys keep working until `max_staleness` after the
//!   last successful fetch, then verification fails with keys-unavailable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::alg::Algorithm;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::fetch::{FetchError, Fetcher};

/// One usable key, parsed once per JWKS fetch (not once per token): for every algorithm it may
/// verify (from `kty`/`crv`, narrowed by the JWK's `alg`), an aws-lc-rs key ready to check
/// signatures.
pub(crate) struct KeyEntry {
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

impl KeyEntry {
    /// The parsed key for `alg`, if this key may verify `alg` at all.
    pub fn for_alg(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.parsed.iter().find(|(a, _)| *a == alg).map(|(_, k)| k)
    }
}

/// The aws-lc-rs verification algorithm for a JOSE algorithm. ES256/ES384 signatures are the
/// fixed-width r‖s form JWS uses (RFC 7518 §3.4).
fn verification_alg(alg: Algorithm) -> &'static dyn VerificationAlgorithm {
    match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
    }
}

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1).
fn der_rsa_public_key(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, l: usize) {
        if l < 0x80 {
            out.push(l as u8);
        } else {
            let bytes: Vec<u8> = l
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        let v: &[u8] = {
            let first = v
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(v.len().saturating_sub(1));
            &v[first..]
        };
        let pad = v.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        len(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = vec![0x30];
    len(&mut out, body.len());
    out.extend(body);
    out
}

/// Parse a JWKS document. A key whose `alg` is `Ed25519` (RFC 9864's fully specified name, which
/// Node's WebCrypto writes into exported Ed25519 keys) is read as `EdDSA`, the name the JWK
/// parser knows; without this it would be skipped as an unknown algorithm.
pub(crate) fn parse_jwks(bytes: &[u8]) -> Result<JwkSet, serde_json::Error> {
    let mut doc: serde_json::Value = serde_json::from_slice(bytes)?;
    if let Some(keys) = doc.get_mut("keys").and_then(|k| k.as_array_mut()) {
        for key in keys.iter_mut() {
            let ed25519 = key.get("kty").and_then(|v| v.as_str()) == Some("OKP")
                && key.get("crv").and_then(|v| v.as_str()) == Some("Ed25519");
            if ed25519 && key.get("alg").and_then(|v| v.as_str()) == Some("Ed25519") {
                key["alg"] = "EdDSA".into();
            }
        }
        // RFC 7517 §5: a key that cannot be read (a member of the wrong type, say) is ignored,
        // not a reason to refuse the keys beside it.
        keys.retain(|k| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()).is_ok());
    }
    serde_json::from_value(doc)
}

/// A fetched key set.
pub(crate) struct KeySet {
    pub keys: HashMap<String, Arc<KeyEntry>>,
    /// Keys without `kid` (usable only when a token has no `kid` either).
    pub unnamed: Vec<Arc<KeyEntry>>,
    /// When this set was fetched (None: never, or static).
    pub fetched_at: Option<SystemTime>,
    /// When to refresh in the background.
    pub refresh_at: Option<SystemTime>,
}

impl KeySet {
    pub fn empty() -> Self {
        Self {
            keys: HashMap::new(),
            unnamed: Vec::new(),
            fetched_at: None,
            refresh_at: None,
        }
    }

    /// The usable keys of `set`. `key_use`: `None` takes keys marked `"use": "sig"` or not
    /// marked; `Some(u)` takes only keys marked `"use": u` (SPIFFE bundles mark JWT-SVID keys
    /// `jwt-svid`).
    pub fn from_jwks(set: &JwkSet, key_use: Option<&str>) -> Self {
        let mut out = Self::empty();
        for jwk in &set.keys {
            if !use_fits(jwk, key_use) {
                continue;
            }
            let Some(entry) = entry(jwk) else { continue };
            match &jwk.common.key_id {
                Some(kid) => {
                    out.keys.insert(kid.clone(), Arc::new(entry));
                }
                None => out.unnamed.push(Arc::new(entry)),
            }
        }
        out
    }
}

/// Whether `jwk`'s `use` is the one wanted (see [`KeySet::from_jwks`]).
fn use_fits(jwk: &Jwk, key_use: Option<&str>) -> bool {
    use jsonwebtoken::jwk::PublicKeyUse;
    match (&jwk.common.public_key_use, key_use) {
        (None | Some(PublicKeyUse::Signature), None) => true,
        (Some(PublicKeyUse::Other(u)), Some(want)) => u == want,
        (Some(PublicKeyUse::Signature), Some(want)) => want == "sig",
        _ => false,
    }
}

/// Turn a JWK into a verification key, or skip it (symmetric, private-use, unknown types).
fn entry(jwk: &Jwk) -> Option<KeyEntry> {
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return None,
        },
        // Symmetric keys are never trusted: a verifier holds public keys only. Key types a
        // later jsonwebtoken may add are not trusted either until this code knows them.
        _ => return None,
    };
    let algs = match jwk.common.key_algorithm {
        None => by_type,
        Some(ka) => {
            let named = key_alg(ka)?;
            if !by_type.contains(&named) {
                return None;
            }
            vec![named]
        }
    };
    let b64 = |s: &str| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok();
    let public: Vec<u8> = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => der_rsa_public_key(&b64(&rsa.n)?, &b64(&rsa.e)?),
        AlgorithmParameters::EllipticCurve(ec) => {
            let (x, y) = (b64(&ec.x)?, b64(&ec.y)?);
            let width = if matches!(ec.curve, EllipticCurve::P256) {
                32
            } else {
                48
            };
            if x.len() != width || y.len() != width {
                return None;
            }
            [&[0x04][..], &x, &y].concat()
        }
        AlgorithmParameters::OctetKeyPair(okp) => b64(&okp.x)?,
        _ => return None,
    };
    let parsed: Vec<(Algorithm, ParsedPublicKey)> = algs
        .into_iter()
        .filter_map(|a| Some((a, ParsedPublicKey::new(verification_alg(a), &public).ok()?)))
        .collect();
    (!parsed.is_empty()).then_some(KeyEntry { parsed })
}

fn key_alg(ka: KeyAlgorithm) -> Option<Algorithm> {
    Some(match ka {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Cache timing settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachePolicy {
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub default_ttl: Duration,
    pub cooldown: Duration,
    pub max_staleness: Duration,
}

/// Where keys come from.
pub(crate) enum Source {
    Static,
    /// A JWKS URL, or (when `discovery` is set) an issuer whose metadata names it.
    Remote {
        fetcher: Arc<dyn Fetcher>,
        jwks_url: Mutex<Option<String>>,
        discovery: Option<(String, String)>,
    },
}

type FetchOutcome = Option<Result<(), String>>;

/// Why a fetch is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// The keys reached their refresh time, or nothing usable is cached.
    Due,
    /// A token named a kid the cache does not know.
    UnknownKid,
}

pub(crate) struct JwksCache {
    source: Source,
    policy: CachePolicy,
    /// Which keys of a fetched set to use (see [`KeySet::from_jwks`]).
    key_use: Option<String>,
    clock: Arc<dyn Clock>,
    set: RwLock<Arc<KeySet>>,
    inflight: Mutex<Option<watch::Receiver<FetchOutcome>>>,
    /// When the last fetch started, and whether it succeeded (None while in flight).
    last_attempt: Mutex<Option<(SystemTime, Option<bool>)>>,
    fetches: AtomicU64,
    /// The `issuer` label of this cache's key series ([`crate::metrics`]); `None`: no series.
    metrics_issuer: Option<metrics::SharedString>,
    /// The staleness last reported, in whole seconds plus one (0: never), so a verification
    /// sets the gauge at most once a second.
    staleness_reported: AtomicU64,
}

/// What a lookup found.
pub(crate) enum Lookup {
    Found(Arc<KeyEntry>),
    Unknown,
    Unavailable(String),
}

impl JwksCache {
    /// A cache; `metrics_issuer` names it in the key series (none for a static source, which is
    /// never fetched).
    pub fn new(
        source: Source,
        initial: KeySet,
        policy: CachePolicy,
        key_use: Option<String>,
        clock: Arc<dyn Clock>,
        metrics_issuer: Option<&str>,
    ) -> Arc<Self> {
        let metrics_issuer = match source {
            Source::Static => None,
            Source::Remote { .. } => metrics_issuer.map(|i| Arc::<str>::from(i).into()),
        };
        Arc::new(Self {
            metrics_issuer,
            staleness_reported: AtomicU64::new(0),
            source,
            policy,
            key_use,
            clock,
            set: RwLock::new(Arc::new(initial)),
            inflight: Mutex::new(None),
            last_attempt: Mutex::new(None),
            fetches: AtomicU64::new(0),
        })
    }

    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The `kid`s of the keys at hand.
    pub fn current_kids(&self) -> Vec<String> {
        self.current().kids()
    }

    fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The key for `kid` if it is at hand without waiting: cached, usable and named by `kid`
    /// (a background refresh is started when one is due). `None` sends the caller to
    /// [`JwksCache::lookup`], which may fetch.
    pub fn lookup_now(self: &Arc<Self>, kid: Option<&str>) -> Option<Arc<KeyEntry>> {
        let set = self.cached_usable()?;
        find(&set, kid)
    }

    /// Find the key for `kid` (or the single unnamed key when `kid` is None).
    pub async fn lookup(self: &Arc<Self>, kid: Option<&str>) -> Lookup {
        if matches!(self.source, Source::Static) {
            return match find(&self.current(), kid) {
                Some(k) => Lookup::Found(k),
                None => Lookup::Unknown,
            };
        }
        let set = match self.usable_keys().await {
            Ok(set) => set,
            Err(e) => return Lookup::Unavailable(e),
        };
        if let Some(k) = find(&set, kid) {
            return Lookup::Found(k);
        }
        // Unknown kid: one refetch, shared by every waiter, at most once per cooldown.
        if self.refresh(Why::UnknownKid).await.is_ok() {
            if let Some(k) = find(&self.current(), kid) {
                return Lookup::Found(k);
            }
        }
        Lookup::Unknown
    }

    /// The keys to verify with: fetched first if nothing usable is cached (never fetched, or
    /// stale beyond the maximum); otherwise the cached set, with a background refresh started
    /// when it is due.
    pub async fn usable_keys(self: &Arc<Self>) -> Result<Arc<KeySet>, String> {
        if let Some(set) = self.cached_usable() {
            return Ok(set);
        }
        let fetched = self.refresh(Why::Due).await;
        let set = self.current();
        match fetched {
            Err(e) if !self.usable(&set, self.clock.now()) => Err(e),
            _ => Ok(set),
        }
    }

    /// The cached keys if they are usable, starting a background refresh when one is due (this
    /// request uses the keys it has).
    fn cached_usable(self: &Arc<Self>) -> Option<Arc<KeySet>> {
        let set = self.current();
        if matches!(self.source, Source::Static) {
            return Some(set);
        }
        let now = self.clock.now();
        self.report_staleness(&set, now);
        if !self.usable(&set, now) {
            return None;
        }
        if set.refresh_at.is_some_and(|r| now >= r) {
            // Ignoring the outcome: a refresh already in flight, or one the cooldown holds
            // back after a failure, is fine; the fetch task reports its own failure.
            let _ = self.start_refresh(Why::Due);
        }
        Some(set)
    }

    /// Set the staleness gauge to the age of `set` at `now`, if it changed by a second or more.
    fn report_staleness(&self, set: &KeySet, now: SystemTime) {
        let (Some(issuer), Some(fetched)) = (&self.metrics_issuer, set.fetched_at) else {
            return;
        };
        let age = now.duration_since(fetched).unwrap_or_default();
        let stamp = age.as_secs().saturating_add(1);
        // A load first: the common case (same second) writes nothing, so verifications on
        // several cores do not bounce the cache line.
        if self.staleness_reported.load(Ordering::Relaxed) != stamp
            && self.staleness_reported.swap(stamp, Ordering::Relaxed) != stamp
        {
            metrics::gauge!(crate::metrics::KEY_STALENESS, "issuer" => issuer.clone())
                .set(age.as_secs_f64());
        }
    }

    fn usable(&self, set: &KeySet, now: SystemTime) -> bool {
        set.fetched_at
            .is_some_and(|f| now.duration_since(f).unwrap_or_default() <= self.policy.max_staleness)
    }

    /// Join the fetch in flight, or start one if none started within the cooldown, and wait for
    /// its outcome.
    async fn refresh(self: &Arc<Self>, why: Why) -> Result<(), String> {
        let mut rx = self.start_refresh(why)?;
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return Err("fetch task ended".into());
            }
        }
    }

    /// The fetch in flight, or a new one if none started within the cooldown. This bounds every
    /// kind of fetch (first use, unknown kid, issuer down) to one per cooldown. The fetch runs
    /// in its own task, so a caller giving up does not cancel it for the others.
    fn start_refresh(self: &Arc<Self>, why: Why) -> Result<watch::Receiver<FetchOutcome>, String> {
        let mut inflight = self.inflight.lock().map_err(|_| "poisoned".to_string())?;
        match inflight.as_ref() {
            Some(rx) => Ok(rx.clone()),
            None => {
                let now = self.clock.now();
                let mut last = self
                    .last_attempt
                    .lock()
                    .map_err(|_| "poisoned".to_string())?;
                let cooled = last.is_none_or(|(l, _)| {
                    now.duration_since(l).unwrap_or_default() >= self.policy.cooldown
                });
                // A refresh that is due (max-age reached, or nothing usable) after a
                // successful fetch goes ahead: the issuer's max-age sets its pace. Fetches
                // for unknown kids, and retries after a failure, wait out the cooldown.
                let last_ok = last.is_some_and(|(_, ok)| ok == Some(true));
                if !(cooled || (why == Why::Due && last_ok)) {
                    return Err("refetch suppressed by cooldown".into());
                }
                *last = Some((now, None));
                let (tx, rx) = watch::channel(None);
                *inflight = Some(rx.clone());
                let this = self.clone();
                tokio::spawn(async move {
                    let result = this.fetch_and_store().await;
                    if let Some(issuer) = &this.metrics_issuer {
                        let issuer = || ("issuer", issuer.clone());
                        metrics::counter!(crate::metrics::JWKS_REFRESHES, &[issuer()]).increment(1);
                        if result.is_err() {
                            metrics::counter!(crate::metrics::JWKS_REFRESH_FAILURES, &[issuer()])
                                .increment(1);
                        }
                        this.staleness_reported.store(0, Ordering::Relaxed);
                        this.report_staleness(&this.current(), this.clock.now());
                    }
                    if let Ok(mut l) = this.last_attempt.lock() {
                        if let Some((_, ok)) = l.as_mut() {
                            *ok = Some(result.is_ok());
                        }
                    }
                    if let Err(e) = &result {
                        tracing::warn!(target: "tessera_verifier::audit", error = %e, "JWKS refresh failed; keeping the last good keys");
                    }
                    if let Ok(mut g) = this.inflight.lock() {
                        *g = None;
                    }
                    let _ = tx.send(Some(result.map_err(|e| e.to_string())));
                });
                Ok(rx)
            }
        }
    }

    async fn fetch_and_store(&self) -> Result<(), FetchError> {
        let Source::Remote {
            fetcher,
            jwks_url,
            discovery,
        } = &self.source
        else {
            return Ok(());
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let known = jwks_url.lock().ok().and_then(|u| u.clone());
        let url = match (known, discovery) {
            (Some(u), _) => u,
            (None, Some((issuer, metadata_url))) => {
                let doc = fetcher.get(metadata_url).await?;
                let url =
                    jwks_uri_from_metadata(&doc.body, issuer).map_err(|reason| FetchError {
                        url: metadata_url.clone(),
                        reason,
                    })?;
                if let Ok(mut g) = jwks_url.lock() {
                    *g = Some(url.clone());
                }
                url
            }
            (None, None) => {
                return Err(FetchError {
                    url: String::new(),
                    reason: "no JWKS URL".into(),
                })
            }
        };
        let resp = fetcher.get(&url).await?;
        let jwks: JwkSet = parse_jwks(&resp.body).map_err(|e| FetchError {
            url: url.clone(),
            reason: format!("not a JWKS: {e}"),
        })?;
        let mut set = KeySet::from_jwks(&jwks, self.key_use.as_deref());
        let now = self.clock.now();
        let ttl = resp
            .max_age
            .unwrap_or(self.policy.default_ttl)
            .clamp(self.policy.min_ttl, self.policy.max_ttl);
        set.fetched_at = Some(now);
        set.refresh_at = Some(now + ttl.mul_f64(0.8));
        if let Ok(mut g) = self.set.write() {
            *g = Arc::new(set);
        }
        Ok(())
    }
}

impl KeySet {
    /// Every key, named or not, that may verify `alg`, at most `limit` of them (for a JWS with
    /// no `kid`, tried one by one).
    pub fn candidates(&self, alg: Algorithm, limit: usize) -> Vec<Arc<KeyEntry>> {
        self.keys
            .values()
            .chain(self.unnamed.iter())
            .filter(|k| k.for_alg(alg).is_some())
            .take(limit)
            .cloned()
            .collect()
    }

    /// The key ids in the set.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.keys().cloned().collect();
        kids.sort();
        kids
    }
}

fn find(set: &KeySet, kid: Option<&str>) -> Option<Arc<KeyEntry>> {
    match kid {
        Some(k) => set.keys.get(k).cloned(),
        None if set.unnamed.len() == 1 && set.keys.is_empty() => set.unnamed.first().cloned(),
        None => None,
    }
}

/// Check an RFC 8414 / OIDC metadata document (exact issuer, RFC 8414 §3.3) and return its
/// `jwks_uri`.
fn jwks_uri_from_metadata(body: &[u8], issuer: &str) -> Result<String, String> {
    let uri = tessera_proto::Metadata::from_json(body, issuer)
        .map_err(|e| e.to_string())?
        .jwks_uri
        .ok_or_else(|| "metadata has no jwks_uri".to_owned())?;
    // An https issuer's keys come over https too: a plain-http jwks_uri would let anyone on the
    // path substitute keys that the issuer's TLS was there to vouch for.
    if issuer.starts_with("https://") && !uri.starts_with("https://") {
        return Err("an https issuer's jwks_uri must be https".into());
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_https_issuer_needs_an_https_jwks_uri() {
        let doc = |uri: &str| format!(r#"{{"issuer":"https://a.example","jwks_uri":"{uri}"}}"#);
        let read =
            |uri: &str| super::jwks_uri_from_metadata(doc(uri).as_bytes(), "https://a.example");
        assert_eq!(
            read("https://a.example/k").as_deref(),
            Ok("https://a.example/k")
        );
        assert!(read("http://a.example/k").is_err());
        let local = br#"{"issuer":"http://127.0.0.1:9","jwks_uri":"http://127.0.0.1:9/k"}"#;
        assert!(super::jwks_uri_from_metadata(local, "http://127.0.0.1:9").is_ok());
    }
}
