//! `pedigree status WORKFLOW` and `pedigree why WORKFLOW STEP`.

use std::path::PathBuf;

use super::run::load;
use super::{CliError, Exit, Global, print_json};
use crate::engine::key::{KeyManifest, short};
use crate::engine::status;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The workflow file (YAML).
    pub workflow: PathBuf,
    /// Override a param, as with `run`.
    #[arg(long = "set", value_name = "K=V")]
    pub set: Vec<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
}

#[derive(Debug, clap::Args)]
pub struct WhyArgs {
    /// The workflow file (YAML).
    pub workflow: PathBuf,
    /// The step to explain.
    pub step: String,
    /// Override a param, as with `run`.
    #[arg(long = "set", value_name = "K=V")]
    pub set: Vec<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
}

pub async fn status(args: StatusArgs, g: &Global) -> Result<Exit, CliError> {
    let (ws, resolved) = load(g, &args.workflow, &args.set, true).await?;
    let cache = super::remote::open_cache(&ws.root, &args.remote)?;
    let states =
        status::status(&ws, &resolved, false, super::remote::peek(cache.as_deref())).await?;
    if args.json {
        print_json(&serde_json::json!({ "workflow": resolved.wf.name, "steps": states }));
        return Ok(Exit::Ok);
    }
    for s in &states {
        let key = s
            .key
            .as_deref()
            .map(short)
            .unwrap_or_else(|| "?".repeat(12));
        println!("{:<6} {:<20} {key}  {}", s.state, s.name, s.reason);
    }
    Ok(Exit::Ok)
}

pub async fn why(args: WhyArgs, g: &Global) -> Result<Exit, CliError> {
    let (ws, resolved) = load(g, &args.workflow, &args.set, true).await?;
    if resolved.dag.index(&args.step).is_none() {
        return Err(CliError::invalid(format!(
            "error: workflow `{}` has no step `{}`\n  = help: {}",
            resolved.wf.name,
            args.step,
            crate::diag::suggest(
                &args.step,
                "step",
                resolved.dag.names.iter().map(String::as_str)
            )
        )));
    }
    let cache = super::remote::open_cache(&ws.root, &args.remote)?;
    let states =
        status::status(&ws, &resolved, true, super::remote::peek(cache.as_deref())).await?;
    let s = states
        .into_iter()
        .find(|s| s.name == args.step)
        .expect("step exists");
    let last = ws.db.last_manifest(&resolved.wf.name, &args.step).await?;
    if args.json {
        print_json(&serde_json::json!({
            "step": s.name,
            "state": s.state,
            "key": s.key,
            "reason": s.reason,
            "last_step_run": last.as_ref().map(|(r, _)| r.id),
            "last_key": last.as_ref().and_then(|(r, _)| r.step_key.clone()),
            "last_remote_source": last
                .as_ref()
                .and_then(|(r, _)| r.remote_source.as_deref())
                .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()),
            "changes": s.changes,
        }));
        return Ok(Exit::Ok);
    }
    match (&last, &s.manifest) {
        (None, _) if s.state == "remote" => println!(
            "`{}` has never run here in workflow `{}`: a run takes it {}.",
            s.name, resolved.wf.name, s.reason
        ),
        (None, _) => println!(
            "`{}` has never run in workflow `{}`: it will run.",
            s.name, resolved.wf.name
        ),
        (Some((row, _)), None) => {
            println!(
                "`{}` last ran in run {} (key {}).",
                s.name,
                row.run_id,
                row.step_key.as_deref().map(short).unwrap_or_default()
            );
            println!("Its key cannot be computed yet: {}", s.reason);
        }
        (Some((row, old_json)), Some(m)) => {
            let old_key = row.step_key.clone().unwrap_or_default();
            println!(
                "`{}` last ran in run {} (key {}); its key now is {}.",
                s.name,
                row.run_id,
                short(&old_key),
                short(&m.key())
            );
            if s.changes.is_empty() {
                println!(
                    "No ingredient changed{}",
                    match s.state {
                        "fresh" => ": it is cached.".to_owned(),
                        "remote" => format!(": a run takes it {}.", s.reason),
                        _ => ", but the cached result is gone: it will run.".to_owned(),
                    }
                );
            } else {
                println!("Changed since then:");
                for c in &s.changes {
                    println!("  {c}");
                }
            }
            if serde_json::from_str::<KeyManifest>(old_json).is_err() {
                println!("(the last run used another key schema)");
            }
            if row.remote_source.is_some() {
                println!(
                    "Its result there was not computed here: {}.",
                    row.reason.trim_start_matches("cached: ")
                );
            }
        }
    }
    Ok(Exit::Ok)
}
