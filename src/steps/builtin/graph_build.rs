//! `graph-build`: interactions (+ an optional item catalogue) → the graph
//! artifact ([`crate::gnn::graph`] documents the format). Facets: the graph's
//! statistics (nodes and edges by type, density, degree distributions, rows
//! dropped and why, unseen held-out items).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::gnn_args::{self as args, Params, decl, issue};
use super::{Kind, Output, ParamIssue};
use crate::gnn::graph::{BuildConfig, Graph, SplitBy, Unseen};
use crate::gnn::input::read_columns;
use crate::steps::plugin::{ParamDecl, ParamType};
use crate::steps::protocol::{Request, Response};

pub static KIND: Kind = Kind {
    name: "graph-build",
    version: 1,
    description: "Users, items and categories as a graph with weighted edges and a per-user train/valid/test split",
    inputs: &[("interactions", false), ("items", true)],
    outputs: &[Output {
        slot: "graph",
        file: "graph.json",
        kind: "graph",
        media_type: "application/vnd.pedigree.graph+json",
        dir: false,
    }],
    params,
    validate,
    run,
    timeout: Duration::from_secs(3600),
};

fn params() -> Vec<(&'static str, ParamDecl)> {
    vec![
        ("weights", decl(ParamType::Map, json!({}))),
        ("split", decl(ParamType::Map, json!({}))),
        ("unseen", decl(ParamType::String, json!("keep"))),
        ("columns", decl(ParamType::Map, json!({}))),
    ]
}

/// The build config the params describe.
pub fn config(p: &Params) -> Result<BuildConfig, ParamIssue> {
    let mut c = BuildConfig::default();
    for (event, w) in args::map_of(p, "weights")? {
        let w = w.as_f64().filter(|w| w.is_finite()).ok_or_else(|| {
            issue(
                "weights",
                format!("the weight of event `{event}` must be a number, not {w}"),
                "write e.g. `weights: { view: 1, click: 2, cart: 3, purchase: 5 }`",
            )
        })?;
        c.weights.insert(event, w);
    }
    let split = args::map_of(p, "split")?;
    args::known_keys(
        &Json::Object(split.clone().into_iter().collect()),
        "split",
        &["valid", "test", "by", "seed"],
    )?;
    c.valid = args::f64_of(&split, "valid", c.valid).map_err(|e| rename(e, "split"))?;
    c.test = args::f64_of(&split, "test", c.test).map_err(|e| rename(e, "split"))?;
    c.seed =
        args::usize_of(&split, "seed", c.seed as usize).map_err(|e| rename(e, "split"))? as u64;
    c.by = match args::choice_of(&split, "by", &["random", "time"], "random")
        .map_err(|e| rename(e, "split"))?
    {
        0 => SplitBy::Random,
        _ => SplitBy::Time,
    };
    if !(0.0..1.0).contains(&c.valid) || !(0.0..1.0).contains(&c.test) || c.valid + c.test >= 1.0 {
        return Err(issue(
            "split",
            format!(
                "`split` holds out valid {} + test {} of each user's interactions, which leaves nothing to train on",
                c.valid, c.test
            ),
            "use fractions in [0, 1) that add up to less than 1, e.g. `split: { valid: 0.1, test: 0.1 }`",
        ));
    }
    c.unseen = match args::choice_of(p, "unseen", &["keep", "drop"], "keep")? {
        0 => Unseen::Keep,
        _ => Unseen::Drop,
    };
    let cols = args::map_of(p, "columns")?;
    args::known_keys(
        &Json::Object(cols.clone().into_iter().collect()),
        "columns",
        &["user", "item", "event", "time", "category"],
    )?;
    let col = |k: &str, d: &str| -> Result<String, ParamIssue> {
        args::str_of(&cols, k, d)
            .map(str::to_owned)
            .map_err(|e| rename(e, "columns"))
    };
    c.user_col = col("user", &c.user_col)?;
    c.item_col = col("item", &c.item_col)?;
    c.event_col = col("event", &c.event_col)?;
    c.time_col = col("time", &c.time_col)?;
    c.category_col = col("category", &c.category_col)?;
    Ok(c)
}

fn rename(mut e: ParamIssue, param: &str) -> ParamIssue {
    e.param = param.to_owned();
    e
}

fn validate(p: &BTreeMap<String, Json>) -> Result<(), ParamIssue> {
    config(p).map(|_| ())
}

fn run(req: &Request) -> Result<Response, String> {
    let config = config(&req.params).map_err(|e| format!("{} ({})", e.message, e.help))?;
    let inter = read_columns(req.input("interactions")?)?;
    let items = match req.inputs.get("items") {
        Some(p) => Some(read_columns(p)?),
        None => None,
    };
    let (graph, _) = Graph::build(&inter, items.as_ref(), &config).map_err(|e| e.to_string())?;
    graph
        .write(req.output("graph")?)
        .map_err(|e| e.to_string())?;
    eprintln!(
        "graph: {} users, {} items, {} categories; {} user-item edges ({} train)",
        graph.n_users(),
        graph.n_items(),
        graph.categories.len(),
        graph.interactions.len(),
        graph.stats["edges"]["train"],
    );
    Ok(Response {
        metrics: Vec::new(),
        facets: graph.stats.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_become_a_build_config() {
        let p: Params = serde_json::from_value(json!({
            "weights": {"view": 1, "purchase": 5},
            "split": {"valid": 0.2, "test": 0.1, "by": "time"},
            "unseen": "drop",
            "columns": {"time": "when"},
        }))
        .unwrap();
        let c = config(&p).unwrap();
        assert_eq!(c.weights["purchase"], 5.0);
        assert_eq!((c.valid, c.test, c.by), (0.2, 0.1, SplitBy::Time));
        assert_eq!(c.unseen, Unseen::Drop);
        assert_eq!(c.time_col, "when");

        let bad: Params =
            serde_json::from_value(json!({"split": {"valid": 0.6, "test": 0.5}})).unwrap();
        assert!(
            config(&bad)
                .unwrap_err()
                .message
                .contains("nothing to train on")
        );
        let bad: Params = serde_json::from_value(json!({"split": {"by": "day"}})).unwrap();
        let e = config(&bad).unwrap_err();
        assert_eq!(e.param, "split");
        assert!(
            e.message.contains("not one of random, time"),
            "{}",
            e.message
        );
    }
}
