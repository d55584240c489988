//! The SQL both backends share, written once as generic code over sqlx. sqlx's SQLite driver
//! accepts PostgreSQL-style `$N` placeholders, so one text serves both. What differs per backend
//! (the migrations, the lock that makes "create the first key" and rotation race-free, change
//! notification) is the [`Backend`] trait, implemented in `sqlite.rs` and `postgres.rs`, which
//! also hold connecting.

use std::future::Future;

use sqlx::{Database, Pool, Transaction};

use crate::store::StoreError;

/// What differs between the backends.
pub trait Backend: Database {
    /// The migrations, compiled into the binary.
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)];

    /// A write transaction holding the lock that serialises key creation and rotation across
    /// processes (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a table lock).
    fn begin_locked(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, StoreError>> + Send;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Tell other processes that `revision` was committed, where the backend can (delivered at
    /// commit); a no-op where servers poll.
    fn notify<'t>(
        tx: &'t mut Transaction<'_, Self>,
        revision: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 't;
}

/// A store over one backend's connection pool.
#[derive(Debug)]
pub struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

/// Migrations compiled into the binary, so a single file runs anywhere.
#[derive(Debug)]
pub(super) struct Embedded(pub &'static [(i64, &'static str, &'static str)]);

impl<'s> sqlx::migrate::MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> futures_core::future::BoxFuture<
        's,
        Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
    > {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(v, d, sql)| {
                    sqlx::migrate::Migration::new(
                        *v,
                        std::borrow::Cow::Borrowed(d),
                        sqlx::migrate::MigrationType::Simple,
                        sqlx::SqlSafeStr::into_sql_str(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

use std::str::FromStr as _;

use sqlx::Row as _;

use crate::keys::{Alg, Jwk, Kid, StoredKey};
use crate::oauth::api_key::{self, ApiKey, KeyHash};
use crate::oauth::trust::{SubjectPattern, Trust, TrustIssuer, TrustKeys};
use crate::oauth::{Client, ClientAuth, ClientId, ClientKeys, SecretId, StoredSecret};
use crate::secrets::SecretHash;
use crate::store::{
    audiences_from_json, audiences_to_json, scopes_from_text, AuditEvent, ClientUpdate, NewClient,
    Rotation,
};

impl<DB: Backend> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    DB::Connection: sqlx::migrate::Migrate,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB>,
    for<'q> Option<bool>: sqlx::Encode<'q, DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB>,
    for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
    for<'r> (String,): sqlx::FromRow<'r, DB::Row>,
    for<'s> &'s str: sqlx::ColumnIndex<DB::Row>,
{
    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = sqlx::migrate::Migrator::new(Embedded(DB::MIGRATIONS))
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn revision(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT revision FROM meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await?)
    }

    pub(crate) async fn load_clients(
        &self,
        limit: usize,
    ) -> Result<(Vec<Client>, bool), StoreError> {
        // One transaction, so clients and secrets are from the same moment. Rows are streamed,
        // never all held at once (a million clients would otherwise mean two million rows in
        // memory beside the clients); each secret finds its client by binary search on the
        // clients sorted by id (byte order, whatever the database's collation). At most
        // `limit` clients, the first by id; one more row tells whether that was all of them.
        let mut tx = self.pool.begin().await?;
        let mut clients: Vec<Client> = Vec::new();
        let mut complete = true;
        {
            // Clients with the same scopes share one copy of them.
            let mut scope_sets: std::collections::HashSet<crate::oauth::ScopeSet> =
                std::collections::HashSet::new();
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let mut rows = sqlx::query("SELECT * FROM clients ORDER BY id LIMIT $1")
                .bind(fetch)
                .fetch(&mut *tx);
            while let Some(row) = next_row(&mut rows).await {
                if clients.len() == limit {
                    complete = false;
                    break;
                }
                let mut c = Self::client_from_row(&row?)?;
                match scope_sets.get(&c.scopes) {
                    Some(shared) => c.scopes = shared.clone(),
                    None => {
                        scope_sets.insert(c.scopes.clone());
                    }
                }
                clients.push(c);
            }
        }
        // The range of ids read, in the database's own order (its collation), for the secrets.
        let range = match (clients.first(), clients.last()) {
            (Some(a), Some(b)) if !complete => {
                Some((a.id.as_str().to_owned(), b.id.as_str().to_owned()))
            }
            _ => None,
        };
        clients.sort_unstable_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        {
            let query = match &range {
                Some((first, last)) => sqlx::query(
                    "SELECT * FROM client_secrets WHERE client_id >= $1 AND client_id <= $2 \
                     ORDER BY created_at, id",
                )
                .bind(first.as_str())
                .bind(last.as_str()),
                None => sqlx::query("SELECT * FROM client_secrets ORDER BY created_at, id"),
            };
            let mut rows = query.fetch(&mut *tx);
            while let Some(row) = next_row(&mut rows).await {
                let row = row?;
                let client_id: String = row.try_get("client_id")?;
                if let Ok(at) = clients.binary_search_by(|c| c.id.as_str().cmp(client_id.as_str()))
                {
                    clients[at].secrets.push(Self::secret_from_row(&row)?);
                }
            }
        }
        tx.commit().await?;
        for c in &mut clients {
            c.secrets.shrink_to_fit();
        }
        Ok((clients, complete))
    }

    pub(crate) async fn longest_token_ttl(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(token_ttl) AS ttl FROM clients")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("ttl")?)
    }

    pub(crate) async fn scopes_in_use(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT scopes FROM clients WHERE enabled = $1")
                .bind(true)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub(crate) async fn credential_expiries(
        &self,
        now: i64,
    ) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>), StoreError> {
        // Both read through partial indexes on `expires_at` (migration 0010), so the cost
        // follows the number of expiring credentials, not of clients.
        let clients = sqlx::query(
            "SELECT id, expires_at FROM clients \
             WHERE expires_at IS NOT NULL AND expires_at > $1 AND enabled = $2",
        )
        .bind(now)
        .bind(true)
        .fetch_all(&self.pool)
        .await?;
        // A secret client's last usable secret's end; none when any usable secret never
        // expires (as `metrics::expiry`).
        let secrets = sqlx::query(
            "SELECT s.client_id AS id, MAX(s.expires_at) AS expires_at FROM client_secrets s \
             JOIN clients c ON c.id = s.client_id \
             WHERE s.client_id IN (SELECT client_id FROM client_secrets \
                                   WHERE expires_at IS NOT NULL AND expires_at > $1 AND revoked_at IS NULL) \
               AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $1) \
               AND c.enabled = $2 AND c.auth_method = 'client_secret' \
               AND (c.expires_at IS NULL OR c.expires_at > $1) \
             GROUP BY s.client_id HAVING COUNT(*) = COUNT(s.expires_at)",
        )
        .bind(now)
        .bind(true)
        .fetch_all(&self.pool)
        .await?;
        let pairs = |rows: Vec<DB::Row>| -> Result<Vec<(String, i64)>, StoreError> {
            rows.iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("expires_at")?)))
                .collect()
        };
        Ok((pairs(clients)?, pairs(secrets)?))
    }

    pub(crate) async fn list_clients_page(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Client>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT * FROM clients WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut clients = rows
            .iter()
            .map(Self::client_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(last) = clients.last().map(|c| c.id.as_str().to_owned()) {
            let secrets = sqlx::query(
                "SELECT * FROM client_secrets WHERE client_id > $1 AND client_id <= $2 \
                 ORDER BY created_at, id",
            )
            .bind(after)
            .bind(last)
            .fetch_all(&mut *tx)
            .await?;
            let by_id: std::collections::HashMap<String, usize> = clients
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.as_str().to_owned(), i))
                .collect();
            for row in &secrets {
                let client_id: String = row.try_get("client_id")?;
                if let Some(&i) = by_id.get(&client_id) {
                    clients[i].secrets.push(Self::secret_from_row(row)?);
                }
            }
        }
        tx.commit().await?;
        Ok(clients)
    }

    pub(crate) async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT * FROM clients WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut client = Self::client_from_row(&row)?;
        let secrets = sqlx::query(
            "SELECT * FROM client_secrets WHERE client_id = $1 ORDER BY created_at, id",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        client.secrets = secrets
            .iter()
            .map(Self::secret_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some(client))
    }

    pub(crate) async fn create_client(
        &self,
        c: &NewClient,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO clients (id, name, scopes, audiences, token_ttl, enabled, created_at, updated_at, expires_at, \
             auth_method, jwks, jwks_uri, claims, max_tokens_per_minute) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(c.scopes.to_string())
        .bind(audiences_to_json(&c.audiences))
        .bind(i64::from(c.token_ttl))
        .bind(true)
        .bind(now)
        .bind(now)
        .bind(c.expires_at)
        .bind(auth_columns(&c.auth).0)
        .bind(auth_columns(&c.auth).1)
        .bind(auth_columns(&c.auth).2)
        .bind(c.claims.to_json())
        .bind(c.max_tokens_per_minute.map(i64::from))
        .execute(&mut *tx)
        .await?;
        if let Some(secret) = &c.secret {
            sqlx::query(
                "INSERT INTO client_secrets (id, client_id, hash, created_at, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL)",
            )
            .bind(secret.id.as_str())
            .bind(c.id.as_str())
            .bind(secret.hash.as_str())
            .bind(secret.created_at)
            .bind(secret.expires_at)
            .execute(&mut *tx)
            .await?;
        }
        Self::commit_change(tx, audit).await?;
        Ok(())
    }

    pub(crate) async fn update_client(
        &self,
        id: &ClientId,
        u: &ClientUpdate,
        now: i64,
        audit: &AuditEvent,
        expect: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE clients SET name = COALESCE($1, name), scopes = COALESCE($2, scopes), \
             audiences = COALESCE($3, audiences), token_ttl = COALESCE($4, token_ttl), \
             enabled = COALESCE($5, enabled), updated_at = $6, \
             expires_at = CASE WHEN $7 THEN $8 ELSE expires_at END, \
             auth_method = COALESCE($10, auth_method), \
             jwks = CASE WHEN $11 THEN $12 ELSE jwks END, \
             jwks_uri = CASE WHEN $11 THEN $13 ELSE jwks_uri END, \
             claims = COALESCE($14, claims), \
             max_tokens_per_minute = CASE WHEN $15 THEN $16 ELSE max_tokens_per_minute END WHERE id = $9",
        )
        .bind(u.name.as_deref())
        .bind(u.scopes.as_ref().map(|s| s.to_string()))
        .bind(u.audiences.as_deref().map(audiences_to_json))
        .bind(u.token_ttl.map(i64::from))
        .bind(u.enabled)
        .bind(now)
        .bind(u.expires_at.is_some())
        .bind(u.expires_at.flatten())
        .bind(id.as_str())
        .bind(u.auth.as_ref().map(|a| auth_columns(a).0))
        .bind(u.auth.is_some())
        .bind(u.auth.as_ref().and_then(|a| auth_columns(a).1))
        .bind(u.auth.as_ref().and_then(|a| auth_columns(a).2))
        .bind(u.claims.as_ref().map(|c| c.to_json()))
        .bind(u.max_tokens_per_minute.is_some())
        .bind(u.max_tokens_per_minute.flatten().map(i64::from))
        .execute(&mut *tx)
        .await?;
        if matches!(u.auth, Some(ClientAuth::PrivateKeyJwt(_))) && DB::rows_affected(&r) > 0 {
            // A client switched to private_key_jwt holds no secret any more.
            sqlx::query("UPDATE client_secrets SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        Self::check_version(&mut tx, &r, id, expect).await?;
        Self::commit_if_changed(tx, &r, audit).await
    }

    pub(crate) async fn client_version(&self, id: &ClientId) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE((SELECT MAX(a.revision) FROM audit_events a WHERE a.client_id = c.id), 0) \
             FROM clients c WHERE c.id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// After a write to a client's row in `tx` (which holds that row's write lock from then on,
    /// so no other change to the client can commit in between): when `expect` is given and the
    /// client's version is not it, [`StoreError::Stale`]; the caller's `?` drops `tx`, which
    /// rolls the write back.
    async fn check_version(
        tx: &mut sqlx::Transaction<'_, DB>,
        result: &DB::QueryResult,
        id: &ClientId,
        expect: Option<i64>,
    ) -> Result<(), StoreError> {
        let Some(expect) = expect else {
            return Ok(());
        };
        if DB::rows_affected(result) == 0 {
            return Ok(());
        }
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(revision), 0) FROM audit_events WHERE client_id = $1",
        )
        .bind(id.as_str())
        .fetch_one(&mut **tx)
        .await?;
        if version == expect {
            Ok(())
        } else {
            Err(StoreError::Stale)
        }
    }

    /// Record assertion ids in one statement and one transaction (a group commit): returns, for
    /// each `(client, jti, expires_at)`, whether it was new. The caller removes duplicates
    /// within the batch first.
    pub(crate) async fn record_assertion_jtis(
        &self,
        batch: &[(ClientId, String, i64)],
    ) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Only placeholders are formatted into the text; every value is bound.
        let values: Vec<String> = (0..batch.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES {} \
             ON CONFLICT (client_id, jti) DO NOTHING RETURNING client_id, jti",
            values.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (client, jti, expires_at) in batch {
            query = query
                .bind(client.as_str().to_owned())
                .bind(jti.clone())
                .bind(*expires_at);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut fresh = std::collections::HashSet::with_capacity(rows.len());
        for row in &rows {
            let client: String = row.try_get("client_id")?;
            let jti: String = row.try_get("jti")?;
            fresh.insert((client, jti));
        }
        Ok(batch
            .iter()
            .map(|(c, j, _)| fresh.contains(&(c.as_str().to_owned(), j.clone())))
            .collect())
    }

    pub(crate) async fn purge_assertion_jtis(&self, now: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM assertion_jtis WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r))
    }

    pub(crate) async fn load_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::api_key_from_row).collect()
    }

    pub(crate) async fn get_api_key(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE hash = $1")
            .bind(api_key::to_hex(hash))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::api_key_from_row).transpose()
    }

    pub(crate) async fn create_api_key(
        &self,
        k: &ApiKey,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, hash, scopes, audiences, claims, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
        )
        .bind(k.id.as_str())
        .bind(k.name.as_str())
        .bind(api_key::to_hex(&k.hash))
        .bind(k.scopes.to_string())
        .bind(audiences_to_json(&k.audiences))
        .bind(k.claims.to_json())
        .bind(k.created_at)
        .bind(k.expires_at)
        .execute(&mut *tx)
        .await?;
        Self::commit_change(tx, audit).await
    }

    pub(crate) async fn revoke_api_key(
        &self,
        id: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        Self::commit_if_changed(tx, &r, audit).await
    }

    fn api_key_from_row(row: &DB::Row) -> Result<ApiKey, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            table: "api_keys",
            detail,
        };
        let hash: String = row.try_get("hash")?;
        Ok(ApiKey {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            hash: api_key::from_hex(&hash).ok_or_else(|| corrupt("hash".into()))?,
            scopes: scopes_from_text(&row.try_get::<String, _>("scopes")?)?,
            audiences: audiences_from_json(&row.try_get::<String, _>("audiences")?)?,
            claims: crate::oauth::claims::CustomClaims::from_json(
                &row.try_get::<String, _>("claims")?,
            )
            .map_err(|e| corrupt(e.to_string()))?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }

    pub(crate) async fn load_trusts(&self) -> Result<Vec<Trust>, StoreError> {
        let rows = sqlx::query("SELECT * FROM trusts ORDER BY created_at, name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::trust_from_row).collect()
    }

    pub(crate) async fn create_trust(
        &self,
        t: &Trust,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let (issuer, domain) = match &t.issuer {
            TrustIssuer::Issuer(i) => (Some(i.as_str()), None),
            TrustIssuer::SpiffeTrustDomain(d) => (None, Some(d.as_str())),
        };
        let (jwks_uri, jwks) = match &t.keys {
            TrustKeys::Discovery => (None, None),
            TrustKeys::JwksUri(u) => (Some(u.as_str()), None),
            TrustKeys::Jwks(j) => (None, Some(j.as_str())),
        };
        let claims: serde_json::Map<String, serde_json::Value> = t
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect();
        sqlx::query(
            "INSERT INTO trusts (id, name, issuer, spiffe_trust_domain, audience, subject, claims, jwks_uri, jwks, \
             max_token_age, client_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(t.id.as_str())
        .bind(t.name.as_str())
        .bind(issuer)
        .bind(domain)
        .bind(t.audience.as_str())
        .bind(t.subject.to_string())
        .bind(serde_json::Value::Object(claims).to_string())
        .bind(jwks_uri)
        .bind(jwks)
        .bind(t.max_token_age.map(i64::from))
        .bind(t.client_id.as_str())
        .bind(t.created_at)
        .execute(&mut *tx)
        .await?;
        Self::commit_change(tx, audit).await
    }

    pub(crate) async fn delete_trust(
        &self,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM trusts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Self::commit_if_changed(tx, &r, audit).await
    }

    pub(crate) async fn delete_client(
        &self,
        id: &ClientId,
        audit: &AuditEvent,
        expect: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        Self::check_version(&mut tx, &r, id, expect).await?;
        Self::commit_if_changed(tx, &r, audit).await
    }

    pub(crate) async fn add_secret(
        &self,
        client: &ClientId,
        secret: &StoredSecret,
        expire_others_at: Option<i64>,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE clients SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(client.as_str())
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&r) == 0 {
            return Ok(false);
        }
        if let Some(at) = expire_others_at {
            sqlx::query(
                "UPDATE client_secrets SET expires_at = $1 WHERE client_id = $2 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(at)
            .bind(client.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO client_secrets (id, client_id, hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(secret.id.as_str())
        .bind(client.as_str())
        .bind(secret.hash.as_str())
        .bind(secret.created_at)
        .bind(secret.expires_at)
        .execute(&mut *tx)
        .await?;
        Self::commit_change(tx, audit).await?;
        Ok(true)
    }

    pub(crate) async fn revoke_secret(
        &self,
        client: &ClientId,
        secret: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE client_secrets SET revoked_at = $1 WHERE client_id = $2 AND id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(client.as_str())
            .bind(secret)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&r) == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE clients SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(client.as_str())
            .execute(&mut *tx)
            .await?;
        Self::commit_change(tx, audit).await?;
        Ok(true)
    }

    pub(crate) async fn insert_first_key(
        &self,
        key: &StoredKey,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = DB::begin_locked(&self.pool).await?;
        let inserted = Self::insert_key_if_none(&mut tx, key, now).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    pub(crate) async fn rotate_key(
        &self,
        next: &StoredKey,
        retire_at: i64,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Rotation, StoreError> {
        let mut tx = DB::begin_locked(&self.pool).await?;
        let pending: Option<String> = sqlx::query_scalar(
            "SELECT kid FROM signing_keys WHERE activates_at > $1 AND (retires_at IS NULL OR retires_at > $2) LIMIT 1",
        )
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(kid) = pending {
            return Ok(Rotation::AlreadyPending(Kid::new(kid)));
        }
        // Every key that may sign until the new one activates stays published until the
        // tokens it signed have expired.
        sqlx::query("UPDATE signing_keys SET retires_at = $1 WHERE retires_at IS NULL")
            .bind(retire_at)
            .execute(&mut *tx)
            .await?;
        Self::insert_key(&mut tx, next).await?;
        Self::commit_change(tx, audit).await?;
        Ok(Rotation::Scheduled {
            retires_at: retire_at,
        })
    }

    pub(crate) async fn revoke_token(
        &self,
        jti: &str,
        client: &ClientId,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // The feed's number is taken under the counter row's lock, in the same transaction, so
        // revocations commit in number order and a reader that has seen N missed nothing below.
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query_scalar(
            "UPDATE meta SET revocation_seq = revocation_seq + 1 WHERE id = 1 RETURNING revocation_seq",
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO revoked_tokens (jti, client_id, expires_at, seq) VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(client.as_str())
            .bind(expires_at)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn revocations_since(
        &self,
        since: i64,
        upto: i64,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, jti, expires_at FROM revoked_tokens WHERE seq > $1 AND seq <= $2 AND expires_at > $3 \
             ORDER BY seq LIMIT $4",
        )
        .bind(since)
        .bind(upto)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("seq")?,
                    r.try_get("jti")?,
                    r.try_get("expires_at")?,
                ))
            })
            .collect()
    }

    pub(crate) async fn revocation_cursor(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT revocation_seq FROM meta WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub(crate) async fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    pub(crate) async fn purge_revocations(&self, now: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r))
    }

    pub(crate) async fn erase_retired_private_keys(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE retires_at IS NOT NULL AND retires_at <= $2 AND length(private_key) > 0")
            .bind(Vec::<u8>::new())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&r) > 0 {
            // Replicas reload their key lists, so none goes on seeing the key as sealed.
            Self::changed(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(DB::rows_affected(&r))
    }

    pub(crate) async fn list_audit(
        &self,
        client: Option<&str>,
        since: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, client_id, detail FROM audit_events \
             WHERE ($1 = '' OR client_id = $2) AND at >= $3 ORDER BY id",
        )
        .bind(client.unwrap_or(""))
        .bind(client.unwrap_or(""))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(AuditEvent {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    client_id: r.try_get("client_id")?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }

    pub(crate) async fn load_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::key_from_row).collect()
    }

    /// Inside a transaction that holds the backend's write lock: insert `key` unless a
    /// key is published at `now`.
    async fn insert_key_if_none(
        tx: &mut sqlx::Transaction<'_, DB>,
        key: &StoredKey,
        now: i64,
    ) -> Result<bool, StoreError> {
        let published: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM signing_keys WHERE retires_at IS NULL OR retires_at > $1",
        )
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        if published > 0 {
            return Ok(false);
        }
        Self::insert_key(tx, key).await?;
        Self::changed(tx).await?;
        Ok(true)
    }

    async fn insert_key(
        tx: &mut sqlx::Transaction<'_, DB>,
        key: &StoredKey,
    ) -> Result<(), StoreError> {
        let jwk =
            serde_json::to_string(&key.public_jwk).map_err(|e| StoreError::Other(e.to_string()))?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, activates_at, retires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(&key.sealed_private_key)
        .bind(jwk)
        .bind(key.created_at)
        .bind(key.activates_at)
        .bind(key.retires_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Finish an admin change: write its audit record, bump the change counter (telling
    /// listeners, where the backend can) and commit, all in the change's own
    /// transaction, so no write can forget either and neither exists without the other.
    async fn commit_change(
        mut tx: sqlx::Transaction<'_, DB>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let revision = Self::changed(&mut tx).await?;
        Self::insert_audit(&mut tx, audit, revision).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn clients_changed_since(
        &self,
        revision: i64,
    ) -> Result<Vec<ClientId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT client_id FROM audit_events WHERE revision > $1 AND client_id IS NOT NULL",
        )
        .bind(revision)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.iter().filter_map(|id| ClientId::parse(id)).collect())
    }

    /// [`Self::commit_change`] when `result` changed a row: `Ok(true)`; otherwise the
    /// transaction is rolled back (dropped) and nothing is recorded: `Ok(false)`.
    async fn commit_if_changed(
        tx: sqlx::Transaction<'_, DB>,
        result: &DB::QueryResult,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        if DB::rows_affected(result) == 0 {
            return Ok(false);
        }
        Self::commit_change(tx, audit).await?;
        Ok(true)
    }

    /// The audit record of a change (see `commit_change`).
    async fn insert_audit(
        tx: &mut sqlx::Transaction<'_, DB>,
        e: &AuditEvent,
        revision: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit_events (at, actor, action, client_id, detail, revision) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(e.at)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(e.client_id.as_deref())
            .bind(e.detail.to_string())
            .bind(revision)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Bump the change counter (and tell listeners, where the backend can), so every
    /// server reloads. Revocations do not bump it: they are read from the database per
    /// request, not held in the snapshot.
    async fn changed(tx: &mut sqlx::Transaction<'_, DB>) -> Result<i64, StoreError> {
        let revision: i64 = sqlx::query_scalar(
            "UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        )
        .fetch_one(&mut **tx)
        .await?;
        DB::notify(tx, revision).await?;
        Ok(revision)
    }

    fn client_from_row(row: &DB::Row) -> Result<Client, StoreError> {
        let id: String = row.try_get("id")?;
        let ttl: i64 = row.try_get("token_ttl")?;
        Ok(Client {
            id: ClientId::parse(&id).ok_or_else(|| StoreError::Corrupt {
                table: "clients",
                detail: "bad id".into(),
            })?,
            name: row.try_get("name")?,
            scopes: scopes_from_text(&row.try_get::<String, _>("scopes")?)?,
            audiences: audiences_from_json(&row.try_get::<String, _>("audiences")?)?,
            token_ttl: u32::try_from(ttl).map_err(|_| StoreError::Corrupt {
                table: "clients",
                detail: "bad token_ttl".into(),
            })?,
            enabled: row.try_get("enabled")?,
            expires_at: row.try_get("expires_at")?,
            auth: auth_from_row(
                &row.try_get::<String, _>("auth_method")?,
                row.try_get("jwks")?,
                row.try_get("jwks_uri")?,
            )?,
            claims: crate::oauth::claims::CustomClaims::from_json(
                &row.try_get::<String, _>("claims")?,
            )
            .map_err(|e| StoreError::Corrupt {
                table: "clients",
                detail: e.to_string(),
            })?,
            max_tokens_per_minute: row
                .try_get::<Option<i64>, _>("max_tokens_per_minute")?
                .and_then(|n| u32::try_from(n).ok()),
            secrets: Vec::new(),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn trust_from_row(row: &DB::Row) -> Result<Trust, StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            table: "trusts",
            detail: detail.to_owned(),
        };
        let issuer: Option<String> = row.try_get("issuer")?;
        let domain: Option<String> = row.try_get("spiffe_trust_domain")?;
        let issuer = match (issuer, domain) {
            (Some(i), None) => TrustIssuer::Issuer(i),
            (None, Some(d)) => TrustIssuer::SpiffeTrustDomain(d),
            _ => return Err(corrupt("needs exactly one of issuer and trust domain")),
        };
        let jwks_uri: Option<String> = row.try_get("jwks_uri")?;
        let jwks: Option<String> = row.try_get("jwks")?;
        let keys = match (jwks_uri, jwks) {
            (None, None) => TrustKeys::Discovery,
            (Some(u), None) => TrustKeys::JwksUri(u),
            (None, Some(j)) => TrustKeys::Jwks(j),
            _ => return Err(corrupt("both jwks and jwks_uri")),
        };
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&row.try_get::<String, _>("claims")?)
                .map_err(|_| corrupt("claims"))?;
        let max_age: Option<i64> = row.try_get("max_token_age")?;
        let client: String = row.try_get("client_id")?;
        Ok(Trust {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            issuer,
            audience: row.try_get("audience")?,
            subject: SubjectPattern::parse(&row.try_get::<String, _>("subject")?)
                .ok_or_else(|| corrupt("subject"))?,
            claims: claims
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            keys,
            max_token_age: max_age.and_then(|a| u32::try_from(a).ok()),
            client_id: ClientId::parse(&client).ok_or_else(|| corrupt("client_id"))?,
            created_at: row.try_get("created_at")?,
        })
    }

    fn secret_from_row(row: &DB::Row) -> Result<StoredSecret, StoreError> {
        Ok(StoredSecret {
            id: SecretId::new(row.try_get("id")?),
            hash: SecretHash::from_stored(row.try_get("hash")?),
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }

    fn key_from_row(row: &DB::Row) -> Result<StoredKey, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            table: "signing_keys",
            detail,
        };
        let alg: String = row.try_get("alg")?;
        let jwk: String = row.try_get("public_jwk")?;
        Ok(StoredKey {
            kid: Kid::new(row.try_get("kid")?),
            alg: Alg::from_str(&alg).map_err(|e| corrupt(e.to_string()))?,
            sealed_private_key: row.try_get("private_key")?,
            public_jwk: serde_json::from_str::<Jwk>(&jwk).map_err(|e| corrupt(e.to_string()))?,
            created_at: row.try_get("created_at")?,
            activates_at: row.try_get("activates_at")?,
            retires_at: row.try_get("retires_at")?,
        })
    }
}

/// The `auth_method`, `jwks` and `jwks_uri` columns of a client.
fn auth_columns(auth: &ClientAuth) -> (&'static str, Option<&str>, Option<&str>) {
    match auth {
        ClientAuth::Secret => ("client_secret", None, None),
        ClientAuth::PrivateKeyJwt(ClientKeys::Jwks(j)) => ("private_key_jwt", Some(j), None),
        ClientAuth::PrivateKeyJwt(ClientKeys::JwksUri(u)) => ("private_key_jwt", None, Some(u)),
    }
}

fn auth_from_row(
    method: &str,
    jwks: Option<String>,
    jwks_uri: Option<String>,
) -> Result<ClientAuth, StoreError> {
    match (method, jwks, jwks_uri) {
        ("client_secret", _, _) => Ok(ClientAuth::Secret),
        ("private_key_jwt", Some(j), None) => Ok(ClientAuth::PrivateKeyJwt(ClientKeys::Jwks(j))),
        ("private_key_jwt", None, Some(u)) => Ok(ClientAuth::PrivateKeyJwt(ClientKeys::JwksUri(u))),
        (other, _, _) => Err(StoreError::Corrupt {
            table: "clients",
            detail: format!("auth method {other:?} without exactly one of jwks and jwks_uri"),
        }),
    }
}

/// The next row of a streamed query.
async fn next_row<T>(
    rows: &mut std::pin::Pin<Box<dyn futures_core::Stream<Item = T> + Send + '_>>,
) -> Option<T> {
    std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await
}
