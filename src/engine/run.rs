//! Running a resolved workflow: bind its raw inputs, begin the run in lineage,
//! drive the plan (independent steps in parallel up to `--jobs`, the rest in
//! dependency order; ready steps settled against the cache a wave at a time),
//! record what never ran, and finish the run.
//!
//! The parts live beside this file: [`super::plan`] (selection and the board),
//! [`super::inputs`] (raw inputs), [`super::cache`] (cache checks, key locks, the
//! result-cache seam), [`super::execute`] (one step, lock to commit),
//! [`super::invoke`] (a step's invocation), [`super::executor`] (the executor
//! seam), [`super::secrets`] and [`super::provenance`].
//!
//! Architecture invariant: a step run is recorded `succeeded` only in the same
//! transaction that records all of its outputs, and only after every output object
//! is durably in the store. Anything that dies before that leaves a `running` row
//! that the next run marks `interrupted`, and orphan objects that gc removes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::cache::{self, CacheStatus, CheckMode, LocalOnly, ResultCache};
use super::events::{Event, RunResult, RunStatus, StepResult, StepStatus};
use super::execute::{self, Ctx, Planned};
use super::executor::{Executor, LocalExecutor};
use super::hashing;
use super::inputs;
use super::key::KeyManifest;
use super::plan::{Board, Outputs, Role, Selection, SelectionError};
use super::provenance::git_state;
use super::resolve::Resolved;
use crate::lineage::{CachedRecord, Db, NewRun};
use crate::spec::Ref;
use crate::workspace::Workspace;

pub use super::invoke::remove_scratch;
pub use super::provenance::hostname;

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
    /// What runs steps and which result cache is asked (local by default).
    pub backends: Backends,
}

/// The two seams a run plugs into: the [`Executor`] that runs each step and the
/// [`ResultCache`] asked on a local miss. The scheduler only sees these traits.
#[derive(Clone)]
pub struct Backends {
    pub executor: Arc<dyn Executor>,
    pub cache: Arc<dyn ResultCache>,
}

impl Default for Backends {
    fn default() -> Self {
        Backends {
            executor: Arc::new(LocalExecutor),
            cache: Arc::new(LocalOnly),
        }
    }
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backends")
            .field("executor", &self.executor)
            .field("cache", &self.cache)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--only`, `--from` or `--force` names a step the workflow does not have.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error(transparent)]
    Lineage(#[from] crate::lineage::LineageError),
    #[error("input `{name}`: {source}")]
    Input {
        name: String,
        #[source]
        source: hashing::HashError,
    },
    #[error(
        "input `{name}` (`{}`) is {found}, not a regular file or a folder\n  = help: an input must be a file or a folder pedigree can read to its end; write the data to a file and point input `{name}` at it",
        path.display()
    )]
    InputKind {
        name: String,
        path: PathBuf,
        /// What it is instead: "a named pipe (FIFO)", "a socket", ….
        found: &'static str,
    },
    #[error(
        "input `{name}` (`{}`) changed while pedigree was reading it; run again once it is written",
        path.display()
    )]
    InputChanged { name: String, path: PathBuf },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Hash(#[from] hashing::HashError),
    #[error("cannot lock the workspace (`{}`): {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Cancelled before the run was recorded (while waiting for the workspace
    /// lock or reading the inputs).
    #[error("interrupted before the run started")]
    Interrupted,
}

impl RunError {
    /// The workflow, its inputs or the command line are wrong (exit code 2),
    /// rather than something failing while pedigree worked (exit code 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RunError::Selection(_)
                | RunError::Input { .. }
                | RunError::InputKind { .. }
                | RunError::InputChanged { .. }
        )
    }
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
    let selection = Selection::new(
        dag,
        &opts.only,
        opts.from.as_deref(),
        &opts.force,
        opts.force_all,
    )?;
    let roles = &selection.roles;

    let db = &ws.db;
    // Held shared for the whole run: `pedigree gc` takes it exclusively.
    let Some(_workspace_lock) = lock_workspace_shared(ws, &cancel).await? else {
        return Err(RunError::Interrupted);
    };
    let host = hostname();
    db.recover_dead_runs(&host).await?;
    let mut git = Some(tokio::spawn(git_state(ws.root.clone())));

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
    let mut stat = hashing::StatCache::load(db).await?;
    let hashed = inputs::hash_inputs(
        &mut stat,
        used_inputs.iter().map(|n| (n, &resolved.inputs[n])),
    );
    // Hashing reads the inputs off the runtime thread; a signal still ends the wait.
    let raw = until_cancelled(&cancel, hashed)
        .await
        .ok_or(RunError::Interrupted)??;
    stat.flush(db).await?;

    // The catalogue's first event of the run names the commit, so it waits for git
    // (started above, alongside the hashing); otherwise the run records it at the end.
    let (git_commit, git_dirty) = match git.take_if(|_| db.emits_openlineage()) {
        Some(g) => match tokio::time::timeout(Duration::from_secs(5), g).await {
            Ok(Ok(state)) => state,
            _ => (None, None),
        },
        None => (None, None),
    };
    let run_id = db
        .begin_run(&NewRun {
            workflow: wf.name.clone(),
            workflow_path: ws.relative(&wf.source.path),
            workflow_hash: wf.file_hash.clone(),
            git_commit,
            git_dirty,
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
        steps: selection.taking_part(),
    });

    // Make sure each raw input is in the store (a no-op when it already is) and record it.
    let mut run_inputs = Vec::new();
    for (name, input) in &raw {
        let path = &resolved.inputs[name];
        inputs::ingest(&ws.store, name, path, &input.hash)?;
        run_inputs.push((name.clone(), ws.relative(path), inputs::artifact_of(input)));
    }
    db.record_run_inputs(run_id, &run_inputs).await?;

    let ctx = Ctx {
        ws: ws.clone(),
        resolved: resolved.clone(),
        run_id,
        events: events.clone(),
        cancel: cancel.clone(),
        executor: opts.backends.executor.clone(),
        cache: opts.backends.cache.clone(),
        scratch: Arc::new(super::invoke::ScratchPool::new(ws.store.tmp_dir())),
    };

    let mut board = Board::new(dag, roles, resolved.steps.iter().map(|s| &s.inputs));
    let mut running: JoinSet<(usize, StepResult, Outputs)> = JoinSet::new();
    // Steps that missed the cache, in file order, waiting for a free job slot.
    let mut queued: VecDeque<Planned> = VecDeque::new();
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
            let planned: Vec<Planned> = board
                .take_ready()
                .into_iter()
                .map(|i| {
                    let step = &resolved.steps[i];
                    let inputs = board
                        .bind(i, |n| raw.get(n).map(|r| r.artifact.clone()))
                        .inputs;
                    let manifest = step.manifest(
                        inputs
                            .iter()
                            .map(|(k, a)| (k.clone(), a.hash.clone()))
                            .collect(),
                    );
                    let key = manifest.key();
                    Planned {
                        i,
                        manifest,
                        key,
                        inputs,
                        reason: String::new(),
                        forced: selection.forced.contains(&i),
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
                    let entry = entries.remove(&p.key);
                    match cache::check_entry(ws, entry, CheckMode::Repair).await? {
                        CacheStatus::Hit(hit) => {
                            let why = "cached: same key as an earlier run".to_owned();
                            let (r, record) = execute::cached(
                                step,
                                &p.key,
                                &p.inputs,
                                hit.step_run_id,
                                &hit.outputs,
                                why,
                                p.started,
                            );
                            board.pending.push((p.i, record));
                            let outs = Some(execute::to_artifacts(&hit.outputs));
                            finish(&mut board, &events, p.i, r, outs);
                            continue;
                        }
                        CacheStatus::Damaged(why) => {
                            let _ = events.send(Event::Warning(why.clone()));
                            p.reason = why;
                        }
                        CacheStatus::Miss => {}
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
                    finish(&mut board, &events, p.i, r, None);
                    continue;
                }
                queued.push_back(p);
            }
            flush(&mut board, db, run_id).await?;
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
                    cache::explain(db, &wf.name, &step.name, &p.manifest)
                        .await?
                        .text
                };
            }
            p.started = Instant::now();
            // `execute` says the step started once it knows it computes (not a hit
            // of another process or of the result cache).
            let c = ctx.clone();
            let i = p.i;
            running.spawn(async move {
                let (r, outs) = execute::execute(&c, p).await;
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
                finish(&mut board, &events, i, r, outs);
            }
            _ = cancel_rx.changed(), if !*cancel_rx.borrow() => {}
        }
    }
    flush(&mut board, db, run_id).await?;

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
    // Results published in the background: the run ends when they are up.
    let published = opts.backends.cache.finish().await;
    for w in published.warnings {
        let _ = events.send(Event::Warning(w));
    }
    for n in published.notes {
        let _ = events.send(Event::Note(n));
    }
    if let Some(git) = git
        && let Ok(Ok((commit, dirty))) = tokio::time::timeout(Duration::from_secs(5), git).await
    {
        db.set_git(run_id, commit, dirty).await?;
    }
    db.finish_run(run_id, status.as_str()).await?;
    Ok(RunResult {
        run_id,
        status,
        steps,
        inputs: raw
            .into_iter()
            .map(|(name, input)| (name, input.artifact.hash))
            .collect(),
    })
}

/// Tell the consumers a step finished, then record it on the board.
fn finish(
    board: &mut Board<'_>,
    events: &mpsc::UnboundedSender<Event>,
    i: usize,
    r: StepResult,
    outs: Outputs,
) {
    let _ = events.send(Event::StepFinished(r.clone()));
    board.finish(i, r, outs);
}

/// Write the board's pending cached-step records in one transaction.
async fn flush(board: &mut Board<'_>, db: &Db, run_id: i64) -> Result<(), RunError> {
    if board.pending.is_empty() {
        return Ok(());
    }
    let (idx, records): (Vec<usize>, Vec<CachedRecord>) =
        std::mem::take(&mut board.pending).into_iter().unzip();
    let ids = db.record_cached(run_id, &records).await?;
    for (i, id) in idx.into_iter().zip(ids) {
        if let Some(r) = board.results[i].as_mut() {
            r.step_run_id = Some(id);
        }
    }
    Ok(())
}

/// `f`'s output, or `None` once `cancel` is set (and `f` is dropped).
async fn until_cancelled<F: Future>(cancel: &watch::Receiver<bool>, f: F) -> Option<F::Output> {
    let mut cancel = cancel.clone();
    let cancelled = async move {
        while !*cancel.borrow_and_update() {
            if cancel.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        out = f => Some(out),
        () = cancelled => None,
    }
}

/// Take the workspace lock shared (`pedigree gc` takes it exclusively), waiting
/// while gc holds it; `None` if `cancel` is set meanwhile. The same lock file as
/// [`crate::workspace::lock_workspace`], polled so that a signal ends the wait.
async fn lock_workspace_shared(
    ws: &Workspace,
    cancel: &watch::Receiver<bool>,
) -> Result<Option<std::fs::File>, RunError> {
    let path = ws.store.locks_dir().join("workspace.lock");
    let lock_error = |source| RunError::Lock {
        path: path.clone(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_error)?;
    let mut announced = false;
    loop {
        match f.try_lock_shared() {
            Ok(()) => return Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(e)),
        }
        if *cancel.borrow() {
            return Ok(None);
        }
        if !announced {
            announced = true;
            eprintln!("waiting for `pedigree gc` to finish");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Why a step must run: the ingredient-by-ingredient diff against its last run.
pub async fn explain(
    db: &Db,
    workflow: &str,
    step: &str,
    manifest: &KeyManifest,
) -> Result<String, RunError> {
    Ok(cache::explain(db, workflow, step, manifest).await?.text)
}
