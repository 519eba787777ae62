//! `clean` (table → table, rejects): trims and normalises text, then checks every row
//! against the rules in a fixed order and rejects it at the first rule it fails:
//!
//! | rule | rejects a row when |
//! |---|---|
//! | `malformed` / `encoding` | the reader could not take it (field count, UTF-8) |
//! | `required:COL` | `COL` is empty (after trimming) |
//! | `type:COL` | `COL` does not parse as its declared type (`types:`) |
//! | `allowed:COL` | `COL` is not one of the allowed values (after normalising) |
//! | `range:COL` | `COL` is below `min` or above `max` (numbers or timestamps) |
//! | `outlier:COL` | the row's `COL` value (a user) has more than `max_rows` surviving rows |
//!
//! Within a rule, columns are checked in the order the params name them. A null passes
//! every rule but `required`. Rejected rows go to `rejects.csv` with their input line,
//! their rule and a reason; their cells are the text as trimmed and lower-cased.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::common::{self, Report};
use super::{Builtin, Output, Param, ParamIssue, StepError, issue, param};
use crate::steps::plugin::ParamType;
use crate::steps::protocol::{Request, Response};
use crate::table::infer::{coerce_text, infer_batch};
use crate::table::time::parse_timestamp;
use crate::table::{ColType, Reject};

/// The `clean` kind.
pub struct Clean;

impl Builtin for Clean {
    const NAME: &'static str = "clean";
    const VERSION: u32 = 1;
    const DESCRIPTION: &'static str = "Trim and normalise a table, coerce declared types, and reject rows that miss required columns, hold values outside an allowed set or range, or belong to outlier users; rejected rows are kept with their rule";
    const INPUTS: &'static [(&'static str, bool)] = &[("table", false)];
    const OUTPUTS: &'static [Output] = &[
        Output::table("table", "clean.parquet"),
        Output {
            slot: "rejects",
            file: "rejects.csv",
            kind: "table",
            media_type: "text/csv",
            dir: false,
        },
    ];
    const PARAMS: &'static [Param] = &[
        param("read", ParamType::Map, common::READ_HELP),
        param("required", ParamType::List, "a list of column names"),
        param("trim", ParamType::Bool, "`trim: true` or `trim: false`"),
        param("lowercase", ParamType::List, "a list of column names"),
        param(
            "types",
            ParamType::Map,
            "`types: { price: float }`; the types are `string`, `int`, `float`, `bool` and `timestamp`",
        ),
        param(
            "allowed",
            ParamType::Map,
            "`allowed: { event: [view, click] }` (column → list of values)",
        ),
        param(
            "ranges",
            ParamType::Map,
            "`ranges: { price: { min: 0, max: 10000 } }` (numbers, or timestamps as text)",
        ),
        param(
            "outliers",
            ParamType::Map,
            "`outliers: { column: user_id, max_rows: 1000 }`",
        ),
    ];
    type Params = Params;

    fn check(p: &Params) -> Result<(), ParamIssue> {
        check(p)
    }

    fn run(p: Params, req: &Request) -> Result<Response, StepError> {
        let mut opts = p.read.opts.clone();
        let infer = opts.infer;
        opts.infer = false;
        let loaded = common::load(req.input("table")?, &opts)?;
        let out = clean(loaded, &p, infer)?;
        crate::table::write_parquet(req.output("table")?, &out.table)?;
        crate::table::write_rejects(req.output("rejects")?, &out.columns, &out.rejects)?;
        Ok(out.report.resp)
    }
}

/// A bound of a range: a number, or a timestamp as text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    Number(f64),
    Time(String),
}

impl Bound {
    /// The bound as a number comparable with the column (timestamps in milliseconds).
    fn value(&self) -> Option<f64> {
        match self {
            Bound::Number(n) => Some(*n),
            Bound::Time(s) => parse_timestamp(s).map(|(ms, _)| ms as f64),
        }
    }

    fn show(&self) -> String {
        match self {
            Bound::Number(n) => n.to_string(),
            Bound::Time(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Bound>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Bound>,
}

/// Drop every row of a `column` value (a user) with more than `max_rows` rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outliers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
}

/// An allowed value: text, or a number or boolean written bare in YAML.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// The declared type of each column named in `types:`.
#[derive(Debug, Clone, Default)]
pub struct Types(pub BTreeMap<String, ColType>);

impl Types {
    pub fn get(&self, col: &str) -> Option<&ColType> {
        self.0.get(col)
    }

    pub fn contains_key(&self, col: &str) -> bool {
        self.0.contains_key(col)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

impl Serialize for Types {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(c, t)| (c, ty_name(*t))))
    }
}

impl<'de> Deserialize<'de> for Types {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Types, D::Error> {
        let raw = BTreeMap::<String, Json>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (col, t) in raw {
            let name = t.as_str().unwrap_or_default();
            let ty = serde_json::from_value::<ColType>(t.clone()).map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{col}` has the unknown type `{t}`; {}",
                    crate::diag::suggest(name, "type", ColType::NAMES.iter().copied())
                ))
            })?;
            out.insert(col, ty);
        }
        Ok(Types(out))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    pub read: common::Read,
    pub required: Vec<String>,
    pub trim: bool,
    pub lowercase: Vec<String>,
    pub types: Types,
    pub allowed: BTreeMap<String, Vec<Scalar>>,
    pub ranges: BTreeMap<String, Range>,
    pub outliers: Outliers,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            read: common::Read::default(),
            required: vec![],
            trim: true,
            lowercase: vec![],
            types: Types::default(),
            allowed: BTreeMap::new(),
            ranges: BTreeMap::new(),
            outliers: Outliers::default(),
        }
    }
}

fn check(p: &Params) -> Result<(), ParamIssue> {
    for (col, values) in &p.allowed {
        if values.is_empty() {
            return Err(issue(
                "allowed",
                format!(
                    "the allowed values of `{col}` are an empty list, which would reject every row"
                ),
                "list the values to keep, or remove the column from `allowed`",
            ));
        }
        if p.lowercase.contains(col)
            && let Some(v) = values
                .iter()
                .map(Scalar::text)
                .find(|v| v.to_lowercase() != *v)
        {
            return Err(issue(
                "allowed",
                format!(
                    "`{col}` is lower-cased before the check, so the allowed value `{v}` never matches"
                ),
                format!("write `{}`", v.to_lowercase()),
            ));
        }
    }
    for (col, r) in &p.ranges {
        for b in [&r.min, &r.max].into_iter().flatten() {
            if b.value().is_none() {
                return Err(issue(
                    "ranges",
                    format!(
                        "the bound `{}` of `{col}` is neither a number nor a timestamp",
                        b.show()
                    ),
                    "write a number, or a timestamp like `2024-07-01T00:00:00Z`",
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (
            r.min.as_ref().and_then(Bound::value),
            r.max.as_ref().and_then(Bound::value),
        ) && lo > hi
        {
            return Err(issue(
                "ranges",
                format!("the range of `{col}` is empty: `min` is above `max`"),
                "swap `min` and `max`",
            ));
        }
        if r.min.is_none() && r.max.is_none() {
            return Err(issue(
                "ranges",
                format!("the range of `{col}` has neither `min` nor `max`"),
                "give `min:`, `max:` or both",
            ));
        }
    }
    let o = &p.outliers;
    match (&o.column, o.max_rows) {
        (None, None) | (Some(_), Some(_)) => {}
        _ => {
            return Err(issue(
                "outliers",
                "`outliers` needs both `column` and `max_rows`",
                "`outliers: { column: user_id, max_rows: 1000 }` drops every row of a user with more than 1000 rows",
            ));
        }
    }
    if o.max_rows == Some(0) {
        return Err(issue(
            "outliers",
            "`max_rows` is 0, which would drop every row",
            "give the most rows a normal value of the column has",
        ));
    }
    Ok(())
}

/// What `clean` made of a table.
pub struct Cleaned {
    pub table: RecordBatch,
    pub rejects: Vec<Reject>,
    /// The input's column names (the columns of `rejects`).
    pub columns: Vec<String>,
    /// Rejected rows per rule.
    pub rejected: BTreeMap<String, u64>,
    pub report: Report,
}

/// Tracks which rows are rejected, by which rule, with their cells as text at that moment.
struct Verdicts {
    rejected: Vec<bool>,
    rejects: Vec<(usize, Reject)>,
    per_rule: BTreeMap<String, u64>,
}

impl Verdicts {
    fn reject(
        &mut self,
        cols: &[ArrayRef],
        lines: &[u64],
        row: usize,
        rule: String,
        reason: String,
    ) {
        self.rejected[row] = true;
        *self.per_rule.entry(rule.clone()).or_default() += 1;
        self.rejects.push((
            row,
            Reject {
                line: lines.get(row).copied().unwrap_or(row as u64 + 1),
                rule,
                reason,
                values: crate::table::row_text(cols, row),
            },
        ));
    }
}

fn show_cell(c: &ArrayRef, row: usize) -> String {
    crate::table::cell_text(c, row).unwrap_or_default()
}

/// Clean a loaded table (read as text). `infer` types the columns `types` does not declare.
pub fn clean(loaded: crate::table::Loaded, p: &Params, infer: bool) -> Result<Cleaned, StepError> {
    let crate::table::Loaded {
        batch,
        lines,
        rejects: read_rejects,
        ..
    } = loaded;
    let schema = batch.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let n = batch.num_rows();
    let rows_in = n as u64 + read_rejects.len() as u64;
    let before = batch.clone();
    // Every column the params name must exist, so a typo fails loudly instead of passing.
    for c in &p.required {
        common::column(&batch, c, "`required`")?;
    }
    for c in &p.lowercase {
        common::column(&batch, c, "`lowercase`")?;
    }
    for c in p.types.keys() {
        common::column(&batch, c, "`types`")?;
    }
    for c in p.allowed.keys() {
        common::column(&batch, c, "`allowed`")?;
    }
    for c in p.ranges.keys() {
        common::column(&batch, c, "`ranges`")?;
    }
    if let Some(c) = &p.outliers.column {
        common::column(&batch, c, "`outliers`")?;
    }
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    drop(batch);
    let mut report = Report::default();

    // 1. Trim and lower-case text.
    let mut normalised = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let lower = p.lowercase.contains(name);
        if !(p.trim || lower) {
            continue;
        }
        if let Some(s) = cols[i].as_any().downcast_ref::<StringArray>()
            && let Some((a, changed)) = normalise(s, p.trim, lower)
        {
            normalised.insert(name.clone(), changed);
            cols[i] = Arc::new(a);
        }
    }

    let mut v = Verdicts {
        rejected: vec![false; n],
        rejects: Vec::new(),
        per_rule: BTreeMap::new(),
    };
    for r in &read_rejects {
        *v.per_rule.entry(r.rule.clone()).or_default() += 1;
    }

    // 2. Required columns.
    for c in &p.required {
        let i = names.iter().position(|x| x == c).expect("checked above");
        if cols[i].null_count() == 0 {
            continue;
        }
        for row in 0..n {
            if !v.rejected[row] && cols[i].is_null(row) {
                v.reject(
                    &cols,
                    &lines,
                    row,
                    format!("required:{c}"),
                    format!("`{c}` is empty"),
                );
            }
        }
    }

    // 3. Types.
    let mut formats = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let Some(ty) = p.types.get(name) else {
            continue;
        };
        let (array, failed) = match cols[i].as_any().downcast_ref::<StringArray>() {
            Some(s) => {
                let c = coerce_text(s, *ty);
                if !c.formats.is_empty() {
                    formats.insert(name.clone(), json!(c.formats));
                }
                (c.array, c.failed)
            }
            None => cast_typed(&cols[i], *ty, name)?,
        };
        for row in failed {
            if !v.rejected[row] {
                let reason = format!(
                    "`{name}` is `{}`, not a{} {}",
                    show_cell(&cols[i], row),
                    if matches!(ty, ColType::Int) { "n" } else { "" },
                    ty_name(*ty)
                );
                v.reject(&cols, &lines, row, format!("type:{name}"), reason);
            }
        }
        cols[i] = array;
    }

    // 4. Allowed values.
    for (c, values) in &p.allowed {
        let i = names.iter().position(|x| x == c).expect("checked above");
        let allowed: Vec<String> = values.iter().map(Scalar::text).collect();
        let list = allowed.join(", ");
        let text = cols[i].as_any().downcast_ref::<StringArray>().cloned();
        for row in 0..n {
            if v.rejected[row] || cols[i].is_null(row) {
                continue;
            }
            let ok = match &text {
                Some(s) => {
                    let x = s.value(row);
                    allowed.iter().any(|a| a == x)
                }
                None => allowed.contains(&show_cell(&cols[i], row)),
            };
            if !ok {
                let reason = format!("`{c}` is `{}`, not one of {list}", show_cell(&cols[i], row));
                v.reject(&cols, &lines, row, format!("allowed:{c}"), reason);
            }
        }
    }

    // 5. Ranges.
    for (c, r) in &p.ranges {
        let i = names.iter().position(|x| x == c).expect("checked above");
        let values = numeric(&cols[i]).ok_or_else(|| {
            format!(
                "`ranges` checks `{c}`, which is text\n  = help: declare its type, e.g. `types: {{ {c}: float }}` (or `timestamp`)"
            )
        })?;
        let lo = r.min.as_ref().and_then(Bound::value);
        let hi = r.max.as_ref().and_then(Bound::value);
        for row in 0..n {
            if v.rejected[row] || values.is_null(row) {
                continue;
            }
            let x = values.value(row);
            let why = if lo.is_some_and(|lo| x < lo) {
                Some(format!(
                    "below the minimum {}",
                    r.min.as_ref().map(Bound::show).unwrap_or_default()
                ))
            } else if hi.is_some_and(|hi| x > hi) {
                Some(format!(
                    "above the maximum {}",
                    r.max.as_ref().map(Bound::show).unwrap_or_default()
                ))
            } else {
                None
            };
            if let Some(why) = why {
                let reason = format!("`{c}` is {}, {why}", show_cell(&cols[i], row));
                v.reject(&cols, &lines, row, format!("range:{c}"), reason);
            }
        }
    }

    // 6. Outliers by activity, counted over the rows that survived the row rules.
    let mut outlier_values = BTreeMap::new();
    if let (Some(c), Some(max)) = (&p.outliers.column, p.outliers.max_rows) {
        let i = names.iter().position(|x| x == c).expect("checked above");
        let keys: Vec<Option<String>> = match cols[i].as_any().downcast_ref::<StringArray>() {
            Some(_) => Vec::new(),
            None => (0..n)
                .map(|r| crate::table::cell_text(&cols[i], r))
                .collect(),
        };
        let text = cols[i].as_any().downcast_ref::<StringArray>().cloned();
        let key = |row: usize| -> Option<&str> {
            match &text {
                Some(s) => s.is_valid(row).then(|| s.value(row)),
                None => keys[row].as_deref(),
            }
        };
        let mut count: HashMap<&str, u64> = HashMap::new();
        for row in 0..n {
            if !v.rejected[row]
                && let Some(k) = key(row)
            {
                *count.entry(k).or_default() += 1;
            }
        }
        let over: HashMap<&str, u64> = count.into_iter().filter(|(_, c)| *c > max).collect();
        if !over.is_empty() {
            outlier_values.insert(c.clone(), over.len() as u64);
            for row in 0..n {
                if v.rejected[row] {
                    continue;
                }
                if let Some(k) = key(row)
                    && let Some(rows) = over.get(k)
                {
                    let reason = format!("`{c}` `{k}` has {rows} rows, more than {max}");
                    v.reject(&cols, &lines, row, format!("outlier:{c}"), reason);
                }
            }
        }
    }

    // 7. The surviving rows, with undeclared text columns typed when asked.
    let keep = BooleanArray::from(v.rejected.iter().map(|r| !r).collect::<Vec<_>>());
    let fields: Vec<Field> = names
        .iter()
        .zip(&cols)
        .map(|(n, c)| Field::new(n, c.data_type().clone(), true))
        .collect();
    let full =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())?;
    let table = arrow::compute::filter_record_batch(&full, &keep).map_err(|e| e.to_string())?;
    drop(full);
    let table = if infer {
        let declared: Vec<usize> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| p.types.contains_key(n))
            .map(|(i, _)| i)
            .collect();
        infer_undeclared(table, &declared)
    } else {
        table
    };

    let mut rejects: Vec<Reject> = read_rejects;
    let mut mine = v.rejects;
    mine.sort_by_key(|(row, _)| *row);
    rejects.extend(mine.into_iter().map(|(_, r)| r));
    rejects.sort_by_key(|r| r.line);
    let rejected_total = rejects.len() as u64;
    report.tables(
        rows_in,
        &before,
        &table,
        json!({ "rejected": rejected_total }),
    );
    report.facet("rejected", common::counts(v.per_rule.clone()));
    report.facet("normalised", common::counts(normalised));
    if !formats.is_empty() {
        report.facet("formats", Json::Object(formats.into_iter().collect()));
    }
    if !outlier_values.is_empty() {
        report.facet("outlier_values", common::counts(outlier_values));
    }
    report.metric("rows_rejected", rejected_total as f64);
    Ok(Cleaned {
        table,
        rejects,
        columns: names,
        rejected: v.per_rule,
        report,
    })
}

fn ty_name(t: ColType) -> &'static str {
    match t {
        ColType::String => "string",
        ColType::Int => "int",
        ColType::Float => "float",
        ColType::Bool => "bool",
        ColType::Timestamp => "timestamp",
    }
}

/// Trim and/or lower-case every cell; `None` when nothing changes. Also counts the
/// cells that changed. A cell that trims to nothing becomes null.
fn normalise(s: &StringArray, trim: bool, lower: bool) -> Option<(StringArray, u64)> {
    let fix = |x: &str| -> Option<String> {
        let t = if trim { x.trim() } else { x };
        let needs_lower = lower && t.chars().any(char::is_uppercase);
        if t.len() == x.len() && !needs_lower {
            return None;
        }
        Some(if needs_lower {
            t.to_lowercase()
        } else {
            t.to_owned()
        })
    };
    let first = (0..s.len()).find(|&i| s.is_valid(i) && fix(s.value(i)).is_some())?;
    let mut b = arrow::array::StringBuilder::with_capacity(s.len(), s.value_data().len());
    let mut changed = 0;
    for i in 0..s.len() {
        if s.is_null(i) {
            b.append_null();
            continue;
        }
        let x = s.value(i);
        match (i >= first).then(|| fix(x)).flatten() {
            Some(y) => {
                changed += 1;
                if y.is_empty() {
                    b.append_null();
                } else {
                    b.append_value(&y);
                }
            }
            None => b.append_value(x),
        }
    }
    Some((b.finish(), changed))
}

/// A typed (non-text) column cast to a declared type; cells that do not convert fail.
fn cast_typed(c: &ArrayRef, ty: ColType, name: &str) -> Result<(ArrayRef, Vec<usize>), StepError> {
    let target = ty.data_type();
    if c.data_type() == &target {
        return Ok((c.clone(), Vec::new()));
    }
    let out = arrow::compute::cast(c, &target).map_err(|e| {
        format!(
            "`types` declares `{name}` as {}, but the column is {} and cannot be converted: {e}",
            ty_name(ty),
            crate::table::stats::type_name(c.data_type())
        )
    })?;
    let failed = (0..c.len())
        .filter(|&i| c.is_valid(i) && out.is_null(i))
        .collect();
    Ok((out, failed))
}

/// A numeric or timestamp column as `f64` (milliseconds for timestamps).
fn numeric(c: &ArrayRef) -> Option<Float64Array> {
    match c.data_type() {
        DataType::Timestamp(..) => {
            let i = arrow::compute::cast(c, &DataType::Int64).ok()?;
            let i = i.as_any().downcast_ref::<Int64Array>()?;
            Some(i.iter().map(|v| v.map(|v| v as f64)).collect())
        }
        t if t.is_numeric() => {
            let f = arrow::compute::cast(c, &DataType::Float64).ok()?;
            f.as_any().downcast_ref::<Float64Array>().cloned()
        }
        _ => None,
    }
}

fn infer_undeclared(table: RecordBatch, declared: &[usize]) -> RecordBatch {
    let inferred = infer_batch(table.clone());
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for i in 0..table.num_columns() {
        let src = if declared.contains(&i) {
            &table
        } else {
            &inferred
        };
        fields.push(src.schema().field(i).clone());
        cols.push(src.column(i).clone());
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap_or(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Format, Loaded};

    fn text_table(header: &[&str], rows: &[&[&str]]) -> Loaded {
        let cols: Vec<ArrayRef> = (0..header.len())
            .map(|c| {
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|r| (!r[c].is_empty()).then_some(r[c]))
                        .collect::<Vec<_>>(),
                )) as ArrayRef
            })
            .collect();
        let fields: Vec<Field> = header
            .iter()
            .map(|h| Field::new(*h, DataType::Utf8, true))
            .collect();
        Loaded {
            batch: RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap(),
            lines: (2..rows.len() as u64 + 2).collect(),
            rejects: vec![],
            format: Format::Csv,
        }
    }

    fn params(v: Json) -> Params {
        crate::steps::builtin::params_of::<Clean>(v).unwrap()
    }

    fn rules(c: &Cleaned) -> Vec<(u64, &str)> {
        c.rejects
            .iter()
            .map(|r| (r.line, r.rule.as_str()))
            .collect()
    }

    const H: &[&str] = &["user_id", "event", "price", "ts"];

    #[test]
    fn required_rejects_empty_and_blank_cells() {
        let t = text_table(
            H,
            &[
                &["u1", "view", "1", "1"],
                &["", "view", "1", "1"],
                &["  ", "view", "1", "1"],
            ],
        );
        let c = clean(t, &params(json!({"required": ["user_id"]})), false).unwrap();
        assert_eq!(
            rules(&c),
            vec![(3, "required:user_id"), (4, "required:user_id")]
        );
        assert_eq!(c.table.num_rows(), 1);
        assert_eq!(c.rejects[0].reason, "`user_id` is empty");
    }

    #[test]
    fn types_coerce_and_reject_what_does_not_parse() {
        let t = text_table(
            H,
            &[
                &["u1", "view", "1.5", "2024-01-01T00:00:00Z"],
                &["u1", "view", "cheap", "2024-01-01T00:00:00Z"],
                &["u1", "view", "2", "1704067200"],
                &["u1", "view", "2", "later"],
            ],
        );
        let c = clean(
            t,
            &params(json!({"types": {"price": "float", "ts": "timestamp"}})),
            false,
        )
        .unwrap();
        assert_eq!(rules(&c), vec![(3, "type:price"), (5, "type:ts")]);
        assert_eq!(c.rejects[0].reason, "`price` is `cheap`, not a float");
        assert_eq!(c.table.schema().field(2).data_type(), &DataType::Float64);
        assert_eq!(
            c.report.resp.facets["formats"],
            json!({"ts": {"iso8601": 2, "unix": 1}})
        );
    }

    #[test]
    fn allowed_values_after_trimming_and_case_folding() {
        let t = text_table(
            H,
            &[
                &["u1", " VIEW", "1", "1"],
                &["u1", "Click ", "1", "1"],
                &["u1", "share", "1", "1"],
            ],
        );
        let c = clean(
            t,
            &params(json!({"lowercase": ["event"], "allowed": {"event": ["view", "click"]}})),
            false,
        )
        .unwrap();
        assert_eq!(rules(&c), vec![(4, "allowed:event")]);
        assert_eq!(
            c.rejects[0].reason,
            "`event` is `share`, not one of view, click"
        );
        assert_eq!(c.report.resp.facets["normalised"], json!({"event": 2}));
    }

    #[test]
    fn ranges_on_numbers_and_times() {
        let t = text_table(
            H,
            &[
                &["u1", "view", "-1", "2024-01-01T00:00:00Z"],
                &["u1", "view", "5", "2031-01-01T00:00:00Z"],
                &["u1", "view", "5", "2024-01-01T00:00:00Z"],
                &["u1", "view", "", "2024-01-01T00:00:00Z"],
            ],
        );
        let c = clean(
            t,
            &params(json!({
                "types": {"price": "float", "ts": "timestamp"},
                "ranges": {"price": {"min": 0}, "ts": {"max": "2024-07-01T00:00:00Z"}}
            })),
            false,
        )
        .unwrap();
        assert_eq!(rules(&c), vec![(2, "range:price"), (3, "range:ts")]);
        assert_eq!(c.rejects[0].reason, "`price` is -1, below the minimum 0");
        assert_eq!(c.table.num_rows(), 2, "a null passes a range");
    }

    #[test]
    fn outliers_drop_every_row_of_a_too_active_user() {
        let mut rows: Vec<&[&str]> = vec![&["bot", "view", "1", "1"]; 4];
        rows.push(&["u1", "view", "1", "1"]);
        let t = text_table(H, &rows);
        let c = clean(
            t,
            &params(json!({"outliers": {"column": "user_id", "max_rows": 3}})),
            false,
        )
        .unwrap();
        assert_eq!(c.rejected["outlier:user_id"], 4);
        assert_eq!(c.table.num_rows(), 1);
        assert_eq!(
            c.report.resp.facets["outlier_values"],
            json!({"user_id": 1})
        );
    }

    #[test]
    fn the_first_failing_rule_wins_and_unknown_columns_are_errors() {
        let t = text_table(H, &[&["", "share", "x", "1"]]);
        let p = params(
            json!({"required": ["user_id"], "allowed": {"event": ["view"]}, "types": {"price": "float"}}),
        );
        let c = clean(t, &p, false).unwrap();
        assert_eq!(rules(&c), vec![(2, "required:user_id")]);
        let t = text_table(H, &[&["u", "view", "1", "1"]]);
        let e = clean(t, &params(json!({"required": ["usr_id"]})), false)
            .err()
            .unwrap();
        assert!(
            e.message.contains("`required` names the column `usr_id`"),
            "{e}"
        );
        assert_eq!(e.help.as_deref(), Some("did you mean `user_id`?"));
    }

    #[test]
    fn validate_names_the_problem() {
        let bad = |v: Json| crate::steps::builtin::params_of::<Clean>(v).unwrap_err();
        let e = bad(json!({"types": {"price": "flaot"}}));
        assert_eq!(e.param, "types");
        assert!(e.message.contains("did you mean `float`?"), "{}", e.message);
        assert!(e.help.contains("`timestamp`"), "{}", e.help);
        assert!(
            bad(json!({"ranges": {"price": {"min": 5, "max": 1}}}))
                .message
                .contains("empty")
        );
        assert!(
            bad(json!({"ranges": {"ts": {"max": "tomorrow"}}}))
                .message
                .contains("neither a number")
        );
        assert!(
            bad(json!({"outliers": {"column": "user_id"}}))
                .message
                .contains("both")
        );
        assert!(
            bad(json!({"lowercase": ["event"], "allowed": {"event": ["View"]}}))
                .message
                .contains("never matches")
        );
        assert!(
            bad(json!({"read": {"delimiter": ";;"}}))
                .message
                .contains("one ASCII character")
        );
    }
}
