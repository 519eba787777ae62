//! OpenLineage: every event a run sends is valid against the vendored 2-0-2 schema
//! (facets included, by `tests/fixtures/openlineage/validate.py`), follows the
//! lifecycle (a START, then exactly one COMPLETE/FAIL/ABORT, inside its workflow
//! run's), and reaches a real HTTP catalogue on 127.0.0.1 exactly once whatever it
//! does: down, refusing, slow, failing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::common::*;

const FILE_TRANSPORT: &str =
    "[openlineage]\ntransport = \"file\"\npath = \"out/events.jsonl\"\nnamespace = \"recs\"\n";

/// The events a file transport wrote, in order.
fn file_events(ws: &Ws) -> Vec<Json> {
    lines(&ws.read("out/events.jsonl"))
}

fn lines(text: &str) -> Vec<Json> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Validate JSON-lines files with the vendored schema: every event, every facet.
fn validate(files: &[&Path]) {
    let script = repo().join("tests/fixtures/openlineage/validate.py");
    let has = std::process::Command::new("python3")
        .args(["-c", "import jsonschema, referencing"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !prerequisite(
        has,
        "python3 with jsonschema",
        "validates the events (`pip install jsonschema`; .ci/run installs it)",
    ) {
        return;
    }
    let o = std::process::Command::new("python3")
        .arg(&script)
        .args(files)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "events do not follow the OpenLineage schema:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}

fn validate_events(ws: &Ws, events: &[Json]) {
    let path = ws.path().join("out/checked.jsonl");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).unwrap();
    validate(&[&path]);
}

fn run_id(e: &Json) -> &str {
    e["run"]["runId"].as_str().unwrap()
}

fn parent_of(e: &Json) -> Option<&str> {
    e["run"]["facets"]["parent"]["run"]["runId"].as_str()
}

/// Every run in `events` has a START first and exactly one terminal event after
/// it; a step run's START and end lie inside its workflow run's. Returns each
/// run's (job name, terminal event type).
fn lifecycle(events: &[Json]) -> BTreeMap<String, (String, String)> {
    let mut seen: HashMap<&str, Vec<(usize, &str)>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        seen.entry(run_id(e))
            .or_default()
            .push((i, e["eventType"].as_str().unwrap()));
    }
    let mut out = BTreeMap::new();
    for (id, evs) in &seen {
        let types: Vec<&str> = evs.iter().map(|(_, t)| *t).collect();
        assert_eq!(types.len(), 2, "run {id}: {types:?} (a START and one end)");
        assert_eq!(types[0], "START", "run {id}: {types:?}");
        assert!(
            ["COMPLETE", "FAIL", "ABORT"].contains(&types[1]),
            "run {id}: {types:?}"
        );
        let e = &events[evs[0].0];
        if let Some(parent) = parent_of(e) {
            let p = seen
                .get(parent)
                .unwrap_or_else(|| panic!("run {id}: parent {parent} sent no event"));
            assert!(p[0].0 < evs[0].0, "the workflow run starts before its step");
            assert!(p[1].0 > evs[1].0, "the workflow run ends after its step");
            assert_eq!(
                e["run"]["facets"]["parent"]["job"]["name"],
                events[p[0].0]["job"]["name"]
            );
        }
        out.insert(
            id.to_string(),
            (
                e["job"]["name"].as_str().unwrap().to_owned(),
                types[1].to_owned(),
            ),
        );
    }
    out
}

/// The end event of job `job` (its last run).
fn end_of<'a>(events: &'a [Json], job: &str) -> &'a Json {
    events
        .iter()
        .rev()
        .find(|e| e["job"]["name"] == job && e["eventType"] != "START")
        .unwrap_or_else(|| panic!("no end event of {job}"))
}

/// The flagship on the sample, trained for one epoch against one baseline, with
/// no gate (the rest of the workflow as shipped).
const QUICK: &[&str] = &[
    "--set",
    "train.epochs=1",
    "--set",
    "evaluate.baselines=[popularity]",
    "--set",
    "publish.gate={}",
];

#[test]
fn a_flagship_run_and_its_cached_rerun_send_valid_events_that_connect() {
    let ws = Ws::new();
    copy_sample(&ws, "ecommerce-gnnr.yaml");
    ws.write("pedigree.toml", FILE_TRANSPORT);
    let (code, first) = ws.run_json("workflows/ecommerce-gnnr.yaml", QUICK);
    assert_eq!(code, 0, "{first}");
    let (code, again) = ws.run_json("workflows/ecommerce-gnnr.yaml", QUICK);
    assert_eq!(code, 0, "{again}");
    assert!(statuses(&again).iter().all(|(_, s)| s == "cached"));

    validate(&[&ws.path().join("out/events.jsonl")]);
    let events = file_events(&ws);
    // 2 workflow runs and 14 step runs, each a START and an end.
    assert_eq!(events.len(), 32);
    let runs = lifecycle(&events);
    assert!(runs.values().all(|(_, end)| end == "COMPLETE"), "{runs:?}");
    assert!(events.iter().all(|e| e["job"]["namespace"] == "recs"));

    let clean = end_of(&events[..16], "ecommerce-gnnr.clean");
    assert_eq!(clean["run"]["facets"]["pedigree_step"]["runId"], 1);
    let step_key = step(&first, "clean")["key"].as_str().unwrap().to_owned();
    assert_eq!(
        clean["run"]["facets"]["pedigree_step"]["stepKey"],
        step_key.as_str()
    );

    // The raw input is named by its workspace path, versioned by its hash; the
    // clean table carries its measured facts.
    let input = &clean["inputs"][0];
    assert_eq!(input["namespace"], "recs");
    assert_eq!(input["name"], "workflows/data/sample/events.csv");
    let manifest: Json =
        serde_json::from_str(&ws.read("workflows/data/sample/manifest.json")).unwrap();
    let dq = &input["inputFacets"]["dataQualityMetrics"];
    assert_eq!(dq["rowCount"], manifest["files"]["events.csv"], "{dq}");
    assert_eq!(
        dq["columnMetrics"]["user_id"]["nullCount"], manifest["faults"]["missing_user_id"],
        "{dq}"
    );
    assert_eq!(
        dq["bytes"].as_u64(),
        Some(
            std::fs::metadata(ws.path().join("workflows/data/sample/events.csv"))
                .unwrap()
                .len()
        )
    );
    let fields = input["facets"]["schema"]["fields"].as_array();
    assert!(
        fields.is_none(),
        "a raw CSV has no column summary of its own"
    );

    // What clean wrote is what dedupe read: same dataset, same version.
    let outs = clean["outputs"].as_array().unwrap();
    let with_schema: Vec<&Json> = outs
        .iter()
        .filter(|o| o["facets"]["schema"].is_object())
        .collect();
    assert_eq!(
        with_schema.len(),
        1,
        "only the table has the table's columns: {outs:?}"
    );
    let table_out = with_schema[0];
    let fields: Vec<&str> = table_out["facets"]["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"user_id") && fields.contains(&"price"),
        "{fields:?}"
    );
    let dedupe_start = events[..16]
        .iter()
        .find(|e| e["job"]["name"] == "ecommerce-gnnr.dedupe" && e["eventType"] == "START")
        .unwrap();
    let read = &dedupe_start["inputs"][0];
    assert_eq!(read["namespace"], table_out["namespace"]);
    assert_eq!(read["name"], table_out["name"]);
    assert_eq!(
        read["facets"]["version"]["datasetVersion"],
        table_out["facets"]["version"]["datasetVersion"]
    );
    // The rows clean says it wrote are the rows dedupe says it read.
    let rows_out = &table_out["outputFacets"]["outputStatistics"]["rowCount"];
    let dedupe = end_of(&events[..16], "ecommerce-gnnr.dedupe");
    assert!(rows_out.as_u64().is_some_and(|n| n > 0), "{table_out}");
    assert_eq!(
        *rows_out,
        dedupe["inputs"][0]["inputFacets"]["dataQualityMetrics"]["rowCount"]
    );
    let hash = read["facets"]["version"]["datasetVersion"]
        .as_str()
        .unwrap();
    assert!(
        read["name"].as_str().unwrap().ends_with(&hash[2..]),
        "a store object is named by its place: {read}"
    );

    // The rerun's hits say where their results came from.
    let hit = end_of(&events, "ecommerce-gnnr.train");
    let facet = &hit["run"]["facets"]["pedigree_step"];
    let producer = end_of(&events[..16], "ecommerce-gnnr.train");
    assert_eq!(facet["cachedFrom"]["runId"], run_id(producer));
    assert_eq!(
        facet["stepKey"],
        producer["run"]["facets"]["pedigree_step"]["stepKey"]
    );
    assert_eq!(
        hit["outputs"], producer["outputs"],
        "the same model, named the same"
    );
    let job = &hit["job"]["facets"];
    assert_eq!(job["jobType"]["jobType"], "TASK");
    assert_eq!(
        job["sourceCodeLocation"]["path"],
        "workflows/ecommerce-gnnr.yaml"
    );

    // Export composes the very events that were sent.
    let out = ws.run(&["openlineage", "export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    same_events(lines(&stdout(&out)), events.clone());
    let out = ws.run(&["openlineage", "export", "latest", "-o", "out/last.jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    same_events(lines(&ws.read("out/last.jsonl")), events[16..].to_vec());
}

#[test]
fn a_failed_step_an_interrupted_run_and_a_killed_run_end_their_events() {
    let ws = Ws::new();
    ws.write("pedigree.toml", FILE_TRANSPORT);
    let (code, j) = ws.run_json("workflows/chain.yaml", &["--set", "up.fail=true"]);
    assert_eq!(code, 1, "{j}");
    let events = file_events(&ws);
    let runs = lifecycle(&events);
    let ends: BTreeSet<(String, String)> = runs.values().cloned().collect();
    assert!(
        ends.contains(&("chain.up".into(), "FAIL".into())),
        "{ends:?}"
    );
    assert!(
        ends.contains(&("chain.cnt".into(), "ABORT".into())),
        "{ends:?}"
    );
    assert!(ends.contains(&("chain".into(), "FAIL".into())), "{ends:?}");
    let fail = end_of(&events, "chain.up");
    let msg = fail["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(msg.contains("exit"), "{msg}");
    assert_eq!(fail["outputs"], serde_json::json!([]));

    // Ctrl-C during a step.
    ws.write(
        "workflows/i.yaml",
        "name: i\ninputs: { text: data/text.txt }\nsteps:\n  a:\n    plugin: upper\n    inputs: { src: inputs.text }\n    with: { sleep: 20 }\n  b:\n    plugin: count\n    inputs: { src: a.out }\n",
    );
    let interrupt = |signal| {
        ws.clear_marks();
        let child = ws
            .cmd(&["run", "workflows/i.yaml", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !ws.marks().contains(&"a".to_owned()) {
            assert!(start.elapsed() < Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait_with_output().unwrap()
    };
    let o = interrupt(libc::SIGINT);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let events = file_events(&ws);
    let ends: BTreeSet<(String, String)> = lifecycle(&events).into_values().collect();
    assert!(ends.contains(&("i.a".into(), "ABORT".into())), "{ends:?}");
    assert!(ends.contains(&("i".into(), "ABORT".into())), "{ends:?}");

    // SIGKILL: nothing ends the run then; the next run finds it dead and ends it.
    let o = interrupt(libc::SIGKILL);
    assert_eq!(o.status.code(), None);
    let (code, j) = ws.run_json("workflows/chain.yaml", &[]);
    assert_eq!(code, 0, "{j}");
    let events = file_events(&ws);
    let runs = lifecycle(&events);
    let aborted_i = runs
        .values()
        .filter(|(job, end)| job == "i" && end == "ABORT")
        .count();
    assert_eq!(aborted_i, 2, "{runs:?}");
    validate(&[&ws.path().join("out/events.jsonl")]);
}

/// One request the catalogue got, and what it answered.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    auth: Option<String>,
    body: String,
    status: u16,
}

/// An OpenLineage catalogue on 127.0.0.1 (for the test): records each request
/// and answers what `answer` says for the n-th one (status, delay).
struct Catalogue {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<AtomicBool>,
}

type Answer = dyn Fn(usize, &str) -> (u16, Duration) + Send + Sync;

impl Catalogue {
    fn start(
        port: u16,
        answer: impl Fn(usize, &str) -> (u16, Duration) + Send + Sync + 'static,
    ) -> Catalogue {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the catalogue");
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let answer: Arc<Answer> = Arc::new(answer);
        let n = Arc::new(AtomicUsize::new(0));
        let (g, s) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (g, answer, n) = (g.clone(), answer.clone(), n.clone());
                std::thread::spawn(move || serve(conn, &g, &*answer, &n));
            }
        });
        Catalogue { port, got, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The events it accepted (answered 2xx), in order.
    fn accepted(&self) -> Vec<Json> {
        self.got()
            .iter()
            .filter(|g| (200..300).contains(&g.status))
            .map(|g| serde_json::from_str(&g.body).unwrap())
            .collect()
    }
}

impl Drop for Catalogue {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, got: &Mutex<Vec<Got>>, answer: &Answer, n: &AtomicUsize) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let (mut len, mut auth) = (0usize, None);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let (name, value) = h.split_once(':').unwrap_or((&h, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => len = value.trim().parse().unwrap_or(0),
            "authorization" => auth = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let (status, delay) = answer(n.fetch_add(1, Ordering::SeqCst), &body);
    std::thread::sleep(delay);
    let mut conn = conn;
    let said = if status == 400 {
        "{\"error\": \"bad event\"}"
    } else {
        ""
    };
    let reply = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{said}",
        said.len()
    );
    if conn.write_all(reply.as_bytes()).is_ok() {
        got.lock().unwrap().push(Got {
            path,
            auth,
            body,
            status,
        });
    }
}

fn ok(_: usize, _: &str) -> (u16, Duration) {
    (200, Duration::ZERO)
}

/// A run with the catalogue at `url` (through the environment, as the
/// OpenLineage clients read it).
fn run_to(ws: &Ws, url: &str, args: &[&str]) -> std::process::Output {
    ws.cmd(args)
        .env("OPENLINEAGE_URL", url)
        .env("OPENLINEAGE_API_KEY", "ol-test-secret-7f3a")
        .env("OPENLINEAGE_NAMESPACE", "team")
        .output()
        .unwrap()
}

/// The same events (export lists each run's in lifecycle order; steps that ran
/// side by side were queued as they happened).
fn same_events(mut a: Vec<Json>, mut b: Vec<Json>) {
    let key = |e: &Json| (run_id(e).to_owned(), e["eventType"] != "START");
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "an exported event differs from the one sent");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn no_duplicates(events: &[Json]) {
    let mut seen = BTreeSet::new();
    for e in events {
        let id = (
            run_id(e).to_owned(),
            e["eventType"].as_str().unwrap().to_owned(),
        );
        assert!(seen.insert(id.clone()), "sent twice: {id:?}");
    }
}

#[test]
fn events_reach_an_http_catalogue_in_order_with_the_bearer_token() {
    let ws = Ws::new();
    let cat = Catalogue::start(0, ok);
    let o = run_to(&ws, &cat.url(), &["run", "workflows/chain.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let got = cat.got();
    assert_eq!(got.len(), 8, "{got:?}");
    assert!(got.iter().all(|g| g.path == "/api/v1/lineage"), "{got:?}");
    assert!(
        got.iter()
            .all(|g| g.auth.as_deref() == Some("Bearer ol-test-secret-7f3a")),
        "{got:?}"
    );
    let events = cat.accepted();
    lifecycle(&events);
    validate_events(&ws, &events);
    assert!(events.iter().all(|e| e["job"]["namespace"] == "team"));
    // The key is the catalogue's, never the lineage's.
    let secret: &[u8] = b"ol-test-secret-7f3a";
    for entry in walk(&ws.path().join(".pedigree")) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "the API key is in {}",
            entry.display()
        );
    }
    let flush = run_to(&ws, &cat.url(), &["openlineage", "flush"]);
    assert!(flush.status.success(), "{}", stderr(&flush));
    assert!(
        stdout(&flush).contains("sent 0 events"),
        "{}",
        stdout(&flush)
    );
}

#[test]
fn a_catalogue_that_is_down_fails_no_run_and_gets_everything_later_once() {
    let ws = Ws::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let o = run_to(&ws, &url, &["run", "workflows/chain.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: 8 OpenLineage events are not sent")
            && err.contains("openlineage flush"),
        "{err}"
    );
    let o = run_to(
        &ws,
        &url,
        &["run", "workflows/chain.yaml", "--set", "params.suffix=?"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("16 OpenLineage events"),
        "{}",
        stderr(&o)
    );

    // Back: a flush sends all of them, oldest first, once.
    let cat = Catalogue::start(port, ok);
    let flush = run_to(&ws, &url, &["openlineage", "flush"]);
    assert!(flush.status.success(), "{}", stderr(&flush));
    assert!(
        stdout(&flush).contains("sent 16 events"),
        "{}",
        stdout(&flush)
    );
    let events = cat.accepted();
    assert_eq!(events.len(), 16);
    no_duplicates(&events);
    let runs = lifecycle(&events);
    assert_eq!(runs.len(), 8);
    validate_events(&ws, &events);
    // What it got is what the record says.
    let export = run_to(&ws, &url, &["openlineage", "export"]);
    same_events(lines(&stdout(&export)), events.clone());
    // A later run sends its own, and nothing again.
    let o = run_to(&ws, &url, &["run", "workflows/chain.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let events = cat.accepted();
    assert_eq!(events.len(), 24);
    no_duplicates(&events);
    lifecycle(&events);
}

#[test]
fn a_failing_catalogue_is_retried_and_a_refusal_is_kept_until_asked() {
    let ws = Ws::new();
    // 500 twice, then fine.
    let cat = Catalogue::start(0, |n, _| (if n < 2 { 500 } else { 200 }, Duration::ZERO));
    let o = run_to(&ws, &cat.url(), &["run", "workflows/chain.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let flush = run_to(&ws, &cat.url(), &["openlineage", "flush"]);
    assert!(flush.status.success(), "{}", stderr(&flush));
    let got = cat.got();
    assert_eq!(got[0].status, 500);
    assert_eq!(got[1].status, 500);
    assert_eq!(
        got[0].body, got[2].body,
        "the first event is sent again, the same"
    );
    let events = cat.accepted();
    assert_eq!(events.len(), 8, "{got:?}");
    no_duplicates(&events);
    lifecycle(&events);
    drop(cat);

    // A catalogue that refuses step events (400): the rest go through, the refused
    // ones are kept and sent on request.
    let refuse = Arc::new(AtomicBool::new(true));
    let r = refuse.clone();
    let cat = Catalogue::start(0, move |_, body| {
        if r.load(Ordering::SeqCst) && body.contains("\"chain.cnt\"") {
            (400, Duration::ZERO)
        } else {
            (200, Duration::ZERO)
        }
    });
    let o = run_to(
        &ws,
        &cat.url(),
        &["run", "workflows/chain.yaml", "--set", "params.suffix=#"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refused 2 OpenLineage events") && stderr(&o).contains("bad event"),
        "{}",
        stderr(&o)
    );
    assert_eq!(cat.accepted().len(), 6);
    let flush = run_to(&ws, &cat.url(), &["openlineage", "flush"]);
    assert_eq!(
        flush.status.code(),
        Some(1),
        "refused events are still there"
    );
    assert!(stdout(&flush).contains("2 refused"), "{}", stdout(&flush));
    refuse.store(false, Ordering::SeqCst);
    let flush = run_to(
        &ws,
        &cat.url(),
        &["openlineage", "flush", "--retry-rejected"],
    );
    assert!(
        flush.status.success(),
        "{}{}",
        stdout(&flush),
        stderr(&flush)
    );
    let events = cat.accepted();
    assert_eq!(events.len(), 8);
    no_duplicates(&events);
}

#[test]
fn a_slow_catalogue_does_not_hold_up_a_run() {
    let ws = Ws::new();
    let cat = Catalogue::start(0, |_, _| (200, Duration::from_secs(30)));
    let start = Instant::now();
    let o = run_to(&ws, &cat.url(), &["run", "workflows/chain.yaml"]);
    let took = start.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        took < Duration::from_secs(20),
        "the run waited {took:?} for a catalogue that answers after 30 s"
    );
    assert!(stderr(&o).contains("not sent to"), "{}", stderr(&o));
}

#[test]
fn openlineage_settings_are_checked() {
    let ws = Ws::new();
    ws.write("pedigree.toml", "[openlineage]\napi_key = \"abc\"\n");
    let o = ws.run(&["run", "workflows/chain.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("OPENLINEAGE_API_KEY"), "{}", stderr(&o));
    ws.write("pedigree.toml", "[openlineage]\ntransport = \"kafka\"\n");
    let o = ws.run(&["run", "workflows/chain.yaml"]);
    assert!(
        stderr(&o).contains("not one of http, file, console"),
        "{}",
        stderr(&o)
    );
    ws.write(
        "pedigree.toml",
        "[openlineage]\nurl = \"http://me:pw@127.0.0.1:1\"\n",
    );
    let o = ws.run(&["run", "workflows/chain.yaml"]);
    assert!(stderr(&o).contains("credentials"), "{}", stderr(&o));
    ws.write("pedigree.toml", "[openlineage]\ntransport = \"file\"\n");
    let o = ws.run(&["run", "workflows/chain.yaml"]);
    assert!(stderr(&o).contains("needs `path`"), "{}", stderr(&o));
    assert!(
        !ws.path()
            .join(".pedigree/objects")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
    // Off by default, and OPENLINEAGE_DISABLED turns it off.
    std::fs::remove_file(ws.path().join("pedigree.toml")).unwrap();
    let o = ws.run(&["openlineage", "flush"]);
    assert!(stderr(&o).contains("OpenLineage is off"), "{}", stderr(&o));
    let port = free_port();
    let o = ws
        .cmd(&["run", "workflows/chain.yaml"])
        .env("OPENLINEAGE_URL", format!("http://127.0.0.1:{port}"))
        .env("OPENLINEAGE_DISABLED", "true")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("OpenLineage"), "{}", stderr(&o));
}
