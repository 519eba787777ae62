//! `pedigree lineage REF [--up|--down] [--depth N]`, and the artifact REF
//! resolution it shares with `pedigree tui --artifact` (the language itself is
//! `lineage::reference`; this adds hashing a path through the stat cache).

use super::{CliError, Exit, Global, open_read, print_json};
use crate::engine::key::short;
use crate::lineage::{ArtifactRef, LineageEdge, PathContent, ReadDb, Via};
use crate::workspace::ReadWorkspace;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An artifact: a hash or unique prefix, `RUN/STEP.OUTPUT` (RUN a number, `latest` or
    /// `latest:WORKFLOW`), a workspace path, or a release `NAME[@VERSION]`.
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

/// Resolve an artifact REF to its hash. An existing path is hashed (through the
/// stat cache, read only: nothing is written back).
pub(super) async fn artifact(ws: &ReadWorkspace, text: &str) -> Result<String, CliError> {
    let r = ArtifactRef::parse(text);
    let path = match &r {
        ArtifactRef::Text(t) => {
            let p = std::path::Path::new(t);
            let hash = if p.exists() {
                let mut stat = crate::engine::hashing::StatCache::load(&ws.db)
                    .await
                    .map_err(|e| CliError::failed(format!("error: {e}")))?;
                let h = stat
                    .hash_path(p)
                    .await
                    .map_err(|e| CliError::failed(format!("error: {e}")))?;
                Some(h.hash)
            } else {
                None
            };
            Some(PathContent {
                relative: ws.relative(p),
                hash,
            })
        }
        ArtifactRef::Output { .. } => None,
    };
    let resolved = ws.db.resolve_ref(&r, path.as_ref()).await?;
    if resolved.via == (Via::RecordedPath { changed: true }) {
        eprintln!(
            "note: `{text}` changed since it was last used; showing the version last recorded"
        );
    }
    Ok(resolved.hash)
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
    let hash = artifact(&ws, &args.reference).await?;
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
