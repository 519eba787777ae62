//! The command line: flags parsed by clap into one closed enum of commands, each
//! in its own file with the same shape (`async fn run(args, &Global) -> Result<Exit, CliError>`).
//! Human output is plain text readable without colour; `--json` is for scripts.

mod dag;
mod gc;
mod init;
mod lineage;
mod openlineage;
mod progress;
mod recommend;
mod remote;
mod run;
mod runs;
mod sample;
mod status;
mod tui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diag::Diagnostic;
use crate::workspace::{self, ReadWorkspace, Workspace, WorkspaceError};

/// Exit codes: 0 success, 1 a failure (a step failed, verification found problems, the
/// database or store failed), 2 invalid workflow or usage, 130 interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    Failure,
    Invalid,
    Interrupted,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Invalid => 2,
            Exit::Interrupted => 130,
        })
    }
}

/// What went wrong, typed, so the exit code follows from the cause (as just's
/// `Error::code()` does) instead of being chosen at each call site.
#[derive(Debug)]
pub enum CliSource {
    /// A workflow, plugin manifest or override that does not validate.
    Invalid(Diagnostic),
    Workspace(WorkspaceError),
    Lineage(crate::lineage::LineageError),
    Run(crate::engine::run::RunError),
    Maintenance(crate::maintenance::MaintenanceError),
    /// Arguments that make no sense, already worded for people (`error: …`).
    Usage(String),
    /// A failure already worded for people (`error: …`).
    Failed(String),
}

/// A failure to report on stderr; its exit code comes from its source.
#[derive(Debug)]
pub struct CliError {
    pub source: CliSource,
}

impl CliError {
    pub fn invalid(message: impl Into<String>) -> Self {
        CliError {
            source: CliSource::Usage(message.into()),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            source: CliSource::Failed(message.into()),
        }
    }

    pub fn exit(&self) -> Exit {
        match &self.source {
            CliSource::Invalid(_) | CliSource::Usage(_) | CliSource::Workspace(_) => Exit::Invalid,
            CliSource::Run(e) if e.is_usage() => Exit::Invalid,
            CliSource::Run(_)
            | CliSource::Lineage(_)
            | CliSource::Maintenance(_)
            | CliSource::Failed(_) => Exit::Failure,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            CliSource::Invalid(d) => write!(f, "{}", d.to_string().trim_end()),
            CliSource::Usage(m) | CliSource::Failed(m) => f.write_str(m),
            CliSource::Workspace(e @ WorkspaceError::NotInitialised(_)) => write!(
                f,
                "error: {e}\n  = help: run `pedigree run WORKFLOW` here first, or pass `--workspace DIR`"
            ),
            CliSource::Workspace(e) => write!(f, "error: {e}"),
            CliSource::Lineage(e) => write!(f, "error: {e}"),
            CliSource::Run(e) => write!(f, "error: {e}"),
            CliSource::Maintenance(crate::maintenance::MaintenanceError::Lineage(e)) => {
                write!(f, "error: {e}")
            }
            CliSource::Maintenance(e) => write!(f, "error: {e}"),
        }
    }
}

impl From<Diagnostic> for CliError {
    fn from(d: Diagnostic) -> Self {
        CliError {
            source: CliSource::Invalid(d),
        }
    }
}

impl From<crate::lineage::LineageError> for CliError {
    fn from(e: crate::lineage::LineageError) -> Self {
        CliError {
            source: CliSource::Lineage(e),
        }
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

impl From<WorkspaceError> for CliError {
    fn from(e: WorkspaceError) -> Self {
        CliError {
            source: CliSource::Workspace(e),
        }
    }
}

impl From<crate::engine::run::RunError> for CliError {
    fn from(e: crate::engine::run::RunError) -> Self {
        CliError {
            source: CliSource::Run(e),
        }
    }
}

impl From<crate::maintenance::MaintenanceError> for CliError {
    fn from(e: crate::maintenance::MaintenanceError) -> Self {
        CliError {
            source: CliSource::Maintenance(e),
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
    /// Make a folder a workspace, with a starter workflow and plugin that run as they are.
    Init(init::Args),
    /// Print a shell completion script (`source <(pedigree completions bash)`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Publish the results a run computed to the remote cache.
    Push(remote::PushArgs),
    /// Fetch the results a workflow needs from the remote cache, without running anything.
    Pull(remote::PullArgs),
    /// Signing keys for the remote cache: make one, trust one, show yours.
    Key {
        #[command(subcommand)]
        cmd: remote::KeyCommand,
    },
    /// The remote cache itself: probe it, collect its garbage.
    Remote {
        #[command(subcommand)]
        cmd: remote::RemoteCommand,
    },
    /// OpenLineage events for the catalogue: send the waiting ones, export recorded runs.
    Openlineage {
        #[command(subcommand)]
        cmd: openlineage::OpenLineageCommand,
    },
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
    match &cli.command {
        // A built-in step in its own process: no runtime, no workspace.
        Command::Builtin { kind } => return crate::steps::builtin::main(kind),
        Command::Completions { shell } => {
            restore_sigpipe();
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "pedigree", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        c if c.only_reads() => restore_sigpipe(),
        _ => {}
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
            Command::Init(a) => init::run(a, &cli.global).await,
            Command::Push(a) => remote::push(a, &cli.global).await,
            Command::Pull(a) => remote::pull(a, &cli.global).await,
            Command::Key { cmd } => remote::key(cmd, &cli.global).await,
            Command::Remote { cmd } => remote::remote_cmd(cmd, &cli.global).await,
            Command::Openlineage { cmd } => openlineage::command(cmd, &cli.global).await,
            Command::Builtin { .. } | Command::Completions { .. } => {
                unreachable!("handled before the runtime starts")
            }
        }
    });
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("{e}");
            e.exit().into()
        }
    }
}

impl Command {
    /// Commands that print and change nothing: when the reader of their output goes
    /// away (`pedigree runs | head`), they may simply end, as `cat` and `git log` do.
    fn only_reads(&self) -> bool {
        matches!(
            self,
            Command::Status(_)
                | Command::Why(_)
                | Command::Dag(_)
                | Command::Runs(_)
                | Command::Show(_)
                | Command::Log(_)
                | Command::Diff(_)
                | Command::Lineage(_)
                | Command::Recommend(_)
                | Command::Verify(_)
        )
    }
}

/// Rust ignores SIGPIPE, so a write to a closed pipe fails and `println!` panics.
/// A command that only prints takes back the default action instead: it ends
/// quietly when the reader has gone, without a panic message. Commands that write
/// the store or the database (`run`, `gc`, ...) keep ignoring it, so a closed pipe
/// can never stop them half-way.
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to its default before any thread that
    // could rely on it exists; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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

pub use crate::util::fmt::human_duration;
