//! `pedigree runs`, `show RUN`, `log RUN STEP`, `diff RUN_A RUN_B`.

use std::collections::BTreeMap;

use super::{CliError, Exit, Global, open_read, print_json};
use crate::lineage::{ReadDb, RunRow, StepRunRow};
use crate::util::fmt::{duration_between, short};

#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Only runs of this workflow (its `name:`).
    #[arg(long)]
    pub workflow: Option<String>,
    /// How many runs to list.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: i64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A run id (`pedigree runs` lists them), `latest`, or `latest:WORKFLOW`.
    pub run: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// A run id, `latest`, or `latest:WORKFLOW`.
    pub run: String,
    /// The step whose output to print.
    pub step: String,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// A run id, `latest`, or `latest:WORKFLOW`.
    pub run_a: String,
    /// The run to compare it with, in the same forms.
    pub run_b: String,
    #[arg(long)]
    pub json: bool,
}

/// The run a command names: a number, `latest` or `latest:WORKFLOW`.
pub(super) async fn run_id(db: &ReadDb, text: &str) -> Result<i64, CliError> {
    Ok(db.run_ref(text).await?)
}

/// The run a command names, with its row.
async fn run_row(db: &ReadDb, text: &str) -> Result<(i64, RunRow), CliError> {
    let id = run_id(db, text).await?;
    let row = db
        .run(id)
        .await?
        .ok_or(crate::lineage::RefError::NoRun(id))?;
    Ok((id, row))
}

pub async fn runs(args: RunsArgs, g: &Global) -> Result<Exit, CliError> {
    let ws = open_read(g).await?;
    let rows = ws.db.runs(args.limit, args.workflow.as_deref()).await?;
    if args.json {
        print_json(&rows);
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        println!("no runs yet");
        return Ok(Exit::Ok);
    }
    println!(
        "{:>5}  {:<20} {:<11} {:<24} {:>8}  ran/cached/failed",
        "run", "workflow", "status", "started", "took"
    );
    for r in rows {
        println!(
            "{:>5}  {:<20} {:<11} {:<24} {:>8}  {}/{}/{}",
            r.run.id,
            r.run.workflow,
            r.run.status,
            r.run.started_at,
            duration_between(&r.run.started_at, r.run.finished_at.as_deref()),
            r.ran,
            r.cached,
            r.failed
        );
    }
    Ok(Exit::Ok)
}

pub async fn show(args: ShowArgs, g: &Global) -> Result<Exit, CliError> {
    let ws = open_read(g).await?;
    let db = &ws.db;
    let (id, run) = run_row(db, &args.run).await?;
    let steps = db.step_runs(id).await?;
    let mut detailed = Vec::new();
    for s in &steps {
        let source = s.cached_from.unwrap_or(s.id);
        detailed.push(serde_json::json!({
            "step_run": s,
            "inputs": db.inputs_of(s.id).await?.into_iter().collect::<BTreeMap<_, _>>(),
            "outputs": db.outputs_of(s.id).await?.into_iter().map(|o| (o.slot, o.artifact_hash)).collect::<BTreeMap<_, _>>(),
            "metrics": db.metrics_of(source).await?,
            "facets": db.facets_of(source).await?.into_iter().map(|f| (f.name, serde_json::from_str::<serde_json::Value>(&f.json).unwrap_or_default())).collect::<BTreeMap<_, _>>(),
        }));
    }
    if args.json {
        print_json(&serde_json::json!({ "run": run, "steps": detailed }));
        return Ok(Exit::Ok);
    }
    println!(
        "run {} of `{}` ({}): {}",
        run.id, run.workflow, run.workflow_path, run.status
    );
    println!(
        "  started {} by {}@{}, took {}",
        run.started_at,
        run.user,
        run.host,
        duration_between(&run.started_at, run.finished_at.as_deref())
    );
    if let Some(c) = &run.git_commit {
        println!(
            "  git {}{}",
            short(c),
            if run.git_dirty == Some(true) {
                " (with uncommitted changes)"
            } else {
                ""
            }
        );
    }
    for (s, d) in steps.iter().zip(&detailed) {
        println!();
        let key = s.step_key.as_deref().map(short).unwrap_or_default();
        println!(
            "  {} [{}] {} {}",
            s.step,
            s.status,
            key,
            duration_between(&s.started_at, s.finished_at.as_deref())
        );
        println!("    why: {}", s.reason);
        for (k, v) in d["inputs"].as_object().into_iter().flatten() {
            println!("    in  {k}: {}", short(v.as_str().unwrap_or("")));
        }
        for (k, v) in d["outputs"].as_object().into_iter().flatten() {
            println!("    out {k}: {}", short(v.as_str().unwrap_or("")));
        }
        for m in d["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["step"].is_null())
        {
            println!(
                "    metric {} = {}",
                m["key"].as_str().unwrap_or(""),
                m["value"]
            );
        }
        for (k, v) in d["facets"].as_object().into_iter().flatten() {
            if k == crate::lineage::NONDETERMINISTIC_FACET {
                let p = &v["theirs_producer"];
                println!(
                    "    warning: not deterministic: remote `{}` holds other outputs for this key (computed by {}@{} in its run {})",
                    v["remote"].as_str().unwrap_or(""),
                    p["user"].as_str().unwrap_or("?"),
                    p["host"].as_str().unwrap_or("?"),
                    p["run"]
                );
                continue;
            }
            println!("    facet {k}: {}", crate::spec::value::show(v));
        }
        if let Some(e) = &s.error {
            println!("    error: {}", e.lines().next().unwrap_or(""));
        }
    }
    Ok(Exit::Ok)
}

async fn find_step(db: &ReadDb, run: i64, step: &str) -> Result<StepRunRow, CliError> {
    let steps = db.step_runs(run).await?;
    let names: Vec<String> = steps.iter().map(|s| s.step.clone()).collect();
    steps
        .into_iter()
        .rev()
        .find(|s| s.step == step)
        .ok_or_else(|| {
            CliError::invalid(format!(
                "error: run {run} has no step `{step}`\n  = help: {}",
                crate::diag::suggest(step, "step", names.iter().map(String::as_str))
            ))
        })
}

pub async fn log(args: LogArgs, g: &Global) -> Result<Exit, CliError> {
    let ws = open_read(g).await?;
    let id = run_id(&ws.db, &args.run).await?;
    let mut s = find_step(&ws.db, id, &args.step).await?;
    if let Some(from) = s.cached_from {
        eprintln!("(cached: output of step run {from})");
        s = ws.db.step_run(from).await?.unwrap_or(s);
    }
    match &s.log_hash {
        Some(h) => {
            let bytes = std::fs::read(ws.store.object_path(h))
                .map_err(|e| CliError::failed(format!("error: the log object {} cannot be read: {e}\n  = help: `pedigree verify` checks the store", short(h))))?;
            use std::io::Write;
            let _ = std::io::stdout().write_all(&bytes);
        }
        None => {
            if let Some(t) = &s.stderr_tail {
                print!("{t}");
            } else {
                eprintln!(
                    "step `{}` of run {id} has no captured output ({})",
                    s.step, s.status
                );
            }
        }
    }
    Ok(Exit::Ok)
}

pub async fn diff(args: DiffArgs, g: &Global) -> Result<Exit, CliError> {
    let ws = open_read(g).await?;
    let db = &ws.db;
    let (a, ra) = run_row(db, &args.run_a).await?;
    let (b, rb) = run_row(db, &args.run_b).await?;
    let mut lines = Vec::new();
    if ra.params_json != rb.params_json {
        lines.push(serde_json::json!({"what": "workflow params", "a": ra.params_json, "b": rb.params_json}));
    }
    let sa = db.step_runs(a).await?;
    let sb = db.step_runs(b).await?;
    let by_name = |v: &[StepRunRow]| {
        v.iter()
            .map(|s| (s.step.clone(), s.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let (ma, mb) = (by_name(&sa), by_name(&sb));
    let names: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    for name in names {
        let (x, y) = (ma.get(name), mb.get(name));
        let key = |s: Option<&StepRunRow>| s.and_then(|s| s.step_key.clone());
        if key(x) != key(y) {
            lines.push(
                serde_json::json!({"what": format!("step `{name}` key"), "a": key(x), "b": key(y)}),
            );
            // Which ingredients differ.
            if let (Some(ka), Some(kb)) = (key(x), key(y))
                && let (Some(ja), Some(jb)) = (db.manifest(&ka).await?, db.manifest(&kb).await?)
                && let (Ok(ma), Ok(mb)) = (
                    serde_json::from_str::<crate::engine::key::KeyManifest>(&ja),
                    serde_json::from_str::<crate::engine::key::KeyManifest>(&jb),
                )
            {
                for c in mb.diff(&ma) {
                    lines.push(serde_json::json!({"what": format!("step `{name}` {}", c.ingredient), "a": c.old, "b": c.new}));
                }
            }
        }
        let (oa, ob) = (step_outputs(db, x).await?, step_outputs(db, y).await?);
        if oa != ob {
            for slot in oa
                .keys()
                .chain(ob.keys())
                .collect::<std::collections::BTreeSet<_>>()
            {
                if oa.get(slot) != ob.get(slot) {
                    lines.push(serde_json::json!({"what": format!("step `{name}` output `{slot}`"), "a": oa.get(slot), "b": ob.get(slot)}));
                }
            }
        }
        let (xa, xb) = (final_metrics(db, x).await?, final_metrics(db, y).await?);
        for k in xa
            .keys()
            .chain(xb.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            if xa.get(k) != xb.get(k) {
                lines.push(serde_json::json!({"what": format!("step `{name}` metric `{k}`"), "a": xa.get(k), "b": xb.get(k)}));
            }
        }
    }
    if args.json {
        print_json(&serde_json::json!({"a": a, "b": b, "differences": lines}));
        return Ok(Exit::Ok);
    }
    if lines.is_empty() {
        println!("runs {a} and {b} have the same params, keys, outputs and metrics");
    }
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) if s.len() == 64 => short(s),
        serde_json::Value::Null => "(none)".into(),
        other => crate::spec::value::show(other),
    };
    for l in &lines {
        println!(
            "{}: {} → {}",
            l["what"].as_str().unwrap_or(""),
            show(&l["a"]),
            show(&l["b"])
        );
    }
    Ok(Exit::Ok)
}

async fn step_outputs(
    db: &ReadDb,
    s: Option<&StepRunRow>,
) -> Result<BTreeMap<String, String>, CliError> {
    Ok(match s {
        Some(s) => db
            .outputs_of(s.id)
            .await?
            .into_iter()
            .map(|o| (o.slot, o.artifact_hash))
            .collect(),
        None => BTreeMap::new(),
    })
}

/// Metrics without a step number (final values), of the run that computed them.
async fn final_metrics(
    db: &ReadDb,
    s: Option<&StepRunRow>,
) -> Result<BTreeMap<String, f64>, CliError> {
    Ok(match s {
        Some(s) => db
            .metrics_of(s.cached_from.unwrap_or(s.id))
            .await?
            .into_iter()
            .filter(|m| m.step.is_none())
            .map(|m| (m.key, m.value))
            .collect(),
        None => BTreeMap::new(),
    })
}
