//! The command line as a new user meets it: `init`, `completions`, and read commands
//! that end quietly when the reader of their output goes away.

use std::process::{Command, Stdio};

use crate::common::{BIN, Ws, statuses, stderr, stdout};

#[test]
fn init_makes_a_workspace_whose_starter_workflow_runs_and_then_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proj");
    let out = Command::new(BIN)
        .args(["init"])
        .arg(&root)
        .env_remove("PEDIGREE_WORKSPACE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("pedigree run workflows/hello.yaml"), "{text}");
    assert!(root.join(".pedigree").is_dir());

    // The starter runs as it is: a built-in step and a plugin, both succeed ...
    let run = |extra: &[&str]| {
        let out = Command::new(BIN)
            .arg("--workspace")
            .arg(&root)
            .args(["run", "workflows/hello.yaml", "--json"])
            .args(extra)
            .current_dir(&root)
            .env_remove("PEDIGREE_WORKSPACE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run(&[]);
    assert_eq!(
        statuses(&first),
        [
            ("clean".to_string(), "succeeded".to_string()),
            ("count".to_string(), "succeeded".to_string())
        ]
    );
    // ... the plugin saw the 7 lines of the starter table ...
    let count = crate::common::step(&first, "count");
    let summary = count["outputs"]["summary"].as_str().unwrap();
    let obj = root
        .join(".pedigree/objects")
        .join(&summary[..2])
        .join(&summary[2..]);
    assert_eq!(std::fs::read_to_string(obj).unwrap(), "lines: 7\n");
    // ... and a second run is all cache hits.
    let second = run(&[]);
    assert!(
        statuses(&second).iter().all(|(_, s)| s == "cached"),
        "{second}"
    );

    // A second init changes nothing and says why.
    let before = std::fs::read(root.join("workflows/hello.yaml")).unwrap();
    std::fs::write(root.join("workflows/hello.yaml"), b"name: mine\n").unwrap();
    let again = Command::new(BIN).arg("init").arg(&root).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    let err = stderr(&again);
    assert!(err.contains("never overwrites"), "{err}");
    assert!(err.contains("`.pedigree`"), "{err}");
    assert_eq!(
        std::fs::read(root.join("workflows/hello.yaml")).unwrap(),
        b"name: mine\n",
        "init overwrote a file (it held {} bytes before)",
        before.len()
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef pedigree"),
        ("fish", "complete -c pedigree"),
    ] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(
            text.contains("lineage"),
            "{shell} completes the subcommands"
        );
    }
}

/// `pedigree runs | head` and `pedigree show latest | head`: the reader is gone
/// before pedigree writes, and pedigree must end without a panic.
#[test]
fn read_commands_end_quietly_on_a_closed_pipe() {
    let ws = Ws::new();
    let (code, _) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    for args in [
        &["runs"][..],
        &["show", "latest"],
        &["dag", "workflows/chain.yaml"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = ws
            .cmd(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} printed on stderr: {err}");
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}",
            out.status
        );
    }
}

/// gc used to read lock files only under `workflows/`: a workflow kept elsewhere lost
/// its lock file's pins.
#[test]
fn gc_keeps_what_a_lock_file_outside_workflows_pins() {
    let ws = Ws::new();
    ws.write("pipelines/chain.yaml", crate::common::CHAIN);
    ws.write("pipelines/data/text.txt", "hello\nworld\n");
    let (code, a) = ws.run_json("pipelines/chain.yaml", &[]);
    assert_eq!(code, 0, "{a}");
    let lock = ws.read("pipelines/chain.lock");
    let up = crate::common::step(&a, "up")["outputs"]["out"]
        .as_str()
        .unwrap();
    assert!(
        lock.contains(up),
        "the lock file pins `up`'s output:\n{lock}"
    );
    // No grace period: nothing is recent, so only the lock file keeps the objects.
    let out = ws.run(&["gc", "--grace", "0", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(ws.object(up).exists(), "gc removed a pinned object: {g}");
    let (code, b) = ws.run_json("pipelines/chain.yaml", &[]);
    assert_eq!(code, 0);
    assert!(
        statuses(&b).iter().all(|(_, s)| s == "cached"),
        "every step is still a cache hit after gc: {b}"
    );
}
