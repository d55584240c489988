//! Verified-credential cache and the bounded argon2id pool.
//!
//! argon2id costs ~34 ms of CPU per verify. Paying it on every token request would cap the
//! endpoint at a few dozen requests per second per core, so a successful verify is remembered as
//! HMAC-SHA256(process key, client id ‖ 0 ‖ secret) → secret id. The plaintext is never kept, and
//! the HMAC key lives only in this process's memory, so the cache is worthless to someone who
//! reads it. A lookup hashes the presented secret and looks the tag up; because the tag is a
//! keyed MAC, the map lookup's timing reveals nothing an attacker can use to guess the secret.
//! A hit only counts if the remembered secret id is still usable for the client as it is *now*
//! (enabled, not revoked, not expired), so any change to a client or its secrets invalidates it.
//!
//! Misses go to argon2id on the blocking pool, never more at once than there are cores, with a
//! bounded number waiting. Beyond that the request is refused as `Busy` (→ 503 + Retry-After) so
//! that a flood of wrong secrets cannot starve clients whose credentials are already cached, nor
//! grow memory without bound.
//!
//! **Failure budget.** Each claimed client id may fail `failure_budget` times per
//! `failure_window` (default 5 per minute); beyond that, a credential not already in the cache is
//! refused at once (`Throttled`, → 429 + Retry-After) with no argon2id, until the window ends. A
//! caller whose secret is cached is never affected (the cache is consulted first), and a new
//! correct secret works again once the window has passed. Budgets count unknown ids too, so the
//! throttle does not tell which ids exist.
//!
//! A check with nothing to check against (an unknown client id, a disabled client, one without a
//! usable secret) runs no argon2id: it is refused after a wait as long as a real check takes
//! (one of the last 64 measured, drawn at random), so it costs a timer rather than a core, and a
//! flood of made-up ids cannot take the argon2id capacity from real clients. The answer and its
//! timing match a wrong secret's while the argon2id pool is not queueing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use aws_lc_rs::hmac;
use tokio::sync::Semaphore;

use crate::oauth::{Client, ClientId, SecretId};
use crate::secrets::{ClientSecret, SecretHash};

/// Bounds on the argon2id work and the cache.
#[derive(Debug, Clone, Copy)]
pub struct VerifierLimits {
    /// argon2id verifies running at once (default: number of cores).
    pub max_concurrent: usize,
    /// Requests allowed to wait for a verify slot; beyond this they are refused.
    pub max_waiting: usize,
    /// Cached credentials; the cache is emptied when it would grow past this.
    pub max_cached: usize,
    /// Failed checks a claimed client id may have per `failure_window` before uncached
    /// credentials for it are refused without argon2id (0: no budget).
    pub failure_budget: u32,
    /// The failure budget's window.
    pub failure_window: std::time::Duration,
}

impl Default for VerifierLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            // One core is kept from argon2id, for callers whose credentials are cached.
            max_concurrent: cores.saturating_sub(1).max(1),
            max_waiting: 64 * cores,
            max_cached: 100_000,
            failure_budget: 5,
            failure_window: std::time::Duration::from_secs(60),
        }
    }
}

/// Why a credential was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Wrong secret, or no usable secret.
    #[error("client authentication failed")]
    Rejected,
    /// Too many verifications in flight; try again shortly.
    #[error("too many client authentications in progress")]
    Busy,
    /// This client id used up its failure budget: refused without a check until the window
    /// ends, in this many seconds.
    #[error("too many failed authentications for this client id")]
    Throttled(u32),
}

/// See the module documentation.
pub struct CredentialVerifier {
    mac_key: hmac::Key,
    cache: RwLock<HashMap<[u8; 32], CachedCredential>>,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    limits: VerifierLimits,
    argon2_runs: AtomicU64,
    /// Checks answered without argon2id (nothing to check against).
    simulated: AtomicU64,
    /// The durations of the last [`SAMPLES`] argon2id checks, in microseconds: a check with
    /// nothing to check against waits as long as one of them, drawn at random, so its timing
    /// follows the real distribution, not just its average.
    durations: Arc<Durations>,
    /// The threads argon2id runs on, each with its working memory.
    workers: Workers,
    /// Failures per claimed client id in the current window (see the module documentation).
    failures: std::sync::Mutex<HashMap<ClientId, (u32, std::time::Instant)>>,
    /// Checks refused by the failure budget.
    throttled: AtomicU64,
    /// Checks refused because the argon2id queue was full.
    busy: AtomicU64,
}

#[derive(Clone)]
struct CachedCredential {
    client_id: ClientId,
    secret_id: SecretId,
}

impl CredentialVerifier {
    /// A verifier with a fresh random cache key.
    pub fn new(limits: VerifierLimits) -> Self {
        let key = crate::random::bytes::<32>();
        // A first estimate of one check: hashing costs what verifying does.
        let started = std::time::Instant::now();
        let _ = SecretHash::create(&crate::secrets::generate_secret());
        let first = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Self {
            mac_key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            cache: RwLock::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            limits,
            argon2_runs: AtomicU64::new(0),
            simulated: AtomicU64::new(0),
            durations: Arc::new(Durations::new(first)),
            workers: Workers::new(limits.max_concurrent.max(1)),
            failures: std::sync::Mutex::new(HashMap::new()),
            throttled: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }

    /// How many argon2id verifications have run (for tests and metrics).
    pub fn argon2_runs(&self) -> u64 {
        self.argon2_runs.load(Ordering::Relaxed)
    }

    /// How many checks were refused without argon2id, after the matching wait (for tests and
    /// metrics).
    pub fn simulated_checks(&self) -> u64 {
        self.simulated.load(Ordering::Relaxed)
    }

    /// How many checks the failure budget refused (for tests and metrics).
    pub fn throttled_checks(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// How many checks were refused because the argon2id queue was full (for metrics).
    pub fn busy_checks(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    /// argon2id checks `(running, waiting for a worker)` now (for metrics).
    pub fn in_flight(&self) -> (usize, usize) {
        let workers = self.limits.max_concurrent.max(1);
        let running = workers.saturating_sub(self.permits.available_permits());
        // `waiting` counts every check from its arrival to its end, the running ones included.
        let queued = self.waiting.load(Ordering::Relaxed).saturating_sub(running);
        (running, queued)
    }

    /// `Err(seconds left)` when `client_id` has used up its failure budget.
    fn over_budget(&self, client_id: &ClientId) -> Result<(), u32> {
        if self.limits.failure_budget == 0 {
            return Ok(());
        }
        let Ok(map) = self.failures.lock() else {
            return Ok(());
        };
        match map.get(client_id) {
            Some((n, since))
                if *n >= self.limits.failure_budget
                    && since.elapsed() < self.limits.failure_window =>
            {
                let left = self.limits.failure_window.saturating_sub(since.elapsed());
                Err(u32::try_from(left.as_secs()).unwrap_or(u32::MAX).max(1))
            }
            _ => Ok(()),
        }
    }

    /// Count a failed authentication for `client_id` against its budget. The caller counts once
    /// per refused request, after any re-check (a secret made a moment ago is checked against
    /// the snapshot first, and must not cost the client its budget).
    pub fn record_failure(&self, client_id: &ClientId) {
        if self.limits.failure_budget == 0 {
            return;
        }
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        let window = self.limits.failure_window;
        // Bounded: a flood of distinct ids drops the expired windows first, then the ids that
        // have not used up their budget, so the throttled ones (the ids under attack) stay
        // throttled however many made-up ids arrive.
        if map.len() >= 100_000 {
            let budget = self.limits.failure_budget;
            map.retain(|_, (_, since)| since.elapsed() < window);
            if map.len() >= 100_000 {
                map.retain(|_, (n, _)| *n >= budget);
            }
            if map.len() >= 100_000 {
                map.clear();
            }
        }
        let entry = map
            .entry(client_id.clone())
            .or_insert((0, std::time::Instant::now()));
        if entry.1.elapsed() >= window {
            *entry = (0, std::time::Instant::now());
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// How long one argon2id check takes, as a random one of the last measured.
    pub fn argon2_estimate(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.durations.pick())
    }

    /// Verify `secret` for `client` (or for an unknown client, when `None`) at time `now`,
    /// returning the id of the matching secret.
    pub async fn verify(
        &self,
        client: Option<&Client>,
        client_id: &ClientId,
        secret: &ClientSecret,
        now: i64,
    ) -> Result<SecretId, VerifyError> {
        let tag = self.tag(client_id, secret);
        if let Some(client) = client.filter(|c| c.is_active(now)) {
            let hit = self.cache.read().ok().and_then(|c| c.get(&tag).cloned());
            if let Some(hit) = hit {
                if hit.client_id == client.id && client.secret_usable(&hit.secret_id, now) {
                    return Ok(hit.secret_id);
                }
            }
        }

        // Past the cache: a caller whose credential is verified never reaches the budget.
        if let Err(wait) = self.over_budget(client_id) {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(VerifyError::Throttled(wait));
        }
        let candidates: Vec<(SecretId, SecretHash)> = match client.filter(|c| c.is_active(now)) {
            Some(c) => c
                .usable_secrets(now)
                .map(|s| (s.id.clone(), s.hash.clone()))
                .collect(),
            None => Vec::new(),
        };
        if candidates.is_empty() {
            // Nothing to check against: the same refusal after the time a check takes, with no
            // work (see the module documentation).
            self.simulated.fetch_add(1, Ordering::Relaxed);
            // tokio's timer fires on the first millisecond tick past the deadline (about 1 ms
            // late on average), where a real check's own overhead is tens of microseconds.
            let wait = self.argon2_estimate().saturating_sub(TIMER_LATENESS);
            tokio::time::sleep(wait).await;
            return Err(VerifyError::Rejected);
        }
        let found = self.run_argon2(candidates, secret.clone()).await?;
        let id = found.ok_or(VerifyError::Rejected)?;
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= self.limits.max_cached {
                cache.clear();
            }
            cache.insert(
                tag,
                CachedCredential {
                    client_id: client_id.clone(),
                    secret_id: id.clone(),
                },
            );
        }
        Ok(id)
    }

    /// The id of the secret `secret` if it is already verified for `client` and still usable
    /// at `now`: a cache look-up only, no argon2id (for when the database cannot be asked).
    pub fn verify_cached(
        &self,
        client: &Client,
        client_id: &ClientId,
        secret: &ClientSecret,
        now: i64,
    ) -> Option<SecretId> {
        if !client.is_active(now) {
            return None;
        }
        let tag = self.tag(client_id, secret);
        let hit = self.cache.read().ok().and_then(|c| c.get(&tag).cloned())?;
        (hit.client_id == client.id && client.secret_usable(&hit.secret_id, now))
            .then_some(hit.secret_id)
    }

    /// Forget every cached credential of a client (called when its record changes).
    pub fn forget_client(&self, client_id: &ClientId) {
        if let Ok(mut cache) = self.cache.write() {
            cache.retain(|_, v| v.client_id != *client_id);
        }
    }

    fn tag(&self, client_id: &ClientId, secret: &ClientSecret) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.mac_key);
        ctx.update(client_id.as_str().as_bytes());
        ctx.update(&[0]);
        ctx.update(secret.expose().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    async fn run_argon2(
        &self,
        candidates: Vec<(SecretId, SecretHash)>,
        secret: ClientSecret,
    ) -> Result<Option<SecretId>, VerifyError> {
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _guard = WaitGuard(&self.waiting);
        if waiting >= self.limits.max_concurrent + self.limits.max_waiting {
            self.busy.fetch_add(1, Ordering::Relaxed);
            return Err(VerifyError::Busy);
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| VerifyError::Busy)?;
        let runs = candidates.len() as u64;
        self.argon2_runs.fetch_add(runs, Ordering::Relaxed);
        let durations = self.durations.clone();
        let result = self
            .workers
            .run(move |memory| {
                let _permit = permit;
                // Check every candidate, not just up to the first match, so the time taken does not
                // reveal which of a rotating pair matched.
                let mut found = None;
                for (id, hash) in candidates {
                    let started = std::time::Instant::now();
                    if hash.verify_in(&secret, memory) && found.is_none() {
                        found = Some(id);
                    }
                    durations
                        .record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
                }
                found
            })
            .await
            .ok_or(VerifyError::Busy)?;
        Ok(result)
    }
}

/// A check to run on a worker, with that worker's argon2id memory.
type Job = Box<dyn FnOnce(&mut Vec<argon2::Block>) + Send>;

/// The argon2id workers: as many threads as checks may run at once, each owning one working
/// memory (19 MiB at the default parameters) that it reuses for every check. So argon2id's
/// memory is bounded by the number of workers and allocated once, however many checks a flood
/// asks for, instead of 19 MiB per check on whichever blocking thread runs it (kept by the
/// allocator afterwards). The threads end when the verifier is dropped.
struct Workers {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
    /// Workers that started (0 only if the OS refused every thread).
    started: usize,
}

impl Workers {
    fn new(n: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut started = 0;
        for i in 0..n {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-argon2-{i}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return, // the verifier is gone
                        }
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start an argon2id worker thread"),
            }
        }
        Self {
            jobs: std::sync::Mutex::new(tx),
            started,
        }
    }

    /// Run `f` on a worker with its memory; `None` if no worker can take it.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<argon2::Block>) -> R + Send + 'static,
    ) -> Option<R> {
        if self.started == 0 {
            // No worker thread could start: one check on the blocking pool, with its own memory.
            return tokio::task::spawn_blocking(move || f(&mut Vec::new()))
                .await
                .ok();
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = tx.send(f(memory));
        });
        self.jobs.lock().ok()?.send(job).ok()?;
        rx.await.ok()
    }
}

/// How late tokio's timer fires, on average, against a measured duration.
const TIMER_LATENESS: std::time::Duration = std::time::Duration::from_micros(1000);

/// How many argon2id check durations are remembered.
const SAMPLES: usize = 64;

/// A ring of recent check durations (microseconds).
struct Durations {
    ring: [AtomicU64; SAMPLES],
    next: AtomicUsize,
}

impl Durations {
    /// A ring filled with `first` (the start-up estimate).
    fn new(first: u64) -> Self {
        Self {
            ring: std::array::from_fn(|_| AtomicU64::new(first)),
            next: AtomicUsize::new(0),
        }
    }

    fn record(&self, micros: u64) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % SAMPLES;
        self.ring[i].store(micros, Ordering::Relaxed);
    }

    /// One of the remembered durations, at random.
    fn pick(&self) -> u64 {
        let r = u64::from_le_bytes(crate::random::bytes::<8>());
        self.ring[(r % SAMPLES as u64) as usize].load(Ordering::Relaxed)
    }
}

struct WaitGuard<'a>(&'a AtomicUsize);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{ScopeSet, StoredSecret};

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }

    fn client_with(secret: &ClientSecret) -> Client {
        Client {
            id: ClientId::parse("c1").unwrap(),
            name: "c".into(),
            scopes: ScopeSet::default(),
            audiences: vec![],
            token_ttl: 300,
            enabled: true,
            expires_at: None,
            auth: crate::oauth::ClientAuth::Secret,
            claims: Default::default(),
            max_tokens_per_minute: None,
            secrets: vec![StoredSecret {
                id: SecretId::new("s1".into()),
                hash: SecretHash::create(secret).unwrap(),
                created_at: 0,
                expires_at: None,
                revoked_at: None,
            }],
            created_at: 0,
            updated_at: 0,
        }
    }

    #[tokio::test]
    async fn argon2_is_paid_once_per_credential() {
        let v = CredentialVerifier::new(VerifierLimits::default());
        let s = crate::secrets::generate_secret();
        let c = client_with(&s);
        for _ in 0..5 {
            assert_eq!(
                v.verify(Some(&c), &id("c1"), &s, 10)
                    .await
                    .unwrap()
                    .as_str(),
                "s1"
            );
        }
        assert_eq!(v.argon2_runs(), 1);
        // A wrong secret is never answered from the cache and costs a verify each time.
        let wrong = ClientSecret::new("wrong");
        assert_eq!(
            v.verify(Some(&c), &id("c1"), &wrong, 10).await,
            Err(VerifyError::Rejected)
        );
        assert_eq!(v.argon2_runs(), 2);
    }

    #[tokio::test]
    async fn cache_never_outlives_revocation_expiry_or_disable() {
        let v = CredentialVerifier::new(VerifierLimits::default());
        let s = crate::secrets::generate_secret();
        let mut c = client_with(&s);
        v.verify(Some(&c), &id("c1"), &s, 10).await.unwrap();
        c.secrets[0].expires_at = Some(20);
        assert!(v.verify(Some(&c), &id("c1"), &s, 10).await.is_ok());
        assert_eq!(
            v.verify(Some(&c), &id("c1"), &s, 20).await,
            Err(VerifyError::Rejected)
        );
        c.secrets[0].expires_at = None;
        c.secrets[0].revoked_at = Some(15);
        assert_eq!(
            v.verify(Some(&c), &id("c1"), &s, 16).await,
            Err(VerifyError::Rejected)
        );
        c.secrets[0].revoked_at = None;
        c.expires_at = Some(16);
        assert_eq!(
            v.verify(Some(&c), &id("c1"), &s, 16).await,
            Err(VerifyError::Rejected),
            "expired client"
        );
        c.expires_at = None;
        c.enabled = false;
        assert_eq!(
            v.verify(Some(&c), &id("c1"), &s, 16).await,
            Err(VerifyError::Rejected)
        );
        // Unknown client: rejected after the matching wait, without argon2id work.
        let before = v.argon2_runs();
        assert_eq!(
            v.verify(None, &id("nobody"), &s, 16).await,
            Err(VerifyError::Rejected)
        );
        assert_eq!(v.argon2_runs(), before, "no argon2id for an unknown id");
        assert_eq!(
            v.simulated_checks(),
            5,
            "expired secret, revoked secret, expired client, disabled client, unknown id"
        );
        assert!(v.argon2_estimate() > std::time::Duration::ZERO);
    }

    #[tokio::test]
    async fn the_failure_budget_refuses_without_argon2_but_never_a_cached_caller() {
        let v = CredentialVerifier::new(VerifierLimits {
            failure_budget: 3,
            failure_window: std::time::Duration::from_millis(400),
            ..VerifierLimits::default()
        });
        let s = crate::secrets::generate_secret();
        let c = client_with(&s);
        // The right secret once: cached.
        assert!(v.verify(Some(&c), &id("c1"), &s, 1).await.is_ok());
        for _ in 0..3 {
            assert_eq!(
                v.verify(Some(&c), &id("c1"), &ClientSecret::new("wrong"), 1)
                    .await,
                Err(VerifyError::Rejected)
            );
            v.record_failure(&id("c1"));
        }
        let runs = v.argon2_runs();
        assert!(matches!(
            v.verify(Some(&c), &id("c1"), &ClientSecret::new("wrong"), 1)
                .await,
            Err(VerifyError::Throttled(_))
        ));
        assert_eq!(v.argon2_runs(), runs, "refused with no argon2id");
        // The verified caller is not affected.
        assert!(v.verify(Some(&c), &id("c1"), &s, 1).await.is_ok());
        // Unknown ids have budgets too (the throttle tells nothing about which ids exist).
        for _ in 0..3 {
            assert_eq!(
                v.verify(None, &id("nobody"), &ClientSecret::new("x"), 1)
                    .await,
                Err(VerifyError::Rejected)
            );
            v.record_failure(&id("nobody"));
        }
        assert!(matches!(
            v.verify(None, &id("nobody"), &ClientSecret::new("x"), 1)
                .await,
            Err(VerifyError::Throttled(_))
        ));
        // After the window, a check again.
        tokio::time::sleep(std::time::Duration::from_millis(450)).await;
        assert_eq!(
            v.verify(Some(&c), &id("c1"), &ClientSecret::new("wrong"), 1)
                .await,
            Err(VerifyError::Rejected)
        );
    }

    #[tokio::test]
    async fn a_flood_beyond_the_queue_is_refused_not_queued() {
        let v = Arc::new(CredentialVerifier::new(VerifierLimits {
            max_concurrent: 1,
            max_waiting: 1,
            max_cached: 10,
            failure_budget: 0,
            failure_window: std::time::Duration::from_secs(60),
        }));
        let s = crate::secrets::generate_secret();
        let c = Arc::new(client_with(&s));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (v, c) = (v.clone(), c.clone());
            tasks.push(tokio::spawn(async move {
                v.verify(Some(&c), &id("c1"), &ClientSecret::new("wrong"), 1)
                    .await
            }));
        }
        let mut busy = 0;
        for t in tasks {
            if t.await.unwrap() == Err(VerifyError::Busy) {
                busy += 1;
            }
        }
        assert!(
            busy >= 1,
            "with 1 slot and 1 waiter, 8 simultaneous verifies must refuse some"
        );
        assert!(v.argon2_runs() <= 7);
    }
}
