//! The bad-workflow corpus: every file in `tests/bad_workflows/` (plus a few generated
//! ones that should not be committed: too large, not UTF-8, a NUL byte, zero bytes) is run
//! through the real binary as `pedigree run --dry-run`, and the exit code and stderr are
//! pinned with insta. Each must be refused with exit code 2 and an `error:` message,
//! never a panic, a hang or a pass.
//!
//! Update the snapshots with `INSTA_UPDATE=always cargo test --test bad_workflows`, then
//! read every changed `.snap` file: each should name the file and `line:col`, say what is
//! wrong and give a `help:` saying what to do.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A case that takes longer than this is a hang (an alias bomb must be refused quickly).
const TIMEOUT: Duration = Duration::from_secs(30);

const PLUGIN_YAML: &str = r#"description: Fixture plugin for the bad-workflow corpus
command: [sh, "${plugin}/run.sh"]
inputs: { src: {} }
outputs: { out: { file: out.txt } }
params:
  n: { type: int }
  mode: { type: string, default: fast }
  tags: { type: list, default: [] }
  fast: { type: bool, default: false }
"#;

const RUN_SH: &str = "#!/bin/sh\ncp \"$PEDIGREE_INPUT_SRC\" \"$PEDIGREE_OUTPUT_OUT\"\n";

struct Case {
    name: String,
    bytes: Vec<u8>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_workflows")
}

/// The committed corpus, in file name order.
fn committed_cases() -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/bad_workflows exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| Case {
            name: p
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned(),
            bytes: std::fs::read(&p).expect("readable corpus file"),
        })
        .collect()
}

/// Cases made here rather than committed: binary content, or too big for the repository.
fn generated_cases() -> Vec<Case> {
    let valid_tail = "name: demo\ninputs:\n  events: data/e.csv\nsteps:\n  a:\n    plugin: tool\n    inputs: { src: inputs.events }\n    with: { n: 1 }\n";
    let mut large = String::from(
        "# Over 1 MiB (mostly comments): the user should see the size and the limit.\n",
    );
    large.push_str(valid_tail);
    while large.len() <= 1024 * 1024 {
        large.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let mut non_utf8 = b"# Latin-1 bytes: the user should see \"not valid UTF-8\" at the first bad byte.\nname: demo\ninputs:\n  events: data/e.csv\nsteps:\n  a:\n    plugin: tool\n    inputs: { src: inputs.events }\n    with: { n: 1, mode: caf".to_vec();
    non_utf8.extend_from_slice(b"\xe9 }\n");
    let nul = b"# A NUL byte in the text: the user should see it refused at its line.\nname: demo\ninputs:\n  events: data/e.csv\nsteps:\n  a:\n    plugin: tool\n    inputs: { src: inputs.events }\n    with: { n: 1, mode: \"a\0b\" }\n".to_vec();
    vec![
        Case {
            name: "gen-zero-bytes".into(),
            bytes: Vec::new(),
        },
        Case {
            name: "gen-over-1mib".into(),
            bytes: large.into_bytes(),
        },
        Case {
            name: "gen-non-utf8".into(),
            bytes: non_utf8,
        },
        Case {
            name: "gen-nul-byte".into(),
            bytes: nul,
        },
    ]
}

/// A workspace `TMP/home/ws` with the inputs and the plugin the corpus refers to. It sits
/// two levels down so that `../../..` from its `workflows/` lands in `TMP`, which the
/// snapshots show as `[TMP]` whatever the machine's temp folder is.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("home/ws");
    std::fs::create_dir_all(root.join("workflows/data")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("workflows/data/e.csv"), "user_id,item_id\n1,2\n").unwrap();
    std::fs::write(root.join("data/e.csv"), "user_id,item_id\n1,2\n").unwrap();
    std::fs::create_dir_all(root.join("plugins/tool")).unwrap();
    std::fs::write(root.join("plugins/tool/plugin.yaml"), PLUGIN_YAML).unwrap();
    std::fs::write(root.join("plugins/tool/run.sh"), RUN_SH).unwrap();
    (tmp, root)
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

/// `pedigree --workspace WS run --dry-run workflows/NAME.yaml` in WS; an error if it
/// has not finished after `TIMEOUT` (it is killed).
fn run_case(case: &Case) -> Result<Outcome, String> {
    let (tmp, root) = workspace();
    let root = root.as_path();
    let rel = format!("workflows/{}.yaml", case.name);
    std::fs::write(root.join(&rel), &case.bytes).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pedigree"))
        .arg("--workspace")
        .arg(root)
        .args(["run", "--dry-run", &rel])
        .current_dir(root)
        .env_remove("PEDIGREE_WORKSPACE")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pedigree");
    let mut pipe = child.stderr.take().expect("stderr pipe");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pedigree") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{}: pedigree did not finish within {TIMEOUT:?} (a hang)",
                case.name
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = String::from_utf8_lossy(&reader.join().expect("stderr reader")).into_owned();
    Ok(Outcome {
        code: status.code(),
        stderr: redact(&stderr, root, tmp.path()),
    })
}

/// Replace the workspace path with `[WS]` and the temp folder above it with `[TMP]`
/// (each as given and canonical: the temp folder may be behind a symlink).
fn redact(text: &str, root: &Path, tmp: &Path) -> String {
    let mut out = text.to_owned();
    for (path, label) in [(root, "[WS]"), (tmp, "[TMP]")] {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        for p in [canon.as_path(), path] {
            out = out.replace(&*p.to_string_lossy(), label);
        }
    }
    out
}

fn check(case: &Case) -> Result<(), String> {
    let first = case.bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    if !case.name.starts_with("gen-") && !first.starts_with(b"# ") {
        return Err(format!(
            "{}: the first line must be a `# ` comment saying what is wrong",
            case.name
        ));
    }
    let out = run_case(case)?;
    let mut problems = Vec::new();
    if out.code != Some(2) {
        problems.push(format!("exit code {:?}, expected 2", out.code));
    }
    if out.stderr.contains("panicked") {
        problems.push("the process panicked".to_owned());
    }
    if !out.stderr.contains("error:") {
        problems.push("stderr has no `error:`".to_owned());
    }
    if !out.stderr.contains("= help:") {
        problems.push("stderr has no `= help:`".to_owned());
    }
    let text = format!(
        "exit code: {}\n{}",
        out.code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "signal".into()),
        out.stderr
    );
    let description = String::from_utf8_lossy(first)
        .trim_start_matches("# ")
        .to_owned();
    let mut settings = insta::Settings::clone_current();
    settings.set_description(description);
    settings.set_omit_expression(true);
    // Catch a mismatch so every case is checked and reported, not only the first.
    let snapshot = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_snapshot!(case.name.as_str(), text));
    }));
    if snapshot.is_err() {
        problems.push("the snapshot does not match".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n--- stderr ---\n{}",
            case.name,
            problems.join("; "),
            out.stderr
        ))
    }
}

#[test]
fn every_bad_workflow_is_refused_with_a_clear_message() {
    let mut cases = committed_cases();
    assert!(
        cases.len() >= 30,
        "the corpus has only {} files",
        cases.len()
    );
    cases.extend(generated_cases());
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
