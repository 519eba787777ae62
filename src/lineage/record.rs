//! Run and step-run writes: a run begins, its raw inputs are recorded, each step
//! is recorded as cached, started then finished (or never run), and the run
//! finishes. Each write is one short `BEGIN IMMEDIATE` transaction.

use super::outbox::{queue_run, queue_step, run_emits};
use super::{
    BEGIN, CachedRecord, Db, LineageError, NewArtifact, NewRun, Status, Success, process_alive,
    time,
};
use crate::openlineage::{EventType, new_run_id};
use crate::store::Stored;

type Result<T> = std::result::Result<T, LineageError>;

impl Db {
    /// Run one write statement in its own `BEGIN IMMEDIATE` transaction: the write
    /// lock is taken up front (waiting out other writers through the busy timeout),
    /// so the statement can never fail on a stale read snapshot.
    pub(super) async fn write(
        &self,
        q: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<sqlx::sqlite::SqliteQueryResult> {
        let mut tx = self.pool().begin_with(BEGIN).await?;
        let r = q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// Record a run that starts now, by this process (its pid tells a later
    /// `recover_dead_runs` whether it is still alive).
    pub async fn begin_run(&self, r: &NewRun) -> Result<i64> {
        let mut tx = self.pool().begin_with(BEGIN).await?;
        let id = sqlx::query(
            "INSERT INTO runs (workflow, workflow_path, workflow_hash, git_commit, git_dirty, params_json, args_json, status, started_at, host, user, pid, uuid, openlineage)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.workflow)
        .bind(&r.workflow_path)
        .bind(&r.workflow_hash)
        .bind(&r.git_commit)
        .bind(r.git_dirty)
        .bind(&r.params_json)
        .bind(&r.args_json)
        .bind(Status::Running)
        .bind(time::now())
        .bind(&r.host)
        .bind(&r.user)
        .bind(i64::from(std::process::id()))
        .bind(new_run_id())
        .bind(self.openlineage().is_some())
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        if let Some(ctx) = self.openlineage() {
            queue_run(&mut tx, ctx, id, EventType::Start).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Record how a run ended. `status` is a [`Status`] (or its stored text,
    /// checked).
    pub async fn finish_run<S>(&self, run_id: i64, status: S) -> Result<()>
    where
        S: TryInto<Status>,
        LineageError: From<S::Error>,
    {
        let status: Status = status.try_into()?;
        let mut tx = self.pool().begin_with(BEGIN).await?;
        sqlx::query("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?")
            .bind(status)
            .bind(time::now())
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        if let (Some(ctx), Some(end)) = (self.openlineage(), EventType::terminal(status.as_str()))
            && run_emits(&mut tx, run_id).await?
        {
            queue_run(&mut tx, ctx, run_id, end).await?;
        }
        tx.commit().await?;
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
                .fetch_all(self.pool())
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
        let mut tx = self.pool().begin_with(BEGIN).await?;
        let now = time::now();
        for &id in &dead {
            let steps: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM step_runs WHERE run_id = ? AND status = 'running' ORDER BY id",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
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
            // The events a dead run could not send: its running steps and itself aborted.
            if let Some(ctx) = self.openlineage()
                && run_emits(&mut tx, id).await?
            {
                for step in steps {
                    queue_step(&mut tx, ctx, step, &[EventType::Abort]).await?;
                }
                queue_run(&mut tx, ctx, id, EventType::Abort).await?;
            }
        }
        tx.commit().await?;
        Ok(dead)
    }

    pub async fn record_run_inputs(
        &self,
        run_id: i64,
        inputs: &[(String, String, NewArtifact)],
    ) -> Result<()> {
        let mut tx = self.pool().begin_with(BEGIN).await?;
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
        let mut tx = self.pool().begin_with(BEGIN).await?;
        let first: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM step_runs")
            .fetch_one(&mut *tx)
            .await?;
        let ids: Vec<i64> = (first..).take(records.len()).collect();
        let now = time::now();
        // SQLite allows 32766 bound values per statement; stay well below.
        for chunk in ids.iter().zip(records).collect::<Vec<_>>().chunks(500) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO step_runs (id, run_id, step, kind, step_key, status, reason, cached_from, started_at, finished_at, uuid) ",
            );
            q.push_values(chunk, |mut b, (id, r)| {
                b.push_bind(**id)
                    .push_bind(run_id)
                    .push_bind(r.step.clone())
                    .push_bind(r.kind.clone())
                    .push_bind(r.key.clone())
                    .push_bind(Status::Cached)
                    .push_bind(r.reason.clone())
                    .push_bind(r.cached_from)
                    .push_bind(now.clone())
                    .push_bind(now.clone())
                    .push_bind(new_run_id());
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
        if let Some(ctx) = self.openlineage() {
            for &id in &ids {
                queue_step(&mut tx, ctx, id, &[EventType::Start, EventType::Complete]).await?;
            }
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
        let mut tx = self.pool().begin_with(BEGIN).await?;
        insert_manifest(&mut tx, key, manifest_json).await?;
        let id = sqlx::query(
            "INSERT INTO step_runs (run_id, step, kind, step_key, status, reason, started_at, uuid)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(step)
        .bind(kind)
        .bind(key)
        .bind(Status::Running)
        .bind(reason)
        .bind(time::now())
        .bind(new_run_id())
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        insert_inputs(&mut tx, id, inputs).await?;
        if let Some(ctx) = self.openlineage() {
            queue_step(&mut tx, ctx, id, &[EventType::Start]).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Commit a successful step run: artifacts, outputs, params, metrics, facets and
    /// the status flip, in one transaction. Only after this is the step cached.
    /// Record a step run's outputs, params, metrics and facets, and mark it done:
    /// `succeeded` when it computed them, `cached` when `remote_source` says which
    /// remote cache they came from.
    pub async fn finish_success(
        &self,
        step_run_id: i64,
        s: &Success,
        remote_source: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool().begin_with(BEGIN).await?;
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
            "UPDATE step_runs SET status = ?, finished_at = ?, stderr_tail = ?, log_hash = ?, remote_source = ? WHERE id = ?",
        )
        .bind(if remote_source.is_some() {
            Status::Cached
        } else {
            Status::Succeeded
        })
        .bind(time::now())
        .bind(&s.stderr_tail)
        .bind(&s.log_hash)
        .bind(remote_source)
        .bind(step_run_id)
        .execute(&mut *tx)
        .await?;
        if let Some(ctx) = self.openlineage() {
            queue_step(&mut tx, ctx, step_run_id, &[EventType::Complete]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Mark a started step run failed or interrupted.
    pub async fn finish_failure<S>(
        &self,
        step_run_id: i64,
        status: S,
        error: &str,
        stderr_tail: Option<&str>,
        log_hash: Option<&str>,
    ) -> Result<()>
    where
        S: TryInto<Status>,
        LineageError: From<S::Error>,
    {
        let status: Status = status.try_into()?;
        let mut tx = self.pool().begin_with(BEGIN).await?;
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
        if let (Some(ctx), Some(end)) = (self.openlineage(), EventType::terminal(status.as_str())) {
            queue_step(&mut tx, ctx, step_run_id, &[end]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record a step that never started (upstream failed, run stopped) or failed
    /// before it could start (bad plugin manifest, missing input).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_not_run<S>(
        &self,
        run_id: i64,
        step: &str,
        kind: &str,
        status: S,
        reason: &str,
        error: Option<&str>,
    ) -> Result<i64>
    where
        S: TryInto<Status>,
        LineageError: From<S::Error>,
    {
        let status: Status = status.try_into()?;
        let now = time::now();
        let mut tx = self.pool().begin_with(BEGIN).await?;
        let id = sqlx::query(
            "INSERT INTO step_runs (run_id, step, kind, status, reason, started_at, finished_at, error, uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(step)
        .bind(kind)
        .bind(status)
        .bind(reason)
        .bind(&now)
        .bind(&now)
        .bind(error)
        .bind(new_run_id())
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        if let (Some(ctx), Some(end)) = (self.openlineage(), EventType::terminal(status.as_str())) {
            queue_step(&mut tx, ctx, id, &[EventType::Start, end]).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Record a release: `artifact_hash` published as `name`@`version` by run
    /// `run_id`. A release that exists already is left as it is. `created_at` is
    /// RFC 3339, like every other time in the database.
    /// Add a facet to a step run after it finished (a remote's verdict on it,
    /// such as a non-deterministic result).
    pub async fn add_facet(&self, step_run_id: i64, name: &str, json: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO facets (step_run_id, artifact_hash, name, json) VALUES (?, NULL, ?, ?)",
        )
        .bind(step_run_id)
        .bind(name)
        .bind(json)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Remember that `remote` holds the objects `hashes`.
    pub async fn remember_remote_objects(&self, remote: &str, hashes: &[String]) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT OR IGNORE INTO remote_objects (remote, hash) SELECT ?1, value FROM json_each(?2)",
        )
        .bind(remote)
        .bind(super::hashes_json(hashes))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forget objects of `remote` (after `remote gc` deleted them, or when a
    /// read found one missing).
    pub async fn forget_remote_objects(&self, remote: &str, hashes: &[String]) -> Result<()> {
        sqlx::query("DELETE FROM remote_objects WHERE remote = ?1 AND hash IN (SELECT value FROM json_each(?2))")
            .bind(remote)
            .bind(super::hashes_json(hashes))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn record_release(
        &self,
        name: &str,
        version: i64,
        run_id: i64,
        artifact_hash: &str,
    ) -> Result<()> {
        self.write(
            sqlx::query(
                "INSERT OR IGNORE INTO releases (name, version, run_id, artifact_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(name)
            .bind(version)
            .bind(run_id)
            .bind(artifact_hash)
            .bind(time::now()),
        )
        .await?;
        Ok(())
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
