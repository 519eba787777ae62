//! `pedigree lineage REF [--up|--down] [--depth N]`, and the artifact REF
//! resolution it shares with `pedigree tui --artifact` (the language itself is
//! `lineage::reference`; this adds hashing a path through the stat cache).

use std::collections::{HashMap, HashSet};

use super::{CliError, Exit, Global, open_read, print_json};
use crate::engine::key::short;
use crate::lineage::{ArtifactRef, FacetRow, LineageEdge, PathContent, ReadDb, Via};
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

/// What the tree prints about each artifact and step run, read up front.
struct Facts {
    described: HashMap<String, String>,
    facets: HashMap<i64, Vec<FacetRow>>,
}

impl Facts {
    async fn read(db: &ReadDb, root: &str, edges: &[LineageEdge]) -> Result<Facts, CliError> {
        let mut described = HashMap::new();
        for h in std::iter::once(root).chain(edges.iter().map(|e| e.to_hash.as_str())) {
            if !described.contains_key(h) {
                described.insert(h.to_owned(), describe(db, h).await?);
            }
        }
        let mut facets = HashMap::new();
        for e in edges {
            if let std::collections::hash_map::Entry::Vacant(v) = facets.entry(e.step_run_id) {
                v.insert(db.facets_of(e.step_run_id).await?);
            }
        }
        Ok(Facts { described, facets })
    }

    fn describe(&self, hash: &str) -> String {
        self.described
            .get(hash)
            .cloned()
            .unwrap_or_else(|| short(hash))
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

/// The human tree of `edges` from `root`, one line per element. Each step run
/// sits under the artifact it made (going up) or read (going down), with its
/// facets and its other side below it; each artifact's own subtree follows its
/// line directly. An artifact reached a second time (a DAG shares it) is printed
/// with `(see above)` and not followed again.
fn tree(root: &str, edges: &[LineageEdge], down: bool, facts: &Facts) -> Vec<String> {
    enum Item<'a> {
        /// Print the step runs on the far side of an artifact, at a level.
        Expand(&'a str, usize),
        /// Print one edge's far artifact (and then expand it, the first time).
        Edge(&'a LineageEdge, usize),
        /// Print a step run's header and facets.
        Lines(Vec<String>),
    }
    let mut out = Vec::new();
    let mut printed: HashSet<&str> = HashSet::from([root]);
    let mut stack = vec![Item::Expand(root, 1)];
    while let Some(item) = stack.pop() {
        match item {
            Item::Expand(h, level) => {
                let mut near: Vec<&LineageEdge> =
                    edges.iter().filter(|e| e.from_hash == h).collect();
                near.sort_by(|a, b| {
                    (a.step_run_id, &a.slot_to, &a.to_hash).cmp(&(
                        b.step_run_id,
                        &b.slot_to,
                        &b.to_hash,
                    ))
                });
                let pad = "  ".repeat(level);
                let mut later: Vec<Item> = Vec::new();
                let mut last_sr = None;
                for e in near {
                    if last_sr != Some(e.step_run_id) {
                        let arrow = if down { "read by" } else { "made by" };
                        let mut header = vec![format!(
                            "{pad}{arrow} step `{}` (run {}, step run {})",
                            e.step, e.run_id, e.step_run_id
                        )];
                        for f in facts.facets.get(&e.step_run_id).into_iter().flatten() {
                            header.push(format!(
                                "{pad}  facet {}: {}",
                                f.name,
                                crate::spec::value::show(
                                    &serde_json::from_str(&f.json).unwrap_or_default()
                                )
                            ));
                        }
                        later.push(Item::Lines(header));
                        last_sr = Some(e.step_run_id);
                    }
                    later.push(Item::Edge(e, level));
                }
                stack.extend(later.into_iter().rev());
            }
            Item::Lines(lines) => out.extend(lines),
            Item::Edge(e, level) => {
                let pad = "  ".repeat(level);
                let arrow = if down { "→" } else { "←" };
                let first = printed.insert(e.to_hash.as_str());
                out.push(format!(
                    "{pad}  {arrow} {}: {}{}",
                    e.slot_to,
                    facts.describe(&e.to_hash),
                    if first { "" } else { " (see above)" }
                ));
                if first {
                    stack.push(Item::Expand(&e.to_hash, level + 2));
                }
            }
        }
    }
    out
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
    let facts = Facts::read(db, &hash, &edges).await?;
    println!("{}", facts.describe(&hash));
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
    for line in tree(&hash, &edges, args.down, &facts) {
        println!("{line}");
    }
    Ok(Exit::Ok)
}
