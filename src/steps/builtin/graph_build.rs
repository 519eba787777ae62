//! `graph-build`: interactions (+ an optional item catalogue) → the graph
//! artifact ([`crate::gnn::graph`] documents the format). Facets: the graph's
//! statistics (nodes and edges by type, density, degree distributions, rows
//! dropped and why, unseen held-out items).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Builtin, Output, Param, ParamIssue, StepError, issue, param};
use crate::gnn::graph::{BuildConfig, Graph, SplitBy, Unseen};
use crate::gnn::input::read_columns;
use crate::steps::plugin::ParamType;
use crate::steps::protocol::{Request, Response};

/// The `graph-build` kind.
pub struct GraphBuild;

impl Builtin for GraphBuild {
    const NAME: &'static str = "graph-build";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "Users, items and categories as a graph with weighted edges and a per-user train/valid/test split";
    const INPUTS: &'static [(&'static str, bool)] = &[("interactions", false), ("items", true)];
    const OUTPUTS: &'static [Output] = &[Output {
        slot: "graph",
        file: "graph.json",
        kind: "graph",
        media_type: "application/vnd.pedigree.graph+json",
        dir: false,
    }];
    const PARAMS: &'static [Param] = &[
        param(
            "weights",
            ParamType::Map,
            "write e.g. `weights: { view: 1, click: 2, cart: 3, purchase: 5 }`",
        ),
        param(
            "split",
            ParamType::Map,
            "write e.g. `split: { valid: 0.1, test: 0.1, by: random, seed: 2020 }` (`by` is `random` or `time`)",
        ),
        param(
            "unseen",
            ParamType::String,
            "write `unseen: keep` or `unseen: drop`",
        ),
        param(
            "columns",
            ParamType::Map,
            "the keys of `columns` are: user, item, event, time, category",
        ),
    ];
    type Params = Params;

    fn check(p: &Params) -> Result<(), ParamIssue> {
        let c = BuildConfig::from(p.clone());
        if !(0.0..1.0).contains(&c.valid)
            || !(0.0..1.0).contains(&c.test)
            || c.valid + c.test >= 1.0
        {
            return Err(issue(
                "split",
                format!(
                    "`split` holds out valid {} + test {} of each user's interactions, which leaves nothing to train on",
                    c.valid, c.test
                ),
                "use fractions in [0, 1) that add up to less than 1, e.g. `split: { valid: 0.1, test: 0.1 }`",
            ));
        }
        Ok(())
    }

    fn run(p: Params, req: &Request) -> Result<Response, StepError> {
        let config = BuildConfig::from(p);
        let read = |path: &std::path::Path| {
            read_columns(path).map_err(|e| StepError {
                message: e.to_string(),
                help: e.help(),
            })
        };
        let inter = read(req.input("interactions")?)?;
        let items = match req.inputs.get("items") {
            Some(p) => Some(read(p)?),
            None => None,
        };
        let (graph, _) =
            Graph::build(&inter, items.as_ref(), &config).map_err(|e| e.to_string())?;
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
}

/// The params of `graph-build`; each unset field keeps [`BuildConfig`]'s default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Event type → edge weight.
    pub weights: BTreeMap<String, f64>,
    pub split: Split,
    pub unseen: Unseen,
    pub columns: Columns,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            weights: BTreeMap::new(),
            split: Split::default(),
            unseen: BuildConfig::default().unseen,
            columns: Columns::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<SplitBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl From<Params> for BuildConfig {
    fn from(p: Params) -> BuildConfig {
        let d = BuildConfig::default();
        let c = p.columns;
        BuildConfig {
            weights: p.weights,
            valid: p.split.valid.unwrap_or(d.valid),
            test: p.split.test.unwrap_or(d.test),
            by: p.split.by.unwrap_or(d.by),
            seed: p.split.seed.unwrap_or(d.seed),
            unseen: p.unseen,
            user_col: c.user.unwrap_or(d.user_col),
            item_col: c.item.unwrap_or(d.item_col),
            event_col: c.event.unwrap_or(d.event_col),
            time_col: c.time.unwrap_or(d.time_col),
            category_col: c.category.unwrap_or(d.category_col),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn config(v: serde_json::Value) -> Result<BuildConfig, ParamIssue> {
        crate::steps::builtin::params_of::<GraphBuild>(v).map(BuildConfig::from)
    }

    #[test]
    fn params_become_a_build_config() {
        let c = config(json!({
            "weights": {"view": 1, "purchase": 5},
            "split": {"valid": 0.2, "test": 0.1, "by": "time"},
            "unseen": "drop",
            "columns": {"time": "when"},
        }))
        .unwrap();
        assert_eq!(c.weights["purchase"], 5.0);
        assert_eq!((c.valid, c.test, c.by), (0.2, 0.1, SplitBy::Time));
        assert_eq!(c.unseen, Unseen::Drop);
        assert_eq!(c.time_col, "when");
        assert_eq!(config(json!({})).unwrap(), BuildConfig::default());

        let e = config(json!({"split": {"valid": 0.6, "test": 0.5}})).unwrap_err();
        assert!(e.message.contains("nothing to train on"), "{}", e.message);
        let e = config(json!({"split": {"by": "day"}})).unwrap_err();
        assert_eq!(e.param, "split");
        assert!(e.message.contains("`random`"), "{}", e.message);
        let e = config(json!({"columns": {"usr": "u"}})).unwrap_err();
        assert_eq!(e.param, "columns");
        assert!(e.message.contains("unknown field `usr`"), "{}", e.message);
    }
}
