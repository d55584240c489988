//! Tessera-managed API keys (`tak_…`) in a resource service: checked by asking Tessera (RFC 7662
//! introspection, authenticated as the resource service's own Tessera client), the answer
//! cached, so handlers and role mappings see an [`AccessToken`] whichever credential came.
//!
//! Bounds, each a number:
//! - a key Tessera accepted is accepted from cache for at most `positive_ttl` (default and
//!   maximum 60 s): a revoked key stops working within that, and a Tessera outage keeps a
//!   known-good key working only until then, after which the answer is 503;
//! - a key Tessera refused is refused from cache for `negative_ttl` (default 5 s);
//! - one introspection per key at a time (single flight): concurrent requests with one key wait
//!   for the same answer;
//! - at most `max_lookups_per_second` introspections of keys the cache does not know (default
//!   20, a burst of as many): a flood of made-up keys cannot turn into a flood of calls to
//!   Tessera; beyond it, unknown keys get 503 (retry), never a cached "yes";
//! - at most `max_entries` cached answers (default 10,000); the oldest go first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use tokio::sync::OnceCell;

use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, InvalidToken, VerifyError};
use crate::token::AccessToken;

/// What every managed key starts with.
pub const PREFIX: &str = tessera_proto::API_KEY_PREFIX;

type KeyHash = [u8; 32];

#[derive(Clone)]
enum Answer {
    Accepted(AccessToken),
    Refused,
    /// Tessera could not be asked.
    Unavailable,
}

struct Cached {
    answer: Answer,
    until: SystemTime,
    inserted: u64,
}

/// Checks managed API keys by introspection, with the cache described in the module docs.
pub struct ManagedApiKeys {
    url: String,
    client_id: String,
    client_secret: tessera_proto::ClientSecret,
    http: reqwest::Client,
    positive_ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    per_second: u32,
    audience: Option<String>,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<KeyHash, Cached>>,
    inflight: Mutex<HashMap<KeyHash, Arc<OnceCell<Answer>>>>,
    /// Token bucket for introspections of uncached keys: (tokens, last refill).
    bucket: Mutex<(f64, SystemTime)>,
    counter: AtomicU64,
    introspections: AtomicU64,
}

impl std::fmt::Debug for ManagedApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedApiKeys")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Builds [`ManagedApiKeys`].
pub struct ManagedApiKeysBuilder {
    url: String,
    client_id: String,
    client_secret: tessera_proto::ClientSecret,
    positive_ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    per_second: u32,
    audience: Option<String>,
    clock: Arc<dyn Clock>,
}

impl ManagedApiKeysBuilder {
    /// Accept any active key of the issuer, whatever its audiences. Without this, only keys
    /// whose audiences include the service's (given to [`ManagedApiKeys::builder`]) are
    /// accepted, as tokens must name it.
    pub fn any_audience(mut self) -> Self {
        self.audience = None;
        self
    }

    /// How long an accepted key is served from cache (default 60 s; longer is capped at 60 s).
    pub fn positive_ttl(mut self, d: Duration) -> Self {
        self.positive_ttl = d.min(Duration::from_secs(60));
        self
    }

    /// How long a refused key is refused from cache (default 5 s).
    pub fn negative_ttl(mut self, d: Duration) -> Self {
        self.negative_ttl = d;
        self
    }

    /// Most cached answers (default 10,000).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n.max(1);
        self
    }

    /// Most introspections of uncached keys per second, and the burst (default 20).
    pub fn max_lookups_per_second(mut self, n: u32) -> Self {
        self.per_second = n.max(1);
        self
    }

    /// Inject the clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Build.
    pub fn build(self) -> Result<Arc<ManagedApiKeys>, ConfigError> {
        let http = crate::fetch::tessera_client(&self.url)?;
        let now = self.clock.now();
        Ok(Arc::new(ManagedApiKeys {
            url: self.url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            http,
            positive_ttl: self.positive_ttl,
            negative_ttl: self.negative_ttl,
            max_entries: self.max_entries,
            per_second: self.per_second,
            audience: self.audience,
            clock: self.clock,
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            bucket: Mutex::new((f64::from(self.per_second), now)),
            counter: AtomicU64::new(0),
            introspections: AtomicU64::new(0),
        }))
    }
}

fn key_hash(key: &str) -> KeyHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    out
}

impl ManagedApiKeys {
    /// Keys for `audience` (this service), checked at `{issuer}/oauth/introspect` as the
    /// resource service's own client (`client_secret_basic`).
    pub fn builder(
        issuer: &str,
        audience: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: tessera_proto::ClientSecret,
    ) -> ManagedApiKeysBuilder {
        ManagedApiKeysBuilder {
            url: format!("{}/oauth/introspect", issuer.trim_end_matches('/')),
            client_id: client_id.into(),
            client_secret,
            positive_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            max_entries: 10_000,
            per_second: 20,
            audience: Some(audience.into()),
            clock: Arc::new(SystemClock),
        }
    }

    /// Whether `credential` looks like a managed key (rather than a JWT).
    pub fn is_managed_key(credential: &str) -> bool {
        credential.starts_with(PREFIX)
    }

    /// How many introspection requests were sent (metrics, tests).
    pub fn introspections(&self) -> u64 {
        self.introspections.load(Ordering::Relaxed)
    }

    /// Check `key`: the key's principal (client id = the key's id, its scopes and claims), or
    /// 401 `invalid_token` (unknown, revoked, expired, malformed), or 503 when Tessera cannot be
    /// asked and no answer younger than the cache bound is at hand.
    pub async fn check(&self, key: &str) -> Result<AccessToken, VerifyError> {
        if !key.starts_with(PREFIX) || key.len() > 128 {
            return Err(InvalidToken::Malformed.into());
        }
        let h = key_hash(key);
        let now = self.clock.now();
        if let Some(answer) = self.cached(&h, now) {
            return finish(answer);
        }
        let cell = {
            let mut inflight = match self.inflight.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            inflight
                .entry(h)
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        let answer = cell
            .get_or_init(|| async {
                let answer = if self.take_lookup(now) {
                    self.introspect(key).await
                } else {
                    tracing::warn!(target: "tessera_verifier::audit", "API-key introspection rate limit reached");
                    Answer::Unavailable
                };
                self.store(h, &answer);
                answer
            })
            .await
            .clone();
        if let Ok(mut inflight) = self.inflight.lock() {
            if inflight.get(&h).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                inflight.remove(&h);
            }
        }
        finish(answer)
    }

    fn cached(&self, h: &KeyHash, now: SystemTime) -> Option<Answer> {
        let cache = self.cache.lock().ok()?;
        let c = cache.get(h)?;
        (now < c.until).then(|| c.answer.clone())
    }

    fn store(&self, h: KeyHash, answer: &Answer) {
        let now = self.clock.now();
        let until = match answer {
            // Never past the key's own expiry.
            Answer::Accepted(at) => (now + self.positive_ttl).min(
                SystemTime::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(at.expires_at()).unwrap_or(u64::MAX / 2)),
            ),
            Answer::Refused => now + self.negative_ttl,
            Answer::Unavailable => return,
        };
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= self.max_entries {
            cache.retain(|_, c| now < c.until);
            while cache.len() >= self.max_entries {
                let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, c)| c.inserted)
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                cache.remove(&oldest);
            }
        }
        let inserted = self.counter.fetch_add(1, Ordering::Relaxed);
        cache.insert(
            h,
            Cached {
                answer: answer.clone(),
                until,
                inserted,
            },
        );
    }

    /// One token from the bucket, refilled at `per_second`.
    fn take_lookup(&self, now: SystemTime) -> bool {
        let Ok(mut b) = self.bucket.lock() else {
            return false;
        };
        let elapsed = now.duration_since(b.1).unwrap_or_default().as_secs_f64();
        let cap = f64::from(self.per_second);
        b.0 = (b.0 + elapsed * cap).min(cap);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }

    async fn introspect(&self, key: &str) -> Answer {
        self.introspections.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http
            .post(&self.url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(&[("token", key), ("token_type_hint", "api_key")])
            .send()
            .await;
        let body: serde_json::Value = match resp {
            Ok(r) if r.status().is_success() => match r.json().await {
                Ok(v) => v,
                Err(_) => return Answer::Unavailable,
            },
            Ok(r) => {
                tracing::warn!(target: "tessera_verifier::audit", status = %r.status(), "API-key introspection refused this service");
                return Answer::Unavailable;
            }
            Err(e) => {
                tracing::warn!(target: "tessera_verifier::audit", error = %e.without_url(), "API-key introspection failed");
                return Answer::Unavailable;
            }
        };
        if body.get("active") != Some(&serde_json::Value::Bool(true))
            || body.get("token_type").and_then(|t| t.as_str())
                != Some(tessera_proto::API_KEY_TOKEN_TYPE)
        {
            return Answer::Refused;
        }
        let at = match AccessToken::from_introspection(&body) {
            Some(at) => at,
            None => return Answer::Refused,
        };
        if let Some(want) = &self.audience {
            if !at.audience().any(|a| a == want) {
                return Answer::Refused;
            }
        }
        Answer::Accepted(at)
    }
}

fn finish(answer: Answer) -> Result<AccessToken, VerifyError> {
    match answer {
        Answer::Accepted(at) => Ok(at),
        Answer::Refused => Err(InvalidToken::UnknownApiKey.into()),
        Answer::Unavailable => Err(VerifyError::KeysUnavailable(
            "API keys cannot be checked now".into(),
        )),
    }
}
