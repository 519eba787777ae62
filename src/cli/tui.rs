//! `pedigree tui`: the terminal dashboard, or with `--once` one screen printed
//! as text (for scripts and tests).

use super::{CliError, Exit, Global, open_read};
use crate::lineage::{ReadDb, RunFilter};
use crate::tui::app::App;
use crate::workspace;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    Runs,
    Run,
    Artifact,
    Metrics,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one screen as text and exit, instead of running interactively.
    #[arg(long)]
    pub once: bool,
    /// The screen to open (default: `run` with `--run`, `artifact` with `--artifact`, else `runs`).
    #[arg(long, value_enum)]
    pub view: Option<View>,
    /// A run id, `latest`, or `latest:WORKFLOW`, for the run and metrics screens.
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
    /// An artifact, as `pedigree lineage` takes it: hash or unique prefix, `RUN/STEP.OUTPUT`,
    /// a workspace path, or a release `NAME[@VERSION]`.
    #[arg(long, value_name = "REF")]
    pub artifact: Option<String>,
    /// A second run to compare with `--run` on the metrics screen (the same forms).
    #[arg(long, value_name = "RUN")]
    pub compare: Option<String>,
    /// Only runs of this workflow in the runs list.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only runs with this status in the runs list.
    #[arg(long, value_parser = ["running", "succeeded", "failed", "interrupted"])]
    pub status: Option<String>,
    /// Keys to press before printing (`--once`), e.g. `jj<Enter>`; see `?` in the dashboard.
    #[arg(long, value_name = "KEYS")]
    pub keys: Option<String>,
    /// Width of the `--once` screen.
    #[arg(long, default_value_t = 100)]
    pub width: u16,
    /// Height of the `--once` screen.
    #[arg(long, default_value_t = 30)]
    pub height: u16,
}

async fn run_ref(db: &ReadDb, text: &str) -> Result<i64, CliError> {
    super::runs::run_id(db, text).await
}

pub async fn run(args: Args, g: &Global) -> Result<Exit, CliError> {
    let ws = open_read(g).await?;
    let db_path = ws.root.join(workspace::DIR).join(workspace::DB_FILE);
    let db = ws.db.clone();
    let mut app = App::new();
    app.color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    app.runs.filter = RunFilter {
        workflow: args.workflow.clone(),
        status: args.status.clone(),
    };
    let view = args.view.unwrap_or(if args.artifact.is_some() {
        View::Artifact
    } else if args.compare.is_some() {
        View::Metrics
    } else if args.run.is_some() {
        View::Run
    } else {
        View::Runs
    });
    let run = match (&args.run, view) {
        (Some(r), _) => Some(run_ref(&db, r).await?),
        (None, View::Run | View::Metrics) => Some(run_ref(&db, "latest").await?),
        (None, _) => None,
    };
    match view {
        View::Runs => {}
        View::Run => {
            app.open_run(run.expect("set above"), None);
        }
        View::Metrics => {
            let compare = match &args.compare {
                Some(c) => Some(run_ref(&db, c).await?),
                None => None,
            };
            app.open_metrics(run.expect("set above"), compare);
        }
        View::Artifact => {
            let Some(r) = &args.artifact else {
                return Err(CliError::invalid(
                    "error: `--view artifact` needs `--artifact REF`",
                ));
            };
            let hash = super::lineage::artifact(&ws, r).await?;
            if let Some(run) = run {
                app.open_run(run, None);
            }
            app.open_artifact(hash);
        }
    }
    // The requests `open_*` made are resent by `start`.
    app.pending.clear();
    if !args.once {
        if args.keys.is_some() {
            return Err(CliError::invalid("error: `--keys` needs `--once`"));
        }
        db.close().await;
        crate::tui::run_interactive(db_path, app)
            .map_err(|e| CliError::failed(format!("error: the terminal failed: {e}")))?;
        return Ok(Exit::Ok);
    }
    let start = app.start();
    crate::tui::settle(&db, &mut app, start).await?;
    if let Some(k) = &args.keys {
        let keys = crate::tui::keys::parse_script(k)
            .map_err(|m| CliError::invalid(format!("error: {m}")))?;
        crate::tui::press(&db, &mut app, &keys).await?;
    }
    let buf = crate::tui::render(&app, args.width.max(20), args.height.max(5));
    print!("{}", crate::tui::buffer_text(&buf));
    db.close().await;
    Ok(Exit::Ok)
}
