//! Writing tables: Parquet for a step's `table` outputs (snappy-compressed, row groups of
//! 128Ki rows, written slice by slice so the encoder never holds a second copy of the
//! table), CSV for rejected rows.
//!
//! Rejects are CSV because they are for people: they hold the row's original text
//! (which by definition did not fit the declared types, so a typed Parquet schema could
//! not hold it faithfully), its line in the input and the rule that refused it, and the
//! first thing anyone does with them is open them in an editor or a spreadsheet.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{Reject, TableError};

const ROW_GROUP: usize = 128 * 1024;

/// Write `batch` to `path` as Parquet.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), TableError> {
    write_parquet_parts(path, batch.schema(), std::iter::once(batch.clone()))
}

/// Write batches (all with `schema`) to `path` as one Parquet file.
pub fn write_parquet_parts(
    path: &Path,
    schema: arrow::datatypes::SchemaRef,
    parts: impl IntoIterator<Item = RecordBatch>,
) -> Result<(), TableError> {
    let werr = |message: String| TableError::Write {
        path: path.to_owned(),
        message,
    };
    let file = File::create(path).map_err(|e| werr(e.to_string()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let mut w = ArrowWriter::try_new(BufWriter::new(file), schema, Some(props))
        .map_err(|e| werr(e.to_string()))?;
    for part in parts {
        let mut off = 0;
        while off < part.num_rows() {
            let len = ROW_GROUP.min(part.num_rows() - off);
            w.write(&part.slice(off, len))
                .map_err(|e| werr(e.to_string()))?;
            off += len;
        }
    }
    // The rows are in the file, the footer is not: the crash campaign kills here.
    w.flush().map_err(|e| werr(e.to_string()))?;
    crate::failpoint::hit("builtin-writing");
    w.close().map_err(|e| werr(e.to_string()))?;
    Ok(())
}

/// Write rejected rows as CSV: `line,rule,reason` and then the table's columns.
pub fn write_rejects(
    path: &Path,
    columns: &[String],
    rejects: &[Reject],
) -> Result<(), TableError> {
    let werr = |message: String| TableError::Write {
        path: path.to_owned(),
        message,
    };
    let file = File::create(path).map_err(|e| werr(e.to_string()))?;
    let mut w = csv::Writer::from_writer(BufWriter::new(file));
    let mut header = vec!["line".to_owned(), "rule".to_owned(), "reason".to_owned()];
    header.extend(columns.iter().cloned());
    w.write_record(&header).map_err(|e| werr(e.to_string()))?;
    let mut rec: Vec<String> = Vec::with_capacity(header.len());
    for r in rejects {
        rec.clear();
        rec.push(r.line.to_string());
        rec.push(r.rule.clone());
        rec.push(r.reason.clone());
        for i in 0..columns.len() {
            rec.push(r.values.get(i).cloned().flatten().unwrap_or_default());
        }
        w.write_record(&rec).map_err(|e| werr(e.to_string()))?;
    }
    let mut inner = w.into_inner().map_err(|e| werr(e.to_string()))?;
    inner.flush().map_err(|e| werr(e.to_string()))?;
    Ok(())
}
