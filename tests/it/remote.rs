//! The shared result cache, on a real S3-protocol server (moto, started per test
//! on 127.0.0.1) and on a `file://` folder: two workspaces in two folders share
//! one remote; every way a remote can be damaged or lie ends in correct outputs,
//! a warning, nothing lost and `verify` clean.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::common::*;

/// A moto S3 server of this test's own, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Option<Moto> {
        let m = Moto::spawn(None)?;
        m.py("s3.create_bucket(Bucket='team-cache')");
        Some(m)
    }

    /// A server that checks signatures (moto's IAM mode): the bucket and one user
    /// with full access are made by the first four requests, which moto lets
    /// through unchecked; every later request must be signed by that user's key.
    /// Returns the server and the key (id, secret).
    fn start_authenticated() -> Option<(Moto, String, String)> {
        let m = Moto::spawn(Some(4))?;
        let out = m.py(
            "import json\n\
             iam = boto3.client('iam', endpoint_url=s3.meta.endpoint_url, aws_access_key_id='x', aws_secret_access_key='x', region_name='us-east-1')\n\
             iam.create_user(UserName='ci')\n\
             k = iam.create_access_key(UserName='ci')['AccessKey']\n\
             iam.put_user_policy(UserName='ci', PolicyName='all', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))\n\
             s3.create_bucket(Bucket='team-cache')\n\
             print(k['AccessKeyId'], k['SecretAccessKey'])",
        );
        let mut parts = out.split_whitespace().map(str::to_owned);
        let (id, secret) = (parts.next()?, parts.next()?);
        Some((m, id, secret))
    }

    fn spawn(free_requests: Option<u32>) -> Option<Moto> {
        let found = Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !prerequisite(
            found,
            "moto_server",
            "the S3 tests need a real S3-protocol server: `pip install 'moto[server]'` (.ci/run does)",
        ) {
            return None;
        }
        let port = free_port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = free_requests {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd.spawn().expect("start moto_server");
        let m = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(m)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Run Python with `s3` a boto3 client of this server (boto3 comes with moto).
    fn py(&self, code: &str) -> String {
        let prog = format!(
            "import boto3, sys\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n{code}\n",
            self.endpoint()
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(prog)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The remote under test, with raw access for tampering.
enum Remote {
    Folder(tempfile::TempDir),
    S3(Moto),
}

impl Remote {
    fn folder() -> Remote {
        Remote::Folder(tempfile::tempdir().unwrap())
    }

    fn s3() -> Option<Remote> {
        Moto::start().map(Remote::S3)
    }

    fn url(&self) -> String {
        match self {
            Remote::Folder(d) => format!("file://{}", d.path().display()),
            Remote::S3(_) => "s3://team-cache/shared/cache".into(),
        }
    }

    fn toml(&self) -> String {
        let mut s = format!("[remote]\nurl = \"{}\"\n", self.url());
        if let Remote::S3(m) = self {
            s.push_str(&format!(
                "options = {{ endpoint = \"{}\", allow_http = \"true\", region = \"us-east-1\" }}\n",
                m.endpoint()
            ));
        }
        s
    }

    /// Every object path (relative to the prefix), sorted.
    fn list(&self) -> Vec<String> {
        match self {
            Remote::Folder(d) => {
                let mut out = Vec::new();
                walk(d.path(), d.path(), &mut out);
                out.sort();
                out
            }
            Remote::S3(m) => {
                let got = m.py(
                    "p = s3.get_paginator('list_objects_v2')\nfor page in p.paginate(Bucket='team-cache', Prefix='shared/cache/'):\n    for o in page.get('Contents', []): print(o['Key'][len('shared/cache/'):])",
                );
                let mut v: Vec<String> = got.lines().map(str::to_owned).collect();
                v.sort();
                v
            }
        }
    }

    fn get(&self, rel: &str) -> Vec<u8> {
        match self {
            Remote::Folder(d) => std::fs::read(d.path().join(rel)).unwrap(),
            Remote::S3(m) => {
                let hex = m.py(&format!(
                    "print(s3.get_object(Bucket='team-cache', Key='shared/cache/{rel}')['Body'].read().hex())"
                ));
                hex_decode(hex.trim())
            }
        }
    }

    fn put(&self, rel: &str, bytes: &[u8]) {
        match self {
            Remote::Folder(d) => {
                let p = d.path().join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                let _ = std::fs::remove_file(&p);
                std::fs::write(p, bytes).unwrap();
            }
            Remote::S3(m) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                m.py(&format!(
                    "s3.put_object(Bucket='team-cache', Key='shared/cache/{rel}', Body=bytes.fromhex('{hex}'))"
                ));
            }
        }
    }

    fn delete(&self, rel: &str) {
        match self {
            Remote::Folder(d) => std::fs::remove_file(d.path().join(rel)).unwrap(),
            Remote::S3(m) => {
                m.py(&format!(
                    "s3.delete_object(Bucket='team-cache', Key='shared/cache/{rel}')"
                ));
            }
        }
    }

    fn blob(&self, hash: &str) -> String {
        format!("v1/cas/blake3/{}/{hash}", &hash[..2])
    }

    fn entries(&self) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|p| p.starts_with("v1/ac/"))
            .collect()
    }

    /// The entry paths of step key `key`.
    fn entries_of(&self, key: &str) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|p| p.contains(&format!("/{key}/")))
            .collect()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A test workspace whose steps have the same keys in every folder: the shell
/// plugins count their executions beside their own folder instead of through the
/// declared `TEST_MARK_DIR` (a declared variable is an ingredient of the key, and
/// its value is each workspace's own path).
fn portable() -> Ws {
    let ws = Ws::new();
    for p in ["upper", "count", "join"] {
        let yaml = ws.read(&format!("plugins/{p}/plugin.yaml"));
        ws.write(
            &format!("plugins/{p}/plugin.yaml"),
            &yaml.replace("env: [TEST_MARK_DIR]\n", ""),
        );
        let sh = ws.read(&format!("plugins/{p}/run.sh"));
        ws.write(
            &format!("plugins/{p}/run.sh"),
            &sh.replace(
                "if [ -n \"${TEST_MARK_DIR:-}\" ]; then echo \"$PEDIGREE_STEP\" >> \"$TEST_MARK_DIR/runs.log\"; fi",
                "echo \"$PEDIGREE_STEP\" >> \"$PEDIGREE_PLUGIN_DIR/../../marks/runs.log\"",
            ),
        );
    }
    ws
}

/// Two workspaces (two clones) that share `remote`, and a writer's key that both
/// trust. Commands run with credentials in the environment and a config home of
/// their own (so no real user key is ever picked up).
struct Team {
    a: Ws,
    b: Ws,
    remote: Remote,
    home: tempfile::TempDir,
    key_file: PathBuf,
    public: String,
}

impl Team {
    fn new(remote: Remote) -> Team {
        let home = tempfile::tempdir().unwrap();
        let key_file = home.path().join("keys/ci.key");
        let (a, b) = (portable(), portable());
        let mut t = Team {
            a,
            b,
            remote,
            home,
            key_file,
            public: String::new(),
        };
        let out = t
            .cmd(&t.a, &["key", "new", "--out", t.key_file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        t.public = stdout(&out).trim().to_owned();
        for ws in [&t.a, &t.b] {
            ws.write("pedigree.toml", &t.remote.toml());
            let out = t.run(ws, &["key", "trust", &t.public, "--name", "ci"]);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        t
    }

    fn cmd(&self, ws: &Ws, args: &[&str]) -> Command {
        let mut c = ws.cmd(args);
        c.env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("PEDIGREE_REMOTE")
            .env_remove("PEDIGREE_PUSH")
            .env_remove("PEDIGREE_SIGNING_KEY")
            .env_remove("PEDIGREE_SIGNING_KEY_FILE");
        c
    }

    fn run(&self, ws: &Ws, args: &[&str]) -> Output {
        self.cmd(ws, args).output().unwrap()
    }

    /// A's run with publishing on (the writer's key in the environment).
    fn push_run(&self, ws: &Ws, wf: &str, extra: &[&str]) -> (i32, Json, String) {
        let mut args = vec!["run", wf, "--json", "--push"];
        args.extend_from_slice(extra);
        let out = self
            .cmd(ws, &args)
            .env("PEDIGREE_SIGNING_KEY_FILE", &self.key_file)
            .output()
            .unwrap();
        parse(out)
    }

    fn read_run(&self, ws: &Ws, wf: &str, extra: &[&str]) -> (i32, Json, String) {
        let mut args = vec!["run", wf, "--json"];
        args.extend_from_slice(extra);
        parse(self.run(ws, &args))
    }
}

fn parse(out: Output) -> (i32, Json, String) {
    let err = stderr(&out);
    let json: Json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{err}", stdout(&out)));
    (out.status.code().unwrap_or(-1), json, err)
}

fn reasons(j: &Json) -> Vec<(String, String, String)> {
    j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn from_remote(j: &Json, step: &str) -> bool {
    let s = step_of(j, step);
    s["status"] == "cached"
        && s["reason"]
            .as_str()
            .unwrap()
            .starts_with("cached: from remote")
}

fn step_of<'a>(j: &'a Json, name: &str) -> &'a Json {
    j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {j}"))
}

fn outputs(j: &Json) -> Vec<(String, Json)> {
    j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s["outputs"].clone()))
        .collect()
}

fn verify_clean(t: &Team, ws: &Ws) {
    let out = t.run(ws, &["verify"]);
    assert!(
        out.status.success(),
        "verify: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// The chain workflow: A computes and publishes, B computes nothing.
fn share_chain(t: &Team) -> Json {
    let (code, ja, err) = t.push_run(&t.a, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{ja}\n{err}");
    assert!(err.contains("published 3 results"), "{err}");
    assert_eq!(t.a.marks().len(), 3);
    let (code, jb, err) = t.read_run(&t.b, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{jb}\n{err}");
    assert!(!err.contains("warning"), "{err}");
    for s in ["up", "cnt", "both"] {
        assert!(from_remote(&jb, s), "{s}: {jb}");
    }
    assert!(t.b.marks().is_empty(), "B computed {:?}", t.b.marks());
    assert_eq!(outputs(&ja), outputs(&jb));
    jb
}

fn shares_results(remote: Remote) {
    let t = Team::new(remote);
    let jb = share_chain(&t);
    // Byte-identical objects in B's store.
    for (_, outs) in outputs(&jb) {
        for h in outs.as_object().unwrap().values() {
            let h = h.as_str().unwrap();
            assert_eq!(
                std::fs::read(t.a.object(h)).unwrap(),
                std::fs::read(t.b.object(h)).unwrap()
            );
        }
    }
    // B's lineage reaches the raw input through the fetched steps.
    let both = step_of(&jb, "both")["outputs"]["out"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = t.run(&t.b, &["lineage", &both[..12], "--up", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("workflows/data/text.txt"), "{text}");
    // show and why say where the results came from.
    let out = t.run(&t.b, &["show", "latest"]);
    let text = stdout(&out);
    assert!(text.contains("from remote"), "{text}");
    assert!(text.contains("signed by `ci`"), "{text}");
    let out = t.run(&t.b, &["why", "workflows/chain.yaml", "cnt"]);
    let text = stdout(&out);
    assert!(text.contains("not computed here: from remote"), "{text}");
    assert!(text.contains("signed by `ci`"), "{text}");
    // So does the dashboard, on the run's screen.
    let out = t.run(&t.b, &["tui", "--once", "--run", "latest"]);
    let screen = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(screen.contains("from remote"), "{screen}");
    // A rerun in B is all local cache hits: no request is needed.
    let (code, again, _) = t.read_run(&t.b, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    for (name, status, reason) in reasons(&again) {
        assert_eq!(status, "cached", "{name}");
        assert!(reason.contains("earlier run"), "{name}: {reason}");
    }
    // A third clone's live progress: each step is taken, none is said to start.
    let c = portable();
    c.write("pedigree.toml", &t.a.read("pedigree.toml"));
    let out = t.run(&c, &["run", "workflows/chain.yaml", "--jobs", "1"]);
    let (text, progress) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{progress}");
    assert_eq!(
        progress.matches("(from the remote, ").count(),
        3,
        "{progress}"
    );
    assert!(!progress.contains("  start "), "{progress}");
    assert!(text.contains("3 cached (3 from the remote)"), "{text}");
    verify_clean(&t, &t.a);
    verify_clean(&t, &t.b);
}

#[test]
fn two_workspaces_share_results_through_a_folder() {
    shares_results(Remote::folder());
}

#[test]
fn two_workspaces_share_results_through_s3() {
    if let Some(r) = Remote::s3() {
        shares_results(r);
    }
}

/// Damage the remote after A published, then B must compute what is damaged,
/// warn, and end with A's outputs and a clean verify.
fn damaged(remote: Remote, damage: impl Fn(&Team, &Json), step: &str, warning: &str) {
    let t = Team::new(remote);
    let (code, ja, err) = t.push_run(&t.a, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{ja}\n{err}");
    damage(&t, &ja);
    let (code, jb, err) = t.read_run(&t.b, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{jb}\n{err}");
    assert!(err.contains(warning), "expected `{warning}` in:\n{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning:")).count(),
        1,
        "one warning line: {err}"
    );
    assert!(!from_remote(&jb, step), "{jb}");
    assert_eq!(step_of(&jb, step)["status"], "succeeded", "{jb}");
    assert!(t.b.marks().contains(&step.to_owned()), "{:?}", t.b.marks());
    assert_eq!(outputs(&ja), outputs(&jb), "B's outputs are A's");
    verify_clean(&t, &t.b);
}

fn output_hash(j: &Json, step: &str, slot: &str) -> String {
    step_of(j, step)["outputs"][slot]
        .as_str()
        .unwrap()
        .to_owned()
}

fn flip_a_byte(t: &Team, ja: &Json) {
    let p = t.remote.blob(&output_hash(ja, "up", "out"));
    let mut bytes = t.remote.get(&p);
    bytes[0] ^= 1;
    t.remote.put(&p, &bytes);
}

fn truncate(t: &Team, ja: &Json) {
    let p = t.remote.blob(&output_hash(ja, "up", "out"));
    let bytes = t.remote.get(&p);
    t.remote.put(&p, &bytes[..bytes.len() / 2]);
}

fn delete_blob(t: &Team, ja: &Json) {
    t.remote
        .delete(&t.remote.blob(&output_hash(ja, "up", "out")));
}

#[test]
fn a_flipped_byte_in_a_blob_is_a_miss() {
    damaged(Remote::folder(), flip_a_byte, "up", "is damaged");
    if let Some(r) = Remote::s3() {
        damaged(r, flip_a_byte, "up", "is damaged");
    }
}

#[test]
fn a_truncated_blob_is_a_miss() {
    damaged(Remote::folder(), truncate, "up", "bytes, its entry says");
    if let Some(r) = Remote::s3() {
        damaged(r, truncate, "up", "bytes, its entry says");
    }
}

#[test]
fn a_deleted_blob_is_a_miss() {
    damaged(Remote::folder(), delete_blob, "up", "is missing");
    if let Some(r) = Remote::s3() {
        damaged(r, delete_blob, "up", "is missing");
    }
}

#[test]
fn an_entry_copied_under_another_key_is_a_miss() {
    let copy = |t: &Team, ja: &Json| {
        let (up, cnt) = (
            step_of(ja, "up")["key"].as_str().unwrap().to_owned(),
            step_of(ja, "cnt")["key"].as_str().unwrap().to_owned(),
        );
        let from = t.remote.entries_of(&up).pop().unwrap();
        let to = t.remote.entries_of(&cnt).pop().unwrap();
        let bytes = t.remote.get(&from);
        t.remote.put(&to, &bytes);
    };
    damaged(Remote::folder(), copy, "cnt", "is for another step key");
}

#[test]
fn an_entry_signed_by_an_untrusted_key_is_a_miss() {
    let t = Team::new(Remote::folder());
    let (code, ja, _) = t.push_run(&t.a, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    // Mallory has write access to the bucket and a key of her own, which nobody
    // trusts: she publishes a poisoned `up` and moves it into the trusted slot.
    let mallory = portable();
    mallory.write("pedigree.toml", &t.remote.toml());
    mallory.write(
        "plugins/upper/run.sh",
        "set -eu\necho poisoned > \"$PEDIGREE_OUTPUT_OUT\"\n",
    );
    // Her plugin differs, so her key differs: she signs an entry for A's key by
    // hand-editing nothing but the slot; the signature is hers.
    let mkey = t.home.path().join("keys/mallory.key");
    let out = t.run(&mallory, &["key", "new", "--out", mkey.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = t
        .cmd(
            &mallory,
            &["run", "workflows/chain.yaml", "--json", "--push"],
        )
        .env("PEDIGREE_SIGNING_KEY_FILE", &mkey)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let jm: Json = serde_json::from_slice(&out.stdout).unwrap();
    let mkey_up = step_of(&jm, "up")["key"].as_str().unwrap().to_owned();
    let poisoned = t.remote.get(&t.remote.entries_of(&mkey_up).pop().unwrap());
    let up = step_of(&ja, "up")["key"].as_str().unwrap().to_owned();
    let slot = t.remote.entries_of(&up).pop().unwrap();
    t.remote.put(&slot, &poisoned);

    let (code, jb, err) = t.read_run(&t.b, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("does not trust"), "{err}");
    assert_eq!(step_of(&jb, "up")["status"], "succeeded");
    assert_eq!(outputs(&ja), outputs(&jb));
    // Mallory's own slot is never read: B trusts only `ci`.
    assert!(!err.contains("poisoned"));
    verify_clean(&t, &t.b);
}

#[test]
fn a_workspace_without_the_key_reads_but_cannot_publish() {
    let t = Team::new(Remote::folder());
    let out = t.run(&t.b, &["run", "workflows/chain.yaml", "--push"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no signing key"), "{err}");
    assert!(
        t.remote.list().is_empty(),
        "nothing published without a key"
    );
}

#[test]
fn push_publishes_a_past_run() {
    let t = Team::new(Remote::s3().unwrap_or_else(Remote::folder));
    let (code, _, _) = t.read_run(&t.a, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    assert!(t.remote.entries().is_empty());
    let out = t
        .cmd(&t.a, &["push", "latest"])
        .env("PEDIGREE_SIGNING_KEY_FILE", &t.key_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("published 3 results"),
        "{}",
        stdout(&out)
    );
    let (code, jb, err) = t.read_run(&t.b, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{err}");
    for s in ["up", "cnt", "both"] {
        assert!(from_remote(&jb, s), "{jb}");
    }
}

#[test]
fn a_stopped_server_is_a_warning_and_a_local_run() {
    let Some(remote) = Remote::s3() else {
        return;
    };
    let mut t = Team::new(remote);
    // A publishes; the server stops while its first step runs.
    let child = t
        .cmd(
            &t.a,
            &[
                "run",
                "workflows/chain.yaml",
                "--json",
                "--push",
                "--set",
                "up.sleep=2",
            ],
        )
        .env("PEDIGREE_SIGNING_KEY_FILE", &t.key_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    if let Remote::S3(m) = &mut t.remote {
        m.stop();
    }
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("unreachable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "bounded");
    // B with the server gone: every step computes locally, one warning.
    let started = Instant::now();
    let (code, jb, err) = t.read_run(&t.b, "workflows/chain.yaml", &["--set", "up.sleep=2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(t.b.marks().len(), 3);
    assert!(
        reasons(&jb).iter().all(|(_, s, _)| s == "succeeded"),
        "{jb}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("unreachable")).count(),
        1,
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
    verify_clean(&t, &t.a);
    verify_clean(&t, &t.b);
}

#[test]
fn a_wrong_credential_is_a_warning_and_a_local_run() {
    let Some((moto, id, secret)) = Moto::start_authenticated() else {
        return;
    };
    let t = Team::new(Remote::S3(moto));
    let out = t
        .cmd(&t.a, &["run", "workflows/chain.yaml", "--json", "--push"])
        .env("PEDIGREE_SIGNING_KEY_FILE", &t.key_file)
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .output()
        .unwrap();
    let (code, ja, err) = parse(out);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("published 3 results"), "{err}");
    // B has the key id but a wrong secret: the server refuses every request.
    let wrong = "wrong-secret-do-not-print";
    let out = t
        .cmd(&t.b, &["run", "workflows/chain.yaml", "--json"])
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", wrong)
        .output()
        .unwrap();
    let (code, jb, err) = parse(out);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning:")).count(),
        1,
        "{err}"
    );
    assert!(!err.contains(wrong) && !err.contains(&secret), "{err}");
    assert_eq!(t.b.marks().len(), 3);
    assert_eq!(outputs(&ja), outputs(&jb));
    verify_clean(&t, &t.b);
    // With the right secret, a third clone takes everything from the remote.
    let c = portable();
    c.write("pedigree.toml", &t.a.read("pedigree.toml"));
    let (code, jc, err) = parse(
        t.cmd(&c, &["run", "workflows/chain.yaml", "--json"])
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    for s in ["up", "cnt", "both"] {
        assert!(from_remote(&jc, s), "{jc}");
    }
}

#[test]
fn two_workspaces_pushing_one_key_at_once_agree() {
    let t = Team::new(Remote::s3().unwrap_or_else(Remote::folder));
    let spawn = |ws: &Ws| {
        t.cmd(ws, &["run", "workflows/chain.yaml", "--json", "--push"])
            .env("PEDIGREE_SIGNING_KEY_FILE", &t.key_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&t.a), spawn(&t.b));
    let (oa, ob) = (
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
    );
    assert!(oa.status.success() && ob.status.success());
    let (ea, eb) = (stderr(&oa), stderr(&ob));
    assert!(
        !ea.contains("not deterministic") && !eb.contains("not deterministic"),
        "{ea}\n{eb}"
    );
    // One entry per key: the writers agreed.
    assert_eq!(t.remote.entries().len(), 3, "{:?}", t.remote.entries());
    let c = portable();
    c.write("pedigree.toml", &t.a.read("pedigree.toml"));
    let (code, jc, err) = t.read_run(&c, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(c.marks().is_empty(), "{jc}");
    verify_clean(&t, &t.a);
    verify_clean(&t, &t.b);
}

#[test]
fn a_second_writer_with_other_outputs_records_the_step_as_nondeterministic() {
    let t = Team::new(Remote::folder());
    let (code, _, _) = t.push_run(&t.a, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    // B's `count` is the same plugin, but the machine's `wc` lies: other bytes
    // for the same key.
    push_lying_count(&t, &t.key_file);
    let out = t.run(&t.b, &["show", "latest"]);
    assert!(
        stdout(&out).contains("not deterministic"),
        "{}",
        stdout(&out)
    );
    // The dashboard's run screen, with `cnt` (the second step) selected.
    let out = t.run(&t.b, &["tui", "--once", "--run", "latest", "--keys", "j"]);
    let screen = stdout(&out);
    assert!(screen.contains("not deterministic"), "{screen}");
}

/// B recomputes `cnt` with a `wc` that lies (other bytes for the same key) and
/// publishes it signed by `key`: the remote already holds A's outputs for that key.
fn push_lying_count(t: &Team, key: &Path) {
    t.b.write("bin/wc", "#!/bin/sh\necho 999\n");
    let bin = t.b.path().join("bin");
    std::fs::set_permissions(
        bin.join("wc"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let args = [
        "run",
        "workflows/chain.yaml",
        "--json",
        "--push",
        "--force",
        "cnt",
    ];
    let out = t
        .cmd(&t.b, &args)
        .env("PEDIGREE_SIGNING_KEY_FILE", key)
        .env("PATH", path)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("step `cnt` is not deterministic"), "{err}");
}

#[test]
fn remote_check_passes_on_moto_and_on_a_folder() {
    for r in [Some(Remote::folder()), Remote::s3()].into_iter().flatten() {
        let t = Team::new(r);
        let out = t.run(&t.a, &["remote", "check"]);
        let text = stdout(&out);
        assert!(out.status.success(), "{text}{}", stderr(&out));
        assert_eq!(text.matches("ok  ").count(), 4, "{text}");
        assert!(text.contains("one winner of 32"), "{text}");
        // The probes clean up after themselves.
        assert!(
            t.remote.list().iter().all(|p| !p.contains("probe")),
            "{:?}",
            t.remote.list()
        );
    }
}

#[test]
fn remote_gc_keeps_what_lock_files_pin() {
    let t = Team::new(Remote::folder());
    // An older variant, then the current one: the lock file pins the current.
    let (code, old, _) = t.push_run(&t.a, "workflows/chain.yaml", &["--set", "params.suffix=?"]);
    assert_eq!(code, 0);
    let (code, cur, _) = t.push_run(&t.a, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    let entries = t.remote.entries().len();
    let dry = t.run(
        &t.a,
        &["remote", "gc", "--grace-hours", "0", "--dry-run", "--json"],
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    let d: Json = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(t.remote.entries().len(), entries, "dry run removes nothing");
    let out = t.run(&t.a, &["remote", "gc", "--grace-hours", "0", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let g: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["entries_removed"], d["entries_removed"]);
    assert!(g["entries_removed"].as_u64().unwrap() >= 2, "{g}");
    // The old variant's `up` entry and its blob are gone; the current ones stay.
    let old_up = step_of(&old, "up")["key"].as_str().unwrap();
    assert!(t.remote.entries_of(old_up).is_empty());
    let old_blob = t.remote.blob(&output_hash(&old, "up", "out"));
    assert!(!t.remote.list().contains(&old_blob));
    let (code, jb, err) = t.read_run(&t.b, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{err}");
    for s in ["up", "cnt", "both"] {
        assert!(from_remote(&jb, s), "{jb}");
    }
    assert_eq!(outputs(&cur), outputs(&jb));
}

#[test]
fn credentials_never_reach_lineage_logs_lock_files_entries_or_arguments() {
    let t = Team::new(Remote::folder());
    let canary = "CANARY-5ecret-d0-not-leak";
    let key_text = std::fs::read_to_string(&t.key_file).unwrap();
    let seed = key_text.trim().rsplit(':').next().unwrap().to_owned();
    // A plugin that prints its whole environment and argv.
    t.a.plugin(
        "snoop",
        "command: [sh, \"${plugin}/run.sh\"]\ninputs: { src: {} }\noutputs: { out: { file: o.txt } }\nsandbox: false\n",
        "env > \"$PEDIGREE_OUTPUT_OUT\"; echo \"$0 $*\" >> \"$PEDIGREE_OUTPUT_OUT\"; env >&2\n",
    );
    t.a.write(
        "workflows/snoop.yaml",
        "name: snoop\ninputs: { text: data/text.txt }\nsteps:\n  snoop:\n    plugin: snoop\n    inputs: { src: inputs.text }\n",
    );
    let out = t
        .cmd(&t.a, &["run", "workflows/snoop.yaml", "--push"])
        .env("AWS_SECRET_ACCESS_KEY", canary)
        .env("AWS_SESSION_TOKEN", canary)
        .env("PEDIGREE_SIGNING_KEY", &key_text)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut files = Vec::new();
    walk(t.a.path(), t.a.path(), &mut files);
    let mut remote_files = t.remote.list();
    remote_files.sort();
    let mut leaks = Vec::new();
    for f in &files {
        let bytes = std::fs::read(t.a.path().join(f)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        if text.contains(canary) || text.contains(&seed) {
            leaks.push(format!("workspace {f}"));
        }
    }
    for f in &remote_files {
        let text = String::from_utf8_lossy(&t.remote.get(f)).into_owned();
        if text.contains(canary) || text.contains(&seed) {
            leaks.push(format!("remote {f}"));
        }
    }
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    if printed.contains(canary) || printed.contains(&seed) {
        leaks.push("the command's output".into());
    }
    assert!(leaks.is_empty(), "secrets leaked into: {leaks:?}");
    // The remote really was used (the test would pass vacuously otherwise).
    assert!(!t.remote.entries().is_empty());
}

#[test]
fn a_remote_url_with_credentials_is_refused() {
    let ws = Ws::new();
    ws.write(
        "pedigree.toml",
        "[remote]\nurl = \"s3://AKIAEXAMPLE:wJalrXUtnFEMI@team-cache/p\"\n",
    );
    let out = ws.run(&["run", "workflows/chain.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("carries credentials"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert!(
        !err.contains("wJalrXUtnFEMI"),
        "the secret is not repeated: {err}"
    );
    assert!(ws.marks().is_empty());
    // --no-remote runs without it; --remote overrides it.
    let out = ws.run(&["run", "workflows/chain.yaml", "--no-remote"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn pull_fetches_what_a_workflow_needs_without_running_it() {
    let t = Team::new(Remote::folder());
    let (code, ja, _) = t.push_run(&t.a, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    let out = t.run(&t.b, &["pull", "workflows/chain.yaml"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("pulled 3 steps"), "{text}");
    assert!(t.b.marks().is_empty(), "pull runs nothing");
    // Every object is in B's store, checked; nothing was recorded as a run.
    for (_, outs) in outputs(&ja) {
        for h in outs.as_object().unwrap().values() {
            assert!(t.b.object(h.as_str().unwrap()).exists());
        }
    }
    let runs = t.run(&t.b, &["runs", "--json"]);
    assert!(runs.status.success(), "{}", stderr(&runs));
    let listed: Json = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(listed, Json::Array(Vec::new()), "pull recorded a run");
    // The run that follows takes every step from the remote (its objects are
    // already here: only the entries are read).
    let (code, jb, err) = t.read_run(&t.b, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(from_remote(&jb, "both"), "{jb}");
}

#[test]
fn a_model_from_the_remote_explains_its_recommendations_down_to_raw_rows() {
    let t = Team::new(Remote::s3().unwrap_or_else(Remote::folder));
    for ws in [&t.a, &t.b] {
        ws.write("workflows/data/events.csv", &crate::gnn::events_csv());
        ws.write("workflows/data/items.csv", &crate::gnn::items_csv());
        ws.write("workflows/gnn.yaml", crate::gnn::WORKFLOW);
    }
    let (code, ja, err) = t.push_run(&t.a, "workflows/gnn.yaml", &[]);
    assert_eq!(code, 0, "{err}");
    let (code, jb, err) = t.read_run(&t.b, "workflows/gnn.yaml", &[]);
    assert_eq!(code, 0, "{err}");
    for s in ["graph", "train", "evaluate"] {
        assert!(from_remote(&jb, s), "{s}: {jb}");
    }
    // A release is the workspace's own registry and lineage: `publish` runs in B,
    // and writes the same bytes.
    assert_eq!(step_of(&jb, "publish")["status"], "succeeded", "{jb}");
    assert_eq!(outputs(&ja), outputs(&jb));
    let args = [
        "recommend",
        "--release",
        "tiny",
        "--user",
        "u04",
        "-k",
        "3",
        "--json",
    ];
    let (ra, rb) = (t.run(&t.a, &args), t.run(&t.b, &args));
    assert!(rb.status.success(), "{}", stderr(&rb));
    let (ja, jb): (Json, Json) = (
        serde_json::from_slice(&ra.stdout).unwrap(),
        serde_json::from_slice(&rb.stdout).unwrap(),
    );
    // Down to the rows of the raw event log, through the fetched steps' lineage.
    let rows = jb["recommendations"][0]["because"][0]["rows"].to_string();
    assert!(rows.contains("events.csv"), "{rows}");
    assert_eq!(ja["recommendations"], jb["recommendations"]);
    verify_clean(&t, &t.b);
}

#[test]
fn a_private_key_is_never_written_inside_a_workspace() {
    let t = Team::new(Remote::folder());
    let inside = t.a.path().join("keys/ci.key");
    let out = t.run(&t.a, &["key", "new", "--out", inside.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("must never be committed"),
        "{}",
        stderr(&out)
    );
    assert!(!inside.exists());
    // The key file Team made is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&t.key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

#[test]
fn status_and_dry_run_say_what_a_run_would_take_from_the_remote() {
    let t = Team::new(Remote::folder());
    let (code, ja, _) = t.push_run(&t.a, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    let out = t.run(&t.b, &["status", "workflows/chain.yaml", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: Json = serde_json::from_slice(&out.stdout).unwrap();
    for s in j["steps"].as_array().unwrap() {
        // Downstream keys are known too: computed from the remote's outputs.
        assert_eq!(s["state"], "remote", "{j}");
        assert!(s["key"].is_string(), "{j}");
    }
    let out = t.run(&t.b, &["run", "workflows/chain.yaml", "--dry-run"]);
    let text = stdout(&out);
    assert!(text.contains("0 of 3 steps would run"), "{text}");
    assert_eq!(text.matches("  fetch ").count(), 3, "{text}");
    let out = t.run(&t.b, &["why", "workflows/chain.yaml", "both"]);
    assert!(
        stdout(&out).contains("a run takes it from remote"),
        "{}",
        stdout(&out)
    );
    // Nothing was downloaded or run; --no-remote sees only the local cache.
    assert!(t.b.marks().is_empty());
    let both = output_hash(&ja, "both", "out");
    assert!(!t.b.object(&both).exists(), "status downloaded an object");
    let out = t.run(&t.b, &["status", "workflows/chain.yaml", "--no-remote"]);
    assert_eq!(stdout(&out).matches("stale").count(), 3, "{}", stdout(&out));
}

#[test]
fn two_trusted_writers_with_other_outputs_for_one_key_are_told() {
    let t = Team::new(Remote::folder());
    let (code, _, _) = t.push_run(&t.a, "workflows/chain.yaml", &[]);
    assert_eq!(code, 0);
    // A second trusted writer (another CI runner) whose `wc` gives other bytes.
    let key2 = t.home.path().join("keys/ci2.key");
    let out = t.run(&t.b, &["key", "new", "--out", key2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public2 = stdout(&out).trim().to_owned();
    let out = t.run(&t.b, &["key", "trust", &public2, "--name", "ci2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    push_lying_count(&t, &key2);
    // Its own slot took the result: two entries for the key, one per writer.
    let (_, jb, _) = parse(t.run(&t.b, &["run", "workflows/chain.yaml", "--json"]));
    let cnt = step_of(&jb, "cnt")["key"].as_str().unwrap().to_owned();
    assert_eq!(t.remote.entries_of(&cnt).len(), 2);
}
