//! What the data steps share: typed params from the request, the `read:` param, loading
//! an input table with a message that says what to do, finding columns with a
//! suggestion, and the facets every table step records (rows, column summaries).

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

use super::ParamIssue;
use crate::steps::plugin::{ParamDecl, ParamType};
use crate::steps::protocol::{MetricPoint, Response};
use crate::table::{Loaded, ReadOptions, TableError};

/// A param declaration with a default (every data-step param has one, so the step key
/// always sees the full, canonical set).
pub fn decl(ty: ParamType, default: Json) -> ParamDecl {
    ParamDecl {
        ty,
        default: Some(default),
    }
}

/// Deserialise the whole param map into a kind's typed params.
pub fn params<T: DeserializeOwned>(p: &BTreeMap<String, Json>) -> Result<T, String> {
    let obj: serde_json::Map<String, Json> =
        p.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    serde_json::from_value(Json::Object(obj)).map_err(|e| format!("invalid params: {e}"))
}

/// Deserialise one param for `validate`, naming it in the issue.
pub fn param<T: DeserializeOwned>(
    p: &BTreeMap<String, Json>,
    name: &str,
    help: &str,
) -> Result<T, ParamIssue> {
    let v = p.get(name).cloned().unwrap_or(Json::Null);
    serde_json::from_value(v).map_err(|e| issue(name, e.to_string(), help))
}

pub fn issue(param: &str, message: impl Into<String>, help: impl Into<String>) -> ParamIssue {
    ParamIssue {
        param: param.to_owned(),
        message: message.into(),
        help: help.into(),
    }
}

/// Check the `read:` param.
pub fn validate_read(p: &BTreeMap<String, Json>, name: &str) -> Result<(), ParamIssue> {
    ReadOptions::from_param(p.get(name)).map(|_| ()).map_err(|m| {
        issue(
            name,
            m,
            "`read:` takes `format` (auto, csv, parquet, recbole), `delimiter`, `quote`, `header`, `max_record_bytes` and `infer`",
        )
    })
}

/// A table error as the step reports it: the message, then a `help:` line.
pub fn table_error(e: TableError) -> String {
    match e.help() {
        Some(h) => format!("{e}\n  = help: {h}"),
        None => e.to_string(),
    }
}

/// Load the input in `slot`, naming the file by its input name in messages.
pub fn load(path: &Path, opts: &ReadOptions) -> Result<Loaded, String> {
    crate::table::read_table(path, opts).map_err(table_error)
}

/// The index of `name` among the batch's columns, or an error naming the file's columns.
pub fn column(batch: &RecordBatch, name: &str, what: &str) -> Result<usize, String> {
    let schema = batch.schema();
    if let Some(i) = schema.fields().iter().position(|f| f.name() == name) {
        return Ok(i);
    }
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut help = crate::diag::suggest(name, "column", names.iter().copied());
    if names.len() == 1 && names[0].contains([';', '\t', '|', ',']) {
        help = format!(
            "the file has one column `{}`: it may use another delimiter; set `read: {{ delimiter: \";\" }}`",
            names[0]
        );
    }
    Err(format!(
        "{what} names the column `{name}`, which the table does not have\n  = help: {help}"
    ))
}

/// The column `name` of a batch.
pub fn col<'a>(batch: &'a RecordBatch, name: &str, what: &str) -> Result<&'a ArrayRef, String> {
    column(batch, name, what).map(|i| batch.column(i))
}

/// Builds a step's response: headline metrics and facets.
#[derive(Debug, Default)]
pub struct Report {
    pub resp: Response,
}

impl Report {
    pub fn metric(&mut self, key: &str, value: f64) {
        self.resp.metrics.push(MetricPoint {
            key: key.to_owned(),
            value,
            step: None,
        });
    }

    pub fn facet(&mut self, name: &str, v: Json) {
        self.resp.facets.insert(name.to_owned(), v);
    }

    /// `rows`, `columns_before`, `columns_after` and the `rows_in`/`rows_out` metrics.
    pub fn tables(&mut self, rows_in: u64, before: &RecordBatch, after: &RecordBatch, extra: Json) {
        let mut rows = json!({ "in": rows_in, "out": after.num_rows() });
        if let (Json::Object(r), Json::Object(e)) = (&mut rows, extra) {
            r.extend(e);
        }
        self.facet("rows", rows);
        self.facet("columns_before", crate::table::stats::summary(before));
        self.facet("columns_after", crate::table::stats::summary(after));
        self.metric("rows_in", rows_in as f64);
        self.metric("rows_out", after.num_rows() as f64);
        self.metric(
            "input_arrow_bytes",
            crate::table::arrow_bytes(before) as f64,
        );
    }
}

/// Counts as a JSON object, leaving out zeros.
pub fn counts<K: AsRef<str>>(m: impl IntoIterator<Item = (K, u64)>) -> Json {
    Json::Object(
        m.into_iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| (k.as_ref().to_owned(), json!(v)))
            .collect(),
    )
}
