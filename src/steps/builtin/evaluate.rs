//! `evaluate`: model, graph → report. Full ranking on the held-out split
//! ([`crate::gnn::metrics`]) for the model and for baselines on the identical
//! split and masks: `popularity`, `item-knn` (linfa-nn neighbours), `bpr-mf`
//! (the same trainer and config with no propagation layers) and `ablation`
//! (the model's config with the other attention setting). The report is a folder
//! with `report.json` and `report.md`; every metric also goes to the lineage
//! database (the model's as `ndcg@20`, a baseline's as `popularity/ndcg@20`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::gnn_args::{self as args, Params, decl, issue};
use super::{Kind, Output, ParamIssue};
use crate::gnn::baselines::{ItemKnn, popularity};
use crate::gnn::graph::{Graph, TEST, TRAIN, VALID};
use crate::gnn::metrics::{self, Metrics};
use crate::gnn::model::{self, Attention, TrainConfig};
use crate::gnn::train::train;
use crate::steps::plugin::{ParamDecl, ParamType};
use crate::steps::protocol::{MetricPoint, Request, Response};

pub static KIND: Kind = Kind {
    name: "evaluate",
    // 2: scores through the propagation's dot product (eight accumulators).
    // 3: its BPR-MF and ablation baselines train with train-gnnr 3's code.
    // 4: and with train-gnnr 4's (an ablation with attention refreshes it once an epoch).
    // 5: `bpr_mf` settings; the report names the BPR-MF baseline's lr and reg.
    version: 5,
    description: "Full-ranking Recall/NDCG/Hit/MRR/Precision@K and coverage for a model and its baselines",
    inputs: &[("model", false), ("graph", false)],
    outputs: &[Output {
        slot: "report",
        file: "report",
        kind: "report",
        media_type: "application/vnd.pedigree.report",
        dir: true,
    }],
    params,
    validate,
    run,
    timeout: Duration::from_secs(6 * 3600),
};

const BASELINES: &[&str] = &["popularity", "item-knn", "bpr-mf", "ablation"];

fn params() -> Vec<(&'static str, ParamDecl)> {
    vec![
        ("k", decl(ParamType::List, json!([10, 20]))),
        (
            "baselines",
            decl(ParamType::List, json!(["popularity", "item-knn", "bpr-mf"])),
        ),
        ("split", decl(ParamType::String, json!("test"))),
        ("knn_k", decl(ParamType::Int, json!(50))),
        ("bpr_mf", decl(ParamType::Map, json!({}))),
    ]
}

#[derive(Debug)]
struct Config {
    ks: Vec<usize>,
    baselines: Vec<String>,
    split: u8,
    knn_k: usize,
    /// The BPR-MF baseline's own learning rate and L2 (`None`: the model's).
    bpr_lr: Option<f64>,
    bpr_reg: Option<f64>,
}

/// `bpr_mf: {lr: …, reg: …}`: settings of the BPR-MF baseline that differ from the
/// model's. A baseline trained with the model's lr is not tuned for itself.
fn bpr_settings(p: &Params) -> Result<(Option<f64>, Option<f64>), ParamIssue> {
    let help =
        "write e.g. `bpr_mf: {lr: 0.001, reg: 0.01}` (either may be left out: the model's is used)";
    let Some(v) = p.get("bpr_mf") else {
        return Ok((None, None));
    };
    let Some(map) = v.as_object() else {
        return Err(issue(
            "bpr_mf",
            format!("`bpr_mf` must be a map, not {v}"),
            help,
        ));
    };
    let mut out = (None, None);
    for (k, v) in map {
        let x = v.as_f64().filter(|x| x.is_finite());
        match (k.as_str(), x) {
            ("lr", Some(x)) if x > 0.0 => out.0 = Some(x),
            ("reg", Some(x)) if x >= 0.0 => out.1 = Some(x),
            ("lr" | "reg", _) => {
                return Err(issue(
                    "bpr_mf",
                    format!("`bpr_mf.{k}: {v}` must be a number, lr above 0 and reg at least 0"),
                    help,
                ));
            }
            _ => {
                return Err(issue(
                    "bpr_mf",
                    format!("`bpr_mf` has no setting `{k}`; it takes `lr` and `reg`"),
                    help,
                ));
            }
        }
    }
    Ok(out)
}

fn config(p: &Params) -> Result<Config, ParamIssue> {
    let ks: Vec<usize> = match p.get("k") {
        None => vec![10, 20],
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| v.as_u64().filter(|k| *k > 0).map(|k| k as usize))
            .collect::<Option<Vec<_>>>()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                issue(
                    "k",
                    "`k` must be a list of whole numbers above 0",
                    "write e.g. `k: [10, 20]`",
                )
            })?,
        Some(v) => {
            return Err(issue(
                "k",
                format!("`k` must be a list, not {v}"),
                "write e.g. `k: [10, 20]`",
            ));
        }
    };
    let baselines: Vec<String> = match p.get("baselines") {
        None => vec!["popularity".into(), "item-knn".into(), "bpr-mf".into()],
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| match v.as_str() {
                Some(s) if BASELINES.contains(&s) => Ok(s.to_owned()),
                _ => Err(issue(
                    "baselines",
                    format!("`{v}` is not a baseline"),
                    format!("the baselines are: {}", BASELINES.join(", ")),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(issue(
                "baselines",
                format!("`baselines` must be a list, not {v}"),
                "write e.g. `baselines: [popularity, bpr-mf]`",
            ));
        }
    };
    let split = match args::choice_of(p, "split", &["test", "valid"], "test")? {
        0 => TEST,
        _ => VALID,
    };
    let (bpr_lr, bpr_reg) = bpr_settings(p)?;
    Ok(Config {
        ks,
        baselines,
        split,
        knn_k: args::usize_of(p, "knn_k", 50)?.max(1),
        bpr_lr,
        bpr_reg,
    })
}

fn validate(p: &BTreeMap<String, Json>) -> Result<(), ParamIssue> {
    config(p).map(|_| ())
}

/// Evaluates embeddings ((users + items) × d) on the graph's held-out split.
fn rank_embeddings(g: &Graph, out: &[f32], d: usize, c: &Config) -> Metrics {
    let (exclude, target) = masks(g, c.split);
    let nu = g.n_users();
    let items = &out[nu * d..];
    metrics::evaluate(
        nu,
        g.n_items(),
        |u, o| metrics::dot_scores(&out[u * d..(u + 1) * d], items, d, o),
        &exclude,
        &target,
        &c.ks,
    )
}

/// The config the `ablation` baseline trains: the model's without attention, or,
/// for a model without attention, with the default attention and its θ (a model
/// of format 1 carries θ 1.0, a starting value for the learnt θ of those days).
fn ablation_of(model: &TrainConfig) -> TrainConfig {
    let default = TrainConfig::default();
    let mut cfg = model.clone();
    match model.attention {
        Attention::None => {
            cfg.attention = default.attention;
            cfg.theta = default.theta;
            cfg.learn_theta = default.learn_theta;
            cfg.attention_refresh = default.attention_refresh;
        }
        Attention::Dot | Attention::Cosine => cfg.attention = Attention::None,
    }
    cfg
}

/// Test: train and valid masked (the reference protocol). Valid: train masked.
fn masks(g: &Graph, split: u8) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let train = g.items_by_user(TRAIN);
    if split == TEST {
        (
            metrics::union(&train, &g.items_by_user(VALID)),
            g.items_by_user(TEST),
        )
    } else {
        (train, g.items_by_user(VALID))
    }
}

fn run(req: &Request) -> Result<Response, String> {
    let c = config(&req.params).map_err(|e| format!("{} ({})", e.message, e.help))?;
    let graph = Graph::read(req.input("graph")?).map_err(|e| e.to_string())?;
    let loaded = model::load(req.input("model")?, &model::cpu()).map_err(|e| e.to_string())?;
    if loaded.meta.users != graph.users || loaded.meta.items != graph.items {
        return Err(
            "the model was trained on a different graph (its users or items differ); \
             evaluate it with the graph it was trained on"
                .into(),
        );
    }
    let d = loaded.meta.config.dim;
    let mut results: Vec<(String, Metrics, f64)> = Vec::new();
    let mut bpr_trained = None;
    let t = Instant::now();
    let model_metrics = rank_embeddings(&graph, &loaded.output, d, &c);
    results.push(("gnn-r".into(), model_metrics, t.elapsed().as_secs_f64()));

    for b in &c.baselines {
        let t = Instant::now();
        let (exclude, target) = masks(&graph, c.split);
        let m = match b.as_str() {
            "popularity" => {
                let pop = popularity(&graph);
                metrics::evaluate(
                    graph.n_users(),
                    graph.n_items(),
                    |_, o| o.copy_from_slice(&pop),
                    &exclude,
                    &target,
                    &c.ks,
                )
            }
            "item-knn" => {
                let knn = ItemKnn::fit(&graph, c.knn_k)?;
                let train = graph.items_by_user(TRAIN);
                metrics::evaluate(
                    graph.n_users(),
                    graph.n_items(),
                    |u, o| knn.score(&train[u], o),
                    &exclude,
                    &target,
                    &c.ks,
                )
            }
            "bpr-mf" | "ablation" => {
                let mut cfg: TrainConfig = loaded.meta.config.clone();
                if b == "bpr-mf" {
                    cfg.layers = 0;
                    cfg.attention = Attention::None;
                    cfg.lr = c.bpr_lr.unwrap_or(cfg.lr);
                    cfg.reg = c.bpr_reg.unwrap_or(cfg.reg);
                    bpr_trained = Some((cfg.lr, cfg.reg));
                } else {
                    cfg = ablation_of(&cfg);
                }
                eprintln!("training baseline {b}");
                let metric = cfg.metric.clone();
                let trained = train(&graph, &cfg, &mut |r| {
                    if r.epoch % 10 == 0 {
                        let v = r.valid.get(&metric).copied().unwrap_or(0.0);
                        eprintln!(
                            "  {b} epoch {:>4}  loss {:.4}  valid {metric} {v:.4}",
                            r.epoch + 1,
                            r.loss
                        );
                    }
                })?;
                let out = model::values(trained.module.output.val());
                rank_embeddings(&graph, &out, d, &c)
            }
            _ => unreachable!("validated above"),
        };
        let name = if b == "ablation" {
            format!(
                "gnn-r attention:{}",
                ablation_of(&loaded.meta.config).attention.name()
            )
        } else {
            b.clone()
        };
        results.push((name, m, t.elapsed().as_secs_f64()));
    }

    let split_name = if c.split == TEST { "test" } else { "valid" };
    let report = json!({
        "split": split_name,
        "k": c.ks,
        "model": {
            "config": loaded.meta.config,
            "best_epoch": loaded.meta.best_epoch + 1,
            "epochs_run": loaded.meta.epochs_run,
        },
        "graph": graph.stats,
        "baselines": {
            "bpr-mf": bpr_trained.map(|(lr, reg)| json!({"lr": lr, "reg": reg})),
        },
        "results": results.iter().map(|(n, m, s)| json!({"name": n, "metrics": m, "seconds": s})).collect::<Vec<_>>(),
    });
    let dir = req.output("report")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot write the report: {e}"))?;
    std::fs::write(dir.join("report.json"), format!("{report:#}\n"))
        .map_err(|e| format!("cannot write the report: {e}"))?;
    let mut md = markdown(&results, &c.ks, split_name);
    if let Some((lr, reg)) = bpr_trained {
        let _ = write!(
            md,
            "\nbpr-mf: the model's trainer without propagation, lr {lr}, reg {reg}.\n"
        );
    }
    std::fs::write(dir.join("report.md"), &md)
        .map_err(|e| format!("cannot write the report: {e}"))?;
    eprint!("{md}");

    let mut out = Vec::new();
    for (k, (name, m, _)) in results.iter().enumerate() {
        for (key, v) in m {
            let key = if k == 0 {
                key.clone()
            } else {
                format!("{name}/{key}")
            };
            out.push(MetricPoint {
                key,
                value: *v,
                step: None,
            });
        }
    }
    Ok(Response {
        metrics: out,
        facets: BTreeMap::new(),
    })
}

fn markdown(results: &[(String, Metrics, f64)], ks: &[usize], split: &str) -> String {
    let mut cols: Vec<String> = Vec::new();
    for k in ks {
        for m in ["recall", "ndcg", "hit", "mrr", "precision", "coverage"] {
            cols.push(format!("{m}@{k}"));
        }
    }
    let mut s = format!(
        "# Evaluation ({split} split, full ranking)\n\n| model | {} |\n|---|{}\n",
        cols.join(" | "),
        "---:|".repeat(cols.len())
    );
    for (name, m, _) in results {
        let _ = write!(s, "| {name} |");
        for c in &cols {
            let _ = write!(s, " {:.4} |", m.get(c).copied().unwrap_or(f64::NAN));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gnn::model::Refresh;

    #[test]
    fn bpr_mf_settings_are_checked() {
        let with = |v: Json| Params::from([("bpr_mf".to_string(), v)]);
        let c = config(&Params::new()).unwrap();
        assert_eq!((c.bpr_lr, c.bpr_reg), (None, None));
        let c = config(&with(json!({"lr": 0.001, "reg": 0.01}))).unwrap();
        assert_eq!((c.bpr_lr, c.bpr_reg), (Some(0.001), Some(0.01)));
        let c = config(&with(json!({"reg": 0}))).unwrap();
        assert_eq!((c.bpr_lr, c.bpr_reg), (None, Some(0.0)));
        for (bad, says) in [
            (json!({"lr": 0}), "lr above 0"),
            (json!({"reg": "high"}), "must be a number"),
            (json!({"epochs": 3}), "no setting `epochs`"),
            (json!([0.001]), "must be a map"),
        ] {
            let e = config(&with(bad.clone())).unwrap_err();
            assert_eq!(e.param, "bpr_mf");
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn the_ablation_switches_attention_and_nothing_else() {
        let shipped = TrainConfig::default();
        let off = ablation_of(&shipped);
        assert_eq!(off.attention, Attention::None);
        assert_eq!(
            TrainConfig {
                attention: shipped.attention,
                ..off.clone()
            },
            shipped
        );
        // An older model without attention: the ablation is today's attention with
        // today's θ and refresh, not the θ 1.0 and per-batch refresh it carries.
        let old = TrainConfig {
            attention: Attention::None,
            theta: 1.0,
            attention_refresh: Refresh::Batch,
            ..TrainConfig::default()
        };
        let on = ablation_of(&old);
        assert_eq!(on.attention, shipped.attention);
        assert_eq!(
            (on.theta, on.learn_theta, on.attention_refresh),
            (
                shipped.theta,
                shipped.learn_theta,
                shipped.attention_refresh
            )
        );
        assert_eq!(on.lr, old.lr);
    }
}
