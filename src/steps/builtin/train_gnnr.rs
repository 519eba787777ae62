//! `train-gnnr`: graph → model. Trains GNN-R ([`crate::gnn::train`]) and writes
//! the model folder ([`crate::gnn::model`] documents it). Per-epoch series in
//! the lineage database: `loss`, `valid_<metric>` for the early-stopping metric
//! and `valid_recall@20`, `epoch_seconds`, `theta_layerN` (with attention); at the
//! end `best_epoch`, `epochs_run`, `valid_best`, `train_pairs` (the training
//! interactions), `batch_size` and `learning_rate` (what it trained with, see
//! `max_batches`) and `valid_users` (how many users early stopping validated
//! on). One progress line per epoch on stderr (`pedigree run` shows it as the
//! step's bar).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Builtin, Output, Param, ParamIssue, StepError, issue, param};
use crate::gnn::graph::{Graph, TRAIN};
use crate::gnn::model::TrainConfig;
use crate::gnn::train::{EpochReport, train_and_save};
use crate::steps::exec::PROGRESS_PREFIX;
use crate::steps::plugin::ParamType;
use crate::steps::protocol::{MetricPoint, Request, Response};

/// The `train-gnnr` kind.
pub struct TrainGnnr;

impl Builtin for TrainGnnr {
    const NAME: &'static str = "train-gnnr";
    // 2: cosine attention and fixed θ; loss on gathered rows; AVX2 kernels.
    // 3: cosine logits from the inputs and their inverse norms; the softmax's own exp.
    // 4: `attention_refresh`, by default once an epoch.
    // 5: `max_batches` and `valid_users`, recorded in the model's config (the
    //    weights are unchanged where neither limit is reached).
    const VERSION: u32 = 5;
    const DESCRIPTION: &'static str =
        "Train the GNN-R recommender (graph convolution with attention, BPR loss, Adam) on a graph";
    const TIMEOUT: Duration = Duration::from_secs(6 * 3600);
    const INPUTS: &'static [(&'static str, bool)] = &[("graph", false)];
    const OUTPUTS: &'static [Output] = &[Output {
        slot: "model",
        file: "model",
        kind: "model",
        media_type: "application/vnd.pedigree.gnnr-model",
        dir: true,
    }];
    const PARAMS: &'static [Param] = &[
        param("dim", ParamType::Int, "write e.g. `dim: 64`"),
        param(
            "layers",
            ParamType::Int,
            "write e.g. `layers: 3` (0: BPR-MF)",
        ),
        param(
            "attention",
            ParamType::String,
            "write `attention: cosine`, `attention: dot` or `attention: none`",
        ),
        param("theta", ParamType::Float, "write e.g. `theta: -0.25`"),
        param("learn_theta", ParamType::Bool, "write `learn_theta: false`"),
        param(
            "attention_refresh",
            ParamType::String,
            "write `attention_refresh: epoch` or `attention_refresh: batch`",
        ),
        param(
            "activation",
            ParamType::String,
            "write `activation: none` or `activation: tanh`",
        ),
        param("bias", ParamType::Bool, "write `bias: false`"),
        param("epochs", ParamType::Int, "write e.g. `epochs: 300`"),
        param("batch", ParamType::Int, "write e.g. `batch: 2048`"),
        param(
            "max_batches",
            ParamType::Int,
            "write e.g. `max_batches: 64` (0: no limit)",
        ),
        param(
            "valid_users",
            ParamType::Int,
            "write e.g. `valid_users: 5000` (0: every user)",
        ),
        param("lr", ParamType::Float, "write e.g. `lr: 0.01`"),
        param("reg", ParamType::Float, "write e.g. `reg: 0.001`"),
        param("seed", ParamType::Int, "write e.g. `seed: 2020`"),
        param(
            "patience",
            ParamType::Int,
            "write e.g. `patience: 30` (0: never stop early)",
        ),
        param("metric", ParamType::String, "write e.g. `metric: ndcg@20`"),
        param(
            "edge_weights",
            ParamType::Bool,
            "write `edge_weights: true`",
        ),
        param(
            "category_weight",
            ParamType::Float,
            "write e.g. `category_weight: 1.0`",
        ),
        param(
            "threads",
            ParamType::Int,
            "write e.g. `threads: 4` (0: one per core)",
        ),
    ];
    type Params = Params;

    fn check(p: &Params) -> Result<(), ParamIssue> {
        check(&p.train)
    }

    fn run(p: Params, req: &Request) -> Result<Response, StepError> {
        run(p, req)
    }
}

/// The params of `train-gnnr`: the training config, and the threads to train on
/// (which do not change the model, so they are not part of it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Params {
    #[serde(flatten)]
    pub train: TrainConfig,
    pub threads: usize,
}

/// The rules on a training config that its types do not express.
fn check(c: &TrainConfig) -> Result<(), ParamIssue> {
    let d = TrainConfig::default();
    for (name, v, example) in [
        ("dim", c.dim, d.dim),
        ("epochs", c.epochs, d.epochs),
        ("batch", c.batch, d.batch),
    ] {
        if v == 0 {
            return Err(issue(
                name,
                format!("`{name}` must be at least 1"),
                format!("write e.g. `{name}: {example}`"),
            ));
        }
    }
    if !(-100.0..=100.0).contains(&c.theta) {
        return Err(issue(
            "theta",
            format!(
                "`theta: {}` is out of range: it scales similarities in [-1, 1], and beyond ±100 attention is one neighbour per node",
                c.theta
            ),
            "write e.g. `theta: -0.25` (between -100 and 100)",
        ));
    }
    if c.learns_theta_without_gradient() {
        return Err(issue(
            "learn_theta",
            "`learn_theta: true` needs `attention_refresh: batch`: attention refreshed once an epoch is held fixed within it, so θ gets no gradient",
            "add `attention_refresh: batch`, or drop `learn_theta`",
        ));
    }
    if !c.category_weight.is_finite() {
        return Err(issue(
            "category_weight",
            "`category_weight` is too large for a 32-bit float",
            "write e.g. `category_weight: 1.0`",
        ));
    }
    if c.lr <= 0.0 || c.reg < 0.0 || c.category_weight < 0.0 {
        return Err(issue(
            "lr",
            "`lr` must be above 0, `reg` and `category_weight` at least 0",
            "write e.g. `lr: 0.001, reg: 0.0001`",
        ));
    }
    let ok_metric = c.metric.split_once('@').is_some_and(|(m, k)| {
        ["recall", "ndcg", "hit", "mrr", "precision"].contains(&m)
            && k.parse::<usize>().is_ok_and(|k| k > 0)
    });
    if !ok_metric {
        return Err(issue(
            "metric",
            format!("`metric: {}` is not a ranking metric", c.metric),
            "write e.g. `metric: ndcg@20` (recall, ndcg, hit, mrr or precision at some K)",
        ));
    }
    Ok(())
}

fn run(p: Params, req: &Request) -> Result<Response, StepError> {
    let Params {
        train: config,
        threads,
    } = p;
    if threads > 0 {
        // Ignore an already-initialised pool: the setting is per process.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
    let graph = Graph::read(req.input("graph")?).map_err(|e| e.to_string())?;
    let total = config.epochs;
    let metric = config.metric.clone();
    let mut progress = |r: &EpochReport| {
        let v = r.valid.get(&metric).copied().unwrap_or(0.0);
        // One progress line per epoch: `pedigree run` draws it as the step's bar.
        eprintln!(
            "{PROGRESS_PREFIX}{}/{total} loss {:.4} valid {metric} {v:.4} (best {:.4} @ {}) {:.2}s",
            r.epoch + 1,
            r.loss,
            r.best,
            r.best_epoch + 1,
            r.seconds,
        );
    };
    let history = train_and_save(&graph, &config, req.output("model")?, &mut progress)?;
    let mut metrics = Vec::new();
    let point = |key: String, value: f64, step: Option<i64>| MetricPoint { key, value, step };
    for r in &history {
        let step = Some(r.epoch as i64 + 1);
        metrics.push(point("loss".into(), r.loss, step));
        metrics.push(point("epoch_seconds".into(), r.seconds, step));
        for (l, t) in r.theta.iter().enumerate() {
            metrics.push(point(format!("theta_layer{}", l + 1), *t as f64, step));
        }
        for (k, v) in &r.valid {
            if k == &metric || k == "recall@20" || k == "ndcg@20" {
                metrics.push(point(format!("valid_{k}"), *v, step));
            }
        }
    }
    if let Some(last) = history.last() {
        metrics.push(point(
            "best_epoch".into(),
            last.best_epoch as f64 + 1.0,
            None,
        ));
        metrics.push(point("valid_best".into(), last.best, None));
        metrics.push(point("epochs_run".into(), history.len() as f64, None));
        metrics.push(point("batch_size".into(), last.batch as f64, None));
        metrics.push(point("learning_rate".into(), last.lr, None));
        let pairs = graph.interactions.split.iter().filter(|s| **s == TRAIN);
        metrics.push(point("train_pairs".into(), pairs.count() as f64, None));
        let validated = last.valid.get("users").copied().unwrap_or(0.0);
        metrics.push(point("valid_users".into(), validated, None));
    }
    Ok(Response {
        metrics,
        facets: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gnn::model::{Attention, Refresh};
    use serde_json::{Value as Json, json};

    fn config(v: Json) -> Result<TrainConfig, ParamIssue> {
        crate::steps::builtin::params_of::<TrainGnnr>(v).map(|p| p.train)
    }

    fn with(pairs: &[(&str, Json)]) -> Json {
        Json::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn attention_and_theta_are_checked() {
        let c = config(json!({})).unwrap();
        assert_eq!(c, TrainConfig::default());
        assert_eq!(c.attention, Attention::Cosine);
        assert!(!c.learn_theta);
        assert_eq!(c.attention_refresh, Refresh::Epoch);
        // θ learns only when attention is recomputed, with its gradient, every batch.
        let e = config(with(&[
            ("attention", json!("dot")),
            ("learn_theta", json!(true)),
        ]))
        .unwrap_err();
        assert_eq!(e.param, "learn_theta");
        assert!(e.help.contains("attention_refresh: batch"), "{}", e.help);
        let c = config(with(&[
            ("attention", json!("dot")),
            ("learn_theta", json!(true)),
            ("attention_refresh", json!("batch")),
        ]));
        let c = c.unwrap();
        assert_eq!(
            (c.attention, c.learn_theta, c.attention_refresh),
            (Attention::Dot, true, Refresh::Batch)
        );
        let e = config(with(&[("attention_refresh", json!("weekly"))])).unwrap_err();
        assert_eq!(e.param, "attention_refresh");
        let e = config(with(&[("attention", json!("sparkle"))])).unwrap_err();
        assert_eq!(e.param, "attention");
        assert!(e.message.contains("cosine"), "{}", e.message);
        // Finite as f64, infinite as the f32 the model uses: refused, not a NaN model.
        for theta in [json!(1e39), json!(-101.0)] {
            let e = config(with(&[("theta", theta)])).unwrap_err();
            assert_eq!(e.param, "theta", "{}", e.message);
        }
        let e = config(with(&[("category_weight", json!(1e39))])).unwrap_err();
        assert_eq!(e.param, "category_weight");
    }
}
