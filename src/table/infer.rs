//! Column types from text: inference (a column becomes a number, a boolean or a timestamp
//! only when every non-null cell parses) and coercion to a declared type (cells that do
//! not parse are reported by row, for the step to reject).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringArray,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::ColType;
use super::time::{TsFormat, parse_timestamp};

/// A number as people write it: digits, one optional sign, point and exponent; no `inf`,
/// `nan` or hex, which `str::parse` would take.
pub fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.is_empty()
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E'))
        || !b.iter().any(u8::is_ascii_digit)
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

pub fn parse_int(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse().ok()
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// The result of coercing a text column to a declared type.
pub struct Coerced {
    pub array: ArrayRef,
    /// Rows whose (non-null) text did not parse; their cell is null in `array`.
    pub failed: Vec<usize>,
    /// For timestamps: how many cells were written in each notation.
    pub formats: BTreeMap<&'static str, u64>,
}

/// Coerce text to `ty`. Null stays null; a cell that does not parse becomes null and
/// its row is listed in `failed`.
pub fn coerce_text(col: &StringArray, ty: ColType) -> Coerced {
    let n = col.len();
    let mut failed = Vec::new();
    let mut formats = BTreeMap::new();
    macro_rules! build {
        ($builder:expr, $parse:expr) => {{
            let mut b = $builder;
            for i in 0..n {
                if col.is_null(i) {
                    b.append_null();
                    continue;
                }
                match $parse(col.value(i)) {
                    Some(v) => b.append_value(v),
                    None => {
                        failed.push(i);
                        b.append_null();
                    }
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let array = match ty {
        ColType::String => Arc::new(col.clone()) as ArrayRef,
        ColType::Int => build!(Int64Builder::with_capacity(n), parse_int),
        ColType::Float => build!(Float64Builder::with_capacity(n), parse_float),
        ColType::Bool => build!(BooleanBuilder::with_capacity(n), parse_bool),
        ColType::Timestamp => {
            let mut counts = [0u64; 2];
            let a = build!(
                TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC"),
                |s: &str| parse_timestamp(s).map(|(ms, f)| {
                    counts[(f == TsFormat::Unix) as usize] += 1;
                    ms
                })
            );
            for (f, c) in [TsFormat::Iso8601, TsFormat::Unix].into_iter().zip(counts) {
                if c > 0 {
                    formats.insert(f.name(), c);
                }
            }
            a
        }
    };
    Coerced {
        array,
        failed,
        formats,
    }
}

/// The narrowest type every non-null cell parses as, if any besides text. Integers with
/// a leading zero (`007`, zip codes, ids) stay text: they are names, not numbers.
pub fn infer_type(col: &StringArray) -> Option<ColType> {
    let values = || {
        (0..col.len())
            .filter(|&i| col.is_valid(i))
            .map(|i| col.value(i))
    };
    values().next()?;
    let leading_zero = |s: &str| {
        let d = s.strip_prefix('-').unwrap_or(s);
        d.len() > 1 && d.starts_with('0') && !d.starts_with("0.")
    };
    if values().all(|s| parse_int(s).is_some() && !leading_zero(s)) {
        return Some(ColType::Int);
    }
    if values().all(|s| parse_float(s).is_some() && !leading_zero(s)) {
        return Some(ColType::Float);
    }
    if values().all(|s| matches!(s.to_ascii_lowercase().as_str(), "true" | "false")) {
        return Some(ColType::Bool);
    }
    if values().all(|s| s.len() >= 10 && s.as_bytes()[4] == b'-' && parse_timestamp(s).is_some()) {
        return Some(ColType::Timestamp);
    }
    None
}

/// Infer every text column of a batch.
pub fn infer_batch(batch: RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        let inferred = c
            .as_any()
            .downcast_ref::<StringArray>()
            .and_then(|s| infer_type(s).map(|t| coerce_text(s, t).array));
        match inferred {
            Some(a) => {
                fields.push(Field::new(f.name(), a.data_type().clone(), true));
                cols.push(a);
            }
            None => {
                fields.push(f.as_ref().clone());
                cols.push(c.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap_or(batch)
}

/// Whether a column holds numbers (or times) a statistic can be taken of.
pub fn is_numeric(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Timestamp(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[Option<&str>]) -> StringArray {
        StringArray::from(v.to_vec())
    }

    #[test]
    fn infers_the_narrowest_type() {
        assert_eq!(
            infer_type(&col(&[Some("1"), None, Some("-3")])),
            Some(ColType::Int)
        );
        assert_eq!(
            infer_type(&col(&[Some("1"), Some("2.5")])),
            Some(ColType::Float)
        );
        assert_eq!(infer_type(&col(&[Some("007"), Some("2")])), None);
        assert_eq!(
            infer_type(&col(&[Some("0.5"), Some("0")])),
            Some(ColType::Float)
        );
        assert_eq!(
            infer_type(&col(&[Some("TRUE"), Some("false")])),
            Some(ColType::Bool)
        );
        assert_eq!(
            infer_type(&col(&[
                Some("2024-01-01T00:00:00Z"),
                Some("2024-01-02 10:00")
            ])),
            Some(ColType::Timestamp)
        );
        assert_eq!(infer_type(&col(&[Some("inf"), Some("1")])), None);
        assert_eq!(infer_type(&col(&[None, None])), None);
    }

    #[test]
    fn coercion_lists_failures_and_formats() {
        let c = coerce_text(
            &col(&[
                Some("2024-01-01T00:00:00Z"),
                Some("1704067200"),
                Some("soon"),
                None,
            ]),
            ColType::Timestamp,
        );
        assert_eq!(c.failed, vec![2]);
        assert_eq!(c.formats, BTreeMap::from([("iso8601", 1), ("unix", 1)]));
        assert_eq!(c.array.null_count(), 2);
        let f = coerce_text(
            &col(&[Some("1.5"), Some("NaN"), Some("1e3")]),
            ColType::Float,
        );
        assert_eq!(f.failed, vec![1]);
    }
}
