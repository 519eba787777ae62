//! What the dashboard reads, and the reader that reads it off the render loop.
//!
//! The UI thread never touches the database: [`update`](super::app::update) returns
//! [`Request`]s, the [`Loader`] thread (its own tokio runtime and its own read-only
//! connection) answers each with a [`Loaded`] value over a channel. `--once` calls
//! [`load`] directly, since it draws one frame and has no loop to keep alive.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;

use crate::lineage::{
    ArtifactRow, LevelEdge, LineageError, ReadDb, RunFilter, RunInputRow, RunSummaryRow, SearchHit,
    SlotRow, Status, StepRunRow,
};

/// How many runs a page of the runs list holds; scrolling to its end asks for more.
pub const RUNS_PAGE: i64 = 200;
/// How many levels the ancestry and descendant trees follow.
pub const TREE_DEPTH: usize = 50;
/// At most this many edges per direction, so a raw input read by every run of a
/// huge database still opens quickly; the tree says when it was cut.
pub const TREE_EDGES: usize = 5000;

/// A question for the reader. Equal requests in flight are sent once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    Runs { filter: RunFilter, limit: i64 },
    Workflows,
    Run(i64),
    Artifact(String),
    Search(String),
    Metrics { run: i64, compare: Option<i64> },
}

/// An answer from the reader.
#[derive(Debug, Clone)]
pub enum Loaded {
    Runs {
        filter: RunFilter,
        rows: Vec<RunSummaryRow>,
        total: i64,
    },
    Workflows(Vec<String>),
    Run(Box<RunDetail>),
    /// The artifact asked for does not exist.
    NoArtifact(String),
    Artifact(Box<ArtifactDetail>),
    Search {
        query: String,
        hits: Vec<SearchHit>,
    },
    Metrics(Box<MetricsDetail>),
    /// The run asked for does not exist.
    NoRun(i64),
}

/// One run with its steps in DAG order.
#[derive(Debug, Clone)]
pub struct RunDetail {
    pub run: RunSummaryRow,
    pub steps: Vec<StepDetail>,
}

/// One step run of a run, with everything the Run view shows about it.
#[derive(Debug, Clone)]
pub struct StepDetail {
    pub row: StepRunRow,
    /// 0 for a step that reads only raw inputs; one more than its deepest producer otherwise.
    pub depth: usize,
    /// Where each input came from: `inputs.NAME` or `STEP.SLOT`, by input slot.
    pub input_sources: BTreeMap<String, String>,
    pub inputs: Vec<SlotRow>,
    pub outputs: Vec<SlotRow>,
    /// Params, metrics and facets of the step run that computed the outputs (the
    /// step run itself, or the one a cached step reused).
    pub params: Vec<(String, String)>,
    pub metrics: Vec<crate::lineage::Metric>,
    pub facets: Vec<(String, String)>,
}

/// What the artifact view knows about a step run in a tree.
#[derive(Debug, Clone, Default)]
pub struct StepInfo {
    /// `None` until the step run's row is read.
    pub status: Option<Status>,
    pub params: Vec<(String, String)>,
    pub facets: Vec<(String, String)>,
}

/// An artifact with its ancestry (up to raw inputs) and descendants.
#[derive(Debug, Clone)]
pub struct ArtifactDetail {
    pub hash: String,
    pub up: Vec<LevelEdge>,
    pub down: Vec<LevelEdge>,
    pub up_truncated: bool,
    pub down_truncated: bool,
    pub artifacts: HashMap<String, ArtifactRow>,
    /// Raw inputs among the artifacts: where they were read from.
    pub sources: HashMap<String, RunInputRow>,
    pub releases: HashMap<String, Vec<String>>,
    pub steps: HashMap<i64, StepInfo>,
}

/// Metrics of one run (or two, compared).
#[derive(Debug, Clone)]
pub struct MetricsDetail {
    pub runs: Vec<RunMetrics>,
}

impl MetricsDetail {
    /// Every series key of any run, sorted (the charts, in order).
    pub fn series_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .runs
            .iter()
            .flat_map(|r| r.series.keys().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

#[derive(Debug, Clone)]
pub struct RunMetrics {
    pub run: RunSummaryRow,
    /// `STEP.KEY` → (step number, value), for metrics recorded per epoch.
    pub series: BTreeMap<String, Vec<(i64, f64)>>,
    /// (step, key, value) for final metrics, in step order.
    pub finals: Vec<(String, String, f64)>,
    /// Workflow params as `params.NAME` and step params as `STEP.NAME`, JSON text.
    pub params: BTreeMap<String, String>,
}

type Result<T> = std::result::Result<T, LineageError>;

/// Answer one request.
pub async fn load(db: &ReadDb, req: &Request) -> Result<Loaded> {
    match req {
        Request::Runs { filter, limit } => Ok(Loaded::Runs {
            filter: filter.clone(),
            rows: db.runs_page(filter, *limit).await?,
            total: db.run_count(filter).await?,
        }),
        Request::Workflows => Ok(Loaded::Workflows(db.workflow_names().await?)),
        Request::Run(id) => Ok(match run_detail(db, *id).await? {
            Some(d) => Loaded::Run(Box::new(d)),
            None => Loaded::NoRun(*id),
        }),
        Request::Artifact(hash) => Ok(match artifact_detail(db, hash).await? {
            Some(d) => Loaded::Artifact(Box::new(d)),
            None => Loaded::NoArtifact(hash.clone()),
        }),
        Request::Search(q) => Ok(Loaded::Search {
            query: q.clone(),
            hits: db.search_artifacts(q, 50).await?,
        }),
        Request::Metrics { run, compare } => {
            let mut runs = Vec::new();
            for id in std::iter::once(*run).chain(*compare) {
                match run_metrics(db, id).await? {
                    Some(m) => runs.push(m),
                    None => return Ok(Loaded::NoRun(id)),
                }
            }
            Ok(Loaded::Metrics(Box::new(MetricsDetail { runs })))
        }
    }
}

/// The step run whose params, metrics and facets a step run shows.
fn source_id(s: &StepRunRow) -> i64 {
    s.cached_from.unwrap_or(s.id)
}

async fn run_detail(db: &ReadDb, id: i64) -> Result<Option<RunDetail>> {
    let Some(run) = db.run_summary(id).await? else {
        return Ok(None);
    };
    let rows = db.step_runs(id).await?;
    let inputs = db.run_step_inputs(id).await?;
    let outputs = db.run_step_outputs(id).await?;
    let raw: Vec<RunInputRow> = db.run_inputs_of(id).await?;
    let sources: Vec<i64> = rows.iter().map(source_id).collect();
    let params = db.params_of_many(&sources).await?;
    let metrics = db.metrics_of_many(&sources).await?;
    let facets = db.facets_of_many(&sources).await?;

    // Who produced each hash in this run (the earliest step that wrote it).
    let mut producer: HashMap<&str, (&str, &str, i64)> = HashMap::new();
    for o in &outputs {
        let step = rows
            .iter()
            .find(|s| s.id == o.step_run_id)
            .map(|s| s.step.as_str())
            .unwrap_or("?");
        producer
            .entry(o.artifact_hash.as_str())
            .or_insert((step, o.slot.as_str(), o.step_run_id));
    }
    let raw_by_hash: HashMap<&str, &str> = raw
        .iter()
        .map(|r| (r.artifact_hash.as_str(), r.name.as_str()))
        .collect();

    let mut steps: Vec<StepDetail> = rows
        .iter()
        .map(|row| {
            let src = source_id(row);
            let mine = |v: &[SlotRow]| -> Vec<SlotRow> {
                v.iter()
                    .filter(|s| s.step_run_id == row.id)
                    .cloned()
                    .collect()
            };
            let ins = mine(&inputs);
            let input_sources = ins
                .iter()
                .map(|i| {
                    let from = match producer.get(i.artifact_hash.as_str()) {
                        Some((step, slot, _)) => format!("{step}.{slot}"),
                        None => match raw_by_hash.get(i.artifact_hash.as_str()) {
                            Some(name) => format!("inputs.{name}"),
                            None => crate::util::fmt::short(&i.artifact_hash),
                        },
                    };
                    (i.slot.clone(), from)
                })
                .collect();
            StepDetail {
                row: row.clone(),
                depth: 0,
                input_sources,
                inputs: ins,
                outputs: mine(&outputs),
                params: params
                    .iter()
                    .filter(|p| p.step_run_id == src)
                    .map(|p| (p.key.clone(), p.value_json.clone()))
                    .collect(),
                metrics: metrics
                    .iter()
                    .filter(|(id, _)| *id == src)
                    .map(|(_, m)| m.clone())
                    .collect(),
                facets: facets
                    .iter()
                    .filter(|f| f.step_run_id == src)
                    .map(|f| (f.name.clone(), f.json.clone()))
                    .collect(),
            }
        })
        .collect();
    order_as_dag(&mut steps);
    Ok(Some(RunDetail { run, steps }))
}

/// Sort steps topologically (a step after the steps whose outputs it reads,
/// otherwise in the order they were recorded) and set each one's depth.
fn order_as_dag(steps: &mut Vec<StepDetail>) {
    let names: Vec<String> = steps.iter().map(|s| s.row.step.clone()).collect();
    let deps: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            let mut d: Vec<usize> = s
                .input_sources
                .values()
                .filter_map(|from| {
                    let (step, _) = from.split_once('.')?;
                    if step == "inputs" {
                        return None;
                    }
                    names.iter().position(|n| n == step)
                })
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    let n = steps.len();
    let deps: Vec<Vec<usize>> = deps
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.into_iter().filter(|&j| j != i).collect())
        .collect();
    // Recorded order breaks ties; a cycle cannot happen, but if the data had one the
    // steps keep their recorded order.
    let order = crate::util::topo::order(&deps).unwrap_or_else(|_| (0..n).collect());
    let mut placed = vec![false; n];
    let mut depth = vec![0usize; n];
    for &i in &order {
        depth[i] = deps[i]
            .iter()
            .filter(|&&d| placed[d])
            .map(|&d| depth[d] + 1)
            .max()
            .unwrap_or(0);
        placed[i] = true;
    }
    let mut taken: Vec<Option<StepDetail>> = steps.drain(..).map(Some).collect();
    for i in order {
        let mut s = taken[i].take().expect("each step placed once");
        s.depth = depth[i];
        steps.push(s);
    }
}

async fn artifact_detail(db: &ReadDb, hash: &str) -> Result<Option<ArtifactDetail>> {
    let root = db.artifacts_by_hash(&[hash.to_owned()]).await?;
    if root.is_empty() {
        return Ok(None);
    }
    let (up, up_truncated) = walk(db, hash, true).await?;
    let (down, down_truncated) = walk(db, hash, false).await?;
    let mut hashes: Vec<String> = std::iter::once(hash.to_owned())
        .chain(
            up.iter()
                .flat_map(|e| [Some(e.near.clone()), e.far.clone()])
                .flatten(),
        )
        .chain(
            down.iter()
                .flat_map(|e| [Some(e.near.clone()), e.far.clone()])
                .flatten(),
        )
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    hashes.sort();
    let mut artifacts = HashMap::new();
    let mut sources = HashMap::new();
    let mut releases: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in hashes.chunks(500) {
        for a in db.artifacts_by_hash(chunk).await? {
            artifacts.insert(a.hash.clone(), a);
        }
        for s in db.newest_sources(chunk).await? {
            sources.insert(s.artifact_hash.clone(), s);
        }
        for r in db.releases_of(chunk).await? {
            releases
                .entry(r.artifact_hash.clone())
                .or_default()
                .push(format!("{}@{}", r.name, r.version));
        }
    }
    let mut ids: Vec<i64> = up
        .iter()
        .chain(&down)
        .map(|e| e.step_run_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    ids.sort_unstable();
    let mut steps: HashMap<i64, StepInfo> = HashMap::new();
    for chunk in ids.chunks(500) {
        for s in db.step_runs_by_id(chunk).await? {
            steps.entry(s.id).or_default().status = Some(s.status);
        }
        for p in db.params_of_many(chunk).await? {
            steps
                .entry(p.step_run_id)
                .or_default()
                .params
                .push((p.key, p.value_json));
        }
        for f in db.facets_of_many(chunk).await? {
            steps
                .entry(f.step_run_id)
                .or_default()
                .facets
                .push((f.name, f.json));
        }
    }
    Ok(Some(ArtifactDetail {
        hash: hash.to_owned(),
        up,
        down,
        up_truncated,
        down_truncated,
        artifacts,
        sources,
        releases,
        steps,
    }))
}

/// Breadth-first over the lineage graph, one query per level, each artifact
/// expanded once (so shared ancestors cost nothing twice), up to [`TREE_DEPTH`]
/// levels and [`TREE_EDGES`] edges. Returns the edges and whether it was cut.
async fn walk(db: &ReadDb, hash: &str, up: bool) -> Result<(Vec<LevelEdge>, bool)> {
    let mut seen: HashSet<String> = HashSet::from([hash.to_owned()]);
    let mut frontier = vec![hash.to_owned()];
    let mut edges: Vec<LevelEdge> = Vec::new();
    let mut truncated = false;
    for _ in 0..TREE_DEPTH {
        if frontier.is_empty() {
            break;
        }
        let room = TREE_EDGES.saturating_sub(edges.len());
        if room == 0 {
            truncated = true;
            break;
        }
        let mut level = Vec::new();
        for chunk in frontier.chunks(500) {
            let limit = (room - level.len().min(room)) as i64 + 1;
            let mut got = if up {
                db.producers_of(chunk, limit).await?
            } else {
                db.consumers_of(chunk, limit).await?
            };
            level.append(&mut got);
            if level.len() > room {
                break;
            }
        }
        if level.len() > room {
            level.truncate(room);
            truncated = true;
        }
        // Stable order for the tree: by artifact, newest step run first going up
        // (oldest first going down), then slot.
        level.sort_by(|a, b| {
            let run = if up {
                b.step_run_id.cmp(&a.step_run_id)
            } else {
                a.step_run_id.cmp(&b.step_run_id)
            };
            a.near
                .cmp(&b.near)
                .then(run)
                .then(a.far_slot.cmp(&b.far_slot))
        });
        frontier = level
            .iter()
            .filter_map(|e| e.far.clone())
            .filter(|h| seen.insert(h.clone()))
            .collect();
        edges.extend(level);
        if truncated {
            break;
        }
    }
    if !frontier.is_empty() && !truncated {
        // Stopped at the depth limit with more to follow.
        truncated = true;
    }
    Ok((edges, truncated))
}

async fn run_metrics(db: &ReadDb, id: i64) -> Result<Option<RunMetrics>> {
    let Some(run) = db.run_summary(id).await? else {
        return Ok(None);
    };
    let rows = db.step_runs(id).await?;
    let ids: Vec<i64> = rows.iter().map(source_id).collect();
    let name_of: HashMap<i64, &str> = rows
        .iter()
        .map(|s| (source_id(s), s.step.as_str()))
        .collect();
    let mut series: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let mut finals = Vec::new();
    for (step_run_id, m) in db.metrics_of_many(&ids).await? {
        let step = name_of.get(&step_run_id).copied().unwrap_or("?");
        match m.step {
            Some(n) => series
                .entry(format!("{step}.{}", m.key))
                .or_default()
                .push((n, m.value)),
            None => finals.push((step.to_owned(), m.key, m.value)),
        }
    }
    let mut params = BTreeMap::new();
    if let Ok(serde_json::Value::Object(m)) =
        serde_json::from_str::<serde_json::Value>(&run.run.params_json)
    {
        for (k, v) in m {
            params.insert(format!("params.{k}"), v.to_string());
        }
    }
    for p in db.params_of_many(&ids).await? {
        let step = name_of.get(&p.step_run_id).copied().unwrap_or("?");
        params.insert(format!("{step}.{}", p.key), p.value_json);
    }
    Ok(Some(RunMetrics {
        run,
        series,
        finals,
        params,
    }))
}

/// What the reader sends to the UI thread.
pub type Reply = (Request, std::result::Result<Loaded, String>);

/// The reader thread: a current-thread tokio runtime with its own read-only
/// connection, answering requests in order. It also turns SIGTERM, SIGHUP and
/// SIGINT (raw mode turns Ctrl-C into a key, but `kill -INT` still arrives) into
/// a quit message, so the terminal is restored whichever way the TUI is stopped.
pub struct Loader {
    requests: tokio::sync::mpsc::UnboundedSender<Request>,
}

/// What arrives on the UI thread's channel.
pub enum Incoming {
    Reply(Reply),
    /// The reader could not start (the message says why).
    Failed(String),
    Signal,
}

impl Loader {
    pub fn spawn(db_path: PathBuf, out: mpsc::Sender<Incoming>) -> std::io::Result<Loader> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
        std::thread::Builder::new()
            .name("pedigree-tui-reader".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = out.send(Incoming::Failed(format!("cannot start the reader: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let db = match ReadDb::open(&db_path).await {
                        Ok(db) => db,
                        Err(e) => {
                            let _ = out.send(Incoming::Failed(e.to_string()));
                            return;
                        }
                    };
                    spawn_signal_watch(out.clone());
                    while let Some(req) = rx.recv().await {
                        let res = load(&db, &req).await.map_err(|e| e.to_string());
                        if out.send(Incoming::Reply((req, res))).is_err() {
                            break;
                        }
                    }
                    db.close().await;
                });
            })?;
        Ok(Loader { requests: tx })
    }

    pub fn send(&self, req: Request) -> bool {
        self.requests.send(req).is_ok()
    }
}

fn spawn_signal_watch(out: mpsc::Sender<Incoming>) {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::interrupt(),
    ] {
        let out = out.clone();
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                if s.recv().await.is_some() {
                    let _ = out.send(Incoming::Signal);
                }
            });
        }
    }
}
