//! `impute` (table, optional side table → table): fills null cells, column by column,
//! with the strategies listed for each column, tried in order; a strategy fills only
//! cells still null and only where it has a value to give:
//!
//! | strategy | fills a null with |
//! |---|---|
//! | `{ constant: V }` | `V` |
//! | `mean`, `median`, `mode` | the statistic of the column's observed values |
//! | `{ median: { by: COL } }` (also `mean`, `mode`) | the statistic of the observed values of the row's `COL` group; nothing for a group without any |
//! | `{ lookup: { key: K, column: C, side_key: SK } }` | column `C` (default: the same name) of the `side` row whose `SK` (default `K`) equals the row's `K`; nothing when there is no such row or its value is null |
//! | `{ knn: { features: [F…], k: 5, max_train: 100000 } }` | the mean (numbers) or majority (anything else) of the `k` nearest rows with an observed value, by Euclidean distance over the standardised features (linfa-nn k-d tree); nothing for a row with a null feature |
//!
//! Statistics and neighbours come from observed values only: an imputed value never
//! feeds another. Columns are imputed so that a column used as a feature or a group of
//! another is filled first (otherwise alphabetically). Observed cells are never changed,
//! and a cell no strategy can fill stays null and is counted in `unfilled`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::common::{self, Report};
use super::{Builtin, Output, Param, StepError, param};
use crate::steps::plugin::ParamType;
use crate::steps::protocol::{Request, Response};
use crate::table::rows::{NO_GROUP, group_ids};

mod strategy;

pub use strategy::{Plan, Stat, Strategy, plan};

/// The `impute` kind.
pub struct Impute;

impl Builtin for Impute {
    const NAME: &'static str = "impute";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "Fill null cells per column with constant, mean, median, mode, grouped statistics, values looked up in a side table, or kNN over feature columns; never invents a value where no strategy applies";
    const INPUTS: &'static [(&'static str, bool)] = &[("table", false), ("side", true)];
    const OUTPUTS: &'static [Output] = &[Output::table("table", "impute.parquet")];
    const PARAMS: &'static [Param] = &[
        param("read", ParamType::Map, common::READ_HELP),
        param("side_read", ParamType::Map, common::READ_HELP),
        param(
            "columns",
            ParamType::Map,
            "e.g. `columns: { price: [{ lookup: { key: item_id } }, median] }`; the strategies are `constant`, `mean`, `median`, `mode` (each optionally `{ by: COL }`), `lookup` and `knn`",
        ),
    ];
    type Params = Params;

    fn run(p: Params, req: &Request) -> Result<Response, StepError> {
        let table = common::load(req.input("table")?, &p.read.opts)?.batch;
        let side = match req.inputs.get("side") {
            Some(path) => Some(common::load(path, &p.side_read.opts)?.batch),
            None => None,
        };
        let (out, report) = impute(table, side.as_ref(), &p.columns)?;
        crate::table::write_parquet(req.output("table")?, &out)?;
        Ok(report.resp)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    pub read: common::Read,
    pub side_read: common::Read,
    /// Required: it has no default, so it is not serialised.
    #[serde(skip_serializing)]
    pub columns: Plan,
}

/// Where an imputed cell's value comes from: (donor array, row of the donor).
type Fill = (usize, usize);

struct Column<'a> {
    name: &'a str,
    /// The column as it came in (observed values).
    observed: ArrayRef,
    /// Donor arrays; donor 0 is `observed`.
    donors: Vec<ArrayRef>,
    /// Per row: the fill chosen so far.
    fills: Vec<Option<Fill>>,
}

impl Column<'_> {
    fn open(&self, row: usize) -> bool {
        self.observed.is_null(row) && self.fills[row].is_none()
    }

    fn donor(&mut self, a: ArrayRef) -> Result<usize, StepError> {
        let a = if a.data_type() == self.observed.data_type() {
            a
        } else {
            arrow::compute::cast(&a, self.observed.data_type()).map_err(|e| {
                format!(
                    "cannot convert a value for `{}` to its type ({}): {e}",
                    self.name,
                    crate::table::stats::type_name(self.observed.data_type())
                )
            })?
        };
        self.donors.push(a);
        Ok(self.donors.len() - 1)
    }

    fn finish(self) -> Result<ArrayRef, StepError> {
        let idx: Vec<(usize, usize)> = self
            .fills
            .iter()
            .enumerate()
            .map(|(row, f)| f.unwrap_or((0, row)))
            .collect();
        let refs: Vec<&dyn Array> = self.donors.iter().map(|d| d.as_ref()).collect();
        Ok(arrow::compute::interleave(&refs, &idx).map_err(|e| e.to_string())?)
    }
}

/// Fill the table's nulls by the plan; returns the table and the report.
pub fn impute(
    table: RecordBatch,
    side: Option<&RecordBatch>,
    plan: &Plan,
) -> Result<(RecordBatch, Report), StepError> {
    let n = table.num_rows();
    let before = table.clone();
    let mut fields: Vec<Field> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols: Vec<ArrayRef> = table.columns().to_vec();
    let mut imputed: BTreeMap<String, Json> = BTreeMap::new();
    let mut unfilled: BTreeMap<String, u64> = BTreeMap::new();
    for (name, strategies) in &plan.0 {
        let idx = match fields.iter().position(|f| f.name() == name) {
            Some(i) => i,
            None => {
                // A column only a lookup can give is created from the side table.
                let side_col = strategies.iter().find_map(|s| match (s, side) {
                    (Strategy::Lookup { column, .. }, Some(t)) => {
                        common::col(t, column.as_deref().unwrap_or(name), "`lookup`").ok()
                    }
                    _ => None,
                });
                let Some(sc) = side_col else {
                    return Err(match common::column(&table, name, "`columns`") {
                        Err(e) => e,
                        Ok(_) => StepError::new(format!("no column `{name}`")),
                    });
                };
                fields.push(Field::new(name, sc.data_type().clone(), true));
                cols.push(new_null_array(sc.data_type(), n));
                cols.len() - 1
            }
        };
        let current = RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), cols.clone())
            .map_err(|e| e.to_string())?;
        let mut c = Column {
            name,
            observed: cols[idx].clone(),
            donors: vec![cols[idx].clone()],
            fills: vec![None; n],
        };
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for s in strategies {
            if (0..n).all(|r| !c.open(r)) {
                break;
            }
            let filled = apply(&mut c, s, &current, side)?;
            *counts.entry(s.label()).or_default() += filled;
        }
        let left = (0..n).filter(|&r| c.open(r)).count() as u64;
        fields[idx] = Field::new(name, c.observed.data_type().clone(), true);
        cols[idx] = c.finish()?;
        imputed.insert(name.clone(), json!(counts));
        unfilled.insert(name.clone(), left);
    }
    let out =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())?;
    let total: u64 = imputed
        .values()
        .flat_map(|m| m.as_object().into_iter().flat_map(|o| o.values()))
        .filter_map(Json::as_u64)
        .sum();
    let left: u64 = unfilled.values().sum();
    let mut report = Report::default();
    report.tables(n as u64, &before, &out, json!({}));
    report.facet("imputed", Json::Object(imputed.into_iter().collect()));
    report.facet(
        "unfilled",
        Json::Object(unfilled.into_iter().map(|(k, v)| (k, json!(v))).collect()),
    );
    report.metric("cells_imputed", total as f64);
    report.metric("cells_unfilled", left as f64);
    Ok((out, report))
}

fn as_f64(c: &ArrayRef, what: &str) -> Result<Float64Array, StepError> {
    let f = match c.data_type() {
        DataType::Timestamp(..) => arrow::compute::cast(
            &arrow::compute::cast(c, &DataType::Int64).map_err(|e| e.to_string())?,
            &DataType::Float64,
        ),
        t if t.is_numeric() => arrow::compute::cast(c, &DataType::Float64),
        t => {
            return Err(format!(
                "{what} needs numbers, but it is {}",
                crate::table::stats::type_name(t)
            )
            .into());
        }
    }
    .map_err(|e| e.to_string())?;
    Ok(f.as_any()
        .downcast_ref::<Float64Array>()
        .ok_or("cast")?
        .clone())
}

/// Apply one strategy to the open cells of `c`; returns how many it filled.
fn apply(
    c: &mut Column,
    s: &Strategy,
    table: &RecordBatch,
    side: Option<&RecordBatch>,
) -> Result<u64, StepError> {
    let n = c.fills.len();
    let mut filled = 0;
    match s {
        Strategy::Constant(v) => {
            let text = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            let a: ArrayRef = Arc::new(StringArray::from(vec![text.clone()]));
            let a = arrow::compute::cast(&a, c.observed.data_type()).map_err(|e| e.to_string())?;
            if a.is_null(0) {
                return Err(format!(
                    "`{}`: the constant `{text}` is not a {}",
                    c.name,
                    crate::table::stats::type_name(c.observed.data_type())
                )
                .into());
            }
            let d = c.donor(a)?;
            for r in 0..n {
                if c.open(r) {
                    c.fills[r] = Some((d, 0));
                    filled += 1;
                }
            }
        }
        Strategy::Stat { stat, by } => {
            let groups = match by {
                Some(b) => {
                    let bc = common::col(table, b, "`by`")?.clone();
                    let g = group_ids(&[&bc], n, 0..n)?;
                    // A null group value is no group.
                    let mut gid = g.group;
                    for (r, x) in gid.iter_mut().enumerate() {
                        if bc.is_null(r) {
                            *x = NO_GROUP;
                        }
                    }
                    Some((gid, g.first.len()))
                }
                None => None,
            };
            let group_of = |r: usize| -> u32 {
                match &groups {
                    Some((g, _)) => g[r],
                    None => 0,
                }
            };
            let ngroups = groups.as_ref().map(|g| g.1).unwrap_or(1);
            let observed = c.observed.clone();
            let what = format!("`{}` of `{}`", stat.name(), c.name);
            // Per group: Some(donor row) into the donor array built below.
            let (donor, per_group): (ArrayRef, Vec<Option<usize>>) = match stat {
                Stat::Mean | Stat::Median => {
                    let v = as_f64(&observed, &what)?;
                    let mut vals: Vec<Vec<f64>> = vec![Vec::new(); ngroups];
                    for r in 0..n {
                        let g = group_of(r);
                        if g != NO_GROUP && v.is_valid(r) {
                            vals[g as usize].push(v.value(r));
                        }
                    }
                    let stat_of = |xs: &mut Vec<f64>| -> Option<f64> {
                        if xs.is_empty() {
                            return None;
                        }
                        Some(if *stat == Stat::Mean {
                            xs.iter().sum::<f64>() / xs.len() as f64
                        } else {
                            xs.sort_by(f64::total_cmp);
                            let m = xs.len() / 2;
                            if xs.len() % 2 == 1 {
                                xs[m]
                            } else {
                                (xs[m - 1] + xs[m]) / 2.0
                            }
                        })
                    };
                    let results: Vec<Option<f64>> = vals.iter_mut().map(stat_of).collect();
                    let integral = matches!(observed.data_type(), t if t.is_integer() || matches!(t, DataType::Timestamp(..)));
                    let arr: ArrayRef = Arc::new(Float64Array::from(
                        results
                            .iter()
                            .map(|x| x.map(|x| if integral { x.round() } else { x }))
                            .collect::<Vec<_>>(),
                    ));
                    let arr = if matches!(observed.data_type(), DataType::Timestamp(..)) {
                        arrow::compute::cast(&arr, &DataType::Int64).map_err(|e| e.to_string())?
                    } else {
                        arr
                    };
                    let per = results
                        .iter()
                        .enumerate()
                        .map(|(i, x)| x.map(|_| i))
                        .collect();
                    (arr, per)
                }
                Stat::Mode => {
                    // Count (group, value) pairs over observed rows; the most frequent
                    // value wins, ties going to the value seen first.
                    let gcol: ArrayRef = Arc::new(arrow::array::UInt32Array::from(
                        (0..n).map(group_of).collect::<Vec<_>>(),
                    ));
                    let rows = (0..n).filter(|&r| observed.is_valid(r) && group_of(r) != NO_GROUP);
                    let pairs = group_ids(&[&gcol, &observed], n, rows)?;
                    let mut count = vec![0u64; pairs.len()];
                    for r in 0..n {
                        if pairs.group[r] != NO_GROUP {
                            count[pairs.group[r] as usize] += 1;
                        }
                    }
                    let mut best: Vec<Option<(u64, usize)>> = vec![None; ngroups];
                    for (p, &first) in pairs.first.iter().enumerate() {
                        let g = group_of(first as usize) as usize;
                        if best[g].is_none_or(|(c0, _)| count[p] > c0) {
                            best[g] = Some((count[p], first as usize));
                        }
                    }
                    (
                        observed.clone(),
                        best.iter().map(|b| b.map(|(_, r)| r)).collect(),
                    )
                }
            };
            let d = c.donor(donor)?;
            for r in 0..n {
                let g = group_of(r);
                if c.open(r)
                    && g != NO_GROUP
                    && let Some(dr) = per_group[g as usize]
                {
                    c.fills[r] = Some((d, dr));
                    filled += 1;
                }
            }
        }
        Strategy::Lookup {
            key,
            column,
            side_key,
        } => {
            let side = side.ok_or_else(|| {
                format!(
                    "`{}`: `lookup` needs the `side` input\n  = help: add `side: inputs.items` (the table to look values up in) under the step's `inputs:`",
                    c.name
                )
            })?;
            let sk_name = side_key.as_deref().unwrap_or(key);
            let sv_name = column.as_deref().unwrap_or(c.name);
            let text = |a: &ArrayRef| -> Result<StringArray, String> {
                let t = arrow::compute::cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
                Ok(t.as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or("cast")?
                    .clone())
            };
            let main_key = text(common::col(table, key, "`lookup.key`")?)?;
            let side_keys = text(common::col(
                side,
                sk_name,
                "`lookup.side_key` (in the side table)",
            )?)?;
            let side_vals =
                common::col(side, sv_name, "`lookup.column` (in the side table)")?.clone();
            let mut index: HashMap<&str, usize> = HashMap::with_capacity(side_keys.len());
            for r in 0..side_keys.len() {
                if side_keys.is_valid(r) {
                    index.entry(side_keys.value(r)).or_insert(r);
                }
            }
            let d = c.donor(side_vals)?;
            for r in 0..n {
                if c.open(r)
                    && main_key.is_valid(r)
                    && let Some(&sr) = index.get(main_key.value(r))
                    && c.donors[d].is_valid(sr)
                {
                    c.fills[r] = Some((d, sr));
                    filled += 1;
                }
            }
        }
        Strategy::Knn {
            features,
            k,
            max_train,
        } => {
            filled = knn(c, table, features, *k, *max_train)?;
        }
    }
    Ok(filled)
}

fn knn(
    c: &mut Column,
    table: &RecordBatch,
    features: &[String],
    k: usize,
    max_train: usize,
) -> Result<u64, StepError> {
    use linfa_nn::NearestNeighbour;
    use linfa_nn::distance::L2Dist;
    let n = c.fills.len();
    let feats: Vec<Float64Array> = features
        .iter()
        .map(|f| {
            as_f64(
                common::col(table, f, "`knn.features`")?,
                &format!("the kNN feature `{f}`"),
            )
        })
        .collect::<Result<_, _>>()?;
    let usable = |r: usize| {
        feats
            .iter()
            .all(|f| f.is_valid(r) && f.value(r).is_finite())
    };
    let observed = c.observed.clone();
    let numeric_target = observed.data_type().is_numeric();
    let target = if numeric_target {
        Some(as_f64(&observed, "the kNN target")?)
    } else {
        None
    };
    let mut train: Vec<usize> = (0..n)
        .filter(|&r| observed.is_valid(r) && usable(r))
        .collect();
    let queries: Vec<usize> = (0..n).filter(|&r| c.open(r) && usable(r)).collect();
    if train.is_empty() || queries.is_empty() {
        return Ok(0);
    }
    if train.len() > max_train {
        // An even, deterministic sample: every `step`-th training row.
        let step = train.len().div_ceil(max_train);
        train = train.into_iter().step_by(step).collect();
    }
    let d = feats.len();
    let (mut mean, mut sd) = (vec![0.0; d], vec![0.0; d]);
    for (j, f) in feats.iter().enumerate() {
        let m = train.iter().map(|&r| f.value(r)).sum::<f64>() / train.len() as f64;
        let v = train.iter().map(|&r| (f.value(r) - m).powi(2)).sum::<f64>() / train.len() as f64;
        mean[j] = m;
        sd[j] = if v > 0.0 { v.sqrt() } else { 1.0 };
    }
    let point = |r: usize| -> Vec<f64> {
        (0..d)
            .map(|j| (feats[j].value(r) - mean[j]) / sd[j])
            .collect()
    };
    let mut pts = ndarray::Array2::<f64>::zeros((train.len(), d));
    for (i, &r) in train.iter().enumerate() {
        for (j, x) in point(r).into_iter().enumerate() {
            pts[[i, j]] = x;
        }
    }
    let index = linfa_nn::CommonNearestNeighbour::KdTree
        .from_batch(&pts, L2Dist)
        .map_err(|e| format!("cannot build the kNN index for `{}`: {e}", c.name))?;
    // Predictions: a number (numeric target) or the row holding the winning label.
    let mut preds: Vec<f64> = Vec::new();
    let mut cache: HashMap<Vec<u64>, (usize, usize)> = HashMap::new();
    let label_groups = if numeric_target {
        None
    } else {
        Some(group_ids(&[&observed], n, train.iter().copied())?)
    };
    let pred_array_slot = if numeric_target {
        Some(c.donors.len())
    } else {
        None
    };
    let self_slot = 0;
    let mut fills = Vec::with_capacity(queries.len());
    for &q in &queries {
        let p = point(q);
        let bits: Vec<u64> = p.iter().map(|x| x.to_bits()).collect();
        if let Some(&f) = cache.get(&bits) {
            fills.push((q, f));
            continue;
        }
        let nn = index
            .k_nearest(ndarray::ArrayView1::from(&p), k)
            .map_err(|e| format!("kNN query for `{}` failed: {e}", c.name))?;
        let fill = match (&target, &label_groups) {
            (Some(t), _) => {
                let v = nn.iter().map(|(_, i)| t.value(train[*i])).sum::<f64>() / nn.len() as f64;
                preds.push(v);
                (pred_array_slot.expect("numeric"), preds.len() - 1)
            }
            (None, Some(g)) => {
                // Majority vote; a tie goes to the label of the nearer neighbour.
                let mut votes: Vec<(u32, usize, usize)> = Vec::new(); // (label, count, first rank)
                for (rank, (_, i)) in nn.iter().enumerate() {
                    let label = g.group[train[*i]];
                    match votes.iter_mut().find(|v| v.0 == label) {
                        Some(v) => v.1 += 1,
                        None => votes.push((label, 1, rank)),
                    }
                }
                let best = votes
                    .iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
                    .expect("k >= 1");
                (self_slot, g.first[best.0 as usize] as usize)
            }
            _ => unreachable!("one of the two"),
        };
        cache.insert(bits, fill);
        fills.push((q, fill));
    }
    if numeric_target {
        let integral = observed.data_type().is_integer();
        let arr: ArrayRef = Arc::new(Float64Array::from(
            preds
                .iter()
                .map(|x| if integral { x.round() } else { *x })
                .collect::<Vec<_>>(),
        ));
        let slot = c.donor(arr)?;
        debug_assert_eq!(Some(slot), pred_array_slot);
    }
    let filled = fills.len() as u64;
    for (q, f) in fills {
        c.fills[q] = Some(f);
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of these columns, every field nullable (as the table layer reads them).
    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter_with_nullable(cols.into_iter().map(|(n, a)| (n, a, true)))
            .unwrap()
    }

    fn f(v: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(v.to_vec()))
    }

    fn s(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn floats(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        let a = b
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        a.iter().collect()
    }

    fn texts(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
        let a = b
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        a.iter().map(|x| x.map(str::to_owned)).collect()
    }

    fn run(t: RecordBatch, side: Option<&RecordBatch>, cols: Json) -> (RecordBatch, Report) {
        impute(t, side, &plan(&cols).unwrap()).unwrap()
    }

    #[test]
    fn constant_mean_median_mode() {
        let t = batch(vec![("x", f(&[Some(1.0), None, Some(2.0), Some(9.0)]))]);
        assert_eq!(
            floats(&run(t.clone(), None, json!({"x": "mean"})).0, "x")[1],
            Some(4.0)
        );
        assert_eq!(
            floats(&run(t.clone(), None, json!({"x": "median"})).0, "x")[1],
            Some(2.0)
        );
        assert_eq!(
            floats(&run(t.clone(), None, json!({"x": {"constant": 7}})).0, "x")[1],
            Some(7.0)
        );
        let t = batch(vec![("c", s(&[Some("a"), Some("b"), Some("b"), None]))]);
        let (out, r) = run(t, None, json!({"c": ["mode"]}));
        assert_eq!(texts(&out, "c")[3].as_deref(), Some("b"));
        assert_eq!(r.resp.facets["imputed"], json!({"c": {"mode": 1}}));
        assert_eq!(r.resp.facets["unfilled"], json!({"c": 0}));
    }

    #[test]
    fn grouped_statistics_fill_only_groups_with_observed_values() {
        let t = batch(vec![
            ("g", s(&[Some("a"), Some("a"), Some("b"), Some("c"), None])),
            ("x", f(&[Some(1.0), None, Some(5.0), None, None])),
        ]);
        let (out, r) = run(t, None, json!({"x": {"median": {"by": "g"}}}));
        assert_eq!(
            floats(&out, "x"),
            vec![Some(1.0), Some(1.0), Some(5.0), None, None]
        );
        assert_eq!(r.resp.facets["imputed"], json!({"x": {"median_by:g": 1}}));
        assert_eq!(r.resp.facets["unfilled"], json!({"x": 2}));
    }

    #[test]
    fn lookup_from_a_side_table_then_fallback() {
        let t = batch(vec![
            ("item", s(&[Some("i1"), Some("i2"), Some("i3"), None])),
            ("price", f(&[None, None, None, Some(4.0)])),
        ]);
        let side = batch(vec![
            ("item", s(&[Some("i1"), Some("i2")])),
            ("price", f(&[Some(10.0), None])),
        ]);
        let (out, r) = run(
            t,
            Some(&side),
            json!({"price": [{"lookup": {"key": "item"}}, "median"]}),
        );
        // The median is of the observed values of the table itself (4), not of the side table.
        assert_eq!(
            floats(&out, "price"),
            vec![Some(10.0), Some(4.0), Some(4.0), Some(4.0)]
        );
        assert_eq!(
            r.resp.facets["imputed"],
            json!({"price": {"lookup:item": 1, "median": 2}})
        );
    }

    #[test]
    fn knn_votes_labels_and_averages_numbers() {
        let t = batch(vec![
            (
                "price",
                f(&[
                    Some(1.0),
                    Some(1.1),
                    Some(0.9),
                    Some(50.0),
                    Some(51.0),
                    Some(1.05),
                    Some(50.5),
                    None,
                ]),
            ),
            (
                "cat",
                s(&[
                    Some("cheap"),
                    Some("cheap"),
                    Some("cheap"),
                    Some("dear"),
                    Some("dear"),
                    None,
                    None,
                    None,
                ]),
            ),
        ]);
        let (out, r) = run(
            t,
            None,
            json!({"cat": {"knn": {"features": ["price"], "k": 2}}}),
        );
        assert_eq!(
            texts(&out, "cat")[5..].to_vec(),
            vec![Some("cheap".into()), Some("dear".into()), None]
        );
        assert_eq!(
            r.resp.facets["unfilled"],
            json!({"cat": 1}),
            "a row without features stays null"
        );
        let t = batch(vec![
            ("a", f(&[Some(0.0), Some(1.0), Some(10.0), Some(0.5)])),
            ("y", f(&[Some(2.0), Some(4.0), Some(100.0), None])),
        ]);
        let (out, _) = run(t, None, json!({"y": {"knn": {"features": ["a"], "k": 2}}}));
        assert_eq!(floats(&out, "y")[3], Some(3.0));
    }

    #[test]
    fn plan_orders_dependencies_and_refuses_bad_strategies() {
        let p = plan(&json!({"category": {"knn": {"features": ["price"]}}, "price": "median"}))
            .unwrap();
        assert_eq!(
            p.0.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
            vec!["price", "category"]
        );
        let e = plan(&json!({"x": "mediun"})).unwrap_err();
        assert!(
            e.contains("unknown strategy `mediun`; did you mean `median`?"),
            "{e}"
        );
        assert!(
            plan(&json!({"a": {"knn": {"features": ["b"]}}, "b": {"mean": {"by": "a"}}}))
                .unwrap_err()
                .contains("circle")
        );
        assert!(
            plan(&json!({"x": {"knn": {"features": ["y"], "k": 0}}}))
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            plan(&json!({"x": {"lookup": {"kee": "y"}}}))
                .unwrap_err()
                .contains("did you mean `key`?")
        );
    }
}
