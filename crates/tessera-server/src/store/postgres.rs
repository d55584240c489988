//! The PostgreSQL backend, for several replicas behind one database.

use std::sync::Arc;
use std::time::Duration;

use std::str::FromStr as _;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Pool, Postgres, Transaction};

use super::sql::{Backend, SqlStore};
use super::StoreError;

const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "lifecycle",
        include_str!("../../../../migrations/postgres/0002_lifecycle.sql"),
    ),
    (
        3,
        "revocation",
        include_str!("../../../../migrations/postgres/0003_revocation.sql"),
    ),
    (
        4,
        "audit",
        include_str!("../../../../migrations/postgres/0004_audit.sql"),
    ),
    (
        5,
        "secretless",
        include_str!("../../../../migrations/postgres/0005_secretless.sql"),
    ),
    (
        6,
        "resource_side",
        include_str!("../../../../migrations/postgres/0006_resource_side.sql"),
    ),
    (
        7,
        "abuse",
        include_str!("../../../../migrations/postgres/0007_abuse.sql"),
    ),
    (
        8,
        "incremental",
        include_str!("../../../../migrations/postgres/0008_incremental.sql"),
    ),
    (
        9,
        "admin_api",
        include_str!("../../../../migrations/postgres/0009_admin_api.sql"),
    ),
    (
        10,
        "client_cache",
        include_str!("../../../../migrations/postgres/0010_client_cache.sql"),
    ),
];

/// The channel on which every change is announced (`NOTIFY`), so replicas reload at once
/// instead of waiting for their next poll.
pub const CHANGES_CHANNEL: &str = "tessera_changes";

/// PostgreSQL store.
pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connect to `url`. Connections are made lazily, so a database that is down at this moment
    /// surfaces as an error on first use (start-up uses it at once, and fails with one line).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?
            .application_name("tessera");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            // Bounded waits: an unreachable database is an error within seconds, never a hang.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }

    /// Listen for change notifications and wake `wake` on each, reconnecting after failures.
    pub(super) fn spawn_listener(
        &self,
        wake: Arc<tokio::sync::Notify>,
    ) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                match PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if listener.listen(CHANGES_CHANNEL).await.is_ok() {
                            // Changes may have happened while we were not listening.
                            wake.notify_one();
                            while listener.recv().await.is_ok() {
                                wake.notify_one();
                            }
                        }
                        tracing::debug!("change listener lost its connection; reconnecting");
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "change listener cannot connect; retrying")
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}

impl Backend for Postgres {
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)] = POSTGRES_MIGRATIONS;

    /// A transaction holding a lock on `signing_keys` that serialises key creation and rotation
    /// across replicas: the second waits, then sees what the first did.
    async fn begin_locked(
        pool: &Pool<Postgres>,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = pool.begin().await?;
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn notify(tx: &mut Transaction<'_, Postgres>, revision: i64) -> Result<(), StoreError> {
        // Delivered at commit, to every replica LISTENing.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(revision.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
