//! Drawing: `view(&App, &mut Frame)` and one module per screen, each with
//! `draw(&App, &ScreenState, Theme, &mut Frame, Rect)`. Views read the
//! state and nothing else, so a frame is a pure function of the state (which is
//! what the render snapshots pin).
//!
//! Meaning never rests on colour alone: statuses are words, the selection has a
//! `>` marker, compared runs have distinct chart markers; with `NO_COLOR` the
//! colours are simply left out.

mod artifact;
mod metrics;
mod run;
mod runs;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};

use super::app::{App, Screen};
use super::input::{self, Action, Context};
use crate::lineage::Status;
use crate::util::fmt::short;

/// Colours, or none (`NO_COLOR`).
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    pub fn status(self, s: Status) -> Style {
        match s {
            Status::Succeeded => self.fg(Color::Green),
            Status::Cached => self.fg(Color::Cyan),
            Status::Running => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Status::Failed | Status::Interrupted => {
                self.fg(Color::Red).add_modifier(Modifier::BOLD)
            }
            Status::Skipped => self.fg(Color::Gray),
        }
    }

    pub fn dim(self) -> Style {
        self.fg(Color::DarkGray)
    }

    pub fn accent(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    pub fn header(self) -> Style {
        Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
}

/// Draw the whole screen.
pub fn view(app: &App, f: &mut Frame) {
    let theme = Theme { color: app.color };
    let [top, main, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    title_bar(app, theme, f, top);
    match app.top() {
        Screen::Runs => runs::draw(app, &app.runs, theme, f, main),
        Screen::Run(r) => run::draw(app, r, theme, f, main),
        Screen::Artifact(a) => artifact::draw(app, a, theme, f, main),
        Screen::Metrics(m) => metrics::draw(app, m, theme, f, main),
    }
    status_bar(app, theme, f, bottom);
    if app.search.results.is_some() {
        search_results(app, theme, f, main);
    }
    if app.help {
        help(app, theme, f, main);
    }
}

fn title_bar(app: &App, theme: Theme, f: &mut Frame, area: Rect) {
    let mut spans = vec![Span::styled("pedigree", theme.accent())];
    for s in std::iter::once(&Screen::Runs).chain(&app.stack) {
        spans.push(Span::styled(" > ", theme.dim()));
        spans.push(Span::raw(s.title()));
    }
    let right = input::title_hints();
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let pad = (area.width as usize).saturating_sub(used + right.len());
    if pad > 0 {
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(right, theme.dim()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn status_bar(app: &App, theme: Theme, f: &mut Frame, area: Rect) {
    let line = if let Some(t) = &app.search.typing {
        Line::from(vec![
            Span::styled("/", theme.accent()),
            Span::raw(t.clone()),
            Span::styled("_", theme.dim()),
            Span::styled(
                format!("   {}", input::hint_line(Context::Prompt)),
                theme.dim(),
            ),
        ])
    } else if let Some(m) = &app.message {
        Line::from(Span::styled(m.clone(), theme.accent()))
    } else {
        Line::from(Span::styled(hints(app), theme.dim()))
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The keys of the screen on display, shortest first so 80 columns show the useful ones.
fn hints(app: &App) -> String {
    input::hint_line(app.context())
}

fn help(_app: &App, theme: Theme, f: &mut Frame, area: Rect) {
    let w = area.width.min(78);
    let help = input::help_lines();
    let h = (help.len() as u16 + 2).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let lines: Vec<Line> = help
        .into_iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<12}"), theme.accent()),
                Span::raw(v),
            ])
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" keys ")),
        r,
    );
}

fn search_results(app: &App, theme: Theme, f: &mut Frame, area: Rect) {
    let Some((q, hits)) = &app.search.results else {
        return;
    };
    let w = area.width.min(100);
    let h = area.height.min(16);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + 1,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    let block = Block::bordered().title(format!(" search `{q}` "));
    match hits {
        None => f.render_widget(Paragraph::new("searching...").block(block), r),
        Some(h) if h.is_empty() => f.render_widget(
            Paragraph::new(format!(
                "no artifact matches ({} closes)",
                input::key_name(Context::Search, Action::Back)
            ))
            .block(block),
            r,
        ),
        Some(h) => {
            let items: Vec<ListItem> = h
                .iter()
                .map(|hit| {
                    let label = if hit.matched == "hash" {
                        String::new()
                    } else {
                        format!("  {}", hit.label)
                    };
                    ListItem::new(Line::from(vec![
                        Span::raw(short(&hit.artifact_hash)),
                        Span::styled(format!("  {:<7}", hit.matched), theme.dim()),
                        Span::raw(label),
                    ]))
                })
                .collect();
            let mut st = ListState::default().with_selected(Some(app.search.selected));
            f.render_stateful_widget(
                List::new(items)
                    .block(block)
                    .highlight_symbol("> ")
                    .highlight_style(theme.selected()),
                r,
                &mut st,
            );
        }
    }
}

// ---- shared formatting ------------------------------------------------------------------

/// `2026-11-28 00:41:12` (or `11-28 00:41` when narrow) from a stored time.
pub(super) fn when(t: &str, narrow: bool) -> String {
    let t = t.replace('T', " ");
    if narrow {
        t.get(5..16).unwrap_or(&t).to_owned()
    } else {
        t.get(..19).unwrap_or(&t).to_owned()
    }
}

/// How long something took, or has been running (with `now`), or `-`.
pub(super) fn took(start: &str, end: Option<&str>, now: Option<&str>) -> String {
    crate::util::fmt::duration_between(start, end.or(now))
}

/// Cut `s` to `n` characters with a trailing `~`.
pub(super) fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
        c.push('~');
        c
    }
}

/// A JSON text shown compactly.
pub(super) fn json_text(s: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => crate::util::fmt::json_value(&v),
        Err(_) => s.to_owned(),
    }
}

pub(super) use crate::util::fmt::bytes;

/// A bordered block with a title.
pub(super) fn panel(title: impl Into<String>) -> Block<'static> {
    Block::default()
        .borders(Borders::TOP)
        .title(format!(" {} ", title.into()))
}

/// Split `area` into a list and a detail pane: side by side when wide, stacked when not.
pub(super) fn split(area: Rect, list_rows: usize) -> (Rect, Rect) {
    if area.width >= 120 {
        let [a, b] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
            .spacing(2)
            .areas(area);
        (a, b)
    } else {
        let want = (list_rows as u16 + 2).clamp(4, area.height.saturating_mul(3) / 5);
        let [a, b] = Layout::vertical([Constraint::Length(want), Constraint::Min(3)]).areas(area);
        (a, b)
    }
}
