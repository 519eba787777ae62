//! `pedigree init [DIR]`: make a folder a pedigree workspace with a starter workflow
//! and plugin that run as they are, then say what to do next. It never overwrites: a
//! file that already exists stops it before anything is written.

use std::path::{Path, PathBuf};

use super::{CliError, Exit, Global};
use crate::workspace::{self, Workspace};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder to make a workspace (default: `--workspace`, else the current folder).
    pub dir: Option<PathBuf>,
}

/// What `init` writes, relative to the workspace root. The workflow runs a built-in
/// kind (`clean`) and a plugin (`line-count`, POSIX `sh` only) on a small committed
/// table, so the first `pedigree run` shows both ends of the product.
const FILES: &[(&str, &str, bool)] = &[
    ("pedigree.toml", crate::config::TEMPLATE, false),
    ("workflows/hello.yaml", HELLO_WORKFLOW, false),
    ("workflows/data/hello/events.csv", HELLO_EVENTS, false),
    ("plugins/line-count/plugin.yaml", LINE_COUNT_MANIFEST, false),
    ("plugins/line-count/main.sh", LINE_COUNT_MAIN, true),
];

const HELLO_WORKFLOW: &str = "\
name: hello
description: >-
  A starter workflow made by `pedigree init`: clean a small event table with the built-in
  `clean` step, and count its lines with the `line-count` plugin in plugins/.
inputs:
  events: data/hello/events.csv
steps:
  clean:
    uses: clean
    inputs: { table: inputs.events }
    with:
      required: [user_id, item_id, event]
      lowercase: [event]
      allowed: { event: [view, click, purchase] }
  count:
    plugin: line-count
    inputs: { table: inputs.events }
";

const HELLO_EVENTS: &str = "\
user_id,item_id,event
u1,i1,view
u1,i2,click
u2,i1,VIEW
u2,i3,purchase
u3,,view
u3,i2,teleport
";

const LINE_COUNT_MANIFEST: &str = "\
description: Count the lines of a text file (a starter plugin made by `pedigree init`).
command: [sh, \"${plugin}/main.sh\"]
inputs:
  table: {}
outputs:
  summary: { file: summary.txt, kind: report, media_type: text/plain }
timeout: 60
";

const LINE_COUNT_MAIN: &str = "\
#!/bin/sh
# A pedigree plugin: the input is at $PEDIGREE_INPUT_TABLE, the output goes to
# $PEDIGREE_OUTPUT_SUMMARY, and metrics.json in the working folder is recorded.
set -eu
lines=$(wc -l < \"$PEDIGREE_INPUT_TABLE\")
lines=$((lines + 0))
printf 'lines: %s\\n' \"$lines\" > \"$PEDIGREE_OUTPUT_SUMMARY\"
printf '{\"lines\": %s}\\n' \"$lines\" > metrics.json
";

pub async fn run(args: Args, g: &Global) -> Result<Exit, CliError> {
    let root = match args.dir.as_deref().or(g.workspace.as_deref()) {
        Some(d) => std::path::absolute(d)
            .map_err(|e| CliError::invalid(format!("error: cannot use `{}`: {e}", d.display())))?,
        None => workspace::find_root(None)?,
    };
    let existing: Vec<String> = std::iter::once(workspace::DIR.to_owned())
        .chain(FILES.iter().map(|(p, _, _)| (*p).to_owned()))
        .filter(|p| root.join(p).symlink_metadata().is_ok())
        .collect();
    if !existing.is_empty() {
        return Err(CliError::invalid(format!(
            "error: `{}` already has {}; `pedigree init` never overwrites\n  = help: run `pedigree run workflows/hello.yaml` if this is a workspace already, or `pedigree init NEW_DIR`",
            root.display(),
            existing
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for (rel, text, executable) in FILES {
        write_new(&root.join(rel), text, *executable)?;
    }
    Workspace::open(&root, true).await?;
    println!("made a pedigree workspace at `{}`:", root.display());
    println!("  .pedigree/                      the object store and the lineage database");
    for (rel, _, _) in FILES {
        println!("  {rel}");
    }
    println!();
    println!("next:");
    println!("  pedigree run workflows/hello.yaml     run it (a second run is all cache hits)");
    println!("  pedigree show latest                  what ran, with keys and outputs");
    println!("  pedigree tui                          the dashboard");
    println!("add `.pedigree/` to `.gitignore`; commit `workflows/` and `plugins/`");
    Ok(Exit::Ok)
}

/// Create `path` (and its folders) with `text`; fails if it appeared meanwhile.
fn write_new(path: &Path, text: &str, executable: bool) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| {
        CliError::failed(format!("error: cannot write `{}`: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
        .map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)
}
