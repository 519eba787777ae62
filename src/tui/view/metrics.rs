//! Metrics of a run: per-epoch series as a line chart (one at a time, `j`/`k`
//! pick which), final values as a table against baselines, and, when two runs are
//! compared, both runs on one chart, their values side by side and their param
//! diff.
//!
//! Baselines: a final metric named `MODEL/METRIC` (for example
//! `popularity/ndcg@20`) is `METRIC` of baseline `MODEL`; a name without `/` is
//! the step's own model. The table has a row per metric and a column per model.

use std::collections::BTreeSet;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Cell, Chart, Dataset, GraphType, Paragraph, Row, Table};

use super::run::fmt_num;
use super::{Theme, cut, panel};
use crate::lineage::Status;
use crate::tui::app::{App, MetricsScreen};
use crate::tui::data::{MetricsDetail, RunMetrics};
use crate::tui::input::{self, Action, Context};

pub fn draw(_app: &App, m: &MetricsScreen, theme: Theme, f: &mut Frame, area: Rect) {
    let Some(d) = &m.detail else {
        f.render_widget(
            Paragraph::new(format!("loading metrics of run {}...", m.run)),
            area,
        );
        return;
    };
    let keys = d.series_keys();
    let mut head = Vec::new();
    for (i, r) in d.runs.iter().enumerate() {
        if i > 0 {
            head.push(Span::raw("  vs  "));
        }
        head.push(Span::styled(
            format!("run {} ", r.run.run.id),
            theme.accent(),
        ));
        head.push(Span::raw(format!("`{}` ", r.run.run.workflow)));
        head.push(Span::styled(
            r.run.run.status.to_string(),
            theme.status(r.run.run.status),
        ));
        if d.runs.len() > 1 {
            head.push(Span::styled(format!(" ({})", marker_name(i)), theme.dim()));
        }
    }
    let chart_h = if keys.is_empty() {
        0
    } else {
        (area.height / 2).clamp(6, 20)
    };
    let [h, chart, rest] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(chart_h),
        Constraint::Min(3),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(Line::from(head)), h);
    if let Some(key) = keys.get(m.chart) {
        draw_chart(d, key, m.chart, keys.len(), theme, f, chart);
    }
    if d.runs.len() == 2 {
        let (a, b) = if rest.width >= 100 {
            let [a, b] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(rest);
            (a, b)
        } else {
            let [a, b] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(rest);
            (a, b)
        };
        compare_table(&d.runs[0], &d.runs[1], theme, f, a);
        param_diff(&d.runs[0], &d.runs[1], theme, f, b);
    } else if let Some(r) = d.runs.first() {
        finals_table(r, theme, f, rest);
    }
}

fn marker_name(i: usize) -> &'static str {
    if i == 0 { "line ⣿" } else { "dots •" }
}

fn draw_chart(
    d: &MetricsDetail,
    key: &str,
    index: usize,
    count: usize,
    theme: Theme,
    f: &mut Frame,
    area: Rect,
) {
    let data: Vec<Vec<(f64, f64)>> = d
        .runs
        .iter()
        .map(|r| {
            r.series
                .get(key)
                .map(|s| s.iter().map(|&(x, y)| (x as f64, y)).collect())
                .unwrap_or_default()
        })
        .collect();
    let all = data.iter().flatten();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return;
    }
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    if y1 == y0 {
        y1 = y0 + 1.0;
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let styles = [
        theme.status(Status::Succeeded),
        theme.status(Status::Running),
    ];
    let datasets: Vec<Dataset> = data
        .iter()
        .enumerate()
        .map(|(i, pts)| {
            Dataset::default()
                .name(format!("run {}", d.runs[i].run.run.id))
                .marker(if i == 0 { Marker::Braille } else { Marker::Dot })
                .graph_type(if i == 0 {
                    GraphType::Line
                } else {
                    GraphType::Scatter
                })
                .style(styles[i.min(1)])
                .data(pts)
        })
        .collect();
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(format!(
            " {key} by epoch ({}/{count}, {}/{}: next) ",
            index + 1,
            input::key_name(Context::Metrics, Action::NextChart),
            input::key_name(Context::Metrics, Action::PrevChart),
        )))
        .x_axis(
            Axis::default()
                .bounds([x0, x1])
                .labels([fmt_num(x0), fmt_num(x1)])
                .style(theme.dim()),
        )
        .y_axis(
            Axis::default()
                .bounds([y0, y1])
                .labels([fmt_num(y0), fmt_num(y1)])
                .style(theme.dim()),
        );
    f.render_widget(chart, area);
}

/// Split `MODEL/METRIC`; a plain name belongs to the step itself.
fn model_metric<'a>(step: &'a str, key: &'a str) -> (&'a str, &'a str) {
    key.rsplit_once('/').unwrap_or((step, key))
}

fn finals_table(r: &RunMetrics, theme: Theme, f: &mut Frame, area: Rect) {
    if r.finals.is_empty() {
        let msg = if r.series.is_empty() {
            "this run recorded no metrics"
        } else {
            "no final metrics (only per-epoch series)"
        };
        f.render_widget(Paragraph::new(msg).block(panel("final metrics")), area);
        return;
    }
    // Columns: models in order of first appearance; rows: metrics.
    let mut models: Vec<&str> = Vec::new();
    let mut metrics: Vec<&str> = Vec::new();
    for (step, key, _) in &r.finals {
        let (model, metric) = model_metric(step, key);
        if !models.contains(&model) {
            models.push(model);
        }
        if !metrics.contains(&metric) {
            metrics.push(metric);
        }
    }
    let col_w = 12u16;
    let fit = ((area.width.saturating_sub(20)) / (col_w + 1)).max(1) as usize;
    let models: Vec<&str> = models.into_iter().take(fit).collect();
    let rows: Vec<Row> = metrics
        .iter()
        .map(|metric| {
            let mut cells = vec![Cell::from(cut(metric, 20))];
            for model in &models {
                let v = r
                    .finals
                    .iter()
                    .find(|(s, k, _)| model_metric(s, k) == (*model, *metric))
                    .map(|(_, _, v)| fmt_num(*v))
                    .unwrap_or_else(|| "-".into());
                cells.push(Cell::from(v));
            }
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![Constraint::Length(20)];
    widths.extend(models.iter().map(|_| Constraint::Length(col_w)));
    let mut header = vec![Cell::from("metric")];
    header.extend(models.iter().map(|m| Cell::from(cut(m, col_w as usize))));
    f.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.header()))
            .block(panel("final metrics (columns: model and baselines)")),
        area,
    );
}

fn compare_table(a: &RunMetrics, b: &RunMetrics, theme: Theme, f: &mut Frame, area: Rect) {
    let key = |(s, k, _): &(String, String, f64)| format!("{s}.{k}");
    let names: BTreeSet<String> = a.finals.iter().chain(&b.finals).map(key).collect();
    let get = |r: &RunMetrics, n: &str| r.finals.iter().find(|x| key(x) == n).map(|x| x.2);
    let rows: Vec<Row> = names
        .iter()
        .map(|n| {
            let (x, y) = (get(a, n), get(b, n));
            let show = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "-".into());
            let delta = match (x, y) {
                (Some(x), Some(y)) if x != y => format!("{:+.4}", y - x),
                (Some(_), Some(_)) => "=".into(),
                _ => "".into(),
            };
            Row::new(vec![
                Cell::from(cut(n, 24)),
                Cell::from(show(x)),
                Cell::from(show(y)),
                Cell::from(delta),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(24),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Min(8),
    ];
    let header = Row::new(vec![
        "metric".to_owned(),
        format!("run {}", a.run.run.id),
        format!("run {}", b.run.run.id),
        "change".to_owned(),
    ])
    .style(theme.header());
    let t = Table::new(rows, widths)
        .header(header)
        .block(panel("final metrics"));
    if names.is_empty() {
        f.render_widget(
            Paragraph::new("no final metrics in either run").block(panel("final metrics")),
            area,
        );
    } else {
        f.render_widget(t, area);
    }
}

fn param_diff(a: &RunMetrics, b: &RunMetrics, theme: Theme, f: &mut Frame, area: Rect) {
    let keys: BTreeSet<&String> = a.params.keys().chain(b.params.keys()).collect();
    let mut lines = Vec::new();
    for k in keys {
        let (x, y) = (a.params.get(k), b.params.get(k));
        if x != y {
            lines.push(Line::from(vec![
                Span::styled(format!("{k}: "), theme.accent()),
                Span::raw(format!(
                    "{} → {}",
                    x.map(|s| super::json_text(s))
                        .unwrap_or_else(|| "(none)".into()),
                    y.map(|s| super::json_text(s))
                        .unwrap_or_else(|| "(none)".into())
                )),
            ]));
        }
    }
    if lines.is_empty() {
        lines.push(Line::from("same params"));
    }
    f.render_widget(
        Paragraph::new(lines).block(panel(format!(
            "param diff: run {} → run {}",
            a.run.run.id, b.run.run.id
        ))),
        area,
    );
}
