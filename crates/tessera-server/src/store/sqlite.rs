//! The embedded SQLite backend (the default: a file, no set-up).

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};

use super::sql::{Backend, SqlStore};
use super::StoreError;

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "lifecycle",
        include_str!("../../../../migrations/sqlite/0002_lifecycle.sql"),
    ),
    (
        3,
        "revocation",
        include_str!("../../../../migrations/sqlite/0003_revocation.sql"),
    ),
    (
        4,
        "audit",
        include_str!("../../../../migrations/sqlite/0004_audit.sql"),
    ),
];

/// SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
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
            .foreign_keys(true)
            // Deleted and overwritten content (an erased private key) is zeroed in the file
            // rather than left in free pages.
            .pragma("secure_delete", "on");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }
}

impl Backend for Sqlite {
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)] = SQLITE_MIGRATIONS;

    /// A write transaction holding the database's write lock from its first statement
    /// (IMMEDIATE), so two processes cannot both read "no key" / "no rotation" and both write.
    async fn begin_locked(pool: &Pool<Sqlite>) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// SQLite has no notifications: servers find changes by polling the revision.
    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn notify(_tx: &mut Transaction<'_, Sqlite>, _revision: i64) -> Result<(), StoreError> {
        Ok(())
    }
}
