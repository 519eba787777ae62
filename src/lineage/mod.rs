//! The lineage database (`.pedigree/lineage.db`): SQLite through sqlx, schema in
//! `migrations/`. Runs, step runs, artifacts, the artifact → step run → artifact
//! edges, params, metrics, facets, key manifests, and two caches (file hashes by
//! stat, object fingerprints).
//!
//! Two handles, split by what they may do:
//! - [`ReadDb`] reads: the run history, the lineage graph, the cache lookups and
//!   the integrity queries. [`ReadDb::open`] (also reached as [`Db::open_read_only`])
//!   opens an existing database with SQLite `mode=ro`: it never creates, migrates
//!   or writes, so the read commands (`runs`, `show`, `log`, `diff`, `lineage`,
//!   `recommend`, `verify`) and the TUI hold it and cannot write by type.
//! - [`Db`] is a `ReadDb` that may also write (runs, step runs, caches, gc marks).
//!   [`Db::open`] creates and migrates. It derefs to `ReadDb`, so every read is
//!   available on it under the same name.
//!
//! Behind both is a [`Backend`]. It is an enum and not a trait object: the set of
//! databases is closed and compiled in (like the built-in step kinds), async
//! methods on a `dyn` trait would need boxing on every query, and a second variant
//! (PostgreSQL) turns each query that only speaks SQLite into a compile error inside
//! this module, which is the list of what to port. Callers name only `Db`, `ReadDb`
//! and the row types, so adding a backend touches no caller.
//!
//! The queries live in one file per concern: [`rows`] (what they return), `record`
//! (run and step writes), `cache` (lookup, fingerprints, stat cache, manifests),
//! `graph` (ancestry and descent), [`reference`] (the one artifact-reference
//! language), `browse` (pages for the TUI and the read commands) and `integrity`
//! (gc and verify).
//!
//! Writes go through short `BEGIN IMMEDIATE` transactions with a busy timeout, so
//! concurrent `pedigree` processes queue instead of failing with "database is
//! locked". WAL mode lets readers (the TUI, `pedigree runs`) never block writers.

mod browse;
mod cache;
mod graph;
mod integrity;
mod liveness;
mod outbox;
mod record;
pub mod reference;
pub mod rows;
mod status;
pub mod time;

#[cfg(test)]
mod tests;

pub use liveness::{hostname, process_alive};
pub use outbox::{OutboxCounts, QueuedEvent, sender_id};
pub use reference::{ArtifactRef, PathContent, RefError, Resolved, RunRef, Via};
pub use rows::*;
pub use status::{Status, UnknownStatus};

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
    #[error(transparent)]
    Status(#[from] UnknownStatus),
}

impl From<std::convert::Infallible> for LineageError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// How every write transaction begins: the write lock is taken up front.
const BEGIN: &str = "BEGIN IMMEDIATE";

/// A list of ids as a JSON array, for `json_each(?)`.
fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// A list of hashes as a JSON array, for `json_each(?)`.
fn hashes_json(hashes: &[String]) -> String {
    serde_json::to_string(hashes).unwrap_or_else(|_| "[]".into())
}

/// How long a writer waits for another process's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database behind a handle. Only SQLite today; see the module doc for why
/// this is an enum.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite(SqlitePool),
}

/// A read-only handle on the lineage database: every read and graph query, no
/// write. See the module doc.
#[derive(Clone, Debug)]
pub struct ReadDb {
    backend: Backend,
    /// The step run columns this database has: an older database opened for
    /// reading (never migrated by a reader) lacks the newest ones, which read as NULL.
    step_run_columns: &'static str,
}

/// Every column of `step_runs` a [`StepRunRow`] reads, prefixed `s.`.
const STEP_RUN_COLUMNS: &str = "s.id, s.run_id, s.step, s.kind, s.step_key, s.status, s.reason, s.cached_from, s.started_at, s.finished_at, s.error, s.stderr_tail, s.log_hash, s.remote_source";
/// The same for a database from before the remote cache (migration 20261206000000).
const STEP_RUN_COLUMNS_BEFORE_REMOTE: &str = "s.id, s.run_id, s.step, s.kind, s.step_key, s.status, s.reason, s.cached_from, s.started_at, s.finished_at, s.error, s.stderr_tail, s.log_hash, NULL AS remote_source";

/// A handle that may also write. Derefs to [`ReadDb`] for the reads.
#[derive(Clone, Debug)]
pub struct Db {
    read: ReadDb,
    /// Set when OpenLineage events are on: each write then queues its events.
    openlineage: std::sync::Arc<std::sync::OnceLock<crate::openlineage::Context>>,
}

impl std::ops::Deref for Db {
    type Target = ReadDb;

    fn deref(&self) -> &ReadDb {
        &self.read
    }
}

impl ReadDb {
    /// Open an existing database for reading only: no creation, no migration, no
    /// write (SQLite `mode=ro`).
    pub async fn open(path: &Path) -> Result<ReadDb, LineageError> {
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
        // A run killed while it created the database can leave the file without its
        // schema, or with only its first migrations. Nothing was recorded in it (a
        // run's row is written after the migrations), so it reads as an empty history:
        // an in-memory database with the schema, so the file is still never written.
        //
        // Killed at the very start, while it switched the new file to WAL (the only
        // write pedigree makes with a rollback journal), it leaves a hot journal that
        // only a writer may roll back: SQLite refuses to read the file until then
        // (SQLITE_READONLY_ROLLBACK). Read as it is, journal ignored, such a file has
        // no run in it; any other file with a hot journal stays an error.
        let unused = match never_used(&pool).await {
            Ok(unused) => unused,
            Err(e) if is_hot_journal(&e) && never_used_ignoring_journal(path).await => true,
            Err(source) => {
                return Err(LineageError::Open {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if unused {
            pool.close().await;
            return ReadDb::empty().await.map_err(|source| LineageError::Open {
                path: path.to_owned(),
                source,
            });
        }
        let has_remote_source: bool = sqlx::query_scalar(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('step_runs') WHERE name = 'remote_source'",
        )
        .fetch_one(&pool)
        .await
        .map_err(|source| LineageError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(ReadDb {
            backend: Backend::Sqlite(pool),
            step_run_columns: if has_remote_source {
                STEP_RUN_COLUMNS
            } else {
                STEP_RUN_COLUMNS_BEFORE_REMOTE
            },
        })
    }

    /// The columns to select for a [`StepRunRow`] from `step_runs s`.
    pub(crate) fn step_run_columns(&self) -> &'static str {
        self.step_run_columns
    }

    /// An empty history with the current schema, in memory.
    async fn empty() -> Result<ReadDb, sqlx::Error> {
        // One connection that is never closed: each connection to `:memory:` is its
        // own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await?;
        MIGRATOR.run(&pool).await.map_err(sqlx::Error::from)?;
        Ok(ReadDb {
            backend: Backend::Sqlite(pool),
            step_run_columns: STEP_RUN_COLUMNS,
        })
    }

    /// The SQLite pool, for benches and tests that build fixtures with raw SQL.
    /// Production code goes through the query methods, so that a second backend
    /// needs no change outside this module.
    pub fn pool(&self) -> &SqlitePool {
        match &self.backend {
            Backend::Sqlite(pool) => pool,
        }
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
        }
    }
}

/// Whether the database at `pool` holds no history and is not fully migrated: no
/// `runs` table, or fewer migrations applied than this build knows and no run row.
/// An older database that holds runs is read as it is (columns it lacks read as
/// NULL: `ReadDb::step_run_columns`). A damaged file is an error, never an empty
/// history.
async fn never_used(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let has_table = |name: &'static str| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .map(|n| n > 0)
    };
    if !has_table("runs").await? {
        return Ok(true);
    }
    let applied: i64 = if has_table("_sqlx_migrations").await? {
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?
    } else {
        0
    };
    let known = MIGRATOR.iter().count() as i64;
    if applied >= known {
        return Ok(false);
    }
    let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
        .fetch_one(pool)
        .await?;
    Ok(runs == 0)
}

/// Whether the file at `path`, read as it is (`immutable`: no journal, no lock),
/// was never used. False when it cannot be read that way either.
async fn never_used_ignoring_journal(path: &Path) -> bool {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true);
    let Ok(pool) = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
    else {
        return false;
    };
    let unused = never_used(&pool).await.unwrap_or(false);
    pool.close().await;
    unused
}

/// SQLite's SQLITE_READONLY_ROLLBACK: a read-only connection met a hot journal.
fn is_hot_journal(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "776")
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
        Ok(Db {
            read: ReadDb {
                backend: Backend::Sqlite(pool),
                step_run_columns: STEP_RUN_COLUMNS,
            },
            openlineage: Default::default(),
        })
    }

    /// Open an existing database for reading only (no migration, no creation).
    /// The same as [`ReadDb::open`].
    pub async fn open_read_only(path: &Path) -> Result<ReadDb, LineageError> {
        ReadDb::open(path).await
    }

    /// A read-only view of this handle (the same connection).
    pub fn reader(&self) -> &ReadDb {
        &self.read
    }
}
