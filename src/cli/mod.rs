//! The command line: flags parsed by clap into one closed enum of commands, each
//! in its own file with the same shape (`async fn run(args, &Global) -> Result<Exit, CliError>`).
//! Human output is plain text readable without colour; `--json` is for scripts.

mod dag;
mod gc;
mod lineage;
mod progress;
mod recommend;
mod run;
mod runs;
mod sample;
mod status;
mod tui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diag::Diagnostic;
use crate::workspace::{self, ReadWorkspace, Workspace};

/// Exit codes: 0 success, 1 a step failed (or verification failed), 2 invalid
/// workflow or usage, 130 interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    StepFailed,
    Invalid,
    Interrupted,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Ok => 0,
            Exit::StepFailed => 1,
            Exit::Invalid => 2,
            Exit::Interrupted => 130,
        })
    }
}

/// A failure to report on stderr, with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn invalid(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Invalid,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::StepFailed,
            message: message.into(),
        }
    }
}

impl From<Diagnostic> for CliError {
    fn from(d: Diagnostic) -> Self {
        CliError {
            exit: Exit::Invalid,
            message: d.to_string().trim_end().to_owned(),
        }
    }
}

impl From<crate::lineage::LineageError> for CliError {
    fn from(e: crate::lineage::LineageError) -> Self {
        CliError::failed(format!("error: {e}"))
    }
}

impl From<crate::lineage::RefError> for CliError {
    fn from(e: crate::lineage::RefError) -> Self {
        if e.is_database() {
            return CliError::failed(format!("error: {e}"));
        }
        match e.help() {
            Some(help) => CliError::invalid(format!("error: {e}\n  = help: {help}")),
            None => CliError::invalid(format!("error: {e}")),
        }
    }
}

impl From<crate::workspace::WorkspaceError> for CliError {
    fn from(e: crate::workspace::WorkspaceError) -> Self {
        let hint = match e {
            workspace::WorkspaceError::NotInitialised(_) => {
                "\n  = help: run `pedigree run WORKFLOW` here first, or pass `--workspace DIR`"
            }
            _ => "",
        };
        CliError::invalid(format!("error: {e}{hint}"))
    }
}

impl From<crate::engine::run::RunError> for CliError {
    fn from(e: crate::engine::run::RunError) -> Self {
        match e {
            crate::engine::run::RunError::Usage(m) => CliError::invalid(format!("error: {m}")),
            crate::engine::run::RunError::Input { .. } => CliError::invalid(format!("error: {e}")),
            other => CliError::failed(format!("error: {other}")),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "pedigree",
    version,
    about = "Run ML workflows as a content-hashed DAG with full lineage"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct Global {
    /// The workspace root (default: the nearest ancestor with `.pedigree/`, else the current folder).
    #[arg(long, global = true, value_name = "DIR", env = "PEDIGREE_WORKSPACE")]
    pub workspace: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow: every step whose key is not cached, in dependency order.
    Run(run::Args),
    /// Show each step as fresh or stale, and why.
    Status(status::StatusArgs),
    /// Say which ingredient of a step's key changed since its last run.
    Why(status::WhyArgs),
    /// Draw a workflow's DAG.
    Dag(dag::Args),
    /// List runs, newest first.
    Runs(runs::RunsArgs),
    /// Show one run: its steps, statuses, reasons, keys and outputs.
    Show(runs::ShowArgs),
    /// Print the captured output of a step run.
    Log(runs::LogArgs),
    /// Compare two runs: params, step keys, outputs and metrics.
    Diff(runs::DiffArgs),
    /// Trace an artifact up to raw inputs or down to everything made from it.
    Lineage(lineage::Args),
    /// Remove objects that nothing references any more.
    Gc(gc::GcArgs),
    /// Re-hash every object and check every lineage reference.
    Verify(gc::VerifyArgs),
    /// Top items for a user from a published model, with the past interactions and input rows behind each.
    Recommend(recommend::Args),
    /// Open the terminal dashboard: runs, steps, artifact ancestry, metrics.
    Tui(tui::Args),
    /// Write a synthetic e-commerce event log with known faults (`events.csv`, `items.csv`, `manifest.json`).
    SampleData(sample::Args),
    /// Run a built-in step kind (used by `pedigree run`; not for people).
    #[command(name = "__builtin", hide = true)]
    Builtin { kind: String },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // The step supervisor's fallback entry point (when `pedigree-supervise` is not
    // installed beside this binary): before anything else, with no runtime.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "__supervise") {
        return crate::steps::supervise::main_from_args(args);
    }
    let cli = Cli::parse();
    if let Command::Builtin { kind } = &cli.command {
        // A built-in step in its own process: no runtime, no workspace.
        return crate::steps::builtin::main(kind);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(a) => run::run(a, &cli.global).await,
            Command::Status(a) => status::status(a, &cli.global).await,
            Command::Why(a) => status::why(a, &cli.global).await,
            Command::Dag(a) => dag::run(a).await,
            Command::Runs(a) => runs::runs(a, &cli.global).await,
            Command::Show(a) => runs::show(a, &cli.global).await,
            Command::Log(a) => runs::log(a, &cli.global).await,
            Command::Diff(a) => runs::diff(a, &cli.global).await,
            Command::Lineage(a) => lineage::run(a, &cli.global).await,
            Command::Gc(a) => gc::gc(a, &cli.global).await,
            Command::Verify(a) => gc::verify(a, &cli.global).await,
            Command::SampleData(a) => sample::run(a).await,
            Command::Recommend(a) => recommend::run(a, &cli.global).await,
            Command::Tui(a) => tui::run(a, &cli.global).await,
            Command::Builtin { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("{}", e.message);
            e.exit.into()
        }
    }
}

/// Open an existing workspace for a command that writes it (gc): no creation,
/// but the database is migrated.
pub async fn open_existing(g: &Global) -> Result<Workspace, CliError> {
    let root = workspace::find_root(g.workspace.as_deref())?;
    Ok(Workspace::open(&root, false).await?)
}

/// Open an existing workspace for a command that only reads it (`runs`, `show`,
/// `log`, `diff`, `lineage`, `tui`, and `recommend`/`verify` once they switch):
/// nothing is created, migrated or written.
pub async fn open_read(g: &Global) -> Result<ReadWorkspace, CliError> {
    let root = workspace::find_root(g.workspace.as_deref())?;
    Ok(ReadWorkspace::open(&root).await?)
}

/// Print JSON to stdout.
pub fn print_json<T: serde::Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into())
    );
}

/// Seconds for people: `0.42s`, `12.3s`, `4m05s`.
pub fn human_duration(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    }
}
