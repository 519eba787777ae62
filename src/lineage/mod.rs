//! The lineage database (`.pedigree/lineage.db`): SQLite through sqlx, schema in
//! `migrations/`. Runs, step runs, artifacts, the artifact → step run → artifact
//! edges, params, metrics, facets, key manifests, and two caches (file hashes by
//! stat, object fingerprints).
//!
//! Writes go through short `BEGIN IMMEDIATE` transactions with a busy timeout, so
//! concurrent `pedigree` processes queue instead of failing with "database is
//! locked". WAL mode lets readers (the TUI, `pedigree runs`) never block writers.

mod queries;
mod read;
pub mod time;

pub use queries::*;
pub use read::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("lineage database `{path}`: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate lineage database `{path}`: {source}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("lineage database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("cannot lock `{path}`: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lineage database holds malformed JSON in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// How long a writer waits for another process's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on the lineage database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Open (creating and migrating if needed) the database at `path`.
    /// `lock_dir` holds the lock that serialises migrations between processes.
    pub async fn open(path: &Path, lock_dir: &Path) -> Result<Db, LineageError> {
        // Two processes opening a fresh workspace would race to switch it to WAL and
        // to apply the first migration; a file lock around both makes the second wait.
        let lock_path = lock_dir.join("migrate.lock");
        let lock = std::fs::File::create(&lock_path).map_err(|source| LineageError::Lock {
            path: lock_path.clone(),
            source,
        })?;
        lock.lock().map_err(|source| LineageError::Lock {
            path: lock_path.clone(),
            source,
        })?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Checkpoint the WAL every 64 MiB instead of every 4 MiB: a run writes a
            // row per step, and checkpointing (copy + fsync) on every run would put
            // the whole database's write-back on each run's critical path.
            .pragma("wal_autocheckpoint", "16384");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|source| LineageError::Open {
                path: path.to_owned(),
                source,
            })?;
        let migrated = MIGRATOR.run(&pool).await;
        drop(lock);
        migrated.map_err(|source| LineageError::Migrate {
            path: path.to_owned(),
            source,
        })?;
        Ok(Db { pool })
    }

    /// Open an existing database for reading only (no migration, no creation).
    pub async fn open_read_only(path: &Path) -> Result<Db, LineageError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .map_err(|source| LineageError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(Db { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
