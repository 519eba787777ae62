//! One run: its steps in DAG order (indented by depth) with status, duration,
//! key and why each ran or was cached; the selected step's details beside or
//! below (inputs and where they came from, outputs, params, metrics, facets, and
//! the error and stderr tail of a failed step).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{Theme, bytes, cut, json_text, panel, split, took, when};
use crate::lineage::Status;
use crate::tui::app::{App, RunScreen};
use crate::tui::data::StepDetail;
use crate::util::fmt::short;

pub fn draw(app: &App, r: &RunScreen, theme: Theme, f: &mut Frame, area: Rect) {
    let Some(d) = &r.detail else {
        f.render_widget(Paragraph::new(format!("loading run {}...", r.id)), area);
        return;
    };
    let run = &d.run.run;
    let [head, body] = Layout::vertical([Constraint::Length(2), Constraint::Min(3)]).areas(area);
    let mut line1 = vec![
        Span::styled(format!("run {} ", run.id), theme.accent()),
        Span::raw(format!("`{}` ", run.workflow)),
        Span::styled(run.status.to_string(), theme.status(run.status)),
        Span::raw(format!(
            "  {}  took {}  {} ran, {} cached, {} failed",
            when(&run.started_at, area.width < 100),
            took(
                &run.started_at,
                run.finished_at.as_deref(),
                app.now.as_deref()
            ),
            d.run.ran,
            d.run.cached,
            d.run.failed
        )),
    ];
    if area.width >= 120 {
        line1.push(Span::styled(
            format!("  {}@{}  {}", run.user, run.host, run.workflow_path),
            theme.dim(),
        ));
    }
    let git = match (&run.git_commit, run.git_dirty) {
        (Some(c), Some(true)) => format!("git {} (uncommitted changes)  ", short(c)),
        (Some(c), _) => format!("git {}  ", short(c)),
        (None, _) => String::new(),
    };
    let line2 = Line::from(vec![
        Span::styled(git, theme.dim()),
        Span::styled("params ", theme.dim()),
        Span::raw(json_text(&run.params_json)),
    ]);
    f.render_widget(Paragraph::new(vec![Line::from(line1), line2]), head);

    let (list, detail) = split(body, d.steps.len());
    let wide = list.width >= 100;
    let rows: Vec<Row> = d
        .steps
        .iter()
        .map(|s| {
            let indent = "  ".repeat(s.depth.min(8));
            let branch = if s.depth > 0 { "└ " } else { "" };
            let mut cells = vec![
                Cell::from(Span::styled(
                    s.row.status.to_string(),
                    theme.status(s.row.status),
                )),
                Cell::from(format!("{indent}{branch}{}", s.row.step)),
                Cell::from(took(
                    &s.row.started_at,
                    s.row.finished_at.as_deref(),
                    app.now.as_deref(),
                )),
            ];
            if wide {
                cells.push(Cell::from(
                    s.row
                        .step_key
                        .as_deref()
                        .map(short)
                        .unwrap_or_else(|| "-".into()),
                ));
            }
            cells.push(Cell::from(Span::styled(s.row.reason.clone(), theme.dim())));
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(11),
        Constraint::Length(22),
        Constraint::Length(7),
    ];
    let mut header = vec!["status", "step", "took"];
    if wide {
        widths.push(Constraint::Length(12));
        header.push("key");
    }
    widths.push(Constraint::Min(10));
    header.push("why");
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header()))
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ");
    let mut st = TableState::default().with_selected(Some(r.selected));
    f.render_stateful_widget(table, list, &mut st);

    if let Some(s) = d.steps.get(r.selected) {
        let lines = step_lines(s, theme, detail.width);
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(panel(format!("step `{}`", s.row.step))),
            detail,
        );
    }
}

fn kv(k: &str, v: String, theme: Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{k:<8}"), theme.dim()),
        Span::raw(v),
    ])
}

fn step_lines(s: &StepDetail, theme: Theme, width: u16) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let status = match s.row.cached_from {
        Some(from) => format!("{} (outputs of step run {from})", s.row.status),
        None => s.row.status.to_string(),
    };
    out.push(kv(
        "status",
        format!("{status}  kind {}", s.row.kind),
        theme,
    ));
    out.push(kv("why", s.row.reason.clone(), theme));
    if let Some(k) = &s.row.step_key {
        // The whole key when it fits on one line, else its first 12 digits.
        let k = if width >= 74 { k.clone() } else { short(k) };
        out.push(kv("key", k, theme));
    }
    for i in &s.inputs {
        let from = s.input_sources.get(&i.slot).cloned().unwrap_or_default();
        out.push(kv(
            "in",
            format!("{} ← {from}  {}", i.slot, short(&i.artifact_hash)),
            theme,
        ));
    }
    for (n, o) in s.outputs.iter().enumerate() {
        let what = match (&o.kind, o.size) {
            (Some(k), Some(sz)) => format!("  {k}, {}", bytes(sz)),
            _ => String::new(),
        };
        out.push(Line::from(vec![
            Span::styled(format!("out {:<4}", n + 1), theme.accent()),
            Span::raw(format!("{} → {}{what}", o.slot, short(&o.artifact_hash))),
        ]));
    }
    let wrap = (width as usize).saturating_sub(10).max(20);
    if !s.params.is_empty() {
        let p: Vec<String> = s
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", json_text(v)))
            .collect();
        out.push(kv("params", cut(&p.join("  "), wrap * 2), theme));
    }
    let finals: Vec<String> = s
        .metrics
        .iter()
        .filter(|m| m.step.is_none())
        .map(|m| format!("{}={}", m.key, fmt_num(m.value)))
        .collect();
    if !finals.is_empty() {
        out.push(kv("metrics", finals.join("  "), theme));
    }
    let epochs = s.metrics.iter().filter(|m| m.step.is_some()).count();
    if epochs > 0 {
        out.push(kv(
            "series",
            format!("{epochs} per-epoch values (m: metrics)"),
            theme,
        ));
    }
    for (k, v) in &s.facets {
        if k == crate::lineage::NONDETERMINISTIC_FACET {
            out.push(kv(
                "warning",
                format!(
                    "not deterministic: remote {} holds other outputs for this key",
                    serde_json::from_str::<serde_json::Value>(v)
                        .ok()
                        .and_then(|j| j["remote"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| "?".into())
                ),
                theme,
            ));
            continue;
        }
        out.push(kv("facet", format!("{k}: {}", json_text(v)), theme));
    }
    if let Some(e) = &s.row.error {
        out.push(Line::from(Span::styled(
            format!("error   {}", e.lines().next().unwrap_or("")),
            theme.status(Status::Failed),
        )));
    }
    if s.row.status.is_failure()
        && let Some(t) = &s.row.stderr_tail
    {
        out.push(Line::from(Span::styled("stderr (tail)", theme.dim())));
        let lines: Vec<&str> = t.lines().collect();
        for l in &lines[lines.len().saturating_sub(12)..] {
            out.push(Line::from(format!("  {l}")));
        }
    }
    out
}

/// A metric value: integers as integers, others with 4 significant decimals.
pub(super) fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}
