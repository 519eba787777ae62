//! OpenLineage from the command line: the sender beside `pedigree run`, and
//! `pedigree openlineage flush` / `export`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{CliError, Exit, Global, open_existing};
use crate::catalogue::{self, Drained, Sender, Settings};
use crate::config::Config;
use crate::workspace::Workspace;

/// How long a run waits, once it ended, for its last events to be delivered.
const RUN_GRACE: Duration = Duration::from_secs(1);
/// How many times `flush` tries an event that fails for now.
const FLUSH_ATTEMPTS: i64 = 4;

#[derive(Debug, clap::Subcommand)]
pub enum OpenLineageCommand {
    /// Send the events still waiting (the catalogue was down, slow, or refused them).
    Flush {
        /// Send again the events the catalogue refused (after fixing what it said).
        #[arg(long)]
        retry_rejected: bool,
    },
    /// Print the OpenLineage events of recorded runs as JSON lines (every run by default).
    Export {
        /// Runs to export: ids, `latest`, or `latest:WORKFLOW` (repeatable).
        runs: Vec<String>,
        /// Write them to this file instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn settings_error(m: String) -> CliError {
    CliError::invalid(format!("error: {m}"))
}

/// The remote cache URL a command's objects live in, when one is configured.
fn remote_url(config: &Config, remote: &super::remote::RemoteArgs) -> Option<String> {
    crate::remote::resolve(config, &remote.flags())
        .ok()
        .flatten()
        .map(|s| s.url)
}

fn context(
    config: &Config,
    root: &Path,
    ws: &Workspace,
    remote: Option<String>,
) -> crate::openlineage::Context {
    catalogue::context(
        &catalogue::namespace(config, root),
        root,
        &crate::engine::provenance::hostname(),
        &ws.store.root().join("objects"),
        remote.as_deref(),
    )
}

/// Turn events on for a run, when `[openlineage]` or the environment asks, and
/// start delivering them (with any left by earlier runs).
pub(super) fn start(
    ws: &Workspace,
    remote: &super::remote::RemoteArgs,
) -> Result<Option<(Settings, Sender)>, CliError> {
    let config = match Config::load(&ws.root) {
        Ok(c) => c,
        // `--no-remote` runs whatever `pedigree.toml` says (that is what it is for),
        // so its catalogue settings cannot be read: only the environment's count.
        Err(d) if remote.no_remote => {
            eprintln!(
                "warning: `pedigree.toml` is not valid, so its `[openlineage]` settings are not used: {}",
                d.message
            );
            Config::default()
        }
        Err(d) => return Err(d.into()),
    };
    let Some(settings) = catalogue::resolve(&config, &ws.root).map_err(settings_error)? else {
        return Ok(None);
    };
    ws.db
        .emit_openlineage(context(&config, &ws.root, ws, remote_url(&config, remote)));
    let sender = Sender::start(ws.db.clone(), settings.clone());
    Ok(Some((settings, sender)))
}

/// Stop a run's sender, and say what could not be delivered.
pub(super) async fn finish(started: Option<(Settings, Sender)>) {
    if let Some((settings, sender)) = started {
        warn(&settings, &sender.finish(RUN_GRACE).await);
    }
}

fn warn(settings: &Settings, d: &Drained) {
    let why = d
        .error
        .as_deref()
        .map_or(String::new(), |e| format!(" ({e})"));
    if d.waiting > 0 {
        eprintln!(
            "warning: {} OpenLineage {} not sent to {} yet{why}: kept in the workspace, sent by the next run or `pedigree openlineage flush`",
            d.waiting,
            plural(d.waiting, "event is", "events are"),
            settings.target(),
        );
    }
    if d.rejected > 0 {
        eprintln!(
            "warning: {} refused {} OpenLineage {}{why}: kept; `pedigree openlineage flush --retry-rejected` sends {} again",
            settings.target(),
            d.rejected,
            plural(d.rejected as i64, "event", "events"),
            plural(d.rejected as i64, "it", "them"),
        );
    }
}

fn plural(n: i64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

pub async fn command(cmd: OpenLineageCommand, g: &Global) -> Result<Exit, CliError> {
    match cmd {
        OpenLineageCommand::Flush { retry_rejected } => flush(retry_rejected, g).await,
        OpenLineageCommand::Export { runs, output } => export(&runs, output.as_deref(), g).await,
    }
}

async fn flush(retry_rejected: bool, g: &Global) -> Result<Exit, CliError> {
    let ws = open_existing(g).await?;
    let config = Config::load(&ws.root)?;
    let settings = catalogue::resolve(&config, &ws.root)
        .map_err(settings_error)?
        .ok_or_else(|| {
            CliError::invalid(
                "error: OpenLineage is off: set `[openlineage]` in `pedigree.toml` or $OPENLINEAGE_URL to say where events go",
            )
        })?;
    if retry_rejected {
        let n = ws.db.retry_rejected_events().await?;
        if n > 0 {
            println!(
                "{n} refused {} queued again",
                plural(n as i64, "event", "events")
            );
        }
    }
    let client = catalogue::transport::Client::default();
    // A failure that may pass is tried again a few times, backing off, before the
    // flush gives up (the events stay queued either way).
    let mut d = Drained::default();
    for attempt in 1..=FLUSH_ATTEMPTS {
        let round = catalogue::send::drain(&ws.db, &settings, &client, true, None).await?;
        let done = round.waiting == 0 || round.error.is_none();
        d.delivered += round.delivered;
        d.rejected += round.rejected;
        d.waiting = round.waiting;
        d.rejected_total = round.rejected_total;
        d.error = round.error.or(d.error);
        if done || attempt == FLUSH_ATTEMPTS {
            break;
        }
        tokio::time::sleep(catalogue::send::backoff(attempt)).await;
    }
    let refused_why = ws.db.refusal().await?;
    ws.db.close().await;
    println!(
        "sent {} {} to {}; {} waiting, {} refused",
        d.delivered,
        plural(d.delivered as i64, "event", "events"),
        settings.target(),
        d.waiting,
        d.rejected_total,
    );
    if d.waiting == 0 && d.rejected_total == 0 {
        return Ok(Exit::Ok);
    }
    if d.waiting > 0 {
        eprintln!(
            "error: {} not delivered: {}",
            plural(d.waiting, "an event is", "events are"),
            d.error
                .as_deref()
                .unwrap_or("the catalogue did not take them")
        );
    }
    if d.rejected_total > 0 {
        eprintln!(
            "error: the catalogue refused {} {}{}",
            d.rejected_total,
            plural(d.rejected_total, "event", "events"),
            refused_why.map_or(String::new(), |e| format!(": {e}"))
        );
        eprintln!("  = help: fix what it said, then `pedigree openlineage flush --retry-rejected`");
    }
    Ok(Exit::Failure)
}

async fn export(runs: &[String], output: Option<&Path>, g: &Global) -> Result<Exit, CliError> {
    // Opened to write: a database from before OpenLineage gets its run UUIDs here.
    let ws = open_existing(g).await?;
    let config = Config::load(&ws.root)?;
    let ctx = context(
        &config,
        &ws.root,
        &ws,
        remote_url(&config, &Default::default()),
    );
    let mut ids = Vec::new();
    for r in runs {
        ids.push(super::runs::run_id(&ws.db, r).await?);
    }
    let events = ws.db.openlineage_events(&ctx, &ids).await?;
    ws.db.close().await;
    let mut text = String::new();
    for e in &events {
        text.push_str(&e.to_string());
        text.push('\n');
    }
    match output {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            CliError::failed(format!("error: cannot write `{}`: {e}", path.display()))
        })?,
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(CliError::failed(format!(
                    "error: cannot write the events: {e}"
                )));
            }
        }
    }
    Ok(Exit::Ok)
}
