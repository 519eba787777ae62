//! Unit tests of the SQL, each on a fresh database in a temporary folder, opened
//! (and migrated) by [`Db::open`] exactly as a workspace opens it.

use super::*;
use crate::store::{Fingerprint, Stored};

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    db: Db,
}

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("lineage.db");
    let db = Db::open(&path, dir.path()).await.expect("open");
    Fixture {
        _dir: dir,
        path,
        db,
    }
}

/// A 64-digit hash made of one repeated hex digit pair.
fn h(pair: &str) -> String {
    pair.repeat(32)
}

fn art(hash: &str, kind: &str) -> NewArtifact {
    NewArtifact {
        stored: Stored {
            hash: hash.to_owned(),
            size: 10,
            content_size: 10,
            is_tree: false,
        },
        kind: kind.into(),
        media_type: "text/plain".into(),
    }
}

fn new_run(workflow: &str) -> NewRun {
    NewRun {
        workflow: workflow.into(),
        workflow_path: format!("workflows/{workflow}.yaml"),
        workflow_hash: h("00"),
        git_commit: None,
        git_dirty: None,
        params_json: "{}".into(),
        args_json: "[]".into(),
        host: "host-a".into(),
        user: "me".into(),
    }
}

fn output(slot: &str, hash: &str) -> NewOutput {
    NewOutput {
        slot: slot.into(),
        name: format!("{slot}.txt"),
        artifact: art(hash, "file"),
        fingerprint: None,
    }
}

/// Execute a step (start, then succeed) with `inputs` and `outputs`.
async fn step(
    db: &Db,
    run: i64,
    name: &str,
    key: &str,
    inputs: &[(&str, &str)],
    outputs: &[(&str, &str)],
) -> i64 {
    let inputs: Vec<(String, String)> = inputs
        .iter()
        .map(|(s, a)| ((*s).to_owned(), (*a).to_owned()))
        .collect();
    let id = db
        .start_step(
            run,
            name,
            "plugin:x",
            key,
            "{\"k\":1}",
            "no earlier run",
            &inputs,
        )
        .await
        .expect("start");
    let s = Success {
        outputs: outputs.iter().map(|(s, a)| output(s, a)).collect(),
        ..Success::default()
    };
    db.finish_success(id, &s, None).await.expect("finish");
    id
}

async fn raw_inputs(db: &Db, run: i64, inputs: &[(&str, &str)]) {
    let rows: Vec<(String, String, NewArtifact)> = inputs
        .iter()
        .map(|(name, hash)| {
            (
                (*name).to_owned(),
                format!("data/{name}.csv"),
                art(hash, "table"),
            )
        })
        .collect();
    db.record_run_inputs(run, &rows).await.expect("inputs");
}

#[tokio::test]
async fn a_run_begins_running_and_finishes_with_a_status() {
    let f = fresh().await;
    let db = &f.db;
    assert_eq!(db.latest_run_id().await.unwrap(), None);
    let id = db.begin_run(&new_run("wf")).await.unwrap();
    let run = db.run(id).await.unwrap().expect("recorded");
    assert_eq!(run.status, Status::Running);
    assert_eq!(run.finished_at, None);
    assert_eq!(db.latest_run_id().await.unwrap(), Some(id));
    assert_eq!(db.latest_run_of("wf").await.unwrap(), Some(id));
    assert_eq!(db.latest_run_of("other").await.unwrap(), None);

    db.finish_run(id, Status::Succeeded).await.unwrap();
    let run = db.run(id).await.unwrap().unwrap();
    assert_eq!(run.status, Status::Succeeded);
    assert!(run.finished_at.is_some());
    // The engine still passes the stored text; it is checked.
    db.finish_run(id, "failed").await.unwrap();
    assert_eq!(db.run(id).await.unwrap().unwrap().status, Status::Failed);
    assert!(matches!(
        db.finish_run(id, "done").await,
        Err(LineageError::Status(UnknownStatus(s))) if s == "done"
    ));
}

#[tokio::test]
async fn a_step_run_is_found_by_its_key_only_once_it_succeeded() {
    let f = fresh().await;
    let db = &f.db;
    let run = db.begin_run(&new_run("wf")).await.unwrap();
    raw_inputs(db, run, &[("events", &h("aa"))]).await;
    let id = db
        .start_step(
            run,
            "clean",
            "builtin:clean",
            &h("k1"),
            "{\"m\":1}",
            "no earlier run",
            &[("table".into(), h("aa"))],
        )
        .await
        .unwrap();
    assert!(
        db.lookup(&h("k1")).await.unwrap().is_none(),
        "still running"
    );
    let s = Success {
        outputs: vec![NewOutput {
            fingerprint: Some(Fingerprint {
                ino: 7,
                ctime_ns: 9,
            }),
            ..output("table", &h("bb"))
        }],
        params: vec![("lowercase".into(), "[\"event\"]".into())],
        metrics: vec![
            Metric {
                key: "loss".into(),
                value: 0.5,
                step: Some(1),
            },
            Metric {
                key: "rows".into(),
                value: 10.0,
                step: None,
            },
        ],
        facets: vec![(Some(h("bb")), "counts".into(), "{\"in\":3}".into())],
        stderr_tail: Some("done\n".into()),
        log_hash: Some(h("1f")),
    };
    db.finish_success(id, &s, None).await.unwrap();

    let hit = db.lookup(&h("k1")).await.unwrap().expect("a hit");
    assert_eq!(hit.step_run_id, id);
    assert_eq!(hit.outputs.len(), 1);
    assert_eq!(hit.outputs[0].artifact_hash, h("bb"));
    assert_eq!(
        hit.outputs[0].fingerprint(),
        Some(Fingerprint {
            ino: 7,
            ctime_ns: 9
        })
    );
    let many = db.lookup_many(&[h("k1"), h("k2")]).await.unwrap();
    assert_eq!(many.keys().collect::<Vec<_>>(), vec![&h("k1")]);
    assert_eq!(
        db.inputs_of(id).await.unwrap(),
        vec![("table".to_owned(), h("aa"))]
    );
    assert_eq!(db.metrics_of(id).await.unwrap(), s.metrics);
    let of_many = db.metrics_of_many(&[id]).await.unwrap();
    assert_eq!(of_many.len(), 2);
    assert!(of_many.iter().all(|(sr, _)| *sr == id));
    let facets = db.facets_of(id).await.unwrap();
    assert_eq!(facets.len(), 1);
    assert_eq!(facets[0].artifact_hash.as_deref(), Some(h("bb").as_str()));
    let sr = db.step_run(id).await.unwrap().unwrap();
    assert_eq!(sr.status, Status::Succeeded);
    assert_eq!(sr.log_hash, Some(h("1f")));
    let (last, manifest) = db
        .last_manifest("wf", "clean")
        .await
        .unwrap()
        .expect("a manifest");
    assert_eq!((last.id, manifest.as_str()), (id, "{\"m\":1}"));
    assert_eq!(
        db.manifest(&h("k1")).await.unwrap().as_deref(),
        Some("{\"m\":1}")
    );
}

#[tokio::test]
async fn failed_cached_and_not_run_steps_are_recorded_but_never_hits() {
    let f = fresh().await;
    let db = &f.db;
    let run = db.begin_run(&new_run("wf")).await.unwrap();
    raw_inputs(db, run, &[("events", &h("aa"))]).await;
    let done = step(
        db,
        run,
        "clean",
        &h("k1"),
        &[("table", &h("aa"))],
        &[("table", &h("bb"))],
    )
    .await;
    let failed = db
        .start_step(
            run,
            "train",
            "plugin:x",
            &h("k2"),
            "{}",
            "new",
            &[("table".into(), h("bb"))],
        )
        .await
        .unwrap();
    db.finish_failure(failed, Status::Failed, "exit 1", Some("boom"), None)
        .await
        .unwrap();
    db.record_not_run(
        run,
        "publish",
        "builtin:publish",
        Status::Skipped,
        "upstream failed",
        None,
    )
    .await
    .unwrap();
    db.finish_run(run, Status::Failed).await.unwrap();

    let run2 = db.begin_run(&new_run("wf")).await.unwrap();
    let ids = db
        .record_cached(
            run2,
            &[CachedRecord {
                step: "clean".into(),
                kind: "builtin:clean".into(),
                key: h("k1"),
                reason: "cached".into(),
                cached_from: done,
                inputs: vec![("table".into(), h("aa"))],
                outputs: vec![("table".into(), h("bb"), "table.txt".into())],
            }],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let cached = db.step_run(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (cached.status, cached.cached_from),
        (Status::Cached, Some(done))
    );
    assert_eq!(
        db.outputs_of(ids[0]).await.unwrap()[0].artifact_hash,
        h("bb")
    );
    // The hit stays the step run that computed the outputs.
    assert_eq!(
        db.lookup(&h("k1")).await.unwrap().unwrap().step_run_id,
        done
    );
    assert!(db.lookup(&h("k2")).await.unwrap().is_none(), "failed");

    let statuses: Vec<Status> = db
        .step_runs(run)
        .await
        .unwrap()
        .iter()
        .map(|s| s.status)
        .collect();
    assert_eq!(
        statuses,
        [Status::Succeeded, Status::Failed, Status::Skipped]
    );
    let runs = db.runs(10, Some("wf")).await.unwrap();
    assert_eq!(runs.len(), 2);
    let first = runs.iter().find(|r| r.run.id == run).unwrap();
    assert_eq!((first.ran, first.cached, first.failed), (1, 0, 1));
    let second = runs.iter().find(|r| r.run.id == run2).unwrap();
    assert_eq!((second.ran, second.cached, second.failed), (0, 1, 0));
    let failed_runs = db
        .runs_page(
            &RunFilter {
                workflow: None,
                status: Some("failed".into()),
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        failed_runs.iter().map(|r| r.run.id).collect::<Vec<_>>(),
        [run]
    );
}

#[tokio::test]
async fn every_status_satisfies_the_schema() {
    let f = fresh().await;
    let db = &f.db;
    let run = db.begin_run(&new_run("wf")).await.unwrap();
    for s in Status::ALL {
        let id = db
            .record_not_run(run, "s", "plugin:x", s, "r", None)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(db.step_run(id).await.unwrap().unwrap().status, s);
    }
    for s in Status::RUN {
        db.finish_run(run, s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    // The schema refuses the step-only statuses for a run.
    assert!(db.finish_run(run, Status::Cached).await.is_err());
}

/// a (raw) → up → b; a, b → both → c; a → broken (failed, made nothing).
async fn diamond(db: &Db) -> (i64, i64, i64) {
    let run = db.begin_run(&new_run("wf")).await.unwrap();
    raw_inputs(db, run, &[("text", &h("aa"))]).await;
    let up = step(
        db,
        run,
        "up",
        &h("k1"),
        &[("in", &h("aa"))],
        &[("out", &h("bb"))],
    )
    .await;
    let both = step(
        db,
        run,
        "both",
        &h("k2"),
        &[("left", &h("aa")), ("right", &h("bb"))],
        &[("out", &h("cc"))],
    )
    .await;
    let broken = db
        .start_step(
            run,
            "broken",
            "plugin:x",
            &h("k3"),
            "{}",
            "new",
            &[("in".into(), h("aa"))],
        )
        .await
        .unwrap();
    db.finish_failure(broken, Status::Failed, "exit 1", None, None)
        .await
        .unwrap();
    (run, up, both)
}

#[tokio::test]
async fn lineage_walks_up_and_down_a_diamond() {
    let f = fresh().await;
    let db = &f.db;
    let (run, up, both) = diamond(db).await;
    let edge = |e: &LineageEdge| {
        (
            e.depth,
            e.from_hash.clone(),
            e.step_run_id,
            e.slot_to.clone(),
            e.to_hash.clone(),
        )
    };
    let ups: Vec<_> = db
        .lineage_up(&h("cc"), 10)
        .await
        .unwrap()
        .iter()
        .map(edge)
        .collect();
    assert_eq!(
        ups,
        [
            (1, h("cc"), both, "left".into(), h("aa")),
            (1, h("cc"), both, "right".into(), h("bb")),
            (2, h("bb"), up, "in".into(), h("aa")),
        ]
    );
    assert_eq!(db.lineage_up(&h("cc"), 1).await.unwrap().len(), 2, "depth");
    let downs: Vec<_> = db
        .lineage_down(&h("aa"), 10)
        .await
        .unwrap()
        .iter()
        .map(edge)
        .collect();
    // The failed step run read `aa` but is no edge: it made nothing.
    assert_eq!(
        downs,
        [
            (1, h("aa"), up, "out".into(), h("bb")),
            (1, h("aa"), both, "out".into(), h("cc")),
            (2, h("bb"), both, "out".into(), h("cc")),
        ]
    );
    assert!(
        db.lineage_up(&h("aa"), 10).await.unwrap().is_empty(),
        "a raw input"
    );

    let mut producers = db.producers_of(&[h("cc"), h("bb")], 100).await.unwrap();
    producers.sort_by(|a, b| (&a.near, &a.far_slot).cmp(&(&b.near, &b.far_slot)));
    let level: Vec<_> = producers
        .iter()
        .map(|e| (e.near.clone(), e.step.clone(), e.far.clone()))
        .collect();
    assert_eq!(
        level,
        [
            (h("bb"), "up".into(), Some(h("aa"))),
            (h("cc"), "both".into(), Some(h("aa"))),
            (h("cc"), "both".into(), Some(h("bb"))),
        ]
    );
    assert_eq!(db.consumers_of(&[h("aa")], 100).await.unwrap().len(), 2);
    assert_eq!(
        db.consumers_of(&[h("aa")], 1).await.unwrap().len(),
        1,
        "limit"
    );
    let sources = db.sources_of(&h("aa")).await.unwrap();
    assert_eq!(
        (sources[0].run_id, sources[0].path.as_str()),
        (run, "data/text.csv")
    );
    assert_eq!(
        db.output_of_run(run, "both", "out").await.unwrap(),
        Some(h("cc"))
    );
    assert_eq!(
        db.input_at_path("data/text.csv").await.unwrap(),
        Some(h("aa"))
    );
}

#[tokio::test]
async fn references_resolve_in_every_form() {
    let f = fresh().await;
    let db = &f.db;
    let (run, _, _) = diamond(db).await;
    let other = db.begin_run(&new_run("other")).await.unwrap();
    db.record_release("model", 1, run, &h("bb")).await.unwrap();
    db.record_release("model", 2, run, &h("cc")).await.unwrap();
    let resolve = |text: &'static str, path: Option<PathContent>| async move {
        db.resolve_ref(&ArtifactRef::parse(text), path.as_ref())
            .await
    };
    let hash = |r: Result<Resolved, RefError>| r.map(|r| r.hash).map_err(|e| e.to_string());

    assert_eq!(db.run_ref("latest").await.unwrap(), other);
    assert_eq!(db.run_ref("latest:wf").await.unwrap(), run);
    assert_eq!(db.run_ref(&run.to_string()).await.unwrap(), run);
    assert!(matches!(db.run_ref("99").await, Err(RefError::NoRun(99))));
    assert!(matches!(
        db.run_ref("latest:nope").await,
        Err(RefError::NoRunsOf(_))
    ));

    assert_eq!(hash(resolve("1/both.out", None).await), Ok(h("cc")));
    assert_eq!(hash(resolve("latest:wf/up.out", None).await), Ok(h("bb")));
    // The newest run (`other`) has no step `up`.
    assert_eq!(
        hash(resolve("latest/up.out", None).await),
        Err(format!("run {other} recorded no output `out` of step `up`"))
    );
    assert_eq!(hash(resolve("cccc", None).await), Ok(h("cc")));
    assert_eq!(hash(resolve("CCCCcc", None).await), Ok(h("cc")), "any case");
    assert_eq!(
        hash(resolve("model", None).await),
        Ok(h("cc")),
        "newest version"
    );
    assert_eq!(hash(resolve("model@1", None).await), Ok(h("bb")));
    assert!(matches!(
        resolve("model@3", None).await,
        Err(RefError::NoMatch(_))
    ));
    // A path: its current content when known, else what a run last read there.
    let at = |hash: Option<String>| PathContent {
        relative: "data/text.csv".into(),
        hash,
    };
    let r = resolve("data/text.csv", Some(at(Some(h("bb")))))
        .await
        .unwrap();
    assert_eq!((r.hash, r.via), (h("bb"), Via::Content));
    let r = resolve("data/text.csv", Some(at(Some(h("ee")))))
        .await
        .unwrap();
    assert_eq!(
        (r.hash, r.via),
        (h("aa"), Via::RecordedPath { changed: true })
    );
    let r = resolve("data/text.csv", Some(at(None))).await.unwrap();
    assert_eq!(
        (r.hash, r.via),
        (h("aa"), Via::RecordedPath { changed: false })
    );
    let unknown = PathContent {
        relative: "new.csv".into(),
        hash: Some(h("ee")),
    };
    assert!(matches!(
        resolve("new.csv", Some(unknown)).await,
        Err(RefError::NotRecorded { .. })
    ));
    assert!(matches!(
        resolve("nothing", None).await,
        Err(RefError::NoMatch(_))
    ));

    // Two hashes share a prefix: ambiguous, naming both.
    let run3 = db.begin_run(&new_run("wf")).await.unwrap();
    raw_inputs(db, run3, &[("x", &format!("cccc{}", "0".repeat(60)))]).await;
    let err = resolve("cccc", None).await.unwrap_err();
    assert!(
        matches!(&err, RefError::Ambiguous { candidates, .. } if candidates.len() == 2),
        "{err}"
    );
}

#[tokio::test]
async fn dead_runs_are_marked_interrupted_and_live_ones_are_not() {
    let f = fresh().await;
    let db = &f.db;
    let dead = db.begin_run(&new_run("wf")).await.unwrap();
    raw_inputs(db, dead, &[("text", &h("aa"))]).await;
    let sr = db
        .start_step(
            dead,
            "up",
            "plugin:x",
            &h("k1"),
            "{}",
            "new",
            &[("in".into(), h("aa"))],
        )
        .await
        .unwrap();
    // No process has this pid (above any pid_max), so the run's pedigree is gone.
    sqlx::query("UPDATE runs SET pid = 2147483000 WHERE id = ?")
        .bind(dead)
        .execute(db.pool())
        .await
        .unwrap();
    let mine = db.begin_run(&new_run("wf")).await.unwrap();
    let elsewhere = db
        .begin_run(&NewRun {
            host: "host-b".into(),
            ..new_run("wf")
        })
        .await
        .unwrap();
    sqlx::query("UPDATE runs SET pid = 2147483000 WHERE id = ?")
        .bind(elsewhere)
        .execute(db.pool())
        .await
        .unwrap();

    assert_eq!(db.recover_dead_runs("host-a").await.unwrap(), [dead]);
    assert_eq!(
        db.run(dead).await.unwrap().unwrap().status,
        Status::Interrupted
    );
    let step = db.step_run(sr).await.unwrap().unwrap();
    assert_eq!(step.status, Status::Interrupted);
    assert!(step.error.unwrap().contains("ended without finishing"));
    assert_eq!(
        db.run(mine).await.unwrap().unwrap().status,
        Status::Running,
        "this process"
    );
    assert_eq!(
        db.run(elsewhere).await.unwrap().unwrap().status,
        Status::Running,
        "another host's pids mean nothing here"
    );
    assert!(
        db.recover_dead_runs("host-a").await.unwrap().is_empty(),
        "once"
    );
}

#[tokio::test]
async fn integrity_queries_find_references_and_breaks() {
    let f = fresh().await;
    let db = &f.db;
    let (run, up, _) = diamond(db).await;
    db.record_release("model", 1, run, &h("cc")).await.unwrap();
    let refs = db.referenced_hashes().await.unwrap();
    let find = |hash: &str| {
        refs.iter()
            .filter(|(h, _)| h == hash)
            .map(|(_, w)| w.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        find(&h("aa")).contains(&"input `text` of run 1".to_owned()),
        "{refs:?}"
    );
    assert!(find(&h("bb")).contains(&format!("step output of step run {up}")));
    assert!(find(&h("cc")).contains(&"release model@1".to_owned()));

    // Everything the release stands on, up to the raw input.
    let mut ancestry = db.release_ancestry().await.unwrap();
    ancestry.sort();
    assert_eq!(ancestry, [h("aa"), h("bb"), h("cc")]);
    let recent = db
        .recently_referenced("2000-01-01T00:00:00.000Z")
        .await
        .unwrap();
    assert!(recent.contains(&h("bb")));
    let running = db
        .recently_referenced("9999-01-01T00:00:00.000Z")
        .await
        .unwrap();
    assert!(
        running.contains(&h("bb")),
        "a running run keeps what it uses"
    );
    db.finish_run(run, Status::Succeeded).await.unwrap();
    let future = db
        .recently_referenced("9999-01-01T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(future, [h("cc")], "only the release");

    assert!(db.dangling_references().await.unwrap().is_empty());
    assert!(db.tree_hashes().await.unwrap().is_empty());
    db.mark_collected(&[h("dd")]).await.unwrap();
    assert!(db.collected().await.unwrap().contains(&h("dd")));
    assert_eq!(db.integrity_check().await.unwrap(), "ok");

    // A succeeded step run without outputs, and an output whose artifact row is gone.
    let empty = step(db, run, "empty", &h("k9"), &[], &[]).await;
    let mut conn = db.pool().acquire().await.unwrap();
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM artifacts WHERE hash = ?")
        .bind(h("bb"))
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let dangling = db.dangling_references().await.unwrap();
    assert!(
        dangling
            .iter()
            .any(|(_, w)| w == &format!("step run {empty} succeeded without outputs")),
        "{dangling:?}"
    );
    assert!(
        dangling
            .iter()
            .any(|(hash, w)| hash == &h("bb") && w == &format!("step output of step run {up}")),
        "{dangling:?}"
    );
}

#[tokio::test]
async fn the_read_only_handle_creates_nothing_and_cannot_write() {
    let f = fresh().await;
    diamond(&f.db).await;
    f.db.close().await;

    let missing = f.path.with_file_name("missing.db");
    assert!(ReadDb::open(&missing).await.is_err());
    assert!(!missing.exists(), "opening for reading created the file");

    let read = ReadDb::open(&f.path).await.unwrap();
    assert_eq!(read.lineage_up(&h("cc"), 10).await.unwrap().len(), 3);
    let write = sqlx::query("DELETE FROM step_outputs")
        .execute(read.pool())
        .await;
    assert!(write.is_err(), "a read-only connection wrote");
    read.close().await;
}

/// A run killed while it created the database leaves a file without the schema;
/// read-only commands (verify after a crash, `runs`) see an empty history and still
/// never write the file.
#[tokio::test]
async fn a_database_without_its_schema_reads_as_an_empty_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lineage.db");
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::sqlite::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::query("CREATE TABLE half_made (x INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let before = std::fs::read(&path).unwrap();
    let db = ReadDb::open(&path).await.unwrap();
    assert!(db.runs(10, None).await.unwrap().is_empty());
    assert_eq!(db.latest_run_id().await.unwrap(), None);
    assert!(db.referenced_hashes().await.unwrap().is_empty());
    db.close().await;
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file was written"
    );
}

/// Killed between two migrations: the first ones applied, no run recorded. The read
/// handle sees an empty history with the whole schema (`collected` is a later
/// migration's table), and the file stays as it was.
#[tokio::test]
async fn a_database_killed_between_migrations_reads_as_an_empty_history() {
    let f = fresh().await;
    sqlx::query("DROP TABLE collected")
        .execute(f.db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version >= 20261128020000")
        .execute(f.db.pool())
        .await
        .unwrap();
    f.db.close().await;
    let before = std::fs::read(&f.path).unwrap();
    let db = ReadDb::open(&f.path).await.unwrap();
    assert!(db.collected().await.unwrap().is_empty());
    assert!(db.runs(10, None).await.unwrap().is_empty());
    db.close().await;
    assert_eq!(
        std::fs::read(&f.path).unwrap(),
        before,
        "the file was written"
    );
}

/// A run killed mid-write can leave a WAL with frames and a spoilt index (`-shm`);
/// the read-only handle of the read commands still reads the history from it.
#[tokio::test]
async fn a_read_after_a_crash_that_left_the_wal_index_stale_still_reads() {
    let f = fresh().await;
    let run = f.db.begin_run(&new_run("wf")).await.unwrap();
    // Copy the three files while the writer still has them open, as a kill would
    // leave them, then spoil the index.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("lineage.db");
    for suffix in ["", "-wal", "-shm"] {
        let from = format!("{}{suffix}", f.path.display());
        if std::path::Path::new(&from).exists() {
            std::fs::copy(&from, format!("{}{suffix}", copy.display())).unwrap();
        }
    }
    let shm = format!("{}-shm", copy.display());
    if std::path::Path::new(&shm).exists() {
        let len = std::fs::metadata(&shm).unwrap().len() as usize;
        std::fs::write(&shm, vec![0u8; len]).unwrap();
    }
    let db = ReadDb::open(&copy).await.unwrap();
    assert_eq!(db.latest_run_id().await.unwrap(), Some(run));
    db.close().await;
}

/// A database file and a rollback journal nobody holds a lock on, as a process
/// killed in a rollback-mode write leaves them: `live` copied, with its journal,
/// to `left` in the middle of a write transaction that spills to the file.
async fn copy_with_hot_journal(pool: &SqlitePool, live: &Path, left: &Path) {
    sqlx::query("PRAGMA cache_size = 2")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x BLOB)")
        .execute(pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    for _ in 0..200 {
        sqlx::query("INSERT INTO t VALUES (zeroblob(4000))")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    std::fs::copy(live, left).unwrap();
    let journal = live.with_extension("db-journal");
    assert!(journal.exists(), "the transaction spilled to the file");
    std::fs::copy(&journal, left.with_extension("db-journal")).unwrap();
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_database_left_with_a_hot_journal_reads_as_an_empty_history() {
    // What a run killed while it switched a new database to WAL leaves.
    let dir = tempfile::tempdir().unwrap();
    let (live, left) = (dir.path().join("live.db"), dir.path().join("lineage.db"));
    let opts = SqliteConnectOptions::new()
        .filename(&live)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Delete);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    copy_with_hot_journal(&pool, &live, &left).await;
    let read = ReadDb::open(&left)
        .await
        .expect("a hot journal is not an error");
    assert!(read.runs(10, None).await.unwrap().is_empty());
    assert!(
        dir.path().join("lineage.db-journal").exists(),
        "left for a writer to roll back"
    );
}

#[tokio::test]
async fn a_database_with_runs_and_a_hot_journal_is_an_error_not_an_empty_history() {
    let f = fresh().await;
    f.db.begin_run(&new_run("wf")).await.unwrap();
    let Backend::Sqlite(pool) = &f.db.read.backend;
    sqlx::query("PRAGMA journal_mode = DELETE")
        .execute(pool)
        .await
        .unwrap();
    let left = f.path.with_file_name("copy.db");
    copy_with_hot_journal(pool, &f.path, &left).await;
    assert!(
        ReadDb::open(&left).await.is_err(),
        "its runs are not hidden"
    );
}
