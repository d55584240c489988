//! Persistence. Only this module talks SQL.
//!
//! One [`Store`] interface over the backends; everything above it (admin operations, the
//! registry, the HTTP handlers) is backend-agnostic.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use crate::keys::StoredKey;
use crate::oauth::trust::Trust;
use crate::oauth::{Audience, Client, ClientAuth, ClientId, ScopeSet, StoredSecret};

pub use postgres::{PostgresStore, CHANGES_CHANNEL};
pub use sqlite::SqliteStore;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row in the database does not parse (edited by hand, or a newer schema).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Other(String),
    /// A conditional change found the row changed since the version it was made against.
    #[error("changed since the version given")]
    Stale,
}

impl From<sqlx::Error> for StoreError {
    /// Every database error passes here, so this is where they are counted
    /// ([`crate::metrics::DATABASE_ERRORS`]).
    fn from(e: sqlx::Error) -> Self {
        use crate::metrics::{database_error, DbErrorKind};
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                database_error(DbErrorKind::Unavailable);
                Self::Unavailable(e.to_string())
            }
            other => {
                database_error(DbErrorKind::Query);
                Self::Other(other.to_string())
            }
        }
    }
}

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Its id.
    pub id: ClientId,
    /// Human name.
    pub name: String,
    /// Allowed scopes.
    pub scopes: ScopeSet,
    /// Allowed audiences, default first.
    pub audiences: Vec<Audience>,
    /// Token lifetime in seconds.
    pub token_ttl: u32,
    /// When the client stops working, if ever.
    pub expires_at: Option<i64>,
    /// How it authenticates.
    pub auth: ClientAuth,
    /// Claims added to its tokens.
    pub claims: crate::oauth::claims::CustomClaims,
    /// Its token quota per minute (`None`: the server's default).
    pub max_tokens_per_minute: Option<u32>,
    /// Its first secret (a secret client's; `None` for `private_key_jwt`).
    pub secret: Option<StoredSecret>,
}

/// Changes to a client; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    /// New name.
    pub name: Option<String>,
    /// New set of allowed scopes (replaces the old one).
    pub scopes: Option<ScopeSet>,
    /// New audiences (replace the old ones).
    pub audiences: Option<Vec<Audience>>,
    /// New token lifetime.
    pub token_ttl: Option<u32>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Set (`Some(Some(t))`) or clear (`Some(None)`) the client's expiry.
    pub expires_at: Option<Option<i64>>,
    /// New authentication method (and keys). Switching to `private_key_jwt` revokes the
    /// client's secrets in the same transaction.
    pub auth: Option<ClientAuth>,
    /// New custom claims (replace the old ones; empty clears them).
    pub claims: Option<crate::oauth::claims::CustomClaims>,
    /// Set (`Some(Some(n))`) or clear (`Some(None)`: the server's default) the token quota.
    pub max_tokens_per_minute: Option<Option<u32>>,
}

/// An admin change, as stored in `audit_events`. `detail` never holds a secret or a token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEvent {
    /// When, unix seconds (written RFC 3339).
    #[serde(serialize_with = "crate::clock::serde_rfc3339::serialize")]
    pub at: i64,
    /// Who: the OS user who ran the CLI, or `tessera-server` for scheduled work.
    pub actor: String,
    /// What, e.g. `client.create`, `client.rotate_secret`, `keys.rotate`.
    pub action: String,
    /// The client concerned, if any.
    pub client_id: Option<String>,
    /// Non-secret particulars. Times in it (`…_at` fields) are unix seconds as stored, and
    /// written RFC 3339 like every other time.
    #[serde(serialize_with = "serialize_detail")]
    pub detail: serde_json::Value,
}

/// An audit record's detail with its `…_at` times in RFC 3339, whichever version wrote it.
fn serialize_detail<S: serde::Serializer>(d: &serde_json::Value, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&AuditEvent::readable_detail(d), s)
}

impl AuditEvent {
    /// `detail` with its `…_at` unix times written RFC 3339.
    pub fn readable_detail(d: &serde_json::Value) -> serde_json::Value {
        match d {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| {
                    let v = match v.as_i64() {
                        Some(t) if k.ends_with("_at") => crate::clock::rfc3339(t).into(),
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            other => other.clone(),
        }
    }
}

/// What a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The new key was stored; the keys that signed until now retire at this time.
    Scheduled {
        /// When the previous keys leave the JWKS.
        retires_at: i64,
    },
    /// A rotation is already under way: this key is published but not yet signing.
    AlreadyPending(crate::keys::Kid),
}

/// The database, whichever backend it is.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite (the default).
    Sqlite(SqliteStore),
    /// PostgreSQL (several replicas).
    Postgres(PostgresStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Connect to `url`: `sqlite://PATH` (the file is created if needed) or
    /// `postgres://…` / `postgresql://…`. Call [`Store::migrate`] next.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PostgresStore::connect(url).await?))
        } else {
            Err(StoreError::Other(format!(
                "unsupported database URL scheme in '{}' (use sqlite://PATH or postgres://…)",
                redact_url(url)
            )))
        }
    }

    /// Wake `wake` whenever another process changes clients or keys, where the backend can tell
    /// (PostgreSQL `LISTEN/NOTIFY`); `None` where servers must rely on polling (SQLite).
    pub fn spawn_change_listener(
        &self,
        wake: Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(p) => Some(p.spawn_listener(wake)),
        }
    }

    /// Apply pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// Check the database answers, within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        match tokio::time::timeout(timeout, async { dispatch!(self, s => s.ping().await) }).await {
            Ok(r) => r,
            Err(_) => {
                crate::metrics::database_error(crate::metrics::DbErrorKind::Timeout);
                Err(StoreError::Unavailable("ping timed out".into()))
            }
        }
    }

    /// The change counter (see the `meta` table).
    pub async fn revision(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.revision().await)
    }

    /// Up to `limit` clients (the first by id) with their secrets, and whether that was every
    /// client.
    pub async fn load_clients(&self, limit: usize) -> Result<(Vec<Client>, bool), StoreError> {
        dispatch!(self, s => s.load_clients(limit).await)
    }

    /// The longest access-token lifetime of any client, in seconds (`None` without clients).
    pub async fn longest_token_ttl(&self) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.longest_token_ttl().await)
    }

    /// The distinct scope strings of the enabled clients (discovery's `scopes_supported` when
    /// not every client is in memory).
    pub async fn scopes_in_use(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.scopes_in_use().await)
    }

    /// Expiring credentials still usable at `now`: enabled clients with an end (id, end), and
    /// secret clients all of whose usable secrets end (id, the last end).
    pub async fn credential_expiries(
        &self,
        now: i64,
    ) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>), StoreError> {
        dispatch!(self, s => s.credential_expiries(now).await)
    }

    /// The clients changed (created, updated, deleted, given or losing a secret, a trust)
    /// by changes committed after `revision`, read from the audit trail.
    pub async fn clients_changed_since(&self, revision: i64) -> Result<Vec<ClientId>, StoreError> {
        dispatch!(self, s => s.clients_changed_since(revision).await)
    }

    /// Up to `limit` clients whose ids sort after `after`, in id order, with their secrets
    /// (keyset pagination: each page is one indexed range read).
    pub async fn list_clients_page(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Client>, StoreError> {
        dispatch!(self, s => s.list_clients_page(after, limit).await)
    }

    /// One client with its secrets.
    pub async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        dispatch!(self, s => s.get_client(id).await)
    }

    /// Register a client and its first secret in one transaction.
    pub async fn create_client(
        &self,
        c: &NewClient,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_client(c, now, audit).await)
    }

    /// Change a client; `false` if there is no such client. With `expect`, only if the client
    /// is still at that version ([`Self::client_version`]); else [`StoreError::Stale`].
    pub async fn update_client(
        &self,
        id: &ClientId,
        u: &ClientUpdate,
        now: i64,
        audit: &AuditEvent,
        expect: Option<i64>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.update_client(id, u, now, audit, expect).await)
    }

    /// A client's version: the revision of the last change recorded for it (0 for a client
    /// no recorded change touched since revisions were kept); `None` if there is no such
    /// client. The admin API's `ETag`.
    pub async fn client_version(&self, id: &ClientId) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.client_version(id).await)
    }

    /// Delete a client and its secrets; `false` if there is no such client. `expect` as for
    /// [`Self::update_client`].
    pub async fn delete_client(
        &self,
        id: &ClientId,
        audit: &AuditEvent,
        expect: Option<i64>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_client(id, audit, expect).await)
    }

    /// Every signing key, retired ones included.
    pub async fn load_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        dispatch!(self, s => s.load_keys().await)
    }

    /// Store `key` only if no key is published at `now`; returns whether it was stored. Done in
    /// one write transaction so that two servers starting on an empty database create one key.
    pub async fn insert_first_key(&self, key: &StoredKey, now: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.insert_first_key(key, now).await)
    }

    /// Add `next` (published now, signing from its `activates_at`) and schedule every key that
    /// signs until then to retire at `retire_at`; refused while another rotation is pending.
    /// One locked transaction, so concurrent rotations (replicas on a schedule, the CLI) cannot
    /// both happen.
    pub async fn rotate_key(
        &self,
        next: &StoredKey,
        retire_at: i64,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Rotation, StoreError> {
        dispatch!(self, s => s.rotate_key(next, retire_at, now, audit).await)
    }

    /// Add a secret to a client; with `expire_others_at`, its other usable secrets stop working
    /// then (a rotation's grace period). `false` if there is no such client.
    pub async fn add_secret(
        &self,
        client: &ClientId,
        secret: &StoredSecret,
        expire_others_at: Option<i64>,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.add_secret(client, secret, expire_others_at, now, audit).await)
    }

    /// Record a revoked token id until `expires_at` (the token's `exp`).
    pub async fn revoke_token(
        &self,
        jti: &str,
        client: &ClientId,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.revoke_token(jti, client, expires_at).await)
    }

    /// Revocations numbered above `since` and at most `upto` whose token has not expired at
    /// `now`, in number order, at most `limit`: `(number, jti, exp)`.
    pub async fn revocations_since(
        &self,
        since: i64,
        upto: i64,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        dispatch!(self, s => s.revocations_since(since, upto, now, limit).await)
    }

    /// The number of the latest revocation.
    pub async fn revocation_cursor(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.revocation_cursor().await)
    }

    /// Whether a token id was revoked.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.is_revoked(jti).await)
    }

    /// Forget revocations of tokens that have expired anyway; returns how many.
    pub async fn purge_revocations(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.purge_revocations(now).await)
    }

    /// Overwrite the sealed private keys of retired keys with nothing: a retired key never signs
    /// again (only published keys can), so its private half has no use left. Returns how many.
    pub async fn erase_retired_private_keys(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.erase_retired_private_keys(now).await)
    }

    /// Admin changes, oldest first, optionally for one client, from `since` (unix seconds).
    pub async fn list_audit(
        &self,
        client: Option<&str>,
        since: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        dispatch!(self, s => s.list_audit(client, since).await)
    }

    /// Record `private_key_jwt` assertion ids, each until its `expires_at`, in one statement:
    /// for each, `true` if it is new, `false` if it was seen before (a replay). The primary key
    /// decides, so two replicas racing with the same assertion cannot both get `true`.
    /// Duplicates within `batch` must be removed by the caller.
    pub async fn record_assertion_jtis(
        &self,
        batch: &[(ClientId, String, i64)],
    ) -> Result<Vec<bool>, StoreError> {
        dispatch!(self, s => s.record_assertion_jtis(batch).await)
    }

    /// Forget assertion ids that expired before `now`; returns how many.
    pub async fn purge_assertion_jtis(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.purge_assertion_jtis(now).await)
    }

    /// Every API key.
    pub async fn load_api_keys(&self) -> Result<Vec<crate::oauth::api_key::ApiKey>, StoreError> {
        dispatch!(self, s => s.load_api_keys().await)
    }

    /// The API key with this hash.
    pub async fn get_api_key(
        &self,
        hash: &crate::oauth::api_key::KeyHash,
    ) -> Result<Option<crate::oauth::api_key::ApiKey>, StoreError> {
        dispatch!(self, s => s.get_api_key(hash).await)
    }

    /// Register an API key.
    pub async fn create_api_key(
        &self,
        k: &crate::oauth::api_key::ApiKey,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_api_key(k, audit).await)
    }

    /// Revoke an API key; `false` if there is no such unrevoked key.
    pub async fn revoke_api_key(
        &self,
        id: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke_api_key(id, now, audit).await)
    }

    /// Every trust.
    pub async fn load_trusts(&self) -> Result<Vec<Trust>, StoreError> {
        dispatch!(self, s => s.load_trusts().await)
    }

    /// Register a trust (its name must be new).
    pub async fn create_trust(&self, t: &Trust, audit: &AuditEvent) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_trust(t, audit).await)
    }

    /// Remove a trust by id; `false` if there is none.
    pub async fn delete_trust(&self, id: &str, audit: &AuditEvent) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_trust(id, audit).await)
    }

    /// Revoke one secret at once; `false` if the client has no such unrevoked secret.
    pub async fn revoke_secret(
        &self,
        client: &ClientId,
        secret: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke_secret(client, secret, now, audit).await)
    }
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Serialise audiences for storage.
fn audiences_to_json(a: &[Audience]) -> String {
    serde_json::Value::from(a.iter().map(|a| a.as_str()).collect::<Vec<_>>()).to_string()
}

fn audiences_from_json(s: &str) -> Result<Vec<Audience>, StoreError> {
    if s == "[]" {
        return Ok(Vec::new());
    }
    let corrupt = |detail: String| StoreError::Corrupt {
        table: "clients",
        detail,
    };
    let list: Vec<String> = serde_json::from_str(s).map_err(|e| corrupt(e.to_string()))?;
    list.iter()
        .map(|a| Audience::parse(a).ok_or_else(|| corrupt(format!("bad audience {a:?}"))))
        .collect()
}

fn scopes_from_text(s: &str) -> Result<ScopeSet, StoreError> {
    if s.is_empty() {
        return Ok(ScopeSet::default());
    }
    ScopeSet::parse(s).map_err(|e| StoreError::Corrupt {
        table: "clients",
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:pw@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
