//! What the engine reports while it works. Progress lines, `--json` summaries and
//! (later) the TUI are all consumers of these events.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Succeeded,
    Cached,
    Failed,
    Skipped,
    Interrupted,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Cached => "cached",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// How the reason of a step taken from a result cache beyond the store begins (the
/// cache's own account of the source follows).
pub const FROM_RESULT_CACHE: &str = "cached: from ";

impl StepResult {
    /// Was this step's result taken from a result cache beyond the store?
    pub fn from_result_cache(&self) -> bool {
        self.status == StepStatus::Cached && self.reason.starts_with(FROM_RESULT_CACHE)
    }
}

/// The outcome of one step in a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub name: String,
    pub status: StepStatus,
    pub key: Option<String>,
    pub reason: String,
    pub outputs: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_run_id: Option<i64>,
    #[serde(skip)]
    pub duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub run_id: i64,
    pub status: RunStatus,
    pub steps: Vec<StepResult>,
    /// Content hash of each workflow input the run read, by input name.
    #[serde(skip)]
    pub inputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        run_id: i64,
        workflow: String,
        steps: usize,
    },
    StepStarted {
        name: String,
        reason: String,
    },
    /// A running step's own report of how far it is (see `exec::PROGRESS_PREFIX`).
    StepProgress {
        name: String,
        done: u64,
        total: u64,
        text: String,
    },
    StepFinished(StepResult),
    Warning(String),
    /// Something worth saying that is not a problem (what was published).
    Note(String),
}

impl Event {
    /// Parses the rest of a progress line, `DONE/TOTAL TEXT`, into a
    /// [`Event::StepProgress`]; `None` when it does not start with two counts.
    /// Control characters in the text (escape sequences, carriage returns) become
    /// spaces: the text is drawn on the user's terminal.
    pub fn progress(name: &str, line: &str) -> Option<Event> {
        let p = crate::steps::protocol::Progress::parse(line)?;
        Some(Event::StepProgress {
            name: name.to_owned(),
            done: p.done,
            total: p.total,
            text: p.text,
        })
    }
}
