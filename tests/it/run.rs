//! The engine end to end: the real binary on real workflows in temp workspaces.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn first_run_executes_everything_and_second_run_reuses_it() {
    let ws = Ws::new();
    let (code, j) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["status"], "succeeded");
    assert_eq!(
        statuses(&j),
        [
            ("up".into(), "succeeded".into()),
            ("cnt".into(), "succeeded".into()),
            ("both".into(), "succeeded".into())
        ]
    );
    let up = step(&j, "up");
    assert_eq!(up["key"].as_str().unwrap().len(), 64);
    let out = up["outputs"]["out"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.object(out)).unwrap(),
        "HELLO\nWORLD\n!"
    );
    // `up` first; `cnt` and `both` both wait only for it and run at the same time, so
    // either may finish writing its mark first.
    let mut marks = ws.marks();
    assert_eq!(marks.first().map(String::as_str), Some("up"), "{marks:?}");
    marks[1..].sort();
    assert_eq!(marks, ["up", "both", "cnt"]);

    ws.clear_marks();
    let (code, j2) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    assert!(statuses(&j2).iter().all(|(_, s)| s == "cached"), "{j2}");
    assert!(ws.marks().is_empty(), "nothing executes on a no-op rerun");
    assert_eq!(step(&j2, "up")["key"], up["key"]);
    assert_eq!(step(&j2, "up")["outputs"], up["outputs"]);
    assert_ne!(j2["run_id"], j["run_id"]);
}

#[test]
fn a_param_change_reruns_the_step_and_its_dependants_only_if_outputs_change() {
    let ws = Ws::new();
    ws.run_json("workflows/chain.yaml", &[]);
    ws.clear_marks();
    let (code, j) = ws.run_json("workflows/chain.yaml", &["--set", "params.suffix=?"]);
    assert_eq!(code, 0);
    // `up`'s output changed, so both readers rerun; `cnt` counts lines, still 2.
    assert_eq!(status_of(&j, "up"), "succeeded");
    assert_eq!(status_of(&j, "cnt"), "succeeded");
    assert_eq!(status_of(&j, "both"), "succeeded");
    assert!(
        step(&j, "up")["reason"]
            .as_str()
            .unwrap()
            .contains("params.suffix: \"!\" → \"?\""),
        "{j}"
    );
}

#[test]
fn early_cutoff_stops_propagation_when_outputs_are_identical() {
    let ws = Ws::new();
    // `cnt` reads `up` which reads text; a second count step reads cnt's output.
    ws.write(
        "workflows/cut.yaml",
        "name: cut\ninputs: { text: data/text.txt }\nsteps:\n  n:\n    plugin: count\n    inputs: { src: inputs.text }\n  up:\n    plugin: upper\n    inputs: { src: n.n }\n",
    );
    ws.run_json("workflows/cut.yaml", &[]);
    ws.clear_marks();
    // Same number of lines, different content: `n` reruns, produces the same bytes, `up` is cached.
    ws.write("workflows/data/text.txt", "other\nlines\n");
    let (code, j) = ws.run_json("workflows/cut.yaml", &[]);
    assert_eq!(code, 0);
    assert_eq!(status_of(&j, "n"), "succeeded");
    assert_eq!(status_of(&j, "up"), "cached");
    assert_eq!(ws.marks(), ["n"]);
}

#[test]
fn every_key_ingredient_causes_a_miss() {
    let ws = Ws::new();
    ws.run_json("workflows/chain.yaml", &[]);

    // Input content.
    ws.write("workflows/data/text.txt", "hello\nthere\n");
    let (_, j) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(status_of(&j, "up"), "succeeded");
    assert!(
        step(&j, "up")["reason"]
            .as_str()
            .unwrap()
            .starts_with("input `src`:"),
        "{j}"
    );

    // A file of the plugin folder.
    ws.write(
        "plugins/count/run.sh",
        &format!("{}\n# changed\n", ws.read("plugins/count/run.sh")),
    );
    let (_, j) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(status_of(&j, "up"), "cached");
    assert_eq!(status_of(&j, "cnt"), "succeeded");
    assert!(
        step(&j, "cnt")["reason"]
            .as_str()
            .unwrap()
            .contains("plugin file `run.sh`"),
        "{j}"
    );

    // A declared env var: set, then empty, then unset are three keys.
    let mut keys = Vec::new();
    for value in [Some("a"), Some(""), None] {
        let mut c = ws.cmd(&["run", "workflows/chain.yaml", "--json"]);
        match value {
            Some(v) => c.env("CHAIN_FLAVOUR", v),
            None => c.env_remove("CHAIN_FLAVOUR"),
        };
        let out = c.output().unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // Unset is how the earlier runs saw it, so only that one is cached.
        let expected = if value.is_some() {
            "succeeded"
        } else {
            "cached"
        };
        assert_eq!(status_of(&j, "up"), expected, "env {value:?}: {j}");
        keys.push(step(&j, "up")["key"].clone());
    }
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2], "unset must differ from empty");
    assert_ne!(keys[0], keys[2]);
}

#[test]
fn comments_and_whitespace_in_the_workflow_change_nothing() {
    let ws = Ws::new();
    ws.run_json("workflows/chain.yaml", &[]);
    let edited = format!(
        "# a comment at the top\n\n{}\n\n# trailing\n",
        CHAIN.replace("suffix: \"!\"", "suffix:    \"!\"   # why not")
    );
    ws.write("workflows/chain.yaml", &edited);
    let (code, j) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    assert!(statuses(&j).iter().all(|(_, s)| s == "cached"), "{j}");
}

#[test]
fn failure_skips_dependants_then_fix_reuses_what_succeeded() {
    let ws = Ws::new();
    ws.write(
        "workflows/f.yaml",
        "name: f\ninputs: { text: data/text.txt }\nsteps:\n  a:\n    plugin: count\n    inputs: { src: inputs.text }\n  b:\n    plugin: upper\n    inputs: { src: a.n }\n    with: { fail: true }\n  c:\n    plugin: count\n    inputs: { src: b.out }\n",
    );
    let (code, j) = ws.run_json("workflows/f.yaml", &[]);
    assert_eq!(code, 1);
    assert_eq!(j["status"], "failed");
    assert_eq!(status_of(&j, "a"), "succeeded");
    assert_eq!(status_of(&j, "b"), "failed");
    assert_eq!(status_of(&j, "c"), "skipped");
    assert!(
        step(&j, "c")["reason"]
            .as_str()
            .unwrap()
            .contains("upstream `b` failed"),
        "{j}"
    );
    assert!(
        step(&j, "b")["error"]
            .as_str()
            .unwrap()
            .contains("upper: asked to fail"),
        "stderr tail is reported: {j}"
    );
    assert!(
        !ws.path().join("workflows/f.lock").exists(),
        "no lock file after a failed run"
    );

    // The human output names the failure and where to read more.
    let out = ws.run(&["run", "workflows/f.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error: step `b` failed: plugin `upper` exited with code 1"),
        "{err}"
    );
    assert!(err.contains("pedigree log"), "{err}");

    ws.write(
        "workflows/f.yaml",
        &ws.read("workflows/f.yaml")
            .replace("fail: true", "fail: false"),
    );
    ws.clear_marks();
    let (code, j) = ws.run_json("workflows/f.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(
        statuses(&j),
        [
            ("a".into(), "cached".into()),
            ("b".into(), "succeeded".into()),
            ("c".into(), "succeeded".into())
        ]
    );
    assert_eq!(ws.marks(), ["b", "c"]);
    assert!(ws.path().join("workflows/f.lock").exists());
}

#[test]
fn a_step_that_exits_zero_without_its_output_fails_and_is_not_cached() {
    let ws = Ws::new();
    ws.write(
        "workflows/m.yaml",
        "name: m\ninputs: { text: data/text.txt }\nsteps:\n  a:\n    plugin: upper\n    inputs: { src: inputs.text }\n    with: { skip_output: true }\n",
    );
    let (code, j) = ws.run_json("workflows/m.yaml", &[]);
    assert_eq!(code, 1);
    assert!(
        step(&j, "a")["error"]
            .as_str()
            .unwrap()
            .contains("did not write output `out`"),
        "{j}"
    );
    let (code, j) = ws.run_json("workflows/m.yaml", &[]);
    assert_eq!(code, 1);
    assert_eq!(status_of(&j, "a"), "failed", "a failure is never cached");
}

#[test]
fn why_and_status_name_the_changed_ingredient() {
    let ws = Ws::new();
    let (_, ran) = ws.run_json("workflows/chain.yaml", &[]);
    let out = ws.run(&["why", "workflows/chain.yaml", "up", "--set", "up.suffix=??"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Changed since then:"), "{text}");
    assert!(text.contains("params.suffix: \"!\" → \"??\""), "{text}");

    let out = ws.run(&[
        "status",
        "workflows/chain.yaml",
        "--json",
        "--set",
        "up.suffix=??",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["stale", "stale", "stale"]);
    assert!(
        j["steps"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("upstream `up` will run")
    );

    // Without the override every step is fresh: one line per step, in order, each
    // `STATE NAME KEY ...` with the key the run recorded.
    let out = ws.run(&["status", "workflows/chain.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().take(3).collect())
        .collect();
    let expected: Vec<Vec<&str>> = ["up", "cnt", "both"]
        .iter()
        .map(|&name| {
            vec![
                "fresh",
                name,
                &step(&ran, name)["key"].as_str().unwrap()[..12],
            ]
        })
        .collect();
    assert_eq!(rows, expected, "{text}");

    // --dry-run says the same and records nothing.
    let before = ws.run(&["runs", "--json"]);
    let out = ws.run(&[
        "run",
        "workflows/chain.yaml",
        "--dry-run",
        "--set",
        "up.suffix=??",
    ]);
    assert!(
        stdout(&out).contains("3 of 3 steps would run"),
        "{}",
        stdout(&out)
    );
    assert_eq!(ws.run(&["runs", "--json"]).stdout, before.stdout);
}

#[test]
fn only_from_and_force_select_steps() {
    let ws = Ws::new();
    ws.run_json("workflows/chain.yaml", &[]);
    ws.clear_marks();
    let (_, j) = ws.run_json("workflows/chain.yaml", &["--force", "up"]);
    assert_eq!(status_of(&j, "up"), "succeeded");
    assert_eq!(step(&j, "up")["reason"], "forced with --force");
    // Same output bytes: downstream stays cached.
    assert_eq!(status_of(&j, "cnt"), "cached");
    assert_eq!(ws.marks(), ["up"]);

    ws.clear_marks();
    let (_, j) = ws.run_json(
        "workflows/chain.yaml",
        &["--only", "cnt", "--set", "params.suffix=x"],
    );
    assert_eq!(
        statuses(&j),
        [
            ("up".into(), "succeeded".into()),
            ("cnt".into(), "succeeded".into())
        ]
    );

    // --from needs its upstream in the cache.
    let (code, j) = ws.run_json(
        "workflows/chain.yaml",
        &["--from", "cnt", "--set", "params.suffix=new"],
    );
    assert_eq!(code, 1);
    assert!(
        step(&j, "up")["error"]
            .as_str()
            .unwrap()
            .contains("outside --only/--from"),
        "{j}"
    );

    let out = ws.run(&["run", "workflows/chain.yaml", "--only", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no step `nope`"), "{}", stderr(&out));
}

#[test]
fn lock_file_records_keys_and_outputs_and_is_stable() {
    let ws = Ws::new();
    let (_, j) = ws.run_json("workflows/chain.yaml", &[]);
    let lock = ws.read("workflows/chain.lock");
    assert!(
        lock.contains(step(&j, "up")["key"].as_str().unwrap()),
        "{lock}"
    );
    assert!(lock.contains(step(&j, "both")["outputs"]["out"].as_str().unwrap()));
    let order: Vec<&str> = lock
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .collect();
    assert_eq!(order, ["  up:", "  cnt:", "  both:"], "{lock}");
    // A no-op run leaves the file alone: same bytes, and not rewritten. The lock file
    // is written by rename, so a rewrite gives a new inode whatever the mtime
    // granularity; the mtime catches an in-place rewrite.
    let path = ws.path().join("workflows/chain.lock");
    let identity = |what: &str| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{what}: `{}`: {e}", path.display()));
        (m.dev(), m.ino(), m.modified().unwrap())
    };
    let before = identity("after the first run");
    std::thread::sleep(Duration::from_millis(20));
    let (code, again) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{again}");
    assert!(
        statuses(&again).iter().all(|(_, s)| s == "cached"),
        "{again}"
    );
    assert_eq!(
        identity("after the no-op run"),
        before,
        "the lock file was rewritten by a run that changed nothing"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), lock);
}

#[test]
fn lineage_goes_up_to_raw_inputs_and_down_to_final_outputs() {
    let ws = Ws::new();
    let (_, j) = ws.run_json("workflows/chain.yaml", &[]);
    let run = j["run_id"].to_string();
    let out = ws.run(&["lineage", &format!("{run}/both.out"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let raw = l["raw_inputs"].as_object().unwrap();
    assert_eq!(raw.len(), 1);
    assert_eq!(
        raw.values().next().unwrap()["path"],
        "workflows/data/text.txt"
    );
    let steps: Vec<&str> = l["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"both") && steps.contains(&"up"), "{l}");

    let out = ws.run(&["lineage", "workflows/data/text.txt", "--down", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A diamond (text → up → both, and text → both) lists each edge once.
    let mut edges: Vec<String> = l["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}|{}|{}|{}",
                e["from_hash"], e["step_run_id"], e["slot_from"], e["to_hash"]
            )
        })
        .collect();
    let n = edges.len();
    edges.sort();
    edges.dedup();
    assert_eq!(edges.len(), n, "{l}");
    let reached: Vec<&str> = l["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_hash"].as_str().unwrap())
        .collect();
    assert!(
        reached.contains(&step(&j, "cnt")["outputs"]["n"].as_str().unwrap()),
        "{l}"
    );

    // Human form, and a hash prefix as REF.
    let prefix = &step(&j, "up")["outputs"]["out"].as_str().unwrap()[..8];
    let out = ws.run(&["lineage", prefix]);
    assert!(
        stdout(&out).contains("made by step `up`"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("workflows/data/text.txt"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn show_log_runs_and_diff_report_the_record() {
    let ws = Ws::new();
    let (_, a) = ws.run_json("workflows/chain.yaml", &[]);
    let (_, b) = ws.run_json("workflows/chain.yaml", &["--set", "params.suffix=?"]);
    let (ra, rb) = (a["run_id"].to_string(), b["run_id"].to_string());
    let out = ws.run(&["show", &rb]);
    let text = stdout(&out);
    assert!(
        text.contains("up [succeeded]")
            && text.contains("metric loss = 0.5")
            && text.contains("facet rows"),
        "{text}"
    );
    let out = ws.run(&["diff", &ra, &rb, "--json"]);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let whats: Vec<&str> = d["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["what"].as_str().unwrap())
        .collect();
    assert!(whats.contains(&"workflow params"), "{whats:?}");
    assert!(whats.contains(&"step `up` params.suffix"), "{whats:?}");
    assert!(whats.contains(&"step `up` output `out`"), "{whats:?}");
    let out = ws.run(&["runs", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r.as_array().unwrap().len(), 2);
    assert_eq!(r[0]["ran"], 3);
}

#[test]
fn corrupt_and_deleted_objects_are_detected_and_repaired() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new();
    let (_, j) = ws.run_json("workflows/chain.yaml", &[]);
    let up_out = step(&j, "up")["outputs"]["out"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = ws.object(&up_out);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[0] ^= 0x20; // same size, one bit flipped
    std::fs::write(&p, bytes).unwrap();

    let out = ws.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("object {up_out} is corrupt")),
        "{}",
        stdout(&out)
    );

    ws.clear_marks();
    let out = ws.run(&["run", "workflows/chain.yaml", "--json"]);
    let j2: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        stderr(&out).contains("is damaged"),
        "a warning names the damage: {}",
        stderr(&out)
    );
    assert_eq!(
        status_of(&j2, "up"),
        "succeeded",
        "the damaged hit became a rerun"
    );
    assert_eq!(
        status_of(&j2, "cnt"),
        "cached",
        "the repaired output has the same hash"
    );
    assert_eq!(ws.marks(), ["up"]);
    assert_eq!(
        ws.run(&["verify"]).status.code(),
        Some(0),
        "{}",
        stdout(&ws.run(&["verify"]))
    );

    // A deleted object: verify names it, and the next run recomputes it.
    std::fs::remove_file(ws.object(&up_out)).unwrap();
    let out = ws.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("is missing from the store"),
        "{}",
        stdout(&out)
    );
    let (_, j3) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(status_of(&j3, "up"), "succeeded");
    assert_eq!(ws.run(&["verify"]).status.code(), Some(0));
}

#[test]
fn a_file_rewritten_within_the_same_second_is_not_a_false_hit() {
    let ws = Ws::new();
    ws.run_json("workflows/chain.yaml", &[]);
    // Same size, new content, immediately: the stat cache must not trust the old hash.
    for content in ["HELLO\nworld\n", "hello\nWORLD\n", "jello\nworld\n"] {
        ws.write("workflows/data/text.txt", content);
        let (_, j) = ws.run_json("workflows/chain.yaml", &[]);
        let out = step(&j, "up")["outputs"]["out"]
            .as_str()
            .unwrap()
            .to_owned();
        let expected = format!("{}!", content.to_uppercase());
        assert_eq!(std::fs::read_to_string(ws.object(&out)).unwrap(), expected);
    }
}

#[test]
fn two_concurrent_runs_compute_each_step_once() {
    let ws = Ws::new();
    ws.write(
        "workflows/slow.yaml",
        "name: slow\ninputs: { text: data/text.txt }\nsteps:\n  a:\n    plugin: upper\n    inputs: { src: inputs.text }\n    with: { sleep: 0.5 }\n  b:\n    plugin: count\n    inputs: { src: a.out }\n",
    );
    let children: Vec<_> = (0..2)
        .map(|_| {
            ws.cmd(&["run", "workflows/slow.yaml", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let results: Vec<serde_json::Value> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            serde_json::from_slice(&o.stdout).unwrap()
        })
        .collect();
    let mut marks = ws.marks();
    marks.sort();
    assert_eq!(marks, ["a", "b"], "each step executed exactly once");
    assert_eq!(
        step(&results[0], "b")["outputs"],
        step(&results[1], "b")["outputs"]
    );
    assert_eq!(ws.run(&["verify"]).status.code(), Some(0));
}

/// Live processes whose command line contains `needle` (as `pgrep -f` would find
/// them), read from `/proc` so the check needs nothing installed; zombies count as gone.
fn processes_running(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z "));
            cmdline.contains(needle) && !zombie
        })
        .collect()
}

#[test]
fn sigkill_mid_step_leaves_a_consistent_store_and_the_rerun_finishes() {
    let ws = Ws::new();
    ws.write(
        "workflows/k.yaml",
        "name: k\ninputs: { text: data/text.txt }\nsteps:\n  a:\n    plugin: count\n    inputs: { src: inputs.text }\n  b:\n    plugin: upper\n    inputs: { src: a.n }\n    with: { sleep: 60 }\n",
    );
    let mut child = ws
        .cmd(&["run", "workflows/k.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until `b` has started (its mark appears), then kill the orchestrator outright.
    let start = Instant::now();
    while !ws.marks().contains(&"b".to_owned()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "step b never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The plugin process (sleeping in `b`) is found before the kill, so not finding
    // it afterwards means it is gone, not that the search is blind.
    let plugin = format!("{}/plugins/upper", ws.path().display());
    let found = processes_running(&plugin);
    assert!(
        !found.is_empty(),
        "step b's process `{plugin}` is not found in /proc"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // It does not outlive the orchestrator. Generous: it would sleep for a minute.
    let start = Instant::now();
    loop {
        let left = processes_running(&plugin);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the step's processes {left:?} survived the orchestrator"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(
        ws.run(&["verify"]).status.code(),
        Some(0),
        "{}",
        stdout(&ws.run(&["verify"]))
    );
    ws.write(
        "workflows/k.yaml",
        &ws.read("workflows/k.yaml")
            .replace("sleep: 60", "sleep: 0.1"),
    );
    ws.clear_marks();
    let (code, j) = ws.run_json("workflows/k.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(status_of(&j, "a"), "cached", "completed work is reused");
    assert_eq!(status_of(&j, "b"), "succeeded");
    let runs: serde_json::Value =
        serde_json::from_slice(&ws.run(&["runs", "--json"]).stdout).unwrap();
    assert_eq!(
        runs[1]["status"], "interrupted",
        "the killed run is recorded as interrupted: {runs}"
    );
}

#[test]
fn sigint_interrupts_running_steps_and_exits_130() {
    let ws = Ws::new();
    ws.write(
        "workflows/i.yaml",
        "name: i\ninputs: { text: data/text.txt }\nsteps:\n  a:\n    plugin: upper\n    inputs: { src: inputs.text }\n    with: { sleep: 20 }\n  b:\n    plugin: count\n    inputs: { src: a.out }\n",
    );
    let child = ws
        .cmd(&["run", "workflows/i.yaml", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !ws.marks().contains(&"a".to_owned()) {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: sending SIGINT to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the step was stopped, not waited for"
    );
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["status"], "interrupted");
    assert_eq!(status_of(&j, "a"), "interrupted");
    assert_eq!(status_of(&j, "b"), "skipped");
}

#[test]
fn gc_keeps_what_runs_and_lock_files_need() {
    let ws = Ws::new();
    let (_, a) = ws.run_json("workflows/chain.yaml", &[]);
    let (code, second) = ws.run_json("workflows/chain.yaml", &["--set", "params.suffix=?"]);
    assert_eq!(code, 0, "{second}");
    // With no grace period, only what the lock file names (the last complete run) is kept.
    let out = ws.run(&["gc", "--grace", "0", "--dry-run", "--json"]);
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let removed: Vec<&str> = g["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let first_up = step(&a, "up")["outputs"]["out"].as_str().unwrap();
    assert!(removed.contains(&first_up), "{g}");
    assert!(ws.object(first_up).exists(), "dry run removes nothing");
    // The lock file names the second run's outputs, and gc keeps every one of them.
    let lock_path = ws.path().join("workflows/chain.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .unwrap_or_else(|e| panic!("`{}`: {e}", lock_path.display()));
    let pinned: Vec<&str> = second["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .flat_map(|s| s["outputs"].as_object().expect("outputs").values())
        .map(|h| h.as_str().expect("output hash"))
        .collect();
    assert_eq!(pinned.len(), 3, "{second}");
    for h in &pinned {
        assert!(lock.contains(h), "the lock file names {h}: {lock}");
        assert!(
            !removed.contains(h),
            "gc removes {h}, which the lock file pins: {g}"
        );
    }
    assert!(
        removed.iter().all(|h| !lock.contains(h)),
        "lock-file objects are kept"
    );
    // With the default grace everything is recent and kept.
    let out = ws.run(&["gc", "--json"]);
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["removed"].as_array().unwrap().len(), 0);
}

#[test]
fn a_plugin_that_never_exits_is_stopped_at_its_timeout() {
    let ws = Ws::new();
    ws.plugin(
        "hang",
        "command: [sh, \"${plugin}/run.sh\"]\noutputs: { out: {} }\ntimeout: 0.5\n",
        "trap '' TERM\nsleep 60\n",
    );
    let wf = ws.one_step("hang", "");
    let start = std::time::Instant::now();
    let (code, j) = ws.run_json(&wf, &[]);
    assert_eq!(code, 1);
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(
        step(&j, "hang")["error"]
            .as_str()
            .unwrap()
            .contains("longer than its timeout"),
        "{j}"
    );
}

#[test]
fn a_step_at_its_timeout_gets_sigterm_first_and_can_clean_up() {
    let ws = Ws::new();
    ws.plugin(
        "tidy",
        "command: [sh, \"${plugin}/run.sh\"]\noutputs: { out: {} }\nenv: [TEST_MARK_DIR]\ntimeout: 0.5\nsandbox: false\n",
        "trap 'echo cleaned > \"$TEST_MARK_DIR/term\"; exit 1' TERM\nsleep 60 &\nwait\n",
    );
    let wf = ws.one_step("tidy", "");
    let (code, _) = ws.run_json(&wf, &[]);
    let ended = std::time::SystemTime::now();
    assert_eq!(code, 1);
    assert_eq!(ws.read("marks/term"), "cleaned\n", "the step saw SIGTERM");
    // The step ended in its TERM handler, so pedigree did not wait out the 3 s grace
    // (`steps::exec::KILL_GRACE`) for a SIGKILL: from the handler's mark to the end of
    // the run is under the grace (waiting for it would take at least the grace, minus
    // the handler's few microseconds). Measured from the mark, not the start, so a
    // slow machine's start-up does not count.
    let termed = std::fs::metadata(ws.path().join("marks/term"))
        .and_then(|m| m.modified())
        .expect("the TERM handler's mark");
    let after_term = ended.duration_since(termed).unwrap_or_default();
    assert!(
        after_term < Duration::from_millis(2500),
        "{after_term:?} from SIGTERM to the end: pedigree waited for the grace period"
    );
}

/// On a terminal, `pedigree run` draws a step's `pedigree:progress` lines as its bar
/// in the status line, with the step's secrets redacted like everywhere else.
/// `script` gives the run a pseudo-terminal.
#[test]
fn a_steps_progress_lines_become_its_bar_on_a_terminal() {
    let ws = Ws::new();
    ws.plugin(
        "slow",
        "command: [sh, \"${plugin}/run.sh\"]\noutputs: { out: {} }\nsecrets: [PROGRESS_TOKEN]\n",
        "for i in 1 2 3; do\n  echo \"pedigree:progress $i/3 chunk $i with $PROGRESS_TOKEN\" >&2\n  sleep 0.3\ndone\necho ok > \"$PEDIGREE_OUTPUT_OUT\"\n",
    );
    let wf = ws.one_step("slow", "");
    let line = format!("'{BIN}' --workspace '{}' run {wf}", ws.path().display());
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(ws.path())
        .env("PROGRESS_TOKEN", "tok-5f3a9")
        .env_remove("PEDIGREE_WORKSPACE")
        .output()
        .expect("run `script` (util-linux)");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    for want in [
        "running: slow 1/3 ███░░░░░░░ chunk 1 with [secret PROGRESS_TOKEN]",
        "running: slow 2/3 ██████░░░░ chunk 2 with [secret PROGRESS_TOKEN]",
        "done    slow",
    ] {
        assert!(screen.contains(want), "no `{want}` in:\n{screen}");
    }
    assert!(
        !screen.contains("tok-5f3a9"),
        "the secret leaked:\n{screen}"
    );
    // Without a terminal the same run prints step events only.
    let plain = ws
        .cmd(&["run", &wf, "--force-all"])
        .env("PROGRESS_TOKEN", "tok-5f3a9")
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert!(
        stderr(&plain).contains("done    slow"),
        "{}",
        stderr(&plain)
    );
    assert!(!stderr(&plain).contains("1/3"), "{}", stderr(&plain));
}

/// `split`: writes a folder output with `report.md` (the input upper-cased) and `other.txt`.
const SPLIT_YAML: &str = "command: [sh, \"${plugin}/run.sh\"]\ninputs: { src: {} }\noutputs: { parts: { dir: true } }\nenv: [TEST_MARK_DIR]\nsandbox: false\n";
const SPLIT_SH: &str = r#"set -eu
if [ -n "${TEST_MARK_DIR:-}" ]; then echo "$PEDIGREE_STEP" >> "$TEST_MARK_DIR/runs.log"; fi
mkdir -p "$PEDIGREE_OUTPUT_PARTS"
tr a-z A-Z < "$PEDIGREE_INPUT_SRC" > "$PEDIGREE_OUTPUT_PARTS/report.md"
echo other > "$PEDIGREE_OUTPUT_PARTS/other.txt"
"#;

#[test]
fn status_and_run_agree_on_a_damaged_member_of_a_folder_output() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new();
    ws.plugin("split", SPLIT_YAML, SPLIT_SH);
    ws.write(
        "workflows/split.yaml",
        "name: split\ninputs: { text: data/text.txt }\nsteps:\n  split:\n    plugin: split\n    inputs: { src: inputs.text }\n",
    );
    let (code, j) = ws.run_json("workflows/split.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    let tree_hash = step(&j, "split")["outputs"]["parts"]
        .as_str()
        .unwrap()
        .to_owned();
    let tree: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.object(&tree_hash)).unwrap()).unwrap();
    let member = tree["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "report.md")
        .expect("report.md in the tree");
    let p = ws.object(member["hash"].as_str().unwrap());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[0] ^= 0x20; // same size, one bit flipped
    std::fs::write(&p, bytes).unwrap();

    let out = ws.run(&["status", "workflows/split.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let state = &s["steps"][0];
    assert_eq!(state["state"], "stale", "status sees the damage: {s}");
    let reason = state["reason"].as_str().unwrap();
    assert!(
        reason.contains("damaged") && reason.contains("report.md"),
        "{reason}"
    );
    assert!(p.exists(), "status changes nothing in the store");
    let dry = ws.run(&["run", "workflows/split.yaml", "--dry-run"]);
    assert!(
        stdout(&dry).contains("1 of 1 steps would run"),
        "{}",
        stdout(&dry)
    );

    ws.clear_marks();
    let (code, j2) = ws.run_json("workflows/split.yaml", &[]);
    assert_eq!(code, 0, "{j2}");
    assert_eq!(status_of(&j2, "split"), "succeeded", "run recomputes it");
    assert_eq!(ws.marks(), ["split"]);
    let out = ws.run(&["status", "workflows/split.yaml"]);
    assert!(stdout(&out).starts_with("fresh"), "{}", stdout(&out));
}

/// Make a named pipe at `rel` in the workspace.
fn mkfifo(ws: &Ws, rel: &str) {
    let p = ws.path().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path in our temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// Wait for `child` at most `limit`; kill it and fail if it is still running.
fn wait_at_most(
    mut child: std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_fifo_input_is_refused_at_once_naming_the_input() {
    let ws = Ws::new();
    mkfifo(&ws, "workflows/data/events.pipe");
    ws.write(
        "workflows/f.yaml",
        "name: f\ninputs: { events: data/events.pipe }\nsteps:\n  up:\n    plugin: upper\n    inputs: { src: inputs.events }\n",
    );
    for args in [["run", "workflows/f.yaml"], ["status", "workflows/f.yaml"]] {
        let child = ws
            .cmd(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let o = wait_at_most(child, Duration::from_secs(15), args[0]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("input `events`") && err.contains("events.pipe"),
            "names the input and its file: {err}"
        );
        assert!(err.contains("named pipe (FIFO)"), "{err}");
        assert!(err.contains("= help:"), "says what to do: {err}");
    }
}

#[test]
fn sigterm_ends_a_run_waiting_for_the_workspace_lock() {
    let ws = Ws::new();
    let (code, _) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    // Hold the lock as `pedigree gc` does, so the run waits for it.
    let lock = std::fs::File::options()
        .write(true)
        .open(ws.path().join(".pedigree/locks/workspace.lock"))
        .unwrap();
    lock.lock().unwrap();
    let child = ws
        .cmd(&["run", "workflows/chain.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending SIGTERM to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = wait_at_most(child, Duration::from_secs(8), "run after SIGTERM");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    drop(lock);
}

#[test]
fn read_commands_never_migrate_or_write_the_database() {
    let ws = Ws::new();
    let (code, j) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    let db_path = ws.path().join(".pedigree/lineage.db");
    // Take the database back to the migration before the newest, as an older
    // pedigree would have left it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let applied = || {
        rt.block_on(async {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db_path)
                .read_only(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            let v: Vec<i64> =
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            pool.close().await;
            v
        })
    };
    let newest = *applied().last().unwrap();
    rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&db_path);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        for sql in [
            "DELETE FROM _sqlx_migrations WHERE version = 20261207000000",
            "DROP TABLE openlineage_outbox",
            "DROP INDEX runs_uuid",
            "DROP INDEX step_runs_uuid",
            "ALTER TABLE runs DROP COLUMN uuid",
            "ALTER TABLE runs DROP COLUMN openlineage",
            "ALTER TABLE step_runs DROP COLUMN uuid",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    });
    assert_eq!(
        newest, 20261207000000,
        "the newest migration changed: update this test"
    );
    let before = applied();
    let digest = || {
        ["lineage.db", "lineage.db-wal"]
            .iter()
            .map(|f| std::fs::read(ws.path().join(".pedigree").join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let bytes = digest();
    let up = step(&j, "up")["outputs"]["out"]
        .as_str()
        .unwrap()
        .to_owned();
    for args in [
        vec!["runs"],
        vec!["show", "latest"],
        vec!["log", "1", "up"],
        vec!["diff", "1", "1"],
        vec!["lineage", "1/both.out"],
        vec!["lineage", "workflows/data/text.txt", "--down"],
        vec!["lineage", &up[..8]],
        vec!["tui", "--once"],
    ] {
        let out = ws.run(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(
            applied(),
            before,
            "`{}` migrated the database",
            args.join(" ")
        );
        assert!(bytes == digest(), "`{}` wrote the database", args.join(" "));
    }
}

#[test]
fn every_command_that_takes_a_run_accepts_a_number_latest_and_latest_of_a_workflow() {
    // Regression: `show latest` worked but `lineage latest/STEP.OUTPUT` was refused.
    let ws = Ws::new();
    let (code, j) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    // A second workflow's run is the newest: `latest` and `latest:chain` differ.
    ws.write(
        "workflows/other.yaml",
        "name: other\ninputs: { text: data/text.txt }\nsteps:\n  up:\n    plugin: upper\n    inputs: { src: inputs.text }\n",
    );
    let (code, other) = ws.run_json("workflows/other.yaml", &[]);
    assert_eq!(code, 0, "{other}");
    let both = step(&j, "both")["outputs"]["out"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_up = step(&other, "up")["outputs"]["out"]
        .as_str()
        .unwrap()
        .to_owned();
    for (reference, hash) in [
        ("1/both.out", &both),
        ("latest:chain/both.out", &both),
        ("latest/up.out", &other_up),
    ] {
        let out = ws.run(&["lineage", reference, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{reference}: {}", stderr(&out));
        let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(l["artifact"], hash.as_str(), "{reference}");
        let out = ws.run(&["tui", "--once", "--artifact", reference]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "tui {reference}: {}",
            stderr(&out)
        );
    }
    for (run, id) in [
        ("1", 1),
        ("latest", 2),
        ("latest:chain", 1),
        ("latest:other", 2),
    ] {
        let out = ws.run(&["show", run, "--json"]);
        assert_eq!(out.status.code(), Some(0), "show {run}: {}", stderr(&out));
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["run"]["id"], id, "show {run}");
        let out = ws.run(&["log", run, "up"]);
        assert_eq!(out.status.code(), Some(0), "log {run}: {}", stderr(&out));
        let out = ws.run(&["diff", run, "1"]);
        assert_eq!(out.status.code(), Some(0), "diff {run}: {}", stderr(&out));
    }
    let out = ws.run(&["show", "latest:nothing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("workflow `nothing` has no runs"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["lineage", "7/both.out"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("there is no run 7"),
        "{}",
        stderr(&out)
    );
}

/// A workflow shaped like the flagship's ancestry: `items` feeds both `impute`
/// and `graph`, and `graph` reads `impute`'s output beside it.
const SHARED_INPUT: &str = r#"
name: shared
inputs:
  events: data/events.txt
  items: data/items.txt
steps:
  impute:
    plugin: join
    inputs: { a: inputs.events, b: inputs.items }
  graph:
    plugin: join
    inputs: { a: impute.out, b: inputs.items }
  train:
    plugin: upper
    inputs: { src: graph.out }
"#;

/// `text` with every 12-digit short hash of `names` replaced by its name.
fn name_hashes(text: &str, names: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (name, hash) in names {
        out = out.replace(&hash[..12], &format!("[{name}]"));
    }
    out
}

#[test]
fn lineage_prints_each_ancestor_under_the_artifact_it_made_and_a_shared_one_once() {
    // Regression: the subtree of `graph`'s first input (`impute`'s table) was printed
    // after, and so visually under, its sibling `items`, and `items` was traced twice.
    let ws = Ws::new();
    ws.write("workflows/data/events.txt", "click\nview\n");
    ws.write("workflows/data/items.txt", "i1\ni2\n");
    ws.write("workflows/shared.yaml", SHARED_INPUT);
    let (code, j) = ws.run_json("workflows/shared.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    let out_of = |s: &str, slot: &str| step(&j, s)["outputs"][slot].as_str().unwrap().to_owned();
    let (table, graph, model) = (
        out_of("impute", "out"),
        out_of("graph", "out"),
        out_of("train", "out"),
    );
    let shown: serde_json::Value =
        serde_json::from_slice(&ws.run(&["show", "1", "--json"]).stdout).unwrap();
    let impute_inputs = &shown["steps"][0]["inputs"];
    let events = impute_inputs["a"].as_str().unwrap().to_owned();
    let items = impute_inputs["b"].as_str().unwrap().to_owned();
    let names = [
        ("events", events.as_str()),
        ("items", items.as_str()),
        ("table", table.as_str()),
        ("graph", graph.as_str()),
        ("model", model.as_str()),
    ];
    let out = ws.run(&["lineage", "1/train.out", "--up"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ids: Vec<i64> = ["impute", "graph", "train"]
        .iter()
        .map(|s| step(&j, s)["step_run_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        name_hashes(&stdout(&out), &names),
        format!(
            "[model] (table)
  made by step `train` (run 1, step run {train})
    facet rows: {{\"in\":1,\"out\":1}}
    ← src: [graph] (file)
      made by step `graph` (run 1, step run {graph})
        ← a: [table] (file)
          made by step `impute` (run 1, step run {impute})
            ← a: [events] (file) = input `events` `workflows/data/events.txt`
            ← b: [items] (file) = input `items` `workflows/data/items.txt`
        ← b: [items] (file) = input `items` `workflows/data/items.txt` (see above)
",
            impute = ids[0],
            graph = ids[1],
            train = ids[2],
        )
    );
}
