//! The workflow lock file, `workflows/NAME.lock` beside `NAME.yaml`: each step's
//! key and output hashes after the last complete run, in DAG order, meant to be
//! committed so a pull request's diff shows what a change did to every step.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::events::{RunResult, StepStatus};
use super::key::KEY_SCHEMA;
use super::resolve::Resolved;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockFile {
    pub workflow: String,
    pub key_schema: u32,
    pub inputs: IndexMap<String, String>,
    pub steps: IndexMap<String, LockedStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedStep {
    pub key: String,
    pub outputs: IndexMap<String, String>,
}

/// Where the lock file of a workflow file lives.
pub fn path_for(workflow_file: &Path) -> PathBuf {
    workflow_file.with_extension("lock")
}

/// The lock file for a run in which every step succeeded or was cached; `None`
/// when the run did not produce every step.
pub fn from_run(
    resolved: &Resolved,
    result: &RunResult,
    inputs: IndexMap<String, String>,
) -> Option<LockFile> {
    if result.steps.len() != resolved.steps.len() {
        return None;
    }
    let mut steps = IndexMap::new();
    for s in &result.steps {
        if !matches!(s.status, StepStatus::Succeeded | StepStatus::Cached) {
            return None;
        }
        steps.insert(
            s.name.clone(),
            LockedStep {
                key: s.key.clone()?,
                outputs: s
                    .outputs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        );
    }
    Some(LockFile {
        workflow: resolved.wf.name.clone(),
        key_schema: KEY_SCHEMA,
        inputs,
        steps,
    })
}

impl LockFile {
    pub fn render(&self) -> String {
        let body = serde_yaml::to_string(self).unwrap_or_default();
        format!(
            "# Written by `pedigree run`: step keys and output hashes of the last complete run.\n# Commit this file; do not edit it.\n{body}"
        )
    }

    /// Write the lock file unless it already says exactly this (keeps mtimes and
    /// git quiet on no-op runs).
    pub fn write(&self, path: &Path) -> std::io::Result<bool> {
        let text = self.render();
        if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
            return Ok(false);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        crate::store::write_atomic(dir, path, text.as_bytes()).map_err(std::io::Error::other)?;
        Ok(true)
    }
}
