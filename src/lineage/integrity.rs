//! What gc and verify ask: every reference to an object, what a release stands
//! on, what recent runs still need, broken references, and SQLite's own check;
//! and the one write gc makes (marking what it removes).

use super::{BEGIN, Db, LineageError, ReadDb, time};

type Result<T> = std::result::Result<T, LineageError>;

impl ReadDb {
    /// Every artifact hash that some lineage row references, with where.
    pub async fn referenced_hashes(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT artifact_hash, 'step output of step run ' || step_run_id FROM step_outputs
             UNION ALL SELECT artifact_hash, 'step input of step run ' || step_run_id FROM step_inputs
             UNION ALL SELECT artifact_hash, 'input `' || name || '` of run ' || run_id FROM run_inputs
             UNION ALL SELECT log_hash, 'log of step run ' || id FROM step_runs WHERE log_hash IS NOT NULL
             UNION ALL SELECT artifact_hash, 'release ' || name || '@' || version FROM releases",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Objects gc removed on purpose.
    pub async fn collected(&self) -> Result<std::collections::HashSet<String>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT hash FROM collected")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Artifacts recorded as folders (trees), whose members verify checks too.
    pub async fn tree_hashes(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT hash FROM artifacts WHERE is_tree = 1")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Rows whose artifact has no `artifacts` row (a broken reference).
    pub async fn dangling_references(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT artifact_hash, 'step output of step run ' || step_run_id FROM step_outputs WHERE artifact_hash NOT IN (SELECT hash FROM artifacts)
             UNION ALL SELECT artifact_hash, 'step input of step run ' || step_run_id FROM step_inputs WHERE artifact_hash NOT IN (SELECT hash FROM artifacts)
             UNION ALL SELECT s.id || '', 'step run ' || s.id || ' succeeded without outputs' FROM step_runs s
                 WHERE (s.status = 'succeeded' OR (s.status = 'cached' AND s.cached_from IS NULL)) AND NOT EXISTS (SELECT 1 FROM step_outputs o WHERE o.step_run_id = s.id)",
        )
        .fetch_all(self.pool())
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
                JOIN step_runs s ON s.id = i.step_run_id AND s.run_id = r.run_id AND (s.status = 'succeeded' OR (s.status = 'cached' AND s.cached_from IS NULL))
                JOIN step_inputs beside ON beside.step_run_id = s.id
                UNION
                SELECT i.artifact_hash FROM up
                JOIN step_outputs o ON o.artifact_hash = up.hash
                JOIN step_runs s ON s.id = o.step_run_id AND (s.status = 'succeeded' OR (s.status = 'cached' AND s.cached_from IS NULL))
                JOIN step_inputs i ON i.step_run_id = s.id
            )
            SELECT hash FROM up",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Every workflow file a run has read (workspace-relative, as recorded): gc reads
    /// the lock file beside each.
    pub async fn workflow_paths(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT workflow_path FROM runs ORDER BY workflow_path")
                .fetch_all(self.pool())
                .await?,
        )
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
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn integrity_check(&self) -> Result<String> {
        Ok(sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(self.pool())
            .await?)
    }
}

impl Db {
    /// Record that gc is about to remove these objects (before it removes them).
    pub async fn mark_collected(&self, hashes: &[String]) -> Result<()> {
        let mut tx = self.pool().begin_with(BEGIN).await?;
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
}
