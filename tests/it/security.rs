//! Hostile input and misbehaving plugins: secrets stay secret, params are data not
//! code, stray processes are reaped.

use std::time::{Duration, Instant};

use crate::common::*;

const CANARY: &str = "canary-7f3c9e1d-secret";

/// `leaky`: reads `API_TOKEN`, prints it to stdout and stderr, and writes only its
/// length to the output (so the test can tell the plugin really received it).
const LEAKY_YAML: &str = "command: [sh, \"${plugin}/run.sh\"]\noutputs: { out: { file: len.txt } }\nsecrets: [API_TOKEN]\nparams: { fail: { type: bool, default: false } }\n";
const LEAKY_SH: &str = r#"set -eu
echo "token is $API_TOKEN"
echo "debug: $API_TOKEN" >&2
printf '{"note": "%s"}' "$API_TOKEN" > facets.json
printf '%s' "${#API_TOKEN}" > "$PEDIGREE_OUTPUT_OUT"
if [ "$PEDIGREE_PARAM_FAIL" = "true" ]; then exit 3; fi
"#;

fn files_containing(root: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn a_secret_reaches_the_plugin_and_nothing_that_pedigree_writes() {
    let ws = Ws::new();
    ws.plugin("leaky", LEAKY_YAML, LEAKY_SH);
    ws.write("workflows/s.yaml", "name: s\nsteps:\n  ok:\n    plugin: leaky\n  bad:\n    plugin: leaky\n    with: { fail: true }\n");
    let out = ws
        .cmd(&["run", "workflows/s.yaml", "--keep-going", "--json"])
        .env("API_TOKEN", CANARY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let len = step(&j, "ok")["outputs"]["out"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.object(len)).unwrap(),
        CANARY.len().to_string(),
        "the plugin got the secret"
    );
    assert!(
        step(&j, "bad")["error"]
            .as_str()
            .unwrap()
            .contains("[secret API_TOKEN]"),
        "the failure shows the redacted tail: {j}"
    );

    // Everything pedigree produced: store, database (and its WAL), lock file, the
    // command's own output, the logs `pedigree log` prints.
    for cmd in [
        vec!["log", "latest", "ok"],
        vec!["log", "latest", "bad"],
        vec!["show", "latest", "--json"],
        vec!["runs", "--json"],
    ] {
        let o = ws.cmd(&cmd).env("API_TOKEN", CANARY).output().unwrap();
        assert!(
            !stdout(&o).contains(CANARY) && !stderr(&o).contains(CANARY),
            "`pedigree {}` printed the secret",
            cmd.join(" ")
        );
    }
    assert!(!stdout(&out).contains(CANARY) && !stderr(&out).contains(CANARY));
    let log = stdout(&ws.run(&["log", "latest", "ok"]));
    assert!(log.contains("token is [secret API_TOKEN]"), "{log}");
    let hits = files_containing(ws.path(), CANARY.as_bytes());
    assert!(hits.is_empty(), "the secret was written to {hits:?}");

    // Not part of the key: another value, same key, cached.
    let out = ws
        .cmd(&["run", "workflows/s.yaml", "--only", "ok", "--json"])
        .env("API_TOKEN", "another-value")
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status_of(&j, "ok"), "cached");

    // Unset: a clear failure, nothing run.
    let out = ws
        .cmd(&[
            "run",
            "workflows/s.yaml",
            "--force",
            "ok",
            "--only",
            "ok",
            "--json",
        ])
        .env_remove("API_TOKEN")
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        step(&j, "ok")["error"]
            .as_str()
            .unwrap()
            .contains("the secret `API_TOKEN` is not set"),
        "{j}"
    );
}

#[test]
fn params_with_shell_metacharacters_are_data_not_code() {
    let ws = Ws::new();
    let evil = "x; touch pwned; $(touch pwned2) `touch pwned3` --help -rf";
    ws.write(
        "workflows/e.yaml",
        &format!("name: e\ninputs: {{ text: data/text.txt }}\nsteps:\n  a:\n    plugin: upper\n    inputs: {{ src: inputs.text }}\n    with: {{ suffix: {} }}\n", serde_json::to_string(evil).unwrap()),
    );
    let (code, j) = ws.run_json("workflows/e.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    let out = step(&j, "a")["outputs"]["out"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.object(out)).unwrap(),
        format!("HELLO\nWORLD\n{evil}")
    );
    // No file named `pwned*` was created anywhere in the workspace.
    let mut stack = vec![ws.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            assert!(
                !e.file_name().to_string_lossy().starts_with("pwned"),
                "{} was created",
                e.path().display()
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

/// Poll `f` every 20 ms until it gives a value; fail with `what` after `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for `pid` to be gone (or a zombie nobody reaped yet). Generous (30 s): the
/// processes tested would sleep for 300 s, so only one that stays fails this.
fn assert_dies(pid: i32, what: &str) {
    wait_for(
        Duration::from_secs(30),
        &format!("{what} (pid {pid}) survived"),
        || {
            // SAFETY: probing a pid with signal 0.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true);
            (!alive).then_some(())
        },
    )
}

fn read_pid(ws: &Ws, rel: &str) -> i32 {
    wait_for(Duration::from_secs(20), &format!("no {rel}"), || {
        std::fs::read_to_string(ws.path().join(rel))
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

/// `daemon`: starts a daemon in a new session (out of the step's process group,
/// as a real daemon does), records pids in `$TEST_MARK_DIR`, then either exits or
/// sleeps (`linger: true`).
const DAEMON_YAML: &str = "command: [sh, \"${plugin}/run.sh\"]\noutputs: { out: {} }\nparams: { linger: { type: bool, default: false } }\nenv: [TEST_MARK_DIR]\nsandbox: false\n";
const DAEMON_SH: &str = "set -eu\nsetsid sh -c 'echo $$ > \"$TEST_MARK_DIR/daemon.tmp\"; mv \"$TEST_MARK_DIR/daemon.tmp\" \"$TEST_MARK_DIR/daemon.pid\"; exec sleep 300' </dev/null >/dev/null 2>&1 &\nwhile [ ! -e \"$TEST_MARK_DIR/daemon.pid\" ]; do sleep 0.01; done\necho $$ > \"$TEST_MARK_DIR/main.pid\"\nif [ \"$PEDIGREE_PARAM_LINGER\" = true ]; then sleep 300; fi\necho ok > \"$PEDIGREE_OUTPUT_OUT\"\n";

#[test]
fn a_daemon_that_leaves_the_step_s_process_group_does_not_outlive_the_step() {
    let ws = Ws::new();
    ws.plugin("daemon", DAEMON_YAML, DAEMON_SH);
    let (code, j) = ws.run_json(&ws.one_step("daemon", ""), &[]);
    assert_eq!(code, 0, "{j}");
    assert_dies(read_pid(&ws, "marks/daemon.pid"), "the setsid daemon");
}

#[test]
fn a_sigkilled_orchestrator_leaves_no_step_process_behind() {
    let ws = Ws::new();
    ws.plugin("daemon", DAEMON_YAML, DAEMON_SH);
    let wf = ws.one_step("daemon", "{ linger: true }");
    let mut run = ws
        .cmd(&["run", &wf])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let main = read_pid(&ws, "marks/main.pid");
    let daemon = read_pid(&ws, "marks/daemon.pid");
    run.kill().unwrap();
    run.wait().unwrap();
    // Both would sleep for 300 s: gone within `assert_dies`'s bound means killed.
    assert_dies(main, "the step's main process");
    assert_dies(daemon, "the step's setsid daemon");
    // Nothing to unlock by hand: the next run computes the step.
    let (code, j) = ws.run_json(&ws.one_step("daemon", ""), &[]);
    assert_eq!(code, 0, "{j}");
}

#[test]
fn keep_going_runs_independent_steps_after_a_failure() {
    let ws = Ws::new();
    ws.write(
        "workflows/k.yaml",
        "name: k\ninputs: { text: data/text.txt }\nsteps:\n  bad:\n    plugin: upper\n    inputs: { src: inputs.text }\n    with: { fail: true }\n  after:\n    plugin: count\n    inputs: { src: bad.out }\n  other:\n    plugin: count\n    inputs: { src: inputs.text }\n",
    );
    let (code, j) = ws.run_json("workflows/k.yaml", &["--jobs", "1"]);
    assert_eq!(code, 1);
    assert_eq!(
        status_of(&j, "other"),
        "skipped",
        "without --keep-going nothing new starts: {j}"
    );
    let (code, j) = ws.run_json("workflows/k.yaml", &["--jobs", "1", "--keep-going"]);
    assert_eq!(code, 1);
    assert_eq!(status_of(&j, "other"), "succeeded", "{j}");
    assert_eq!(status_of(&j, "after"), "skipped");
}

#[test]
fn jobs_run_independent_steps_at_the_same_time() {
    let ws = Ws::new();
    // Each step waits for the other's mark: only concurrent execution lets both finish.
    ws.plugin(
        "meet",
        "command: [sh, \"${plugin}/run.sh\"]\noutputs: { out: {} }\nparams: { me: { type: string }, other: { type: string } }\nenv: [TEST_MARK_DIR]\nsandbox: false\n",
        "set -eu\ntouch \"$TEST_MARK_DIR/$PEDIGREE_PARAM_ME\"\ni=0\nwhile [ ! -e \"$TEST_MARK_DIR/$PEDIGREE_PARAM_OTHER\" ]; do i=$((i+1)); [ $i -lt 100 ] || exit 7; sleep 0.05; done\necho met > \"$PEDIGREE_OUTPUT_OUT\"\n",
    );
    ws.write("workflows/j.yaml", "name: j\nsteps:\n  x:\n    plugin: meet\n    with: { me: x, other: y }\n  y:\n    plugin: meet\n    with: { me: y, other: x }\n");
    let (code, j) = ws.run_json("workflows/j.yaml", &["--jobs", "2"]);
    assert_eq!(code, 0, "{j}");
}

/// The sandbox tests need a kernel with Landlock (Linux 5.13+ with `landlock` among the
/// enabled LSMs); in CI its absence fails them (see `crate::common::prerequisite`).
fn landlock() -> bool {
    prerequisite(
        pedigree::steps::sandbox::abi().is_some(),
        "Landlock",
        "this kernel does not offer it (Linux 5.13+ with `landlock` in the `lsm=` list), so the sandbox cannot be tested",
    )
}

#[test]
fn a_sandboxed_plugin_cannot_kill_its_supervisor_to_escape_it() {
    if !landlock()
        || !prerequisite(
            pedigree::steps::sandbox::abi().is_some_and(|v| v >= 6),
            "Landlock ABI 6",
            "this kernel's Landlock cannot scope signals (Linux 6.12+), so a sandboxed step can kill its supervisor",
        )
    {
        return;
    }
    let ws = Ws::new();
    // The step's parent is its supervisor: killing it would leave the step's
    // processes unsupervised (and fail the step with signal 9).
    ws.plugin(
        "escape",
        "command: [sh, \"${plugin}/run.sh\"]\noutputs: { out: {} }\n",
        "if kill -9 \"$PPID\" 2>/dev/null; then echo killed > \"$PEDIGREE_OUTPUT_OUT\"; else echo refused > \"$PEDIGREE_OUTPUT_OUT\"; fi\n",
    );
    let (code, j) = ws.run_json(&ws.one_step("escape", ""), &[]);
    assert_eq!(
        code, 0,
        "the supervisor survived and reported the step: {j}"
    );
    let out = step(&j, "escape")["outputs"]["out"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.object(out)).unwrap(),
        "refused\n"
    );
}

#[test]
fn a_plugin_cannot_write_outside_its_scratch_folder() {
    if !landlock() {
        return;
    }
    let ws = Ws::new();
    let target = ws.path().join("workflows/data/text.txt");
    let script = format!(
        "set -eu\necho tampered > {} || echo \"blocked: $?\" >&2\necho done > \"$PEDIGREE_OUTPUT_OUT\"\n",
        target.display()
    );
    ws.plugin(
        "vandal",
        "command: [sh, \"${plugin}/run.sh\"]\noutputs: { out: {} }\n",
        &script,
    );
    ws.plugin(
        "trusted",
        "command: [sh, \"${plugin}/run.sh\"]\noutputs: { out: {} }\nsandbox: false\n",
        &script,
    );
    let (code, j) = ws.run_json(&ws.one_step("vandal", ""), &[]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(
        ws.read("workflows/data/text.txt"),
        "hello\nworld\n",
        "the workspace file is untouched"
    );
    let log = stdout(&ws.run(&["log", "latest", "vandal"]));
    assert!(log.contains("Permission denied"), "{log}");

    // A plugin that opts out (`sandbox: false`, part of its hashed manifest) can.
    let (code, _) = ws.run_json(&ws.one_step("trusted", ""), &[]);
    assert_eq!(code, 0);
    assert_eq!(ws.read("workflows/data/text.txt"), "tampered\n");
}

#[test]
fn a_plugin_cannot_read_outside_the_workspace_or_the_lineage_database() {
    if !landlock() {
        return;
    }
    let ws = Ws::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let private = elsewhere.path().join("id_rsa");
    std::fs::write(&private, "PRIVATE KEY").unwrap();
    ws.plugin(
        "snoop",
        "command: [sh, \"${plugin}/run.sh\"]\ninputs: { src: {} }\noutputs: { out: {} }\nparams: { target: { type: string } }\n",
        "probe() { if cat \"$1\" > /dev/null 2>&1; then echo \"$2 read\"; else echo \"$2 denied\"; fi; }\n\
         { probe \"$PEDIGREE_INPUT_SRC\" input\n\
           probe \"$PEDIGREE_PARAM_TARGET\" outside\n\
           probe ../../../lineage.db database\n\
           probe \"$(dirname \"$PEDIGREE_PLUGIN_DIR\")/../workflows/data/text.txt\" workspace\n\
           probe /etc/passwd system\n\
         } > \"$PEDIGREE_OUTPUT_OUT\"\n",
    );
    ws.write(
        "workflows/s.yaml",
        &format!(
            "name: s\ninputs: {{ text: data/text.txt }}\nsteps:\n  s:\n    plugin: snoop\n    inputs: {{ src: inputs.text }}\n    with: {{ target: \"{}\" }}\n",
            private.display()
        ),
    );
    let (code, j) = ws.run_json("workflows/s.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    assert!(ws.path().join(".pedigree/lineage.db").exists());
    let out = step(&j, "s")["outputs"]["out"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(ws.object(out)).unwrap(),
        "input read\noutside denied\ndatabase denied\nworkspace read\nsystem read\n"
    );
}

#[test]
fn symlinked_empty_and_truncated_objects_are_detected() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new();
    let (_, j) = ws.run_json("workflows/chain.yaml", &[]);
    let up = step(&j, "up")["outputs"]["out"]
        .as_str()
        .unwrap()
        .to_owned();
    let cnt = step(&j, "cnt")["outputs"]["n"].as_str().unwrap().to_owned();
    let both = step(&j, "both")["outputs"]["out"]
        .as_str()
        .unwrap()
        .to_owned();
    // up: replaced by a symlink to a file with the same bytes; cnt: emptied; both: truncated.
    let decoy = ws.path().join("decoy");
    std::fs::copy(ws.object(&up), &decoy).unwrap();
    std::fs::remove_file(ws.object(&up)).unwrap();
    std::os::unix::fs::symlink(&decoy, ws.object(&up)).unwrap();
    for (h, keep) in [(&cnt, 0usize), (&both, 3)] {
        let p = ws.object(h);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..keep.min(bytes.len())]).unwrap();
    }
    let out = ws.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for h in [&up, &cnt, &both] {
        assert!(
            text.contains(&format!("object {h} is corrupt")),
            "{h} not reported:\n{text}"
        );
    }
    let (code, j) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    assert!(
        statuses(&j).iter().all(|(_, s)| s == "succeeded"),
        "every damaged hit reran: {j}"
    );
    assert_eq!(ws.run(&["verify"]).status.code(), Some(0));
}

#[test]
fn a_damaged_lineage_database_is_reported_not_papered_over() {
    let ws = Ws::new();
    ws.run_json("workflows/chain.yaml", &[]);
    let db = ws.path().join(".pedigree/lineage.db");
    // Checkpoint-free damage: overwrite the header of the main file.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..16].copy_from_slice(b"not a database!!");
    std::fs::write(&db, &bytes).unwrap();
    let _ = std::fs::remove_file(ws.path().join(".pedigree/lineage.db-wal"));
    let _ = std::fs::remove_file(ws.path().join(".pedigree/lineage.db-shm"));
    let out = ws.run(&["run", "workflows/chain.yaml"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("lineage.db"),
        "the message names the database: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let out = ws.run(&["verify"]);
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn the_supervisor_exits_as_its_step_did_through_both_entry_points() {
    use std::os::unix::process::ExitStatusExt;
    let helper = std::path::Path::new(BIN).with_file_name("pedigree-supervise");
    assert!(helper.is_file(), "the helper is built beside the binary");
    let me = std::process::id().to_string();
    for prefix in [vec![helper.to_str().unwrap()], vec![BIN, "__supervise"]] {
        let run = |parent: &str, argv: &[&str]| {
            std::process::Command::new(prefix[0])
                .args(&prefix[1..])
                .args(["--parent", parent, "--grace-ms", "100", "--"])
                .args(argv)
                .output()
                .unwrap()
        };
        let sh = |script| run(&me, &["sh", "-c", script]);
        assert_eq!(sh("exit 3").status.code(), Some(3), "{prefix:?}");
        assert_eq!(sh("kill -TERM $$").status.signal(), Some(libc::SIGTERM));
        let missing = run(&me, &["no-such-program-x"]);
        assert_eq!(missing.status.code(), Some(127));
        assert!(stderr(&missing).contains("cannot start `no-such-program-x`"));
        // A wrong parent: the orchestrator is gone, so nothing starts.
        assert_eq!(run("1", &["sh", "-c", "exit 0"]).status.code(), Some(127));
        // Not its command line: a usage error, nothing runs.
        let usage = std::process::Command::new(prefix[0])
            .args(&prefix[1..])
            .args(["--parent", &me, "sh"])
            .output()
            .unwrap();
        assert_eq!(usage.status.code(), Some(2));
    }
}
