//! A temp workspace with small shell plugins, and helpers to run the real binary in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;

pub const BIN: &str = env!("CARGO_BIN_EXE_pedigree");

pub struct Ws {
    pub dir: tempfile::TempDir,
}

/// `upper`: upper-cases `src` into `out`, appends `suffix`; `fail: true` exits 1;
/// `sleep` seconds first; if `TEST_MARK_DIR` is set, appends the step name to
/// `$TEST_MARK_DIR/runs.log` so tests can count executions.
const UPPER_YAML: &str = r#"
description: upper-case a file
command: [sh, "${plugin}/run.sh"]
inputs: { src: {} }
outputs: { out: { file: out.txt, kind: table, media_type: text/plain } }
params:
  suffix: { type: string, default: "" }
  fail: { type: bool, default: false }
  skip_output: { type: bool, default: false }
  sleep: { type: float, default: 0 }
env: [TEST_MARK_DIR]
timeout: 30
# Writes marks outside its scratch folder for the tests to count executions.
sandbox: false
"#;

const UPPER_SH: &str = r#"set -eu
if [ -n "${TEST_MARK_DIR:-}" ]; then echo "$PEDIGREE_STEP" >> "$TEST_MARK_DIR/runs.log"; fi
if [ "$PEDIGREE_PARAM_SLEEP" != "0.0" ]; then sleep "$PEDIGREE_PARAM_SLEEP"; fi
if [ "$PEDIGREE_PARAM_FAIL" = "true" ]; then echo "upper: asked to fail" >&2; exit 1; fi
if [ "$PEDIGREE_PARAM_SKIP_OUTPUT" = "true" ]; then exit 0; fi
tr a-z A-Z < "$PEDIGREE_INPUT_SRC" > "$PEDIGREE_OUTPUT_OUT"
printf '%s' "$PEDIGREE_PARAM_SUFFIX" >> "$PEDIGREE_OUTPUT_OUT"
echo '{"lines": 1, "loss": 0.5}' > metrics.json
echo '{"rows": {"in": 1, "out": 1}}' > facets.json
"#;

/// `count`: writes the number of lines of `src` (so many inputs give one output).
const COUNT_YAML: &str = r#"
command: [sh, "${plugin}/run.sh"]
inputs: { src: {} }
outputs: { n: { file: n.txt } }
env: [TEST_MARK_DIR]
sandbox: false
"#;

const COUNT_SH: &str = r#"set -eu
if [ -n "${TEST_MARK_DIR:-}" ]; then echo "$PEDIGREE_STEP" >> "$TEST_MARK_DIR/runs.log"; fi
wc -l < "$PEDIGREE_INPUT_SRC" | tr -d ' ' > "$PEDIGREE_OUTPUT_N"
"#;

/// `join`: concatenates `a` and `b`.
const JOIN_YAML: &str = r#"
command: [sh, "${plugin}/run.sh"]
inputs: { a: {}, b: {} }
outputs: { out: { file: joined.txt } }
env: [TEST_MARK_DIR]
sandbox: false
"#;

const JOIN_SH: &str = r#"set -eu
if [ -n "${TEST_MARK_DIR:-}" ]; then echo "$PEDIGREE_STEP" >> "$TEST_MARK_DIR/runs.log"; fi
cat "$PEDIGREE_INPUT_A" "$PEDIGREE_INPUT_B" > "$PEDIGREE_OUTPUT_OUT"
"#;

/// A three-step workflow: up (upper) → cnt (count) and up → both (join with the raw input).
pub const CHAIN: &str = r#"
name: chain
inputs:
  text: data/text.txt
params:
  suffix: "!"
steps:
  up:
    plugin: upper
    inputs: { src: inputs.text }
    with: { suffix: "${params.suffix}" }
    env: [CHAIN_FLAVOUR]
  cnt:
    plugin: count
    inputs: { src: up.out }
  both:
    plugin: join
    inputs: { a: up.out, b: inputs.text }
"#;

impl Ws {
    pub fn new() -> Ws {
        let ws = Ws {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        ws.plugin("upper", UPPER_YAML, UPPER_SH);
        ws.plugin("count", COUNT_YAML, COUNT_SH);
        ws.plugin("join", JOIN_YAML, JOIN_SH);
        ws.write("workflows/data/text.txt", "hello\nworld\n");
        ws.write("workflows/chain.yaml", CHAIN);
        std::fs::create_dir_all(ws.path().join("marks")).unwrap();
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    pub fn plugin(&self, name: &str, yaml: &str, script: &str) {
        self.write(&format!("plugins/{name}/plugin.yaml"), yaml);
        self.write(&format!("plugins/{name}/run.sh"), script);
    }

    /// `workflows/NAME.yaml`: one step, named after its plugin, with the given
    /// `with:` map (empty for none). Returns the workflow's path for `run`.
    pub fn one_step(&self, plugin: &str, with: &str) -> String {
        let path = format!("workflows/{plugin}.yaml");
        let with = if with.is_empty() {
            String::new()
        } else {
            format!("    with: {with}\n")
        };
        self.write(
            &path,
            &format!("name: {plugin}\nsteps:\n  {plugin}:\n    plugin: {plugin}\n{with}"),
        );
        path
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--workspace")
            .arg(self.path())
            .args(args)
            .current_dir(self.path());
        c.env("TEST_MARK_DIR", self.path().join("marks"));
        c.env_remove("PEDIGREE_WORKSPACE");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run pedigree")
    }

    /// `pedigree run WF --json ARGS...`: exit code and the parsed JSON.
    pub fn run_json(&self, wf: &str, extra: &[&str]) -> (i32, Json) {
        let mut args = vec!["run", wf, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json: Json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), json)
    }

    /// Executions recorded by the test plugins, in order.
    pub fn marks(&self) -> Vec<String> {
        self.read("marks/runs.log")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn clear_marks(&self) {
        let _ = std::fs::remove_file(self.path().join("marks/runs.log"));
    }

    pub fn object(&self, hash: &str) -> PathBuf {
        self.path()
            .join(".pedigree/objects")
            .join(&hash[..2])
            .join(&hash[2..])
    }
}

/// The repository (for the shipped workflows and sample data).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled sample (`workflows/data/sample/`) and the shipped `workflows/WORKFLOW`
/// into the workspace.
pub fn copy_sample(ws: &Ws, workflow: &str) {
    for f in ["events.csv", "items.csv", "manifest.json"] {
        let to = ws.path().join("workflows/data/sample").join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join("workflows/data/sample").join(f), to).unwrap();
    }
    std::fs::copy(
        repo().join("workflows").join(workflow),
        ws.path().join("workflows").join(workflow),
    )
    .unwrap();
}

/// A port on 127.0.0.1 nothing listens on (bound, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// step name → status, from a `run --json` result.
pub fn statuses(json: &Json) -> Vec<(String, String)> {
    json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn status_of(json: &Json, step: &str) -> String {
    statuses(json)
        .into_iter()
        .find(|(n, _)| n == step)
        .map(|(_, s)| s)
        .unwrap_or_default()
}

pub fn step<'a>(json: &'a Json, name: &str) -> &'a Json {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .expect("step in result")
}

/// A command's whole result for a snapshot: exit code, stdout and stderr, as uv's
/// `uv_snapshot!` shows them.
pub fn transcript(o: &Output) -> String {
    format!(
        "exit_code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
        o.status.code().map_or("signal".into(), |c| c.to_string()),
        stdout(o),
        stderr(o)
    )
}

impl Ws {
    /// Filters for snapshots of human output: this workspace's path, hashes (64 and
    /// 12 hex digits), timestamps, durations, host and user.
    pub fn filters(&self) -> Vec<(String, String)> {
        let root = self.path().to_string_lossy().into_owned();
        let canon = std::fs::canonicalize(self.path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| root.clone());
        let mut f = vec![
            (regex_escape(&canon), "[WS]".to_owned()),
            (regex_escape(&root), "[WS]".to_owned()),
            (
                r"objects/[0-9a-f]{2}/[0-9a-f]{62}\b".to_owned(),
                "objects/[OBJECT]".to_owned(),
            ),
            (r"\b[0-9a-f]{64}\b".to_owned(), "[HASH]".to_owned()),
            (r"\b[0-9a-f]{12}\b".to_owned(), "[SHORT]".to_owned()),
            (
                r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?Z?)?".to_owned(),
                "[TIME]".to_owned(),
            ),
            (
                r"\b\d+m\d{2}s\b|\b\d+(\.\d+)?s\b".to_owned(),
                "[DUR]".to_owned(),
            ),
            (r"\b\d+(\.\d+)? ?ms\b".to_owned(), "[DUR]".to_owned()),
        ];
        if let Ok(u) = std::env::var("USER")
            && !u.is_empty()
        {
            f.push((format!(r"\b{}@", regex_escape(&u)), "[USER]@".to_owned()));
        }
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let h = h.trim();
            if !h.is_empty() {
                f.push((format!(r"\b{}\b", regex_escape(h)), "[HOST]".to_owned()));
            }
        }
        f
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Snapshot a command's whole transcript through the workspace's filters:
/// `snapshot!(ws, name, &["status", "workflows/chain.yaml"])`.
#[macro_export]
macro_rules! snapshot {
    ($ws:expr, $name:expr, $args:expr) => {{
        let out = $ws.run($args);
        let text = $crate::common::transcript(&out);
        let filters = $ws.filters();
        let mut settings = insta::Settings::clone_current();
        for (re, with) in &filters {
            settings.add_filter(re, with.as_str());
        }
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!($name, text));
        out
    }};
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether this is a CI run: `CI` is set to anything but empty, `false` or `0` (CI
/// services set `CI=true`; `.ci/run` is run that way).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "false" | "0"))
}

/// Gate for a test that needs something from the machine (`what`, e.g. "Landlock").
/// True when it is there. When it is not, in CI this fails the test with `why` (a missing
/// prerequisite there is a broken machine, not a reason to pass); elsewhere it prints
/// why the test is skipped and returns false, so the caller returns early.
pub fn prerequisite(available: bool, what: &str, why: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        !in_ci(),
        "{what} is required in CI but missing on this machine: {why}"
    );
    eprintln!("SKIPPED (not in CI): {what} is missing: {why}");
    false
}
