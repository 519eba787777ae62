//! `pedigree lineage REF [--up|--down] [--depth N]`.

use super::{CliError, Exit, Global, open_read, print_json};
use crate::engine::key::short;
use crate::lineage::{LineageEdge, ReadDb};
use crate::workspace::ReadWorkspace;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An artifact hash or unique prefix, `RUN/STEP.OUTPUT`, or a workspace file path.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Trace upward to the raw inputs (the default).
    #[arg(long, conflicts_with = "down")]
    pub up: bool,
    /// Trace downward to everything made from it.
    #[arg(long)]
    pub down: bool,
    /// How many steps to follow.
    #[arg(long, default_value_t = 50)]
    pub depth: i64,
    #[arg(long)]
    pub json: bool,
}

/// Resolve a REF to an artifact hash.
pub(super) async fn resolve_ref(ws: &ReadWorkspace, r: &str) -> Result<String, CliError> {
    let db = &ws.db;
    // RUN/STEP.OUTPUT
    if let Some((run, rest)) = r.split_once('/')
        && let Ok(run_id) = run.parse::<i64>()
        && let Some((step, slot)) = rest.rsplit_once('.')
    {
        return db.output_of_run(run_id, step, slot).await?.ok_or_else(|| {
            CliError::invalid(format!("error: run {run_id} recorded no output `{slot}` of step `{step}`\n  = help: `pedigree show {run_id}` lists its steps and outputs"))
        });
    }
    // A path in the workspace.
    let p = std::path::Path::new(r);
    if p.exists() {
        // Through the stat cache, read only: what it learns is not written back.
        let hash = async {
            let mut stat = crate::engine::hashing::StatCache::load(db).await?;
            stat.hash_path(p).await
        };
        let h = hash
            .await
            .map_err(|e| CliError::failed(format!("error: {e}")))?;
        if db.artifact(&h.hash).await?.is_some() {
            return Ok(h.hash);
        }
        if let Some(h) = db.input_at_path(&ws.relative(p)).await? {
            eprintln!(
                "note: `{r}` changed since it was last used; showing the version last recorded"
            );
            return Ok(h);
        }
        return Err(CliError::invalid(format!(
            "error: `{r}` (content {}) is not in the lineage database\n  = help: it has not been used or produced by any run in this workspace",
            short(&h.hash)
        )));
    }
    // A hash prefix.
    let prefix = r.to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CliError::invalid(format!(
            "error: `{r}` is not an artifact reference\n  = help: give a hash (or a prefix of at least 4 hex digits), `RUN/STEP.OUTPUT`, or a path"
        )));
    }
    let found = db.artifacts_with_prefix(&prefix, 10).await?;
    match found.len() {
        0 => Err(CliError::invalid(format!(
            "error: no artifact hash starts with `{r}`"
        ))),
        1 => Ok(found[0].clone()),
        _ => Err(CliError::invalid(format!(
            "error: `{r}` is ambiguous: {}\n  = help: give more digits",
            found
                .iter()
                .map(|h| short(h))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn describe(db: &ReadDb, hash: &str) -> Result<String, CliError> {
    let kind = db
        .artifact(hash)
        .await?
        .map(|a| a.kind)
        .unwrap_or_else(|| "?".into());
    let sources = db.sources_of(hash).await?;
    let src = sources
        .first()
        .map(|s| format!(" = input `{}` `{}`", s.name, s.path))
        .unwrap_or_default();
    Ok(format!("{} ({kind}){src}", short(hash)))
}

pub async fn run(args: Args, g: &Global) -> Result<Exit, CliError> {
    let ws = open_read(g).await?;
    let hash = resolve_ref(&ws, &args.reference).await?;
    let db = &ws.db;
    let depth = args.depth.clamp(1, 10_000);
    let edges: Vec<LineageEdge> = if args.down {
        db.lineage_down(&hash, depth).await?
    } else {
        db.lineage_up(&hash, depth).await?
    };
    let facets_of = |id| db.facets_of(id);
    if args.json {
        let mut sources = serde_json::Map::new();
        for e in &edges {
            for s in db.sources_of(&e.to_hash).await? {
                sources.insert(
                    e.to_hash.clone(),
                    serde_json::json!({"name": s.name, "path": s.path}),
                );
            }
        }
        print_json(&serde_json::json!({
            "artifact": hash,
            "direction": if args.down { "down" } else { "up" },
            "edges": edges,
            "raw_inputs": sources,
        }));
        return Ok(Exit::Ok);
    }
    println!("{}", describe(db, &hash).await?);
    if edges.is_empty() {
        println!(
            "  {}",
            if args.down {
                "(nothing was made from it)"
            } else {
                "(a raw input: nothing made it)"
            }
        );
    }
    // Print as an indented tree following edges from the root.
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![(hash.clone(), 1usize)];
    while let Some((h, level)) = stack.pop() {
        let mut by_run: Vec<&LineageEdge> = edges.iter().filter(|e| e.from_hash == h).collect();
        by_run.sort_by_key(|e| std::cmp::Reverse((e.step_run_id, e.slot_to.clone())));
        let mut last_sr = None;
        for e in by_run.iter().rev() {
            let pad = "  ".repeat(level);
            if last_sr != Some(e.step_run_id) {
                let arrow = if args.down { "read by" } else { "made by" };
                println!(
                    "{pad}{arrow} step `{}` (run {}, step run {})",
                    e.step, e.run_id, e.step_run_id
                );
                for f in facets_of(e.step_run_id).await? {
                    println!(
                        "{pad}  facet {}: {}",
                        f.name,
                        crate::spec::value::show(
                            &serde_json::from_str(&f.json).unwrap_or_default()
                        )
                    );
                }
                last_sr = Some(e.step_run_id);
            }
            println!(
                "{pad}  {} {}",
                if args.down {
                    format!("→ {}:", e.slot_to)
                } else {
                    format!("← {}:", e.slot_to)
                },
                describe(db, &e.to_hash).await?
            );
            if seen.insert((e.to_hash.clone(), e.step_run_id)) {
                stack.push((e.to_hash.clone(), level + 2));
            }
        }
    }
    Ok(Exit::Ok)
}
