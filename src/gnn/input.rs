//! The tables the model steps consume (interactions, item catalogues) as string
//! columns, read by the table layer ([`crate::table::read_table`], the one reader of
//! CSV, RecBole atomic files and Parquet) with type inference off.
//!
//! Every column comes back as optional strings: ids are tokens, not numbers, and
//! the graph builder parses the few numeric columns itself with errors that name
//! the row ([`parse_time`] through [`crate::table::time::parse_timestamp`], the one
//! timestamp parser). A RecBole file is read as tab-separated text, its header's
//! `name:type` suffixes dropped, so a `float` column keeps the digits it was
//! written with.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;

use crate::table::{Format, ReadOptions, TableError};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("`{path}` line {line}: {reason}")]
    Malformed {
        path: String,
        line: u64,
        reason: String,
    },
    #[error("cannot read column `{column}` of `{path}` as text: {message}")]
    Column {
        path: String,
        column: String,
        message: String,
    },
}

impl InputError {
    /// What to do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            InputError::Table(e) => e.help(),
            InputError::Malformed { .. } => Some(
                "fix the row, or run the table through `clean` first (it keeps such rows as rejects)"
                    .into(),
            ),
            InputError::Column { .. } => None,
        }
    }
}

/// A table as named string columns of equal length (`None` = null or empty cell).
#[derive(Debug, Default)]
pub struct Columns {
    pub names: Vec<String>,
    pub data: BTreeMap<String, Vec<Option<String>>>,
    pub rows: usize,
}

impl Columns {
    pub fn get(&self, name: &str) -> Option<&[Option<String>]> {
        self.data.get(name).map(Vec::as_slice)
    }

    /// The first of `candidates` that the table has.
    pub fn find<'a>(&self, candidates: &[&'a str]) -> Option<&'a str> {
        candidates
            .iter()
            .copied()
            .find(|c| self.data.contains_key(*c))
    }
}

/// The RecBole atomic-file extensions: tab-separated, `name:type` headers.
const ATOMIC: &[&str] = &["inter", "item", "user", "tsv"];

/// Reads a whole table as string columns (cells trimmed; empty cells are `None`).
/// The format comes from the bytes (Parquet's magic, else delimited text with the
/// delimiter sniffed from the header) and, for RecBole atomic files, the extension.
/// A row the reader cannot take (a wrong field count, bad UTF-8) is an error
/// naming its line: a graph is not built from part of its input.
pub fn read_columns(path: &Path) -> Result<Columns, InputError> {
    let atomic = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ATOMIC.contains(&e.to_ascii_lowercase().as_str()));
    let opts = ReadOptions {
        format: if atomic { Format::Csv } else { Format::Auto },
        delimiter: atomic.then(|| "\t".to_owned()),
        infer: false,
        ..ReadOptions::default()
    };
    let loaded = crate::table::read_table(path, &opts)?;
    let shown = path.display().to_string();
    if let Some(r) = loaded.rejects.first() {
        return Err(InputError::Malformed {
            path: shown,
            line: r.line,
            reason: r.reason.clone(),
        });
    }
    let batch = loaded.batch;
    let mut out = Columns::default();
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = match field.name().split_once(':') {
            Some((n, _)) => n.to_owned(),
            None => field.name().clone(),
        };
        let name = name.trim().to_owned();
        let col = as_text(col).map_err(|e| InputError::Column {
            path: shown.clone(),
            column: name.clone(),
            message: e.to_string(),
        })?;
        let strings = col.as_string::<i32>();
        let cells = (0..strings.len())
            .map(|i| {
                if strings.is_null(i) {
                    None
                } else {
                    let s = strings.value(i).trim();
                    (!s.is_empty()).then(|| s.to_owned())
                }
            })
            .collect();
        out.names.push(name.clone());
        out.data.insert(name, cells);
    }
    out.rows = batch.num_rows();
    Ok(out)
}

/// A column as text; timestamps become seconds since the epoch, so a time column
/// reads the same whether it came from CSV text or a typed Parquet column.
fn as_text(col: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    use arrow::datatypes::TimeUnit;
    if let DataType::Timestamp(unit, _) = col.data_type() {
        let per_second = match unit {
            TimeUnit::Second => 1.0,
            TimeUnit::Millisecond => 1e3,
            TimeUnit::Microsecond => 1e6,
            TimeUnit::Nanosecond => 1e9,
        };
        let raw = arrow::compute::cast(col, &DataType::Int64)?;
        let raw = raw.as_primitive::<arrow::datatypes::Int64Type>();
        let text: arrow::array::StringArray = raw
            .iter()
            .map(|v| v.map(|v| (v as f64 / per_second).to_string()))
            .collect();
        return Ok(Arc::new(text));
    }
    arrow::compute::cast(col, &DataType::Utf8)
}

/// Seconds since the Unix epoch from a timestamp as
/// [`crate::table::time::parse_timestamp`] reads it: ISO 8601 (offsets included)
/// or Unix time (seconds, or milliseconds when too large to be seconds).
pub fn parse_time(s: &str) -> Option<f64> {
    crate::table::time::parse_timestamp(s).map(|(ms, _)| ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_epoch_seconds() {
        assert_eq!(parse_time("0"), Some(0.0));
        assert_eq!(parse_time("881250949"), Some(881_250_949.0));
        assert_eq!(parse_time("881250949.5"), Some(881_250_949.5));
        assert_eq!(parse_time("1970-01-02"), Some(86_400.0));
        assert_eq!(parse_time("2024-03-01T02:34:01Z"), Some(1_709_260_441.0));
        assert_eq!(parse_time("2024-03-01 02:34:01"), Some(1_709_260_441.0));
        assert_eq!(parse_time("yesterday"), None);
        // The same instant with an offset, and as Unix milliseconds (as `clean` reads
        // them): refused, and read as seconds in the year 55,000, before.
        assert_eq!(
            parse_time("2024-03-01T04:34:01+02:00"),
            Some(1_709_260_441.0)
        );
        assert_eq!(parse_time("1709260441000"), Some(1_709_260_441.0));
        assert_eq!(parse_time("2024-13-01"), None);
    }

    #[test]
    fn reads_csv_recbole_and_store_objects() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("e.csv");
        std::fs::write(&csv, "user_id,item_id,ts\nu1, i1 ,5\nu2,,6\n").unwrap();
        let c = read_columns(&csv).unwrap();
        assert_eq!(c.rows, 2);
        assert_eq!(c.names, ["user_id", "item_id", "ts"]);
        assert_eq!(c.get("item_id").unwrap(), &[Some("i1".to_owned()), None]);

        let atomic =
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n";
        let inter = dir.path().join("x.inter");
        std::fs::write(&inter, atomic).unwrap();
        let c = read_columns(&inter).unwrap();
        assert_eq!(c.names, ["user_id", "item_id", "rating", "timestamp"]);
        assert_eq!(c.get("timestamp").unwrap(), &[Some("881250949".to_owned())]);
        // A store object has no extension: the same file reads the same.
        let object = dir.path().join("0123abcd");
        std::fs::write(&object, atomic).unwrap();
        let o = read_columns(&object).unwrap();
        assert_eq!((o.names, o.data), (c.names, c.data));

        // A ragged row is an error naming its line, not a graph built from part of the file.
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "user_id,item_id\nu1,i1\nu2\n").unwrap();
        let e = read_columns(&bad).unwrap_err();
        assert!(matches!(e, InputError::Malformed { line: 3, .. }), "{e}");
    }
}
