//! The **executor seam**: the engine prepares a step's whole [`Invocation`] (argv,
//! environment, request, input objects, expected outputs, limits, sandbox policy,
//! scratch folder) and hands it to an [`Executor`], which runs it and returns an
//! [`Outcome`]. The scheduler never knows which executor ran a step; the engine
//! checks and stores the outputs the same way whatever ran it.
//!
//! [`LocalExecutor`] is the one implementation today: a child process under the
//! step supervisor, in its own process group, with a cleared environment, a
//! size-capped log and the Landlock sandbox ([`crate::steps::exec`]). An executor
//! for Slurm (or any remote machine) implements the same trait: it stages the
//! scratch folder where the step runs, runs it, and leaves the outputs and the log
//! at the paths the invocation names before it returns.
//!
//! The executor is a trait object (`Arc<dyn Executor>`, methods returning a
//! [`BoxFuture`]) rather than a generic parameter: it is chosen at run time (by
//! configuration, later), it is called once per step so the allocation is noise
//! next to a process start, and a generic would spread a type parameter over
//! `run`, the scheduler and every task it spawns.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::cache::BoxFuture;
use crate::steps::exec::{self, Exit, ProgressFn};
use crate::steps::protocol::Request;
use crate::steps::sandbox::{self, Policy};

/// Everything needed to run one step, decided before it runs.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The step's name (for messages).
    pub step: String,
    pub argv: Vec<String>,
    /// The working folder (`scratch/work`).
    pub cwd: PathBuf,
    /// The complete environment of the step (nothing else is inherited).
    pub env: BTreeMap<String, String>,
    /// The request, as written at `request_path`.
    pub request: Request,
    pub request_path: PathBuf,
    /// The input objects by slot: content hash and where they are materialised.
    pub inputs: BTreeMap<String, InputObject>,
    /// Where the step must leave each declared output.
    pub outputs: BTreeMap<String, ExpectedOutput>,
    /// Wall-clock limit; the step is stopped past it.
    pub timeout: Duration,
    /// The file sandbox to confine the step to, if it is sandboxed.
    pub sandbox: Option<Policy>,
    /// The step's scratch folder (inputs, work, tmp, outputs, request, log).
    pub scratch: PathBuf,
    /// Where the step's captured output goes.
    pub log_path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputObject {
    pub hash: String,
    pub path: PathBuf,
    pub is_tree: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedOutput {
    pub path: PathBuf,
    /// A folder (else a file).
    pub dir: bool,
}

/// What the engine lends an executor while a step runs.
pub struct Control {
    /// Set to true to stop the step (it ends as [`Exit::Cancelled`]).
    pub cancel: watch::Receiver<bool>,
    /// Receives the rest of every progress line the step writes, as it arrives.
    pub on_progress: Option<Box<ProgressFn>>,
}

/// How a step ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Exit,
    pub started: SystemTime,
    pub elapsed: Duration,
    /// The last bytes of the step's stderr.
    pub stderr_tail: String,
    /// Things the user should know that did not fail the step.
    pub warnings: Vec<String>,
    /// No process of the step can still be running: the supervisor ended
    /// normally, which it does only after reaping the step's whole tree (it
    /// reports a tree it could not reap as killed). False when the supervisor
    /// itself was killed (by the step, or by a stop past its grace period) or
    /// there was none.
    pub contained: bool,
}

/// A step that could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start `{program}`: {source}")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs prepared step invocations.
pub trait Executor: Send + Sync + fmt::Debug {
    fn execute<'a>(
        &'a self,
        inv: &'a Invocation,
        ctl: Control,
    ) -> BoxFuture<'a, Result<Outcome, ExecError>>;
}

/// Runs steps as child processes of this one (see the module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn execute<'a>(
        &'a self,
        inv: &'a Invocation,
        ctl: Control,
    ) -> BoxFuture<'a, Result<Outcome, ExecError>> {
        Box::pin(async move {
            let mut warnings = Vec::new();
            // The supervisor builds and applies the ruleset; a failure there is
            // the step's exit 127 with the reason on its stderr.
            let sandbox = inv.sandbox.as_ref().filter(|_| sandbox::available());
            if inv.sandbox.is_some() && sandbox.is_none() {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    warnings.push(
                        "this kernel has no Landlock: plugins run without the file sandbox"
                            .to_owned(),
                    );
                });
            }
            let started = SystemTime::now();
            let clock = Instant::now();
            let supervisor = crate::steps::supervise::command();
            let outcome = exec::run(exec::Invocation {
                argv: &inv.argv,
                cwd: &inv.cwd,
                env: inv.env.clone(),
                timeout: inv.timeout,
                log_path: inv.log_path.clone(),
                cancel: ctl.cancel,
                sandbox,
                supervisor,
                on_progress: ctl.on_progress,
            })
            .await
            .map_err(|source| ExecError::Start {
                program: inv.argv.first().cloned().unwrap_or_default(),
                source,
            })?;
            // A step killed by a signal is ambiguous (the supervisor re-raises
            // the step's own fatal signal, and dies of SIGKILL if killed itself):
            // not contained, which costs only a fresh scratch folder.
            let contained =
                supervisor.is_some() && matches!(outcome.exit, Exit::Success | Exit::Code(_));
            Ok(Outcome {
                contained,
                exit: outcome.exit,
                started,
                elapsed: clock.elapsed(),
                stderr_tail: outcome.stderr_tail,
                warnings,
            })
        })
    }
}
