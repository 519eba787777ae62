//! The dashboard on lineage databases made by running real workflows: render
//! snapshots of every screen (through ratatui's `TestBackend`), `--once` through
//! the real binary, live refresh through the real reader thread, and one session
//! driven by keys in a real terminal (tmux).

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use pedigree::lineage::{Db, ReadDb, Status};
use pedigree::tui::app::{App, Event, Key, Screen, update};
use pedigree::tui::data::{Incoming, Loader};
use pedigree::tui::{buffer_text, press, render, settle};

/// `train`: per-epoch `loss` and `val_ndcg` for `epochs` epochs (shaped by `lr`),
/// then final metrics for the model and a `popularity/` baseline.
const TRAIN_YAML: &str = r#"
command: [sh, "${plugin}/run.sh"]
inputs: { data: {} }
outputs: { model: { file: model.txt, kind: model, media_type: text/plain } }
params:
  lr: { type: float, default: 0.1 }
  epochs: { type: int, default: 5 }
"#;

const TRAIN_SH: &str = r#"set -eu
awk -v lr="$PEDIGREE_PARAM_LR" -v n="$PEDIGREE_PARAM_EPOCHS" 'BEGIN {
  printf "["
  for (e = 1; e <= n; e++) {
    printf "{\"key\":\"loss\",\"value\":%.4f,\"step\":%d},", 1.0 / (1 + lr * e * 10), e
    printf "{\"key\":\"val_ndcg\",\"value\":%.4f,\"step\":%d},", 0.05 + lr * e / 10, e
  }
  printf "{\"key\":\"ndcg@20\",\"value\":%.4f},", 0.05 + lr * n / 10
  printf "{\"key\":\"recall@20\",\"value\":%.4f},", 0.1 + lr * n / 10
  printf "{\"key\":\"popularity/ndcg@20\",\"value\":0.0400},"
  printf "{\"key\":\"popularity/recall@20\",\"value\":0.0800}"
  printf "]\n"
}' > metrics.json
echo '{"rows": {"train": 100, "valid": 20}}' > facets.json
printf 'model lr=%s\n' "$PEDIGREE_PARAM_LR" > "$PEDIGREE_OUTPUT_MODEL"
"#;

const TRAIN_WF: &str = r#"
name: train
inputs:
  text: data/text.txt
params:
  lr: 0.1
steps:
  up:
    plugin: upper
    inputs: { src: inputs.text }
  fit:
    plugin: train
    inputs: { data: up.out }
    with: { lr: "${params.lr}" }
"#;

const FAIL_WF: &str = "name: broken\ninputs: { text: data/text.txt }\nsteps:\n  a:\n    plugin: count\n    inputs: { src: inputs.text }\n  b:\n    plugin: upper\n    inputs: { src: a.n }\n    with: { fail: true }\n  c:\n    plugin: count\n    inputs: { src: b.out }\n";

/// Run a workflow with a deterministic environment (no `TEST_MARK_DIR`, which
/// the test plugins hash into their keys).
fn run_wf(ws: &Ws, args: &[&str]) {
    let mut c = ws.cmd(args);
    c.env_remove("TEST_MARK_DIR").env_remove("CHAIN_FLAVOUR");
    let out = c.output().expect("run pedigree");
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        stderr(&out)
    );
}

/// A workspace with six runs: chain twice (the second cached), chain with a
/// changed param, a failing workflow, and two training runs with different `lr`.
fn history() -> Ws {
    let ws = Ws::new();
    ws.plugin("train", TRAIN_YAML, TRAIN_SH);
    ws.write("workflows/train.yaml", TRAIN_WF);
    ws.write("workflows/broken.yaml", FAIL_WF);
    run_wf(&ws, &["run", "workflows/chain.yaml"]);
    run_wf(&ws, &["run", "workflows/chain.yaml"]);
    run_wf(
        &ws,
        &["run", "workflows/chain.yaml", "--set", "params.suffix=?"],
    );
    run_wf(&ws, &["run", "workflows/broken.yaml"]);
    run_wf(&ws, &["run", "workflows/train.yaml"]);
    run_wf(
        &ws,
        &["run", "workflows/train.yaml", "--set", "params.lr=0.3"],
    );
    ws
}

/// Pin the times, host and user the runs recorded, so screens are stable. This
/// is the test writing the database; the dashboard only reads it.
async fn pin_times(ws: &Ws) {
    let dot = ws.path().join(".pedigree");
    let db = Db::open(&dot.join("lineage.db"), &dot.join("locks"))
        .await
        .unwrap();
    for sql in [
        "UPDATE runs SET started_at = printf('2026-01-01T10:%02d:00.000Z', id), host = 'host', user = 'user', git_commit = NULL, git_dirty = NULL",
        "UPDATE runs SET finished_at = printf('2026-01-01T10:%02d:07.500Z', id) WHERE finished_at IS NOT NULL",
        "UPDATE step_runs SET started_at = printf('2026-01-01T10:%02d:01.000Z', run_id)",
        "UPDATE step_runs SET finished_at = printf('2026-01-01T10:%02d:02.250Z', run_id) WHERE finished_at IS NOT NULL",
        "UPDATE artifacts SET created_at = '2026-01-01T10:00:00.000Z'",
    ] {
        sqlx::query(sql).execute(db.pool()).await.unwrap();
    }
    db.close().await;
}

async fn read_db(ws: &Ws) -> ReadDb {
    Db::open_read_only(&ws.path().join(".pedigree/lineage.db"))
        .await
        .unwrap()
}

/// Open the app on `screen` requests, answer them, press `keys`, draw. Step keys
/// are masked (same width): they change whenever the key derivation does, which is
/// not what these snapshots pin.
async fn screen(db: &ReadDb, setup: impl FnOnce(&mut App), keys: &[Key], w: u16, h: u16) -> String {
    let mut app = App::new();
    setup(&mut app);
    app.pending.clear();
    let start = app.start();
    settle(db, &mut app, start).await.unwrap();
    press(db, &mut app, keys).await.unwrap();
    let mut text = buffer_text(&render(&app, w, h));
    let step_keys: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT step_key FROM step_runs WHERE step_key IS NOT NULL")
            .fetch_all(db.pool())
            .await
            .unwrap();
    for k in step_keys {
        text = text.replace(&k, &format!("<step key>{}", "-".repeat(54)));
        text = text.replace(&k[..12], "<step key>--");
    }
    text
}

async fn hash_of(db: &ReadDb, query: &str) -> String {
    db.search_artifacts(query, 5).await.unwrap()[0]
        .artifact_hash
        .clone()
}

#[tokio::test(flavor = "current_thread")]
async fn every_screen_renders_at_80x24_and_larger() {
    let ws = history();
    pin_times(&ws).await;
    let db = read_db(&ws).await;

    let runs = screen(&db, |_| {}, &[], 80, 24).await;
    insta::assert_snapshot!("runs_80x24", runs);
    let runs_wide = screen(&db, |_| {}, &[], 140, 30).await;
    insta::assert_snapshot!("runs_140x30", runs_wide);
    let filtered = screen(
        &db,
        |_| {},
        &[Key::Char('s'), Key::Char('s'), Key::Char('s')],
        80,
        12,
    )
    .await;
    insta::assert_snapshot!("runs_failed_only", filtered);

    // Run 3: `up` reran because of the param; select `cnt` to see its detail.
    let run = screen(
        &db,
        |a| drop(a.open_run(3, None)),
        &[Key::Char('j')],
        80,
        24,
    )
    .await;
    insta::assert_snapshot!("run_80x24", run);
    let run_wide = screen(&db, |a| drop(a.open_run(3, None)), &[], 140, 30).await;
    insta::assert_snapshot!("run_140x30", run_wide);
    // The failed run: the failed step's error and stderr tail.
    let failed = screen(
        &db,
        |a| drop(a.open_run(4, None)),
        &[Key::Char('j')],
        80,
        24,
    )
    .await;
    assert!(failed.contains("upper: asked to fail"), "{failed}");
    insta::assert_snapshot!("run_failed", failed);

    // The model of run 6: ancestry up to the raw input, descendants (none).
    let model = db.output_of_run(6, "fit", "model").await.unwrap().unwrap();
    let art = screen(&db, |a| drop(a.open_artifact(model.clone())), &[], 80, 24).await;
    insta::assert_snapshot!("artifact_80x24", art);
    // The raw input: descendants down through every workflow that read it.
    let raw = hash_of(&db, "workflows/data/text.txt").await;
    let down = screen(
        &db,
        |a| drop(a.open_artifact(raw.clone())),
        &[Key::Char('j')],
        140,
        40,
    )
    .await;
    insta::assert_snapshot!("artifact_descendants_140x40", down);

    let metrics = screen(&db, |a| drop(a.open_metrics(6, None)), &[], 80, 24).await;
    insta::assert_snapshot!("metrics_80x24", metrics);
    let compare = screen(
        &db,
        |a| drop(a.open_metrics(5, Some(6))),
        &[Key::Char('j')],
        120,
        36,
    )
    .await;
    insta::assert_snapshot!("metrics_compare_120x36", compare);

    let help = screen(&db, |_| {}, &[Key::Char('?')], 80, 24).await;
    insta::assert_snapshot!("help_80x24", help);
    let search = screen(
        &db,
        |_| {},
        &"/text.txt"
            .chars()
            .map(Key::Char)
            .chain([Key::Enter])
            .collect::<Vec<_>>(),
        80,
        24,
    )
    .await;
    insta::assert_snapshot!("search_80x24", search);
}

#[tokio::test(flavor = "current_thread")]
async fn keys_walk_from_runs_to_an_artifacts_ancestry_and_back() {
    let ws = history();
    let db = read_db(&ws).await;
    let mut app = App::new();
    let start = app.start();
    settle(&db, &mut app, start).await.unwrap();
    assert_eq!(app.runs.rows.len(), 6);
    assert_eq!(app.runs.rows[0].run.id, 6, "newest first");
    // Down to run 3 (rows are 6, 5, 4, 3, ...), open it, open `up`'s output.
    press(
        &db,
        &mut app,
        &[Key::Char('j'), Key::Char('j'), Key::Char('j'), Key::Enter],
    )
    .await
    .unwrap();
    let Screen::Run(r) = app.top() else {
        panic!("not on a run: {:?}", app.top().title())
    };
    assert_eq!(r.id, 3);
    let d = r.detail.as_ref().expect("loaded");
    assert_eq!(d.steps[0].row.step, "up");
    assert!(
        d.steps[0].row.reason.contains("params.suffix"),
        "{:?}",
        d.steps[0].row.reason
    );
    assert_eq!(d.steps[1].depth, 1, "`cnt` reads `up`");
    press(&db, &mut app, &[Key::Enter]).await.unwrap();
    let Screen::Artifact(a) = app.top() else {
        panic!("not on an artifact")
    };
    let d = a.detail.as_ref().expect("loaded");
    assert_eq!(d.up.len(), 1, "made by `up` from the raw input");
    assert!(d.sources.contains_key(d.up[0].far.as_ref().unwrap()));
    // Fold the ancestry, then `r` on the made-by row jumps to the run that made it.
    press(&db, &mut app, &[Key::Char('j'), Key::Char('r')])
        .await
        .unwrap();
    assert!(matches!(app.top(), Screen::Run(r) if r.id == 3 && r.selected == 0));
    press(&db, &mut app, &[Key::Esc, Key::Esc, Key::Esc])
        .await
        .unwrap();
    assert!(matches!(app.top(), Screen::Runs));
    press(&db, &mut app, &[Key::Char('q')]).await.unwrap();
    assert!(app.quit);
}

#[tokio::test(flavor = "current_thread")]
async fn search_finds_hash_prefixes_paths_and_step_outputs() {
    let ws = history();
    let db = read_db(&ws).await;
    let model = db.output_of_run(5, "fit", "model").await.unwrap().unwrap();
    let hits = db.search_artifacts(&model[..8], 10).await.unwrap();
    assert_eq!(hits[0].artifact_hash, model);
    let hits = db.search_artifacts("5/fit.model", 10).await.unwrap();
    assert_eq!(hits[0].artifact_hash, model);
    let hits = db.search_artifacts("data/text", 10).await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].label, "workflows/data/text.txt");
    assert!(
        db.search_artifacts("nothing-like-it", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn once_prints_a_screen_and_never_writes_the_database() {
    let ws = history();
    let dot = ws.path().join(".pedigree");
    let digest = || {
        ["lineage.db", "lineage.db-wal"]
            .iter()
            .map(|f| std::fs::read(dot.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let before = digest();
    let out = ws.run(&["tui", "--once", "--width", "80", "--height", "24"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("6 of 6 runs"), "{text}");
    assert!(!text.contains('\u{1b}'), "plain text, no escape codes");
    let out = ws.run(&["tui", "--once", "--artifact", "workflows/data/text.txt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("descendants"), "{}", stdout(&out));
    let out = ws.run(&["tui", "--once", "--run", "latest", "--keys", "j<Enter>"]);
    assert!(stdout(&out).contains("made by"), "{}", stdout(&out));
    let out = ws.run(&["tui", "--once", "--run", "5", "--compare", "6"]);
    assert!(stdout(&out).contains("param diff"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("fit.lr: 0.1 → 0.3"),
        "{}",
        stdout(&out)
    );
    assert_eq!(before, digest(), "the dashboard changed the database");

    let out = ws.run(&["tui", "--once", "--run", "99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("there is no run 99"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["tui", "--once", "--artifact", "ffff0000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no artifact matches"),
        "{}",
        stderr(&out)
    );
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--workspace"])
        .arg(empty.path())
        .args(["tui", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no pedigree workspace"),
        "{}",
        stderr(&out)
    );
}

/// Drive the app with the real reader thread until `done` holds (or time runs out).
fn pump(
    app: &mut App,
    loader: &Loader,
    rx: &mpsc::Receiver<Incoming>,
    done: impl Fn(&App) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(app) {
        assert!(
            Instant::now() < deadline,
            "timed out; runs: {:?}",
            app.runs
                .rows
                .iter()
                .map(|r| (r.run.id, r.run.status))
                .collect::<Vec<_>>()
        );
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Incoming::Reply((req, res))) => {
                for r in update(app, Event::Loaded(req, res)) {
                    loader.send(r);
                }
            }
            Ok(Incoming::Failed(m)) => panic!("reader failed: {m}"),
            Ok(Incoming::Signal) => {}
            Err(_) => {
                let now = pedigree::lineage::time::now();
                for r in update(app, Event::Tick { now }) {
                    loader.send(r);
                }
            }
        }
    }
}

#[test]
fn a_run_in_progress_updates_live_through_the_reader_thread() {
    let ws = Ws::new();
    run_wf(&ws, &["run", "workflows/chain.yaml"]);
    let db_path = ws.path().join(".pedigree/lineage.db");
    let (tx, rx) = mpsc::channel();
    let loader = Loader::spawn(db_path, tx).unwrap();
    let mut app = App::new();
    for r in app.start() {
        loader.send(r);
    }
    pump(&mut app, &loader, &rx, |a| a.runs.rows.len() == 1);

    // A slow run: its first step sleeps, so the list sees it running, then done.
    let mut child = ws
        .cmd(&[
            "run",
            "workflows/chain.yaml",
            "--set",
            "up.sleep=1.5",
            "--set",
            "params.suffix=slow",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    pump(&mut app, &loader, &rx, |a| {
        a.runs
            .rows
            .first()
            .is_some_and(|r| r.run.id == 2 && r.run.status == Status::Running)
    });
    // Open it while it runs: the Run screen refreshes on ticks until it finishes.
    for r in update(&mut app, Event::Key(Key::Enter)) {
        loader.send(r);
    }
    pump(
        &mut app,
        &loader,
        &rx,
        |a| matches!(a.top(), Screen::Run(r) if r.detail.as_ref().is_some_and(|d| d.run.run.status == Status::Running)),
    );
    pump(
        &mut app,
        &loader,
        &rx,
        |a| matches!(a.top(), Screen::Run(r) if r.detail.as_ref().is_some_and(|d| d.run.run.status == Status::Succeeded && d.steps.len() == 3)),
    );
    assert!(child.wait().unwrap().success());
}

// ---- a real terminal --------------------------------------------------------------------

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "tui"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    /// Wait until the screen contains `text`; panic with the screen if it never does.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.capture();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "never saw `{text}` on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn tmux_available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    prerequisite(
        found,
        "tmux",
        "`tmux -V` does not run, so the terminal end-to-end test cannot run (`.ci/run` installs it)",
    )
}

#[test]
fn end_to_end_in_a_real_terminal() {
    if !tmux_available() {
        return;
    }
    let ws = history();
    let tmux = Tmux {
        socket: format!("pedigree-test-{}", std::process::id()),
    };
    let cmd = format!(
        "'{}' --workspace '{}' tui; echo \"tui exited $?\"; sleep 30",
        BIN,
        ws.path().display()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "100",
        "-y",
        "30",
        "-e",
        "NO_COLOR=1",
        "sh",
        "-c",
        &cmd,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Open: the runs list.
    let s = tmux.wait_for("6 of 6 runs");
    assert!(s.contains("broken") && s.contains("failed"), "{s}");
    // Select run 3 (down three rows) and open it.
    tmux.keys(&["j", "j", "j", "Enter"]);
    let s = tmux.wait_for("params.suffix");
    assert!(s.contains("run 3"), "{s}");
    // Open the first output of `up`: its ancestry.
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("ancestry (up to raw inputs)");
    assert!(s.contains("made by up run 3"), "{s}");
    assert!(s.contains("= workflows/data/text.txt"), "{s}");
    // Help, then quit; the shell prints the exit code on the normal screen.
    tmux.keys(&["?"]);
    tmux.wait_for(" keys ");
    tmux.keys(&["Escape", "q"]);
    let s = tmux.wait_for("tui exited 0");
    assert!(
        !s.contains("ancestry"),
        "the alternate screen was left:\n{s}"
    );
}
