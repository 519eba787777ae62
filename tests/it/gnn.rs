//! GNN-R end to end: the real binary runs graph-build → train-gnnr → evaluate →
//! publish on a tiny generated event log in a temp workspace, then `pedigree
//! recommend` reads the release back.

use crate::common::*;
use serde_json::Value as Json;

/// 30 users in three taste groups over 24 items in three categories: each user
/// mostly picks items of its group's category. Deterministic (a small LCG).
pub(crate) fn events_csv() -> String {
    let mut s = String::from("user_id,item_id,event,ts\n");
    let mut x: u64 = 7;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    };
    let events = ["view", "click", "purchase"];
    let mut t = 1_700_000_000u64;
    for u in 0..30 {
        for _ in 0..10 {
            let item = if next(100) < 85 {
                3 * next(8) + u % 3
            } else {
                next(24)
            };
            t += 60;
            let e = events[next(3) as usize];
            s.push_str(&format!("u{u:02},i{item:02},{e},{t}\n"));
        }
    }
    s
}

pub(crate) fn items_csv() -> String {
    let mut s = String::from("item_id,category\n");
    for i in 0..24 {
        s.push_str(&format!("i{i:02},{}\n", ["a", "b", "c"][i % 3]));
    }
    s
}

pub(crate) const WORKFLOW: &str = r#"
name: gnn
inputs:
  events: data/events.csv
  items: data/items.csv
params:
  gate: "beats popularity"
  seed: 1
steps:
  graph:
    uses: graph-build
    inputs: { interactions: inputs.events, items: inputs.items }
    with:
      weights: { view: 1, click: 2, purchase: 5 }
      split: { valid: 0.2, test: 0.2, by: time }
      unseen: drop
  train:
    uses: train-gnnr
    inputs: { graph: graph.graph }
    with: { dim: 8, layers: 2, epochs: 4, batch: 64, lr: 0.01, patience: 0, seed: "${params.seed}", threads: 1 }
  evaluate:
    uses: evaluate
    inputs: { model: train.model, graph: graph.graph }
    with: { k: [5, 10], baselines: [popularity] }
  publish:
    uses: publish
    inputs: { model: train.model, report: evaluate.report }
    with:
      name: tiny
      gate: { "ndcg@10": "${params.gate}" }
"#;

fn workspace() -> Ws {
    let ws = Ws::new();
    ws.write("workflows/data/events.csv", &events_csv());
    ws.write("workflows/data/items.csv", &items_csv());
    ws.write("workflows/gnn.yaml", WORKFLOW);
    ws
}

fn versions(ws: &Ws) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(ws.path().join("registry/tiny"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn json_file(ws: &Ws, rel: &str) -> Json {
    serde_json::from_str(&ws.read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn graph_train_evaluate_publish_end_to_end() {
    let ws = workspace();
    let (code, j) = ws.run_json("workflows/gnn.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    assert!(statuses(&j).iter().all(|(_, s)| s == "succeeded"), "{j}");
    let model_hash = step(&j, "train")["outputs"]["model"]
        .as_str()
        .unwrap()
        .to_owned();

    // The release: weights, report, card and lineage, naming the model's hash.
    assert_eq!(versions(&ws), ["1"]);
    // Its database row keeps time as every other `*_at` column does (RFC 3339), not
    // Unix seconds.
    let created_at: String = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(ws.path().join(".pedigree/lineage.db"))
                .read_only(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            sqlx::query_scalar("SELECT created_at FROM releases")
                .fetch_one(&pool)
                .await
                .unwrap()
        });
    assert!(
        pedigree::util::time::parse_time(&created_at).is_some(),
        "releases.created_at = {created_at:?}"
    );
    for f in [
        "weights.bpk",
        "model.json",
        "report.json",
        "report.md",
        "MODEL_CARD.md",
        "lineage.json",
        "release.json",
    ] {
        assert!(
            ws.path().join("registry/tiny/1").join(f).is_file(),
            "registry/tiny/1/{f} is missing"
        );
    }
    let release = json_file(&ws, "registry/tiny/1/release.json");
    assert_eq!(release["model_hash"], model_hash.as_str());
    // The model learned the taste groups: on the test split its NDCG@10 is a real
    // number above popularity's, as the gate (`beats popularity`, like the flagship's)
    // demands and the release records.
    let report = json_file(&ws, "registry/tiny/1/report.json");
    let ndcg_of = |name: &str| -> f64 {
        report["results"]
            .as_array()
            .expect("results in report.json")
            .iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["metrics"]["ndcg@10"].as_f64())
            .unwrap_or_else(|| panic!("no ndcg@10 for `{name}` in {report}"))
    };
    let (model, popularity) = (ndcg_of("gnn-r"), ndcg_of("popularity"));
    assert!(model.is_finite() && model > 0.0, "{report}");
    assert!(popularity.is_finite(), "{report}");
    assert!(
        model > popularity,
        "GNN-R {model} does not beat popularity {popularity}"
    );
    assert_eq!(release["metrics"]["ndcg@10"].as_f64(), Some(model));
    let gates = release["gates"].as_array().expect("gates in release.json");
    assert!(
        gates.len() == 1
            && gates[0]
                .as_str()
                .is_some_and(|g| g.contains("beats popularity")),
        "{release}"
    );
    assert_eq!(release["version"], 1);
    let lineage = json_file(&ws, "registry/tiny/1/lineage.json");
    let sources: Vec<&str> = lineage["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["path"].as_str())
        .collect();
    assert!(
        sources.iter().any(|p| p.ends_with("data/events.csv")),
        "the lineage reaches the raw event log: {lineage}"
    );
    let card = ws.read("registry/tiny/1/MODEL_CARD.md");
    assert!(
        card.contains("popularity") && card.contains("events.csv"),
        "{card}"
    );

    // Metrics per epoch are in the lineage database.
    let show = ws.run(&["show", "latest", "--json"]);
    assert!(show.status.success(), "{}", stderr(&show));
    let shown: Json = serde_json::from_slice(&show.stdout).unwrap();
    let train = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_run"]["step"] == "train")
        .expect("train in show");
    let epochs_of = |key: &str| -> Vec<i64> {
        let mut v: Vec<i64> = train["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["key"] == key)
            .filter_map(|m| m["step"].as_i64())
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(epochs_of("loss"), [1, 2, 3, 4], "{train}");
    assert_eq!(epochs_of("valid_ndcg@20"), [1, 2, 3, 4], "{train}");
    assert_eq!(epochs_of("epoch_seconds"), [1, 2, 3, 4], "{train}");
    let evaluate = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_run"]["step"] == "evaluate")
        .unwrap();
    assert!(
        evaluate["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["key"] == "ndcg@10"),
        "{evaluate}"
    );

    // Retraining from scratch gives the same model bytes, so publishing again
    // names the existing version instead of creating a second one.
    let (code, j2) = ws.run_json("workflows/gnn.yaml", &["--force-all"]);
    assert_eq!(code, 0, "{j2}");
    assert_eq!(status_of(&j2, "train"), "succeeded");
    assert_eq!(step(&j2, "train")["outputs"]["model"], model_hash.as_str());
    assert_eq!(status_of(&j2, "publish"), "succeeded");
    assert_eq!(versions(&ws), ["1"], "same model hash, same version");

    // Another model (another seed) is a new version.
    let (code, j3) = ws.run_json("workflows/gnn.yaml", &["--set", "params.seed=2"]);
    assert_eq!(code, 0, "{j3}");
    assert_ne!(step(&j3, "train")["outputs"]["model"], model_hash.as_str());
    assert_eq!(versions(&ws), ["1", "2"]);
    let r2 = json_file(&ws, "registry/tiny/2/release.json");
    assert_eq!(r2["model_hash"], step(&j3, "train")["outputs"]["model"]);
}

#[test]
fn a_failing_gate_fails_publish_with_the_numbers() {
    let ws = workspace();
    let (code, j) = ws.run_json("workflows/gnn.yaml", &["--set", "params.gate=>= 2"]);
    assert_ne!(code, 0, "{j}");
    assert_eq!(j["status"], "failed");
    assert_eq!(status_of(&j, "train"), "succeeded");
    assert_eq!(status_of(&j, "evaluate"), "succeeded");
    assert_eq!(status_of(&j, "publish"), "failed");
    let err = step(&j, "publish")["error"].as_str().unwrap();
    assert!(
        err.contains("does not pass its gates: ndcg@10 0.") && err.contains(">= 2"),
        "{err}"
    );
    assert!(versions(&ws).is_empty(), "nothing is published");

    // Lowering the gate publishes the model already trained (nothing retrains).
    let (code, j2) = ws.run_json("workflows/gnn.yaml", &[]);
    assert_eq!(code, 0, "{j2}");
    assert_eq!(status_of(&j2, "train"), "cached");
    assert_eq!(status_of(&j2, "publish"), "succeeded");
    assert_eq!(versions(&ws), ["1"]);
}

#[test]
fn recommend_explains_items_through_attention_and_lineage() {
    let ws = workspace();
    let (code, j) = ws.run_json("workflows/gnn.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    let out = ws.run(&[
        "recommend",
        "--release",
        "tiny",
        "--user",
        "u04",
        "-k",
        "5",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["release"]["version"], 1);
    let recs = r["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 5, "{r}");
    // What people read, pinned whole (the model is bit-identical on every machine).
    snapshot!(
        ws,
        "recommend_u04",
        &["recommend", "--release", "tiny", "--user", "u04", "-k", "2"]
    );

    // Never an item the user already has; reasons are the user's own past items,
    // each found in the raw event log at rows that really hold (user, item).
    let events = events_csv();
    let lines: Vec<&str> = events.lines().skip(1).collect();
    let had: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("u04,"))
        .map(|l| &l[4..7])
        .collect();
    let mut scores = Vec::new();
    for rec in recs {
        let item = rec["item"].as_str().unwrap();
        assert!(!had.contains(&item), "{item} was already seen: {rec}");
        scores.push(rec["score"].as_f64().unwrap());
        let because = rec["because"].as_array().unwrap();
        assert!(!because.is_empty(), "{rec}");
        let mut last = f64::INFINITY;
        for b in because {
            let past = b["item"].as_str().unwrap();
            assert!(had.contains(&past), "{past} is not u04's: {rec}");
            let c = b["contribution"].as_f64().unwrap();
            assert!(c <= last, "reasons are sorted by contribution: {rec}");
            last = c;
            assert!(b["attention"].as_f64().unwrap() > 0.0);
            let raw = b["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["table"].as_str().unwrap().ends_with("data/events.csv"))
                .unwrap_or_else(|| panic!("no raw rows for {past}: {rec}"));
            for row in raw["rows"].as_array().unwrap() {
                let line = lines[row.as_u64().unwrap() as usize - 1];
                assert!(
                    line.starts_with(&format!("u04,{past},")),
                    "row {row}: {line}"
                );
            }
        }
    }
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // The human form names the item, its reasons and the file rows.
    let text = ws.run(&[
        "recommend",
        "--release",
        "tiny@1",
        "--user",
        "u04",
        "-k",
        "2",
    ]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = stdout(&text);
    assert!(
        text.contains("tiny@1") && text.contains("because of i"),
        "{text}"
    );
    assert!(text.contains("data/events.csv: row"), "{text}");

    // Unknown users and releases are usage errors that say what exists.
    let bad = ws.run(&["recommend", "--release", "tiny", "--user", "nobody"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("user `nobody` is not in the training data"),
        "{}",
        stderr(&bad)
    );
    let bad = ws.run(&["recommend", "--release", "nope", "--user", "u04"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("no release `nope`"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn gc_keeps_the_whole_ancestry_of_a_release() {
    let ws = workspace();
    let (code, j) = ws.run_json("workflows/gnn.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    gc_removes_nothing_the_release_names(&ws, "registry/tiny/1/lineage.json");
    // The release still explains a recommendation down to the input rows.
    let user = "u04";
    let rec = ws.run(&["recommend", "--release", "tiny", "--user", user, "-k", "2"]);
    assert!(rec.status.success(), "{}", stderr(&rec));
    assert!(String::from_utf8_lossy(&rec.stdout).contains("events.csv: row"));
}

/// A release published to another folder than `registry/` is kept as well: gc
/// reads releases from the lineage database, not from one folder.
#[test]
fn gc_keeps_the_ancestry_of_a_release_outside_the_default_registry() {
    let ws = workspace();
    let (code, j) = ws.run_json("workflows/gnn.yaml", &["--set", "publish.registry=models"]);
    assert_eq!(code, 0, "{j}");
    gc_removes_nothing_the_release_names(&ws, "models/tiny/1/lineage.json");
    let args = ["recommend", "--release", "tiny", "--user", "u04", "-k", "2"];
    let missing = ws.run(&args);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no release `tiny`"),
        "{}",
        stderr(&missing)
    );
    let rec = ws.run(&[&args[..], &["--registry", "models"]].concat());
    assert!(rec.status.success(), "{}", stderr(&rec));
    assert!(String::from_utf8_lossy(&rec.stdout).contains("events.csv: row"));
}

/// With no lock file and no grace period, so only releases pin anything: gc
/// removes some objects, and none that the release's lineage manifest names.
fn gc_removes_nothing_the_release_names(ws: &Ws, lineage_json: &str) {
    // No lock file and no grace period: only the release pins anything.
    for e in std::fs::read_dir(ws.path().join("workflows"))
        .unwrap()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "lock") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let lineage = ws.read(lineage_json);
    assert!(lineage.contains("events.csv"), "{lineage_json}: {lineage}");
    let out = ws.run(&["gc", "--grace", "0", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let g: Json = serde_json::from_slice(&out.stdout).unwrap();
    let removed = g["removed"].as_array().unwrap();
    assert!(
        !removed.is_empty(),
        "nothing to collect, nothing tested: {g}"
    );
    assert!(
        removed
            .iter()
            .all(|h| !lineage.contains(h.as_str().unwrap())),
        "gc removed an object the release's lineage names: {g}"
    );
}

/// `publish`'s `registry:` must stay inside the workspace, or be an absolute folder
/// `PEDIGREE_REGISTRY_ROOTS` names: `/tmp/x` or `../..` used to write anywhere
/// (`Path::join` with an absolute path replaces the base). Refused when the
/// workflow is validated, before anything runs, with the param and the file.
#[test]
fn publish_refuses_a_registry_outside_the_workspace() {
    let ws = workspace();
    let outside = tempfile::tempdir().unwrap();
    let abs = outside.path().join("reg");
    for bad in [abs.to_str().unwrap(), "../escape", "models/../../escape"] {
        let out = ws.run(&[
            "run",
            "workflows/gnn.yaml",
            "--set",
            &format!("publish.registry={bad}"),
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("param `registry` of step `publish`"), "{err}");
        assert!(err.contains("workflows/gnn.yaml"), "{err}");
        assert!(err.contains("PEDIGREE_REGISTRY_ROOTS"), "{err}");
    }
    assert!(!abs.exists(), "nothing is written outside the workspace");
    assert!(!ws.path().parent().unwrap().join("escape").exists());
    assert!(!ws.path().join("registry").exists(), "nothing ran");

    // An absolute folder the environment names is a registry.
    let (code, j) = {
        let out = ws
            .cmd(&[
                "run",
                "workflows/gnn.yaml",
                "--json",
                "--set",
                &format!("publish.registry={}", abs.display()),
            ])
            .env("PEDIGREE_REGISTRY_ROOTS", outside.path())
            .output()
            .unwrap();
        let j: Json = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!("{}", stderr(&out));
        });
        (out.status.code(), j)
    };
    assert_eq!(code, Some(0), "{j}");
    assert!(abs.join("tiny/1/release.json").is_file());
}

/// A registry that leaves the workspace through a symlink is refused by the step
/// itself (the workflow's text cannot show it), and nothing is written there.
#[test]
fn publish_refuses_a_registry_that_escapes_through_a_symlink() {
    let ws = workspace();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), ws.path().join("linked")).unwrap();
    let (code, j) = ws.run_json(
        "workflows/gnn.yaml",
        &["--set", "publish.registry=linked/reg"],
    );
    assert_ne!(code, 0, "{j}");
    assert_eq!(status_of(&j, "publish"), "failed");
    let err = step(&j, "publish")["error"].as_str().unwrap_or_default();
    assert!(err.contains("through a symlink"), "{err}");
    assert!(
        std::fs::read_dir(outside.path()).unwrap().next().is_none(),
        "nothing is written outside the workspace"
    );
}

/// `recommend --release` checks the name as `publish` does: never a path.
#[test]
fn recommend_refuses_a_release_name_that_is_a_path() {
    let ws = workspace();
    let (code, j) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    for bad in ["../tiny", "..", "a/b@1"] {
        let out = ws.run(&["recommend", "--release", bad, "--user", "u04"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            stderr(&out).contains("is not a release name"),
            "{}",
            stderr(&out)
        );
    }
    let out = ws.run(&[
        "recommend",
        "--release",
        "tiny",
        "--user",
        "u04",
        "--registry",
        "/etc",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("outside the workspace"),
        "{}",
        stderr(&out)
    );
}
