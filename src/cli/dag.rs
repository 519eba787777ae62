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
    pub format: Format,
}

/// The `--format` values; the spec layer's [`DagFormat`] knows nothing of clap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Dot,
    Mermaid,
}

impl From<Format> for DagFormat {
    fn from(f: Format) -> DagFormat {
        match f {
            Format::Text => DagFormat::Text,
            Format::Dot => DagFormat::Dot,
            Format::Mermaid => DagFormat::Mermaid,
        }
    }
}

pub async fn run(args: Args) -> Result<Exit, CliError> {
    let (wf, dag) = spec::load(&args.workflow, &[])?;
    print!("{}", spec::dag::render(&wf, &dag, args.format.into()));
    Ok(Exit::Ok)
}
