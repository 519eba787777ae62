//! Reading the tables the model steps consume (interactions, item catalogues) as
//! string columns: CSV (comma, header row), RecBole atomic files (`.inter`/`.item`,
//! tab-separated, `name:type` headers) and Parquet.
//!
//! Every column comes back as optional strings: ids are tokens, not numbers, and
//! the graph builder parses the few numeric columns itself with errors that name
//! the row. This is the one place that knows file formats; when `src/table/`
//! offers a reader for all three, [`read_columns`] becomes a thin call into it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

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

/// The formats [`read_columns`] understands, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// RecBole atomic file: tab-separated, header fields `name:type`.
    Atomic,
    Parquet,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet" | "pq") => Format::Parquet,
            Some("inter" | "item" | "user" | "tsv") => Format::Atomic,
            _ => Format::Csv,
        }
    }

    /// The format of a file without a telling name (a store object), from its bytes:
    /// Parquet's magic, a tab-separated `name:type` header (RecBole), else CSV.
    pub fn sniff(path: &Path) -> Format {
        use std::io::Read;
        let mut head = [0u8; 4096];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        let head = &head[..n];
        if head.starts_with(b"PAR1") {
            return Format::Parquet;
        }
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        if line.contains('\t') && line.split('\t').all(|f| f.contains(':')) {
            Format::Atomic
        } else {
            Format::Csv
        }
    }
}

/// Reads a whole table as string columns. Errors name the file and say what is wrong.
pub fn read_columns(path: &Path) -> Result<Columns, String> {
    read_columns_as(path, Format::of(path))
}

/// [`read_columns`] in a given format (for store objects, which have no extension).
pub fn read_columns_as(path: &Path, format: Format) -> Result<Columns, String> {
    let shown = path.display();
    let batches = match format {
        Format::Parquet => read_parquet(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?,
        f => read_delimited(path, f == Format::Atomic)
            .map_err(|e| format!("cannot read `{shown}`: {e}"))?,
    };
    let mut out = Columns::default();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    for field in first.schema().fields() {
        let name = match field.name().split_once(':') {
            Some((n, _)) => n.to_owned(),
            None => field.name().clone(),
        };
        let name = name.trim().to_owned();
        out.names.push(name.clone());
        out.data.insert(name, Vec::new());
    }
    for batch in &batches {
        for (idx, name) in out.names.iter().enumerate() {
            let col = as_text(batch.column(idx))
                .map_err(|e| format!("cannot read column `{name}` of `{shown}` as text: {e}"))?;
            let strings = col.as_string::<i32>();
            let dest = out.data.get_mut(name).expect("column registered above");
            dest.extend((0..strings.len()).map(|i| {
                if strings.is_null(i) {
                    None
                } else {
                    let s = strings.value(i).trim();
                    (!s.is_empty()).then(|| s.to_owned())
                }
            }));
        }
        out.rows += batch.num_rows();
    }
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

fn read_delimited(path: &Path, atomic: bool) -> Result<Vec<RecordBatch>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let delimiter = if atomic { b'\t' } else { b',' };
    let header = text.lines().next().unwrap_or_default();
    if header.trim().is_empty() {
        return Err("the file is empty; a header row with column names is expected".into());
    }
    // Every column is read as text: the header's `name:type` suffix (RecBole) is
    // stripped later, and numbers are parsed where they are used.
    let fields: Vec<Field> = split_header(header, delimiter as char)
        .into_iter()
        .map(|n| Field::new(n, DataType::Utf8, true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let reader = arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .with_delimiter(delimiter)
        .with_batch_size(65_536)
        .build(std::io::Cursor::new(text.as_bytes()))
        .map_err(|e| e.to_string())?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

fn split_header(line: &str, delimiter: char) -> Vec<String> {
    line.trim_end_matches(['\r', '\n'])
        .split(delimiter)
        .map(|s| s.trim().trim_matches('"').to_owned())
        .collect()
}

fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    // Dictionary or nested columns would not cast to text one by one; flatten
    // dictionaries up front so every column reaches the string cast as values.
    batches
        .into_iter()
        .map(|b| {
            let cols: Vec<ArrayRef> = b
                .columns()
                .iter()
                .map(|c| match c.data_type() {
                    DataType::Dictionary(_, v) => arrow::compute::cast(c, v),
                    _ => Ok(c.clone()),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let schema = Schema::new(
                b.schema()
                    .fields()
                    .iter()
                    .zip(&cols)
                    .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
                    .collect::<Vec<_>>(),
            );
            RecordBatch::try_new(Arc::new(schema), cols).map_err(|e| e.to_string())
        })
        .collect()
}

/// Seconds since the Unix epoch from a number or an ISO-8601 date/time
/// (`2024-03-01`, `2024-03-01T02:34:01Z`, `2024-03-01 02:34:01.5`; offsets are not
/// supported and a trailing `Z` is optional).
pub fn parse_time(s: &str) -> Option<f64> {
    if let Ok(v) = s.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    let s = s.trim_end_matches('Z');
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut secs = crate::lineage::time::days_from_civil(y, m, day) as f64 * 86_400.0;
    if let Some(t) = time {
        let mut p = t.split(':');
        let h: f64 = p.next()?.parse().ok()?;
        let mi: f64 = p.next().unwrap_or("0").parse().ok()?;
        let se: f64 = p.next().unwrap_or("0").parse().ok()?;
        if p.next().is_some() || !(0.0..24.0).contains(&h) || !(0.0..60.0).contains(&mi) {
            return None;
        }
        secs += h * 3600.0 + mi * 60.0 + se;
    }
    Some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_epoch_seconds() {
        assert_eq!(parse_time("0"), Some(0.0));
        assert_eq!(parse_time("881250949"), Some(881_250_949.0));
        assert_eq!(parse_time("1970-01-02"), Some(86_400.0));
        assert_eq!(parse_time("2024-03-01T02:34:01Z"), Some(1_709_260_441.0));
        assert_eq!(parse_time("2024-03-01 02:34:01"), Some(1_709_260_441.0));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01"), None);
    }

    #[test]
    fn reads_csv_and_recbole_atomic_files() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("e.csv");
        std::fs::write(&csv, "user_id,item_id,ts\nu1,i1,5\nu2,,6\n").unwrap();
        let c = read_columns(&csv).unwrap();
        assert_eq!(c.rows, 2);
        assert_eq!(c.names, ["user_id", "item_id", "ts"]);
        assert_eq!(c.get("item_id").unwrap(), &[Some("i1".to_owned()), None]);

        let inter = dir.path().join("x.inter");
        std::fs::write(
            &inter,
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n",
        )
        .unwrap();
        let c = read_columns(&inter).unwrap();
        assert_eq!(c.names, ["user_id", "item_id", "rating", "timestamp"]);
        assert_eq!(c.get("timestamp").unwrap(), &[Some("881250949".to_owned())]);

        // Store objects have no extension: the bytes say the format.
        assert_eq!(Format::sniff(&csv), Format::Csv);
        assert_eq!(Format::sniff(&inter), Format::Atomic);
        let pq = dir.path().join("object");
        std::fs::write(&pq, b"PAR1\x15\x04").unwrap();
        assert_eq!(Format::sniff(&pq), Format::Parquet);
        assert_eq!(Format::sniff(&dir.path().join("absent")), Format::Csv);
    }
}
