//! The lineage graph: artifacts, where raw inputs came from, and the bipartite
//! artifact → step run → artifact edges, walked recursively (`lineage_up`,
//! `lineage_down`, for the `lineage` command and release ancestry) or one level
//! at a time for many artifacts (`producers_of`, `consumers_of`, for the TUI).
//! Only executed step runs (status `succeeded`) are edges: a cache replay made
//! nothing.

use super::{
    ArtifactRow, LevelEdge, LineageEdge, LineageError, ReadDb, ReleaseRow, RunInputRow, hashes_json,
};

type Result<T> = std::result::Result<T, LineageError>;

impl ReadDb {
    pub async fn artifact(&self, hash: &str) -> Result<Option<ArtifactRow>> {
        Ok(sqlx::query_as("SELECT hash, kind, media_type, is_tree, size, content_size, created_at FROM artifacts WHERE hash = ?")
            .bind(hash)
            .fetch_optional(self.pool())
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
        .fetch_all(self.pool())
        .await?)
    }

    /// Artifact rows for many hashes.
    pub async fn artifacts_by_hash(&self, hashes: &[String]) -> Result<Vec<ArtifactRow>> {
        Ok(sqlx::query_as(
            "SELECT a.hash, a.kind, a.media_type, a.is_tree, a.size, a.content_size, a.created_at
             FROM json_each(?1) j JOIN artifacts a ON a.hash = j.value",
        )
        .bind(hashes_json(hashes))
        .fetch_all(self.pool())
        .await?)
    }

    /// Raw inputs recorded for an artifact (which files, in which runs).
    pub async fn sources_of(&self, hash: &str) -> Result<Vec<RunInputRow>> {
        Ok(sqlx::query_as("SELECT run_id, name, path, artifact_hash FROM run_inputs WHERE artifact_hash = ? ORDER BY run_id DESC LIMIT 20")
            .bind(hash)
            .fetch_all(self.pool())
            .await?)
    }

    /// For each of `hashes` that was a raw workflow input, the newest place it was
    /// read from (`run_id`, `name`, `path`).
    pub async fn newest_sources(&self, hashes: &[String]) -> Result<Vec<super::RunInputRow>> {
        Ok(sqlx::query_as(
            "SELECT ri.run_id, ri.name, ri.path, ri.artifact_hash FROM json_each(?1) j
             JOIN run_inputs ri ON ri.rowid = (SELECT r2.rowid FROM run_inputs r2 WHERE r2.artifact_hash = j.value ORDER BY r2.run_id DESC LIMIT 1)",
        )
        .bind(hashes_json(hashes))
        .fetch_all(self.pool())
        .await?)
    }

    /// The newest raw input recorded at a workspace path.
    pub async fn input_at_path(&self, path: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT artifact_hash FROM run_inputs WHERE path = ? ORDER BY run_id DESC LIMIT 1",
        )
        .bind(path)
        .fetch_optional(self.pool())
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
        .fetch_optional(self.pool())
        .await?)
    }

    /// The release `name`@`version`, or the newest version of `name`.
    pub async fn release(&self, name: &str, version: Option<i64>) -> Result<Option<ReleaseRow>> {
        Ok(sqlx::query_as(
            "SELECT name, version, run_id, artifact_hash FROM releases
             WHERE name = ?1 AND (?2 IS NULL OR version = ?2) ORDER BY version DESC LIMIT 1",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Releases of any of `hashes`.
    pub async fn releases_of(&self, hashes: &[String]) -> Result<Vec<ReleaseRow>> {
        Ok(sqlx::query_as(
            "SELECT r.name, r.version, r.run_id, r.artifact_hash FROM releases r
             WHERE r.artifact_hash IN (SELECT value FROM json_each(?1)) ORDER BY r.name, r.version",
        )
        .bind(hashes_json(hashes))
        .fetch_all(self.pool())
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
                FROM {near} n JOIN step_runs s ON s.id = n.step_run_id AND (s.status = 'succeeded' OR (s.status = 'cached' AND s.cached_from IS NULL))
                JOIN {far} f ON f.step_run_id = s.id
                WHERE n.artifact_hash = ?1
                UNION
                SELECT walk.depth + 1, n.artifact_hash, s.id, s.run_id, s.step, n.slot, f.slot, f.artifact_hash
                FROM walk JOIN {near} n ON n.artifact_hash = walk.to_hash
                JOIN step_runs s ON s.id = n.step_run_id AND (s.status = 'succeeded' OR (s.status = 'cached' AND s.cached_from IS NULL))
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
            .fetch_all(self.pool())
            .await?)
    }

    /// One level up: the executed step runs that produced any of `hashes`, each
    /// with the inputs it read (at most `limit` edges, in no particular order: an
    /// ORDER BY would sort every edge of a widely used artifact before the LIMIT).
    pub async fn producers_of(&self, hashes: &[String], limit: i64) -> Result<Vec<LevelEdge>> {
        Ok(sqlx::query_as(
            "SELECT o.artifact_hash AS near, s.id AS step_run_id, s.run_id, s.step, o.slot AS near_slot,
                    i.slot AS far_slot, i.artifact_hash AS far
             FROM json_each(?1) j JOIN step_outputs o ON o.artifact_hash = j.value
             JOIN step_runs s ON s.id = o.step_run_id AND (s.status = 'succeeded' OR (s.status = 'cached' AND s.cached_from IS NULL))
             LEFT JOIN step_inputs i ON i.step_run_id = s.id LIMIT ?2",
        )
        .bind(hashes_json(hashes))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// One level down: the executed step runs that read any of `hashes`, each with
    /// the outputs it wrote (at most `limit` edges, in no particular order).
    pub async fn consumers_of(&self, hashes: &[String], limit: i64) -> Result<Vec<LevelEdge>> {
        Ok(sqlx::query_as(
            "SELECT i.artifact_hash AS near, s.id AS step_run_id, s.run_id, s.step, i.slot AS near_slot,
                    o.slot AS far_slot, o.artifact_hash AS far
             FROM json_each(?1) j JOIN step_inputs i ON i.artifact_hash = j.value
             JOIN step_runs s ON s.id = i.step_run_id AND (s.status = 'succeeded' OR (s.status = 'cached' AND s.cached_from IS NULL))
             LEFT JOIN step_outputs o ON o.step_run_id = s.id LIMIT ?2",
        )
        .bind(hashes_json(hashes))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
