//! One artifact: what it is, its ancestry up to raw inputs and its descendants
//! down to releases, as a foldable tree; the selected node's step, run, params
//! and facets beside or below.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};

use super::{Theme, bytes, json_text, panel, split};
use crate::lineage::Status;
use crate::tui::app::{App, ArtifactScreen};
use crate::tui::data::ArtifactDetail;
use crate::tui::input::{self, Action, Context};
use crate::tui::tree::{RowKind, TreeRow, tree_rows};
use crate::util::fmt::short;

pub fn draw(_app: &App, a: &ArtifactScreen, theme: Theme, f: &mut Frame, area: Rect) {
    let Some(d) = &a.detail else {
        let msg = if a.missing {
            format!(
                "no artifact {} in the lineage database ({}: back)",
                short(&a.hash),
                input::key_name(Context::Artifact, Action::Back)
            )
        } else {
            format!("loading artifact {}...", short(&a.hash))
        };
        f.render_widget(Paragraph::new(msg), area);
        return;
    };
    let [head, body] = Layout::vertical([Constraint::Length(2), Constraint::Min(3)]).areas(area);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled("artifact ", theme.accent()),
                Span::raw(d.hash.clone()),
            ]),
            Line::from(describe(d, &d.hash)),
        ]),
        head,
    );
    let rows = tree_rows(d, &a.toggled);
    let (list, detail) = split(body, rows.len());
    let items: Vec<ListItem> = rows
        .iter()
        .map(|r| ListItem::new(row_line(d, r, theme)))
        .collect();
    let mut st =
        ListState::default().with_selected(Some(a.selected.min(rows.len().saturating_sub(1))));
    f.render_stateful_widget(
        List::new(items)
            .highlight_symbol("> ")
            .highlight_style(theme.selected()),
        list,
        &mut st,
    );
    if let Some(r) = rows.get(a.selected) {
        let (title, lines) = node_lines(d, r, theme);
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(panel(title)),
            detail,
        );
    }
}

/// `table, 12 B, raw input `text` (workflows/data/text.txt), release model@2`.
fn describe(d: &ArtifactDetail, hash: &str) -> String {
    let mut parts = Vec::new();
    if let Some(a) = d.artifacts.get(hash) {
        parts.push(format!("{} {}", a.kind, a.media_type));
        parts.push(if a.is_tree {
            format!("folder, {}", bytes(a.content_size))
        } else {
            bytes(a.size)
        });
    }
    if let Some(s) = d.sources.get(hash) {
        parts.push(format!("raw input `{}` at {}", s.name, s.path));
    }
    if let Some(r) = d.releases.get(hash) {
        parts.push(format!("release {}", r.join(", ")));
    }
    parts.join(", ")
}

fn row_line(d: &ArtifactDetail, r: &TreeRow, theme: Theme) -> Line<'static> {
    let fold = if !r.has_children {
        "  "
    } else if r.expanded {
        "▾ "
    } else {
        "▸ "
    };
    let mut spans = vec![Span::raw(format!("{}{fold}", "  ".repeat(r.depth)))];
    match &r.kind {
        RowKind::Section { up } => {
            let (label, n) = if *up {
                ("ancestry (up to raw inputs)", d.up.len())
            } else {
                ("descendants (down to releases)", d.down.len())
            };
            spans.push(Span::styled(label, theme.header()));
            if n == 0 {
                spans.push(Span::styled(
                    if *up {
                        "  none: a raw input"
                    } else {
                        "  none: nothing read it"
                    },
                    theme.dim(),
                ));
            }
        }
        RowKind::Step {
            step,
            run_id,
            up,
            slot,
            step_run_id,
        } => {
            let verb = if *up { "made by" } else { "read by" };
            let how = if *up {
                format!("(as {slot})")
            } else {
                format!("(as input {slot})")
            };
            spans.push(Span::styled(format!("{verb} "), theme.dim()));
            spans.push(Span::styled(step.clone(), theme.accent()));
            spans.push(Span::raw(format!(" run {run_id} {how}")));
            if let Some(status) = d.steps.get(step_run_id).and_then(|s| s.status)
                && status != Status::Succeeded
            {
                spans.push(Span::styled(format!(" {status}"), theme.status(status)));
            }
        }
        RowKind::Artifact { hash, slot, up } => {
            let arrow = if *up { "←" } else { "→" };
            spans.push(Span::styled(
                format!("{arrow} {}: ", slot.as_deref().unwrap_or("?")),
                theme.dim(),
            ));
            spans.push(Span::raw(short(hash)));
            if let Some(a) = d.artifacts.get(hash) {
                spans.push(Span::styled(format!(" {}", a.kind), theme.dim()));
            }
            if let Some(s) = d.sources.get(hash)
                && *up
            {
                spans.push(Span::raw(format!(" = {}", s.path)));
            }
            if let Some(rel) = d.releases.get(hash) {
                spans.push(Span::styled(
                    format!(" release {}", rel.join(", ")),
                    theme.accent(),
                ));
            }
        }
        RowKind::More(m) => spans.push(Span::styled(m.clone(), theme.dim())),
    }
    if r.repeat {
        spans.push(Span::styled(" (also above)", theme.dim()));
    }
    Line::from(spans)
}

fn node_lines(d: &ArtifactDetail, r: &TreeRow, theme: Theme) -> (String, Vec<Line<'static>>) {
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<8}"), theme.dim()),
            Span::raw(v),
        ])
    };
    match &r.kind {
        RowKind::Step {
            step_run_id,
            run_id,
            step,
            ..
        } => {
            let mut out = vec![kv(
                "run",
                format!("{run_id}, step run {step_run_id} (r: open the run)"),
            )];
            if let Some(s) = d.steps.get(step_run_id) {
                out.push(kv(
                    "status",
                    s.status.map(|st| st.to_string()).unwrap_or_default(),
                ));
                for (k, v) in &s.params {
                    out.push(kv("param", format!("{k} = {}", json_text(v))));
                }
                for (k, v) in &s.facets {
                    out.push(kv("facet", format!("{k}: {}", json_text(v))));
                }
            }
            (format!("step `{step}`"), out)
        }
        RowKind::Artifact { hash, .. } => (
            format!("artifact {}", short(hash)),
            artifact_lines(d, hash, theme),
        ),
        RowKind::Section { .. } => (
            format!("artifact {}", short(&d.hash)),
            artifact_lines(d, &d.hash, theme),
        ),
        RowKind::More(m) => ("more".into(), vec![Line::from(m.clone())]),
    }
}

fn artifact_lines(d: &ArtifactDetail, hash: &str, theme: Theme) -> Vec<Line<'static>> {
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<8}"), theme.dim()),
            Span::raw(v),
        ])
    };
    let mut out = vec![kv("hash", hash.to_owned())];
    if let Some(a) = d.artifacts.get(hash) {
        out.push(kv("kind", format!("{} ({})", a.kind, a.media_type)));
        out.push(kv(
            "size",
            if a.is_tree {
                format!("folder, {} of files", bytes(a.content_size))
            } else {
                bytes(a.size)
            },
        ));
        out.push(kv("created", super::when(&a.created_at, false)));
    }
    if let Some(s) = d.sources.get(hash) {
        out.push(kv(
            "source",
            format!("input `{}` at {} (run {})", s.name, s.path, s.run_id),
        ));
    }
    if let Some(r) = d.releases.get(hash) {
        out.push(kv("release", r.join(", ")));
    }
    // Facets that describe this artifact, from the step runs that made it.
    for s in d.up.iter().filter(|e| e.near == hash) {
        if let Some(info) = d.steps.get(&s.step_run_id) {
            for (k, v) in &info.facets {
                out.push(kv("facet", format!("{k}: {}", json_text(v))));
            }
            break;
        }
    }
    out
}
