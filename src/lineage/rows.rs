//! The rows the lineage queries take and return. Plain data: the queries that
//! fill them live beside their concern (`record`, `cache`, `graph`, `browse`,
//! `integrity`).

use serde::Serialize;
use sqlx::FromRow;

use super::Status;
use crate::store::{Fingerprint, Stored};

/// The facet a step run gets when a remote cache already held other outputs for
/// its key: the step is not deterministic (JSON: `remote`, `ours`, `theirs`,
/// `theirs_producer`).
pub const NONDETERMINISTIC_FACET: &str = "pedigree.nondeterministic";

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

/// A metric of a step run: a final value (`step` is `None`) or one point of a
/// series (an epoch). The engine records these; reads of many step runs return
/// them paired with their step run id.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
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
    pub status: Status,
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
    pub status: Status,
    pub reason: String,
    pub cached_from: Option<i64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub stderr_tail: Option<String>,
    pub log_hash: Option<String>,
    /// For a result fetched from a remote cache: where from (JSON, see
    /// `remote::cache`).
    pub remote_source: Option<String>,
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
pub struct LevelEdge {
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

/// What a search found: an artifact, and how the query matched it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, FromRow, Serialize)]
pub struct SearchHit {
    pub artifact_hash: String,
    /// `hash`, `path` or `release`.
    pub matched: String,
    /// The path or `NAME@VERSION` that matched (the hash itself for a hash match).
    pub label: String,
}

/// The old name of [`LevelEdge`], kept while the TUI's tree code moves.
pub type Edge = LevelEdge;
