//! The human output of each command, pinned whole (exit code, stdout, stderr) through
//! filters for paths, hashes, times, durations, host and user, so a change to what
//! people read shows up in review as a snapshot diff.

use crate::common::Ws;

#[test]
fn dag_text_dot_and_mermaid() {
    let ws = Ws::new();
    snapshot!(ws, "dag_text", &["dag", "workflows/chain.yaml"]);
    snapshot!(
        ws,
        "dag_mermaid",
        &["dag", "workflows/chain.yaml", "--format", "mermaid"]
    );
}

#[test]
fn gc_and_verify_on_a_fresh_run() {
    let ws = Ws::new();
    let (code, _) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    snapshot!(ws, "gc_dry_run", &["gc", "--dry-run"]);
    snapshot!(ws, "verify_clean", &["verify"]);
    // One byte of an output changed in the store: verify names it and what to do.
    let obj = std::fs::read_dir(ws.path().join(".pedigree/objects"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|e| e.path())
        .min()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&obj, bytes).unwrap();
    snapshot!(ws, "verify_corrupt", &["verify"]);
}

#[test]
fn run_status_why_show_and_lineage() {
    let ws = Ws::new();
    snapshot!(
        ws,
        "status_before_any_run",
        &["status", "workflows/chain.yaml"]
    );
    snapshot!(
        ws,
        "run_cold",
        &["run", "workflows/chain.yaml", "--jobs", "1"]
    );
    snapshot!(
        ws,
        "run_cached",
        &["run", "workflows/chain.yaml", "--jobs", "1"]
    );
    snapshot!(ws, "status_fresh", &["status", "workflows/chain.yaml"]);
    ws.write("workflows/data/text.txt", "hello\nthere\n");
    snapshot!(
        ws,
        "status_input_changed",
        &["status", "workflows/chain.yaml"]
    );
    snapshot!(
        ws,
        "why_input_changed",
        &["why", "workflows/chain.yaml", "up"]
    );
    snapshot!(
        ws,
        "run_after_input_change",
        &[
            "run",
            "workflows/chain.yaml",
            "--jobs",
            "1",
            "--set",
            "params.suffix=?"
        ]
    );
    snapshot!(ws, "show_latest", &["show", "latest"]);
    snapshot!(ws, "runs", &["runs"]);
    snapshot!(ws, "lineage_up", &["lineage", "2/both.out", "--up"]);
    snapshot!(
        ws,
        "lineage_down",
        &["lineage", "workflows/data/text.txt", "--down"]
    );
}
