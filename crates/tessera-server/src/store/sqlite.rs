//! The embedded SQLite backend.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use futures_core::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{
    audiences_from_json, audiences_to_json, scopes_from_text, ClientUpdate, NewClient, StoreError,
};
use crate::keys::{Alg, Jwk, Kid, StoredKey};
use crate::oauth::{Client, ClientId, SecretId, StoredSecret};
use crate::secrets::SecretHash;

/// Migrations compiled into the binary, so a single file runs anywhere.
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(d),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial",
    include_str!("../../../../migrations/sqlite/0001_initial.sql"),
)];

/// SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating if missing) the database at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            // WAL lets the CLI write while a server reads; the busy timeout makes concurrent
            // writers wait for each other instead of failing.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator::new(Embedded(MIGRATIONS))
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn revision(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT revision FROM meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await?)
    }

    pub(super) async fn load_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        let secrets = sqlx::query("SELECT * FROM client_secrets ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        let mut clients = rows
            .iter()
            .map(client_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let by_id: std::collections::HashMap<String, usize> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str().to_owned(), i))
            .collect();
        for row in &secrets {
            let client_id: String = row.try_get("client_id")?;
            if let Some(&i) = by_id.get(&client_id) {
                clients[i].secrets.push(secret_from_row(row)?);
            }
        }
        Ok(clients)
    }

    pub(super) async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM clients WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut client = client_from_row(&row)?;
        let secrets =
            sqlx::query("SELECT * FROM client_secrets WHERE client_id = ? ORDER BY created_at, id")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?;
        client.secrets = secrets
            .iter()
            .map(secret_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some(client))
    }

    pub(super) async fn create_client(&self, c: &NewClient, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO clients (id, name, scopes, audiences, token_ttl, enabled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(c.scopes.to_string())
        .bind(audiences_to_json(&c.audiences))
        .bind(i64::from(c.token_ttl))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO client_secrets (id, client_id, hash, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, NULL)")
            .bind(&c.secret.id.0)
            .bind(c.id.as_str())
            .bind(c.secret.hash.as_str())
            .bind(c.secret.created_at)
            .bind(c.secret.expires_at)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn update_client(
        &self,
        id: &ClientId,
        u: &ClientUpdate,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE clients SET name = COALESCE(?, name), scopes = COALESCE(?, scopes), \
             audiences = COALESCE(?, audiences), token_ttl = COALESCE(?, token_ttl), \
             enabled = COALESCE(?, enabled), updated_at = ? WHERE id = ?",
        )
        .bind(u.name.as_deref())
        .bind(u.scopes.as_ref().map(|s| s.to_string()))
        .bind(u.audiences.as_deref().map(audiences_to_json))
        .bind(u.token_ttl.map(i64::from))
        .bind(u.enabled)
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn load_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub(super) async fn insert_first_key(
        &self,
        key: &StoredKey,
        now: i64,
    ) -> Result<bool, StoreError> {
        // BEGIN IMMEDIATE takes the write lock before reading, so two processes cannot both see
        // "no key" and both insert one.
        let mut conn = self.pool.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let result = async {
            let published: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM signing_keys WHERE retires_at IS NULL OR retires_at > ?",
            )
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
            if published > 0 {
                return Ok::<bool, sqlx::Error>(false);
            }
            insert_key(&mut conn, key).await?;
            sqlx::query("UPDATE meta SET revision = revision + 1 WHERE id = 1")
                .execute(&mut *conn)
                .await?;
            Ok(true)
        }
        .await;
        match result {
            Ok(inserted) => {
                sqlx::query("COMMIT").execute(&mut *conn).await?;
                Ok(inserted)
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e.into())
            }
        }
    }
}

async fn insert_key(conn: &mut sqlx::SqliteConnection, key: &StoredKey) -> Result<(), sqlx::Error> {
    let jwk =
        serde_json::to_string(&key.public_jwk).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, activates_at, retires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&key.kid.0)
    .bind(key.alg.as_str())
    .bind(&key.sealed_private_key)
    .bind(jwk)
    .bind(key.created_at)
    .bind(key.activates_at)
    .bind(key.retires_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn bump(tx: &mut Transaction<'_, Sqlite>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE meta SET revision = revision + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn client_from_row(row: &SqliteRow) -> Result<Client, StoreError> {
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
        secrets: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn secret_from_row(row: &SqliteRow) -> Result<StoredSecret, StoreError> {
    Ok(StoredSecret {
        id: SecretId(row.try_get("id")?),
        hash: SecretHash::from_stored(row.try_get("hash")?),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<StoredKey, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        table: "signing_keys",
        detail,
    };
    let alg: String = row.try_get("alg")?;
    let jwk: String = row.try_get("public_jwk")?;
    Ok(StoredKey {
        kid: Kid(row.try_get("kid")?),
        alg: Alg::from_str(&alg).map_err(corrupt)?,
        sealed_private_key: row.try_get("private_key")?,
        public_jwk: serde_json::from_str::<Jwk>(&jwk).map_err(|e| corrupt(e.to_string()))?,
        created_at: row.try_get("created_at")?,
        activates_at: row.try_get("activates_at")?,
        retires_at: row.try_get("retires_at")?,
    })
}
