//! `dedupe` (table → table): removes duplicate rows in up to two passes, and counts
//! each kind separately:
//!
//! - `exact` (on by default): rows equal in every column to a row kept before them;
//! - `key`: rows equal on the `key` columns, or, with a `window`, rows whose `key`
//!   equals that of a kept row whose time is at most `window.seconds` away (events
//!   re-sent by a client within a second). The window is anchored at the kept row, so
//!   a chain of events a second apart keeps every other one rather than collapsing.
//!
//! `keep: first` keeps the earliest row of a set (in file order; in time order within a
//! window), `keep: last` the latest. Null equals null. A row whose time is null is never
//! a window duplicate. The output keeps the input's row order. Dedupe is idempotent:
//! running it on its own output removes nothing.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::common::{self, Report};
use super::{Builtin, Output, Param, ParamIssue, StepError, issue, param};
use crate::steps::plugin::ParamType;
use crate::steps::protocol::{Request, Response};
use crate::table::rows::{NO_GROUP, group_ids};

/// The `dedupe` kind.
pub struct Dedupe;

impl Builtin for Dedupe {
    const NAME: &'static str = "dedupe";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "Remove exact duplicate rows and duplicates on a key (keep first or last), optionally only within a time window (events re-sent within N seconds)";
    const INPUTS: &'static [(&'static str, bool)] = &[("table", false)];
    const OUTPUTS: &'static [Output] = &[Output::table("table", "dedupe.parquet")];
    const PARAMS: &'static [Param] = &[
        param("read", ParamType::Map, common::READ_HELP),
        param("exact", ParamType::Bool, "`exact: true` or `exact: false`"),
        param("key", ParamType::List, "a list of column names"),
        param("keep", ParamType::String, "`keep` is `first` or `last`"),
        param(
            "window",
            ParamType::Map,
            "`window: { column: ts, seconds: 1 }` (with a `key`)",
        ),
    ];
    type Params = Params;

    fn check(p: &Params) -> Result<(), ParamIssue> {
        match (&p.window.column, p.window.seconds) {
            (None, None) => {}
            (Some(_), Some(s)) if s.is_finite() && s >= 0.0 => {
                if p.key.is_empty() {
                    return Err(issue(
                        "window",
                        "a `window` needs a `key`: the columns that make two events the same",
                        "add `key: [user_id, item_id, event]`",
                    ));
                }
            }
            (Some(_), Some(s)) => {
                return Err(issue(
                    "window",
                    format!("`seconds` is {s}"),
                    "give a number of seconds, 0 or more",
                ));
            }
            _ => {
                return Err(issue(
                    "window",
                    "`window` needs both `column` and `seconds`",
                    "`window: { column: ts, seconds: 1 }`",
                ));
            }
        }
        if !p.exact && p.key.is_empty() {
            return Err(issue(
                "exact",
                "with `exact: false` and no `key`, the step would remove nothing",
                "give a `key`, or leave `exact` on",
            ));
        }
        Ok(())
    }

    fn run(p: Params, req: &Request) -> Result<Response, StepError> {
        let loaded = common::load(req.input("table")?, &p.read.opts)?;
        let (table, report) = dedupe(loaded.batch, &p)?;
        crate::table::write_parquet(req.output("table")?, &table)?;
        Ok(report.resp)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    #[default]
    First,
    Last,
}

impl Serialize for Keep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Keep::First => "first",
            Keep::Last => "last",
        })
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keep, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "first" => Ok(Keep::First),
            "last" => Ok(Keep::Last),
            _ => Err(serde::de::Error::custom(format!(
                "`keep` is `{s}`; {}",
                crate::diag::suggest(&s, "choice", ["first", "last"])
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    pub read: common::Read,
    pub exact: bool,
    pub key: Vec<String>,
    pub keep: Keep,
    pub window: Window,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            read: common::Read::default(),
            exact: true,
            key: Vec::new(),
            keep: Keep::First,
            window: Window::default(),
        }
    }
}

/// Remove duplicates; returns the kept rows and the report.
pub fn dedupe(batch: RecordBatch, p: &Params) -> Result<(RecordBatch, Report), StepError> {
    let n = batch.num_rows();
    let mut keep = vec![true; n];
    let mut removed: BTreeMap<&str, u64> = BTreeMap::new();
    let order = |keep: &[bool], k: Keep| -> Box<dyn Iterator<Item = usize>> {
        let kept: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
        match k {
            Keep::First => Box::new(kept.into_iter()),
            Keep::Last => Box::new(kept.into_iter().rev()),
        }
    };
    if p.exact {
        let cols: Vec<&ArrayRef> = batch.columns().iter().collect();
        let g = group_ids(&cols, n, order(&keep, p.keep))?;
        let mut dropped = 0;
        for (row, k) in keep.iter_mut().enumerate() {
            if g.group[row] != NO_GROUP && g.first[g.group[row] as usize] as usize != row {
                *k = false;
                dropped += 1;
            }
        }
        removed.insert("exact", dropped);
    }
    if !p.key.is_empty() {
        let key_cols: Vec<&ArrayRef> = p
            .key
            .iter()
            .map(|c| common::col(&batch, c, "`key`"))
            .collect::<Result<_, _>>()?;
        match (&p.window.column, p.window.seconds) {
            (Some(tc), Some(secs)) => {
                let times = time_values(common::col(&batch, tc, "`window`")?, tc, secs)?;
                let dropped = window_pass(&key_cols, &times.0, times.1, n, &mut keep, p.keep)?;
                removed.insert("window", dropped);
            }
            _ => {
                let g = group_ids(&key_cols, n, order(&keep, p.keep))?;
                let mut dropped = 0;
                for (row, k) in keep.iter_mut().enumerate() {
                    if *k && g.first[g.group[row] as usize] as usize != row {
                        *k = false;
                        dropped += 1;
                    }
                }
                removed.insert("key", dropped);
            }
        }
    }
    let mask = BooleanArray::from(keep);
    let table = arrow::compute::filter_record_batch(&batch, &mask).map_err(|e| e.to_string())?;
    let total: u64 = removed.values().sum();
    let mut report = Report::default();
    report.tables(n as u64, &batch, &table, json!({ "removed": total }));
    report.facet(
        "duplicates",
        Json::Object(
            removed
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect(),
        ),
    );
    report.metric("duplicates_removed", total as f64);
    Ok((table, report))
}

/// The time column as numbers, with the window in the same unit (milliseconds for
/// timestamps, the column's own unit for numbers).
fn time_values(c: &ArrayRef, name: &str, secs: f64) -> Result<(Float64Array, f64), StepError> {
    match c.data_type() {
        DataType::Timestamp(..) => {
            let i = arrow::compute::cast(c, &DataType::Int64).map_err(|e| e.to_string())?;
            let i = i.as_any().downcast_ref::<Int64Array>().ok_or("cast")?;
            Ok((
                i.iter().map(|v| v.map(|v| v as f64)).collect(),
                secs * 1000.0,
            ))
        }
        t if t.is_numeric() => {
            let f = arrow::compute::cast(c, &DataType::Float64).map_err(|e| e.to_string())?;
            let f = f
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or("cast")?
                .clone();
            Ok((f, secs))
        }
        t => Err(StepError::new(format!(
            "the window column `{name}` is {}, not a time",
            crate::table::stats::type_name(t)
        ))
        .help(format!(
            "make it a timestamp first, e.g. with `clean` and `types: {{ {name}: timestamp }}`"
        ))),
    }
}

/// Drop rows whose key equals that of a kept row at most `w` away in time.
// Rows index several parallel arrays (keep, times, groups) at once.
#[allow(clippy::needless_range_loop)]
fn window_pass(
    key_cols: &[&ArrayRef],
    times: &Float64Array,
    w: f64,
    n: usize,
    keep: &mut [bool],
    k: Keep,
) -> Result<u64, String> {
    let g = group_ids(key_cols, n, (0..n).filter(|&i| keep[i]))?;
    // Counting sort of the kept rows by group, then each group by (time, row).
    let mut start = vec![0u32; g.len() + 1];
    for row in 0..n {
        if keep[row] && times.is_valid(row) {
            start[g.group[row] as usize + 1] += 1;
        }
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut fill = start.clone();
    let mut sorted = vec![0u32; start[g.len()] as usize];
    for row in 0..n {
        if keep[row] && times.is_valid(row) {
            let gi = g.group[row] as usize;
            sorted[fill[gi] as usize] = row as u32;
            fill[gi] += 1;
        }
    }
    let mut dropped = 0;
    for gi in 0..g.len() {
        let slice = &mut sorted[start[gi] as usize..start[gi + 1] as usize];
        if slice.len() < 2 {
            continue;
        }
        slice.sort_by(|&a, &b| {
            times
                .value(a as usize)
                .total_cmp(&times.value(b as usize))
                .then(a.cmp(&b))
        });
        let mut visit = |row: u32, anchor: &mut f64| {
            let t = times.value(row as usize);
            if (t - *anchor).abs() <= w {
                keep[row as usize] = false;
                dropped += 1;
            } else {
                *anchor = t;
            }
        };
        match k {
            Keep::First => {
                let mut anchor = times.value(slice[0] as usize);
                for &row in &slice[1..] {
                    visit(row, &mut anchor);
                }
            }
            Keep::Last => {
                let last = slice.len() - 1;
                let mut anchor = times.value(slice[last] as usize);
                for &row in slice[..last].iter().rev() {
                    visit(row, &mut anchor);
                }
            }
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    pub fn table(users: &[&str], events: &[&str], ts: &[i64]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("event", DataType::Utf8, true),
            Field::new("ts", crate::table::timestamp_type(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(users.to_vec())),
                Arc::new(StringArray::from(events.to_vec())),
                Arc::new(TimestampMillisecondArray::from(ts.to_vec()).with_timezone("UTC")),
            ],
        )
        .unwrap()
    }

    fn p(v: Json) -> Params {
        crate::steps::builtin::params_of::<Dedupe>(v).unwrap()
    }

    fn users(b: &RecordBatch) -> Vec<String> {
        let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        a.iter().map(|v| v.unwrap_or("-").to_owned()).collect()
    }

    fn ts(b: &RecordBatch) -> Vec<i64> {
        let a = b
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        a.values().to_vec()
    }

    #[test]
    fn exact_duplicates_keep_first_or_last() {
        let t = table(&["a", "b", "a", "a"], &["v", "v", "v", "v"], &[1, 1, 1, 2]);
        let (out, r) = dedupe(t.clone(), &p(json!({}))).unwrap();
        assert_eq!(users(&out), vec!["a", "b", "a"]);
        assert_eq!(ts(&out), vec![1, 1, 2]);
        assert_eq!(r.resp.facets["duplicates"], json!({"exact": 1}));
        let (out, _) = dedupe(t, &p(json!({"keep": "last"}))).unwrap();
        assert_eq!(users(&out), vec!["b", "a", "a"]);
    }

    #[test]
    fn key_duplicates() {
        let t = table(&["a", "b", "a"], &["v", "v", "c"], &[1, 2, 3]);
        let (out, r) = dedupe(t.clone(), &p(json!({"key": ["user_id"]}))).unwrap();
        assert_eq!(ts(&out), vec![1, 2]);
        assert_eq!(r.resp.facets["duplicates"], json!({"exact": 0, "key": 1}));
        let (out, _) = dedupe(t, &p(json!({"key": ["user_id"], "keep": "last"}))).unwrap();
        assert_eq!(ts(&out), vec![2, 3]);
    }

    #[test]
    fn window_anchors_at_the_kept_row() {
        // a/v at 0, 1000, 1500, 2500 ms with a 1 s window: 1000 is within 1 s of the
        // kept 0 (dropped); 1500 is not (kept, the new anchor); 2500 is within 1 s of it.
        let t = table(
            &["a", "a", "a", "a", "b"],
            &["v", "v", "v", "v", "v"],
            &[1500, 0, 1000, 2500, 0],
        );
        let w = json!({"key": ["user_id", "event"], "window": {"column": "ts", "seconds": 1}});
        let (out, r) = dedupe(t.clone(), &p(w.clone())).unwrap();
        assert_eq!(ts(&out), vec![1500, 0, 0]);
        assert_eq!(
            r.resp.facets["duplicates"],
            json!({"exact": 0, "window": 2})
        );
        let mut last = w;
        last["keep"] = json!("last");
        let (out, _) = dedupe(t, &p(last)).unwrap();
        assert_eq!(ts(&out), vec![1000, 2500, 0]);
    }

    #[test]
    fn window_needs_a_time_column() {
        let t = table(&["a"], &["v"], &[1]);
        let e = dedupe(
            t,
            &p(json!({"key": ["user_id"], "window": {"column": "event", "seconds": 1}})),
        )
        .unwrap_err();
        assert!(e.message.contains("`event` is text, not a time"), "{e}");
    }

    #[test]
    fn validate_refuses_nonsense() {
        let bad = |v: Json| crate::steps::builtin::params_of::<Dedupe>(v).unwrap_err();
        assert!(
            bad(json!({"keep": "frist"}))
                .message
                .contains("did you mean `first`?")
        );
        assert!(
            bad(json!({"window": {"column": "ts", "seconds": 1}}))
                .message
                .contains("needs a `key`")
        );
        assert!(
            bad(json!({"key": ["a"], "window": {"column": "ts"}}))
                .message
                .contains("both")
        );
        assert!(
            bad(json!({"exact": false}))
                .message
                .contains("remove nothing")
        );
    }
}
