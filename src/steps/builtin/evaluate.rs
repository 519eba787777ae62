//! `evaluate`: model, graph → report. Full ranking on the held-out split
//! ([`crate::gnn::metrics`]) for the model and for baselines on the identical
//! split and masks: `popularity`, `item-knn` (cosine neighbours from
//! co-occurrence counts), `bpr-mf` (the same trainer and config with no
//! propagation layers) and `ablation` (the model's config with the other
//! attention setting). The report is a folder
//! with `report.json` and `report.md`; every metric also goes to the lineage
//! database (the model's as `ndcg@20`, a baseline's as `popularity/ndcg@20`), with
//! the time each took as `seconds` (`popularity/seconds`): timings are metrics,
//! never report content, so the same model and graph give the same report bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Builtin, Output, Param, ParamIssue, StepError, issue, param};
use crate::gnn::baselines::{ItemKnn, popularity};
use crate::gnn::graph::{Graph, TEST, TRAIN, VALID};
use crate::gnn::metrics::{self, Metrics};
use crate::gnn::model::{self, Attention, TrainConfig};
use crate::gnn::train::train;
use crate::steps::plugin::ParamType;
use crate::steps::protocol::{MetricPoint, Request, Response};

/// The `evaluate` kind.
pub struct Evaluate;

impl Builtin for Evaluate {
    const NAME: &'static str = "evaluate";
    // 2: scores through the propagation's dot product (eight accumulators).
    // 3: its BPR-MF and ablation baselines train with train-gnnr 3's code.
    // 4: and with train-gnnr 4's (an ablation with attention refreshes it once an epoch).
    // 5: `bpr_mf` settings; the report names the BPR-MF baseline's lr and reg.
    // 6: `report.json` holds no timings (they are the `seconds` metrics).
    // 7: item-kNN from sparse co-occurrence counts (similarities computed in
    //    f64, ties broken by the lower item index), not a dense items × users matrix.
    const VERSION: u32 = 7;
    const DESCRIPTION: &'static str =
        "Full-ranking Recall/NDCG/Hit/MRR/Precision@K and coverage for a model and its baselines";
    const TIMEOUT: Duration = Duration::from_secs(6 * 3600);
    const INPUTS: &'static [(&'static str, bool)] = &[("model", false), ("graph", false)];
    const OUTPUTS: &'static [Output] = &[Output {
        slot: "report",
        file: "report",
        kind: "report",
        media_type: "application/vnd.pedigree.report",
        dir: true,
    }];
    const PARAMS: &'static [Param] = &[
        param("k", ParamType::List, "write e.g. `k: [10, 20]`"),
        param(
            "baselines",
            ParamType::List,
            "the baselines are: popularity, item-knn, bpr-mf, ablation",
        ),
        param(
            "split",
            ParamType::String,
            "write `split: test` or `split: valid`",
        ),
        param("knn_k", ParamType::Int, "write e.g. `knn_k: 50`"),
        param(
            "bpr_mf",
            ParamType::Map,
            "write e.g. `bpr_mf: {lr: 0.001, reg: 0.01}` (either may be left out: the model's is used)",
        ),
    ];
    type Params = Params;

    fn check(p: &Params) -> Result<(), ParamIssue> {
        if p.k.is_empty() || p.k.contains(&0) {
            return Err(issue(
                "k",
                "`k` must be a list of whole numbers above 0",
                "write e.g. `k: [10, 20]`",
            ));
        }
        let help = "write e.g. `bpr_mf: {lr: 0.001, reg: 0.01}` (either may be left out: the model's is used)";
        if p.bpr_mf.lr.is_some_and(|x| x <= 0.0) || p.bpr_mf.reg.is_some_and(|x| x < 0.0) {
            return Err(issue(
                "bpr_mf",
                "`bpr_mf`: lr must be above 0 and reg at least 0",
                help,
            ));
        }
        Ok(())
    }

    fn run(p: Params, req: &Request) -> Result<Response, StepError> {
        run(&p, req)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    Popularity,
    ItemKnn,
    BprMf,
    Ablation,
}

impl Baseline {
    fn name(self) -> &'static str {
        match self {
            Baseline::Popularity => "popularity",
            Baseline::ItemKnn => "item-knn",
            Baseline::BprMf => "bpr-mf",
            Baseline::Ablation => "ablation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Test,
    Valid,
}

/// `bpr_mf: {lr: …, reg: …}`: settings of the BPR-MF baseline that differ from the
/// model's (`None`: the model's). A baseline trained with the model's lr is not
/// tuned for itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BprMf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reg: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    pub k: Vec<usize>,
    pub baselines: Vec<Baseline>,
    pub split: Split,
    pub knn_k: usize,
    pub bpr_mf: BprMf,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            k: vec![10, 20],
            baselines: vec![Baseline::Popularity, Baseline::ItemKnn, Baseline::BprMf],
            split: Split::Test,
            knn_k: 50,
            bpr_mf: BprMf::default(),
        }
    }
}

/// What a run of `evaluate` reads from its params.
#[derive(Debug)]
struct Config {
    ks: Vec<usize>,
    split: u8,
}

impl Config {
    fn of(p: &Params) -> Config {
        Config {
            ks: p.k.clone(),
            split: match p.split {
                Split::Test => TEST,
                Split::Valid => VALID,
            },
        }
    }
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

fn run(p: &Params, req: &Request) -> Result<Response, StepError> {
    let c = Config::of(p);
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

    for &baseline in &p.baselines {
        let b = baseline.name();
        let t = Instant::now();
        let (exclude, target) = masks(&graph, c.split);
        let m = match baseline {
            Baseline::Popularity => {
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
            Baseline::ItemKnn => {
                let knn = ItemKnn::fit(&graph, p.knn_k.max(1));
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
            Baseline::BprMf | Baseline::Ablation => {
                let mut cfg: TrainConfig = loaded.meta.config.clone();
                if baseline == Baseline::BprMf {
                    cfg.layers = 0;
                    cfg.attention = Attention::None;
                    cfg.lr = p.bpr_mf.lr.unwrap_or(cfg.lr);
                    cfg.reg = p.bpr_mf.reg.unwrap_or(cfg.reg);
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
                if baseline == Baseline::BprMf {
                    // The rate it trained with: a batch grown by `max_batches`
                    // scales the configured one (TrainConfig::lr_for).
                    let lr = trained.history.first().map_or(cfg.lr, |h| h.lr);
                    bpr_trained = Some((lr, cfg.reg));
                }
                let out = model::values(trained.module.output.val());
                rank_embeddings(&graph, &out, d, &c)
            }
        };
        let name = if baseline == Baseline::Ablation {
            format!(
                "gnn-r attention:{}",
                ablation_of(&loaded.meta.config).attention.name()
            )
        } else {
            b.to_owned()
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
        // No timings: the report is an artifact, and the same model and graph must give
        // the same bytes. How long each took is the `seconds` metric.
        "results": results.iter().map(|(n, m, _)| json!({"name": n, "metrics": m})).collect::<Vec<_>>(),
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
    for (k, (name, m, seconds)) in results.iter().enumerate() {
        let timing = ("seconds".to_owned(), *seconds);
        for (key, v) in m.iter().map(|(k, v)| (k.clone(), *v)).chain([timing]) {
            let key = if k == 0 { key } else { format!("{name}/{key}") };
            out.push(MetricPoint {
                key,
                value: v,
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

    use serde_json::Value as Json;

    #[test]
    fn bpr_mf_settings_are_checked() {
        let with = |v: Json| crate::steps::builtin::params_of::<Evaluate>(json!({"bpr_mf": v}));
        let c = with(json!({})).unwrap().bpr_mf;
        assert_eq!((c.lr, c.reg), (None, None));
        let c = with(json!({"lr": 0.001, "reg": 0.01})).unwrap().bpr_mf;
        assert_eq!((c.lr, c.reg), (Some(0.001), Some(0.01)));
        let c = with(json!({"reg": 0})).unwrap().bpr_mf;
        assert_eq!((c.lr, c.reg), (None, Some(0.0)));
        for (bad, says) in [
            (json!({"lr": 0}), "lr must be above 0"),
            (json!({"reg": "high"}), "invalid type"),
            (json!({"epochs": 3}), "unknown field `epochs`"),
        ] {
            let e = with(bad.clone()).unwrap_err();
            assert_eq!(e.param, "bpr_mf");
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
        let e = crate::steps::builtin::params_of::<Evaluate>(json!({"baselines": ["pop"]}))
            .unwrap_err();
        assert_eq!(e.param, "baselines");
        let e = crate::steps::builtin::params_of::<Evaluate>(json!({"k": []})).unwrap_err();
        assert_eq!(e.param, "k");
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
