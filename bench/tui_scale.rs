//! The dashboard at scale: a lineage database of 100,000 runs and 1,000,000
//! artifacts, generated through the real schema (the embedded migrations, then
//! multi-row INSERTs in large transactions), and the figures the dashboard's
//! responsiveness rests on. See bench/README.md.
//!
//! ```sh
//! cargo bench --bench tui_scale                          # generate (~1-2 min) and measure
//! cargo bench --bench tui_scale -- --dir /tmp/tui-scale  # keep the database and reuse it
//! cargo bench --bench tui_scale -- --runs 10000 --reps 5 # smaller, quicker
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pedigree::lineage::{Db, ReadDb};
use pedigree::tui::data::{Loaded, Request, load};
use sqlx::{QueryBuilder, Sqlite};

const BIN: &str = env!("CARGO_BIN_EXE_pedigree");

/// Steps of every ordinary run: a chain, each reading the previous output.
const STEPS: [&str; 5] = ["clean", "dedupe", "features", "train", "evaluate"];
/// How long the deep chain is (the ancestry the benchmark opens).
const DEEP: usize = 50;

struct Opts {
    runs: usize,
    reps: usize,
    dir: Option<PathBuf>,
}

fn opts() -> Opts {
    let mut o = Opts {
        runs: 100_000,
        reps: 7,
        dir: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = || args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--runs" => o.runs = val().parse().expect("--runs N"),
            "--reps" => o.reps = val().parse().expect("--reps N"),
            "--dir" => o.dir = Some(PathBuf::from(val())),
            // `cargo bench` passes `--bench`; ignore it and anything else unknown.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn hash(kind: &str, n: u64) -> String {
    let mut h = blake3::Hasher::new();
    h.update(kind.as_bytes());
    h.update(&n.to_le_bytes());
    h.finalize().to_hex().to_string()
}

fn time_of(secs: u64) -> String {
    pedigree::lineage::time::format_time(
        std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs),
    )
}

/// Rows of one table, flushed as multi-row INSERTs.
struct Batch {
    table: &'static str,
    columns: &'static str,
    ncols: usize,
    rows: Vec<Vec<Val>>,
}

#[derive(Clone)]
enum Val {
    I(i64),
    F(f64),
    S(String),
    N,
}

impl Batch {
    fn new(table: &'static str, columns: &'static str) -> Batch {
        Batch {
            table,
            columns,
            ncols: columns.split(',').count(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<Val>) {
        debug_assert_eq!(row.len(), self.ncols);
        self.rows.push(row);
    }

    async fn flush(&mut self, tx: &mut sqlx::SqliteConnection) {
        // SQLite allows 32766 bound values per statement.
        let per = 30_000 / self.ncols;
        for chunk in self.rows.chunks(per) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new(format!("INSERT INTO {} ({}) ", self.table, self.columns));
            q.push_values(chunk, |mut b, row| {
                for v in row {
                    match v {
                        Val::I(i) => b.push_bind(*i),
                        Val::F(f) => b.push_bind(*f),
                        Val::S(s) => b.push_bind(s.clone()),
                        Val::N => b.push_bind(None::<String>),
                    };
                }
            });
            q.build().execute(&mut *tx).await.expect("insert");
        }
        self.rows.clear();
    }
}

struct Generated {
    deep_model: String,
    shared_input: String,
    artifacts: i64,
}

async fn generate(root: &Path, runs: usize) -> Generated {
    let dot = root.join(".pedigree");
    for d in ["objects", "tmp", "locks"] {
        std::fs::create_dir_all(dot.join(d)).expect("create .pedigree");
    }
    let db = Db::open(&dot.join("lineage.db"), &dot.join("locks"))
        .await
        .expect("open and migrate");
    let pool = db.pool();
    sqlx::query("PRAGMA synchronous = OFF")
        .execute(pool)
        .await
        .unwrap();

    let mut art = Batch::new(
        "artifacts",
        "hash, kind, media_type, is_tree, size, content_size, created_at",
    );
    let mut run_rows = Batch::new(
        "runs",
        "id, workflow, workflow_path, workflow_hash, params_json, args_json, status, started_at, finished_at, host, user, pid",
    );
    let mut run_inputs = Batch::new("run_inputs", "run_id, name, path, artifact_hash");
    let mut manifests = Batch::new("key_manifests", "step_key, manifest_json");
    let mut steps = Batch::new(
        "step_runs",
        "id, run_id, step, kind, step_key, status, reason, started_at, finished_at, error, stderr_tail",
    );
    let mut ins = Batch::new("step_inputs", "step_run_id, slot, artifact_hash");
    let mut outs = Batch::new("step_outputs", "step_run_id, slot, artifact_hash, name");
    let mut params = Batch::new("params", "step_run_id, key, value_json");
    let mut metrics = Batch::new("metrics", "step_run_id, key, value, step");
    let mut facets = Batch::new("facets", "step_run_id, artifact_hash, name, json");

    let mut n_art: u64 = 0;
    let mut n_step: i64 = 0;
    let mut artifacts = 0i64;
    let mut add_art = |art: &mut Batch, kind: &str, t: &str| {
        n_art += 1;
        let h = hash(kind, n_art);
        art.push(vec![
            Val::S(h.clone()),
            Val::S(kind.into()),
            Val::S("application/octet-stream".into()),
            Val::I(0),
            Val::I(1000 + (n_art % 100_000) as i64),
            Val::I(1000 + (n_art % 100_000) as i64),
            Val::S(t.into()),
        ]);
        h
    };
    // One shared raw input (a config file every run reads), so one artifact has a
    // huge descent.
    let shared = add_art(&mut art, "config", &time_of(0));
    artifacts += 1;

    let workflows: Vec<String> = (0..10).map(|i| format!("pipeline-{i}")).collect();
    let mut tx = pool.begin().await.unwrap();
    let started = Instant::now();
    let total_runs = runs + 1;
    for r in 1..=total_runs {
        let deep = r == total_runs;
        let t0 = (r as u64) * 60;
        let wf = if deep {
            "deep-chain".to_owned()
        } else {
            workflows[r % workflows.len()].clone()
        };
        // ~4% failed, ~1% interrupted, the rest succeeded.
        let status = match r % 100 {
            _ if deep => "succeeded",
            7 | 31 | 55 | 79 => "failed",
            93 => "interrupted",
            _ => "succeeded",
        };
        run_rows.push(vec![
            Val::I(r as i64),
            Val::S(wf.clone()),
            Val::S(format!("workflows/{wf}.yaml")),
            Val::S(hash("wf", r as u64 % 10)),
            Val::S(format!(
                "{{\"lr\":{},\"epochs\":5}}",
                0.01 * (r % 7 + 1) as f64
            )),
            Val::S("[]".into()),
            Val::S(status.into()),
            Val::S(time_of(t0)),
            Val::S(time_of(t0 + 42)),
            Val::S("bench-host".into()),
            Val::S("bench".into()),
            Val::I(1),
        ]);
        let raw = add_art(&mut art, "file", &time_of(t0));
        artifacts += 1;
        run_inputs.push(vec![
            Val::I(r as i64),
            Val::S("events".into()),
            Val::S(format!("data/{wf}/events-{r}.csv")),
            Val::S(raw.clone()),
        ]);
        run_inputs.push(vec![
            Val::I(r as i64),
            Val::S("config".into()),
            Val::S("data/config.yaml".into()),
            Val::S(shared.clone()),
        ]);
        let chain: Vec<String> = if deep {
            (0..DEEP).map(|i| format!("stage{i:02}")).collect()
        } else {
            STEPS.iter().map(|s| s.to_string()).collect()
        };
        let mut prev = raw;
        for (i, step) in chain.iter().enumerate() {
            n_step += 1;
            let last = i + 1 == chain.len();
            let sstatus = if last && status != "succeeded" {
                status
            } else {
                "succeeded"
            };
            let key = hash("key", n_step as u64);
            manifests.push(vec![Val::S(key.clone()), Val::S("{}".into())]);
            let failed = sstatus != "succeeded";
            steps.push(vec![
                Val::I(n_step),
                Val::I(r as i64),
                Val::S(step.clone()),
                Val::S(format!("plugin:{step}")),
                Val::S(key),
                Val::S(sstatus.into()),
                Val::S(if i == 0 {
                    format!(
                        "input `events`: {} → {}",
                        &hash("x", r as u64)[..12],
                        &prev[..12]
                    )
                } else {
                    "input `src` changed".into()
                }),
                Val::S(time_of(t0 + i as u64)),
                Val::S(time_of(t0 + i as u64 + 1)),
                if failed {
                    Val::S("plugin exited with code 1".into())
                } else {
                    Val::N
                },
                if failed {
                    Val::S("Traceback...\nValueError: bad row\n".into())
                } else {
                    Val::N
                },
            ]);
            ins.push(vec![
                Val::I(n_step),
                Val::S("src".into()),
                Val::S(prev.clone()),
            ]);
            if i == 0 {
                ins.push(vec![
                    Val::I(n_step),
                    Val::S("config".into()),
                    Val::S(shared.clone()),
                ]);
            }
            params.push(vec![
                Val::I(n_step),
                Val::S("lr".into()),
                Val::S("0.01".into()),
            ]);
            params.push(vec![
                Val::I(n_step),
                Val::S("seed".into()),
                Val::S(format!("{}", r % 5)),
            ]);
            if failed {
                continue;
            }
            // Two outputs per step except the last (one): 1 + 2*4 + 1 = 10 artifacts a run.
            let n_out = if deep || last { 1 } else { 2 };
            let main = add_art(&mut art, "table", &time_of(t0 + i as u64 + 1));
            outs.push(vec![
                Val::I(n_step),
                Val::S("out".into()),
                Val::S(main.clone()),
                Val::S("out.parquet".into()),
            ]);
            artifacts += 1;
            if n_out == 2 {
                let rep = add_art(&mut art, "report", &time_of(t0 + i as u64 + 1));
                outs.push(vec![
                    Val::I(n_step),
                    Val::S("report".into()),
                    Val::S(rep.clone()),
                    Val::S("report.json".into()),
                ]);
                artifacts += 1;
                facets.push(vec![
                    Val::I(n_step),
                    Val::S(main.clone()),
                    Val::S("rows".into()),
                    Val::S(format!("{{\"in\":{},\"out\":{}}}", 1000 + r, 990 + r)),
                ]);
            }
            if step == "train" {
                for e in 1..=5 {
                    metrics.push(vec![
                        Val::I(n_step),
                        Val::S("loss".into()),
                        Val::F(1.0 / e as f64),
                        Val::I(e),
                    ]);
                    metrics.push(vec![
                        Val::I(n_step),
                        Val::S("val_ndcg".into()),
                        Val::F(0.01 * e as f64),
                        Val::I(e),
                    ]);
                }
            }
            if step == "evaluate" {
                metrics.push(vec![
                    Val::I(n_step),
                    Val::S("ndcg@20".into()),
                    Val::F(0.05),
                    Val::N,
                ]);
                metrics.push(vec![
                    Val::I(n_step),
                    Val::S("popularity/ndcg@20".into()),
                    Val::F(0.03),
                    Val::N,
                ]);
            }
            prev = main;
        }
        if r % 5_000 == 0 || r == total_runs {
            for b in [
                &mut art,
                &mut run_rows,
                &mut run_inputs,
                &mut manifests,
                &mut steps,
                &mut ins,
                &mut outs,
                &mut params,
                &mut metrics,
                &mut facets,
            ] {
                b.flush(&mut tx).await;
            }
            if r % 20_000 == 0 || r == total_runs {
                tx.commit().await.unwrap();
                tx = pool.begin().await.unwrap();
                eprintln!(
                    "  {r} runs, {artifacts} artifacts ({:.0}s)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    tx.commit().await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
    let deep_model: String = sqlx::query_scalar(
        "SELECT o.artifact_hash FROM step_outputs o JOIN step_runs s ON s.id = o.step_run_id WHERE s.run_id = ? ORDER BY s.id DESC LIMIT 1",
    )
    .bind(total_runs as i64)
    .fetch_one(pool)
    .await
    .unwrap();
    db.close().await;
    Generated {
        deep_model,
        shared_input: shared,
        artifacts,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Run `pedigree ARGS` `reps` times: median and max wall ms, and the peak RSS (MiB)
/// of the largest run (through `getrusage(RUSAGE_CHILDREN)`).
fn process(root: &Path, args: &[&str], reps: usize) -> (f64, f64, f64) {
    let mut times = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let out = Command::new(BIN)
            .arg("--workspace")
            .arg(root)
            .args(args)
            .output()
            .expect("run pedigree");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let max = times.iter().cloned().fold(0.0, f64::max);
    (median(times), max, peak_child_rss_mib())
}

fn peak_child_rss_mib() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

async fn in_process(db: &ReadDb, req: &Request, reps: usize) -> (f64, Loaded) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        let l = load(db, req).await.expect("load");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        last = Some(l);
    }
    (median(times), last.expect("reps > 0"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = opts();
    let tmp;
    let root = match &o.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().to_owned()
        }
    };
    let db_path = root.join(".pedigree/lineage.db");
    let marker = root.join(".pedigree/bench-targets.txt");
    let (deep, shared) = if db_path.exists() && marker.exists() {
        eprintln!("reusing the database in {}", root.display());
        // Apply any newer migration (an index) to the kept database.
        let dot = root.join(".pedigree");
        Db::open(&db_path, &dot.join("locks"))
            .await
            .expect("migrate")
            .close()
            .await;
        let t = std::fs::read_to_string(&marker).unwrap();
        let mut l = t.lines();
        (l.next().unwrap().to_owned(), l.next().unwrap().to_owned())
    } else {
        eprintln!(
            "generating {} runs (~{} artifacts) in {}",
            o.runs,
            o.runs * 10,
            root.display()
        );
        let t = Instant::now();
        let g = generate(&root, o.runs).await;
        eprintln!(
            "generated {} artifacts in {:.1}s",
            g.artifacts,
            t.elapsed().as_secs_f64()
        );
        std::fs::write(&marker, format!("{}\n{}\n", g.deep_model, g.shared_input)).unwrap();
        (g.deep_model, g.shared_input)
    };
    let size = std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
    let db = Db::open_read_only(&db_path).await.expect("open read-only");
    let pool = db.pool().clone();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    println!(
        "database: {} runs, {} step runs, {} artifacts, {} edges, {:.0} MiB (warm page cache)",
        count("SELECT COUNT(*) FROM runs").await,
        count("SELECT COUNT(*) FROM step_runs").await,
        count("SELECT COUNT(*) FROM artifacts").await,
        count("SELECT (SELECT COUNT(*) FROM step_inputs) + (SELECT COUNT(*) FROM step_outputs)")
            .await,
        size as f64 / 1048576.0
    );
    let reps = o.reps.max(1);
    println!("medians of {reps} repetitions\n");
    println!(
        "{:<58} {:>9} {:>9} {:>8}",
        "measure", "median", "target", ""
    );

    let report = |name: &str, ms: f64, target: Option<f64>| {
        let verdict = match target {
            Some(t) if ms <= t => "ok",
            Some(_) => "MISSED",
            None => "",
        };
        let tgt = target.map(|t| format!("{t:.0} ms")).unwrap_or_default();
        println!("{name:<58} {:>6.1} ms {tgt:>9} {verdict:>8}", ms);
    };

    let (first, first_max, rss_runs) = process(
        &root,
        &["tui", "--once", "--width", "120", "--height", "40"],
        reps,
    );
    report(
        "first screen: `tui --once` runs list, whole process",
        first,
        Some(300.0),
    );
    let (art_proc, _, rss_art) = process(
        &root,
        &[
            "tui",
            "--once",
            "--artifact",
            &deep,
            "--width",
            "120",
            "--height",
            "60",
        ],
        reps,
    );
    report(
        "`tui --once --artifact` (depth-50 model), whole process",
        art_proc,
        None,
    );
    let (wide_proc, _, rss_wide) = process(
        &root,
        &[
            "tui",
            "--once",
            "--artifact",
            &shared,
            "--keys",
            "/events-77777<Enter>",
        ],
        reps,
    );
    report(
        "`tui --once` widest tree + a path search, whole process",
        wide_proc,
        None,
    );

    let runs_req = Request::Runs {
        filter: Default::default(),
        limit: pedigree::tui::data::RUNS_PAGE,
    };
    let (runs_ms, _) = in_process(&db, &runs_req, reps).await;
    report(
        "  runs page (200 newest + count), reader only",
        runs_ms,
        None,
    );
    let filtered = Request::Runs {
        filter: pedigree::lineage::RunFilter {
            workflow: Some("pipeline-3".into()),
            status: Some("failed".into()),
        },
        limit: pedigree::tui::data::RUNS_PAGE,
    };
    let (filt_ms, _) = in_process(&db, &filtered, reps).await;
    report("  runs page filtered by workflow and status", filt_ms, None);
    let (run_ms, _) = in_process(&db, &Request::Run(50_000), reps).await;
    report("  one run's steps (run 50000)", run_ms, None);
    let (anc_ms, loaded) = in_process(&db, &Request::Artifact(deep.clone()), reps).await;
    let depth = match &loaded {
        Loaded::Artifact(d) => {
            d.up.iter()
                .map(|e| e.step_run_id)
                .collect::<std::collections::HashSet<_>>()
                .len()
        }
        _ => 0,
    };
    report(
        &format!("open a deep ancestry ({depth} steps up), reader only"),
        anc_ms,
        Some(50.0),
    );
    let (desc_ms, loaded) = in_process(&db, &Request::Artifact(shared.clone()), reps).await;
    let cut = match &loaded {
        Loaded::Artifact(d) => format!("{} edges, cut: {}", d.down.len(), d.down_truncated),
        _ => String::new(),
    };
    report(
        &format!("open the input every run read ({cut})"),
        desc_ms,
        None,
    );
    let (search_ms, _) = in_process(&db, &Request::Search(deep[..8].to_owned()), reps).await;
    report("  search by hash prefix", search_ms, None);
    let (path_ms, _) = in_process(&db, &Request::Search("events-77777".into()), reps).await;
    report("  search by part of a path", path_ms, None);
    let (met_ms, _) = in_process(
        &db,
        &Request::Metrics {
            run: 50_000,
            compare: Some(50_007),
        },
        reps,
    )
    .await;
    report("  metrics of two runs compared", met_ms, None);
    println!();
    // getrusage(RUSAGE_CHILDREN) keeps the maximum so far, so each figure covers
    // the processes before it as well.
    println!("peak RSS, runs list: {rss_runs:.1} MiB; + deep ancestry: {rss_art:.1} MiB");
    let rss = rss_wide;
    println!(
        "peak memory (max RSS of every `--once` process, the widest tree and a substring search included): {rss:.1} MiB (target 200 MiB) {}",
        if rss <= 200.0 { "ok" } else { "MISSED" }
    );
    println!("slowest first screen: {first_max:.1} ms");
    db.close().await;
}
