//! Read-only queries for the terminal dashboard (`src/tui`): pages of runs, one
//! run's steps with their edges, one level of ancestry or descent for many
//! artifacts at once, and search. None of them writes; all of them are bounded
//! (a page, a limit, or a set of ids), so a database of a million artifacts
//! answers each in milliseconds.

use serde::Serialize;
use sqlx::FromRow;

use super::{ArtifactRow, Db, FacetRow, LineageError, Metric, RunSummaryRow, StepRunRow};

type Result<T> = std::result::Result<T, LineageError>;

/// Which runs the runs list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunFilter {
    /// Only runs of this workflow (its `name:`).
    pub workflow: Option<String>,
    /// Only runs with this status (`running`, `succeeded`, `failed`, `interrupted`).
    pub status: Option<String>,
}

/// One edge of the lineage graph between an artifact and a step run, as the
/// level-at-a-time queries return it. Going up, `near` is an output of the step
/// run and `far` one of its inputs; going down, `near` is an input and `far` an
/// output. `far` is `None` for a step run with no inputs (going up) or no outputs
/// (going down).
#[derive(Debug, Clone, PartialEq, FromRow, Serialize)]
pub struct Edge {
    pub near: String,
    pub step_run_id: i64,
    pub run_id: i64,
    pub step: String,
    pub near_slot: String,
    pub far_slot: Option<String>,
    pub far: Option<String>,
}

/// An input or output of a step run, with what the artifact is.
#[derive(Debug, Clone, PartialEq, FromRow, Serialize)]
pub struct SlotRow {
    pub step_run_id: i64,
    pub slot: String,
    pub artifact_hash: String,
    pub kind: Option<String>,
    pub size: Option<i64>,
}

/// A release (a published artifact under a name and version).
#[derive(Debug, Clone, PartialEq, FromRow, Serialize)]
pub struct ReleaseRow {
    pub name: String,
    pub version: i64,
    pub run_id: i64,
    pub artifact_hash: String,
}

/// A param of a step run.
#[derive(Debug, Clone, PartialEq, FromRow, Serialize)]
pub struct ParamRow {
    pub step_run_id: i64,
    pub key: String,
    pub value_json: String,
}

/// A metric of a step run.
#[derive(Debug, Clone, PartialEq, FromRow, Serialize)]
pub struct MetricRow {
    pub step_run_id: i64,
    pub key: String,
    pub value: f64,
    pub step: Option<i64>,
}

impl From<&MetricRow> for Metric {
    fn from(m: &MetricRow) -> Metric {
        Metric {
            key: m.key.clone(),
            value: m.value,
            step: m.step,
        }
    }
}

/// What a search found: an artifact, and how the query matched it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, FromRow, Serialize)]
pub struct SearchHit {
    pub artifact_hash: String,
    /// `hash`, `path` or `release`.
    pub matched: String,
    /// The path or `NAME@VERSION` that matched (the hash itself for a hash match).
    pub label: String,
}

fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

fn hashes_json(hashes: &[String]) -> String {
    serde_json::to_string(hashes).unwrap_or_else(|_| "[]".into())
}

const SUMMARY_COLUMNS: &str = "r.id, r.workflow, r.workflow_path, r.workflow_hash, r.git_commit, r.git_dirty, r.params_json,
    r.status, r.started_at, r.finished_at, r.host, r.user,
    (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = r.id AND s.status = 'succeeded') AS ran,
    (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = r.id AND s.status = 'cached') AS cached,
    (SELECT COUNT(*) FROM step_runs s WHERE s.run_id = r.id AND s.status IN ('failed', 'interrupted')) AS failed";

impl Db {
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

    /// One run with its step counts.
    pub async fn run_summary(&self, id: i64) -> Result<Option<RunSummaryRow>> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM runs r WHERE r.id = ?");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The names of every workflow that has runs, sorted.
    pub async fn workflow_names(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT workflow FROM runs ORDER BY workflow")
                .fetch_all(self.pool())
                .await?,
        )
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
    pub async fn run_inputs_of(&self, run_id: i64) -> Result<Vec<super::RunInputRow>> {
        Ok(sqlx::query_as(
            "SELECT run_id, name, path, artifact_hash FROM run_inputs WHERE run_id = ? ORDER BY name",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Step runs by id.
    pub async fn step_runs_by_id(&self, ids: &[i64]) -> Result<Vec<StepRunRow>> {
        Ok(sqlx::query_as(
            "SELECT s.id, s.run_id, s.step, s.kind, s.step_key, s.status, s.reason, s.cached_from, s.started_at, s.finished_at, s.error, s.stderr_tail, s.log_hash
             FROM json_each(?1) j JOIN step_runs s ON s.id = j.value ORDER BY s.id",
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

    /// Metrics of many step runs, by key then step.
    pub async fn metrics_of_many(&self, ids: &[i64]) -> Result<Vec<MetricRow>> {
        Ok(sqlx::query_as(
            "SELECT m.step_run_id, m.key, m.value, m.step FROM json_each(?1) j
             JOIN metrics m ON m.step_run_id = j.value ORDER BY m.step_run_id, m.key, m.step",
        )
        .bind(ids_json(ids))
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

    /// One level up: the executed step runs that produced any of `hashes`, each
    /// with the inputs it read (at most `limit` edges, in no particular order: an
    /// ORDER BY would sort every edge of a widely used artifact before the LIMIT).
    pub async fn producers_of(&self, hashes: &[String], limit: i64) -> Result<Vec<Edge>> {
        Ok(sqlx::query_as(
            "SELECT o.artifact_hash AS near, s.id AS step_run_id, s.run_id, s.step, o.slot AS near_slot,
                    i.slot AS far_slot, i.artifact_hash AS far
             FROM json_each(?1) j JOIN step_outputs o ON o.artifact_hash = j.value
             JOIN step_runs s ON s.id = o.step_run_id AND s.status = 'succeeded'
             LEFT JOIN step_inputs i ON i.step_run_id = s.id LIMIT ?2",
        )
        .bind(hashes_json(hashes))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// One level down: the executed step runs that read any of `hashes`, each with
    /// the outputs it wrote (at most `limit` edges, in no particular order).
    pub async fn consumers_of(&self, hashes: &[String], limit: i64) -> Result<Vec<Edge>> {
        Ok(sqlx::query_as(
            "SELECT i.artifact_hash AS near, s.id AS step_run_id, s.run_id, s.step, i.slot AS near_slot,
                    o.slot AS far_slot, o.artifact_hash AS far
             FROM json_each(?1) j JOIN step_inputs i ON i.artifact_hash = j.value
             JOIN step_runs s ON s.id = i.step_run_id AND s.status = 'succeeded'
             LEFT JOIN step_outputs o ON o.step_run_id = s.id LIMIT ?2",
        )
        .bind(hashes_json(hashes))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Artifacts matching `query`: a hash prefix, a workspace path a run read (the
    /// whole path or a part of it), a release name (`NAME` or `NAME@VERSION`), or
    /// `RUN/STEP.OUTPUT`. At most `limit` hits, hash matches first.
    pub async fn search_artifacts(&self, query: &str, limit: i64) -> Result<Vec<SearchHit>> {
        let q = query.trim();
        let mut hits: Vec<SearchHit> = Vec::new();
        if q.is_empty() {
            return Ok(hits);
        }
        if let Some((run, rest)) = q.split_once('/')
            && let Ok(run_id) = run.parse::<i64>()
            && let Some((step, slot)) = rest.rsplit_once('.')
            && let Some(h) = self.output_of_run(run_id, step, slot).await?
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
