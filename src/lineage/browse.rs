//! Reading the run history: runs (a page of them for the TUI, with step counts),
//! one run's step runs with their inputs, outputs, params, metrics and facets,
//! and artifact search. None of them writes; all of them are bounded (a page, a
//! limit, or a set of ids), so a database of a million artifacts answers each in
//! milliseconds.

use super::{
    ArtifactRef, FacetRow, LineageError, Metric, ParamRow, ReadDb, RunFilter, RunInputRow, RunRow,
    RunSummaryRow, SearchHit, SlotRow, StepRunRow, ids_json,
};

type Result<T> = std::result::Result<T, LineageError>;

#[derive(sqlx::FromRow)]
struct MetricOf {
    step_run_id: i64,
    #[sqlx(flatten)]
    metric: Metric,
}

const SUMMARY_COLUMNS: &str = "r.id, r.workflow, r.workflow_path, r.workflow_hash, r.git_commit, r.git_dirty, r.params_json,
    r.status, r.started_at, r.finished_at, r.host, r.user,
    (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = r.id AND s.status = 'succeeded') AS ran,
    (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = r.id AND s.status = 'cached') AS cached,
    (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = r.id AND s.status IN ('failed', 'interrupted')) AS failed";

impl ReadDb {
    /// The newest `limit` runs (of `workflow` if given), with their step counts.
    pub async fn runs(&self, limit: i64, workflow: Option<&str>) -> Result<Vec<RunSummaryRow>> {
        let filter = RunFilter {
            workflow: workflow.map(str::to_owned),
            status: None,
        };
        self.runs_page(&filter, limit).await
    }

    /// The newest `limit` runs that pass `filter`, with their step counts.
    pub async fn runs_page(&self, filter: &RunFilter, limit: i64) -> Result<Vec<RunSummaryRow>> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM runs r
             WHERE (?1 IS NULL OR r.workflow = ?1) AND (?2 IS NULL OR r.status = ?2)
             ORDER BY r.id DESC LIMIT ?3"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&filter.workflow)
            .bind(&filter.status)
            .bind(limit)
            .fetch_all(self.pool())
            .await?)
    }

    /// How many runs pass `filter`.
    pub async fn run_count(&self, filter: &RunFilter) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM runs WHERE (?1 IS NULL OR workflow = ?1) AND (?2 IS NULL OR status = ?2)",
        )
        .bind(&filter.workflow)
        .bind(&filter.status)
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn run(&self, id: i64) -> Result<Option<RunRow>> {
        Ok(sqlx::query_as(
            "SELECT id, workflow, workflow_path, workflow_hash, git_commit, git_dirty, params_json, status, started_at, finished_at, host, user FROM runs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// One run with its step counts.
    pub async fn run_summary(&self, id: i64) -> Result<Option<RunSummaryRow>> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM runs r WHERE r.id = ?");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The newest run's id.
    pub async fn latest_run_id(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MAX(id) FROM runs")
            .fetch_one(self.pool())
            .await?)
    }

    /// The newest run of the workflow named `workflow`.
    pub async fn latest_run_of(&self, workflow: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MAX(id) FROM runs WHERE workflow = ?")
                .bind(workflow)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The names of every workflow that has runs, sorted.
    pub async fn workflow_names(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT workflow FROM runs ORDER BY workflow")
                .fetch_all(self.pool())
                .await?,
        )
    }

    pub async fn step_runs(&self, run_id: i64) -> Result<Vec<StepRunRow>> {
        let sql = format!(
            "SELECT {} FROM step_runs s WHERE s.run_id = ? ORDER BY s.id",
            self.step_run_columns()
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn step_run(&self, id: i64) -> Result<Option<StepRunRow>> {
        let sql = format!(
            "SELECT {} FROM step_runs s WHERE s.id = ?",
            self.step_run_columns()
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Step runs by id.
    pub async fn step_runs_by_id(&self, ids: &[i64]) -> Result<Vec<StepRunRow>> {
        let sql = format!(
            "SELECT {} FROM json_each(?1) j JOIN step_runs s ON s.id = j.value ORDER BY s.id",
            self.step_run_columns()
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(ids_json(ids))
            .fetch_all(self.pool())
            .await?)
    }

    /// Every input of every step run of `run_id`, with artifact kinds.
    pub async fn run_step_inputs(&self, run_id: i64) -> Result<Vec<SlotRow>> {
        Ok(sqlx::query_as(
            "SELECT i.step_run_id, i.slot, i.artifact_hash, a.kind, a.size
             FROM step_runs s JOIN step_inputs i ON i.step_run_id = s.id
             LEFT JOIN artifacts a ON a.hash = i.artifact_hash
             WHERE s.run_id = ? ORDER BY i.step_run_id, i.slot",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every output of every step run of `run_id`, with artifact kinds.
    pub async fn run_step_outputs(&self, run_id: i64) -> Result<Vec<SlotRow>> {
        Ok(sqlx::query_as(
            "SELECT o.step_run_id, o.slot, o.artifact_hash, a.kind, a.size
             FROM step_runs s JOIN step_outputs o ON o.step_run_id = s.id
             LEFT JOIN artifacts a ON a.hash = o.artifact_hash
             WHERE s.run_id = ? ORDER BY o.step_run_id, o.slot",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The raw workflow inputs a run read.
    pub async fn run_inputs_of(&self, run_id: i64) -> Result<Vec<RunInputRow>> {
        Ok(sqlx::query_as(
            "SELECT run_id, name, path, artifact_hash FROM run_inputs WHERE run_id = ? ORDER BY name",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The metrics of one step run, by key then step.
    pub async fn metrics_of(&self, step_run_id: i64) -> Result<Vec<Metric>> {
        Ok(sqlx::query_as(
            "SELECT key, value, step FROM metrics WHERE step_run_id = ? ORDER BY key, step",
        )
        .bind(step_run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Metrics of many step runs, each with its step run id, by step run, key
    /// then step.
    pub async fn metrics_of_many(&self, ids: &[i64]) -> Result<Vec<(i64, Metric)>> {
        let rows: Vec<MetricOf> = sqlx::query_as(
            "SELECT m.step_run_id, m.key, m.value, m.step FROM json_each(?1) j
             JOIN metrics m ON m.step_run_id = j.value ORDER BY m.step_run_id, m.key, m.step",
        )
        .bind(ids_json(ids))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.step_run_id, r.metric))
            .collect())
    }

    pub async fn facets_of(&self, step_run_id: i64) -> Result<Vec<FacetRow>> {
        Ok(sqlx::query_as("SELECT step_run_id, artifact_hash, name, json FROM facets WHERE step_run_id = ? ORDER BY name")
            .bind(step_run_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Facets of many step runs.
    pub async fn facets_of_many(&self, ids: &[i64]) -> Result<Vec<FacetRow>> {
        Ok(sqlx::query_as(
            "SELECT f.step_run_id, f.artifact_hash, f.name, f.json FROM json_each(?1) j
             JOIN facets f ON f.step_run_id = j.value ORDER BY f.step_run_id, f.name",
        )
        .bind(ids_json(ids))
        .fetch_all(self.pool())
        .await?)
    }

    /// Params of many step runs.
    pub async fn params_of_many(&self, ids: &[i64]) -> Result<Vec<ParamRow>> {
        Ok(sqlx::query_as(
            "SELECT p.step_run_id, p.key, p.value_json FROM json_each(?1) j
             JOIN params p ON p.step_run_id = j.value ORDER BY p.step_run_id, p.key",
        )
        .bind(ids_json(ids))
        .fetch_all(self.pool())
        .await?)
    }

    /// Artifacts matching `query`, for the TUI's search box: a hash prefix, a
    /// workspace path a run read (the whole path or a part of it), a release name
    /// (`NAME` or `NAME@VERSION`, or a part of the name), or `RUN/STEP.OUTPUT`. At
    /// most `limit` hits, hash matches first. Unlike [`ReadDb::resolve_ref`], it
    /// also returns partial matches.
    pub async fn search_artifacts(&self, query: &str, limit: i64) -> Result<Vec<SearchHit>> {
        let q = query.trim();
        let mut hits: Vec<SearchHit> = Vec::new();
        if q.is_empty() {
            return Ok(hits);
        }
        // `RUN/STEP.OUTPUT`, with any run form; a run that does not resolve is
        // simply no hit (search is forgiving, resolution is not).
        if let ArtifactRef::Output { run, step, slot } = ArtifactRef::parse(q)
            && let Ok(run_id) = self.resolve_run(&run).await
            && let Some(h) = self.output_of_run(run_id, &step, &slot).await?
        {
            hits.push(SearchHit {
                artifact_hash: h,
                matched: "output".into(),
                label: q.to_owned(),
            });
        }
        let lower = q.to_ascii_lowercase();
        if lower.len() >= 4 && lower.chars().all(|c| c.is_ascii_hexdigit()) {
            for h in self.artifacts_with_prefix(&lower, limit).await? {
                hits.push(SearchHit {
                    artifact_hash: h.clone(),
                    matched: "hash".into(),
                    label: h,
                });
            }
        }
        // A hash prefix that matched is what was meant: skip the slow substring scan.
        let substring = hits.is_empty();
        let (name, version) = match q.rsplit_once('@') {
            Some((n, v)) => (n, v.parse::<i64>().ok()),
            None => (q, None),
        };
        let releases: Vec<SearchHit> = sqlx::query_as(
            "SELECT artifact_hash, 'release' AS matched, name || '@' || version AS label FROM releases
             WHERE (name = ?1 OR name LIKE '%' || ?1 || '%') AND (?2 IS NULL OR version = ?2)
             ORDER BY name = ?1 DESC, name, version DESC LIMIT ?3",
        )
        .bind(name)
        .bind(version)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        hits.extend(releases);
        // A path: exact first (indexed), then any path containing it.
        let paths: Vec<SearchHit> = sqlx::query_as(
            "SELECT artifact_hash, 'path' AS matched, path AS label FROM (
                 SELECT artifact_hash, path, MAX(run_id) AS newest FROM run_inputs WHERE path = ?1 GROUP BY artifact_hash, path
             ) ORDER BY newest DESC LIMIT ?2",
        )
        .bind(q)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        hits.extend(paths);
        if substring && hits.len() < limit as usize {
            let like: Vec<SearchHit> = sqlx::query_as(
                "SELECT artifact_hash, 'path' AS matched, path AS label FROM (
                     SELECT artifact_hash, path, MAX(run_id) AS newest FROM run_inputs
                     WHERE path <> ?1 AND instr(path, ?1) > 0 GROUP BY artifact_hash, path
                 ) ORDER BY newest DESC LIMIT ?2",
            )
            .bind(q)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
            hits.extend(like);
        }
        let mut seen = std::collections::HashSet::new();
        hits.retain(|h| seen.insert((h.artifact_hash.clone(), h.label.clone())));
        hits.truncate(limit as usize);
        Ok(hits)
    }
}
