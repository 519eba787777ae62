//! Column summaries for data-quality facets: each column's type, null count and, for
//! numbers and times, the smallest and largest value. Steps record one summary of their
//! input and one of their output, so lineage shows what a step did to every column.

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value as Json, json};

/// The facet name of a column type.
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "int".into(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "float".into(),
        DataType::Boolean => "bool".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        other => other.to_string(),
    }
}

fn number(v: f64) -> Json {
    // Whole numbers print without `.0` so counts and ids read naturally.
    if v.fract() == 0.0 && v.abs() < 9e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// `{type, nulls, min?, max?}` of one column.
pub fn column_summary(col: &ArrayRef) -> Json {
    let mut m = Map::new();
    m.insert("type".into(), json!(type_name(col.data_type())));
    m.insert("nulls".into(), json!(col.null_count()));
    match col.data_type() {
        DataType::Timestamp(..) => {
            if let Ok(c) = arrow::compute::cast(col, &DataType::Int64)
                && let Some(a) = c.as_any().downcast_ref::<Int64Array>()
                && let (Some(lo), Some(hi)) = (arrow::compute::min(a), arrow::compute::max(a))
            {
                m.insert("min".into(), json!(super::time::format_millis(lo)));
                m.insert("max".into(), json!(super::time::format_millis(hi)));
            }
        }
        t if t.is_numeric() => {
            if let Ok(c) = arrow::compute::cast(col, &DataType::Float64)
                && let Some(a) = c.as_any().downcast_ref::<Float64Array>()
            {
                let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
                for v in a.iter().flatten() {
                    if v < lo {
                        lo = v;
                    }
                    if v > hi {
                        hi = v;
                    }
                }
                if lo <= hi {
                    m.insert("min".into(), number(lo));
                    m.insert("max".into(), number(hi));
                }
            }
        }
        _ => {}
    }
    Json::Object(m)
}

/// `{column: summary}` of every column of a batch.
pub fn summary(batch: &RecordBatch) -> Json {
    let schema = batch.schema();
    Json::Object(
        schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, c)| (f.name().clone(), column_summary(c)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn summarises_numbers_text_and_times() {
        let f: ArrayRef = Arc::new(Float64Array::from(vec![Some(2.5), None, Some(-1.0)]));
        assert_eq!(
            column_summary(&f),
            json!({"type": "float", "nulls": 1, "min": -1, "max": 2.5})
        );
        let s: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![Some("a"), None]));
        assert_eq!(column_summary(&s), json!({"type": "text", "nulls": 1}));
        let t: ArrayRef = Arc::new(
            arrow::array::TimestampMillisecondArray::from(vec![Some(0), Some(86_400_000)])
                .with_timezone("UTC"),
        );
        assert_eq!(
            column_summary(&t),
            json!({"type": "timestamp", "nulls": 0, "min": "1970-01-01T00:00:00Z", "max": "1970-01-02T00:00:00Z"})
        );
    }
}
