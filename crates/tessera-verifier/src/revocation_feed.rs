//! Revocation that reaches local verifiers: a poller of Tessera's revocation feed
//! (`GET /oauth/revocations?since=CURSOR`), holding the revoked token ids until each token's
//! `exp`. A [`crate::Verifier`] given a feed refuses listed tokens with 401 `invalid_token`.
//!
//! **Guarantee**: a token revoked at Tessera is refused by this verifier within one poll
//! interval (default 5 s) plus one feed request, while the feed answers. If the feed cannot be
//! reached for longer than `max_staleness` (default 60 s), the verifier either keeps accepting
//! (the default: logged and counted in [`RevocationFeed::stale_accepts`]) or, in strict mode,
//! refuses every token with 503 until the feed answers again.
//!
//! One task polls (single flight by construction); memory is bounded by the number of revoked
//! tokens alive at once (entries drop at their token's `exp`), and by `max_entries` beyond that.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::clock::{unix, Clock, SystemClock};
use crate::error::{ConfigError, InvalidToken, VerifyError};

/// Polls the feed and answers whether a token id is revoked. Share it with `Arc`.
pub struct RevocationFeed {
    url: String,
    client_id: String,
    client_secret: tessera_proto::ClientSecret,
    http: reqwest::Client,
    interval: Duration,
    max_staleness: Duration,
    strict: bool,
    max_entries: usize,
    clock: Arc<dyn Clock>,
    /// Revoked `jti` → the token's `exp`.
    revoked: RwLock<HashMap<String, i64>>,
    cursor: Mutex<String>,
    /// When the feed last answered, unix milliseconds (0: never). An atomic: read on every
    /// verification.
    last_ok_ms: AtomicI64,
    stale_accepts: AtomicU64,
    polls: AtomicU64,
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("interval", &self.interval)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RevocationFeed`].
pub struct RevocationFeedBuilder {
    url: String,
    client_id: String,
    client_secret: tessera_proto::ClientSecret,
    interval: Duration,
    max_staleness: Duration,
    strict: bool,
    max_entries: usize,
    clock: Arc<dyn Clock>,
}

impl RevocationFeedBuilder {
    /// Poll this often (default 5 s; at least 100 ms).
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d.max(Duration::from_millis(100));
        self
    }

    /// How long the feed may be unreachable before the staleness policy applies (default 60 s).
    pub fn max_staleness(mut self, d: Duration) -> Self {
        self.max_staleness = d;
        self
    }

    /// Refuse every token with 503 once the feed has been unreachable beyond the bound, instead
    /// of accepting (the default).
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Most revoked ids held (default 1,000,000, ~100 MiB); beyond it the ids of the tokens
    /// that expire first are dropped, and a warning is logged.
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n.max(1);
        self
    }

    /// Inject the clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Build. Nothing is fetched until [`RevocationFeed::poll`] or [`RevocationFeed::spawn`].
    pub fn build(self) -> Result<Arc<RevocationFeed>, ConfigError> {
        let http = crate::fetch::tessera_client(&self.url)?;
        Ok(Arc::new(RevocationFeed {
            url: self.url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            http,
            interval: self.interval,
            max_staleness: self.max_staleness,
            strict: self.strict,
            max_entries: self.max_entries,
            clock: self.clock,
            revoked: RwLock::new(HashMap::new()),
            cursor: Mutex::new(String::new()),
            last_ok_ms: AtomicI64::new(0),
            stale_accepts: AtomicU64::new(0),
            polls: AtomicU64::new(0),
        }))
    }
}

impl RevocationFeed {
    /// A feed at `{issuer}/oauth/revocations`, read as the resource service's own Tessera
    /// client (`client_secret_basic`).
    pub fn builder(
        issuer: &str,
        client_id: impl Into<String>,
        client_secret: tessera_proto::ClientSecret,
    ) -> RevocationFeedBuilder {
        RevocationFeedBuilder {
            url: format!("{}/oauth/revocations", issuer.trim_end_matches('/')),
            client_id: client_id.into(),
            client_secret,
            interval: Duration::from_secs(5),
            max_staleness: Duration::from_secs(60),
            strict: false,
            max_entries: 1_000_000,
            clock: Arc::new(SystemClock),
        }
    }

    /// Poll every interval until the returned task is aborted (or the feed is dropped).
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let interval = self.interval;
        tokio::spawn(async move {
            loop {
                let Some(feed) = weak.upgrade() else { return };
                if let Err(e) = feed.poll().await {
                    tracing::warn!(target: "tessera_verifier::audit", error = %e, "revocation feed unreachable");
                }
                drop(feed);
                tokio::time::sleep(interval).await;
            }
        })
    }

    /// Fetch what was revoked since the last poll (following `has_more` pages); returns how many
    /// ids were added.
    pub async fn poll(&self) -> Result<usize, crate::fetch::FetchError> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        let err = |reason: String| crate::fetch::FetchError {
            url: self.url.clone(),
            reason,
        };
        let mut added = 0;
        for _ in 0..100 {
            let cursor = self.cursor.lock().map(|c| c.clone()).unwrap_or_default();
            // The cursor is digits the server gave; anything else is sent as nothing.
            let since: String = cursor.chars().filter(char::is_ascii_digit).collect();
            let resp = self
                .http
                .get(format!("{}?since={since}", self.url))
                .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                .send()
                .await
                .map_err(|e| err(e.without_url().to_string()))?;
            if !resp.status().is_success() {
                return Err(err(format!("HTTP {}", resp.status())));
            }
            let page: tessera_proto::RevocationPage = resp
                .json()
                .await
                .map_err(|e| err(format!("not a feed page: {}", e.without_url())))?;
            let now = unix(self.clock.now());
            if let Ok(mut set) = self.revoked.write() {
                set.retain(|_, exp| *exp > now);
                for e in page.revoked {
                    if e.exp > now && set.insert(e.jti, e.exp).is_none() {
                        added += 1;
                    }
                }
                if set.len() > self.max_entries {
                    tracing::warn!(target: "tessera_verifier::audit", held = set.len(), "revocation set over its bound; dropping the soonest-expiring ids");
                    let mut exps: Vec<i64> = set.values().copied().collect();
                    exps.sort_unstable();
                    let cut = exps[set.len() - self.max_entries];
                    set.retain(|_, exp| *exp >= cut);
                }
            }
            if let Ok(mut c) = self.cursor.lock() {
                *c = page.cursor;
            }
            if !page.has_more {
                break;
            }
        }
        self.mark_fresh();
        Ok(added)
    }

    /// Whether `jti` may be accepted now: `Err` with 401 `invalid_token` if it was revoked; in
    /// strict mode, `Err` 503 when the feed has been unreachable beyond the bound.
    pub fn check(&self, jti: Option<&str>) -> Result<(), VerifyError> {
        if let Some(jti) = jti {
            if self.revoked.read().is_ok_and(|s| s.contains_key(jti)) {
                return Err(InvalidToken::Revoked.into());
            }
        }
        let last = self.last_ok_ms.load(Ordering::Relaxed);
        let age_ms = unix_ms(self.clock.now()).saturating_sub(last);
        let fresh =
            last > 0 && u128::try_from(age_ms).unwrap_or(0) <= self.max_staleness.as_millis();
        if !fresh {
            if self.strict {
                return Err(VerifyError::RevocationsUnavailable);
            }
            self.stale_accepts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Tokens accepted while the feed was stale (non-strict mode).
    pub fn stale_accepts(&self) -> u64 {
        self.stale_accepts.load(Ordering::Relaxed)
    }

    /// How many polls ran.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// How many revoked ids are held.
    pub fn len(&self) -> usize {
        self.revoked.read().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether no revoked id is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add revoked ids directly (tests, benchmarks, another feed source).
    pub fn insert(&self, jti: impl Into<String>, exp: i64) {
        if let Ok(mut s) = self.revoked.write() {
            s.insert(jti.into(), exp);
        }
    }

    /// Mark the feed as having answered now (tests, or a feed filled by [`Self::insert`]).
    pub fn mark_fresh(&self) {
        self.last_ok_ms
            .store(unix_ms(self.clock.now()).max(1), Ordering::Relaxed);
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
