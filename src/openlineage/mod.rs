//! OpenLineage 2-0-2 events, built from plain facts: what a workflow run or a step
//! run is, which datasets it read and wrote, and how it ended. Nothing here reads a
//! database or sends anything: `lineage::outbox` gathers the facts (in the transaction
//! that records the run) and `catalogue` delivers the events.
//!
//! The mapping, in one place:
//! - a workflow run is a run of the job `WORKFLOW`, a step run a run of the job
//!   `WORKFLOW.STEP` whose `parent` (and `root`) is its workflow run;
//! - run ids are the UUIDs (v7) stored with each run and step run;
//! - a dataset is named by where it lives: a raw input by its path in the workspace
//!   (in the job namespace), any other artifact by its object in the store (the
//!   remote's URL when results are published to one); its version is its blake3 hash;
//! - a cache hit is a START and a COMPLETE whose `pedigree_step` facet says where
//!   the result came from (its JSON Schema ships in `docs/openlineage/`).

use serde_json::{Map, Value as Json, json};

/// The core schema the events follow.
pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

/// Who produced the events (this build).
pub const PRODUCER: &str = concat!(
    env!("CARGO_PKG_REPOSITORY"),
    "/tree/v",
    env!("CARGO_PKG_VERSION")
);

/// The custom facet's name and the schema it follows (shipped in the repository, as
/// the spec requires of custom facets).
pub const STEP_FACET: &str = "pedigree_step";
pub const STEP_FACET_SCHEMA: &str = concat!(
    env!("CARGO_PKG_REPOSITORY"),
    "/blob/main/docs/openlineage/PedigreeStepRunFacet.json#/$defs/PedigreeStepRunFacet"
);

/// A new run id: a UUID v7 (time-ordered, as OpenLineage recommends for run ids).
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// How a run's state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Start,
    Complete,
    Fail,
    Abort,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Complete => "COMPLETE",
            EventType::Fail => "FAIL",
            EventType::Abort => "ABORT",
        }
    }

    /// The terminal event of a run or step run in `status` (as stored), `None` while
    /// it is still running.
    pub fn terminal(status: &str) -> Option<EventType> {
        match status {
            "succeeded" | "cached" => Some(EventType::Complete),
            "failed" => Some(EventType::Fail),
            "interrupted" | "skipped" => Some(EventType::Abort),
            _ => None,
        }
    }
}

/// Where the objects of the store are, as OpenLineage dataset names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Objects {
    /// The workspace's own store on this host: `file://HOST`, `ROOT/AB/REST`.
    Local { host: String, root: String },
    /// A remote cache the run publishes to: `SCHEME://BUCKET`, `PREFIX/v1/cas/blake3/AB/HASH`.
    Remote { namespace: String, prefix: String },
}

impl Objects {
    /// The store or remote cache URL (`s3://bucket/prefix`, `file:///dir`) as a namespace and prefix.
    pub fn remote(url: &str) -> Objects {
        let (scheme, rest) = url.split_once("://").unwrap_or(("file", url));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = path.trim_matches('/');
        if scheme == "file" {
            // `file:///dir`: no authority; the name is the absolute path.
            return Objects::Remote {
                namespace: "file".into(),
                prefix: format!("/{path}"),
            };
        }
        Objects::Remote {
            namespace: format!("{scheme}://{authority}"),
            prefix: path.to_owned(),
        }
    }

    /// The dataset (namespace, name) of the object `hash`.
    pub fn dataset(&self, hash: &str) -> (String, String) {
        let ab = &hash[..2.min(hash.len())];
        match self {
            Objects::Local { host, root } => (
                format!("file://{host}"),
                format!("{}/{ab}/{}", root.trim_end_matches('/'), &hash[ab.len()..]),
            ),
            Objects::Remote { namespace, prefix } => {
                let sep = if prefix.is_empty() || prefix.ends_with('/') {
                    ""
                } else {
                    "/"
                };
                (
                    namespace.clone(),
                    format!("{prefix}{sep}v1/cas/blake3/{ab}/{hash}"),
                )
            }
        }
    }
}

/// What every event of a workspace shares.
#[derive(Debug, Clone)]
pub struct Context {
    /// The job namespace (also the namespace of raw inputs, named by workspace path).
    pub namespace: String,
    pub objects: Objects,
    /// The workspace root, for the workflow file's URL when the repository has none.
    pub root: String,
    pub host: String,
    /// The repository's URL (`git remote get-url origin`), when it has one.
    pub repo_url: Option<String>,
}

/// A workflow run, as recorded.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub id: i64,
    pub uuid: String,
    pub workflow: String,
    pub workflow_path: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub host: String,
    pub user: String,
}

/// One input or output of a step run.
#[derive(Debug, Clone)]
pub struct DatasetFacts {
    pub slot: String,
    pub hash: String,
    pub media_type: String,
    pub is_tree: bool,
    pub size: u64,
    /// The path in the workspace when it is a raw input of the run.
    pub raw_path: Option<String>,
    /// Its columns (pedigree's column summary: name → {type, nulls, min, max}), when
    /// a data step described it.
    pub columns: Option<Json>,
}

/// A step run, as recorded.
#[derive(Debug, Clone)]
pub struct StepFacts {
    pub id: i64,
    pub uuid: String,
    pub step: String,
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub step_key: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// The step run whose result a local cache hit reused: (id, uuid).
    pub cached_from: Option<(i64, String)>,
    /// Where a result taken from a remote cache came from (JSON, as recorded).
    pub remote_source: Option<Json>,
    pub inputs: Vec<DatasetFacts>,
    pub outputs: Vec<DatasetFacts>,
    /// The data step's facts (its own, or its producer's for a cache hit).
    pub rows: Option<Json>,
    pub columns_before: Option<Json>,
}

fn facet(schema: &str, body: Json) -> Json {
    let mut m = Map::new();
    m.insert("_producer".into(), json!(PRODUCER));
    m.insert("_schemaURL".into(), json!(schema));
    if let Json::Object(b) = body {
        m.extend(b);
    }
    Json::Object(m)
}

fn spec_facet(file: &str, def: &str, body: Json) -> Json {
    facet(
        &format!("https://openlineage.io/spec/facets/{file}#/$defs/{def}"),
        body,
    )
}

fn job_facets(ctx: &Context, run: &RunFacts, job_type: &str) -> Json {
    let mut f = Map::new();
    f.insert(
        "jobType".into(),
        spec_facet(
            "2-0-4/JobTypeJobFacet.json",
            "JobTypeJobFacet",
            json!({"processingType": "BATCH", "integration": "PEDIGREE", "jobType": job_type}),
        ),
    );
    let mut loc = json!({"type": "git", "path": run.workflow_path});
    let url = match (&ctx.repo_url, &run.git_commit) {
        (Some(repo), Some(commit)) if repo.starts_with("http") => format!(
            "{}/blob/{commit}/{}",
            repo.trim_end_matches(".git").trim_end_matches('/'),
            run.workflow_path
        ),
        _ => format!(
            "file://{}{}/{}",
            ctx.host,
            ctx.root.trim_end_matches('/'),
            run.workflow_path
        ),
    };
    loc["url"] = json!(url);
    if let Some(repo) = &ctx.repo_url {
        loc["repoUrl"] = json!(repo);
    }
    if let Some(commit) = &run.git_commit {
        loc["version"] = json!(commit);
    }
    if let Some(dirty) = run.git_dirty {
        // Not in the standard facet: whether the tree differed from `version`.
        loc["dirty"] = json!(dirty);
    }
    f.insert(
        "sourceCodeLocation".into(),
        spec_facet(
            "1-1-0/SourceCodeLocationJobFacet.json",
            "SourceCodeLocationJobFacet",
            loc,
        ),
    );
    Json::Object(f)
}

fn engine_facet() -> Json {
    spec_facet(
        "1-1-1/ProcessingEngineRunFacet.json",
        "ProcessingEngineRunFacet",
        json!({"name": "pedigree", "version": env!("CARGO_PKG_VERSION"), "openlineageAdapterVersion": env!("CARGO_PKG_VERSION")}),
    )
}

fn event(event_type: EventType, time: &str, run: Json, job: Json) -> Json {
    json!({
        "eventType": event_type.as_str(),
        "eventTime": time,
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": run,
        "job": job,
    })
}

/// The event of a workflow run: its START, or how it ended.
pub fn run_event(ctx: &Context, run: &RunFacts, event_type: EventType) -> Json {
    let time = match event_type {
        EventType::Start => run.started_at.as_str(),
        _ => run.finished_at.as_deref().unwrap_or(&run.started_at),
    };
    let mut e = event(
        event_type,
        time,
        json!({"runId": run.uuid, "facets": {"processing_engine": engine_facet()}}),
        json!({"namespace": ctx.namespace, "name": run.workflow, "facets": job_facets(ctx, run, "DAG")}),
    );
    e["inputs"] = json!([]);
    e["outputs"] = json!([]);
    e
}

/// The event of a step run of `run`: its START, or how it ended.
pub fn step_event(ctx: &Context, run: &RunFacts, step: &StepFacts, event_type: EventType) -> Json {
    let time = match event_type {
        EventType::Start => step.started_at.as_str(),
        _ => step.finished_at.as_deref().unwrap_or(&step.started_at),
    };
    let parent = json!({
        "run": {"runId": run.uuid},
        "job": {"namespace": ctx.namespace, "name": run.workflow},
        "root": {"run": {"runId": run.uuid}, "job": {"namespace": ctx.namespace, "name": run.workflow}},
    });
    let mut run_facets = Map::new();
    run_facets.insert(
        "parent".into(),
        spec_facet("1-2-0/ParentRunFacet.json", "ParentRunFacet", parent),
    );
    run_facets.insert("processing_engine".into(), engine_facet());
    run_facets.insert(STEP_FACET.into(), step_facet(run, step, event_type));
    if event_type == EventType::Fail {
        let language = if step.kind.starts_with("plugin:") {
            "unknown"
        } else {
            "Rust"
        };
        run_facets.insert(
            "errorMessage".into(),
            spec_facet(
                "1-0-1/ErrorMessageRunFacet.json",
                "ErrorMessageRunFacet",
                json!({
                    "message": step.error.as_deref().unwrap_or(&step.reason),
                    "programmingLanguage": language,
                }),
            ),
        );
    }
    let mut e = event(
        event_type,
        time,
        json!({"runId": step.uuid, "facets": run_facets}),
        json!({
            "namespace": ctx.namespace,
            "name": format!("{}.{}", run.workflow, step.step),
            "facets": job_facets(ctx, run, "TASK"),
        }),
    );
    // What a step measured of its inputs is known once it has finished.
    let measured = event_type == EventType::Complete;
    e["inputs"] = Json::Array(
        step.inputs
            .iter()
            .map(|d| input(ctx, step, d, measured))
            .collect(),
    );
    e["outputs"] = if event_type == EventType::Complete {
        Json::Array(step.outputs.iter().map(|d| output(ctx, step, d)).collect())
    } else {
        json!([])
    };
    e
}

/// The `pedigree_step` facet. A START says only what was known when the step began,
/// so the events `openlineage export` composes later are the ones sent at the time.
fn step_facet(run: &RunFacts, step: &StepFacts, event_type: EventType) -> Json {
    let mut f = json!({
        "stepRunId": step.id,
        "runId": run.id,
        "kind": step.kind,
        "reason": step.reason,
        "host": run.host,
        "user": run.user,
    });
    if let Some(key) = &step.step_key {
        f["stepKey"] = json!(key);
    }
    if let Some((id, uuid)) = &step.cached_from {
        f["cachedFrom"] = json!({"stepRunId": id, "runId": uuid});
    }
    if let Some(remote) = &step.remote_source
        && event_type != EventType::Start
    {
        f["remote"] = remote.clone();
    }
    facet(STEP_FACET_SCHEMA, f)
}

/// The dataset's namespace, name and the facets every mention of it carries.
fn dataset(ctx: &Context, d: &DatasetFacts) -> Json {
    let (namespace, name) = match &d.raw_path {
        Some(path) => (ctx.namespace.clone(), path.clone()),
        None => ctx.objects.dataset(&d.hash),
    };
    let mut facets = Map::new();
    facets.insert(
        "version".into(),
        spec_facet(
            "1-0-1/DatasetVersionDatasetFacet.json",
            "DatasetVersionDatasetFacet",
            json!({"datasetVersion": d.hash}),
        ),
    );
    if let Some(Json::Object(cols)) = &d.columns {
        let fields: Vec<Json> = cols
            .iter()
            .map(|(name, c)| json!({"name": name, "type": c.get("type").and_then(Json::as_str).unwrap_or("unknown")}))
            .collect();
        facets.insert(
            "schema".into(),
            spec_facet(
                "1-2-0/SchemaDatasetFacet.json",
                "SchemaDatasetFacet",
                json!({ "fields": fields }),
            ),
        );
    }
    json!({"namespace": namespace, "name": name, "facets": facets})
}

fn rows(step: &StepFacts, which: &str) -> Option<u64> {
    step.rows.as_ref()?.get(which)?.as_u64()
}

/// The slot whose table a data step reads and writes.
const TABLE_SLOT: &str = "table";

fn input(ctx: &Context, step: &StepFacts, d: &DatasetFacts, measured: bool) -> Json {
    let mut j = dataset(ctx, d);
    if measured
        && d.slot == TABLE_SLOT
        && let Some(Json::Object(cols)) = &step.columns_before
    {
        let metrics: Map<String, Json> = cols
            .iter()
            .map(|(name, c)| {
                let mut m = json!({});
                if let Some(n) = c.get("nulls").and_then(Json::as_u64) {
                    m["nullCount"] = json!(n);
                }
                for bound in ["min", "max"] {
                    if let Some(v) = c.get(bound).filter(|v| v.is_number()) {
                        m[bound] = v.clone();
                    }
                }
                (name.clone(), m)
            })
            .collect();
        let mut q = json!({"bytes": d.size, "columnMetrics": metrics});
        if let Some(n) = rows(step, "in") {
            q["rowCount"] = json!(n);
        }
        j["inputFacets"] = json!({
            "dataQualityMetrics": spec_facet(
                "1-0-3/DataQualityMetricsInputDatasetFacet.json",
                "DataQualityMetricsInputDatasetFacet",
                q,
            )
        });
    }
    j
}

fn output(ctx: &Context, step: &StepFacts, d: &DatasetFacts) -> Json {
    let mut j = dataset(ctx, d);
    let mut s = json!({"size": d.size});
    if d.slot == TABLE_SLOT
        && let Some(n) = rows(step, "out")
    {
        s["rowCount"] = json!(n);
    }
    j["outputFacets"] = json!({
        "outputStatistics": spec_facet(
            "1-0-2/OutputStatisticsOutputDatasetFacet.json",
            "OutputStatisticsOutputDatasetFacet",
            s,
        )
    });
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_named_where_they_live() {
        let h = "ab".to_owned() + &"0".repeat(62);
        let local = Objects::Local {
            host: "h1".into(),
            root: "/ws/.pedigree/objects".into(),
        };
        assert_eq!(
            local.dataset(&h),
            (
                "file://h1".into(),
                format!("/ws/.pedigree/objects/ab/{}", &h[2..])
            )
        );
        assert_eq!(
            Objects::remote("s3://team/cache/").dataset(&h),
            ("s3://team".into(), format!("cache/v1/cas/blake3/ab/{h}"))
        );
        assert_eq!(
            Objects::remote("s3://team").dataset(&h),
            ("s3://team".into(), format!("v1/cas/blake3/ab/{h}"))
        );
        assert_eq!(
            Objects::remote("file:///shared/cache").dataset(&h),
            ("file".into(), format!("/shared/cache/v1/cas/blake3/ab/{h}"))
        );
    }

    #[test]
    fn terminal_events_follow_the_stored_status() {
        assert_eq!(EventType::terminal("cached"), Some(EventType::Complete));
        assert_eq!(EventType::terminal("skipped"), Some(EventType::Abort));
        assert_eq!(EventType::terminal("failed"), Some(EventType::Fail));
        assert_eq!(EventType::terminal("running"), None);
    }

    #[test]
    fn run_ids_are_uuid_v7() {
        let a = new_run_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
        assert_ne!(a, new_run_id());
    }
}
