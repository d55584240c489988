//! What a running server knows: the clients and the key ring, held in memory and refreshed from
//! the store when its change counter moves.
//!
//! The hot path (the token endpoint) never waits on the database: it reads an `Arc` snapshot.
//! A background task polls `meta.revision` every refresh interval (default 2 s), which bounds how
//! long a change made by the CLI or another replica takes to reach this server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::keys::lifecycle::{self, LifecycleError};
use crate::keys::{self, Alg, KeyRing, MasterKey, StoredKey};
use crate::oauth::api_key::{ApiKey, KeyHash};
use crate::oauth::trust::Trust;
use crate::oauth::{Client, ClientId, ScopeSet};
use crate::secrets::CredentialVerifier;
use crate::store::{Store, StoreError};

/// Why the registry could not load.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keys could not be opened or parsed.
    #[error(transparent)]
    Keys(#[from] keys::KeyRingError),
    /// Making the first key failed.
    #[error(transparent)]
    FirstKey(#[from] LifecycleError),
}

/// Database look-ups of single clients (ids missing from the snapshot, re-reads after a refused
/// secret) running at once.
pub const MAX_CONCURRENT_LOOKUPS: usize = 4;

/// Look-ups allowed to wait for a slot; beyond them a look-up is refused at once (503, retry),
/// so a flood of made-up ids holds bounded memory.
pub const MAX_WAITING_LOOKUPS: usize = 256;

/// How long a look-up waits for a slot before the answer is 503 "retry" (never "unknown").
pub const LOOKUP_WAIT: Duration = Duration::from_secs(1);

/// Clients kept in memory by default (`--client-cache`): about 620 bytes each, so ~150 MiB when
/// full. A registry up to this size is held whole; beyond it the server keeps this many and
/// reads the others from the database when they call (see [`Registry`]).
pub const DEFAULT_CLIENT_CACHE: usize = 250_000;

/// How often, at most, discovery's `scopes_supported` is re-read from the database when not
/// every client is in memory (and only after a change).
const SCOPES_REREAD: Duration = Duration::from_secs(10);

/// A client in memory, with the "used since the last eviction sweep" mark the sweep reads
/// (second chance: a client used since is kept, its mark cleared).
struct Cached {
    client: Arc<Client>,
    used: std::sync::atomic::AtomicBool,
}

impl Cached {
    fn new(client: Arc<Client>) -> Self {
        Self {
            client,
            used: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// Discovery's `scopes_supported` as last read from the database: at which revision, when.
struct ScopesRead {
    revision: i64,
    at: Instant,
    scopes: ScopeSet,
}

/// See the module documentation.
///
/// Clients are held in a bounded map (`--client-cache`, default [`DEFAULT_CLIENT_CACHE`]). A
/// registry that fits is held whole (`complete`): every answer comes from memory, and the
/// database is asked only for ids it does not hold (a client registered a moment ago). A larger
/// one is held in part: the first `capacity` clients at start, then those that call; an id not
/// in memory is read from the database (bounded look-ups, as for a new client) and kept,
/// evicting clients not used since the last sweep. What needs every client (discovery's
/// `scopes_supported`, the expiry gauges) is then read from the database instead.
pub struct Registry {
    store: Store,
    master: MasterKey,
    clock: Clock,
    verifier: Arc<CredentialVerifier>,
    /// Every client, kept current in place: a refresh re-reads only the clients changed since
    /// the last one (the audit trail records each change's revision and client), and a
    /// look-up adds a client registered a moment ago. A map updated in place, not a copied
    /// snapshot, so one change costs a few map operations however many clients there are.
    clients: RwLock<HashMap<ClientId, Cached>>,
    /// Most clients held in memory.
    capacity: usize,
    /// Whether the map holds every client (it did at load and nothing has been evicted since).
    complete: std::sync::atomic::AtomicBool,
    /// Moves when a refresh is about to apply changes, so a look-up whose read may predate a
    /// change it did not see is not kept (see [`Registry::lookup`]).
    change_seq: AtomicU64,
    /// `scopes_supported` as last read from the database (used when not `complete`).
    scopes_read: tokio::sync::Mutex<Option<ScopesRead>>,
    /// How many enabled clients allow each scope (discovery's `scopes_supported`), kept with
    /// the map so discovery does not walk every client; consulted only while `complete`.
    scope_counts: std::sync::Mutex<HashMap<crate::oauth::Scope, usize>>,
    stored_keys: RwLock<Arc<Vec<StoredKey>>>,
    /// Workload identity federation trusts, as of the last reload.
    trusts: RwLock<Arc<Vec<Trust>>>,
    /// Managed API keys by hash, as of the last reload.
    api_keys: RwLock<Arc<HashMap<KeyHash, Arc<ApiKey>>>>,
    /// When trusts were last re-read outside a reload (see [`Registry::reread_trusts`]).
    trusts_reread: std::sync::Mutex<Option<Instant>>,
    ring: RwLock<Arc<KeyRing>>,
    revision: AtomicI64,
    /// Bounds database look-ups of single clients (see [`Registry::find_client`]).
    lookups: tokio::sync::Semaphore,
    /// Look-ups waiting for a slot now.
    waiting_lookups: std::sync::atomic::AtomicUsize,
    /// Reference point for the two millisecond counters below (atomics: read on every request).
    epoch: Instant,
    /// When a refresh last reached the database, in ms since `epoch`.
    last_ok_ms: AtomicU64,
    /// Beyond this many ms without a successful refresh the database counts as unreachable
    /// (3 refresh intervals, at least 2 s): only what the snapshot can answer is served.
    degraded_after_ms: AtomicU64,
    /// Beyond this many ms without a successful refresh, the state is too old to authenticate
    /// with at all (`--max-stale`).
    stale_after_ms: AtomicU64,
}

/// The database could not be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

impl Registry {
    /// Load clients (up to `capacity`) and keys, generating the first signing key (with `alg`)
    /// if the database has none. Fails if the master key cannot open the stored keys.
    pub async fn load(
        store: Store,
        master: MasterKey,
        alg: Alg,
        clock: Clock,
        verifier: Arc<CredentialVerifier>,
        capacity: usize,
    ) -> Result<Self, RegistryError> {
        let capacity = capacity.max(1);
        let now = clock.now();
        let mut stored = store.load_keys().await?;
        if !stored.iter().any(|k| k.is_published(now)) {
            let key = lifecycle::new_sealed_key(alg, &master, now, now)?;
            if store.insert_first_key(&key, now).await? {
                tracing::info!(kid = %key.kid, alg = %alg, "generated the first signing key");
            }
            stored = store.load_keys().await?;
        }
        let ring = KeyRing::build(&stored, &master, now, None)?;
        if ring.signer.alg() != alg {
            tracing::warn!(
                active = %ring.signer.alg(),
                configured = %alg,
                "the active signing key uses another algorithm; the configured one applies to keys generated from now on"
            );
        }
        let revision = store.revision().await?;
        let (clients, complete) = store.load_clients(capacity).await?;
        if !complete {
            tracing::info!(
                held = clients.len(),
                "more clients than --client-cache: the others are read from the database when they call"
            );
        }
        let trusts = store.load_trusts().await?;
        let api_keys = index_keys(store.load_api_keys().await?);
        Ok(Self {
            api_keys: RwLock::new(Arc::new(api_keys)),
            trusts: RwLock::new(Arc::new(trusts)),
            trusts_reread: std::sync::Mutex::new(None),
            store,
            master,
            clock,
            verifier,
            scope_counts: std::sync::Mutex::new(count_scopes(clients.iter())),
            clients: RwLock::new(index(clients)),
            capacity,
            complete: std::sync::atomic::AtomicBool::new(complete),
            change_seq: AtomicU64::new(0),
            scopes_read: tokio::sync::Mutex::new(None),
            stored_keys: RwLock::new(Arc::new(stored)),
            ring: RwLock::new(Arc::new(ring)),
            revision: AtomicI64::new(revision),
            lookups: tokio::sync::Semaphore::new(MAX_CONCURRENT_LOOKUPS),
            waiting_lookups: std::sync::atomic::AtomicUsize::new(0),
            epoch: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
            degraded_after_ms: AtomicU64::new(6_000),
            stale_after_ms: AtomicU64::new(60_000),
        })
    }

    /// A client by id, if it is in memory (as of the last refresh).
    pub fn client(&self, id: &ClientId) -> Option<Arc<Client>> {
        let map = self.clients.read().ok()?;
        let cached = map.get(id)?;
        // Read before written: a hot client's cache line is not written on every request.
        if !cached.used.load(Ordering::Relaxed) {
            cached.used.store(true, Ordering::Relaxed);
        }
        Some(cached.client.clone())
    }

    /// Whether every client is in memory (see [`Registry`]).
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Clients in memory now.
    pub fn cached_clients(&self) -> usize {
        self.clients.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Put `fresh` (or, with `None`, the client's removal) in the map, keeping the scope counts
    /// and the credential cache in step. A look-up's copy never replaces a newer one, and is not
    /// kept at all if a refresh began applying changes after the look-up's read began (`seq`):
    /// its read may predate a change that refresh skipped as not in memory.
    fn apply(&self, id: &ClientId, fresh: Option<Arc<Client>>, lookup_seq: Option<u64>) {
        let Ok(mut map) = self.clients.write() else {
            return;
        };
        let from_lookup = lookup_seq.is_some();
        if let Some(seq) = lookup_seq {
            if self.change_seq.load(Ordering::Acquire) != seq {
                return;
            }
            if let (Some(new), Some(old)) = (&fresh, map.get(id)) {
                if new.updated_at < old.client.updated_at {
                    return;
                }
            }
        }
        if fresh.is_some() && !map.contains_key(id) && map.len() >= self.capacity {
            self.evict(&mut map);
        }
        let old = match &fresh {
            Some(c) => map
                .insert(id.clone(), Cached::new(c.clone()))
                .map(|e| e.client),
            None => map.remove(id).map(|e| e.client),
        };
        drop(map);
        if let Ok(mut counts) = self.scope_counts.lock() {
            for c in old.iter().filter(|c| c.enabled) {
                for s in c.scopes.iter() {
                    if let Some(n) = counts.get_mut(s) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            counts.remove(s);
                        }
                    }
                }
            }
            for c in fresh.iter().filter(|c| c.enabled) {
                for s in c.scopes.iter() {
                    *counts.entry(s.clone()).or_insert(0) += 1;
                }
            }
        }
        // A look-up of a client not in memory brings no change (its cached credentials are
        // checked against the record it brings); anything else that differs does.
        let unchanged = match (&old, &fresh) {
            (Some(a), Some(b)) => {
                a.updated_at == b.updated_at && a.secrets.len() == b.secrets.len()
            }
            (None, Some(_)) => from_lookup,
            _ => false,
        };
        if !unchanged {
            self.verifier.forget_client(id);
        }
    }

    /// Make room in a full map: one sweep removes clients not used since the previous sweep
    /// (clearing the mark of those kept) until a twentieth of the capacity is free, a second
    /// sweep if every client had been used. The map is no longer the whole registry after.
    fn evict(&self, map: &mut HashMap<ClientId, Cached>) {
        let target = self.capacity - (self.capacity / 20).max(1);
        let before = map.len();
        for _ in 0..2 {
            let mut excess = map.len().saturating_sub(target);
            if excess == 0 {
                break;
            }
            map.retain(|_, e| {
                if excess == 0 {
                    return true;
                }
                if e.used.swap(false, Ordering::Relaxed) {
                    true
                } else {
                    excess -= 1;
                    false
                }
            });
        }
        self.complete.store(false, Ordering::Release);
        crate::metrics::registry_evicted(before - map.len());
    }

    /// A client by id: from memory, or, if the id is not there, from the database, so that a
    /// client registered a moment ago works at once instead of after the next refresh. Changes
    /// to known clients (disable, delete, new scopes) arrive with the next refresh.
    ///
    /// Fails with [`Unavailable`] when the database cannot be asked in time (no look-up slot
    /// within [`LOOKUP_WAIT`], too many waiting, or the database does not answer), so the
    /// caller answers "retry" (503) rather than "wrong credentials": a client that exists is
    /// never answered as unknown.
    pub async fn find_client(&self, id: &ClientId) -> Result<Option<Arc<Client>>, Unavailable> {
        match self.client(id) {
            Some(c) => Ok(Some(c)),
            None => self.lookup(id).await,
        }
    }

    /// Re-read one known client from the database and keep it in memory. Used when a known
    /// client's secret is refused, so a secret added a moment ago (`client rotate-secret`)
    /// works at once instead of after the next refresh. [`Unavailable`] as for
    /// [`Registry::find_client`].
    pub async fn reload_client(&self, id: &ClientId) -> Result<Option<Arc<Client>>, Unavailable> {
        self.lookup(id).await
    }

    /// A slot for one database look-up: at most [`MAX_CONCURRENT_LOOKUPS`] at a time, at most
    /// [`MAX_WAITING_LOOKUPS`] waiting, each waiting at most [`LOOKUP_WAIT`].
    async fn lookup_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Unavailable> {
        let waiting = self.waiting_lookups.fetch_add(1, Ordering::AcqRel);
        let permit = if waiting >= MAX_WAITING_LOOKUPS {
            None
        } else {
            tokio::time::timeout(LOOKUP_WAIT, self.lookups.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        };
        self.waiting_lookups.fetch_sub(1, Ordering::AcqRel);
        permit.ok_or(Unavailable)
    }

    /// Read one client from the database into memory, in a look-up slot.
    async fn lookup(&self, id: &ClientId) -> Result<Option<Arc<Client>>, Unavailable> {
        let _permit = self.lookup_slot().await?;
        let seq = self.change_seq.load(Ordering::Acquire);
        let lookup = tokio::time::timeout(Duration::from_secs(2), self.store.get_client(id));
        let client = match lookup.await {
            Ok(Ok(Some(c))) => Arc::new(c),
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(_)) => return Err(Unavailable),
            Err(_) => {
                crate::metrics::database_error(crate::metrics::DbErrorKind::Timeout);
                return Err(Unavailable);
            }
        };
        self.apply(id, Some(client.clone()), Some(seq));
        Ok(Some(client))
    }

    /// Whether the in-memory state is too old to authenticate with: no refresh has reached the
    /// database for longer than `--max-stale`. While the database is unreachable nobody can
    /// change a client, so until then the snapshot is the current state (except under a network
    /// partition, which the bound limits); past it the token endpoint refuses with 503.
    pub fn is_stale(&self) -> bool {
        self.unrefreshed_ms() > self.stale_after_ms.load(Ordering::Relaxed)
    }

    /// Whether the database looks unreachable now (no refresh for 3 refresh intervals): then
    /// only what the snapshot can answer is served, known clients with already verified
    /// credentials, and anything that needs the database (an unknown id, a secret not yet
    /// verified) is refused with 503.
    pub fn is_degraded(&self) -> bool {
        self.unrefreshed_ms() > self.degraded_after_ms.load(Ordering::Relaxed)
    }

    /// How long since a refresh last reached the database (the snapshot's age).
    pub fn snapshot_age(&self) -> Duration {
        Duration::from_millis(self.unrefreshed_ms())
    }

    fn unrefreshed_ms(&self) -> u64 {
        self.elapsed_ms()
            .saturating_sub(self.last_ok_ms.load(Ordering::Relaxed))
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The current key ring.
    pub fn key_ring(&self) -> Arc<KeyRing> {
        // A poisoned lock means a panic while swapping two Arcs, which cannot leave a bad value.
        match self.ring.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The signing keys as last loaded (published, pending and retired).
    pub fn stored_keys(&self) -> Arc<Vec<StoredKey>> {
        self.stored_keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_default()
    }

    /// Every client in memory, copied out (the `Arc`s, not the clients) so that the lock is
    /// held only for the copy: for the metrics' expiry gauges, at scrape time.
    pub fn clients_snapshot(&self) -> Vec<Arc<Client>> {
        self.clients
            .read()
            .map(|m| m.values().map(|e| e.client.clone()).collect())
            .unwrap_or_default()
    }

    /// Expiring credentials still usable at `now`, read from the database (for the expiry
    /// gauges when not every client is in memory): enabled clients with an end, and secret
    /// clients all of whose usable secrets end (the last end).
    pub async fn credential_expiries(
        &self,
        now: i64,
    ) -> Result<(Vec<(ClientId, i64)>, Vec<(ClientId, i64)>), Unavailable> {
        let read =
            tokio::time::timeout(Duration::from_secs(5), self.store.credential_expiries(now));
        let Ok(Ok((clients, secrets))) = read.await else {
            return Err(Unavailable);
        };
        let ids = |v: Vec<(String, i64)>| {
            v.into_iter()
                .filter_map(|(id, at)| ClientId::parse(&id).map(|id| (id, at)))
                .collect()
        };
        Ok((ids(clients), ids(secrets)))
    }

    /// The union of the enabled clients' scopes (discovery's `scopes_supported`): from memory
    /// when every client is there, otherwise read from the database after a change, at most
    /// every [`SCOPES_REREAD`] (the last answer stands in between, and while the database
    /// cannot be asked).
    pub async fn scopes_supported(&self) -> ScopeSet {
        if self.is_complete() {
            let mut all = ScopeSet::default();
            if let Ok(counts) = self.scope_counts.lock() {
                for s in counts.keys() {
                    all.insert(s.clone());
                }
            }
            return all;
        }
        let revision = self.revision.load(Ordering::Acquire);
        let mut read = self.scopes_read.lock().await;
        if let Some(r) = read.as_ref() {
            if r.revision == revision || r.at.elapsed() < SCOPES_REREAD {
                return r.scopes.clone();
            }
        }
        let query = tokio::time::timeout(LOOKUP_WAIT * 2, self.store.scopes_in_use());
        match query.await {
            Ok(Ok(lists)) => {
                let mut all = ScopeSet::default();
                for list in &lists {
                    if let Ok(set) = ScopeSet::parse(list) {
                        for s in set.iter() {
                            all.insert(s.clone());
                        }
                    }
                }
                *read = Some(ScopesRead {
                    revision,
                    at: Instant::now(),
                    scopes: all.clone(),
                });
                all
            }
            _ => {
                // The last answer stands, and the next try waits as long as a re-read would:
                // discovery requests during an outage do not queue on the database one by one.
                let last = read.as_ref().map(|r| r.scopes.clone()).unwrap_or_default();
                *read = Some(ScopesRead {
                    revision: read.as_ref().map_or(i64::MIN, |r| r.revision),
                    at: Instant::now(),
                    scopes: last.clone(),
                });
                last
            }
        }
    }

    /// Whether the database answers within `limit` (readiness).
    pub async fn ping(&self, limit: Duration) -> bool {
        self.store.ping(limit).await.is_ok()
    }

    /// Reload from the store if its revision moved, and re-derive which key signs (a key may have
    /// reached its activation or retirement time). Returns whether anything was reloaded.
    pub async fn refresh(&self) -> Result<bool, RegistryError> {
        let result = self.refresh_inner().await;
        let ok = !matches!(result, Err(RegistryError::Store(_)));
        if ok {
            self.last_ok_ms.store(self.elapsed_ms(), Ordering::Relaxed);
        }
        result
    }

    async fn refresh_inner(&self) -> Result<bool, RegistryError> {
        let revision = self.store.revision().await?;
        let changed = revision != self.revision.load(Ordering::Acquire);
        if changed {
            // Only the clients changed since the last refresh (each change's audit record
            // names its revision and client), re-read one by one; a client gone is removed.
            // A client not in memory (when the map is not the whole registry) is not read:
            // it is read when it next calls. Its cached credentials are forgotten all the same.
            self.change_seq.fetch_add(1, Ordering::AcqRel);
            let since = self.revision.load(Ordering::Acquire);
            for id in self.store.clients_changed_since(since).await? {
                let held =
                    self.is_complete() || self.clients.read().is_ok_and(|m| m.contains_key(&id));
                if held {
                    let fresh = self.store.get_client(&id).await?.map(Arc::new);
                    self.apply(&id, fresh, None);
                } else {
                    self.verifier.forget_client(&id);
                }
            }
            let keys = self.store.load_keys().await?;
            if let Ok(mut w) = self.stored_keys.write() {
                *w = Arc::new(keys);
            }
            let trusts = self.store.load_trusts().await?;
            if let Ok(mut w) = self.trusts.write() {
                *w = Arc::new(trusts);
            }
            let keys = index_keys(self.store.load_api_keys().await?);
            if let Ok(mut w) = self.api_keys.write() {
                *w = Arc::new(keys);
            }
            self.revision.store(revision, Ordering::Release);
        }
        let stored = self
            .stored_keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_default();
        let previous = self.key_ring();
        let ring = KeyRing::build(&stored, &self.master, self.clock.now(), Some(&previous))?;
        if ring.signer.kid() != previous.signer.kid() || ring.jwks_json != previous.jwks_json {
            tracing::info!(kid = %ring.signer.kid(), "signing key ring changed");
        }
        if let Ok(mut w) = self.ring.write() {
            *w = Arc::new(ring);
        }
        Ok(changed)
    }

    /// The API key with `hash`: from memory, or (a key made since the last refresh) read from
    /// the database with the same bounds as a client look-up.
    pub async fn find_api_key(&self, hash: &KeyHash) -> Result<Option<Arc<ApiKey>>, Unavailable> {
        if let Some(k) = self.api_keys.read().ok().and_then(|m| m.get(hash).cloned()) {
            return Ok(Some(k));
        }
        let _permit = self.lookup_slot().await?;
        match tokio::time::timeout(Duration::from_secs(2), self.store.get_api_key(hash)).await {
            Ok(Ok(k)) => Ok(k.map(Arc::new)),
            _ => Err(Unavailable),
        }
    }

    /// The federation trusts, as of the last refresh.
    pub fn trusts(&self) -> Arc<Vec<Trust>> {
        self.trusts.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Re-read the trusts now, for an external token no known trust covers: a trust added a
    /// moment ago must not be refused until the next refresh. At most once per second (a flood
    /// of tokens from unknown issuers costs one small query a second), and bounded by the
    /// look-up slots. Returns whether the trusts were re-read.
    pub async fn reread_trusts(&self) -> bool {
        {
            let Ok(mut last) = self.trusts_reread.lock() else {
                return false;
            };
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let Ok(_permit) = self.lookup_slot().await else {
            return false;
        };
        match tokio::time::timeout(LOOKUP_WAIT, self.store.load_trusts()).await {
            Ok(Ok(trusts)) => {
                if let Ok(mut w) = self.trusts.write() {
                    *w = Arc::new(trusts);
                }
                true
            }
            _ => false,
        }
    }

    /// Whether a key past its retirement still has its sealed private key (as last loaded).
    fn holds_retired_private_key(&self) -> bool {
        let now = self.clock.now();
        self.stored_keys.read().is_ok_and(|keys| {
            keys.iter()
                .any(|k| !k.is_published(now) && !k.private_key_erased())
        })
    }

    /// Housekeeping every replica may run (the statements are idempotent): forget expired
    /// revocations, erase retired private keys. Failures are retried at the next round.
    pub async fn maintain(&self) {
        let now = self.clock.now();
        let limit = Duration::from_secs(5);
        if let Ok(Ok(n)) = tokio::time::timeout(limit, self.store.purge_revocations(now)).await {
            if n > 0 {
                tracing::debug!(purged = n, "expired revocations purged");
            }
        }
        if let Ok(Ok(n)) = tokio::time::timeout(limit, self.store.purge_assertion_jtis(now)).await {
            if n > 0 {
                tracing::debug!(purged = n, "expired client assertion ids purged");
            }
        }
        if let Ok(Err(e)) =
            tokio::time::timeout(limit, lifecycle::erase_retired(&self.store, now)).await
        {
            tracing::warn!(error = %e, "erasing retired private keys failed; will retry");
        }
    }

    /// Refresh every `interval`, and at once when the store announces a change (PostgreSQL
    /// `NOTIFY`). Also sets the staleness bound from `interval`.
    pub fn spawn_refresher(
        self: Arc<Self>,
        interval: Duration,
        max_stale: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let degraded = (interval * 3).max(Duration::from_secs(2));
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.degraded_after_ms
            .store(ms(degraded), Ordering::Relaxed);
        self.stale_after_ms
            .store(ms(max_stale.max(degraded)), Ordering::Relaxed);
        let wake = Arc::new(tokio::sync::Notify::new());
        let listener = self.store.spawn_change_listener(wake.clone());
        tokio::spawn(async move {
            let _listener = listener.map(AbortOnDrop);
            let mut last_maintenance: Option<Instant> = None;
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = wake.notified() => {}
                }
                let refreshed = match tokio::time::timeout(Duration::from_secs(5), self.refresh())
                    .await
                {
                    Ok(Ok(changed)) => {
                        if changed {
                            tracing::debug!("registry reloaded");
                        }
                        true
                    }
                    Ok(Err(e)) => {
                        crate::metrics::registry_refresh_failed();
                        tracing::warn!(error = %e, "registry refresh failed; serving the last good state");
                        false
                    }
                    Err(_) => {
                        crate::metrics::registry_refresh_failed();
                        crate::metrics::database_error(crate::metrics::DbErrorKind::Timeout);
                        tracing::warn!("registry refresh timed out; serving the last good state");
                        false
                    }
                };
                // Once a minute, and as soon as a key retires: revoked token ids are kept only
                // until the tokens would have expired anyway, and retired keys lose their
                // private halves. Only while the database answers, so an outage does not also
                // slow down the refreshes that detect its end.
                let due = last_maintenance.is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                    || self.holds_retired_private_key();
                if refreshed && due {
                    last_maintenance = Some(Instant::now());
                    self.maintain().await;
                }
            }
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn count_scopes<'a>(
    clients: impl Iterator<Item = &'a Client>,
) -> HashMap<crate::oauth::Scope, usize> {
    let mut counts = HashMap::new();
    for c in clients.filter(|c| c.enabled) {
        for s in c.scopes.iter() {
            *counts.entry(s.clone()).or_insert(0) += 1;
        }
    }
    counts
}

fn index(clients: Vec<Client>) -> HashMap<ClientId, Cached> {
    clients
        .into_iter()
        .map(|c| (c.id.clone(), Cached::new(Arc::new(c))))
        .collect()
}

fn index_keys(keys: Vec<ApiKey>) -> HashMap<KeyHash, Arc<ApiKey>> {
    keys.into_iter().map(|k| (k.hash, Arc::new(k))).collect()
}
