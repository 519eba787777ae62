//! The `columns:` param of `impute`: each column to fill and its list of strategies
//! (a name, `median`, or a map with one key, `{ constant: 0 }`), deserialised with
//! serde and put in the order the columns are filled: a column another one reads
//! (as a feature, a group or a lookup key) is filled first, otherwise alphabetically.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Mean,
    Median,
    Mode,
}

impl Stat {
    pub fn name(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::Median => "median",
            Stat::Mode => "mode",
        }
    }

    fn of(name: &str) -> Option<Stat> {
        match name {
            "mean" => Some(Stat::Mean),
            "median" => Some(Stat::Median),
            "mode" => Some(Stat::Mode),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    Constant(Json),
    Stat {
        stat: Stat,
        by: Option<String>,
    },
    Lookup {
        key: String,
        column: Option<String>,
        side_key: Option<String>,
    },
    Knn {
        features: Vec<String>,
        k: usize,
        max_train: usize,
    },
}

const STRATEGIES: &[&str] = &["constant", "mean", "median", "mode", "lookup", "knn"];

/// A column name inside a strategy: non-empty text.
#[derive(Debug, Clone)]
struct ColumnName(String);

impl<'de> Deserialize<'de> for ColumnName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ColumnName, D::Error> {
        match Json::deserialize(d)? {
            Json::String(s) if !s.is_empty() => Ok(ColumnName(s)),
            other => Err(D::Error::custom(format!(
                "must be a column name, not `{other}`"
            ))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatArgs {
    by: Option<ColumnName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupArgs {
    key: Option<ColumnName>,
    column: Option<ColumnName>,
    side_key: Option<ColumnName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KnnArgs {
    features: Option<Vec<String>>,
    k: Option<Json>,
    max_train: Option<Json>,
}

/// The settings each strategy that takes a map accepts.
fn settings(name: &str) -> &'static [&'static str] {
    match name {
        "lookup" => &["key", "column", "side_key"],
        "knn" => &["features", "k", "max_train"],
        _ => &["by"],
    }
}

fn example(name: &str) -> &'static str {
    match name {
        "lookup" => "`{ lookup: { key: item_id } }`",
        "knn" => "`{ knn: { features: [price], k: 5 } }`",
        _ => "`{ median: { by: category } }`",
    }
}

impl Strategy {
    /// The name counted in the `imputed` facet.
    pub fn label(&self) -> String {
        match self {
            Strategy::Constant(_) => "constant".into(),
            Strategy::Stat { stat, by: None } => stat.name().into(),
            Strategy::Stat { stat, by: Some(b) } => format!("{}_by:{b}", stat.name()),
            Strategy::Lookup { key, .. } => format!("lookup:{key}"),
            Strategy::Knn { .. } => "knn".into(),
        }
    }

    /// Other columns whose values this strategy reads in the main table.
    pub fn reads(&self) -> Vec<&str> {
        match self {
            Strategy::Stat { by: Some(b), .. } => vec![b.as_str()],
            Strategy::Knn { features, .. } => features.iter().map(String::as_str).collect(),
            Strategy::Lookup { key, .. } => vec![key.as_str()],
            _ => vec![],
        }
    }

    /// The strategy a name (`median`) or a one-key map (`{ constant: 0 }`) describes.
    fn from_json(v: Json) -> Result<Strategy, String> {
        let (name, arg) = match v {
            Json::String(s) => (s, Json::Null),
            Json::Object(m) if m.len() == 1 => m.into_iter().next().expect("one entry"),
            v => {
                return Err(format!(
                    "a strategy is a name (`median`) or a map with one key (`{{ constant: 0 }}`), not `{v}`"
                ));
            }
        };
        if !STRATEGIES.contains(&name.as_str()) {
            return Err(format!(
                "unknown strategy `{name}`; {}",
                crate::diag::suggest(&name, "strategy", STRATEGIES.iter().copied())
            ));
        }
        if name == "constant" {
            return match arg {
                Json::Null => Err("`constant` needs a value, e.g. `{ constant: 0 }`".into()),
                v => Ok(Strategy::Constant(v)),
            };
        }
        if let (Some(stat), Json::Null) = (Stat::of(&name), &arg) {
            return Ok(Strategy::Stat { stat, by: None });
        }
        let Json::Object(m) = &arg else {
            return Err(format!("`{name}` takes a map, e.g. {}", example(&name)));
        };
        let allowed = settings(&name);
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "`{name}` has no setting `{k}`; {}",
                crate::diag::suggest(k, "setting", allowed.iter().copied())
            ));
        }
        let typed = |e: serde_json::Error| format!("`{name}`: {e}");
        match name.as_str() {
            "lookup" => {
                let a: LookupArgs = serde_json::from_value(arg).map_err(typed)?;
                Ok(Strategy::Lookup {
                    key: a
                        .key
                        .ok_or("`lookup` needs a `key`, e.g. `{ lookup: { key: item_id } }`")?
                        .0,
                    column: a.column.map(|c| c.0),
                    side_key: a.side_key.map(|c| c.0),
                })
            }
            "knn" => {
                let a: KnnArgs = serde_json::from_value(arg).map_err(typed)?;
                let features = match a.features {
                    Some(f) if !f.is_empty() => f,
                    _ => {
                        return Err(
                            "`knn` needs `features`: a non-empty list of numeric columns".into(),
                        );
                    }
                };
                let int = |k: &str, v: Option<Json>, default: u64| -> Result<u64, String> {
                    match v {
                        None => Ok(default),
                        Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                            format!("`knn.{k}` must be a whole number of at least 1, not `{v}`")
                        }),
                    }
                };
                let k = int("k", a.k, 5)?;
                if k > 1000 {
                    return Err(format!("`knn.k` is {k}; use at most 1000 neighbours"));
                }
                Ok(Strategy::Knn {
                    features,
                    k: k as usize,
                    max_train: int("max_train", a.max_train, 100_000)? as usize,
                })
            }
            stat => {
                let a: StatArgs = serde_json::from_value(arg).map_err(typed)?;
                Ok(Strategy::Stat {
                    stat: Stat::of(stat).expect("a statistic"),
                    by: a.by.map(|c| c.0),
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strategy, D::Error> {
        Strategy::from_json(Json::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// One strategy, or a list of them tried in order.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Json>),
    One(Json),
}

/// The columns to fill, in the order they are filled, with their strategies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan(pub Vec<(String, Vec<Strategy>)>);

impl<'de> Deserialize<'de> for Plan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Plan, D::Error> {
        let m = match Json::deserialize(d)? {
            Json::Object(m) => m,
            _ => {
                return Err(D::Error::custom(
                    "`columns` maps each column to fill to its list of strategies",
                ));
            }
        };
        plan_of(m).map_err(D::Error::custom)
    }
}

/// Parse `columns` and order it so features and groups are filled before their users.
pub fn plan(columns: &Json) -> Result<Plan, String> {
    serde_json::from_value(columns.clone()).map_err(|e| e.to_string())
}

fn plan_of(m: serde_json::Map<String, Json>) -> Result<Plan, String> {
    if m.is_empty() {
        return Err("`columns` is empty, so there is nothing to fill".into());
    }
    let mut parsed: BTreeMap<String, Vec<Strategy>> = BTreeMap::new();
    for (col, list) in m {
        let items = match serde_json::from_value::<OneOrMany>(list) {
            Ok(OneOrMany::Many(a)) if a.is_empty() => {
                return Err(format!("`{col}` has no strategies"));
            }
            Ok(OneOrMany::Many(a)) => a,
            Ok(OneOrMany::One(v)) => vec![v],
            Err(e) => return Err(format!("`{col}`: {e}")),
        };
        let s = items
            .into_iter()
            .map(Strategy::from_json)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("`{col}`: {e}"))?;
        for st in &s {
            if st.reads().contains(&col.as_str()) && !matches!(st, Strategy::Lookup { .. }) {
                return Err(format!(
                    "`{col}`: `{}` reads the column it fills",
                    st.label()
                ));
            }
        }
        parsed.insert(col, s);
    }
    let names: Vec<&String> = parsed.keys().collect();
    let deps: Vec<Vec<usize>> = parsed
        .iter()
        .map(|(c, s)| {
            let d: BTreeSet<usize> = s
                .iter()
                .flat_map(Strategy::reads)
                .filter(|r| *r != c)
                .filter_map(|r| names.iter().position(|n| n.as_str() == r))
                .collect();
            d.into_iter().collect()
        })
        .collect();
    match crate::util::topo::order(&deps) {
        Ok(order) => Ok(Plan(
            order
                .into_iter()
                .map(|i| (names[i].clone(), parsed[names[i]].clone()))
                .collect(),
        )),
        Err(left) => Err(format!(
            "the columns {} are each filled from another, in a circle",
            left.iter()
                .map(|&i| format!("`{}`", names[i]))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
