//! The crash campaign: kill `pedigree run` at every named point of the commit path
//! and at random moments, then check that nothing was lost or corrupted, that no
//! step process outlived the orchestrator, and that the next run reuses what was
//! committed, finishes the rest and stores exactly the outputs of an uninterrupted
//! run. Two workflows: shell plugins with a folder output, and the built-in data
//! steps (clean → dedupe → impute), whose Parquet writes the kills land inside.
//!
//! `PEDIGREE_CRASH_TRIALS` sets the number of random-moment trials (default 12;
//! run with 1000 for the full campaign: `PEDIGREE_CRASH_TRIALS=1000 cargo test
//! --release --test crash -- --nocapture`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value as Json;

/// A four-step workflow with a folder output, so trees are in the commit path too.
const WF: &str = r#"
name: crashy
inputs:
  text: data/text.txt
steps:
  a:
    plugin: upper
    inputs: { src: inputs.text }
    with: { sleep: 0.02 }
  b:
    plugin: count
    inputs: { src: a.out }
  c:
    plugin: split
    inputs: { src: a.out }
  d:
    plugin: join
    inputs: { a: b.n, b: inputs.text }
"#;

/// `split`: one file per line of `src`, in a folder output.
const SPLIT_YAML: &str =
    "command: [sh, \"${plugin}/run.sh\"]\ninputs: { src: {} }\noutputs: { parts: { dir: true } }\n";
const SPLIT_SH: &str = "set -eu\nmkdir -p \"$PEDIGREE_OUTPUT_PARTS\"\ni=0\nwhile IFS= read -r line; do i=$((i+1)); printf '%s\\n' \"$line\" > \"$PEDIGREE_OUTPUT_PARTS/$i.txt\"; done < \"$PEDIGREE_INPUT_SRC\"\n";

/// Which workflow a trial runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    /// `crashy`: four shell-plugin steps.
    Plugins,
    /// `data`: the built-in clean → dedupe → impute on a small generated log.
    Builtins,
}

impl Flavour {
    fn workflow(self) -> &'static str {
        match self {
            Flavour::Plugins => "workflows/crashy.yaml",
            Flavour::Builtins => "workflows/data.yaml",
        }
    }

    /// The input file a warm-cache trial touches.
    fn input(self) -> &'static str {
        match self {
            Flavour::Plugins => "workflows/data/text.txt",
            Flavour::Builtins => "workflows/data/log/items.csv",
        }
    }

    fn workspace(self) -> Ws {
        let ws = Ws::new();
        match self {
            Flavour::Plugins => {
                ws.plugin("split", SPLIT_YAML, SPLIT_SH);
                ws.write("workflows/crashy.yaml", WF);
            }
            Flavour::Builtins => {
                let log = data_log();
                for f in ["events.csv", "items.csv"] {
                    let to = ws.path().join("workflows/data/log").join(f);
                    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                    std::fs::copy(log.path().join(f), to).unwrap();
                }
                let wf = std::fs::read_to_string(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/ecommerce-data.yaml"),
                )
                .unwrap()
                .replace("data/sample/", "data/log/");
                ws.write("workflows/data.yaml", &wf);
            }
        }
        ws
    }

    /// Every step's outputs after an uninterrupted cold run, and how long it took;
    /// computed once.
    fn reference(self) -> &'static (BTreeMap<String, Json>, Duration) {
        static PLUGINS: OnceLock<(BTreeMap<String, Json>, Duration)> = OnceLock::new();
        static BUILTINS: OnceLock<(BTreeMap<String, Json>, Duration)> = OnceLock::new();
        let cell = match self {
            Flavour::Plugins => &PLUGINS,
            Flavour::Builtins => &BUILTINS,
        };
        cell.get_or_init(|| {
            let ws = self.workspace();
            let t = Instant::now();
            let (code, j) = ws.run_json(self.workflow(), &[]);
            let took = t.elapsed();
            assert_eq!(code, 0, "the reference run failed: {j}");
            let outputs = outputs_of(&j);
            // Every step of the workflow, each with at least one output: an empty or
            // partial reference would make every comparison against it vacuous.
            let expected: &[&str] = match self {
                Flavour::Plugins => &["a", "b", "c", "d"],
                Flavour::Builtins => &["clean", "dedupe", "impute"],
            };
            assert_eq!(
                outputs.keys().map(String::as_str).collect::<Vec<_>>(),
                expected,
                "the reference run's steps: {j}"
            );
            assert!(
                outputs
                    .values()
                    .all(|o| o.as_object().is_some_and(|o| !o.is_empty())),
                "a reference step without outputs: {j}"
            );
            (outputs, took)
        })
    }

    fn reference_outputs(self) -> &'static BTreeMap<String, Json> {
        &self.reference().0
    }
}

/// A small event log from `pedigree sample-data`, generated once per test binary.
fn data_log() -> &'static tempfile::TempDir {
    static LOG: OnceLock<tempfile::TempDir> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(BIN)
            .args(["sample-data", "--users", "80", "--items", "60", "--events"])
            .args(["6000", "--seed", "11", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        dir
    })
}

/// step → its outputs (slot → hash), from `run --json`; fails on any other shape.
fn outputs_of(j: &Json) -> BTreeMap<String, Json> {
    j["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("`run --json` has no `steps` array: {j}"))
        .iter()
        .map(|s| {
            let name = s["name"]
                .as_str()
                .unwrap_or_else(|| panic!("a step without a name in `run --json`: {s}"));
            (name.to_owned(), s["outputs"].clone())
        })
        .collect()
}

/// `pedigree ARGS` must succeed and print JSON; fails with its output otherwise.
fn json_of(ws: &Ws, args: &[&str]) -> Json {
    let out = ws.run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "`pedigree {}` failed:\n{}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`pedigree {}` printed no JSON ({e}):\n{}{}",
            args.join(" "),
            stdout(&out),
            stderr(&out)
        )
    })
}

/// Wait until no process has its working folder inside the workspace: a step
/// process that outlived its orchestrator would.
fn assert_no_process_left_in(ws: &Ws, what: &str) {
    let root = std::fs::canonicalize(ws.path()).unwrap();
    let start = Instant::now();
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .filter(|e| {
                std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&root))
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if left.is_empty() {
            return;
        }
        // Generous: only a process that stays catches this, not a slow teardown.
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: processes {left:?} outlived the orchestrator"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the lineage database says about the latest run, step by step.
fn steps_of_run(ws: &Ws, run: &str) -> BTreeMap<String, (String, usize)> {
    let j = json_of(ws, &["show", run, "--json"]);
    let mut m = BTreeMap::new();
    let steps = j["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("`show {run} --json` has no `steps` array: {j}"));
    for s in steps {
        let field = |v: &Json, what: &str| -> String {
            v.as_str()
                .unwrap_or_else(|| panic!("`show {run} --json`: no {what} in {s}"))
                .to_owned()
        };
        let name = field(&s["step_run"]["step"], "step name");
        let status = field(&s["step_run"]["status"], "step status");
        let outputs = s["outputs"]
            .as_object()
            .unwrap_or_else(|| panic!("`show {run} --json`: no outputs object in {s}"))
            .len();
        m.insert(name, (status, outputs));
    }
    m
}

/// The invariants after a kill, then a rerun that must finish and reuse the
/// steps that the killed run committed.
fn check_after_kill(ws: &Ws, flavour: Flavour, what: &str) {
    assert_no_process_left_in(ws, what);
    let wf = flavour.workflow();
    // Killed before the workspace existed: nothing to check but the rerun.
    if !ws.path().join(".pedigree/lineage.db").exists() {
        let (code, j) = ws.run_json(wf, &[]);
        assert_eq!(code, 0, "{what}: the rerun after the kill failed: {j}");
        assert_eq!(&outputs_of(&j), flavour.reference_outputs(), "{what}");
        return;
    }
    let verify = ws.run(&["verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{what}: verify failed:\n{}{}",
        stdout(&verify),
        stderr(&verify)
    );

    // A kill can land after the database exists but before the run is recorded, so
    // the list may be empty; but it must be a list.
    let runs = json_of(ws, &["runs", "--json"]);
    let killed = runs
        .as_array()
        .unwrap_or_else(|| panic!("{what}: `runs --json` is not a list: {runs}"))
        .first()
        .map(|r| {
            assert!(r["id"].is_u64(), "{what}: a run without an id: {r}");
            r["id"].to_string()
        });
    let committed: Vec<String> = match &killed {
        Some(id) => steps_of_run(ws, id)
            .into_iter()
            .filter(|(_, (status, _))| status == "succeeded" || status == "cached")
            .map(|(name, (_, outputs))| {
                assert!(
                    outputs >= 1,
                    "{what}: step `{name}` recorded as done without outputs"
                );
                name
            })
            .collect(),
        None => Vec::new(),
    };

    let (code, j) = ws.run_json(wf, &[]);
    assert_eq!(code, 0, "{what}: the rerun after the kill failed: {j}");
    for name in &committed {
        assert_eq!(
            status_of(&j, name),
            "cached",
            "{what}: `{name}` was committed before the kill but recomputed: {j}"
        );
    }
    // The outputs are right, not just present: those of an uninterrupted run.
    assert_eq!(
        &outputs_of(&j),
        flavour.reference_outputs(),
        "{what}: the outputs differ from an uninterrupted run's"
    );
    if flavour == Flavour::Plugins {
        let a = step(&j, "a")["outputs"]["out"].as_str().unwrap();
        assert_eq!(
            std::fs::read_to_string(ws.object(a)).unwrap(),
            "HELLO\nWORLD\n"
        );
    }
    let verify = ws.run(&["verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{what}: verify after the rerun:\n{}",
        stdout(&verify)
    );
    if let Some(id) = killed {
        let after = json_of(ws, &["show", &id, "--json"]);
        let status = after["run"]["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: `show {id} --json` has no run status: {after}"));
        assert_ne!(
            status, "running",
            "{what}: the killed run is still `running`"
        );
    }
}

#[test]
fn killed_at_every_named_point_loses_nothing() {
    for &point in pedigree::failpoint::POINTS {
        if point == "gc-removing" {
            continue;
        }
        let flavour = if point.starts_with("builtin-") {
            Flavour::Builtins
        } else {
            Flavour::Plugins
        };
        let ws = flavour.workspace();
        let out = ws
            .cmd(&["run", flavour.workflow()])
            .env("PEDIGREE_FAILPOINT", point)
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL),
            "the process did not reach the point `{point}`"
        );
        check_after_kill(&ws, flavour, point);
    }
}

#[test]
fn killed_during_gc_leaves_a_consistent_store() {
    let ws = Flavour::Plugins.workspace();
    ws.run_json("workflows/crashy.yaml", &[]);
    ws.write("workflows/data/text.txt", "other\ntext\n");
    ws.run_json("workflows/crashy.yaml", &[]);
    let out = ws
        .cmd(&["gc", "--grace", "0"])
        .env("PEDIGREE_FAILPOINT", "gc-removing")
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGKILL)
    );
    let verify = ws.run(&["verify"]);
    // gc only removes what nothing references; a kill in the middle leaves nothing dangling.
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
    let (code, _) = ws.run_json("workflows/crashy.yaml", &[]);
    assert_eq!(code, 0);
}

/// xorshift: a reproducible spread of kill times without a dependency.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn random_kills(flavour: Flavour) {
    let trials: usize = std::env::var("PEDIGREE_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    // Kill times spread over an uninterrupted cold run's duration, and a little past it.
    let span = (flavour.reference().1.as_micros() as u64 * 6 / 5).max(1);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ span;
    let started = Instant::now();
    let mut killed_mid_run = 0;
    for trial in 0..trials {
        let ws = flavour.workspace();
        // Every third trial starts from a warm cache with one touched input, so kills
        // also land in cache hits and partial reruns.
        if trial % 3 == 2 {
            ws.run_json(flavour.workflow(), &[]);
            let input = ws.read(flavour.input());
            ws.write(flavour.input(), &format!("{input}\n"));
            ws.write(flavour.input(), &input);
        }
        let delay = Duration::from_micros(next(&mut seed) % span);
        let mut child = ws
            .cmd(&["run", flavour.workflow()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if !finished {
            killed_mid_run += 1;
        }
        check_after_kill(
            &ws,
            flavour,
            &format!("{flavour:?} trial {trial} (kill after {delay:?})"),
        );
    }
    eprintln!(
        "crash campaign ({flavour:?}): {trials} trials, {killed_mid_run} killed mid-run, 0 violations, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        trials < 4 || killed_mid_run > 0,
        "no trial killed a run in progress; the delays are too long"
    );
}

#[test]
fn killed_at_random_moments_loses_nothing() {
    random_kills(Flavour::Plugins);
}

#[test]
fn killed_at_random_moments_inside_built_in_steps_loses_nothing() {
    random_kills(Flavour::Builtins);
}

#[test]
fn eight_concurrent_runs_on_overlapping_workflows_compute_each_step_once() {
    let ws = Flavour::Plugins.workspace();
    // A second workflow sharing step `a` (same plugin, params, input) with `crashy`.
    ws.write(
        "workflows/other.yaml",
        "name: other\ninputs: { text: data/text.txt }\nsteps:\n  a:\n    plugin: upper\n    inputs: { src: inputs.text }\n    with: { sleep: 0.02 }\n  z:\n    plugin: count\n    inputs: { src: inputs.text }\n",
    );
    let children: Vec<_> = (0..8)
        .map(|i| {
            let wf = if i % 2 == 0 {
                "workflows/crashy.yaml"
            } else {
                "workflows/other.yaml"
            };
            ws.cmd(&["run", wf, "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(!err.contains("database is locked"), "{err}");
    }
    let mut marks = ws.marks();
    marks.sort();
    // a, b, d (crashy) and z (other) executed once each; `split` does not mark.
    assert_eq!(
        marks,
        ["a", "b", "d", "z"],
        "each contested step is computed once"
    );
    assert_eq!(ws.run(&["verify"]).status.code(), Some(0));
}
