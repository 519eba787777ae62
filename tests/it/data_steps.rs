//! The data steps `clean`, `dedupe` and `impute`: the real binary on the committed sample
//! (the counts each step records equal the generator's manifest), malformed input files
//! (clear errors, never a panic), resolve-time param errors, and property tests of the
//! steps' library functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::{Ws, copy_sample, repo, stderr, stdout};
use arrow::array::{Array, ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

use pedigree::steps::builtin::{clean, dedupe, impute};
use pedigree::table::{Format, Loaded};

/// step name → facets, from `pedigree show latest --json`.
fn facets(ws: &Ws) -> BTreeMap<String, Json> {
    let out = ws.run(&["show", "latest", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Json = serde_json::from_str(&stdout(&out)).unwrap();
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step_run"]["step"].as_str().unwrap().to_owned(),
                s["facets"].clone(),
            )
        })
        .collect()
}

#[test]
fn the_counts_the_steps_record_on_the_sample_equal_the_manifest() {
    let ws = Ws::new();
    copy_sample(&ws, "ecommerce-data.yaml");
    let (code, run) = ws.run_json("workflows/ecommerce-data.yaml", &[]);
    assert_eq!(code, 0, "{run}");
    let m: Json = serde_json::from_str(&ws.read("workflows/data/sample/manifest.json")).unwrap();
    let f = |k: &str| m["faults"][k].as_u64().unwrap();
    let facets = facets(&ws);
    let (c, d, i) = (&facets["clean"], &facets["dedupe"], &facets["impute"]);

    assert_eq!(
        c["rejected"],
        json!({
            "required:user_id": f("missing_user_id"),
            "required:item_id": f("missing_item_id"),
            "allowed:event": f("unknown_event_type"),
            "range:price": f("negative_price") + f("absurd_price"),
            "range:ts": f("future_timestamp"),
            "outlier:user_id": m["bots"]["rows"],
        })
    );
    assert_eq!(
        c["normalised"],
        json!({
            "event": f("event_case_variant"),
            "user_id": f("whitespace_user_id"),
            "item_id": f("whitespace_item_id"),
        })
    );
    assert_eq!(c["formats"]["ts"]["unix"], json!(f("unix_timestamp")));
    assert_eq!(c["outlier_values"], json!({"user_id": m["bots"]["users"]}));
    let rejected: u64 = c["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(c["rows"]["in"], m["files"]["events.csv"]);
    assert_eq!(
        c["rows"]["out"].as_u64().unwrap(),
        m["files"]["events.csv"].as_u64().unwrap() - rejected
    );

    assert_eq!(
        d["duplicates"],
        json!({"exact": f("exact_duplicate"), "window": f("resent_within_1s")})
    );
    assert_eq!(d["rows"]["in"], c["rows"]["out"]);

    assert_eq!(
        i["imputed"],
        json!({
            "price": {"lookup:item_id": f("missing_price")},
            "category": {
                "lookup:item_id": f("missing_event_category"),
                "knn": m["surviving_events_of_items_without_category"],
            },
        })
    );
    assert_eq!(i["unfilled"], json!({"price": 0, "category": 0}));
    assert_eq!(i["columns_after"]["price"]["nulls"], json!(0));
    assert_eq!(i["rows"]["out"], d["rows"]["out"]);

    // Facts are shown for people too.
    let show = stdout(&ws.run(&["show", "latest"]));
    assert!(
        show.contains("facet duplicates: {\"exact\":1000,\"window\":500}"),
        "{show}"
    );
    let lineage = ws.run(&["lineage", "1/impute.table"]);
    assert!(
        stdout(&lineage).contains("facet imputed"),
        "{}{}",
        stdout(&lineage),
        stderr(&lineage)
    );

    // A second run is cached: no step reruns.
    let (code, again) = ws.run_json("workflows/ecommerce-data.yaml", &[]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(
        crate::common::statuses(&again),
        [
            ("clean".to_owned(), "cached".to_owned()),
            ("dedupe".to_owned(), "cached".to_owned()),
            ("impute".to_owned(), "cached".to_owned()),
        ],
        "{again}"
    );
}

#[test]
fn the_committed_sample_is_what_sample_data_writes() {
    let ws = Ws::new();
    let m: Json = serde_json::from_str(
        &std::fs::read_to_string(repo().join("workflows/data/sample/manifest.json")).unwrap(),
    )
    .unwrap();
    let g = &m["generator"];
    let arg = |k: &str| g[k].to_string();
    let out = ws.run(&[
        "sample-data",
        "--users",
        &arg("users"),
        "--items",
        &arg("items"),
        "--events",
        &arg("events"),
        "--seed",
        &arg("seed"),
        "--out",
        "gen",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for f in ["events.csv", "items.csv", "manifest.json"] {
        let a = std::fs::read(repo().join("workflows/data/sample").join(f)).unwrap();
        let b = std::fs::read(ws.path().join("gen").join(f)).unwrap();
        assert!(
            a == b,
            "`{f}` differs from what the generator writes now: regenerate the sample"
        );
    }
}

const CLEAN_WF: &str = r#"
name: bad-input
inputs:
  events: data/input.csv
steps:
  clean:
    uses: clean
    inputs: { table: inputs.events }
    with: { required: [user_id], read: READ }
"#;

/// Run `clean` on `bytes`; returns (exit code, stderr).
fn clean_on(bytes: &[u8], read: &str) -> (i32, String) {
    let ws = Ws::new();
    std::fs::write(ws.path().join("workflows/data/input.csv"), bytes).unwrap();
    ws.write("workflows/bad.yaml", &CLEAN_WF.replace("READ", read));
    let out = ws.run(&["run", "workflows/bad.yaml"]);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn malformed_input_files_fail_with_clear_errors() {
    let cases: &[(&str, &[u8], &str, &str)] = &[
        (
            "empty",
            b"",
            "{}",
            "input.csv` is empty: there is no header row",
        ),
        (
            "header only",
            b"user_id,item_id\n",
            "{}",
            "input.csv` has a header but no data rows",
        ),
        (
            "binary",
            b"\x7fELF\x02\x01\x01\x00\x00\x00garbage",
            "{}",
            "looks binary, not text: a NUL byte at byte 7",
        ),
        (
            "gzip",
            b"\x1f\x8b\x08\x00\x00\x00",
            "{}",
            "looks binary, not text: gzip-compressed data",
        ),
        (
            "non-UTF-8 header",
            b"user_id,caf\xe9\nu1,x\n",
            "{}",
            "line 1: the header is not valid UTF-8",
        ),
        (
            "wrong delimiter",
            b"user_id;item_id\nu1;i1\n",
            "{ delimiter: \",\" }",
            "it may use another delimiter; set `read: { delimiter: \";\" }`",
        ),
        (
            "mostly malformed",
            b"user_id,item_id\na,b,c\nd,e,f\ng\n",
            "{}",
            "3 of 3 rows are malformed; the first, at line 2: expected 2 fields, found 3",
        ),
        (
            "unclosed quote",
            b"user_id,item_id\nu1,\"never closed",
            "{ max_record_bytes: 64 }",
            "",
        ),
    ];
    for (what, bytes, read, expect) in cases {
        let (code, err) = clean_on(bytes, read);
        if expect.is_empty() {
            // A truncated last row is data, not an error.
            assert_eq!(code, 0, "{what}: {err}");
            continue;
        }
        assert_eq!(code, 1, "{what}: {err}");
        assert!(
            err.contains(expect),
            "{what}: expected `{expect}` in\n{err}"
        );
    }
    let mut long = b"user_id,item_id\nu1,".to_vec();
    long.extend(std::iter::repeat_n(b'x', 5000));
    let (code, err) = clean_on(&long, "{ max_record_bytes: 1024 }");
    assert_eq!(code, 1);
    assert!(
        err.contains("line 2: a row is longer than 1024 bytes"),
        "{err}"
    );
}

#[test]
fn truncated_and_ragged_rows_become_rejects_with_their_lines() {
    let ws = Ws::new();
    ws.write(
        "workflows/data/input.csv",
        "user_id,item_id\nu1,i1\nu2\nu3,i3,extra\n,i4\nu5,i5\nu6,\"tru",
    );
    ws.write("workflows/bad.yaml", &CLEAN_WF.replace("READ", "{}"));
    let (code, run) = ws.run_json("workflows/bad.yaml", &[]);
    assert_eq!(code, 0, "{run}");
    let hash = crate::common::step(&run, "clean")["outputs"]["rejects"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{run}"));
    let rejects = std::fs::read_to_string(ws.object(&hash)).unwrap();
    assert_eq!(
        rejects,
        "line,rule,reason,user_id,item_id\n\
         3,malformed,\"expected 2 fields, found 1\",u2,\n\
         4,malformed,\"expected 2 fields, found 3\",u3,i3\n\
         5,required:user_id,`user_id` is empty,,i4\n"
    );
}

#[test]
fn bad_params_fail_before_anything_runs_with_a_place() {
    let ws = Ws::new();
    ws.write("workflows/data/e.csv", "item_id,price\ni1,\n");
    ws.write(
        "workflows/imp.yaml",
        "name: imp\ninputs:\n  e: data/e.csv\nsteps:\n  fill:\n    uses: impute\n    inputs: { table: inputs.e }\n    with:\n      columns: { price: mediun }\n",
    );
    let out = ws.run(&["run", "workflows/imp.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("unknown strategy `mediun`; did you mean `median`?"),
        "{err}"
    );
    assert!(err.contains("workflows/imp.yaml:9:"), "{err}");

    ws.write(
        "workflows/cl.yaml",
        "name: cl\ninputs:\n  e: data/e.csv\nsteps:\n  c:\n    uses: clean\n    inputs: { table: inputs.e }\n    with:\n      types: { price: flaot }\n",
    );
    let err = stderr(&ws.run(&["run", "workflows/cl.yaml"]));
    assert!(
        err.contains("`price` has the unknown type `\"flaot\"`"),
        "{err}"
    );
    assert!(err.contains("did you mean `float`?"), "{err}");
}

// ---------------------------------------------------------------- properties

fn text_col(v: &[Option<String>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

/// A batch of these columns, every field nullable (as the table layer reads them).
fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable(cols.into_iter().map(|(n, a)| (n, a, true))).unwrap()
}

/// A kind's params: its defaults, overridden by `v`.
fn params<T: serde::de::DeserializeOwned>(kind: &pedigree::steps::builtin::Kind, v: Json) -> T {
    let mut m: serde_json::Map<String, Json> = (kind.params)()
        .into_iter()
        .filter_map(|(k, d)| d.default.map(|d| (k.to_owned(), d)))
        .collect();
    for (k, x) in v.as_object().unwrap() {
        m.insert(k.clone(), x.clone());
    }
    let as_map: BTreeMap<String, Json> = m.clone().into_iter().collect();
    (kind.validate)(&as_map).unwrap();
    serde_json::from_value(Json::Object(m)).unwrap()
}

fn events() -> impl Strategy<Value = Vec<(u8, u8, i64)>> {
    prop::collection::vec((0u8..4, 0u8..3, 0i64..6000), 0..60)
}

fn event_table(rows: &[(u8, u8, i64)]) -> RecordBatch {
    let users: Vec<Option<String>> = rows.iter().map(|r| Some(format!("u{}", r.0))).collect();
    let evs: Vec<Option<String>> = rows
        .iter()
        .map(|r| Some(["view", "click", "cart"][r.1 as usize].to_owned()))
        .collect();
    let ts: ArrayRef = Arc::new(
        TimestampMillisecondArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())
            .with_timezone("UTC"),
    );
    batch(vec![
        ("user_id", text_col(&users)),
        ("event", text_col(&evs)),
        ("ts", ts),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn dedupe_is_idempotent(rows in events(), keep_last in any::<bool>(), mode in 0u8..3, secs in 0u32..3) {
        let keep = if keep_last { "last" } else { "first" };
        let p: dedupe::Params = params(pedigree::steps::builtin::lookup("dedupe").unwrap(), match mode {
            0 => json!({"keep": keep}),
            1 => json!({"keep": keep, "key": ["user_id", "event"]}),
            _ => json!({"keep": keep, "key": ["user_id", "event"], "window": {"column": "ts", "seconds": secs}}),
        });
        let (once, _) = dedupe::dedupe(event_table(&rows), &p).unwrap();
        let (twice, r) = dedupe::dedupe(once.clone(), &p).unwrap();
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(r.resp.facets["rows"]["removed"].as_u64(), Some(0));
    }

    #[test]
    fn clean_never_rejects_a_row_that_satisfies_every_rule(
        rows in prop::collection::vec((0u8..5, 0u8..4, -5i32..200, 0u8..3, any::<bool>()), 1..60)
    ) {
        // Each row is valid or not by construction; only the invalid ones may go.
        let p: clean::Params = params(pedigree::steps::builtin::lookup("clean").unwrap(), json!({
            "required": ["user_id"],
            "lowercase": ["event"],
            "types": {"price": "float"},
            "allowed": {"event": ["view", "click"]},
            "ranges": {"price": {"min": 0, "max": 100}},
        }));
        let mut valid = Vec::new();
        let user: Vec<Option<String>> = rows.iter().map(|r| (r.0 > 0).then(|| format!(" u{} ", r.0))).collect();
        let event: Vec<Option<String>> = rows.iter().map(|r| Some(["View", " click", "cart", "CLICK "][r.1 as usize].to_owned())).collect();
        let price: Vec<Option<String>> = rows.iter().map(|r| match r.3 {
            0 => Some(format!("{}", r.2)),
            1 => None,
            _ => Some("n/a".to_owned()),
        }).collect();
        for r in &rows {
            valid.push(r.0 > 0 && r.1 != 2 && r.3 != 2 && (r.3 == 1 || (0..=100).contains(&r.2)));
        }
        let t = batch(vec![("user_id", text_col(&user)), ("event", text_col(&event)), ("price", text_col(&price))]);
        let n = t.num_rows() as u64;
        let loaded = Loaded { batch: t, lines: (2..n + 2).collect(), rejects: vec![], format: Format::Csv };
        let out = clean::clean(loaded, &p, false).unwrap();
        let rejected_lines: Vec<u64> = out.rejects.iter().map(|r| r.line).collect();
        let expect_rejected: Vec<u64> = valid.iter().enumerate().filter(|(_, v)| !**v).map(|(i, _)| i as u64 + 2).collect();
        prop_assert_eq!(rejected_lines, expect_rejected);
        prop_assert_eq!(out.table.num_rows(), valid.iter().filter(|v| **v).count());
    }

    #[test]
    fn impute_keeps_observed_values_and_fills_what_it_can(
        cells in prop::collection::vec((prop::option::of(0u8..4), prop::option::of(-50i32..50), prop::option::of(0u8..3)), 1..50),
        strategy in 0u8..5
    ) {
        let g: Vec<Option<String>> = cells.iter().map(|c| c.0.map(|x| format!("g{x}"))).collect();
        let x: Vec<Option<f64>> = cells.iter().map(|c| c.1.map(f64::from)).collect();
        let y: Vec<Option<String>> = cells.iter().map(|c| c.2.map(|v| format!("y{v}"))).collect();
        let t = batch(vec![
            ("g", text_col(&g)),
            ("x", Arc::new(Float64Array::from(x.clone())) as ArrayRef),
            ("y", text_col(&y)),
        ]);
        let plan_json = match strategy {
            0 => json!({"x": "median", "y": "mode"}),
            1 => json!({"x": {"mean": {"by": "g"}}, "y": {"mode": {"by": "g"}}}),
            2 => json!({"x": {"constant": 1.5}, "y": {"constant": "none"}}),
            3 => json!({"y": {"knn": {"features": ["x"], "k": 3}}, "x": "mean"}),
            _ => json!({"x": [{"median": {"by": "g"}}, "median"], "y": [{"knn": {"features": ["x"], "k": 2}}, "mode"]}),
        };
        let plan = impute::plan(&plan_json).unwrap();
        let (out, r) = impute::impute(t, None, &plan).unwrap();
        let ox = out.column_by_name("x").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().clone();
        let oy = out.column_by_name("y").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
        for (i, v) in x.iter().enumerate() {
            if let Some(v) = v { prop_assert_eq!(ox.value(i), *v); }
        }
        for (i, v) in y.iter().enumerate() {
            if let Some(v) = v { prop_assert_eq!(oy.value(i), v.as_str()); }
        }
        // Every null left is counted as unfilled, and every fill is counted as imputed.
        let unfilled = &r.resp.facets["unfilled"];
        prop_assert_eq!(unfilled["x"].as_u64(), Some(ox.null_count() as u64));
        prop_assert_eq!(unfilled["y"].as_u64(), Some(oy.null_count() as u64));
        let filled = |c: &str| r.resp.facets["imputed"][c].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
        prop_assert_eq!(filled("x") as usize, x.iter().filter(|v| v.is_none()).count() - ox.null_count());
        prop_assert_eq!(filled("y") as usize, y.iter().filter(|v| v.is_none()).count() - oy.null_count());
        // A column with any observed value and an ungrouped statistic or constant is filled completely.
        if matches!(strategy, 0 | 2) && x.iter().any(Option::is_some) {
            prop_assert_eq!(ox.null_count(), 0);
        }
        if strategy == 2 || (strategy == 0 && y.iter().any(Option::is_some)) {
            prop_assert_eq!(oy.null_count(), 0);
        }
        let _ = DataType::Utf8;
    }
}
