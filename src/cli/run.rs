//! `pedigree run WORKFLOW`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use tokio::sync::{mpsc, watch};

use super::{CliError, Exit, Global, print_json};
use crate::engine::events::{RunStatus, StepStatus};
use crate::engine::run::{self as engine_run, RunError, RunOptions};
use crate::engine::{key::short, lockfile, resolve, status};
use crate::spec::{self, Override};
use crate::workspace::{self, Workspace};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow file (YAML).
    pub workflow: PathBuf,
    /// Override a param: `STEP.KEY=VALUE` or `params.NAME=VALUE` (repeatable).
    #[arg(long = "set", value_name = "K=V")]
    pub set: Vec<String>,
    /// Steps to run at once (default: the number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Run only these steps and what they need (repeatable).
    #[arg(long, value_name = "STEP")]
    pub only: Vec<String>,
    /// Run this step and everything downstream of it; upstream results must be cached.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Rerun this step even if its key is cached (repeatable).
    #[arg(long, value_name = "STEP")]
    pub force: Vec<String>,
    /// Rerun every step.
    #[arg(long, conflicts_with = "force")]
    pub force_all: bool,
    /// Show what would run and why, without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// After a step fails, keep running the steps that do not depend on it.
    #[arg(long)]
    pub keep_going: bool,
    /// Print one JSON object describing the run on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
}

/// Load, validate and resolve a workflow for a workspace.
pub(super) async fn load(
    g: &Global,
    workflow: &std::path::Path,
    set: &[String],
    create: bool,
) -> Result<(Workspace, Arc<resolve::Resolved>), CliError> {
    let overrides: Vec<Override> = set
        .iter()
        .map(|s| Override::parse(s).map_err(|m| CliError::invalid(format!("error: {m}"))))
        .collect::<Result<_, _>>()?;
    let (wf, dag) = spec::load(workflow, &overrides)?;
    let root = workspace::find_root(g.workspace.as_deref())?;
    let resolved = resolve::resolve(wf, dag, &root)?;
    let ws = Workspace::open(&root, create).await?;
    Ok((ws, Arc::new(resolved)))
}

pub async fn run(args: Args, g: &Global) -> Result<Exit, CliError> {
    let (ws, resolved) = load(g, &args.workflow, &args.set, true).await?;
    if args.dry_run {
        let cache = super::remote::open_cache(&ws.root, &args.remote)?;
        return dry_run(&ws, &resolved, args.json, cache.as_deref()).await;
    }
    let opts = RunOptions {
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
        only: args.only.clone(),
        from: args.from.clone(),
        force: args.force.clone(),
        force_all: args.force_all,
        keep_going: args.keep_going,
        args_json: serde_json::to_string(&std::env::args().collect::<Vec<_>>()).unwrap_or_default(),
        backends: super::remote::backends(&ws.root, &args.remote)?,
    };
    // Events for the catalogue, when it is configured: queued with each record,
    // delivered alongside the run.
    let catalogue = super::openlineage::start(&ws, &args.remote)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    watch_signals(cancel_tx).map_err(|e| {
        CliError::failed(format!("error: cannot watch for Ctrl-C and SIGTERM: {e}"))
    })?;
    let quiet = args.json;
    let progress = super::progress::Progress::new(std::io::stderr().is_terminal(), quiet);
    let printer = tokio::spawn(progress.drive(rx));
    let result = engine_run::run(&ws, resolved.clone(), &opts, tx, cancel_rx).await;
    let _ = printer.await;
    super::openlineage::finish(catalogue).await;
    if let Err(RunError::Interrupted) = result {
        eprintln!("error: interrupted before the run started");
        return Ok(Exit::Interrupted);
    }
    let result = result?;

    // A complete run updates the workflow's lock file.
    if opts.only.is_empty() && opts.from.is_none() {
        // Every input (in file order) that the run read.
        let inputs: IndexMap<String, String> = resolved
            .inputs
            .keys()
            .filter_map(|name| Some((name.clone(), result.inputs.get(name)?.clone())))
            .collect();
        if let Some(lock) = lockfile::from_run(&resolved, &result, inputs) {
            let path = lockfile::path_for(&resolved.wf.source.path);
            if let Err(e) = lock.write(&path) {
                eprintln!(
                    "warning: cannot write the lock file `{}`: {e}",
                    path.display()
                );
            }
        }
    }
    ws.db.close().await;

    if args.json {
        print_json(&result);
    } else {
        let count = |s: StepStatus| result.steps.iter().filter(|r| r.status == s).count();
        let remote = result
            .steps
            .iter()
            .filter(|r| r.from_result_cache())
            .count();
        println!(
            "run {} {}: {} ran, {} cached{}, {} failed, {} skipped",
            result.run_id,
            result.status.as_str(),
            count(StepStatus::Succeeded),
            count(StepStatus::Cached),
            if remote > 0 {
                format!(" ({remote} from the remote)")
            } else {
                String::new()
            },
            count(StepStatus::Failed) + count(StepStatus::Interrupted),
            count(StepStatus::Skipped),
        );
        for s in result
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
        {
            if let Some(e) = &s.error {
                eprintln!("error: step `{}` failed: {e}", s.name);
            }
            if let Some(id) = s.step_run_id {
                eprintln!(
                    "  = help: the full output is in `pedigree log {} {}` (step run {id})",
                    result.run_id, s.name
                );
            }
        }
    }
    Ok(match result.status {
        RunStatus::Succeeded => Exit::Ok,
        RunStatus::Failed => Exit::Failure,
        RunStatus::Interrupted => Exit::Interrupted,
    })
}

/// After Ctrl-C or SIGTERM, how long a run has to stop its steps (each gets
/// SIGTERM, then SIGKILL after [`KILL_GRACE`](crate::steps::exec::KILL_GRACE)) and
/// record them, before pedigree exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Watch for Ctrl-C and SIGTERM on a thread of its own (with its own runtime), so
/// a signal is seen whatever the run's thread is blocked on: the first one sets
/// `cancel`, and pedigree exits with 130 if the run has not ended
/// [`SHUTDOWN_GRACE`] later, or at once on a second signal. Returns once the
/// handlers are installed.
fn watch_signals(cancel: watch::Sender<bool>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("pedigree-signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let (mut int, mut term) = match (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) {
                    (Ok(i), Ok(t)) => (i, t),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let _ = cancel.send(true);
                tokio::select! {
                    _ = tokio::time::sleep(SHUTDOWN_GRACE) => {}
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                eprintln!(
                    "error: pedigree did not stop within {}s of the signal; exiting now",
                    SHUTDOWN_GRACE.as_secs()
                );
                std::process::exit(130);
            });
        })?;
    ready_rx
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the signal thread ended")))
}

async fn dry_run(
    ws: &Workspace,
    resolved: &resolve::Resolved,
    json: bool,
    remote: Option<&crate::remote::RemoteCache>,
) -> Result<Exit, CliError> {
    let states = status::status(ws, resolved, false, super::remote::peek(remote)).await?;
    if json {
        print_json(&serde_json::json!({ "dry_run": true, "steps": states }));
        return Ok(Exit::Ok);
    }
    let stale = states.iter().filter(|s| s.state == "stale").count();
    println!(
        "{}: {stale} of {} steps would run",
        resolved.wf.name,
        states.len()
    );
    for s in &states {
        let key = s
            .key
            .as_deref()
            .map(short)
            .unwrap_or_else(|| "?".repeat(12));
        let verb = match s.state {
            "fresh" => "cached",
            "remote" => "fetch",
            _ => "run",
        };
        println!("  {verb:<6} {:<20} {key}  {}", s.name, s.reason);
    }
    Ok(Exit::Ok)
}
