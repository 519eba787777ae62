//! `pedigree dag WORKFLOW`.

use std::path::PathBuf;

use super::{CliError, Exit};
use crate::spec::{self, DagFormat};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow file (YAML).
    pub workflow: PathBuf,
    /// How to draw it.
    #[arg(long, value_enum, default_value = "text")]
    pub format: DagFormat,
}

pub async fn run(args: Args) -> Result<Exit, CliError> {
    let (wf, dag) = spec::load(&args.workflow, &[])?;
    print!("{}", spec::dag::render(&wf, &dag, args.format));
    Ok(Exit::Ok)
}
