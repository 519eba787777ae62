//! The table layer of the data steps: reading CSV, Parquet and RecBole atomic files into
//! one Arrow [`RecordBatch`], writing Parquet (tables) and CSV (rejected rows), inferring
//! and coercing column types, and summarising columns for data-quality facets.
//!
//! A table is read whole into one batch: the data steps need whole-table views (group
//! statistics, duplicates across the file) and one batch keeps their code simple. A
//! malformed row is never an error: it becomes a [`Reject`] with its line number and
//! reason. A malformed *file* (binary, not UTF-8 in its header, empty, header only, a
//! record longer than the limit) is a [`TableError`] that names the file and the place.

pub mod infer;
pub mod read;
pub mod rows;
pub mod stats;
pub mod time;
pub mod write;

use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::datatypes::{DataType, TimeUnit};
use serde::Deserialize;

pub use read::{Loaded, read_table};
pub use write::{write_parquet, write_rejects};

/// Media type of every table a data step writes.
pub const PARQUET_MEDIA_TYPE: &str = "application/vnd.apache.parquet";

/// The Arrow type of timestamps: milliseconds since the epoch, in UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// A row that a reader or a step refused, with where it came from and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// The line of the input file where the row starts (1-based; the header is line 1),
    /// or the row number (1-based) for Parquet input.
    pub line: u64,
    /// The rule that refused it, e.g. `malformed`, `required:user_id`, `range:price`.
    pub rule: String,
    /// What was wrong, for people.
    pub reason: String,
    /// The row's cells as text, in the order of the table's columns.
    pub values: Vec<Option<String>>,
}

/// A file that cannot be read as a table at all.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` is empty: there is no header row")]
    Empty { path: PathBuf },
    #[error("`{path}` has a header but no data rows")]
    HeaderOnly { path: PathBuf },
    #[error("`{path}` looks binary, not text: {what} at byte {offset}")]
    Binary {
        path: PathBuf,
        what: &'static str,
        offset: u64,
    },
    #[error("`{path}` line {line}: the header is not valid UTF-8 (byte {offset} of the line)")]
    HeaderNotUtf8 {
        path: PathBuf,
        line: u64,
        offset: usize,
    },
    #[error(
        "`{path}` line {line}: a row is longer than {limit} bytes (the end of the row or of a quoted field was not found)"
    )]
    RecordTooLong {
        path: PathBuf,
        line: u64,
        limit: u64,
    },
    #[error("`{path}` line {line}: {message}")]
    Header {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "`{path}`: {rejected} of {rows} rows are malformed; the first, at line {line}: {reason}"
    )]
    MostlyMalformed {
        path: PathBuf,
        rows: u64,
        rejected: u64,
        line: u64,
        reason: String,
    },
    #[error("`{path}` is not a readable Parquet file: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("cannot write `{path}`: {message}")]
    Write { path: PathBuf, message: String },
}

impl TableError {
    /// What to do about it, for the `help:` line of the step's error.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            TableError::Empty { .. } | TableError::HeaderOnly { .. } => {
                "check that the upstream step or export wrote the data".into()
            }
            TableError::Binary { .. } => {
                "give a CSV, TSV, Parquet or RecBole (`.inter`/`.item`) file; decompress it first if it is compressed".into()
            }
            TableError::HeaderNotUtf8 { .. } => "save the file as UTF-8".into(),
            TableError::RecordTooLong { .. } => {
                "a quote may never be closed, or the file is truncated or not CSV; raise `read: { max_record_bytes: N }` if rows really are that long".into()
            }
            TableError::MostlyMalformed { .. } => {
                "check the delimiter and quote (`read: { delimiter: \";\" }`) and the encoding (UTF-8)".into()
            }
            _ => return None,
        })
    }
}

/// The format of an input table; `auto` looks at the magic bytes, then the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Auto,
    Csv,
    Parquet,
    Recbole,
}

/// How to read an input table: the `read:` param of every data step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadOptions {
    pub format: Format,
    /// One ASCII character; unset: tab for RecBole and `.tsv`, else sniffed from the header
    /// line among `,`, tab, `;` and `|`.
    pub delimiter: Option<String>,
    /// The quote character (`"` by default); quotes inside a quoted field are doubled.
    pub quote: String,
    /// Whether the first row names the columns; without one they are `c1`, `c2`, …
    pub header: bool,
    /// A row longer than this many bytes makes the file unreadable (not a reject): it is
    /// almost always an unclosed quote or a file that is not CSV.
    pub max_record_bytes: u64,
    /// Infer column types (int, float, bool, ISO timestamps) for CSV columns; else text.
    pub infer: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: Format::Auto,
            delimiter: None,
            quote: "\"".into(),
            header: true,
            max_record_bytes: 1 << 20,
            infer: true,
        }
    }
}

impl ReadOptions {
    /// Parse the `read:` param (a JSON map).
    pub fn from_param(v: Option<&serde_json::Value>) -> Result<ReadOptions, String> {
        let o: ReadOptions = match v {
            None | Some(serde_json::Value::Null) => ReadOptions::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| e.to_string())?,
        };
        o.check()?;
        Ok(o)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(d) = &self.delimiter
            && (d.len() != 1 || !d.is_ascii() || d == "\n" || d == "\r")
        {
            return Err(format!(
                "`delimiter` must be one ASCII character other than a newline, not `{d}`"
            ));
        }
        if self.quote.len() != 1 || !self.quote.is_ascii() {
            return Err(format!(
                "`quote` must be one ASCII character, not `{}`",
                self.quote
            ));
        }
        if self.max_record_bytes < 64 {
            return Err("`max_record_bytes` must be at least 64".into());
        }
        Ok(())
    }
}

/// A column type a step can declare (`types: { price: float }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColType {
    String,
    Int,
    Float,
    Bool,
    Timestamp,
}

impl ColType {
    pub const NAMES: &[&str] = &["string", "int", "float", "bool", "timestamp"];

    pub fn data_type(self) -> DataType {
        match self {
            ColType::String => DataType::Utf8,
            ColType::Int => DataType::Int64,
            ColType::Float => DataType::Float64,
            ColType::Bool => DataType::Boolean,
            ColType::Timestamp => timestamp_type(),
        }
    }
}

/// The text of a cell, for rejects and messages (`None` for null).
pub fn cell_text(col: &ArrayRef, row: usize) -> Option<String> {
    if col.is_null(row) {
        return None;
    }
    if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
        return Some(s.value(row).to_owned());
    }
    match col.data_type() {
        DataType::Float64 => {
            let a = col.as_any().downcast_ref::<arrow::array::Float64Array>()?;
            Some(format!("{}", a.value(row)))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let a = col
                .as_any()
                .downcast_ref::<arrow::array::TimestampMillisecondArray>()?;
            Some(time::format_millis(a.value(row)))
        }
        _ => arrow::util::display::array_value_to_string(col, row).ok(),
    }
}

/// Every cell of a row as text.
pub fn row_text(cols: &[ArrayRef], row: usize) -> Vec<Option<String>> {
    cols.iter().map(|c| cell_text(c, row)).collect()
}

/// The in-memory size of a batch's Arrow buffers, in bytes.
pub fn arrow_bytes(batch: &arrow::record_batch::RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| c.get_array_memory_size())
        .sum()
}
