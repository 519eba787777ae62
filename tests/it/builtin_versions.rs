//! Every built-in kind, run by the real binary on one fixed small input:
//!
//! - computed twice (the second time with `--force-all`), each kind writes the same
//!   bytes: a built-in is a pure function of its inputs and params, so a cached
//!   output is never a false hit and a downstream step is cut off early;
//! - the hash of each output is pinned next to the kind's `VERSION`, so a change
//!   to a kind's bytes that does not bump its version (and so keeps every cached
//!   key pointing at the old bytes) fails here. When this test fails after a
//!   deliberate change, bump the kind's `VERSION` and update its line below.

use crate::common::*;
use serde_json::Value as Json;

/// 24 users over 18 items in three categories, with exact duplicates, re-sent
/// events, a blank user and missing prices for the data steps to work on.
/// Deterministic (a small LCG).
fn events_csv() -> String {
    let mut s = String::from("user_id,item_id,event,price,ts\n");
    let mut x: u64 = 11;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    };
    let events = ["view", "click", "purchase"];
    let mut t = 1_700_000_000u64;
    for u in 0..24 {
        for _ in 0..8 {
            let item = if next(100) < 80 {
                3 * next(6) + u % 3
            } else {
                next(18)
            };
            t += 60;
            let e = events[next(3) as usize];
            let price = if next(5) == 0 {
                String::new()
            } else {
                format!("{}.5", item + 1)
            };
            let line = format!("u{u:02},i{item:02},{e},{price},{t}\n");
            s.push_str(&line);
            if next(10) == 0 {
                s.push_str(&line);
            }
        }
    }
    s.push_str(",i01,view,2.5,1700100000\n");
    s
}

fn items_csv() -> String {
    let mut s = String::from("item_id,category,price\n");
    for i in 0..18 {
        s.push_str(&format!("i{i:02},{},{}.5\n", ["a", "b", "c"][i % 3], i + 1));
    }
    s
}

const WORKFLOW: &str = r#"
name: kinds
inputs:
  events: data/events.csv
  items: data/items.csv
steps:
  clean:
    uses: clean
    inputs: { table: inputs.events }
    with:
      required: [user_id]
      types: { price: float, ts: timestamp }
  dedupe:
    uses: dedupe
    inputs: { table: clean.table }
    with: { key: [user_id, item_id, event], window: { column: ts, seconds: 1 } }
  impute:
    uses: impute
    inputs: { table: dedupe.table, side: inputs.items }
    with:
      columns: { price: [{ lookup: { key: item_id } }, median] }
  graph-build:
    uses: graph-build
    inputs: { interactions: inputs.events, items: inputs.items }
    with:
      weights: { view: 1, click: 2, purchase: 5 }
      split: { valid: 0.2, test: 0.2, by: time }
  train-gnnr:
    uses: train-gnnr
    inputs: { graph: graph-build.graph }
    with: { dim: 8, layers: 2, epochs: 3, batch: 64, patience: 0, seed: 3, threads: 1 }
  evaluate:
    uses: evaluate
    inputs: { model: train-gnnr.model, graph: graph-build.graph }
    with: { k: [5], baselines: [popularity, item-knn] }
  publish:
    uses: publish
    inputs: { model: train-gnnr.model, report: evaluate.report }
    with: { name: kinds, gate: { "ndcg@5": ">= 0" } }
"#;

/// (kind, the step's output slot) for each kind in the workflow.
const OUTPUTS: &[(&str, &str)] = &[
    ("clean", "table"),
    ("clean", "rejects"),
    ("dedupe", "table"),
    ("impute", "table"),
    ("graph-build", "graph"),
    ("train-gnnr", "model"),
    ("evaluate", "report"),
    ("publish", "release"),
];

fn workspace() -> Ws {
    let ws = Ws::new();
    ws.write("workflows/data/events.csv", &events_csv());
    ws.write("workflows/data/items.csv", &items_csv());
    ws.write("workflows/kinds.yaml", WORKFLOW);
    ws
}

/// (kind, slot) → the output's content hash, from a `run --json` result.
fn hashes(j: &Json) -> Vec<(String, String)> {
    OUTPUTS
        .iter()
        .map(|(kind, slot)| {
            let h = step(j, kind)["outputs"][slot]
                .as_str()
                .unwrap_or_else(|| panic!("{kind}.{slot} has no output: {j}"))
                .to_owned();
            (format!("{kind}.{slot}"), h)
        })
        .collect()
}

/// Same inputs, same params, same bytes: for every kind, computing it again
/// writes exactly what it wrote the first time.
#[test]
fn every_kind_writes_the_same_bytes_when_computed_again() {
    let ws = workspace();
    let (code, first) = ws.run_json("workflows/kinds.yaml", &[]);
    assert_eq!(code, 0, "{first}");
    let (code, again) = ws.run_json("workflows/kinds.yaml", &["--force-all"]);
    assert_eq!(code, 0, "{again}");
    for (kind, _) in OUTPUTS {
        assert_eq!(
            status_of(&again, kind),
            "succeeded",
            "{kind} was not recomputed"
        );
    }
    let (a, b) = (hashes(&first), hashes(&again));
    let differ: Vec<&str> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.1 != y.1)
        .map(|(x, _)| x.0.as_str())
        .collect();
    assert!(
        differ.is_empty(),
        "computed twice, these differ: {differ:?}"
    );

    // In another workspace too (another path, another run history).
    let other = workspace();
    let (code, third) = other.run_json("workflows/kinds.yaml", &[]);
    assert_eq!(code, 0, "{third}");
    assert_eq!(hashes(&third), a);
}

/// (kind, VERSION, output slot, hash of that output on the fixed input).
/// A kind's line also moves, without a new VERSION, when what it is given
/// moves: `publish`'s release holds the model, `evaluate`'s report its config.
#[rustfmt::skip]
const GOLDEN: &[(&str, u32, &str, &str)] = &[
    ("clean", 1, "table", "218fa31e3aa3e18446baef40e57d21aa20c90563e7e799d3475ab8ca5fbb76be"),
    ("clean", 1, "rejects", "e231da27f17c3bee7fbc38fb44bff7afb8268e5ac8d04d35dc5a000156be3c46"),
    ("dedupe", 1, "table", "ce1bbd908f1df0aa56b495efa7bdd41112fe244f4376914e10debf0d4f0a0c76"),
    ("impute", 1, "table", "dc20de498cd63cef84c2ad5511634ae531e74e6e2e6e1b4ed9f79aa33b664479"),
    ("graph-build", 1, "graph", "1e25bedbc62e7af6d5134ca866c1533f8656cb0ce5cc37fdc729cf3fb4c121ae"),
    ("train-gnnr", 5, "model", "475a893c9a8928abaed584b708d7f148aa44c0f186bdf6147ae39bb677b976ef"),
    ("evaluate", 7, "report", "d394e9ae5fee3b6e75ff09fbaecde9bfb899d65a131f43b3f2e1e8cc37da9210"),
    ("publish", 3, "release", "ea3dd5938c1229e1f8e5dea8370ab6d5f8313963cb569eb8a426809b41aa0215"),
];

/// A kind's bytes change only with its version.
#[test]
fn each_kind_version_pins_its_output_bytes() {
    let ws = workspace();
    let (code, j) = ws.run_json("workflows/kinds.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    let mut now = String::new();
    for (kind, slot) in OUTPUTS {
        let version = pedigree::steps::builtin::lookup(kind)
            .expect("a built-in kind")
            .version;
        let hash = step(&j, kind)["outputs"][slot].as_str().unwrap_or("?");
        now.push_str(&format!(
            "    (\"{kind}\", {version}, \"{slot}\", \"{hash}\"),\n"
        ));
    }
    let mut pinned = String::new();
    for (kind, version, slot, hash) in GOLDEN {
        pinned.push_str(&format!(
            "    (\"{kind}\", {version}, \"{slot}\", \"{hash}\"),\n"
        ));
    }
    assert_eq!(
        pinned, now,
        "a built-in kind's output bytes or version moved. If the bytes changed, bump \
         that kind's VERSION (src/steps/builtin/) and then update GOLDEN with the lines \
         above; a version bump alone also needs its line updated"
    );
}
