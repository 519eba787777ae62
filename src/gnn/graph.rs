//! The graph artifact: what `graph-build` writes and `train-gnnr`/`evaluate` read.
//!
//! # Format (`pedigree-graph`, version 1)
//!
//! One JSON object, written with sorted keys and no whitespace, so equal inputs
//! and params give equal bytes (and an unchanged graph stops propagation
//! downstream):
//!
//! - `format`: `"pedigree-graph"`, `version`: `1`. A reader refuses other values.
//! - `users`, `items`, `categories`: the external ids, in node order. Node
//!   numbering is users `0..U`, then items `U..U+I`, then categories; ids are
//!   sorted (as strings), so the index does not depend on row order.
//! - `interactions`: columns of equal length, one entry per (user, item) pair
//!   (repeated events are aggregated): `user` and `item` (indexes into `users` and
//!   `items`), `weight` (sum of the event-type weights of the pair's rows), `count`
//!   (rows), `last_ts` (latest timestamp, seconds since the epoch, 0 without a time
//!   column) and `split` (0 train, 1 valid, 2 test). Sorted by user, then item.
//! - `item_categories`: `[item, category]` pairs (indexes), sorted.
//! - `config`: the build params (event weights, split, unseen policy).
//! - `stats`: node and edge counts by type, density and degree distributions
//!   (also recorded as the step's facets).
//!
//! # Split
//!
//! Per user, over the aggregated pairs: `by: time` orders them by `last_ts` (ties
//! by item id) and holds out the latest; `by: random` shuffles them with the seed.
//! The first `round(n·(1−valid−test))` pairs train, the next `round(n·valid)`
//! validate, the rest test (rounding half to even, as Python's `round`, so the
//! counts match the reference protocol exactly).
//!
//! # Items unseen in training
//!
//! A held-out pair whose item has no training interaction has an item node with
//! no trained edges. `unseen: keep` leaves such pairs in valid/test (the
//! RecBole/LightGCN protocol: they count as misses unless ranked by chance);
//! `unseen: drop` removes them from the held-out splits. Either way the number is
//! in `stats.unseen_heldout` so a report can say how many there were.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::input::{Columns, parse_time};
use super::rng::Rng;

pub const FORMAT: &str = "pedigree-graph";
pub const VERSION: u32 = 1;

/// The random stream of the per-user shuffle (see [`Rng::derive`]).
const SPLIT_STREAM: u64 = 1;

pub const TRAIN: u8 = 0;
pub const VALID: u8 = 1;
pub const TEST: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("cannot read the graph `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "`{path}` is not a pedigree graph of a version this build reads (format `{format}`, version {version}; expected `{FORMAT}` version {VERSION})"
    )]
    Version {
        path: String,
        format: String,
        version: u32,
    },
    #[error("cannot write the graph `{path}`: {reason}")]
    Write { path: String, reason: String },
    #[error("the interactions table has no `{column}` column (it has: {have})")]
    MissingColumn { column: String, have: String },
    #[error("row {row}: {message}")]
    BadRow { row: usize, message: String },
    #[error("{0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitBy {
    Time,
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unseen {
    Keep,
    Drop,
}

/// The params of a build, stored in the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildConfig {
    /// Event type → edge weight. Empty: every row weighs 1 (and no event column is needed).
    pub weights: BTreeMap<String, f64>,
    pub valid: f64,
    pub test: f64,
    pub by: SplitBy,
    pub seed: u64,
    pub unseen: Unseen,
    /// Column names in the interactions table.
    pub user_col: String,
    pub item_col: String,
    pub event_col: String,
    /// Empty: the first of `ts`, `timestamp`, `time` that exists (none: no times).
    pub time_col: String,
    /// Column names in the items table.
    pub category_col: String,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            weights: BTreeMap::new(),
            valid: 0.1,
            test: 0.1,
            by: SplitBy::Random,
            seed: 2020,
            unseen: Unseen::Keep,
            user_col: "user_id".into(),
            item_col: "item_id".into(),
            event_col: "event".into(),
            time_col: String::new(),
            category_col: "category".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interactions {
    pub user: Vec<u32>,
    pub item: Vec<u32>,
    pub weight: Vec<f32>,
    pub count: Vec<u32>,
    pub last_ts: Vec<f64>,
    pub split: Vec<u8>,
}

impl Interactions {
    pub fn len(&self) -> usize {
        self.user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub format: String,
    pub version: u32,
    pub users: Vec<String>,
    pub items: Vec<String>,
    pub categories: Vec<String>,
    pub interactions: Interactions,
    pub item_categories: Vec<[u32; 2]>,
    pub config: BuildConfig,
    pub stats: BTreeMap<String, Json>,
}

impl Graph {
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Users, items and categories.
    pub fn n_nodes(&self) -> usize {
        self.users.len() + self.items.len() + self.categories.len()
    }

    /// Items each user interacted with in `split`, sorted, per user.
    pub fn items_by_user(&self, split: u8) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); self.n_users()];
        let it = &self.interactions;
        for k in 0..it.len() {
            if it.split[k] == split {
                out[it.user[k] as usize].push(it.item[k]);
            }
        }
        for v in &mut out {
            v.sort_unstable();
        }
        out
    }

    pub fn read(path: &Path) -> Result<Graph, GraphError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| GraphError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        #[derive(Deserialize)]
        struct Head {
            format: String,
            version: u32,
        }
        let head: Head = serde_json::from_slice(&bytes).map_err(|e| GraphError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if head.format != FORMAT || head.version != VERSION {
            return Err(GraphError::Version {
                path: shown,
                format: head.format,
                version: head.version,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| GraphError::Read {
            path: shown,
            reason: e.to_string(),
        })
    }

    pub fn write(&self, path: &Path) -> Result<(), GraphError> {
        // serde_json::Value sorts object keys (no `preserve_order`), which makes the
        // bytes canonical.
        let value = serde_json::to_value(self).map_err(|e| GraphError::Write {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, value.to_string()).map_err(|e| GraphError::Write {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Builds the graph from an interactions table and an optional item catalogue.
    pub fn build(
        inter: &Columns,
        items: Option<&Columns>,
        config: &BuildConfig,
    ) -> Result<(Graph, BuildReport), GraphError> {
        if !(0.0..1.0).contains(&config.valid)
            || !(0.0..1.0).contains(&config.test)
            || config.valid + config.test >= 1.0
        {
            return Err(GraphError::Config(format!(
                "split fractions valid {} and test {} must be in [0, 1) and leave some training data",
                config.valid, config.test
            )));
        }
        let column = |name: &str| {
            inter.get(name).ok_or_else(|| GraphError::MissingColumn {
                column: name.to_owned(),
                have: inter.names.join(", "),
            })
        };
        let users_col = column(&config.user_col)?;
        let items_col = column(&config.item_col)?;
        let events_col = if config.weights.is_empty() {
            None
        } else {
            Some(column(&config.event_col)?)
        };
        let time_name = if config.time_col.is_empty() {
            inter.find(&["ts", "timestamp", "time"]).map(str::to_owned)
        } else {
            Some(config.time_col.clone())
        };
        let times_col = match &time_name {
            Some(n) => Some(column(n)?),
            None if config.by == SplitBy::Time => {
                return Err(GraphError::Config(
                    "`split.by: time` needs a time column (`ts`, `timestamp` or `time`); \
                     name it with `columns.time` or use `split.by: random`"
                        .into(),
                ));
            }
            None => None,
        };

        let mut report = BuildReport {
            rows_in: inter.rows,
            ..BuildReport::default()
        };
        // (user id, item id) → (weight, count, last ts)
        let mut pairs: BTreeMap<(&str, &str), (f64, u32, f64)> = BTreeMap::new();
        for row in 0..inter.rows {
            let (Some(u), Some(i)) = (&users_col[row], &items_col[row]) else {
                report.rows_missing_id += 1;
                continue;
            };
            let w = match events_col {
                None => 1.0,
                Some(ev) => match ev[row].as_deref().and_then(|e| config.weights.get(e)) {
                    Some(w) => *w,
                    None => {
                        *report
                            .rows_unknown_event
                            .entry(ev[row].clone().unwrap_or_default())
                            .or_default() += 1;
                        continue;
                    }
                },
            };
            let ts = match times_col {
                None => 0.0,
                Some(t) => match t[row].as_deref().map(|s| (s, parse_time(s))) {
                    Some((_, Some(v))) => v,
                    Some((s, None)) => {
                        return Err(GraphError::BadRow {
                            row: row + 1,
                            message: format!(
                                "time `{s}` is neither a number nor an ISO-8601 date/time"
                            ),
                        });
                    }
                    None => {
                        report.rows_missing_time += 1;
                        continue;
                    }
                },
            };
            let e = pairs.entry((u, i)).or_insert((0.0, 0, f64::NEG_INFINITY));
            e.0 += w;
            e.1 += 1;
            e.2 = e.2.max(ts);
        }
        // Pairs whose weights sum to zero or less carry no preference.
        pairs.retain(|_, v| v.0 > 0.0);

        let mut user_ids: Vec<&str> = pairs.keys().map(|(u, _)| *u).collect();
        user_ids.dedup();
        let mut item_set: std::collections::BTreeSet<&str> =
            pairs.keys().map(|(_, i)| *i).collect();
        let mut item_cat: Vec<(&str, &str)> = Vec::new();
        if let Some(items) = items {
            let ic = items
                .get(&config.item_col)
                .ok_or_else(|| GraphError::MissingColumn {
                    column: config.item_col.clone(),
                    have: items.names.join(", "),
                })?;
            let cc = items.get(&config.category_col);
            for row in 0..items.rows {
                let Some(i) = ic[row].as_deref() else {
                    continue;
                };
                item_set.insert(i);
                if let Some(Some(c)) = cc.map(|c| &c[row]) {
                    item_cat.push((i, c.as_str()));
                }
            }
        }
        let item_ids: Vec<&str> = item_set.into_iter().collect();
        let mut cat_ids: Vec<&str> = item_cat.iter().map(|(_, c)| *c).collect();
        cat_ids.sort_unstable();
        cat_ids.dedup();
        let uidx: HashMap<&str, u32> = index(&user_ids);
        let iidx: HashMap<&str, u32> = index(&item_ids);
        let cidx: HashMap<&str, u32> = index(&cat_ids);
        let mut item_categories: Vec<[u32; 2]> =
            item_cat.iter().map(|(i, c)| [iidx[i], cidx[c]]).collect();
        item_categories.sort_unstable();
        item_categories.dedup();

        // Pairs per user, in BTreeMap order: users sorted, items sorted within.
        let mut it = Interactions::default();
        for ((u, i), (w, c, ts)) in &pairs {
            it.user.push(uidx[u]);
            it.item.push(iidx[i]);
            it.weight.push(*w as f32);
            it.count.push(*c);
            it.last_ts.push(if ts.is_finite() { *ts } else { 0.0 });
            it.split.push(TRAIN);
        }
        split(&mut it, config);

        // Unseen items: held-out pairs whose item has no training pair.
        let mut trained = vec![false; item_ids.len()];
        for k in 0..it.len() {
            if it.split[k] == TRAIN {
                trained[it.item[k] as usize] = true;
            }
        }
        let unseen: Vec<usize> = (0..it.len())
            .filter(|&k| it.split[k] != TRAIN && !trained[it.item[k] as usize])
            .collect();
        report.unseen_heldout = unseen.len();
        if config.unseen == Unseen::Drop && !unseen.is_empty() {
            let mut keep = vec![true; it.len()];
            for k in unseen {
                keep[k] = false;
            }
            it = filter(it, &keep);
        }

        let mut graph = Graph {
            format: FORMAT.into(),
            version: VERSION,
            users: user_ids.iter().map(|s| (*s).to_owned()).collect(),
            items: item_ids.iter().map(|s| (*s).to_owned()).collect(),
            categories: cat_ids.iter().map(|s| (*s).to_owned()).collect(),
            interactions: it,
            item_categories,
            config: config.clone(),
            stats: BTreeMap::new(),
        };
        graph.stats = stats(&graph, &report);
        Ok((graph, report))
    }
}

/// What a build did to its rows (facets of the `graph-build` step).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BuildReport {
    pub rows_in: usize,
    pub rows_missing_id: usize,
    pub rows_missing_time: usize,
    /// Event value (empty for a missing one) → rows dropped for it.
    pub rows_unknown_event: BTreeMap<String, usize>,
    pub unseen_heldout: usize,
}

fn index<'a>(ids: &[&'a str]) -> HashMap<&'a str, u32> {
    ids.iter()
        .enumerate()
        .map(|(k, s)| (*s, k as u32))
        .collect()
}

fn filter(it: Interactions, keep: &[bool]) -> Interactions {
    let pick = |v: &Vec<u32>| -> Vec<u32> {
        v.iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(x, _)| *x)
            .collect()
    };
    Interactions {
        user: pick(&it.user),
        item: pick(&it.item),
        count: pick(&it.count),
        weight: it
            .weight
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(x, _)| *x)
            .collect(),
        last_ts: it
            .last_ts
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(x, _)| *x)
            .collect(),
        split: it
            .split
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(x, _)| *x)
            .collect(),
    }
}

/// Python's `round` (half to even), so split sizes match the reference protocol.
pub fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    };
    r.max(0.0) as usize
}

/// Assigns `split` per user (pairs are grouped by user, in order).
fn split(it: &mut Interactions, config: &BuildConfig) {
    let mut rng = Rng::derive(config.seed, SPLIT_STREAM);
    let mut start = 0;
    while start < it.len() {
        let u = it.user[start];
        let mut end = start;
        while end < it.len() && it.user[end] == u {
            end += 1;
        }
        let mut order: Vec<usize> = (start..end).collect();
        match config.by {
            SplitBy::Random => rng.shuffle(&mut order),
            SplitBy::Time => order.sort_by(|&a, &b| {
                it.last_ts[a]
                    .total_cmp(&it.last_ts[b])
                    .then(it.item[a].cmp(&it.item[b]))
            }),
        }
        let n = order.len();
        let n_train = round_half_even(n as f64 * (1.0 - config.valid - config.test)).min(n);
        let n_valid = round_half_even(n as f64 * config.valid).min(n - n_train);
        for (rank, &k) in order.iter().enumerate() {
            it.split[k] = if rank < n_train {
                TRAIN
            } else if rank < n_train + n_valid {
                VALID
            } else {
                TEST
            };
        }
        start = end;
    }
}

fn quantiles(mut v: Vec<f64>) -> Json {
    if v.is_empty() {
        return Json::Null;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    serde_json::json!({
        "min": q(0.0), "p25": q(0.25), "median": q(0.5), "p75": q(0.75), "p95": q(0.95),
        "max": q(1.0), "mean": (mean * 1000.0).round() / 1000.0,
    })
}

fn stats(g: &Graph, r: &BuildReport) -> BTreeMap<String, Json> {
    let it = &g.interactions;
    let mut by_split = [0usize; 3];
    let mut udeg = vec![0f64; g.n_users()];
    let mut ideg = vec![0f64; g.n_items()];
    for k in 0..it.len() {
        by_split[it.split[k] as usize] += 1;
        if it.split[k] == TRAIN {
            udeg[it.user[k] as usize] += 1.0;
            ideg[it.item[k] as usize] += 1.0;
        }
    }
    let cells = (g.n_users() * g.n_items()).max(1) as f64;
    let mut s = BTreeMap::new();
    s.insert(
        "nodes".into(),
        serde_json::json!({"users": g.n_users(), "items": g.n_items(), "categories": g.categories.len()}),
    );
    s.insert(
        "edges".into(),
        serde_json::json!({
            "user_item": it.len(), "train": by_split[0], "valid": by_split[1], "test": by_split[2],
            "item_category": g.item_categories.len(),
        }),
    );
    s.insert(
        "density".into(),
        serde_json::json!(((by_split[0] as f64 / cells) * 1e6).round() / 1e6),
    );
    s.insert(
        "degree".into(),
        serde_json::json!({"user_train": quantiles(udeg.clone()), "item_train": quantiles(ideg.clone())}),
    );
    s.insert(
        "users_without_train".into(),
        serde_json::json!(udeg.iter().filter(|d| **d == 0.0).count()),
    );
    s.insert(
        "items_without_train".into(),
        serde_json::json!(ideg.iter().filter(|d| **d == 0.0).count()),
    );
    s.insert(
        "rows".into(),
        serde_json::json!({
            "in": r.rows_in, "missing_id": r.rows_missing_id, "missing_time": r.rows_missing_time,
            "unknown_event": r.rows_unknown_event,
        }),
    );
    s.insert(
        "unseen_heldout".into(),
        serde_json::json!({"pairs": r.unseen_heldout, "policy": g.config.unseen}),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(header: &[&str], rows: &[&[&str]]) -> Columns {
        let mut c = Columns {
            names: header.iter().map(|s| (*s).to_owned()).collect(),
            rows: rows.len(),
            ..Columns::default()
        };
        for (k, h) in header.iter().enumerate() {
            c.data.insert(
                (*h).to_owned(),
                rows.iter()
                    .map(|r| (!r[k].is_empty()).then(|| r[k].to_owned()))
                    .collect(),
            );
        }
        c
    }

    fn weights() -> BTreeMap<String, f64> {
        [("view", 1.0), ("click", 2.0), ("purchase", 5.0)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    #[test]
    fn round_half_even_matches_python() {
        let cases = [(0.5, 0), (1.5, 2), (2.5, 2), (16.0, 16), (2.4, 2), (2.6, 3)];
        for (x, want) in cases {
            assert_eq!(round_half_even(x), want, "{x}");
        }
        assert_eq!(round_half_even(15.0 * 0.1), 2); // 1.5000000000000002
    }

    #[test]
    fn events_aggregate_into_weighted_edges_and_categories_become_nodes() {
        let inter = table(
            &["user_id", "item_id", "event", "ts"],
            &[
                &["u2", "i1", "view", "1"],
                &["u2", "i1", "click", "2"],
                &["u2", "i1", "purchase", "3"],
                &["u1", "i2", "view", "1"],
                &["u1", "i2", "wishlist", "1"],
                &["", "i2", "view", "1"],
            ],
        );
        let items = table(
            &["item_id", "category"],
            &[&["i1", "books"], &["i3", "toys"]],
        );
        let config = BuildConfig {
            weights: weights(),
            valid: 0.0,
            test: 0.0,
            ..BuildConfig::default()
        };
        let (g, r) = Graph::build(&inter, Some(&items), &config).unwrap();
        assert_eq!(g.users, ["u1", "u2"]);
        assert_eq!(g.items, ["i1", "i2", "i3"]); // i3: catalogue only
        assert_eq!(g.categories, ["books", "toys"]);
        assert_eq!(g.item_categories, [[0, 0], [2, 1]]);
        assert_eq!(g.interactions.user, [0, 1]);
        assert_eq!(g.interactions.item, [1, 0]);
        assert_eq!(g.interactions.weight, [1.0, 8.0]);
        assert_eq!(g.interactions.count, [1, 3]);
        assert_eq!(g.interactions.last_ts, [1.0, 3.0]);
        assert_eq!(r.rows_missing_id, 1);
        assert_eq!(r.rows_unknown_event["wishlist"], 1);
        assert_eq!(g.stats["nodes"]["categories"], 2);
    }

    fn many(users: usize, items: usize) -> Columns {
        let mut rows: Vec<Vec<String>> = Vec::new();
        for u in 0..users {
            for i in 0..items {
                if (u + i) % 3 != 0 {
                    rows.push(vec![
                        format!("u{u}"),
                        format!("i{i:02}"),
                        format!("{}", i * 10),
                    ]);
                }
            }
        }
        let refs: Vec<Vec<&str>> = rows
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        let refs: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        table(&["user_id", "item_id", "timestamp"], &refs)
    }

    #[test]
    fn time_split_holds_out_each_users_latest_pairs() {
        let config = BuildConfig {
            by: SplitBy::Time,
            ..BuildConfig::default()
        };
        let (g, _) = Graph::build(&many(4, 30), None, &config).unwrap();
        let it = &g.interactions;
        for u in 0..4u32 {
            let ks: Vec<usize> = (0..it.len()).filter(|&k| it.user[k] == u).collect();
            let n = ks.len();
            let count = |s| ks.iter().filter(|&&k| it.split[k] == s).count();
            assert_eq!(count(TRAIN), round_half_even(n as f64 * 0.8));
            assert_eq!(count(VALID), round_half_even(n as f64 * 0.1));
            let max_train = ks
                .iter()
                .filter(|&&k| it.split[k] == TRAIN)
                .map(|&k| it.last_ts[k])
                .fold(f64::MIN, f64::max);
            let min_valid = ks
                .iter()
                .filter(|&&k| it.split[k] != TRAIN)
                .map(|&k| it.last_ts[k])
                .fold(f64::MAX, f64::min);
            assert!(max_train < min_valid, "user {u}");
        }
    }

    #[test]
    fn random_split_is_seeded_and_bytes_are_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let build = |seed| {
            let config = BuildConfig {
                seed,
                ..BuildConfig::default()
            };
            Graph::build(&many(5, 30), None, &config).unwrap().0
        };
        let (a, b, c) = (build(1), build(1), build(2));
        assert_eq!(a, b);
        assert_ne!(a.interactions.split, c.interactions.split);
        let (pa, pb) = (dir.path().join("a.json"), dir.path().join("b.json"));
        a.write(&pa).unwrap();
        b.write(&pb).unwrap();
        assert_eq!(std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
        assert_eq!(Graph::read(&pa).unwrap(), a);
    }

    #[test]
    fn unseen_items_are_kept_or_dropped_explicitly() {
        // i9 appears once, for u0 only, at the latest time: it can only be held out.
        let inter = table(
            &["user_id", "item_id", "ts"],
            &[
                &["u0", "i1", "1"],
                &["u0", "i2", "2"],
                &["u0", "i3", "3"],
                &["u0", "i9", "9"],
                &["u1", "i1", "1"],
            ],
        );
        for (unseen, held) in [(Unseen::Keep, 1), (Unseen::Drop, 0)] {
            let config = BuildConfig {
                by: SplitBy::Time,
                valid: 0.0,
                test: 0.25,
                unseen,
                ..BuildConfig::default()
            };
            let (g, r) = Graph::build(&inter, None, &config).unwrap();
            assert_eq!(r.unseen_heldout, 1);
            let tests = g.interactions.split.iter().filter(|s| **s == TEST).count();
            assert_eq!(tests, held, "{unseen:?}");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let inter = table(&["user", "item_id"], &[&["u", "i"]]);
        let e = Graph::build(&inter, None, &BuildConfig::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the interactions table has no `user_id` column (it has: user, item_id)"
        );
        let inter = table(&["user_id", "item_id", "ts"], &[&["u", "i", "soon"]]);
        let e = Graph::build(&inter, None, &BuildConfig::default()).unwrap_err();
        assert!(e.to_string().starts_with("row 1: time `soon`"), "{e}");
    }
}
