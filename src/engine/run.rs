//! Executing a resolved workflow: the scheduler (independent steps in parallel up
//! to `--jobs`, the rest in dependency order), cache lookups with object checks,
//! cross-process step locks, step execution and the lineage records of it all.
//!
//! Architecture invariant: a step run is recorded `succeeded` only in the same
//! transaction that records all of its outputs, and only after every output object
//! is durably in the store. Anything that dies before that leaves a `running` row
//! that the next run marks `interrupted`, and orphan objects that gc removes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::events::{Event, RunResult, RunStatus, StepResult, StepStatus};
use super::hashing;
use super::key::KeyManifest;
use super::resolve::{Resolved, ResolvedStep};
use crate::lineage::{
    CacheEntry, CachedRecord, Db, Metric, NewArtifact, NewOutput, NewRun, OutputRow, Success,
};
use crate::spec::Ref;
use crate::steps::exec::{self, Exit};
use crate::store::{Check, Store};
use crate::workspace::Workspace;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub jobs: usize,
    pub only: Vec<String>,
    pub from: Option<String>,
    pub force: Vec<String>,
    pub force_all: bool,
    pub keep_going: bool,
    /// The command line, recorded with the run.
    pub args_json: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Lineage(#[from] crate::lineage::LineageError),
    #[error("input `{name}`: {source}")]
    Input {
        name: String,
        #[source]
        source: hashing::HashError,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Hash(#[from] hashing::HashError),
    #[error("cannot lock the workspace: {0}")]
    Lock(#[from] std::io::Error),
}

/// An artifact known to the scheduler: what fills an input slot.
#[derive(Debug, Clone)]
struct Artifact {
    hash: String,
    /// File name to show it under when materialised.
    name: String,
    is_tree: bool,
}

/// A finished step's outputs by slot (none when it failed).
type Outputs = Option<BTreeMap<String, Artifact>>;

/// Which steps take part in a run and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Not part of this run (outside `--only`/`--from`).
    Out,
    /// Needed only for its outputs: must come from the cache.
    CacheOnly,
    /// Selected: runs if its key is not cached (or it is forced).
    Run,
}

/// Everything a step task needs, cheap to clone.
#[derive(Clone)]
struct Ctx {
    ws: Workspace,
    resolved: Arc<Resolved>,
    run_id: i64,
    events: mpsc::UnboundedSender<Event>,
    cancel: watch::Receiver<bool>,
}

/// Run `resolved` in `ws`. Events stream to `events`; setting `cancel` to true
/// stops running steps (recorded as interrupted) and launches nothing more.
pub async fn run(
    ws: &Workspace,
    resolved: Arc<Resolved>,
    opts: &RunOptions,
    events: mpsc::UnboundedSender<Event>,
    cancel: watch::Receiver<bool>,
) -> Result<RunResult, RunError> {
    let wf = &resolved.wf;
    let dag = &resolved.dag;
    let n = resolved.steps.len();
    let roles = roles(&resolved, opts)?;
    let forced: BTreeSet<usize> = if opts.force_all {
        (0..n).collect()
    } else {
        opts.force
            .iter()
            .map(|s| step_index(&resolved, s, "--force"))
            .collect::<Result<_, _>>()?
    };

    let db = &ws.db;
    // Held shared for the whole run: `pedigree gc` takes it exclusively.
    let _workspace_lock = crate::workspace::lock_workspace(ws, false)?;
    let host = hostname();
    db.recover_dead_runs(&host).await?;
    let git = tokio::spawn(git_state(ws.root.clone()));

    // Hash the raw inputs that participating steps read.
    let mut used_inputs = BTreeSet::new();
    for (i, s) in resolved.steps.iter().enumerate() {
        if roles[i] != Role::Out {
            for r in s.inputs.values() {
                if let Ref::Input(name) = r {
                    used_inputs.insert(name.clone());
                }
            }
        }
    }
    let mut raw: BTreeMap<String, (Artifact, hashing::ContentHash)> = BTreeMap::new();
    let mut stat = hashing::StatCache::load(db).await?;
    for name in &used_inputs {
        let path = &resolved.inputs[name];
        let h = stat
            .hash_path(path)
            .await
            .map_err(|source| RunError::Input {
                name: name.clone(),
                source,
            })?;
        let file_name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.clone());
        raw.insert(
            name.clone(),
            (
                Artifact {
                    hash: h.hash.clone(),
                    name: file_name,
                    is_tree: h.is_tree,
                },
                h,
            ),
        );
    }

    stat.flush(db).await?;
    let run_id = db
        .begin_run(&NewRun {
            workflow: wf.name.clone(),
            workflow_path: ws.relative(&wf.source.path),
            workflow_hash: wf.file_hash.clone(),
            git_commit: None,
            git_dirty: None,
            params_json: serde_json::to_string(&wf.params).unwrap_or_default(),
            args_json: opts.args_json.clone(),
            host,
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_default(),
        })
        .await?;
    crate::failpoint::hit("run-recorded");
    let _ = events.send(Event::RunStarted {
        run_id,
        workflow: wf.name.clone(),
        steps: roles.iter().filter(|r| **r != Role::Out).count(),
    });

    // Make sure each raw input is in the store (a no-op when it already is) and record it.
    let mut run_inputs = Vec::new();
    for (name, (art, h)) in &raw {
        ingest_input(&ws.store, name, &resolved.inputs[name], h)?;
        run_inputs.push((
            name.clone(),
            ws.relative(&resolved.inputs[name]),
            NewArtifact {
                stored: crate::store::Stored {
                    hash: art.hash.clone(),
                    size: h.size,
                    content_size: h.content_size,
                    is_tree: h.is_tree,
                },
                kind: if h.is_tree {
                    "folder".into()
                } else {
                    "file".into()
                },
                media_type: media_type_of(&art.name, h.is_tree),
            },
        ));
    }
    db.record_run_inputs(run_id, &run_inputs).await?;

    let ctx = Ctx {
        ws: ws.clone(),
        resolved: resolved.clone(),
        run_id,
        events: events.clone(),
        cancel: cancel.clone(),
    };

    let mut board = Board::new(dag, &roles, events.clone());
    let mut running: JoinSet<(usize, StepResult, Outputs)> = JoinSet::new();
    // Steps that missed the cache, in file order, waiting for a free job slot.
    let mut queued: std::collections::VecDeque<Planned> = std::collections::VecDeque::new();
    let mut stop: Option<String> = None;
    let jobs = opts.jobs.max(1);
    let mut cancel_rx = cancel.clone();

    loop {
        if *cancel_rx.borrow() && stop.is_none() {
            stop = Some("the run was interrupted".into());
        }
        // Settle every ready step against the cache: one query per wave of ready
        // steps, and cache hits can make further steps ready at once.
        while stop.is_none() && !board.ready.is_empty() {
            let wave: Vec<usize> = std::mem::take(&mut board.ready).into_iter().collect();
            let planned: Vec<Planned> = wave
                .into_iter()
                .map(|i| {
                    let step = &resolved.steps[i];
                    let inputs = board.inputs_of(step, &raw);
                    let manifest = step.manifest(
                        inputs
                            .iter()
                            .map(|(k, a)| (k.clone(), a.hash.clone()))
                            .collect(),
                    );
                    let key = manifest.key();
                    let forced = forced.contains(&i);
                    Planned {
                        i,
                        manifest,
                        key,
                        inputs,
                        reason: String::new(),
                        forced,
                        started: Instant::now(),
                    }
                })
                .collect();
            let keys: Vec<String> = planned
                .iter()
                .filter(|p| !p.forced)
                .map(|p| p.key.clone())
                .collect();
            let mut entries = db.lookup_many(&keys).await?;
            for mut p in planned {
                let step = &resolved.steps[p.i];
                if !p.forced {
                    match check_entry(&ctx, entries.remove(&p.key)).await? {
                        Hit::Yes(id, outs) => {
                            let why = "cached: same key as an earlier run".to_owned();
                            let (r, record) =
                                cached(step, &p.key, &p.inputs, id, &outs, why, p.started);
                            board.pending.push((p.i, record));
                            board.finish(p.i, r, Some(to_artifacts(&outs)));
                            continue;
                        }
                        Hit::Damaged(why) => p.reason = why,
                        Hit::No => {}
                    }
                }
                if roles[p.i] == Role::CacheOnly {
                    let msg = format!(
                        "step `{}` is outside --only/--from and has no cached result for its current inputs",
                        step.name
                    );
                    let id = db
                        .record_not_run(
                            run_id,
                            &step.name,
                            &step.kind_label(),
                            "failed",
                            &msg,
                            Some(&msg),
                        )
                        .await?;
                    let r = StepResult {
                        name: step.name.clone(),
                        status: StepStatus::Failed,
                        key: Some(p.key),
                        reason: msg.clone(),
                        outputs: BTreeMap::new(),
                        error: Some(format!("{msg}; run without --only/--from, or include it")),
                        step_run_id: Some(id),
                        duration: p.started.elapsed(),
                    };
                    if !opts.keep_going && stop.is_none() {
                        stop = Some(format!("the run stopped after `{}` failed", step.name));
                    }
                    board.finish(p.i, r, None);
                    continue;
                }
                queued.push_back(p);
            }
            board.flush(db, run_id).await?;
        }
        while stop.is_none() && running.len() < jobs {
            let Some(mut p) = queued.pop_front() else {
                break;
            };
            let step = &resolved.steps[p.i];
            if p.reason.is_empty() {
                p.reason = if p.forced {
                    "forced with --force".into()
                } else {
                    explain(db, &wf.name, &step.name, &p.manifest).await?
                };
            }
            p.started = Instant::now();
            let _ = events.send(Event::StepStarted {
                name: step.name.clone(),
                reason: p.reason.clone(),
            });
            let c = ctx.clone();
            let i = p.i;
            running.spawn(async move {
                let (r, outs) = execute(&c, p).await;
                (i, r, outs)
            });
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            done = running.join_next() => {
                let Some(done) = done else { continue };
                let (i, r, outs) = match done {
                    Ok(x) => x,
                    Err(e) => {
                        // A panicking step task is a bug; the run cannot say which step.
                        let _ = events.send(Event::Warning(format!("internal error in a step task: {e}")));
                        stop = Some("an internal error stopped the run".into());
                        continue;
                    }
                };
                if r.status == StepStatus::Failed && !opts.keep_going && stop.is_none() {
                    stop = Some(format!("the run stopped after `{}` failed", r.name));
                }
                board.finish(i, r, outs);
            }
            _ = cancel_rx.changed(), if !*cancel_rx.borrow() => {}
        }
    }
    board.flush(db, run_id).await?;

    // Whatever never ran: skipped, with the reason.
    let interrupted = *cancel.borrow();
    let results = &mut board.results;
    for &i in &dag.order {
        if roles[i] == Role::Out || results[i].is_some() {
            continue;
        }
        let step = &resolved.steps[i];
        let failed_dep = dag.ancestors(&[i]).into_iter().find(|&a| {
            results[a]
                .as_ref()
                .is_some_and(|r| matches!(r.status, StepStatus::Failed | StepStatus::Interrupted))
        });
        let reason = match (failed_dep, &stop) {
            (Some(a), _) => format!(
                "upstream `{}` {}",
                resolved.steps[a].name,
                results[a]
                    .as_ref()
                    .map(|r| r.status.as_str())
                    .unwrap_or("failed")
            ),
            (_, Some(s)) => format!("not started: {s}"),
            _ => "not started".into(),
        };
        let id = db
            .record_not_run(
                run_id,
                &step.name,
                &step.kind_label(),
                "skipped",
                &reason,
                None,
            )
            .await?;
        let r = StepResult {
            name: step.name.clone(),
            status: StepStatus::Skipped,
            key: None,
            reason,
            outputs: BTreeMap::new(),
            error: None,
            step_run_id: Some(id),
            duration: Duration::ZERO,
        };
        let _ = events.send(Event::StepFinished(r.clone()));
        results[i] = Some(r);
    }

    let steps: Vec<StepResult> = dag
        .order
        .iter()
        .filter_map(|&i| board.results[i].clone())
        .collect();
    let status = if interrupted || steps.iter().any(|s| s.status == StepStatus::Interrupted) {
        RunStatus::Interrupted
    } else if steps
        .iter()
        .any(|s| matches!(s.status, StepStatus::Failed | StepStatus::Skipped))
    {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    if let Ok(Ok((commit, dirty))) = tokio::time::timeout(Duration::from_secs(5), git).await {
        db.set_git(run_id, commit, dirty).await?;
    }
    db.finish_run(run_id, status.as_str()).await?;
    Ok(RunResult {
        run_id,
        status,
        steps,
        inputs: raw
            .into_iter()
            .map(|(name, (art, _))| (name, art.hash))
            .collect(),
    })
}

/// The scheduler's view of the run: what each step produced, what is ready, and
/// cached-step records not yet written.
struct Board<'a> {
    dag: &'a crate::spec::Dag,
    roles: &'a [Role],
    events: mpsc::UnboundedSender<Event>,
    outputs: Vec<Outputs>,
    results: Vec<Option<StepResult>>,
    /// Unfinished dependencies per step.
    missing: Vec<usize>,
    /// Steps whose dependencies are all done, in file order.
    ready: BTreeSet<usize>,
    pending: Vec<(usize, CachedRecord)>,
}

impl<'a> Board<'a> {
    fn new(
        dag: &'a crate::spec::Dag,
        roles: &'a [Role],
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        let n = dag.names.len();
        let missing: Vec<usize> = dag.deps.iter().map(Vec::len).collect();
        let ready = (0..n)
            .filter(|&i| missing[i] == 0 && roles[i] != Role::Out)
            .collect();
        Board {
            dag,
            roles,
            events,
            outputs: vec![None; n],
            results: vec![None; n],
            missing,
            ready,
            pending: Vec::new(),
        }
    }

    /// The artifacts filling a ready step's input slots.
    fn inputs_of(
        &self,
        step: &ResolvedStep,
        raw: &BTreeMap<String, (Artifact, hashing::ContentHash)>,
    ) -> BTreeMap<String, Artifact> {
        step.inputs
            .iter()
            .filter_map(|(slot, r)| {
                let art = match r {
                    Ref::Input(name) => raw.get(name)?.0.clone(),
                    Ref::Output { step, output } => {
                        let j = self.dag.index(step)?;
                        self.outputs[j].as_ref()?.get(output)?.clone()
                    }
                };
                Some((slot.clone(), art))
            })
            .collect()
    }

    /// Record a step's result; on success its dependants may become ready.
    fn finish(&mut self, i: usize, r: StepResult, outs: Outputs) {
        let ok = matches!(r.status, StepStatus::Succeeded | StepStatus::Cached);
        let _ = self.events.send(Event::StepFinished(r.clone()));
        self.results[i] = Some(r);
        if ok {
            self.outputs[i] = outs;
            for &d in &self.dag.dependents[i] {
                self.missing[d] -= 1;
                if self.missing[d] == 0 && self.roles[d] != Role::Out {
                    self.ready.insert(d);
                }
            }
        }
    }

    /// Write the pending cached-step records in one transaction.
    async fn flush(&mut self, db: &Db, run_id: i64) -> Result<(), RunError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (idx, records): (Vec<usize>, Vec<CachedRecord>) =
            std::mem::take(&mut self.pending).into_iter().unzip();
        let ids = db.record_cached(run_id, &records).await?;
        for (i, id) in idx.into_iter().zip(ids) {
            if let Some(r) = self.results[i].as_mut() {
                r.step_run_id = Some(id);
            }
        }
        Ok(())
    }
}

fn step_index(resolved: &Resolved, name: &str, flag: &str) -> Result<usize, RunError> {
    resolved.dag.index(name).ok_or_else(|| {
        RunError::Usage(format!(
            "`{flag} {name}`: the workflow has no step `{name}`; {}",
            crate::diag::suggest(name, "step", resolved.dag.names.iter().map(String::as_str))
        ))
    })
}

fn roles(resolved: &Resolved, opts: &RunOptions) -> Result<Vec<Role>, RunError> {
    let n = resolved.steps.len();
    let dag = &resolved.dag;
    if opts.only.is_empty() && opts.from.is_none() {
        return Ok(vec![Role::Run; n]);
    }
    let mut selected: BTreeSet<usize> = BTreeSet::new();
    if !opts.only.is_empty() {
        let idx: Vec<usize> = opts
            .only
            .iter()
            .map(|s| step_index(resolved, s, "--only"))
            .collect::<Result<_, _>>()?;
        selected.extend(dag.ancestors(&idx));
    }
    if let Some(from) = &opts.from {
        let i = step_index(resolved, from, "--from")?;
        let down = dag.descendants(&[i]);
        if opts.only.is_empty() {
            selected = down;
        } else {
            selected.retain(|s| down.contains(s));
        }
    }
    let needed = dag.ancestors(&selected.iter().copied().collect::<Vec<_>>());
    Ok((0..n)
        .map(|i| {
            if selected.contains(&i) {
                Role::Run
            } else if needed.contains(&i) {
                Role::CacheOnly
            } else {
                Role::Out
            }
        })
        .collect())
}

enum Hit {
    Yes(i64, Vec<OutputRow>),
    No,
    /// There was an entry but its objects are missing or damaged.
    Damaged(String),
}

/// Look `key` up and check its objects; damaged objects are quarantined and reported.
async fn cache_hit(ctx: &Ctx, key: &str) -> Result<Hit, RunError> {
    let entry = ctx.ws.db.lookup(key).await?;
    check_entry(ctx, entry).await
}

/// Check a cache entry's objects; damaged objects are quarantined and reported.
async fn check_entry(ctx: &Ctx, entry: Option<CacheEntry>) -> Result<Hit, RunError> {
    let Some(entry) = entry else {
        return Ok(Hit::No);
    };
    let store = &ctx.ws.store;
    let mut problems = Vec::new();
    for o in &entry.outputs {
        let mut check = store.check(&o.artifact_hash, o.size as u64, o.fingerprint());
        if let (Check::Ok(_), true) = (&check, o.is_tree) {
            check = check_tree(store, &o.artifact_hash);
        }
        match check {
            Check::Ok(fp) => {
                if o.fingerprint() != Some(fp) && !o.is_tree {
                    ctx.ws.db.set_fingerprint(&o.artifact_hash, fp).await?;
                }
            }
            Check::Missing => problems.push(format!(
                "output `{}` (object {}) is no longer in the store (removed by `pedigree gc` or by hand)",
                o.slot,
                &o.artifact_hash[..12]
            )),
            Check::Corrupt(why) => {
                let moved = store.quarantine(&o.artifact_hash).ok();
                problems.push(format!(
                    "output `{}` (object {}) is damaged: {why}{}",
                    o.slot,
                    &o.artifact_hash[..12],
                    moved
                        .map(|p| format!("; moved to `{}`", p.display()))
                        .unwrap_or_default()
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(Hit::Yes(entry.step_run_id, entry.outputs));
    }
    let msg = format!(
        "cached result unusable, recomputing: {}",
        problems.join("; ")
    );
    let _ = ctx.events.send(Event::Warning(msg.clone()));
    Ok(Hit::Damaged(msg))
}

/// A tree is usable when its manifest is and every member exists with its size.
fn check_tree(store: &Store, hash: &str) -> Check {
    let tree = match store.read_tree(hash) {
        Ok(t) => t,
        Err(e) => return Check::Corrupt(e.to_string()),
    };
    for e in &tree.entries {
        match store.check(&e.hash, e.size, None) {
            Check::Ok(_) => {}
            Check::Missing => return Check::Missing,
            Check::Corrupt(why) => return Check::Corrupt(format!("member `{}`: {why}", e.path)),
        }
    }
    store.check(
        hash,
        std::fs::metadata(store.object_path(hash))
            .map(|m| m.len())
            .unwrap_or(0),
        None,
    )
}

fn to_artifacts(outs: &[OutputRow]) -> BTreeMap<String, Artifact> {
    outs.iter()
        .map(|o| {
            (
                o.slot.clone(),
                Artifact {
                    hash: o.artifact_hash.clone(),
                    name: o.name.clone(),
                    is_tree: o.is_tree,
                },
            )
        })
        .collect()
}

/// The result and the lineage record of a step satisfied from the cache.
fn cached(
    step: &ResolvedStep,
    key: &str,
    inputs: &BTreeMap<String, Artifact>,
    from: i64,
    outs: &[OutputRow],
    reason: String,
    started: Instant,
) -> (StepResult, CachedRecord) {
    let record = CachedRecord {
        step: step.name.clone(),
        kind: step.kind_label(),
        key: key.to_owned(),
        reason: reason.clone(),
        cached_from: from,
        inputs: inputs
            .iter()
            .map(|(k, a)| (k.clone(), a.hash.clone()))
            .collect(),
        outputs: outs
            .iter()
            .map(|o| (o.slot.clone(), o.artifact_hash.clone(), o.name.clone()))
            .collect(),
    };
    let result = StepResult {
        name: step.name.clone(),
        status: StepStatus::Cached,
        key: Some(key.to_owned()),
        reason,
        outputs: outs
            .iter()
            .map(|o| (o.slot.clone(), o.artifact_hash.clone()))
            .collect(),
        error: None,
        step_run_id: None,
        duration: started.elapsed(),
    };
    (result, record)
}

/// Why a step must run: the ingredient-by-ingredient diff against its last run.
pub async fn explain(
    db: &Db,
    workflow: &str,
    step: &str,
    manifest: &KeyManifest,
) -> Result<String, RunError> {
    let Some((_, old_json)) = db.last_manifest(workflow, step).await? else {
        return Ok("no earlier run of this step".into());
    };
    let Ok(old) = serde_json::from_str::<KeyManifest>(&old_json) else {
        return Ok("the last run's key manifest is from another key schema".into());
    };
    let changes = manifest.diff(&old);
    if changes.is_empty() {
        return Ok("same key as its last run, but that result is no longer cached".into());
    }
    Ok(changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; "))
}

/// Copy a raw input into the store unless its object is already there, checking that
/// the bytes copied are the bytes hashed.
fn ingest_input(
    store: &Store,
    name: &str,
    path: &Path,
    h: &hashing::ContentHash,
) -> Result<(), RunError> {
    if store.object_path(&h.hash).exists() {
        return Ok(());
    }
    let stored = store.put_path(path)?;
    if stored.hash != h.hash {
        return Err(RunError::Usage(format!(
            "input `{name}` (`{}`) changed while pedigree was reading it; run again once it is written",
            path.display()
        )));
    }
    Ok(())
}

fn media_type_of(name: &str, is_tree: bool) -> String {
    if is_tree {
        return "inode/directory".into();
    }
    match Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
    {
        "csv" => "text/csv",
        "tsv" | "inter" | "item" | "user" => "text/tab-separated-values",
        "json" => "application/json",
        "parquet" => "application/vnd.apache.parquet",
        "md" => "text/markdown",
        "txt" | "log" => "text/plain",
        "yaml" | "yml" => "application/yaml",
        _ => "application/octet-stream",
    }
    .into()
}

/// A step about to execute: everything decided before it runs.
struct Planned {
    i: usize,
    manifest: KeyManifest,
    key: String,
    inputs: BTreeMap<String, Artifact>,
    reason: String,
    forced: bool,
    started: Instant,
}

/// Take the step's key lock (across processes), re-check the cache, then run it.
async fn execute(ctx: &Ctx, planned: Planned) -> (StepResult, Outputs) {
    let Planned {
        i,
        manifest,
        key,
        inputs,
        reason,
        forced,
        started,
    } = planned;
    let step = &ctx.resolved.steps[i];
    let fail = |status: StepStatus, error: String, id: Option<i64>| StepResult {
        name: step.name.clone(),
        status,
        key: Some(key.clone()),
        reason: reason.clone(),
        outputs: BTreeMap::new(),
        error: Some(error),
        step_run_id: id,
        duration: started.elapsed(),
    };
    let lock = match lock_key(ctx, &key).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return (
                fail(
                    StepStatus::Interrupted,
                    "interrupted while waiting for another process computing this step".into(),
                    None,
                ),
                None,
            );
        }
        Err(e) => {
            return (
                fail(
                    StepStatus::Failed,
                    format!("cannot take the step lock: {e}"),
                    None,
                ),
                None,
            );
        }
    };
    // Another process may have computed this key while we waited for the lock.
    let hit = if forced {
        Ok(Hit::No)
    } else {
        cache_hit(ctx, &key).await
    };
    match hit {
        Ok(Hit::Yes(id, outs)) => {
            let why = "cached: computed meanwhile by another pedigree process".to_owned();
            let step = &ctx.resolved.steps[i];
            let (mut r, record) = cached(step, &key, &inputs, id, &outs, why, started);
            let recorded = ctx.ws.db.record_cached(ctx.run_id, &[record]).await;
            r.step_run_id = recorded.as_ref().ok().and_then(|ids| ids.first().copied());
            drop(lock);
            return match recorded {
                Ok(_) => (r, Some(to_artifacts(&outs))),
                Err(e) => (fail(StepStatus::Failed, e.to_string(), None), None),
            };
        }
        Ok(_) => {}
        Err(e) => return (fail(StepStatus::Failed, e.to_string(), None), None),
    }
    let db = &ctx.ws.db;
    let ins: Vec<(String, String)> = inputs
        .iter()
        .map(|(k, a)| (k.clone(), a.hash.clone()))
        .collect();
    let id = match db
        .start_step(
            ctx.run_id,
            &step.name,
            &step.kind_label(),
            &key,
            &manifest.canonical(),
            &reason,
            &ins,
        )
        .await
    {
        Ok(id) => id,
        Err(e) => return (fail(StepStatus::Failed, e.to_string(), None), None),
    };
    crate::failpoint::hit("step-started");
    let result = run_step(ctx, step, id, &manifest, &inputs).await;
    let out = match result {
        Ok(PluginDone { success, outputs }) => match db.finish_success(id, &success).await {
            Ok(()) => {
                crate::failpoint::hit("step-committed");
                let arts = outputs;
                let r = StepResult {
                    name: step.name.clone(),
                    status: StepStatus::Succeeded,
                    key: Some(key.clone()),
                    reason: reason.clone(),
                    outputs: arts
                        .iter()
                        .map(|(k, a)| (k.clone(), a.hash.clone()))
                        .collect(),
                    error: None,
                    step_run_id: Some(id),
                    duration: started.elapsed(),
                };
                (r, Some(arts))
            }
            Err(e) => (
                fail(
                    StepStatus::Failed,
                    format!("cannot record the step's outputs: {e}"),
                    Some(id),
                ),
                None,
            ),
        },
        Err(PluginFailed {
            status,
            error,
            stderr_tail,
            log_hash,
        }) => {
            let s = if status == StepStatus::Interrupted {
                "interrupted"
            } else {
                "failed"
            };
            if let Err(e) = db
                .finish_failure(id, s, &error, stderr_tail.as_deref(), log_hash.as_deref())
                .await
            {
                let _ = ctx.events.send(Event::Warning(format!(
                    "cannot record the failure of `{}`: {e}",
                    step.name
                )));
            }
            let mut r = fail(status, error, Some(id));
            if let (Some(tail), Some(err)) = (
                stderr_tail.filter(|t| !t.trim().is_empty()),
                r.error.as_mut(),
            ) {
                err.push_str("\n--- stderr (last lines) ---\n");
                err.push_str(&last_lines(&tail, 20));
            }
            (r, None)
        }
    };
    drop(lock);
    out
}

#[cfg(test)]
mod tests {
    use super::Redactor;

    #[test]
    fn redacts_every_occurrence_longest_first() {
        let mut r = Redactor::default();
        r.add("TOKEN", "abc123");
        r.add("PART", "abc");
        r.add("EMPTY", "");
        assert_eq!(
            r.redact_str("x abc123 y abc z"),
            "x [secret TOKEN] y [secret PART] z"
        );
        assert_eq!(r.redact(b"\xffabc123"), b"\xff[secret TOKEN]".to_vec());
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Hold the per-key lock file; `None` if cancelled while waiting. The kernel drops
/// the lock when its process dies, so a killed run never leaves a stale lock.
async fn lock_key(ctx: &Ctx, key: &str) -> std::io::Result<Option<std::fs::File>> {
    let path = ctx.ws.store.locks_dir().join(format!("{key}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        if *ctx.cancel.borrow() {
            return Ok(None);
        }
        if !announced {
            announced = true;
            let _ = ctx.events.send(Event::Warning(format!(
                "waiting for another pedigree process that is computing key {}",
                &key[..12]
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

struct PluginDone {
    success: Success,
    outputs: BTreeMap<String, Artifact>,
}

struct PluginFailed {
    status: StepStatus,
    error: String,
    stderr_tail: Option<String>,
    log_hash: Option<String>,
}

impl PluginFailed {
    fn new(error: impl Into<String>) -> Self {
        PluginFailed {
            status: StepStatus::Failed,
            error: error.into(),
            stderr_tail: None,
            log_hash: None,
        }
    }
}

fn env_suffix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

async fn run_step(
    ctx: &Ctx,
    step: &ResolvedStep,
    step_run_id: i64,
    manifest: &KeyManifest,
    inputs: &BTreeMap<String, Artifact>,
) -> Result<PluginDone, PluginFailed> {
    let store = &ctx.ws.store;
    let scratch = store
        .tmp_dir()
        .join(format!("step-{step_run_id}-{}", std::process::id()));
    let guard = ScratchGuard(scratch.clone());
    let io = |what: &str, e: &dyn std::fmt::Display| {
        PluginFailed::new(format!(
            "cannot prepare the step's scratch folder ({what}): {e}"
        ))
    };
    let work = scratch.join("work");
    for d in [&work, &scratch.join("tmp"), &scratch.join("out")] {
        std::fs::create_dir_all(d).map_err(|e| io("create", &e))?;
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut req_inputs = serde_json::Map::new();
    for (slot, art) in inputs {
        // One link (or folder) per slot directly under `in/`, under the artifact's own
        // name so messages name the user's file; `SLOT-NAME` where two slots share a
        // name. No folder per slot: a 200-input join creates 200 links, not 400 inodes.
        let shared = inputs.values().filter(|a| a.name == art.name).count() > 1;
        let dest = scratch.join("in").join(input_name(slot, &art.name, shared));
        store
            .materialize(&art.hash, art.is_tree, &dest)
            .map_err(|e| io("inputs", &e))?;
        env.insert(
            format!("PEDIGREE_INPUT_{}", env_suffix(slot)),
            dest.to_string_lossy().into_owned(),
        );
        req_inputs.insert(
            slot.clone(),
            Json::String(dest.to_string_lossy().into_owned()),
        );
    }
    let mut req_outputs = serde_json::Map::new();
    let mut out_paths = BTreeMap::new();
    std::fs::create_dir_all(scratch.join("out")).map_err(|e| io("outputs", &e))?;
    for (slot, decl) in step.outputs() {
        // `out/FILE`, or `out/SLOT/FILE` when two slots declare the same file name.
        let shared = step
            .outputs()
            .values()
            .filter(|d| d.file == decl.file)
            .count()
            > 1;
        let dir = if shared {
            scratch.join("out").join(slot)
        } else {
            scratch.join("out")
        };
        std::fs::create_dir_all(&dir).map_err(|e| io("outputs", &e))?;
        let p = dir.join(&decl.file);
        env.insert(
            format!("PEDIGREE_OUTPUT_{}", env_suffix(slot)),
            p.to_string_lossy().into_owned(),
        );
        req_outputs.insert(slot.clone(), Json::String(p.to_string_lossy().into_owned()));
        out_paths.insert(slot.clone(), p);
    }
    for (k, v) in &manifest.params {
        let text = match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        env.insert(format!("PEDIGREE_PARAM_{}", env_suffix(k)), text);
    }
    let request = serde_json::json!({
        "step": step.name,
        "inputs": req_inputs,
        "outputs": req_outputs,
        "params": manifest.params,
        "scratch": work,
        "workspace": ctx.ws.root,
        "run_id": ctx.run_id,
        "input_hashes": inputs.iter().map(|(s, a)| (s.clone(), a.hash.clone())).collect::<BTreeMap<_, _>>(),
    });
    let req_path = scratch.join("request.json");
    std::fs::write(
        &req_path,
        serde_json::to_vec_pretty(&request).unwrap_or_default(),
    )
    .map_err(|e| io("request", &e))?;
    if let Ok(path) = std::env::var("PATH") {
        env.insert("PATH".into(), path);
    }
    env.insert("HOME".into(), work.to_string_lossy().into_owned());
    env.insert(
        "TMPDIR".into(),
        scratch.join("tmp").to_string_lossy().into_owned(),
    );
    env.insert("LANG".into(), "C.UTF-8".into());
    env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    env.insert(
        "PEDIGREE_REQUEST".into(),
        req_path.to_string_lossy().into_owned(),
    );
    env.insert(
        "PEDIGREE_PLUGIN_DIR".into(),
        step.spec
            .dir()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    env.insert("PEDIGREE_STEP".into(), step.name.clone());
    env.extend(crate::failpoint::step_env().into_iter().flatten());
    for (k, v) in &manifest.env {
        if let Some(v) = v {
            env.insert(k.clone(), v.clone());
        }
    }
    // Secrets reach the step's environment and nothing else: not the key, not the
    // request, and every captured byte of output is redacted before it is kept.
    let mut secrets = Redactor::default();
    for name in &step.secrets {
        match std::env::var(name) {
            Ok(v) => {
                secrets.add(name, &v);
                env.insert(name.clone(), v);
            }
            Err(_) => {
                return Err(PluginFailed::new(format!(
                    "the secret `{name}` is not set in pedigree's environment; export it before `pedigree run`"
                )));
            }
        }
    }

    let sandbox = if step.spec.sandbox {
        let policy = crate::steps::sandbox::Policy::for_step(
            &scratch,
            &ctx.ws.root,
            &step.spec.read,
            std::env::var("PATH").ok().as_deref(),
        );
        match crate::steps::sandbox::Sandbox::new(&policy) {
            Ok(Some(s)) => Some(Arc::new(s)),
            Ok(None) => {
                warn_once(
                    ctx,
                    "this kernel has no Landlock: plugins run without the file sandbox",
                );
                None
            }
            Err(e) => {
                return Err(PluginFailed::new(format!(
                    "cannot set up the file sandbox: {e}"
                )));
            }
        }
    } else {
        None
    };
    let log_path = scratch.join("log");
    let outcome = exec::run(exec::Invocation {
        argv: &step.spec.command,
        cwd: &work,
        env,
        timeout: step.spec.timeout,
        log_path: log_path.clone(),
        cancel: ctx.cancel.clone(),
        sandbox,
        supervisor: crate::steps::supervise::command(),
        on_progress: Some({
            let (events, name, secrets) = (ctx.events.clone(), step.name.clone(), secrets.clone());
            Box::new(move |line| {
                if let Some(ev) = Event::progress(&name, &secrets.redact_str(line)) {
                    let _ = events.send(ev);
                }
            })
        }),
    })
    .await;
    let mut outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            return Err(PluginFailed::new(format!(
                "cannot start `{}`: {e}",
                step.spec.command.first().map(String::as_str).unwrap_or("")
            )));
        }
    };
    if !secrets.is_empty()
        && let Ok(bytes) = std::fs::read(&log_path)
    {
        let _ = std::fs::write(&log_path, secrets.redact(&bytes));
    }
    // An empty log is not worth an object (most steps print nothing).
    let log_hash = match std::fs::metadata(&log_path) {
        Ok(m) if m.len() > 0 => store.put_file(&log_path).ok().map(|s| s.hash),
        _ => None,
    };
    outcome.stderr_tail = secrets.redact_str(&outcome.stderr_tail);
    let tail = Some(outcome.stderr_tail.clone());
    let failed = |status, error: String| PluginFailed {
        status,
        error,
        stderr_tail: tail.clone(),
        log_hash: log_hash.clone(),
    };
    let who = step.spec.describe();
    match outcome.exit {
        Exit::Success => {}
        Exit::Code(c) => {
            return Err(failed(
                StepStatus::Failed,
                format!("{who} exited with code {c}"),
            ));
        }
        Exit::Signal(s) => {
            return Err(failed(
                StepStatus::Failed,
                format!("{who} was killed by signal {s}"),
            ));
        }
        Exit::TimedOut(t) => {
            return Err(failed(
                StepStatus::Failed,
                format!(
                    "{who} ran longer than its timeout of {}s and was stopped",
                    t.as_secs_f64()
                ),
            ));
        }
        Exit::Cancelled => return Err(failed(StepStatus::Interrupted, "interrupted".into())),
    }

    // Every declared output must exist with the declared shape before anything is stored.
    for (slot, p) in &out_paths {
        let decl = &step.outputs()[slot];
        let meta = std::fs::symlink_metadata(p);
        let ok = match &meta {
            Ok(m) if decl.dir => m.is_dir(),
            Ok(m) => m.is_file(),
            Err(_) => false,
        };
        if !ok {
            let what = if decl.dir { "a folder" } else { "a file" };
            let found = match meta {
                Err(_) => "nothing is there".to_owned(),
                Ok(m) if m.file_type().is_symlink() => "a symbolic link is there".to_owned(),
                Ok(m) if m.is_dir() => "a folder is there".to_owned(),
                Ok(_) => "a file is there".to_owned(),
            };
            return Err(failed(
                StepStatus::Failed,
                format!(
                    "{who} exited 0 but did not write output `{slot}`: expected {what} at $PEDIGREE_OUTPUT_{} ({}), {found}",
                    env_suffix(slot),
                    p.display()
                ),
            ));
        }
    }
    let metrics =
        read_metrics(&work.join("metrics.json")).map_err(|e| failed(StepStatus::Failed, e))?;
    let facets: Vec<_> = read_facets(&work.join("facets.json"))
        .map_err(|e| failed(StepStatus::Failed, e))?
        .into_iter()
        .map(|(a, name, json)| (a, secrets.redact_str(&name), secrets.redact_str(&json)))
        .collect();

    let mut success = Success {
        params: manifest
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        metrics,
        facets,
        stderr_tail: tail.clone(),
        log_hash: log_hash.clone(),
        ..Default::default()
    };
    let mut arts = BTreeMap::new();
    for (slot, p) in &out_paths {
        let decl = &step.outputs()[slot];
        let stored = store.put_path(p).map_err(|e| {
            failed(
                StepStatus::Failed,
                format!("cannot store output `{slot}`: {e}"),
            )
        })?;
        let fp = std::fs::symlink_metadata(store.object_path(&stored.hash))
            .ok()
            .map(|m| crate::store::fingerprint(&m));
        arts.insert(
            slot.clone(),
            Artifact {
                hash: stored.hash.clone(),
                name: decl.file.clone(),
                is_tree: stored.is_tree,
            },
        );
        success.outputs.push(NewOutput {
            slot: slot.clone(),
            name: decl.file.clone(),
            artifact: NewArtifact {
                stored,
                kind: decl.kind.clone(),
                media_type: decl.media_type.clone(),
            },
            fingerprint: if decl.dir { None } else { fp },
        });
    }
    crate::failpoint::hit("outputs-stored");
    drop(guard);
    Ok(PluginDone {
        success,
        outputs: arts,
    })
}

fn warn_once(ctx: &Ctx, msg: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        let _ = ctx.events.send(Event::Warning(msg.to_owned()));
    });
}

/// Replaces the values of a step's secrets in captured output with `[secret NAME]`.
#[derive(Default, Clone)]
struct Redactor {
    secrets: Vec<(String, Vec<u8>)>,
}

impl Redactor {
    fn add(&mut self, name: &str, value: &str) {
        // An empty value cannot be found in text; a one-character one would redact noise.
        if value.len() >= 2 {
            self.secrets
                .push((name.to_owned(), value.as_bytes().to_vec()));
            // Longest first, so a secret containing another is replaced whole.
            self.secrets
                .sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        }
    }

    fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (name, value) in &self.secrets {
            let mask = format!("[secret {name}]").into_bytes();
            let mut next = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(value) {
                    next.extend_from_slice(&mask);
                    i += value.len();
                } else {
                    next.push(out[i]);
                    i += 1;
                }
            }
            out = next;
        }
        out
    }

    fn redact_str(&self, s: &str) -> String {
        if self.is_empty() {
            return s.to_owned();
        }
        String::from_utf8_lossy(&self.redact(s.as_bytes())).into_owned()
    }
}

/// The name an input is materialised under: its own, or `SLOT-NAME` when another
/// input of the step has the same name.
fn input_name(slot: &str, name: &str, shared: bool) -> String {
    if shared {
        format!("{slot}-{name}")
    } else {
        name.to_owned()
    }
}

/// Removes a step's scratch folder when dropped (it was copied into the store).
struct ScratchGuard(PathBuf);

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        let _ = remove_scratch(&self.0);
    }
}

/// Remove a scratch folder, even one a plugin left read-only.
pub fn remove_scratch(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(p).is_ok() {
        return Ok(());
    }
    // A plugin may leave read-only folders behind; make them writable so removal works.
    fn fix(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    fix(&e.path());
                }
            }
        }
    }
    fix(p);
    std::fs::remove_dir_all(p)
}

/// `metrics.json`: `{"name": number}` or `[{"key", "value", "step"?}]`.
fn read_metrics(path: &Path) -> Result<Vec<Metric>, String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(Vec::new());
    };
    let bad = |m: String| format!("metrics.json written by the plugin is invalid: {m}");
    let v: Json = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    match v {
        Json::Object(m) => {
            for (k, v) in m {
                let value = v
                    .as_f64()
                    .ok_or_else(|| bad(format!("`{k}` is not a number")))?;
                out.push(Metric {
                    key: k,
                    value,
                    step: None,
                });
            }
        }
        Json::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let key = item
                    .get("key")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad(format!("item {i} has no string `key`")))?;
                let value = item
                    .get("value")
                    .and_then(Json::as_f64)
                    .ok_or_else(|| bad(format!("item {i} has no numeric `value`")))?;
                let step = match item.get("step") {
                    None | Some(Json::Null) => None,
                    Some(s) => Some(s.as_i64().ok_or_else(|| {
                        bad(format!("item {i} has a `step` that is not an integer"))
                    })?),
                };
                out.push(Metric {
                    key: key.to_owned(),
                    value,
                    step,
                });
            }
        }
        _ => return Err(bad("expected an object or a list".into())),
    }
    Ok(out)
}

/// `facets.json`: `{"name": any JSON}`, attached to the step run.
fn read_facets(path: &Path) -> Result<Vec<(Option<String>, String, String)>, String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(Vec::new());
    };
    let v: Json = serde_json::from_slice(&bytes)
        .map_err(|e| format!("facets.json written by the plugin is invalid: {e}"))?;
    let Json::Object(m) = v else {
        return Err(
            "facets.json written by the plugin is invalid: expected an object of named facets"
                .into(),
        );
    };
    Ok(m.into_iter()
        .map(|(k, v)| (None, k, v.to_string()))
        .collect())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// The commit checked out in the workspace and whether tracked files differ from it.
async fn git_state(root: PathBuf) -> (Option<String>, Option<bool>) {
    let out = |args: &'static [&'static str]| {
        let root = root.clone();
        async move {
            tokio::process::Command::new("git")
                .args(args)
                .current_dir(&root)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .await
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        }
    };
    let commit = out(&["rev-parse", "HEAD"]).await;
    if commit.is_none() {
        return (None, None);
    }
    let dirty = out(&["status", "--porcelain", "--untracked-files=no"])
        .await
        .map(|s| !s.is_empty());
    (commit, dirty)
}
