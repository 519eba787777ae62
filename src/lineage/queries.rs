//! Small async functions, one per query, on [`Db`].

use serde::Serialize;
use sqlx::{FromRow, Row};

use super::{Db, LineageError, time};
use crate::store::{Fingerprint, Stored};

type Result<T> = std::result::Result<T, LineageError>;

const BEGIN: &str = "BEGIN IMMEDIATE";

/// What a new run records about itself.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub workflow: String,
    pub workflow_path: String,
    pub workflow_hash: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub params_json: String,
    pub args_json: String,
    pub host: String,
    pub user: String,
}

/// An artifact to record: where it is in the store and what it is.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub stored: Stored,
    pub kind: String,
    pub media_type: String,
}

/// One output of a step run.
#[derive(Debug, Clone)]
pub struct NewOutput {
    pub slot: String,
    pub name: String,
    pub artifact: NewArtifact,
    pub fingerprint: Option<Fingerprint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub step: Option<i64>,
}

/// Everything recorded when a step run succeeds.
#[derive(Debug, Clone, Default)]
pub struct Success {
    pub outputs: Vec<NewOutput>,
    pub params: Vec<(String, String)>,
    pub metrics: Vec<Metric>,
    /// (artifact it describes, if any; name; JSON)
    pub facets: Vec<(Option<String>, String, String)>,
    pub stderr_tail: Option<String>,
    pub log_hash: Option<String>,
}

/// A recorded output of a cached step run, with what is needed to check it.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct OutputRow {
    pub slot: String,
    pub name: String,
    pub artifact_hash: String,
    pub kind: String,
    pub media_type: String,
    pub is_tree: bool,
    pub size: i64,
    pub content_size: i64,
    #[serde(skip)]
    pub fp_ino: Option<i64>,
    #[serde(skip)]
    pub fp_ctime_ns: Option<i64>,
}

impl OutputRow {
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        Some(Fingerprint {
            ino: self.fp_ino? as u64,
            ctime_ns: self.fp_ctime_ns?,
        })
    }

    pub fn artifact(&self) -> NewArtifact {
        NewArtifact {
            stored: Stored {
                hash: self.artifact_hash.clone(),
                size: self.size as u64,
                content_size: self.content_size as u64,
                is_tree: self.is_tree,
            },
            kind: self.kind.clone(),
            media_type: self.media_type.clone(),
        }
    }
}

/// A step run satisfied from the cache, to record.
#[derive(Debug, Clone)]
pub struct CachedRecord {
    pub step: String,
    pub kind: String,
    pub key: String,
    pub reason: String,
    pub cached_from: i64,
    /// (slot, artifact hash)
    pub inputs: Vec<(String, String)>,
    /// (slot, artifact hash, file name)
    pub outputs: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, FromRow)]
struct LookupRow {
    step_run_id: i64,
    #[sqlx(flatten)]
    output: OutputRow,
}

#[derive(Debug, Clone, FromRow)]
struct KeyedLookupRow {
    step_key: String,
    #[sqlx(flatten)]
    row: LookupRow,
}

/// The last successful step run with a given key and its outputs.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub step_run_id: i64,
    pub outputs: Vec<OutputRow>,
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub workflow: String,
    pub workflow_path: String,
    pub workflow_hash: String,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub params_json: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub host: String,
    pub user: String,
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct RunSummaryRow {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub run: RunRow,
    pub ran: i64,
    pub cached: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct StepRunRow {
    pub id: i64,
    pub run_id: i64,
    pub step: String,
    pub kind: String,
    pub step_key: Option<String>,
    pub status: String,
    pub reason: String,
    pub cached_from: Option<i64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub stderr_tail: Option<String>,
    pub log_hash: Option<String>,
}

/// A cached file hash (see `engine::hashing`).
#[derive(Debug, Clone, FromRow)]
pub struct FileHashRow {
    pub path: String,
    pub dev: i64,
    pub ino: i64,
    pub size: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub hash: String,
}

/// One edge of the lineage graph, as the recursive queries return it.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct LineageEdge {
    pub depth: i64,
    /// The artifact on the near side (the output when going up, the input going down).
    pub from_hash: String,
    pub step_run_id: i64,
    pub run_id: i64,
    pub step: String,
    pub slot_from: String,
    pub slot_to: String,
    /// The artifact on the far side.
    pub to_hash: String,
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct ArtifactRow {
    pub hash: String,
    pub kind: String,
    pub media_type: String,
    pub is_tree: bool,
    pub size: i64,
    pub content_size: i64,
    pub created_at: String,
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct RunInputRow {
    pub run_id: i64,
    pub name: String,
    pub path: String,
    pub artifact_hash: String,
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct FacetRow {
    pub step_run_id: i64,
    pub artifact_hash: Option<String>,
    pub name: String,
    pub json: String,
}

const OUTPUT_COLUMNS: &str = "o.slot, o.name, o.artifact_hash, a.kind, a.media_type, a.is_tree, a.size, a.content_size, f.ino AS fp_ino, f.ctime_ns AS fp_ctime_ns";

impl Db {
    /// Run one write statement in its own `BEGIN IMMEDIATE` transaction: the write
    /// lock is taken up front (waiting out other writers through the busy timeout),
    /// so the statement can never fail on a stale read snapshot.
    async fn write(
        &self,
        q: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<sqlx::sqlite::SqliteQueryResult> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let r = q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r)
    }

    // ---- runs -------------------------------------------------------------------------

    pub async fn begin_run(&self, r: &NewRun) -> Result<i64> {
        let id = self.write(sqlx::query(
            "INSERT INTO runs (workflow, workflow_path, workflow_hash, git_commit, git_dirty, params_json, args_json, status, started_at, host, user, pid)
             VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
        )
        .bind(&r.workflow)
        .bind(&r.workflow_path)
        .bind(&r.workflow_hash)
        .bind(&r.git_commit)
        .bind(r.git_dirty)
        .bind(&r.params_json)
        .bind(&r.args_json)
        .bind(time::now())
        .bind(&r.host)
        .bind(&r.user)
        .bind(i64::from(std::process::id())))
            .await?
        .last_insert_rowid();
        Ok(id)
    }

    pub async fn finish_run(&self, run_id: i64, status: &str) -> Result<()> {
        self.write(
            sqlx::query("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?")
                .bind(status)
                .bind(time::now())
                .bind(run_id),
        )
        .await?;
        Ok(())
    }

    pub async fn set_git(
        &self,
        run_id: i64,
        commit: Option<String>,
        dirty: Option<bool>,
    ) -> Result<()> {
        self.write(
            sqlx::query("UPDATE runs SET git_commit = ?, git_dirty = ? WHERE id = ?")
                .bind(commit)
                .bind(dirty)
                .bind(run_id),
        )
        .await?;
        Ok(())
    }

    /// Mark runs of this host whose process is gone (killed, crashed) as interrupted,
    /// with their unfinished step runs. Returns the run ids it marked.
    pub async fn recover_dead_runs(&self, host: &str) -> Result<Vec<i64>> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT id, pid FROM runs WHERE status = 'running' AND host = ?")
                .bind(host)
                .fetch_all(&self.pool)
                .await?;
        let me = i64::from(std::process::id());
        let dead: Vec<i64> = rows
            .into_iter()
            .filter(|&(_, pid)| pid != me && !process_alive(pid))
            .map(|(id, _)| id)
            .collect();
        if dead.is_empty() {
            return Ok(dead);
        }
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let now = time::now();
        for id in &dead {
            sqlx::query("UPDATE step_runs SET status = 'interrupted', finished_at = ?, error = 'the pedigree process running this step ended without finishing it' WHERE run_id = ? AND status = 'running'")
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE runs SET status = 'interrupted', finished_at = ? WHERE id = ? AND status = 'running'")
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(dead)
    }

    pub async fn record_run_inputs(
        &self,
        run_id: i64,
        inputs: &[(String, String, NewArtifact)],
    ) -> Result<()> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let now = time::now();
        for chunk in inputs.chunks(1000) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO artifacts (hash, kind, media_type, is_tree, size, content_size, created_at) ",
            );
            q.push_values(chunk, |mut b, (_, _, a)| {
                b.push_bind(a.stored.hash.clone())
                    .push_bind(a.kind.clone())
                    .push_bind(a.media_type.clone())
                    .push_bind(a.stored.is_tree)
                    .push_bind(a.stored.size as i64)
                    .push_bind(a.stored.content_size as i64)
                    .push_bind(now.clone());
            });
            q.push(" ON CONFLICT (hash) DO NOTHING");
            q.build().execute(&mut *tx).await?;
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT OR REPLACE INTO run_inputs (run_id, name, path, artifact_hash) ",
            );
            q.push_values(chunk, |mut b, (name, path, a)| {
                b.push_bind(run_id)
                    .push_bind(name.clone())
                    .push_bind(path.clone())
                    .push_bind(a.stored.hash.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- the cache ----------------------------------------------------------------------

    /// [`Db::lookup`] for many keys in one query: the keys that have a cache entry.
    pub async fn lookup_many(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, CacheEntry>> {
        let mut out: std::collections::HashMap<String, CacheEntry> =
            std::collections::HashMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "WITH k(key) AS (SELECT value FROM json_each(?1)),
                  latest(key, id) AS (SELECT k.key, (SELECT s.id FROM step_runs s WHERE s.step_key = k.key AND s.status = 'succeeded' ORDER BY s.id DESC LIMIT 1) FROM k)
             SELECT latest.key AS step_key, o.step_run_id, {OUTPUT_COLUMNS}
             FROM latest JOIN step_outputs o ON o.step_run_id = latest.id
             JOIN artifacts a ON a.hash = o.artifact_hash
             LEFT JOIN object_fingerprints f ON f.hash = o.artifact_hash
             ORDER BY latest.key, o.slot"
        );
        let keys_json = serde_json::to_string(keys).unwrap_or_else(|_| "[]".into());
        let rows: Vec<KeyedLookupRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(keys_json)
            .fetch_all(&self.pool)
            .await?;
        for r in rows {
            out.entry(r.step_key)
                .or_insert_with(|| CacheEntry {
                    step_run_id: r.row.step_run_id,
                    outputs: Vec::new(),
                })
                .outputs
                .push(r.row.output);
        }
        Ok(out)
    }

    /// The newest successful step run with `key`, with its outputs.
    pub async fn lookup(&self, key: &str) -> Result<Option<CacheEntry>> {
        Ok(self.lookup_many(&[key.to_owned()]).await?.remove(key))
    }

    pub async fn outputs_of(&self, step_run_id: i64) -> Result<Vec<OutputRow>> {
        let sql = format!(
            "SELECT {OUTPUT_COLUMNS} FROM step_outputs o JOIN artifacts a ON a.hash = o.artifact_hash
             LEFT JOIN object_fingerprints f ON f.hash = o.artifact_hash WHERE o.step_run_id = ? ORDER BY o.slot"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(step_run_id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn inputs_of(&self, step_run_id: i64) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT slot, artifact_hash FROM step_inputs WHERE step_run_id = ? ORDER BY slot",
        )
        .bind(step_run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn set_fingerprint(&self, hash: &str, fp: Fingerprint) -> Result<()> {
        self.write(
            sqlx::query(
                "INSERT OR REPLACE INTO object_fingerprints (hash, ino, ctime_ns) VALUES (?, ?, ?)",
            )
            .bind(hash)
            .bind(fp.ino as i64)
            .bind(fp.ctime_ns),
        )
        .await?;
        Ok(())
    }

    // ---- step runs ------------------------------------------------------------------------

    /// Record steps satisfied from the cache, with their inputs and outputs, in one
    /// transaction; returns their step run ids in order.
    ///
    /// A no-op rerun of a large workflow is all cache hits, so this is its hot path:
    /// ids are assigned under the write lock and rows go in multi-row INSERTs. The key
    /// manifests already exist (a hit means a step run with that key succeeded).
    pub async fn record_cached(&self, run_id: i64, records: &[CachedRecord]) -> Result<Vec<i64>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM step_runs")
            .fetch_one(&mut *tx)
            .await?;
        let ids: Vec<i64> = (first..).take(records.len()).collect();
        let now = time::now();
        // SQLite allows 32766 bound values per statement; stay well below.
        for chunk in ids.iter().zip(records).collect::<Vec<_>>().chunks(500) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO step_runs (id, run_id, step, kind, step_key, status, reason, cached_from, started_at, finished_at) ",
            );
            q.push_values(chunk, |mut b, (id, r)| {
                b.push_bind(**id)
                    .push_bind(run_id)
                    .push_bind(r.step.clone())
                    .push_bind(r.kind.clone())
                    .push_bind(r.key.clone())
                    .push_bind("cached")
                    .push_bind(r.reason.clone())
                    .push_bind(r.cached_from)
                    .push_bind(now.clone())
                    .push_bind(now.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        let edges = |outputs: bool| -> Vec<(i64, String, String, Option<String>)> {
            ids.iter()
                .zip(records)
                .flat_map(|(id, r)| {
                    if outputs {
                        r.outputs
                            .iter()
                            .map(|(s, h, n)| (*id, s.clone(), h.clone(), Some(n.clone())))
                            .collect::<Vec<_>>()
                    } else {
                        r.inputs
                            .iter()
                            .map(|(s, h)| (*id, s.clone(), h.clone(), None))
                            .collect()
                    }
                })
                .collect()
        };
        for chunk in edges(false).chunks(1000) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO step_inputs (step_run_id, slot, artifact_hash) ",
            );
            q.push_values(chunk, |mut b, (id, slot, hash, _)| {
                b.push_bind(*id)
                    .push_bind(slot.clone())
                    .push_bind(hash.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        for chunk in edges(true).chunks(1000) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO step_outputs (step_run_id, slot, artifact_hash, name) ",
            );
            q.push_values(chunk, |mut b, (id, slot, hash, name)| {
                b.push_bind(*id)
                    .push_bind(slot.clone())
                    .push_bind(hash.clone())
                    .push_bind(name.clone().unwrap_or_default());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Record that a step started executing; its inputs are known, its outputs not yet.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_step(
        &self,
        run_id: i64,
        step: &str,
        kind: &str,
        key: &str,
        manifest_json: &str,
        reason: &str,
        inputs: &[(String, String)],
    ) -> Result<i64> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        insert_manifest(&mut tx, key, manifest_json).await?;
        let id = sqlx::query(
            "INSERT INTO step_runs (run_id, step, kind, step_key, status, reason, started_at)
             VALUES (?, ?, ?, ?, 'running', ?, ?)",
        )
        .bind(run_id)
        .bind(step)
        .bind(kind)
        .bind(key)
        .bind(reason)
        .bind(time::now())
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        insert_inputs(&mut tx, id, inputs).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Commit a successful step run: artifacts, outputs, params, metrics, facets and
    /// the status flip, in one transaction. Only after this is the step cached.
    pub async fn finish_success(&self, step_run_id: i64, s: &Success) -> Result<()> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        for o in &s.outputs {
            insert_artifact(&mut tx, &o.artifact).await?;
            if let Some(fp) = o.fingerprint {
                sqlx::query("INSERT OR REPLACE INTO object_fingerprints (hash, ino, ctime_ns) VALUES (?, ?, ?)")
                    .bind(&o.artifact.stored.hash)
                    .bind(fp.ino as i64)
                    .bind(fp.ctime_ns)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO step_outputs (step_run_id, slot, artifact_hash, name) VALUES (?, ?, ?, ?)")
                .bind(step_run_id)
                .bind(&o.slot)
                .bind(&o.artifact.stored.hash)
                .bind(&o.name)
                .execute(&mut *tx)
                .await?;
        }
        for (k, v) in &s.params {
            sqlx::query("INSERT INTO params (step_run_id, key, value_json) VALUES (?, ?, ?)")
                .bind(step_run_id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        for m in &s.metrics {
            sqlx::query("INSERT INTO metrics (step_run_id, key, value, step) VALUES (?, ?, ?, ?)")
                .bind(step_run_id)
                .bind(&m.key)
                .bind(m.value)
                .bind(m.step)
                .execute(&mut *tx)
                .await?;
        }
        for (art, name, json) in &s.facets {
            sqlx::query(
                "INSERT INTO facets (step_run_id, artifact_hash, name, json) VALUES (?, ?, ?, ?)",
            )
            .bind(step_run_id)
            .bind(art)
            .bind(name)
            .bind(json)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(log) = &s.log_hash {
            insert_artifact(&mut tx, &log_artifact(log)).await?;
        }
        crate::failpoint::hit("commit-in-transaction");
        sqlx::query(
            "UPDATE step_runs SET status = 'succeeded', finished_at = ?, stderr_tail = ?, log_hash = ? WHERE id = ?",
        )
        .bind(time::now())
        .bind(&s.stderr_tail)
        .bind(&s.log_hash)
        .bind(step_run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Mark a started step run failed or interrupted.
    pub async fn finish_failure(
        &self,
        step_run_id: i64,
        status: &str,
        error: &str,
        stderr_tail: Option<&str>,
        log_hash: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        if let Some(log) = log_hash {
            insert_artifact(&mut tx, &log_artifact(log)).await?;
        }
        sqlx::query("UPDATE step_runs SET status = ?, finished_at = ?, error = ?, stderr_tail = ?, log_hash = ? WHERE id = ?")
            .bind(status)
            .bind(time::now())
            .bind(error)
            .bind(stderr_tail)
            .bind(log_hash)
            .bind(step_run_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record a step that never started (upstream failed, run stopped) or failed
    /// before it could start (bad plugin manifest, missing input).
    pub async fn record_not_run(
        &self,
        run_id: i64,
        step: &str,
        kind: &str,
        status: &str,
        reason: &str,
        error: Option<&str>,
    ) -> Result<i64> {
        let now = time::now();
        let id = self.write(sqlx::query(
            "INSERT INTO step_runs (run_id, step, kind, status, reason, started_at, finished_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(step)
        .bind(kind)
        .bind(status)
        .bind(reason)
        .bind(&now)
        .bind(&now)
        .bind(error))
            .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// The newest step run of `step` in `workflow` that has a key, with its manifest.
    pub async fn last_manifest(
        &self,
        workflow: &str,
        step: &str,
    ) -> Result<Option<(StepRunRow, String)>> {
        let row = sqlx::query(
            "SELECT s.id, m.manifest_json FROM step_runs s JOIN runs r ON r.id = s.run_id
             JOIN key_manifests m ON m.step_key = s.step_key
             WHERE r.workflow = ? AND s.step = ? AND s.status IN ('succeeded', 'cached')
             ORDER BY s.id DESC LIMIT 1",
        )
        .bind(workflow)
        .bind(step)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get(0)?;
        let manifest: String = row.try_get(1)?;
        let sr = self.step_run(id).await?;
        Ok(sr.map(|s| (s, manifest)))
    }

    pub async fn manifest(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT manifest_json FROM key_manifests WHERE step_key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    // ---- stat cache ---------------------------------------------------------------------

    /// The whole stat cache, by absolute path.
    pub async fn file_hashes(&self) -> Result<std::collections::HashMap<String, FileHashRow>> {
        let rows: Vec<FileHashRow> = sqlx::query_as(
            "SELECT path, dev, ino, size, mtime_ns, ctime_ns, hash FROM file_hashes",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.path.clone(), r)).collect())
    }

    pub async fn put_file_hashes(&self, rows: &[FileHashRow]) -> Result<()> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        for r in rows {
            sqlx::query("INSERT OR REPLACE INTO file_hashes (path, dev, ino, size, mtime_ns, ctime_ns, hash) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(&r.path)
                .bind(r.dev)
                .bind(r.ino)
                .bind(r.size)
                .bind(r.mtime_ns)
                .bind(r.ctime_ns)
                .bind(&r.hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- reading ------------------------------------------------------------------------

    pub async fn runs(&self, limit: i64, workflow: Option<&str>) -> Result<Vec<RunSummaryRow>> {
        Ok(sqlx::query_as(
            "SELECT r.id, r.workflow, r.workflow_path, r.workflow_hash, r.git_commit, r.git_dirty, r.params_json,
                    r.status, r.started_at, r.finished_at, r.host, r.user,
                    (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = r.id AND s.status = 'succeeded') AS ran,
                    (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = r.id AND s.status = 'cached') AS cached,
                    (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = r.id AND s.status IN ('failed', 'interrupted')) AS failed
             FROM runs r WHERE (?1 IS NULL OR r.workflow = ?1) ORDER BY r.id DESC LIMIT ?2",
        )
        .bind(workflow)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn run(&self, id: i64) -> Result<Option<RunRow>> {
        Ok(sqlx::query_as(
            "SELECT id, workflow, workflow_path, workflow_hash, git_commit, git_dirty, params_json, status, started_at, finished_at, host, user FROM runs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every workflow file a run has read (workspace-relative, as recorded).
    pub async fn workflow_paths(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT workflow_path FROM runs ORDER BY workflow_path")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn latest_run_id(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MAX(id) FROM runs")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn step_runs(&self, run_id: i64) -> Result<Vec<StepRunRow>> {
        Ok(sqlx::query_as(
            "SELECT id, run_id, step, kind, step_key, status, reason, cached_from, started_at, finished_at, error, stderr_tail, log_hash
             FROM step_runs WHERE run_id = ? ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn step_run(&self, id: i64) -> Result<Option<StepRunRow>> {
        Ok(sqlx::query_as(
            "SELECT id, run_id, step, kind, step_key, status, reason, cached_from, started_at, finished_at, error, stderr_tail, log_hash
             FROM step_runs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn metrics_of(&self, step_run_id: i64) -> Result<Vec<Metric>> {
        let rows: Vec<(String, f64, Option<i64>)> = sqlx::query_as(
            "SELECT key, value, step FROM metrics WHERE step_run_id = ? ORDER BY key, step",
        )
        .bind(step_run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key, value, step)| Metric { key, value, step })
            .collect())
    }

    pub async fn facets_of(&self, step_run_id: i64) -> Result<Vec<FacetRow>> {
        Ok(sqlx::query_as("SELECT step_run_id, artifact_hash, name, json FROM facets WHERE step_run_id = ? ORDER BY name")
            .bind(step_run_id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn params_of(&self, step_run_id: i64) -> Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as("SELECT key, value_json FROM params WHERE step_run_id = ? ORDER BY key")
                .bind(step_run_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn artifact(&self, hash: &str) -> Result<Option<ArtifactRow>> {
        Ok(sqlx::query_as("SELECT hash, kind, media_type, is_tree, size, content_size, created_at FROM artifacts WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Artifact hashes starting with `prefix` (at most `limit`).
    pub async fn artifacts_with_prefix(&self, prefix: &str, limit: i64) -> Result<Vec<String>> {
        let hi = format!("{prefix}\u{7f}");
        Ok(sqlx::query_scalar(
            "SELECT hash FROM artifacts WHERE hash >= ? AND hash < ? ORDER BY hash LIMIT ?",
        )
        .bind(prefix)
        .bind(hi)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn all_artifacts(&self) -> Result<Vec<ArtifactRow>> {
        Ok(sqlx::query_as("SELECT hash, kind, media_type, is_tree, size, content_size, created_at FROM artifacts ORDER BY hash")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Raw inputs recorded for an artifact (which files, in which runs).
    pub async fn sources_of(&self, hash: &str) -> Result<Vec<RunInputRow>> {
        Ok(sqlx::query_as("SELECT run_id, name, path, artifact_hash FROM run_inputs WHERE artifact_hash = ? ORDER BY run_id DESC LIMIT 20")
            .bind(hash)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The newest raw input recorded at a workspace path.
    pub async fn input_at_path(&self, path: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT artifact_hash FROM run_inputs WHERE path = ? ORDER BY run_id DESC LIMIT 1",
        )
        .bind(path)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The output `slot` of `step` in run `run_id`.
    pub async fn output_of_run(
        &self,
        run_id: i64,
        step: &str,
        slot: &str,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT o.artifact_hash FROM step_outputs o JOIN step_runs s ON s.id = o.step_run_id
             WHERE s.run_id = ? AND s.step = ? AND o.slot = ? ORDER BY s.id DESC LIMIT 1",
        )
        .bind(run_id)
        .bind(step)
        .bind(slot)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Upward lineage: for `hash`, the step runs that produced it (executed ones,
    /// not cache replays) and the artifacts they read, recursively to `depth`.
    pub async fn lineage_up(&self, hash: &str, depth: i64) -> Result<Vec<LineageEdge>> {
        self.lineage(hash, depth, "step_outputs", "step_inputs")
            .await
    }

    /// Downward lineage: step runs that read `hash` and what they wrote, recursively.
    pub async fn lineage_down(&self, hash: &str, depth: i64) -> Result<Vec<LineageEdge>> {
        self.lineage(hash, depth, "step_inputs", "step_outputs")
            .await
    }

    /// One recursive walk over the bipartite graph: from an artifact on the `near`
    /// side of a step run to the artifacts on its `far` side. Only the two fixed
    /// table names above are ever spliced into the SQL.
    async fn lineage(
        &self,
        hash: &str,
        depth: i64,
        near: &str,
        far: &str,
    ) -> Result<Vec<LineageEdge>> {
        let sql = format!(
            "WITH RECURSIVE walk(depth, from_hash, step_run_id, run_id, step, slot_from, slot_to, to_hash) AS (
                SELECT 1, n.artifact_hash, s.id, s.run_id, s.step, n.slot, f.slot, f.artifact_hash
                FROM {near} n JOIN step_runs s ON s.id = n.step_run_id AND s.status = 'succeeded'
                JOIN {far} f ON f.step_run_id = s.id
                WHERE n.artifact_hash = ?1
                UNION
                SELECT walk.depth + 1, n.artifact_hash, s.id, s.run_id, s.step, n.slot, f.slot, f.artifact_hash
                FROM walk JOIN {near} n ON n.artifact_hash = walk.to_hash
                JOIN step_runs s ON s.id = n.step_run_id AND s.status = 'succeeded'
                JOIN {far} f ON f.step_run_id = s.id
                WHERE walk.depth < ?2
            )
            SELECT MIN(depth) AS depth, from_hash, step_run_id, run_id, step, slot_from, slot_to, to_hash FROM walk
            GROUP BY from_hash, step_run_id, run_id, step, slot_from, slot_to, to_hash
            ORDER BY depth, step_run_id, slot_to"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .bind(depth)
            .fetch_all(&self.pool)
            .await?)
    }

    // ---- integrity ----------------------------------------------------------------------

    /// Every artifact hash that some lineage row references, with where.
    pub async fn referenced_hashes(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT artifact_hash, 'step output of step run ' || step_run_id FROM step_outputs
             UNION ALL SELECT artifact_hash, 'step input of step run ' || step_run_id FROM step_inputs
             UNION ALL SELECT artifact_hash, 'input `' || name || '` of run ' || run_id FROM run_inputs
             UNION ALL SELECT log_hash, 'log of step run ' || id FROM step_runs WHERE log_hash IS NOT NULL
             UNION ALL SELECT artifact_hash, 'release ' || name || '@' || version FROM releases",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Record that gc is about to remove these objects (before it removes them).
    pub async fn mark_collected(&self, hashes: &[String]) -> Result<()> {
        let mut tx = self.pool.begin_with(BEGIN).await?;
        let now = time::now();
        for chunk in hashes.chunks(1000) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT OR REPLACE INTO collected (hash, collected_at) ",
            );
            q.push_values(chunk, |mut b, h| {
                b.push_bind(h.clone()).push_bind(now.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Objects gc removed on purpose.
    pub async fn collected(&self) -> Result<std::collections::HashSet<String>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT hash FROM collected")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Artifacts recorded as folders (trees), whose members verify checks too.
    pub async fn tree_hashes(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT hash FROM artifacts WHERE is_tree = 1")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Rows whose artifact has no `artifacts` row (a broken reference).
    pub async fn dangling_references(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT artifact_hash, 'step output of step run ' || step_run_id FROM step_outputs WHERE artifact_hash NOT IN (SELECT hash FROM artifacts)
             UNION ALL SELECT artifact_hash, 'step input of step run ' || step_run_id FROM step_inputs WHERE artifact_hash NOT IN (SELECT hash FROM artifacts)
             UNION ALL SELECT s.id || '', 'step run ' || s.id || ' succeeded without outputs' FROM step_runs s
                 WHERE s.status = 'succeeded' AND NOT EXISTS (SELECT 1 FROM step_outputs o WHERE o.step_run_id = s.id)",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Everything a release stands on: the released model, what the steps of the
    /// release's run that read it also read (publish's report, evaluate's graph), and
    /// recursively the inputs of the step runs that produced any of those, up to the
    /// raw input files. Wherever the release folder was written, the database knows.
    pub async fn release_ancestry(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "WITH RECURSIVE up(hash) AS (
                SELECT artifact_hash FROM releases
                UNION
                SELECT beside.artifact_hash FROM releases r
                JOIN step_inputs i ON i.artifact_hash = r.artifact_hash
                JOIN step_runs s ON s.id = i.step_run_id AND s.run_id = r.run_id AND s.status = 'succeeded'
                JOIN step_inputs beside ON beside.step_run_id = s.id
                UNION
                SELECT i.artifact_hash FROM up
                JOIN step_outputs o ON o.artifact_hash = up.hash
                JOIN step_runs s ON s.id = o.step_run_id AND s.status = 'succeeded'
                JOIN step_inputs i ON i.step_run_id = s.id
            )
            SELECT hash FROM up",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Hashes that gc must keep: referenced by a run that started after `since`, by
    /// a release, or by a running step.
    pub async fn recently_referenced(&self, since: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT o.artifact_hash FROM step_outputs o JOIN step_runs s ON s.id = o.step_run_id JOIN runs r ON r.id = s.run_id
               WHERE r.started_at >= ?1 OR r.status = 'running'
             UNION SELECT i.artifact_hash FROM step_inputs i JOIN step_runs s ON s.id = i.step_run_id JOIN runs r ON r.id = s.run_id
               WHERE r.started_at >= ?1 OR r.status = 'running'
             UNION SELECT ri.artifact_hash FROM run_inputs ri JOIN runs r ON r.id = ri.run_id WHERE r.started_at >= ?1 OR r.status = 'running'
             UNION SELECT s.log_hash FROM step_runs s JOIN runs r ON r.id = s.run_id WHERE s.log_hash IS NOT NULL AND (r.started_at >= ?1 OR r.status = 'running')
             UNION SELECT artifact_hash FROM releases",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn integrity_check(&self) -> Result<String> {
        Ok(sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?)
    }
}

fn log_artifact(hash: &str) -> NewArtifact {
    NewArtifact {
        stored: Stored {
            hash: hash.to_owned(),
            size: 0,
            content_size: 0,
            is_tree: false,
        },
        kind: "log".into(),
        media_type: "text/plain".into(),
    }
}

async fn insert_artifact(tx: &mut sqlx::SqliteConnection, a: &NewArtifact) -> Result<()> {
    sqlx::query(
        "INSERT INTO artifacts (hash, kind, media_type, is_tree, size, content_size, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (hash) DO UPDATE SET size = MAX(size, excluded.size), content_size = MAX(content_size, excluded.content_size)",
    )
    .bind(&a.stored.hash)
    .bind(&a.kind)
    .bind(&a.media_type)
    .bind(a.stored.is_tree)
    .bind(a.stored.size as i64)
    .bind(a.stored.content_size as i64)
    .bind(time::now())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn insert_manifest(
    tx: &mut sqlx::SqliteConnection,
    key: &str,
    manifest_json: &str,
) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO key_manifests (step_key, manifest_json) VALUES (?, ?)")
        .bind(key)
        .bind(manifest_json)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn insert_inputs(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
    inputs: &[(String, String)],
) -> Result<()> {
    // Multi-row inserts: a join step can have hundreds of inputs.
    for chunk in inputs.chunks(1000) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO step_inputs (step_run_id, slot, artifact_hash) ",
        );
        q.push_values(chunk, |mut b, (slot, hash)| {
            b.push_bind(id)
                .push_bind(slot.clone())
                .push_bind(hash.clone());
        });
        q.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// Whether a process with `pid` exists on this host.
pub fn process_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
