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
    (
        5,
        "secretless",
        include_str!("../../../../migrations/sqlite/0005_secretless.sql"),
    ),
    (
        6,
        "resource_side",
        include_str!("../../../../migrations/sqlite/0006_resource_side.sql"),
    ),
    (
        7,
        "abuse",
        include_str!("../../../../migrations/sqlite/0007_abuse.sql"),
    ),
    (
        8,
        "incremental",
        include_str!("../../../../migrations/sqlite/0008_incremental.sql"),
    ),
    (
        9,
        "admin_api",
        include_str!("../../../../migrations/sqlite/0009_admin_api.sql"),
    ),
    (
        10,
        "client_cache",
        include_str!("../../../../migrations/sqlite/0010_client_cache.sql"),
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
        make_private(opts.get_filename());
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

/// Keep the database to the server's user: the file is created 0600 before SQLite opens it
/// (SQLite gives its `-wal` and `-shm` files the database file's mode), an existing database,
/// `-wal` and `-shm` are set to 0600 (a database left 0644 by an earlier version), and a data
/// directory that others can enter is tightened to 0700 when this user owns it; otherwise
/// (Kubernetes `fsGroup` volumes are group-writable by design) it is left as it is, with a
/// warning. Failures are warnings too: the database still opens, or fails with its own error.
#[cfg(unix)]
fn make_private(db: &std::path::Path) {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
    if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
        return;
    }
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(meta) = std::fs::metadata(dir) {
            if meta.mode() & 0o077 != 0 {
                let own = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
                if own == Some(meta.uid()) {
                    let mut perms = meta.permissions();
                    perms.set_mode(meta.mode() & 0o7700);
                    match std::fs::set_permissions(dir, perms) {
                        Ok(()) => {
                            tracing::info!(dir = %dir.display(), "data directory tightened to owner-only")
                        }
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the data directory owner-only")
                        }
                    }
                } else {
                    tracing::warn!(
                        dir = %dir.display(),
                        mode = format!("{:o}", meta.mode() & 0o7777),
                        "the data directory is open to other users and not owned by this one; left as it is"
                    );
                }
            }
        }
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)
    {
        tracing::warn!(db = %db.display(), error = %e, "cannot create the database file");
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = std::path::PathBuf::from(name);
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.mode() & 0o077 != 0 {
                if let Err(e) =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                {
                    tracing::warn!(file = %path.display(), error = %e, "cannot make the file owner-only");
                }
            }
        }
    }
}

#[cfg(not(unix))]
fn make_private(_db: &std::path::Path) {}
