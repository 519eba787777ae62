//! `publish`: model, report → release. Checks the gates against the report,
//! then copies the model into `registry/NAME/VERSION/` (relative to the
//! workspace) with its weights, the report, a model card (`MODEL_CARD.md`: data,
//! params, metrics against the baselines, the whole ancestry with hashes up to
//! the raw input files) and a machine-readable `lineage.json`, and records the
//! release in the lineage database.
//!
//! Gates (`gate:` map, metric → condition): `">= 0.05"`, `"> 0.1"`, `"<= 0.5"`,
//! `"< 0.5"`, or `"beats popularity"` (strictly above that baseline's value of
//! the same metric). A failing gate fails the step with the numbers.
//!
//! Idempotent per model hash: when a version of NAME already holds this model
//! (its `release.json` names the hash), that version is the release and nothing
//! is copied again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Builtin, Output, Param, ParamIssue, StepError, issue, param};
use crate::registry::{
    self, LineageEdge, LineageManifest, LineageSource, Registry, RegistryError, ReleaseManifest,
};
use crate::steps::plugin::ParamType;
use crate::steps::protocol::{MetricPoint, Request, Response};

/// The `publish` kind.
pub struct Publish;

const NAME_HELP: &str = "use letters, digits, `-`, `_` and `.`, e.g. `name: gnnr-ecommerce`";
const GATE_HELP: &str =
    "write e.g. `gate: { \"ndcg@20\": \">= 0.05\", \"recall@20\": \"beats popularity\" }`";

impl Builtin for Publish {
    const NAME: &'static str = "publish";
    // 2: the model card names the BPR-MF baseline's lr and reg when the report has them.
    // 3: `release.json` does not name the run (the lineage database does), so the
    //    same model and report give the same release bytes.
    const VERSION: u32 = 3;
    const DESCRIPTION: &'static str = "Copy a model that passes its gates into registry/NAME/VERSION with a model card and its lineage";
    // The release is this workspace's registry folder and lineage row.
    const WORKSPACE_EFFECT: bool = true;
    const TIMEOUT: Duration = Duration::from_secs(600);
    const INPUTS: &'static [(&'static str, bool)] = &[("model", false), ("report", false)];
    const OUTPUTS: &'static [Output] = &[Output {
        slot: "release",
        file: "release.json",
        kind: "release",
        media_type: "application/json",
        dir: false,
    }];
    const PARAMS: &'static [Param] = &[
        param("name", ParamType::String, NAME_HELP),
        param("gate", ParamType::Map, GATE_HELP),
        param(
            "registry",
            ParamType::String,
            "write e.g. `registry: registry` (a folder inside the workspace)",
        ),
    ];
    type Params = Params;

    fn check(p: &Params) -> Result<(), ParamIssue> {
        let name = &p.name;
        if registry::check_name(name).is_err() {
            return Err(issue(
                "name",
                format!("`name: {name}` is not a release name"),
                NAME_HELP,
            ));
        }
        // By its text; the allowed absolute folders are checked by `check_workflow`.
        match registry::check_param(&p.registry, &[]) {
            Ok(()) | Err(RegistryError::Outside { .. }) => Ok(()),
            Err(e) => Err(issue("registry", e.to_string(), e.help())),
        }
    }

    fn check_workflow(p: &Params) -> Result<(), ParamIssue> {
        registry::check_param(&p.registry, &registry::roots_from_env())
            .map_err(|e| issue("registry", e.to_string(), e.help()))
    }

    fn run(p: Params, req: &Request) -> Result<Response, StepError> {
        run(p, req)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Required: it has no default, so it is not serialised.
    #[serde(skip_serializing)]
    pub name: String,
    pub gate: Gates,
    pub registry: String,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            name: String::new(),
            gate: Gates::default(),
            registry: "registry".into(),
        }
    }
}

/// The `gate:` param: metric → condition, in metric order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gates(pub Vec<(String, Gate)>);

impl Serialize for Gates {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(m, g)| (m, g.to_string())))
    }
}

impl<'de> Deserialize<'de> for Gates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Gates, D::Error> {
        let raw = BTreeMap::<String, Json>::deserialize(d)?;
        raw.into_iter()
            .map(|(metric, cond)| {
                let text = match &cond {
                    Json::String(s) => s.clone(),
                    Json::Number(n) => format!(">= {n}"),
                    other => other.to_string(),
                };
                parse_gate(&text)
                    .map(|g| (metric.clone(), g))
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "the gate `{metric}: {cond}` is not a condition"
                        ))
                    })
            })
            .collect::<Result<_, _>>()
            .map(Gates)
    }
}

/// A parsed gate condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    Compare { op: &'static str, value: f64 },
    Beats(String),
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gate::Compare { op, value } => write!(f, "{op} {value}"),
            Gate::Beats(b) => write!(f, "beats {b}"),
        }
    }
}

pub fn parse_gate(text: &str) -> Option<Gate> {
    let t = text.trim();
    if let Some(b) = t.strip_prefix("beats ") {
        let b = b.trim();
        return (!b.is_empty()).then(|| Gate::Beats(b.to_owned()));
    }
    for op in [">=", "<=", ">", "<"] {
        if let Some(v) = t.strip_prefix(op) {
            return v
                .trim()
                .parse()
                .ok()
                .map(|value| Gate::Compare { op, value });
        }
    }
    None
}

/// Checks every gate; the error lists each failure with its numbers.
pub fn check_gates(gates: &[(String, Gate)], report: &Json) -> Result<Vec<String>, StepError> {
    let results = report["results"].as_array().cloned().unwrap_or_default();
    let metric_of = |model: Option<&str>, metric: &str| -> Option<f64> {
        let r = match model {
            None => results.first(),
            Some(m) => results.iter().find(|r| r["name"] == m),
        }?;
        r["metrics"][metric].as_f64()
    };
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for (metric, gate) in gates {
        let Some(v) = metric_of(None, metric) else {
            failed.push(format!("the report has no metric `{metric}`"));
            continue;
        };
        match gate {
            Gate::Compare { op, value } => {
                let ok = match *op {
                    ">=" => v >= *value,
                    "<=" => v <= *value,
                    ">" => v > *value,
                    _ => v < *value,
                };
                let line = format!("{metric} {v:.4} {op} {value}");
                if ok { passed.push(line) } else { failed.push(line) }
            }
            Gate::Beats(b) => match metric_of(Some(b), metric) {
                None => failed.push(format!(
                    "the report has no baseline `{b}` to compare {metric} with (add it to the evaluate step's `baselines`)"
                )),
                Some(bv) => {
                    let line = format!("{metric} {v:.4} beats {b} {bv:.4}");
                    if v > bv { passed.push(line) } else { failed.push(line) }
                }
            },
        }
    }
    if failed.is_empty() {
        Ok(passed)
    } else {
        Err(StepError::new(format!(
            "the model does not pass its gates: {}",
            failed.join("; ")
        ))
        .help("nothing was published; improve the model, or change the step's `gate:` if the bar is wrong"))
    }
}

fn run(p: Params, req: &Request) -> Result<Response, StepError> {
    let Params {
        name,
        gate: Gates(gates),
        registry,
    } = p;
    let model_dir = req.input("model")?;
    let report_dir = req.input("report")?;
    let report: Json = serde_json::from_slice(
        &std::fs::read(report_dir.join("report.json"))
            .map_err(|e| format!("cannot read the report: {e}"))?,
    )
    .map_err(|e| format!("the report is not valid JSON: {e}"))?;
    let passed = check_gates(&gates, &report)?;
    for p in &passed {
        eprintln!("gate passed: {p}");
    }

    let workspace = req.workspace.as_deref().ok_or(
        "the request does not name the workspace; `publish` needs a pedigree that passes it",
    )?;
    let model_hash = req
        .input_hashes
        .get("model")
        .cloned()
        .ok_or("the request does not carry the model's hash")?;
    let report_hash = req.input_hashes.get("report").cloned().unwrap_or_default();
    let reg = Registry::open(workspace, &registry, None).map_err(registry_error)?;
    let release_dir = reg.release(&name).map_err(registry_error)?;
    std::fs::create_dir_all(&release_dir)
        .map_err(|e| format!("cannot create `{}`: {e}", release_dir.display()))?;
    // Created now: check again where it really is (a symlink made meanwhile).
    let release_dir = reg.release(&name).map_err(registry_error)?;

    let (version, existing) =
        match registry::find_by_model(&release_dir, &model_hash).map_err(registry_error)? {
            Some(v) => (v, true),
            None => (
                registry::next_version(&release_dir).map_err(registry_error)?,
                false,
            ),
        };
    let lineage = ancestry(workspace, &[&model_hash, &report_hash])?;
    let release = ReleaseManifest {
        name: name.clone(),
        version,
        model_hash: model_hash.clone(),
        report_hash: report_hash.clone(),
        path: format!("{}/{name}/{version}", reg.display_from(workspace)),
        gates: passed,
        metrics: report["results"]
            .get(0)
            .map(|r| r["metrics"].clone())
            .unwrap_or(Json::Null),
    };
    let release = pretty(&release)?;
    if existing {
        eprintln!("{name} version {version} already holds model {model_hash}; not copied again");
    } else {
        let tmp = release_dir.join(format!(".tmp-{version}-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&tmp)?;
            for f in ["weights.bpk", "model.json"] {
                std::fs::copy(model_dir.join(f), tmp.join(f))?;
            }
            for f in ["report.json", "report.md"] {
                std::fs::copy(report_dir.join(f), tmp.join(f))?;
            }
            std::fs::write(
                tmp.join("lineage.json"),
                pretty(&lineage).map_err(std::io::Error::other)?,
            )?;
            std::fs::write(
                tmp.join("MODEL_CARD.md"),
                model_card(&name, version, &model_hash, model_dir, &report, &lineage),
            )?;
            std::fs::write(tmp.join("release.json"), &release)?;
            std::fs::rename(&tmp, release_dir.join(version.to_string()))
        };
        write().map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            format!("cannot write `{}/{version}`: {e}", release_dir.display())
        })?;
        eprintln!("published {name} version {version}");
    }
    record_release(workspace, &name, version, req.run_id, &model_hash)?;
    std::fs::write(req.output("release")?, &release)
        .map_err(|e| format!("cannot write the release: {e}"))?;
    Ok(Response {
        metrics: vec![MetricPoint {
            key: "version".into(),
            value: version as f64,
            step: None,
        }],
        facets: BTreeMap::from([(
            "release".to_owned(),
            serde_json::from_str(&release).map_err(|e| e.to_string())?,
        )]),
    })
}

/// A manifest as publish writes it: through a JSON value, so keys are sorted, and
/// pretty-printed with a final newline.
fn pretty<T: Serialize>(v: &T) -> Result<String, String> {
    let v = serde_json::to_value(v).map_err(|e| e.to_string())?;
    Ok(format!("{v:#}\n"))
}

fn registry_error(e: RegistryError) -> StepError {
    let help = e.help();
    StepError::new(format!("param `registry`: {e}")).help(help)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the database runtime: {e}"))
}

/// The ancestry of the given artifacts from the lineage database: every step run
/// edge up to the raw inputs, and the workspace paths of those inputs.
fn ancestry(workspace: &Path, hashes: &[&str]) -> Result<LineageManifest, String> {
    let db_path = workspace.join(".pedigree").join("lineage.db");
    // The order `lineage.json` has always had: by each entry's JSON text.
    fn sort_as_json<T: Serialize + PartialEq>(v: &mut Vec<T>) {
        v.sort_by_cached_key(|x| {
            serde_json::to_value(x)
                .map(|j| j.to_string())
                .unwrap_or_default()
        });
        v.dedup();
    }
    runtime()?.block_on(async {
        let db = crate::lineage::Db::open_read_only(&db_path)
            .await
            .map_err(|e| e.to_string())?;
        let mut edges = Vec::new();
        let mut produced = std::collections::BTreeSet::new();
        let mut all = std::collections::BTreeSet::new();
        for h in hashes.iter().filter(|h| !h.is_empty()) {
            all.insert((*h).to_owned());
            for e in db.lineage_up(h, 64).await.map_err(|e| e.to_string())? {
                produced.insert(e.from_hash.clone());
                all.insert(e.to_hash.clone());
                edges.push(LineageEdge {
                    output: e.from_hash,
                    step: e.step,
                    step_run: e.step_run_id,
                    run: e.run_id,
                    output_slot: e.slot_from,
                    input_slot: e.slot_to,
                    input: e.to_hash,
                });
            }
        }
        let mut sources = Vec::new();
        for h in all.iter().filter(|h| !produced.contains(*h)) {
            for s in db.sources_of(h).await.map_err(|e| e.to_string())? {
                sources.push(LineageSource {
                    hash: s.artifact_hash,
                    input: s.name,
                    path: s.path,
                });
            }
        }
        sort_as_json(&mut sources);
        sort_as_json(&mut edges);
        Ok(LineageManifest {
            artifacts: hashes.iter().map(|h| (*h).to_owned()).collect(),
            edges,
            sources,
        })
    })
}

fn record_release(
    workspace: &Path,
    name: &str,
    version: u32,
    run_id: Option<i64>,
    model_hash: &str,
) -> Result<(), String> {
    let Some(run_id) = run_id else {
        return Ok(());
    };
    let dot = workspace.join(".pedigree");
    runtime()?.block_on(async {
        let db = crate::lineage::Db::open(&dot.join("lineage.db"), &dot.join("locks"))
            .await
            .map_err(|e| e.to_string())?;
        db.record_release(name, i64::from(version), run_id, model_hash)
            .await
            .map_err(|e| format!("cannot record the release: {e}"))?;
        db.close().await;
        Ok(())
    })
}

fn model_card(
    name: &str,
    version: u32,
    model_hash: &str,
    model_dir: &Path,
    report: &Json,
    lineage: &LineageManifest,
) -> String {
    let meta: Json = std::fs::read(model_dir.join("model.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Json::Null);
    let mut s = format!("# {name} version {version}\n\nModel `{model_hash}` (GNN-R).\n\n");
    let g = &report["graph"];
    let _ = writeln!(
        s,
        "## Data\n\n{} users, {} items, {} categories; {} training, {} validation and {} test interactions (split: {}).\n",
        g["nodes"]["users"],
        g["nodes"]["items"],
        g["nodes"]["categories"],
        g["edges"]["train"],
        g["edges"]["valid"],
        g["edges"]["test"],
        report["split"],
    );
    let _ = writeln!(s, "## Params\n\n```json\n{:#}\n```\n", meta["config"]);
    let _ = writeln!(
        s,
        "Trained {} epochs; best validation at epoch {}.\n",
        meta["epochs_run"],
        meta["best_epoch"].as_u64().map_or(0, |e| e + 1)
    );
    s.push_str("## Metrics against baselines\n\n");
    let ks: Vec<u64> = report["k"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_u64).collect())
        .unwrap_or_default();
    let cols: Vec<String> = ks
        .iter()
        .flat_map(|k| ["recall", "ndcg", "hit", "mrr"].map(|m| format!("{m}@{k}")))
        .collect();
    let _ = writeln!(
        s,
        "| model | {} |\n|---|{}",
        cols.join(" | "),
        "---:|".repeat(cols.len())
    );
    for r in report["results"].as_array().into_iter().flatten() {
        let _ = write!(s, "| {} |", r["name"].as_str().unwrap_or("?"));
        for c in &cols {
            let _ = write!(s, " {:.4} |", r["metrics"][c].as_f64().unwrap_or(f64::NAN));
        }
        s.push('\n');
    }
    let bpr = &report["baselines"]["bpr-mf"];
    if let (Some(lr), Some(reg)) = (bpr["lr"].as_f64(), bpr["reg"].as_f64()) {
        let _ = writeln!(
            s,
            "\nbpr-mf: the model's trainer without propagation, lr {lr}, reg {reg}."
        );
    }
    s.push_str(
        "\n## Ancestry\n\nEach line: a step run, the artifact it wrote and the one it read.\n\n",
    );
    for e in &lineage.edges {
        let _ = writeln!(
            s,
            "- `{}` ({}.{}) ← step `{}` (run {}) ← `{}` ({})",
            short(&e.output),
            e.step,
            e.output_slot,
            e.step,
            e.run,
            short(&e.input),
            e.input_slot,
        );
    }
    s.push_str("\nRaw inputs:\n\n");
    for src in &lineage.sources {
        let _ = writeln!(
            s,
            "- `{}` `{}` (workflow input `{}`)",
            src.hash, src.path, src.input,
        );
    }
    s
}

fn short(v: &str) -> String {
    v.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gates_compare_thresholds_and_baselines() {
        assert_eq!(
            parse_gate(">= 0.05"),
            Some(Gate::Compare {
                op: ">=",
                value: 0.05
            })
        );
        assert_eq!(
            parse_gate("beats popularity"),
            Some(Gate::Beats("popularity".into()))
        );
        assert_eq!(parse_gate("big"), None);
        let report = json!({"results": [
            {"name": "gnn-r", "metrics": {"ndcg@20": 0.3}},
            {"name": "popularity", "metrics": {"ndcg@20": 0.4}},
        ]});
        let g = |m: &str, t: &str| vec![(m.to_owned(), parse_gate(t).unwrap())];
        assert!(check_gates(&g("ndcg@20", ">= 0.05"), &report).is_ok());
        let e = check_gates(&g("ndcg@20", "beats popularity"), &report).unwrap_err();
        assert_eq!(
            e.message,
            "the model does not pass its gates: ndcg@20 0.3000 beats popularity 0.4000"
        );
        assert!(e.help.is_some());
        let e = check_gates(&g("recall@5", "> 0"), &report).unwrap_err();
        assert!(e.message.contains("no metric `recall@5`"), "{e}");
    }

    /// The child reports a refused param with its help line (it used to keep only
    /// the message).
    #[test]
    fn the_child_keeps_the_help_of_a_refused_param() {
        let req = Request {
            step: "publish".into(),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            params: BTreeMap::from([
                ("name".to_owned(), json!("../escape")),
                ("gate".to_owned(), json!({})),
                ("registry".to_owned(), json!("registry")),
            ]),
            scratch: std::path::PathBuf::from("/nonexistent"),
            workspace: None,
            run_id: None,
            input_hashes: BTreeMap::new(),
        };
        let kind = crate::steps::builtin::lookup("publish").unwrap();
        let e = (kind.run)(&req).unwrap_err();
        assert!(e.message.contains("is not a release name"), "{e}");
        assert_eq!(e.help.as_deref(), Some(NAME_HELP));
        assert!(
            e.diagnostic()
                .to_string()
                .contains("\n  = help: use letters")
        );
    }
}
