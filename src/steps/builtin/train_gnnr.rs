//! `train-gnnr`: graph → model. Trains GNN-R ([`crate::gnn::train`]) and writes
//! the model folder ([`crate::gnn::model`] documents it). Per-epoch series in
//! the lineage database: `loss`, `valid_<metric>` for the early-stopping metric
//! and `valid_recall@20`, `epoch_seconds`, `theta_layerN` (with attention); at the
//! end `best_epoch`, `epochs_run` and `valid_best`. One progress line per epoch on
//! stderr (`pedigree run` shows it as the step's bar).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::gnn_args::{self as args, Params, decl, issue};
use super::{Kind, Output, ParamIssue};
use crate::gnn::graph::Graph;
use crate::gnn::model::{ActivationName, Attention, Refresh, TrainConfig};
use crate::gnn::train::{EpochReport, train_and_save};
use crate::steps::exec::PROGRESS_PREFIX;
use crate::steps::plugin::{ParamDecl, ParamType};
use crate::steps::protocol::{MetricPoint, Request, Response};

pub static KIND: Kind = Kind {
    name: "train-gnnr",
    // 2: cosine attention and fixed θ; loss on gathered rows; AVX2 kernels.
    // 3: cosine logits from the inputs and their inverse norms; the softmax's own exp.
    // 4: `attention_refresh`, by default once an epoch.
    version: 4,
    description: "Train the GNN-R recommender (graph convolution with attention, BPR loss, Adam) on a graph",
    inputs: &[("graph", false)],
    outputs: &[Output {
        slot: "model",
        file: "model",
        kind: "model",
        media_type: "application/vnd.pedigree.gnnr-model",
        dir: true,
    }],
    params,
    validate,
    run,
    timeout: Duration::from_secs(6 * 3600),
};

fn params() -> Vec<(&'static str, ParamDecl)> {
    let d = TrainConfig::default();
    vec![
        ("dim", decl(ParamType::Int, json!(d.dim))),
        ("layers", decl(ParamType::Int, json!(d.layers))),
        (
            "attention",
            decl(ParamType::String, json!(d.attention.name())),
        ),
        ("theta", decl(ParamType::Float, json!(d.theta))),
        ("learn_theta", decl(ParamType::Bool, json!(d.learn_theta))),
        (
            "attention_refresh",
            decl(ParamType::String, json!(d.attention_refresh.name())),
        ),
        ("activation", decl(ParamType::String, json!("none"))),
        ("bias", decl(ParamType::Bool, json!(d.bias))),
        ("epochs", decl(ParamType::Int, json!(d.epochs))),
        ("batch", decl(ParamType::Int, json!(d.batch))),
        ("lr", decl(ParamType::Float, json!(d.lr))),
        ("reg", decl(ParamType::Float, json!(d.reg))),
        ("seed", decl(ParamType::Int, json!(d.seed))),
        ("patience", decl(ParamType::Int, json!(d.patience))),
        ("metric", decl(ParamType::String, json!(d.metric))),
        ("edge_weights", decl(ParamType::Bool, json!(d.edge_weights))),
        (
            "category_weight",
            decl(ParamType::Float, json!(d.category_weight)),
        ),
        ("threads", decl(ParamType::Int, json!(0))),
    ]
}

/// The training config the params describe.
pub fn config(p: &Params) -> Result<TrainConfig, ParamIssue> {
    let d = TrainConfig::default();
    let c = TrainConfig {
        dim: args::usize_of(p, "dim", d.dim)?,
        layers: args::usize_of(p, "layers", d.layers)?,
        attention: {
            let all = [Attention::Cosine, Attention::Dot, Attention::None];
            let names = all.map(Attention::name);
            all[args::choice_of(p, "attention", &names, d.attention.name())?]
        },
        theta: args::f64_of(p, "theta", d.theta as f64)? as f32,
        learn_theta: args::bool_of(p, "learn_theta", d.learn_theta)?,
        attention_refresh: {
            let all = [Refresh::Epoch, Refresh::Batch];
            let names = all.map(Refresh::name);
            all[args::choice_of(p, "attention_refresh", &names, d.attention_refresh.name())?]
        },
        activation: match args::choice_of(p, "activation", &["none", "tanh"], "none")? {
            0 => ActivationName::None,
            _ => ActivationName::Tanh,
        },
        bias: args::bool_of(p, "bias", d.bias)?,
        epochs: args::usize_of(p, "epochs", d.epochs)?,
        batch: args::usize_of(p, "batch", d.batch)?,
        lr: args::f64_of(p, "lr", d.lr)?,
        reg: args::f64_of(p, "reg", d.reg)?,
        seed: args::usize_of(p, "seed", d.seed as usize)? as u64,
        patience: args::usize_of(p, "patience", d.patience)?,
        metric: args::str_of(p, "metric", &d.metric)?.to_owned(),
        edge_weights: args::bool_of(p, "edge_weights", d.edge_weights)?,
        category_weight: args::f64_of(p, "category_weight", d.category_weight as f64)? as f32,
    };
    for (name, v) in [("dim", c.dim), ("epochs", c.epochs), ("batch", c.batch)] {
        if v == 0 {
            return Err(issue(
                name,
                format!("`{name}` must be at least 1"),
                format!("write e.g. `{name}: {}`", json!(params_default(name))),
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
    Ok(c)
}

fn params_default(name: &str) -> Json {
    params()
        .into_iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, d)| d.default)
        .unwrap_or(Json::Null)
}

fn validate(p: &BTreeMap<String, Json>) -> Result<(), ParamIssue> {
    config(p).map(|_| ())
}

fn run(req: &Request) -> Result<Response, String> {
    let config = config(&req.params).map_err(|e| format!("{} ({})", e.message, e.help))?;
    let threads = args::usize_of(&req.params, "threads", 0).map_err(|e| e.message)?;
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
    }
    Ok(Response {
        metrics,
        facets: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, Json)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn attention_and_theta_are_checked() {
        let c = config(&Params::new()).unwrap();
        assert_eq!(c.attention, Attention::Cosine);
        assert!(!c.learn_theta);
        assert_eq!(c.attention_refresh, Refresh::Epoch);
        // θ learns only when attention is recomputed, with its gradient, every batch.
        let e = config(&with(&[
            ("attention", json!("dot")),
            ("learn_theta", json!(true)),
        ]))
        .unwrap_err();
        assert_eq!(e.param, "learn_theta");
        assert!(e.help.contains("attention_refresh: batch"), "{}", e.help);
        let c = config(&with(&[
            ("attention", json!("dot")),
            ("learn_theta", json!(true)),
            ("attention_refresh", json!("batch")),
        ]));
        let c = c.unwrap();
        assert_eq!(
            (c.attention, c.learn_theta, c.attention_refresh),
            (Attention::Dot, true, Refresh::Batch)
        );
        let e = config(&with(&[("attention_refresh", json!("weekly"))])).unwrap_err();
        assert_eq!(e.param, "attention_refresh");
        let e = config(&with(&[("attention", json!("sparkle"))])).unwrap_err();
        assert_eq!(e.param, "attention");
        assert!(e.message.contains("cosine"), "{}", e.message);
        // Finite as f64, infinite as the f32 the model uses: refused, not a NaN model.
        for theta in [json!(1e39), json!(-101.0)] {
            let e = config(&with(&[("theta", theta)])).unwrap_err();
            assert_eq!(e.param, "theta", "{}", e.message);
        }
        let e = config(&with(&[("category_weight", json!(1e39))])).unwrap_err();
        assert_eq!(e.param, "category_weight");
    }
}
