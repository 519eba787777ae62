//! `pedigree recommend --release NAME[@VERSION] --user ID [-k 10]`: the top items
//! for a user from a published GNN-R model, each with the user's past
//! interactions that contributed most ([`crate::gnn::explain`]) and, through the
//! release's lineage manifest, the rows of every table on the way from the raw
//! input files to the graph that hold those interactions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use crate::registry::{self, LineageManifest, Registry, RegistryError, ReleaseManifest};

use super::{CliError, Exit, Global, open_read, print_json};
use crate::engine::key::short;
use crate::gnn::explain::{self, Recommendation};
use crate::gnn::graph::Graph;
use crate::gnn::input;
use crate::gnn::model;
use crate::workspace::ReadWorkspace;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A release: `NAME` (its newest version) or `NAME@VERSION`.
    #[arg(long, value_name = "NAME[@VERSION]")]
    pub release: String,
    /// The folder the release was published to (publish's `registry:` param),
    /// relative to the workspace.
    #[arg(long, value_name = "DIR", default_value = "registry")]
    pub registry: std::path::PathBuf,
    /// The user's id as it appears in the input data.
    #[arg(long, value_name = "ID")]
    pub user: String,
    /// How many items.
    #[arg(short = 'k', long, default_value_t = 10)]
    pub k: usize,
    /// Past interactions shown per item.
    #[arg(long, default_value_t = 3)]
    pub reasons: usize,
    /// Rows listed per table and interaction.
    #[arg(long, default_value_t = 5)]
    pub rows: usize,
    #[arg(long)]
    pub json: bool,
}

/// One table on the way from a raw input to the graph.
struct Table {
    /// `input events (data/events.csv)` or `dedupe.table`.
    label: String,
    hash: String,
    /// item id → the 1-based data rows (header excluded) of the user's interactions with it.
    rows: BTreeMap<String, Vec<usize>>,
}

pub async fn run(a: Args, g: &Global) -> Result<Exit, CliError> {
    let ws = open_read(g).await?;
    let (name, version) = parse_release(&a.release)?;
    let refused =
        |e: RegistryError| CliError::invalid(format!("error: {e}\n  = help: {}", e.help()));
    let reg = Registry::open(
        &ws.root,
        &a.registry.to_string_lossy(),
        Some(&registry::roots_from_env()),
    )
    .map_err(refused)?;
    let base = reg.release(name).map_err(refused)?;
    let version = match version {
        Some(v) => v,
        None => registry::newest(&base).ok_or_else(|| {
            CliError::invalid(format!(
                "error: there is no release `{name}` in `{}`\n  = help: a workflow's `publish` step creates one",
                base.display()
            ))
        })?,
    };
    let dir = base.join(version.to_string());
    if !dir.is_dir() {
        return Err(CliError::invalid(format!(
            "error: release `{name}` has no version {version} (`{}`)",
            dir.display()
        )));
    }
    fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, f: &str) -> Result<T, CliError> {
        let p = dir.join(f);
        std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| CliError::failed(format!("error: cannot read `{}`: {e}", p.display())))
    }
    let release: ReleaseManifest = read_json(&dir, "release.json")?;
    let lineage: LineageManifest = read_json(&dir, "lineage.json")?;
    let model_hash = release.model_hash.clone();
    let fail = |m: String| CliError::failed(format!("error: {m}"));
    let loaded = model::load(&dir, &model::cpu()).map_err(|e| fail(e.to_string()))?;

    let graph_hash = lineage
        .producer_input(&model_hash, &["graph"])
        .map(str::to_owned)
        .ok_or_else(|| {
            fail(format!(
                "the lineage of `{}` does not name the graph the model was trained on",
                dir.display()
            ))
        })?;
    let graph = Graph::read(&object(&ws, &graph_hash)?).map_err(|e| fail(e.to_string()))?;
    let Some(u) = graph.users.iter().position(|x| *x == a.user) else {
        let some: Vec<&str> = graph.users.iter().take(5).map(String::as_str).collect();
        return Err(CliError::invalid(format!(
            "error: user `{}` is not in the training data of {name}@{version} ({} users, e.g. {})",
            a.user,
            graph.users.len(),
            some.join(", ")
        )));
    };
    let recs = explain::recommend(&loaded, &graph, u, a.k, a.reasons).map_err(fail)?;

    let tables = provenance(&ws, &graph, &graph_hash, &lineage, &a.user);
    if a.json {
        print_json(&json!({
            "release": { "name": name, "version": version, "model_hash": model_hash },
            "graph": graph_hash,
            "user": a.user,
            "tables": tables.iter().map(|t| json!({"table": t.label, "hash": t.hash})).collect::<Vec<_>>(),
            "recommendations": recs.iter().enumerate().map(|(n, r)| rec_json(n, r, &graph, &tables)).collect::<Vec<_>>(),
        }));
        return Ok(Exit::Ok);
    }
    println!(
        "{name}@{version} (model {}), user {}: top {} of {} items",
        short(&model_hash),
        a.user,
        recs.len(),
        graph.n_items()
    );
    let width = recs
        .iter()
        .map(|r| graph.items[r.item as usize].len())
        .max()
        .unwrap_or(0);
    for (n, r) in recs.iter().enumerate() {
        println!(
            "{:>3}. {:<width$}  score {:.4}",
            n + 1,
            graph.items[r.item as usize],
            r.score
        );
        for reason in &r.reasons {
            let past = &graph.items[reason.item as usize];
            println!(
                "       because of {past} (attention {:.3}, contribution {:+.4})",
                reason.attention, reason.contribution
            );
            for t in &tables {
                if let Some(rows) = t.rows.get(past) {
                    println!("         {}: {}", t.label, rows_text(rows, a.rows));
                }
            }
        }
    }
    if tables.is_empty() {
        println!(
            "(the tables the graph was built from are no longer in the store; `pedigree lineage {}` shows their history)",
            short(&graph_hash)
        );
    }
    Ok(Exit::Ok)
}

fn rec_json(n: usize, r: &Recommendation, graph: &Graph, tables: &[Table]) -> Json {
    json!({
        "rank": n + 1,
        "item": graph.items[r.item as usize],
        "score": r.score,
        "because": r.reasons.iter().map(|x| {
            let past = &graph.items[x.item as usize];
            json!({
                "item": past,
                "attention": x.attention,
                "contribution": x.contribution,
                "rows": tables.iter().filter_map(|t| t.rows.get(past).map(|rows| json!({"table": t.label, "hash": t.hash, "rows": rows}))).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
    })
}

fn rows_text(rows: &[usize], max: usize) -> String {
    let shown: Vec<String> = rows.iter().take(max).map(usize::to_string).collect();
    let more = rows.len().saturating_sub(max);
    let word = if rows.len() == 1 { "row" } else { "rows" };
    if more > 0 {
        format!("{word} {} (+{more} more)", shown.join(", "))
    } else {
        format!("{word} {}", shown.join(", "))
    }
}

fn parse_release(s: &str) -> Result<(&str, Option<u32>), CliError> {
    match s.split_once('@') {
        None => Ok((s, None)),
        Some((n, v)) => v.parse().map(|v| (n, Some(v))).map_err(|_| {
            CliError::invalid(format!(
                "error: `{s}` is not NAME or NAME@VERSION (VERSION is a number)"
            ))
        }),
    }
}

fn object(ws: &ReadWorkspace, hash: &str) -> Result<PathBuf, CliError> {
    let p = ws.store.object_path(hash);
    if p.is_file() {
        Ok(p)
    } else {
        Err(CliError::failed(format!(
            "error: artifact {} is no longer in the store (collected?); rerun the workflow to restore it",
            short(hash)
        )))
    }
}

/// Every table from the graph's `interactions` input up to the raw file, with the
/// rows of the user's interactions in each.
fn provenance(
    ws: &ReadWorkspace,
    graph: &Graph,
    graph_hash: &str,
    lineage: &LineageManifest,
    user: &str,
) -> Vec<Table> {
    let chain = lineage.table_chain(graph_hash);
    let (ucol, icol) = (&graph.config.user_col, &graph.config.item_col);
    let mut out = Vec::new();
    for (hash, label) in chain.into_iter().rev() {
        let path = ws.store.object_path(&hash);
        let Ok(cols) = input::read_columns(&path) else {
            continue;
        };
        let (Some(us), Some(is)) = (cols.get(ucol), cols.get(icol)) else {
            continue;
        };
        let mut rows: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for r in 0..cols.rows {
            if us[r].as_deref() == Some(user)
                && let Some(item) = &is[r]
            {
                rows.entry(item.clone()).or_default().push(r + 1);
            }
        }
        out.push(Table { label, hash, rows });
    }
    out
}
