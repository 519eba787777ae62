//! The runs list: newest first, with status, times and step counts.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::{Theme, cut, took, when};
use crate::tui::app::{App, RunsList};
use crate::util::fmt::short;

pub fn draw(app: &App, r: &RunsList, theme: Theme, f: &mut Frame, area: Rect) {
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let shown = match r.total {
        Some(t) => format!("{} of {t} runs", r.rows.len()),
        None => "loading runs...".into(),
    };
    let filt = |label: &str, v: &Option<String>| {
        vec![
            Span::styled(format!("  {label}: "), theme.dim()),
            Span::raw(v.clone().unwrap_or_else(|| "all".into())),
        ]
    };
    let mut spans = vec![Span::styled(shown, theme.accent())];
    spans.extend(filt("workflow", &r.filter.workflow));
    spans.extend(filt("status", &r.filter.status));
    if let Some(m) = app.compare_mark {
        spans.push(Span::styled(format!("  compare: {m} *"), theme.dim()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), head);

    if r.total == Some(0) {
        let msg = if r.filter.workflow.is_some() || r.filter.status.is_some() {
            "no runs match the filter (x clears it)"
        } else {
            "no runs yet: `pedigree run WORKFLOW` records one"
        };
        f.render_widget(Paragraph::new(msg), body);
        return;
    }
    let wide = area.width >= 110;
    let narrow = area.width < 100;
    let wf_width: usize = if wide { 24 } else { 16 };
    let mut header = vec![
        "run",
        "workflow",
        "status",
        "started",
        "took",
        "ran/cached/failed",
    ];
    if wide {
        header.extend(["git", "by"]);
    }
    let rows: Vec<Row> = r
        .rows
        .iter()
        .map(|s| {
            let mark = if app.compare_mark == Some(s.run.id) {
                "*"
            } else {
                ""
            };
            let mut cells = vec![
                Cell::from(format!("{}{mark}", s.run.id)),
                Cell::from(cut(&s.run.workflow, wf_width)),
                Cell::from(Span::styled(
                    s.run.status.to_string(),
                    theme.status(s.run.status),
                )),
                Cell::from(when(&s.run.started_at, narrow)),
                Cell::from(took(
                    &s.run.started_at,
                    s.run.finished_at.as_deref(),
                    app.now.as_deref(),
                )),
                Cell::from(format!("{}/{}/{}", s.ran, s.cached, s.failed)),
            ];
            if wide {
                let git = match (&s.run.git_commit, s.run.git_dirty) {
                    (Some(c), Some(true)) => format!("{}+", &short(c)[..8.min(c.len())]),
                    (Some(c), _) => short(c)[..8.min(c.len())].to_owned(),
                    (None, _) => "-".into(),
                };
                cells.push(Cell::from(git));
                cells.push(Cell::from(format!("{}@{}", s.run.user, s.run.host)));
            }
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(7),
        Constraint::Length(wf_width as u16),
        Constraint::Length(11),
        Constraint::Length(if narrow { 11 } else { 19 }),
        Constraint::Length(7),
        Constraint::Length(17),
    ];
    if wide {
        widths.extend([Constraint::Length(9), Constraint::Min(10)]);
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header()))
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ");
    let mut st = TableState::default().with_selected(if r.rows.is_empty() {
        None
    } else {
        Some(r.selected)
    });
    f.render_stateful_widget(table, body, &mut st);
}
