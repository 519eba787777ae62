//! The shipped examples: the plugins' own tests and the README's quickstart workflow.

use std::path::Path;
use std::process::Command;

use crate::common::BIN;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__" || name.to_string_lossy().ends_with(".lock") {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn example_plugins_pass_their_own_tests() {
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "plugins",
            "-p",
            "test_*.py",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 is needed for the example plugins");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("OK"), "{err}");
}

#[test]
fn quickstart_workflow_runs_on_the_bundled_data() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ws = tempfile::tempdir().unwrap();
    copy_dir(&repo.join("workflows"), &ws.path().join("workflows"));
    copy_dir(&repo.join("plugins"), &ws.path().join("plugins"));
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(ws.path())
            .output()
            .unwrap()
    };

    let out = run(&["run", "workflows/quickstart.yaml", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["status"], "succeeded");

    // The facts recorded are the plugins' real work on the committed data.
    let show = run(&["show", "latest", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let steps = s["steps"].as_array().unwrap();
    let clean = steps
        .iter()
        .find(|x| x["step_run"]["step"] == "clean")
        .unwrap();
    let rows_in = clean["facets"]["rows_in"].as_u64().unwrap();
    let rows_out = clean["facets"]["rows_out"].as_u64().unwrap();
    let events =
        std::fs::read_to_string(repo.join("workflows/data/quickstart/events.csv")).unwrap();
    assert_eq!(
        rows_in as usize,
        events.lines().count() - 1,
        "every data row was read"
    );
    assert!(rows_out < rows_in, "the faulty rows were rejected");

    let rank = steps
        .iter()
        .find(|x| x["step_run"]["step"] == "rank")
        .unwrap();
    let report = rank["outputs"]["report"].as_str().unwrap();
    let text = std::fs::read_to_string(
        ws.path()
            .join(".pedigree/objects")
            .join(&report[..2])
            .join(&report[2..]),
    )
    .unwrap();
    assert!(text.starts_with('#'), "a Markdown report: {text}");

    // The second run is a no-op.
    let out = run(&["run", "workflows/quickstart.yaml", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "cached"),
        "{j}"
    );
}
