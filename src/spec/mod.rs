//! Workflow files: YAML text → [`raw`] structs → validated [`Workflow`] → [`Dag`].
//!
//! Architecture invariant: this module does no I/O besides reading the workflow
//! file. Plugin manifests and input files are the engine's business.

pub mod dag;
pub mod raw;
pub mod validate;
pub mod value;

pub use dag::{Dag, DagFormat};
pub use validate::{Action, Override, Ref, Step, Workflow, WorkflowInput};

use std::path::Path;

use crate::diag::Diagnostic;

/// Load a workflow file and derive its DAG, applying `--set` overrides.
pub fn load(path: &Path, overrides: &[Override]) -> Result<(Workflow, Dag), Diagnostic> {
    let wf = validate::load(path, overrides)?;
    let dag = Dag::build(&wf)?;
    Ok((wf, dag))
}
