//! Reading an input file into one Arrow batch: CSV (sniffed or given delimiter, quoting,
//! optional header), RecBole atomic files (tab-separated, `name:type` headers) and Parquet.
//!
//! Every data row that cannot be taken as it is (wrong number of fields, not UTF-8, a
//! RecBole `float` that is not a number) becomes a [`Reject`]; only a file that is not a
//! table at all is an error. Rows are never longer than `max_record_bytes`: the reader
//! is wrapped in a counter that fails once a single record has consumed that many bytes,
//! so a 2 GB line costs 1 MiB of memory before it is refused, not 2 GB.

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::{Format, ReadOptions, Reject, TableError};

/// A table as read, with where each row came from and the rows that were refused.
#[derive(Debug)]
pub struct Loaded {
    pub batch: RecordBatch,
    /// The 1-based input line where each row starts (the row number for Parquet).
    pub lines: Vec<u64>,
    pub rejects: Vec<Reject>,
    /// The format it was read as.
    pub format: Format,
}

const SNIFF_BYTES: usize = 8192;
const RECBOLE_EXTENSIONS: &[&str] = &["inter", "item", "user", "kg", "link", "net"];

/// Read `path` as a table.
pub fn read_table(path: &Path, opts: &ReadOptions) -> Result<Loaded, TableError> {
    let io = |source| TableError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = read_full(&mut file, &mut head).map_err(io)?;
    head.truncate(n);
    if n == 0 {
        return Err(TableError::Empty {
            path: path.to_owned(),
        });
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let format = match opts.format {
        Format::Auto if head.starts_with(b"PAR1") => Format::Parquet,
        Format::Auto if RECBOLE_EXTENSIONS.contains(&ext.as_str()) => Format::Recbole,
        Format::Auto => Format::Csv,
        f => f,
    };
    if format == Format::Parquet {
        return read_parquet(path);
    }
    if let Some((what, offset)) = binary_marker(&head) {
        return Err(TableError::Binary {
            path: path.to_owned(),
            what,
            offset,
        });
    }
    let delimiter = match &opts.delimiter {
        Some(d) => d.as_bytes()[0],
        None if format == Format::Recbole || ext == "tsv" || ext == "tab" => b'\t',
        None => sniff_delimiter(&head),
    };
    let file = File::open(path).map_err(io)?;
    read_delimited(path, file, opts, delimiter, format)
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A reason to believe the bytes are not text.
fn binary_marker(head: &[u8]) -> Option<(&'static str, u64)> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(("gzip-compressed data", 0));
    }
    if head.starts_with(b"PK\x03\x04") {
        return Some(("a zip archive", 0));
    }
    head.iter()
        .position(|&b| b == 0)
        .map(|i| ("a NUL byte", i as u64))
}

/// The most frequent of `,` tab `;` `|` on the first line (`,` when none occurs).
fn sniff_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    [b',', b'\t', b';', b'|']
        .into_iter()
        .map(|d| (line.iter().filter(|&&b| b == d).count(), d))
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, d)| (*n, *d == b','))
        .map(|(_, d)| d)
        .unwrap_or(b',')
}

/// What the reader has seen, shared with the parsing loop.
#[derive(Default)]
struct Progress {
    /// Bytes read since the last record was taken.
    since_reset: Cell<u64>,
    /// Bytes read in all.
    total: Cell<u64>,
    /// The input is exhausted.
    eof: Cell<bool>,
    /// The last byte of the input read so far.
    last: Cell<u8>,
    /// The line after the last record taken (where the next one starts, give or take
    /// blank lines).
    next_line: Cell<u64>,
}

/// A reader that fails once more than `limit` bytes were read since the last reset,
/// so one record can never make the CSV parser buffer more than that.
struct Limited<R> {
    inner: R,
    progress: Rc<Progress>,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let p = &self.progress;
        if p.since_reset.get() > self.limit {
            return Err(std::io::Error::other(RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            p.eof.set(true);
        } else {
            p.last.set(buf[n - 1]);
        }
        p.since_reset.set(p.since_reset.get() + n as u64);
        p.total.set(p.total.get() + n as u64);
        Ok(n)
    }
}

#[derive(Debug)]
struct RecordTooLong;

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record too long")
    }
}

impl std::error::Error for RecordTooLong {}

/// A RecBole field type (`name:type`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum RecType {
    Text,
    Float,
}

/// Read delimited text from any reader (the file, or a test's generated stream).
pub fn read_delimited<R: Read>(
    path: &Path,
    input: R,
    opts: &ReadOptions,
    delimiter: u8,
    format: Format,
) -> Result<Loaded, TableError> {
    let progress = Rc::new(Progress::default());
    // Leave room for the parser's own read-ahead buffer on top of the limit.
    const BUF: usize = 1 << 16;
    let limited = Limited {
        inner: input,
        progress: progress.clone(),
        limit: opts.max_record_bytes + BUF as u64,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quote(opts.quote.as_bytes()[0])
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(BUF)
        .from_reader(limited);
    let mut rec = csv::ByteRecord::new();
    let mut last_line = 1u64;
    let next = |rdr: &mut csv::Reader<Limited<R>>,
                rec: &mut csv::ByteRecord,
                last_line: &mut u64|
     -> Result<bool, TableError> {
        progress.since_reset.set(0);
        match rdr.read_byte_record(rec) {
            Ok(more) => {
                // The record's first line: where the reader stopped, less the newlines
                // inside it and its terminator. (The record's own start position would
                // count blank lines skipped before it as part of it.)
                let end = rdr.position();
                progress.next_line.set(end.line());
                let inside = rec.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
                let unterminated = progress.eof.get()
                    && end.byte() == progress.total.get()
                    && progress.last.get() != b'\n';
                *last_line = end
                    .line()
                    .saturating_sub(inside + u64::from(!unterminated))
                    .max(1);
                if more && rec.as_slice().len() as u64 > opts.max_record_bytes {
                    return Err(TableError::RecordTooLong {
                        path: path.to_owned(),
                        line: *last_line,
                        limit: opts.max_record_bytes,
                    });
                }
                Ok(more)
            }
            Err(e) => Err(match e.kind() {
                csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|i| i.is::<RecordTooLong>()) => {
                    TableError::RecordTooLong {
                        path: path.to_owned(),
                        line: progress.next_line.get().max(1),
                        limit: opts.max_record_bytes,
                    }
                }
                _ => TableError::Io {
                    path: path.to_owned(),
                    source: std::io::Error::other(e.to_string()),
                },
            }),
        }
    };
    if !next(&mut rdr, &mut rec, &mut last_line)? {
        return Err(TableError::Empty {
            path: path.to_owned(),
        });
    }
    let header_line = last_line;
    let (names, types, first_is_data) = if opts.header || format == Format::Recbole {
        let (n, t) = header(path, &rec, header_line, format)?;
        (n, t, false)
    } else {
        let n = (1..=rec.len()).map(|i| format!("c{i}")).collect::<Vec<_>>();
        let t = vec![RecType::Text; n.len()];
        (n, t, true)
    };
    let ncols = names.len();
    enum Col {
        Text(StringBuilder),
        Float(Float64Builder),
    }
    let mut cols: Vec<Col> = types
        .iter()
        .map(|t| match t {
            RecType::Text => Col::Text(StringBuilder::new()),
            RecType::Float => Col::Float(Float64Builder::new()),
        })
        .collect();
    let mut lines = Vec::new();
    let mut rejects = Vec::new();
    let mut malformed = 0u64;
    let mut first_bad: Option<(u64, String)> = None;
    let mut floats: Vec<f64> = vec![0.0; ncols];
    let mut have_row = first_is_data;
    loop {
        if have_row {
            have_row = false;
        } else if !next(&mut rdr, &mut rec, &mut last_line)? {
            break;
        }
        let line = last_line;
        let lossy = |rec: &csv::ByteRecord| -> Vec<Option<String>> {
            rec.iter()
                .map(|f| Some(String::from_utf8_lossy(f).into_owned()))
                .collect()
        };
        if rec.len() != ncols {
            let reason = format!("expected {ncols} fields, found {}", rec.len());
            malformed += 1;
            first_bad.get_or_insert((line, reason.clone()));
            rejects.push(Reject {
                line,
                rule: "malformed".into(),
                reason,
                values: lossy(&rec),
            });
            continue;
        }
        let mut fields: Vec<&str> = Vec::with_capacity(ncols);
        let mut bad: Option<(&'static str, String)> = None;
        for (i, f) in rec.iter().enumerate() {
            match std::str::from_utf8(f) {
                Ok(s) => fields.push(s),
                Err(e) => {
                    bad = Some((
                        "encoding",
                        format!(
                            "field {} (`{}`) is not valid UTF-8 (byte {})",
                            i + 1,
                            names[i],
                            e.valid_up_to()
                        ),
                    ));
                    break;
                }
            }
        }
        if bad.is_none() {
            for (i, t) in types.iter().enumerate() {
                if *t == RecType::Float && !fields[i].is_empty() {
                    match fields[i].trim().parse::<f64>() {
                        Ok(v) => floats[i] = v,
                        Err(_) => {
                            bad = Some((
                                "type",
                                format!(
                                    "`{}` is `{}`, not a number (declared `{}:float`)",
                                    names[i], fields[i], names[i]
                                ),
                            ));
                            break;
                        }
                    }
                }
            }
        }
        if let Some((rule, reason)) = bad {
            if rule == "encoding" {
                malformed += 1;
                first_bad.get_or_insert((line, reason.clone()));
            }
            rejects.push(Reject {
                line,
                rule: rule.into(),
                reason,
                values: lossy(&rec),
            });
            continue;
        }
        for (i, c) in cols.iter_mut().enumerate() {
            let f = fields[i];
            match c {
                Col::Text(b) if f.is_empty() => b.append_null(),
                Col::Text(b) => b.append_value(f),
                Col::Float(b) if f.is_empty() => b.append_null(),
                Col::Float(b) => b.append_value(floats[i]),
            }
        }
        lines.push(line);
    }
    let rows = lines.len() as u64;
    if rows == 0 && rejects.is_empty() {
        return Err(if first_is_data {
            TableError::Empty {
                path: path.to_owned(),
            }
        } else {
            TableError::HeaderOnly {
                path: path.to_owned(),
            }
        });
    }
    let total = rows + rejects.len() as u64;
    if malformed >= 2 && malformed * 2 > total {
        let (line, reason) = first_bad.unwrap_or_default();
        return Err(TableError::MostlyMalformed {
            path: path.to_owned(),
            rows: total,
            rejected: malformed,
            line,
            reason,
        });
    }
    let arrays: Vec<ArrayRef> = cols
        .into_iter()
        .map(|c| match c {
            Col::Text(mut b) => Arc::new(b.finish()) as ArrayRef,
            Col::Float(mut b) => Arc::new(b.finish()) as ArrayRef,
        })
        .collect();
    let schema = Schema::new(
        names
            .iter()
            .zip(&arrays)
            .map(|(n, a)| Field::new(n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new(Arc::new(schema), arrays).map_err(|e| TableError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let batch = if opts.infer && format == Format::Csv {
        super::infer::infer_batch(batch)
    } else {
        batch
    };
    Ok(Loaded {
        batch,
        lines,
        rejects,
        format,
    })
}

fn header(
    path: &Path,
    rec: &csv::ByteRecord,
    line: u64,
    format: Format,
) -> Result<(Vec<String>, Vec<RecType>), TableError> {
    let herr = |message: String| TableError::Header {
        path: path.to_owned(),
        line,
        message,
    };
    let mut names = Vec::with_capacity(rec.len());
    let mut types = Vec::with_capacity(rec.len());
    let mut offset = 0;
    for (i, f) in rec.iter().enumerate() {
        let s = std::str::from_utf8(f).map_err(|e| TableError::HeaderNotUtf8 {
            path: path.to_owned(),
            line,
            offset: offset + e.valid_up_to(),
        })?;
        offset += f.len() + 1;
        let s = if i == 0 {
            s.trim_start_matches('\u{feff}')
        } else {
            s
        };
        let s = s.trim();
        let (name, ty) = if format == Format::Recbole {
            let Some((n, t)) = s.rsplit_once(':') else {
                return Err(herr(format!(
                    "column {} (`{s}`) has no type: RecBole headers are `name:type`, e.g. `user_id:token`",
                    i + 1
                )));
            };
            let ty = match t {
                "token" | "token_seq" | "float_seq" => RecType::Text,
                "float" => RecType::Float,
                other => {
                    return Err(herr(format!(
                        "column `{n}` has the unknown RecBole type `{other}`; the types are `token`, `token_seq`, `float`, `float_seq`"
                    )));
                }
            };
            (n.to_owned(), ty)
        } else {
            (s.to_owned(), RecType::Text)
        };
        let name = if name.is_empty() {
            format!("c{}", i + 1)
        } else {
            name
        };
        if let Some(j) = names.iter().position(|n| *n == name) {
            return Err(herr(format!(
                "the column name `{name}` appears twice (columns {} and {})",
                j + 1,
                i + 1
            )));
        }
        names.push(name);
        types.push(ty);
    }
    Ok((names, types))
}

fn read_parquet(path: &Path) -> Result<Loaded, TableError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let perr = |message: String| TableError::Parquet {
        path: path.to_owned(),
        message,
    };
    let file = File::open(path).map_err(|source| TableError::Io {
        path: path.to_owned(),
        source,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(e.to_string()))?;
    let schema = builder.schema().clone();
    let rows = builder.metadata().file_metadata().num_rows().max(0) as usize;
    // One batch of every row: decoding straight into it never holds the table twice,
    // as collecting row-group batches and concatenating them would.
    let reader = builder
        .with_batch_size(rows.max(1))
        .build()
        .map_err(|e| perr(e.to_string()))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| perr(e.to_string()))?);
    }
    let batch = if batches.len() == 1 {
        batches.pop().expect("one batch")
    } else {
        let b =
            arrow::compute::concat_batches(&schema, &batches).map_err(|e| perr(e.to_string()))?;
        drop(batches);
        b
    };
    let batch = normalise_types(batch).map_err(perr)?;
    Ok(Loaded {
        lines: (1..=rows.max(batch.num_rows()) as u64).collect(),
        batch,
        rejects: Vec::new(),
        format: Format::Parquet,
    })
}

/// Bring Parquet's many spellings of text and time to the two the steps use: `Utf8` and
/// millisecond timestamps in UTC.
fn normalise_types(batch: RecordBatch) -> Result<RecordBatch, String> {
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        let target = match c.data_type() {
            DataType::LargeUtf8 | DataType::Utf8View => Some(DataType::Utf8),
            DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8) => {
                Some(DataType::Utf8)
            }
            DataType::Timestamp(u, tz)
                if *u != arrow::datatypes::TimeUnit::Millisecond
                    || tz.as_deref() != Some("UTC") =>
            {
                Some(super::timestamp_type())
            }
            _ => None,
        };
        match target {
            Some(t) => {
                let c = arrow::compute::cast(c, &t).map_err(|e| e.to_string())?;
                fields.push(Field::new(f.name(), t, true));
                cols.push(c);
            }
            None => {
                fields.push(f.as_ref().clone());
                cols.push(c.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray};

    fn read_str(name: &str, text: &[u8], opts: &ReadOptions) -> Result<Loaded, TableError> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        read_table(&p, opts)
    }

    fn raw() -> ReadOptions {
        ReadOptions {
            infer: false,
            ..ReadOptions::default()
        }
    }

    fn texts(l: &Loaded, col: usize) -> Vec<Option<String>> {
        let a = l
            .batch
            .column(col)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
            .collect()
    }

    #[test]
    fn reads_quoted_csv_with_line_numbers_and_rejects() {
        let l = read_str(
            "e.csv",
            b"a,b\n1,\"x, y\"\n\n2,\"multi\nline\"\n3\n4,\n",
            &raw(),
        )
        .unwrap();
        assert_eq!(l.batch.num_rows(), 3);
        assert_eq!(l.lines, vec![2, 4, 7]);
        assert_eq!(
            texts(&l, 1),
            vec![Some("x, y".into()), Some("multi\nline".into()), None]
        );
        assert_eq!(l.rejects.len(), 1);
        assert_eq!(l.rejects[0].line, 6);
        assert_eq!(l.rejects[0].rule, "malformed");
        assert_eq!(l.rejects[0].reason, "expected 2 fields, found 1");
    }

    #[test]
    fn sniffs_the_delimiter_and_strips_a_bom() {
        let l = read_str("e.csv", "\u{feff}a;b\n1;2\n".as_bytes(), &raw()).unwrap();
        assert_eq!(l.batch.schema().field(0).name(), "a");
        assert_eq!(l.batch.num_columns(), 2);
    }

    #[test]
    fn headerless_csv_names_columns() {
        let opts = ReadOptions {
            header: false,
            ..raw()
        };
        let l = read_str("e.csv", b"1,2\n3,4\n", &opts).unwrap();
        assert_eq!(l.batch.num_rows(), 2);
        assert_eq!(l.batch.schema().field(1).name(), "c2");
        assert_eq!(l.lines, vec![1, 2]);
    }

    #[test]
    fn recbole_headers_declare_types() {
        let l = read_str(
            "x.inter",
            b"user_id:token\titem_id:token\trating:float\n1\t10\t4.5\n2\t11\tgood\n3\t12\t\n",
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(l.batch.schema().field(2).data_type(), &DataType::Float64);
        assert_eq!(l.batch.num_rows(), 2);
        assert_eq!(l.rejects[0].rule, "type");
        assert_eq!(l.rejects[0].line, 3);
        let e = read_str("x.item", b"item_id\tname\n", &ReadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("has no type"), "{e}");
    }

    #[test]
    fn malformed_files_are_clear_errors() {
        let o = raw();
        let msg = |name: &str, bytes: &[u8]| read_str(name, bytes, &o).unwrap_err().to_string();
        assert!(msg("e.csv", b"").ends_with("e.csv` is empty: there is no header row"));
        assert!(msg("e.csv", b"a,b\n").contains("has a header but no data rows"));
        assert!(msg("e.csv", b"a,b\n\n\n").contains("has a header but no data rows"));
        assert!(
            msg("e.csv", b"ab\x00cd\n").contains("looks binary, not text: a NUL byte at byte 2")
        );
        assert!(msg("e.csv", b"\x1f\x8b\x08rest").contains("gzip"));
        assert!(
            msg("e.csv", b"a,\xff\xfe\n1,2\n").contains("line 1: the header is not valid UTF-8")
        );
        assert!(msg("e.parquet", b"PAR1garbage").contains("not a readable Parquet file"));
        assert!(msg("e.csv", b"a,a\n1,2\n").contains("`a` appears twice"));
        // Wrong delimiter given: every row has the wrong field count.
        let semi = ReadOptions {
            delimiter: Some(",".into()),
            ..raw()
        };
        let e = read_str("e.csv", b"a;b;c\n1,2;3\n4,5;6\n7,8;9\n", &semi).unwrap_err();
        assert!(
            e.to_string()
                .contains("3 of 3 rows are malformed; the first, at line 2"),
            "{e}"
        );
        assert!(e.help().unwrap().contains("delimiter"));
    }

    #[test]
    fn non_utf8_rows_are_rejects_and_truncation_is_a_reject() {
        let l = read_str("e.csv", b"a,b\n1,caf\xe9\n2,ok\n3,\"trunc", &raw()).unwrap();
        assert_eq!(l.batch.num_rows(), 2);
        assert_eq!(l.rejects[0].rule, "encoding");
        assert_eq!(l.rejects[0].line, 2);
        assert!(l.rejects[0].reason.contains("not valid UTF-8"));
        // The unclosed quote at the end of a truncated file takes the rest as the field.
        assert_eq!(texts(&l, 1)[1], Some("trunc".into()));
    }

    #[test]
    fn a_two_gigabyte_line_is_refused_after_the_limit() {
        let header = std::io::Cursor::new(b"a,b\n1,2\n".to_vec());
        let huge = std::io::repeat(b'x').take(2 << 30);
        let opts = raw();
        let e = read_delimited(
            Path::new("big.csv"),
            header.chain(huge),
            &opts,
            b',',
            Format::Csv,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`big.csv` line 3: a row is longer than 1048576 bytes (the end of the row or of a quoted field was not found)"
        );
    }

    #[test]
    fn parquet_round_trips() {
        let l = read_str(
            "e.csv",
            b"a,b,t\n1,x,2024-01-01T00:00:00Z\n2,,2024-01-02T00:00:00Z\n",
            &ReadOptions::default(),
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.parquet");
        crate::table::write_parquet(&p, &l.batch).unwrap();
        let back = read_table(&p, &ReadOptions::default()).unwrap();
        assert_eq!(back.batch, l.batch);
        assert_eq!(back.lines, vec![1, 2]);
        assert_eq!(back.format, Format::Parquet);
    }
}
