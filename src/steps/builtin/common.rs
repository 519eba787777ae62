//! What the data steps share: the `read:` param, loading an input table with a
//! message that says what to do, finding columns with a suggestion, and the facets
//! every table step records (rows, column summaries).

use std::path::Path;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::StepError;
use crate::steps::protocol::{MetricPoint, Response};
use crate::table::{Loaded, ReadOptions};

/// The `read:` param of a data step: how to read an input table. It keeps the map
/// as written (its serialised form, and so the step key, is what the user wrote) and
/// the options it parses into.
#[derive(Debug, Clone)]
pub struct Read {
    raw: Json,
    pub opts: ReadOptions,
}

impl Default for Read {
    fn default() -> Read {
        Read {
            raw: json!({}),
            opts: ReadOptions::default(),
        }
    }
}

impl Serialize for Read {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Read {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Read, D::Error> {
        let raw = Json::deserialize(d)?;
        let opts = ReadOptions::from_param(Some(&raw)).map_err(serde::de::Error::custom)?;
        Ok(Read { raw, opts })
    }
}

/// The help of a `read:` param.
pub const READ_HELP: &str = "`read:` takes `format` (auto, csv, parquet, recbole), `delimiter`, `quote`, `header`, `max_record_bytes` and `infer`";

/// Load the input in `slot`, naming the file by its input name in messages.
pub fn load(path: &Path, opts: &ReadOptions) -> Result<Loaded, StepError> {
    Ok(crate::table::read_table(path, opts)?)
}

/// The index of `name` among the batch's columns, or an error naming the file's columns.
pub fn column(batch: &RecordBatch, name: &str, what: &str) -> Result<usize, StepError> {
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
    Err(StepError::new(format!(
        "{what} names the column `{name}`, which the table does not have"
    ))
    .help(help))
}

/// The column `name` of a batch.
pub fn col<'a>(batch: &'a RecordBatch, name: &str, what: &str) -> Result<&'a ArrayRef, StepError> {
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
