//! The dashboard's state and its one transition function, [`update`]. Pure: no
//! terminal, no database, no clock. Keys and the reader's answers come in as
//! [`Event`]s; what to read next goes out as [`Request`]s. Tests drive it directly.
//! Keys are turned into [`Action`]s by [`super::input::translate`] first: the
//! handlers here match on actions, never on keys (but for the search prompt's text).

use std::collections::HashSet;

use super::data::{ArtifactDetail, Loaded, MetricsDetail, RUNS_PAGE, Request, RunDetail};
use crate::lineage::{RunFilter, RunSummaryRow, SearchHit, Status};

pub use super::input::Key;
use super::input::{Action, Context, translate};
pub use super::tree::{RowKind, TREE_ROWS, TreeRow, tree_rows};

/// Everything that changes the state.
#[derive(Debug, Clone)]
pub enum Event {
    Key(Key),
    /// The reader answered `Request` (or failed with a message).
    Loaded(Request, Result<Loaded, String>),
    /// A second passed; `now` is the time as the database writes it, for the
    /// elapsed time of running runs. Refreshes whatever is in progress.
    Tick {
        now: String,
    },
    /// The reader could not start, or a signal asked us to stop.
    Fatal(String),
    Quit,
}

/// A screen on the navigation stack.
#[derive(Debug, Clone)]
pub enum Screen {
    Runs,
    Run(RunScreen),
    Artifact(ArtifactScreen),
    Metrics(MetricsScreen),
}

impl Screen {
    pub fn title(&self) -> String {
        match self {
            Screen::Runs => "Runs".into(),
            Screen::Run(r) => format!("Run {}", r.id),
            Screen::Artifact(a) => format!("Artifact {}", crate::util::fmt::short(&a.hash)),
            Screen::Metrics(m) => match m.compare {
                Some(b) => format!("Metrics {} vs {b}", m.run),
                None => format!("Metrics {}", m.run),
            },
        }
    }
}

/// The runs list: the root screen, always at the bottom of the stack.
#[derive(Debug, Clone, Default)]
pub struct RunsList {
    /// The newest runs passing `filter`, at most `limit` of them.
    pub rows: Vec<RunSummaryRow>,
    /// How many runs pass the filter in all (`None` until the first answer).
    pub total: Option<i64>,
    pub filter: RunFilter,
    /// How many rows to ask for; grows by a page when the selection reaches the end.
    pub limit: i64,
    pub selected: usize,
    /// Every workflow name, for the workflow filter (loaded at start).
    pub workflows: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RunScreen {
    pub id: i64,
    pub detail: Option<Box<RunDetail>>,
    /// Index into `detail.steps`.
    pub selected: usize,
    /// The step to select when the detail arrives (when opened from a tree).
    pub want_step_run: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ArtifactScreen {
    pub hash: String,
    pub detail: Option<Box<ArtifactDetail>>,
    /// Index into the visible rows of the tree.
    pub selected: usize,
    /// Row keys whose expansion differs from the default (see [`tree_rows`]).
    pub toggled: HashSet<String>,
    /// Set when the artifact does not exist.
    pub missing: bool,
}

#[derive(Debug, Clone)]
pub struct MetricsScreen {
    pub run: i64,
    pub compare: Option<i64>,
    pub detail: Option<Box<MetricsDetail>>,
    /// Which per-epoch series the chart shows.
    pub chart: usize,
}

/// The `/` search: its prompt while typing, then its results.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// `Some` while the prompt is open (the text typed so far).
    pub typing: Option<String>,
    /// The query whose results are shown, with them; `None` when closed.
    pub results: Option<(String, Option<Vec<SearchHit>>)>,
    pub selected: usize,
}

/// The whole state of the dashboard.
#[derive(Debug, Clone)]
pub struct App {
    pub runs: RunsList,
    /// Screens above the runs list, oldest first; the last one is on display.
    pub stack: Vec<Screen>,
    pub search: Search,
    pub help: bool,
    /// A one-line note for the status bar (an error, "no outputs", ...).
    pub message: Option<String>,
    /// A run marked with `c` to compare with the next one marked.
    pub compare_mark: Option<i64>,
    /// Requests sent and not answered, so a refresh is not asked twice.
    pub pending: HashSet<Request>,
    /// The latest tick's time; `None` until the first tick (and in `--once`).
    pub now: Option<String>,
    /// Whether to draw in colour (off under `NO_COLOR`); meaning never depends on it.
    pub color: bool,
    pub quit: bool,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

impl App {
    pub fn new() -> App {
        App {
            runs: RunsList {
                limit: RUNS_PAGE,
                ..RunsList::default()
            },
            stack: Vec::new(),
            search: Search::default(),
            help: false,
            message: None,
            compare_mark: None,
            pending: HashSet::new(),
            now: None,
            color: false,
            quit: false,
        }
    }

    /// The requests that fill the first screen.
    pub fn start(&mut self) -> Vec<Request> {
        let mut out = vec![self.runs_request(), Request::Workflows];
        for s in &self.stack {
            if let Some(r) = screen_request(s) {
                out.push(r);
            }
        }
        self.track(out)
    }

    /// The screen on display (`None` is the runs list).
    pub fn top(&self) -> &Screen {
        self.stack.last().unwrap_or(&Screen::Runs)
    }

    fn runs_request(&self) -> Request {
        Request::Runs {
            filter: self.runs.filter.clone(),
            limit: self.runs.limit,
        }
    }

    /// Drop requests already in flight and remember the rest.
    fn track(&mut self, reqs: Vec<Request>) -> Vec<Request> {
        reqs.into_iter()
            .filter(|r| self.pending.insert(r.clone()))
            .collect()
    }

    /// Open a screen on top of the stack and ask for its data.
    pub fn push(&mut self, s: Screen) -> Vec<Request> {
        let req = screen_request(&s);
        self.stack.push(s);
        self.track(req.into_iter().collect())
    }

    pub fn open_run(&mut self, id: i64, want_step_run: Option<i64>) -> Vec<Request> {
        self.push(Screen::Run(RunScreen {
            id,
            detail: None,
            selected: 0,
            want_step_run,
        }))
    }

    pub fn open_artifact(&mut self, hash: String) -> Vec<Request> {
        self.push(Screen::Artifact(ArtifactScreen {
            hash,
            detail: None,
            selected: 0,
            toggled: HashSet::new(),
            missing: false,
        }))
    }

    pub fn open_metrics(&mut self, run: i64, compare: Option<i64>) -> Vec<Request> {
        self.push(Screen::Metrics(MetricsScreen {
            run,
            compare,
            detail: None,
            chart: 0,
        }))
    }
}

fn screen_request(s: &Screen) -> Option<Request> {
    match s {
        Screen::Runs => None,
        Screen::Run(r) => Some(Request::Run(r.id)),
        Screen::Artifact(a) => Some(Request::Artifact(a.hash.clone())),
        Screen::Metrics(m) => Some(Request::Metrics {
            run: m.run,
            compare: m.compare,
        }),
    }
}

const STATUSES: [&str; 4] = ["running", "succeeded", "failed", "interrupted"];

/// Apply one event; return what to read.
pub fn update(app: &mut App, event: Event) -> Vec<Request> {
    match event {
        Event::Quit => {
            app.quit = true;
            Vec::new()
        }
        Event::Fatal(m) => {
            app.message = Some(format!("error: {m}"));
            Vec::new()
        }
        Event::Tick { now } => {
            app.now = Some(now);
            let refresh = refresh_requests(app);
            app.track(refresh)
        }
        Event::Loaded(req, res) => {
            app.pending.remove(&req);
            match res {
                Ok(l) => apply(app, &req, l),
                Err(e) => app.message = Some(format!("error: {e}")),
            }
            Vec::new()
        }
        Event::Key(k) => on_key(app, k),
    }
}

/// What a tick refreshes: the runs list while it is on display (new runs appear,
/// running ones progress), and a run or its metrics while the run is in progress.
fn refresh_requests(app: &App) -> Vec<Request> {
    match app.top() {
        Screen::Runs => vec![app.runs_request()],
        Screen::Run(r) => match &r.detail {
            Some(d) if d.run.run.status == Status::Running => vec![Request::Run(r.id)],
            _ => Vec::new(),
        },
        Screen::Metrics(m) => match &m.detail {
            Some(d) if d.runs.iter().any(|r| r.run.run.status == Status::Running) => {
                vec![Request::Metrics {
                    run: m.run,
                    compare: m.compare,
                }]
            }
            _ => Vec::new(),
        },
        Screen::Artifact(_) => Vec::new(),
    }
}

fn apply(app: &mut App, req: &Request, loaded: Loaded) {
    match loaded {
        Loaded::Runs {
            filter,
            rows,
            total,
        } => {
            // An answer for a filter no longer in force is stale.
            if filter != app.runs.filter {
                return;
            }
            app.runs.rows = rows;
            app.runs.total = Some(total);
            app.runs.selected = app.runs.selected.min(app.runs.rows.len().saturating_sub(1));
        }
        Loaded::Workflows(w) => app.runs.workflows = w,
        Loaded::Run(d) => {
            for s in &mut app.stack {
                if let Screen::Run(r) = s
                    && r.id == d.run.run.id
                {
                    if let Some(want) = r.want_step_run.take()
                        && let Some(i) = d.steps.iter().position(|s| s.row.id == want)
                    {
                        r.selected = i;
                    }
                    r.selected = r.selected.min(d.steps.len().saturating_sub(1));
                    r.detail = Some(d.clone());
                }
            }
        }
        Loaded::NoRun(id) => {
            app.message = Some(format!("there is no run {id}"));
        }
        Loaded::Artifact(d) => {
            for s in &mut app.stack {
                if let Screen::Artifact(a) = s
                    && a.hash == d.hash
                {
                    a.detail = Some(d.clone());
                }
            }
        }
        Loaded::NoArtifact(h) => {
            for s in &mut app.stack {
                if let Screen::Artifact(a) = s
                    && a.hash == h
                {
                    a.missing = true;
                }
            }
            app.message = Some(format!(
                "no artifact {} in the lineage database",
                crate::util::fmt::short(&h)
            ));
        }
        Loaded::Search { query, hits } => {
            if let Some((q, r)) = &mut app.search.results
                && *q == query
            {
                *r = Some(hits);
                app.search.selected = 0;
            }
        }
        Loaded::Metrics(d) => {
            if let Request::Metrics { run, compare } = req {
                for s in &mut app.stack {
                    if let Screen::Metrics(m) = s
                        && m.run == *run
                        && m.compare == *compare
                    {
                        m.chart = m.chart.min(d.series_keys().len().saturating_sub(1));
                        m.detail = Some(d.clone());
                    }
                }
            }
        }
    }
}

/// Move a selection by an action; true if the action was a movement.
fn movement(a: Action, selected: &mut usize, len: usize) -> bool {
    let last = len.saturating_sub(1);
    let page = 10;
    match a {
        Action::Down => *selected = (*selected + 1).min(last),
        Action::Up => *selected = selected.saturating_sub(1),
        Action::PageDown => *selected = (*selected + page).min(last),
        Action::PageUp => *selected = selected.saturating_sub(page),
        Action::First => *selected = 0,
        Action::Last => *selected = last,
        _ => return false,
    }
    true
}

impl App {
    /// Where keys go now, apart from the search prompt and the help overlay.
    pub fn context(&self) -> Context {
        if self.search.results.is_some() {
            return Context::Search;
        }
        match self.top() {
            Screen::Runs => Context::Runs,
            Screen::Run(_) => Context::Run,
            Screen::Artifact(_) => Context::Artifact,
            Screen::Metrics(_) => Context::Metrics,
        }
    }
}

fn on_key(app: &mut App, k: Key) -> Vec<Request> {
    // The search prompt takes every key while it is open: bound ones act, the rest are text.
    if let Some(text) = &mut app.search.typing {
        match translate(Context::Prompt, k) {
            Some(Action::Quit) => app.quit = true,
            Some(Action::Back) => app.search.typing = None,
            Some(Action::Submit) => {
                let q = text.trim().to_owned();
                app.search.typing = None;
                if q.is_empty() {
                    return Vec::new();
                }
                app.search.results = Some((q.clone(), None));
                app.search.selected = 0;
                return app.track(vec![Request::Search(q)]);
            }
            _ => match k {
                Key::Backspace => {
                    text.pop();
                }
                Key::Char(c) => text.push(c),
                _ => {}
            },
        }
        return Vec::new();
    }
    if app.help {
        // Any key closes the help; quit still quits.
        app.help = false;
        if translate(Context::Global, k) == Some(Action::Quit) {
            app.quit = true;
        }
        return Vec::new();
    }
    app.message = None;
    let context = app.context();
    let Some(action) = translate(context, k) else {
        return Vec::new();
    };
    match action {
        Action::Quit => {
            app.quit = true;
            return Vec::new();
        }
        Action::Help => {
            app.help = true;
            return Vec::new();
        }
        Action::Search => {
            app.search.typing = Some(String::new());
            return Vec::new();
        }
        _ => {}
    }
    match context {
        Context::Search => on_search(app, action),
        Context::Runs => on_runs(app, action),
        Context::Run => on_run(app, action),
        Context::Artifact => on_artifact(app, action),
        Context::Metrics => on_metrics(app, action),
        Context::Global | Context::Prompt => Vec::new(),
    }
}

fn back(app: &mut App) {
    app.stack.pop();
}

fn on_search(app: &mut App, a: Action) -> Vec<Request> {
    let hits_len = app
        .search
        .results
        .as_ref()
        .and_then(|(_, h)| h.as_ref())
        .map_or(0, Vec::len);
    if movement(a, &mut app.search.selected, hits_len) {
        return Vec::new();
    }
    match a {
        Action::Back => {
            app.search.results = None;
            Vec::new()
        }
        Action::Open => {
            let hit = app
                .search
                .results
                .as_ref()
                .and_then(|(_, h)| h.as_ref())
                .and_then(|h| h.get(app.search.selected))
                .map(|h| h.artifact_hash.clone());
            match hit {
                Some(h) => {
                    app.search.results = None;
                    app.open_artifact(h)
                }
                None => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

fn cycle(current: &Option<String>, options: &[String]) -> Option<String> {
    match current {
        None => options.first().cloned(),
        Some(c) => match options.iter().position(|o| o == c) {
            Some(i) if i + 1 < options.len() => Some(options[i + 1].clone()),
            _ => None,
        },
    }
}

/// Mark a run for comparison, or compare it with the marked one.
fn compare(app: &mut App, id: i64) -> Vec<Request> {
    match app.compare_mark {
        Some(a) if a != id => {
            app.compare_mark = None;
            app.open_metrics(a, Some(id))
        }
        Some(_) => {
            app.compare_mark = None;
            app.message = Some(format!("run {id} unmarked"));
            Vec::new()
        }
        None => {
            app.compare_mark = Some(id);
            app.message = Some(format!(
                "run {id} marked: press `{}` on another run to compare",
                super::input::key_name(app.context(), Action::Compare)
            ));
            Vec::new()
        }
    }
}

fn on_runs(app: &mut App, a: Action) -> Vec<Request> {
    let len = app.runs.rows.len();
    if movement(a, &mut app.runs.selected, len) {
        // Reaching the end of the page asks for the next one.
        if len > 0
            && app.runs.selected + 1 >= len
            && app.runs.total.is_some_and(|t| t > len as i64)
            && app.runs.limit <= len as i64
        {
            app.runs.limit += RUNS_PAGE;
            let r = app.runs_request();
            return app.track(vec![r]);
        }
        return Vec::new();
    }
    let selected = app.runs.rows.get(app.runs.selected).map(|r| r.run.id);
    let refilter = |app: &mut App| {
        app.runs.selected = 0;
        app.runs.limit = RUNS_PAGE;
        app.runs.rows.clear();
        app.runs.total = None;
        let r = app.runs_request();
        app.track(vec![r])
    };
    match a {
        Action::Open => match selected {
            Some(id) => app.open_run(id, None),
            None => Vec::new(),
        },
        Action::CycleWorkflow => {
            app.runs.filter.workflow = cycle(&app.runs.filter.workflow, &app.runs.workflows);
            refilter(app)
        }
        Action::CycleStatus => {
            let statuses: Vec<String> = STATUSES.iter().map(|s| s.to_string()).collect();
            app.runs.filter.status = cycle(&app.runs.filter.status, &statuses);
            refilter(app)
        }
        Action::ClearFilters => {
            app.runs.filter = RunFilter::default();
            refilter(app)
        }
        Action::Metrics => match selected {
            Some(id) => app.open_metrics(id, None),
            None => Vec::new(),
        },
        Action::Compare => match selected {
            Some(id) => compare(app, id),
            None => Vec::new(),
        },
        Action::Refresh => {
            let r = app.runs_request();
            app.track(vec![r])
        }
        _ => Vec::new(),
    }
}

fn on_run(app: &mut App, a: Action) -> Vec<Request> {
    let Some(Screen::Run(r)) = app.stack.last_mut() else {
        return Vec::new();
    };
    let len = r.detail.as_ref().map_or(0, |d| d.steps.len());
    if movement(a, &mut r.selected, len) {
        return Vec::new();
    }
    let id = r.id;
    let step = r.detail.as_ref().and_then(|d| d.steps.get(r.selected));
    let output = |n: usize| {
        step.and_then(|s| s.outputs.get(n))
            .map(|o| o.artifact_hash.clone())
    };
    let open = |app: &mut App, n: usize, hash: Option<String>| match hash {
        Some(h) => app.open_artifact(h),
        None => {
            app.message = Some(if n == 0 {
                "this step recorded no outputs".into()
            } else {
                format!("this step has no output {}", n + 1)
            });
            Vec::new()
        }
    };
    match a {
        Action::Back => {
            back(app);
            Vec::new()
        }
        Action::Open => {
            let h = output(0);
            open(app, 0, h)
        }
        Action::OpenOutput(n) => {
            let h = output(n);
            open(app, n, h)
        }
        Action::Metrics => app.open_metrics(id, None),
        Action::Compare => compare(app, id),
        Action::Refresh => app.track(vec![Request::Run(id)]),
        _ => Vec::new(),
    }
}

fn on_metrics(app: &mut App, a: Action) -> Vec<Request> {
    let Some(Screen::Metrics(m)) = app.stack.last_mut() else {
        return Vec::new();
    };
    let len = m.detail.as_ref().map_or(0, |d| d.series_keys().len());
    match a {
        Action::NextChart if len > 0 => m.chart = (m.chart + 1) % len,
        Action::PrevChart if len > 0 => m.chart = (m.chart + len - 1) % len,
        Action::Refresh => {
            let req = Request::Metrics {
                run: m.run,
                compare: m.compare,
            };
            return app.track(vec![req]);
        }
        Action::Back => back(app),
        _ => {}
    }
    Vec::new()
}

fn on_artifact(app: &mut App, act: Action) -> Vec<Request> {
    let Some(Screen::Artifact(a)) = app.stack.last_mut() else {
        return Vec::new();
    };
    let rows = a
        .detail
        .as_ref()
        .map(|d| tree_rows(d, &a.toggled))
        .unwrap_or_default();
    if movement(act, &mut a.selected, rows.len()) {
        return Vec::new();
    }
    let Some(row) = rows.get(a.selected).cloned() else {
        if matches!(act, Action::Back | Action::Out) {
            back(app);
        }
        return Vec::new();
    };
    let toggle = |a: &mut ArtifactScreen| {
        if !a.toggled.remove(&row.key) {
            a.toggled.insert(row.key.clone());
        }
    };
    match act {
        Action::Fold if row.has_children => toggle(a),
        Action::In => {
            if row.has_children && !row.expanded {
                toggle(a);
            } else if row.expanded {
                a.selected = (a.selected + 1).min(rows.len().saturating_sub(1));
            }
        }
        Action::Out => {
            if row.expanded {
                toggle(a);
            } else if let Some(p) = rows[..a.selected].iter().rposition(|r| r.depth < row.depth) {
                a.selected = p;
            } else {
                back(app);
            }
        }
        Action::Back => back(app),
        Action::ParentRun => {
            // The run of a step row; for an artifact, the run of the step that made it.
            let target = match &row.kind {
                RowKind::Step {
                    run_id,
                    step_run_id,
                    ..
                } => Some((*run_id, *step_run_id)),
                RowKind::Artifact { hash, .. } => producer(a, hash),
                RowKind::Section { .. } => producer(a, &a.hash.clone()),
                RowKind::More(_) => None,
            };
            match target {
                Some((run, sr)) => return app.open_run(run, Some(sr)),
                None => {
                    app.message = Some("a raw input: no run made it".into());
                }
            }
        }
        Action::ReRoot => {
            if let RowKind::Artifact { hash, .. } = &row.kind {
                let h = hash.clone();
                return app.open_artifact(h);
            }
        }
        _ => {}
    }
    Vec::new()
}

/// The newest step run (and its run) that made `hash`, from the loaded tree.
fn producer(a: &ArtifactScreen, hash: &str) -> Option<(i64, i64)> {
    a.detail
        .as_deref()
        .and_then(|d| super::tree::producer(d, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::{Edge, RunRow, StepRunRow};
    use crate::tui::data::{RunMetrics, StepDetail};

    fn run_row(id: i64, workflow: &str, status: &str) -> RunSummaryRow {
        RunSummaryRow {
            run: RunRow {
                id,
                workflow: workflow.into(),
                workflow_path: format!("workflows/{workflow}.yaml"),
                workflow_hash: "0".repeat(64),
                git_commit: None,
                git_dirty: None,
                params_json: "{}".into(),
                status: status.parse().expect("a status"),
                started_at: "2026-01-01T00:00:00.000Z".into(),
                finished_at: None,
                host: "h".into(),
                user: "u".into(),
            },
            ran: 1,
            cached: 0,
            failed: 0,
        }
    }

    fn loaded_runs(app: &mut App, rows: Vec<RunSummaryRow>, total: i64) {
        let req = Request::Runs {
            filter: app.runs.filter.clone(),
            limit: app.runs.limit,
        };
        let filter = app.runs.filter.clone();
        update(
            app,
            Event::Loaded(
                req,
                Ok(Loaded::Runs {
                    filter,
                    rows,
                    total,
                }),
            ),
        );
    }

    fn step(id: i64, name: &str, out: &str) -> StepDetail {
        StepDetail {
            row: StepRunRow {
                id,
                run_id: 1,
                step: name.into(),
                kind: "plugin:x".into(),
                step_key: None,
                status: Status::Succeeded,
                reason: "no earlier run of this step".into(),
                cached_from: None,
                started_at: "2026-01-01T00:00:00.000Z".into(),
                finished_at: None,
                error: None,
                stderr_tail: None,
                log_hash: None,
                remote_source: None,
            },
            depth: 0,
            input_sources: Default::default(),
            inputs: Vec::new(),
            outputs: vec![crate::lineage::SlotRow {
                step_run_id: id,
                slot: "out".into(),
                artifact_hash: out.into(),
                kind: None,
                size: None,
            }],
            params: Vec::new(),
            metrics: Vec::new(),
            facets: Vec::new(),
        }
    }

    fn key(app: &mut App, k: Key) -> Vec<Request> {
        update(app, Event::Key(k))
    }

    #[test]
    fn start_asks_for_runs_and_workflows_once() {
        let mut app = App::new();
        let reqs = app.start();
        assert_eq!(reqs.len(), 2);
        assert!(
            app.start().is_empty(),
            "requests in flight are not repeated"
        );
    }

    #[test]
    fn moving_opens_and_going_back() {
        let mut app = App::new();
        app.start();
        loaded_runs(
            &mut app,
            vec![run_row(3, "a", "succeeded"), run_row(2, "b", "failed")],
            2,
        );
        key(&mut app, Key::Char('j'));
        key(&mut app, Key::Down);
        assert_eq!(app.runs.selected, 1, "clamped at the last row");
        assert_eq!(key(&mut app, Key::Enter), vec![Request::Run(2)]);
        assert!(matches!(app.top(), Screen::Run(r) if r.id == 2));
        key(&mut app, Key::Esc);
        assert!(matches!(app.top(), Screen::Runs));
        assert_eq!(app.runs.selected, 1, "the list keeps its selection");
        key(&mut app, Key::Char('q'));
        assert!(app.quit);
    }

    #[test]
    fn filters_cycle_and_stale_answers_are_dropped() {
        let mut app = App::new();
        app.start();
        update(
            &mut app,
            Event::Loaded(
                Request::Workflows,
                Ok(Loaded::Workflows(vec!["a".into(), "b".into()])),
            ),
        );
        let old = app.runs.filter.clone();
        let reqs = key(&mut app, Key::Char('w'));
        assert_eq!(app.runs.filter.workflow.as_deref(), Some("a"));
        assert!(
            matches!(&reqs[..], [Request::Runs { filter, .. }] if filter.workflow.as_deref() == Some("a"))
        );
        // An answer for the old filter arrives late: ignored.
        update(
            &mut app,
            Event::Loaded(
                Request::Runs {
                    filter: old.clone(),
                    limit: RUNS_PAGE,
                },
                Ok(Loaded::Runs {
                    filter: old,
                    rows: vec![run_row(1, "b", "failed")],
                    total: 1,
                }),
            ),
        );
        assert!(app.runs.rows.is_empty());
        key(&mut app, Key::Char('w'));
        assert_eq!(app.runs.filter.workflow.as_deref(), Some("b"));
        key(&mut app, Key::Char('w'));
        assert_eq!(app.runs.filter.workflow, None, "past the last comes `all`");
        key(&mut app, Key::Char('s'));
        assert_eq!(app.runs.filter.status.as_deref(), Some("running"));
        key(&mut app, Key::Char('x'));
        assert_eq!(app.runs.filter, RunFilter::default());
    }

    #[test]
    fn the_end_of_a_page_asks_for_the_next() {
        let mut app = App::new();
        app.start();
        let rows: Vec<_> = (0..RUNS_PAGE)
            .map(|i| run_row(1000 - i, "a", "succeeded"))
            .collect();
        loaded_runs(&mut app, rows, 5000);
        app.pending.clear();
        let reqs = key(&mut app, Key::End);
        assert_eq!(
            reqs,
            vec![Request::Runs {
                filter: RunFilter::default(),
                limit: 2 * RUNS_PAGE
            }]
        );
    }

    #[test]
    fn ticks_refresh_only_what_is_in_progress() {
        let mut app = App::new();
        app.start();
        app.pending.clear();
        let tick = |app: &mut App| {
            update(
                app,
                Event::Tick {
                    now: "2026-01-01T00:00:05.000Z".into(),
                },
            )
        };
        assert_eq!(tick(&mut app).len(), 1, "the runs list refreshes");
        assert!(
            tick(&mut app).is_empty(),
            "not while the last refresh is in flight"
        );
        app.pending.clear();
        app.open_run(1, None);
        app.pending.clear();
        let mut detail = RunDetail {
            run: run_row(1, "a", "running"),
            steps: vec![step(1, "s", "h1")],
        };
        update(
            &mut app,
            Event::Loaded(Request::Run(1), Ok(Loaded::Run(Box::new(detail.clone())))),
        );
        assert_eq!(tick(&mut app), vec![Request::Run(1)]);
        detail.run.run.status = Status::Succeeded;
        update(
            &mut app,
            Event::Loaded(Request::Run(1), Ok(Loaded::Run(Box::new(detail)))),
        );
        assert!(tick(&mut app).is_empty(), "a finished run is not re-read");
        assert!(app.now.is_some());
    }

    #[test]
    fn run_keys_open_outputs_and_metrics() {
        let mut app = App::new();
        app.open_run(1, Some(11));
        let d = RunDetail {
            run: run_row(1, "a", "succeeded"),
            steps: vec![step(10, "first", "aaaa"), step(11, "second", "bbbb")],
        };
        update(
            &mut app,
            Event::Loaded(Request::Run(1), Ok(Loaded::Run(Box::new(d)))),
        );
        assert!(
            matches!(app.top(), Screen::Run(r) if r.selected == 1),
            "the step asked for is selected"
        );
        assert_eq!(
            key(&mut app, Key::Enter),
            vec![Request::Artifact("bbbb".into())]
        );
        key(&mut app, Key::Esc);
        assert!(key(&mut app, Key::Char('2')).is_empty());
        assert_eq!(app.message.as_deref(), Some("this step has no output 2"));
        assert_eq!(
            key(&mut app, Key::Char('m')),
            vec![Request::Metrics {
                run: 1,
                compare: None
            }]
        );
    }

    #[test]
    fn compare_marks_one_run_then_opens_both() {
        let mut app = App::new();
        app.start();
        loaded_runs(
            &mut app,
            vec![run_row(3, "a", "succeeded"), run_row(2, "a", "succeeded")],
            2,
        );
        assert!(key(&mut app, Key::Char('c')).is_empty());
        assert_eq!(app.compare_mark, Some(3));
        key(&mut app, Key::Char('j'));
        assert_eq!(
            key(&mut app, Key::Char('c')),
            vec![Request::Metrics {
                run: 3,
                compare: Some(2)
            }]
        );
        assert_eq!(app.compare_mark, None);
        let m = |id| RunMetrics {
            run: run_row(id, "a", "succeeded"),
            series: [
                ("fit.loss".to_owned(), vec![(1, 0.5)]),
                ("fit.acc".to_owned(), vec![(1, 0.1)]),
            ]
            .into(),
            finals: Vec::new(),
            params: Default::default(),
        };
        update(
            &mut app,
            Event::Loaded(
                Request::Metrics {
                    run: 3,
                    compare: Some(2),
                },
                Ok(Loaded::Metrics(Box::new(MetricsDetail {
                    runs: vec![m(3), m(2)],
                }))),
            ),
        );
        key(&mut app, Key::Char('j'));
        key(&mut app, Key::Char('j'));
        assert!(
            matches!(app.top(), Screen::Metrics(m) if m.chart == 0),
            "charts wrap around"
        );
    }

    #[test]
    fn search_prompt_takes_keys_until_enter_or_esc() {
        let mut app = App::new();
        key(&mut app, Key::Char('/'));
        for c in "abq".chars() {
            key(&mut app, Key::Char(c));
        }
        assert!(!app.quit, "`q` is text in the prompt");
        key(&mut app, Key::Backspace);
        assert_eq!(
            key(&mut app, Key::Enter),
            vec![Request::Search("ab".into())]
        );
        let hit = SearchHit {
            artifact_hash: "ab12".into(),
            matched: "hash".into(),
            label: "ab12".into(),
        };
        update(
            &mut app,
            Event::Loaded(
                Request::Search("ab".into()),
                Ok(Loaded::Search {
                    query: "ab".into(),
                    hits: vec![hit],
                }),
            ),
        );
        assert_eq!(
            key(&mut app, Key::Enter),
            vec![Request::Artifact("ab12".into())]
        );
        assert!(app.search.results.is_none());
        key(&mut app, Key::Char('/'));
        key(&mut app, Key::Esc);
        assert!(app.search.typing.is_none());
        key(&mut app, Key::Char('/'));
        key(&mut app, Key::Interrupt);
        assert!(app.quit, "Ctrl-C quits even from the prompt");
    }

    fn edge(near: &str, sr: i64, far: Option<&str>) -> Edge {
        Edge {
            near: near.into(),
            step_run_id: sr,
            run_id: 1,
            step: format!("s{sr}"),
            near_slot: "out".into(),
            far_slot: far.map(|_| "in".into()),
            far: far.map(Into::into),
        }
    }

    #[test]
    fn the_tree_folds_and_shows_shared_ancestors_once() {
        // root ← s1 ← {x, y}; x ← s2 ← raw; y ← s2 (the same step run) ← raw.
        let d = ArtifactDetail {
            hash: "root".into(),
            up: vec![
                edge("root", 1, Some("x")),
                Edge {
                    far_slot: Some("in2".into()),
                    ..edge("root", 1, Some("y"))
                },
                edge("x", 2, Some("raw")),
                edge("y", 2, Some("raw")),
            ],
            down: Vec::new(),
            up_truncated: false,
            down_truncated: false,
            artifacts: Default::default(),
            sources: Default::default(),
            releases: Default::default(),
            steps: Default::default(),
        };
        let rows = tree_rows(&d, &HashSet::new());
        let shape: Vec<(usize, bool, bool)> = rows
            .iter()
            .map(|r| (r.depth, r.expanded, r.repeat))
            .collect();
        assert_eq!(
            shape,
            [
                (0, true, false),  // ancestry
                (1, true, false),  // made by s1
                (2, true, false),  // ← x
                (3, true, false),  // made by s2
                (4, false, false), // ← raw
                (2, true, false),  // ← y
                (3, false, true),  // made by s2 (also above): folded
                (0, false, false), // descendants: none
            ]
        );
        let mut app = App::new();
        app.open_artifact("root".into());
        update(
            &mut app,
            Event::Loaded(
                Request::Artifact("root".into()),
                Ok(Loaded::Artifact(Box::new(d))),
            ),
        );
        // Fold `made by s1`: its subtree disappears; `h` from a leaf goes to its parent.
        key(&mut app, Key::Char('j'));
        key(&mut app, Key::Enter);
        let Screen::Artifact(a) = app.top() else {
            panic!()
        };
        assert_eq!(tree_rows(a.detail.as_ref().unwrap(), &a.toggled).len(), 3);
        key(&mut app, Key::Char('l'));
        key(&mut app, Key::End);
        key(&mut app, Key::Up);
        key(&mut app, Key::Char('h'));
        let Screen::Artifact(a) = app.top() else {
            panic!()
        };
        assert_eq!(
            a.selected, 5,
            "from `made by s2 (also above)` to its parent `← y`"
        );
        // `r` on `← y` opens the run of the step run that made `y`.
        assert_eq!(key(&mut app, Key::Char('r')), vec![Request::Run(1)]);
        assert!(matches!(app.top(), Screen::Run(r) if r.want_step_run == Some(2)));
    }
}
