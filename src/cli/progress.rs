//! Progress for people, from engine events: one line per step event, and on a
//! terminal a status line at the bottom (`[12/40] running: train, evaluate`) redrawn
//! in place, with a bar and the step's own words for a step that reports progress
//! (`train 12/100 ███░░░░░░░ loss 0.3412 valid ndcg@20 0.2811`). Progress reports
//! only ever change the status line, so logs and pipes get the step events alone.
//! Events that arrive together are written with one `write`, so a no-op rerun of a
//! thousand steps is not a thousand system calls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;

use tokio::sync::mpsc;

use super::human_duration;
use crate::engine::events::{Event, StepStatus};

pub struct Progress {
    /// Redraw a status line (stderr is a terminal).
    tty: bool,
    /// Print only warnings (`--json`).
    quiet: bool,
    total: usize,
    done: usize,
    running: BTreeSet<String>,
    /// The last progress report of each running step: done, total, text.
    reports: BTreeMap<String, (u64, u64, String)>,
    /// Columns the status line may take.
    width: usize,
}

impl Progress {
    pub fn new(tty: bool, quiet: bool) -> Self {
        Progress {
            tty,
            quiet,
            total: 0,
            done: 0,
            running: BTreeSet::new(),
            reports: BTreeMap::new(),
            width: if tty {
                terminal_columns().unwrap_or(80) - 1
            } else {
                100
            },
        }
    }

    /// Consume events until the engine drops its sender.
    pub async fn drive(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        while let Some(ev) = rx.recv().await {
            let mut buf = String::new();
            self.render(&ev, &mut buf);
            while let Ok(ev) = rx.try_recv() {
                self.render(&ev, &mut buf);
            }
            if self.tty && !self.quiet {
                // Clear the old status line, print the new lines, draw the status line.
                let status = self.status_line();
                buf = format!("\r\x1b[K{buf}{status}");
            }
            let _ = std::io::stderr().lock().write_all(buf.as_bytes());
        }
        if self.tty && !self.quiet {
            let _ = std::io::stderr().lock().write_all(b"\r\x1b[K");
        }
    }

    fn status_line(&self) -> String {
        if self.running.is_empty() {
            return String::new();
        }
        let names: Vec<String> = self
            .running
            .iter()
            .map(|name| match self.reports.get(name) {
                Some((done, total, text)) => {
                    let bar = bar(*done, *total, 10);
                    format!("{name} {done}/{total} {bar} {text}")
                        .trim_end()
                        .to_owned()
                }
                None => name.clone(),
            })
            .collect();
        let mut line = format!(
            "[{}/{}] running: {}",
            self.done,
            self.total,
            names.join(", ")
        );
        // One row of the terminal: `\r\x1b[K` clears only the row the cursor is on,
        // so a status line that wrapped would leave its first rows behind.
        let width = self.width.max(10);
        if line.chars().count() > width {
            line = line.chars().take(width - 3).collect::<String>() + "...";
        }
        line
    }

    /// Append the lines for one event to `out`.
    pub fn render(&mut self, ev: &Event, out: &mut String) {
        if self.quiet {
            let _ = match ev {
                Event::Warning(w) => writeln!(out, "warning: {w}"),
                Event::Note(n) => writeln!(out, "note: {n}"),
                _ => Ok(()),
            };
            return;
        }
        let _ = match ev {
            Event::RunStarted {
                run_id,
                workflow,
                steps,
            } => {
                self.total = *steps;
                writeln!(out, "run {run_id}: {workflow} ({steps} steps)")
            }
            Event::StepStarted { name, reason } => {
                self.running.insert(name.clone());
                writeln!(out, "  start   {name}: {reason}")
            }
            Event::StepProgress {
                name,
                done,
                total,
                text,
            } => {
                if self.running.contains(name) {
                    self.reports
                        .insert(name.clone(), (*done, *total, text.clone()));
                }
                Ok(())
            }
            Event::StepFinished(r) => {
                self.running.remove(&r.name);
                self.reports.remove(&r.name);
                self.done += 1;
                let dur = human_duration(r.duration.as_secs_f64());
                match r.status {
                    StepStatus::Cached if r.from_result_cache() => {
                        writeln!(out, "  cached  {} (from the remote, {dur})", r.name)
                    }
                    StepStatus::Cached => writeln!(out, "  cached  {}", r.name),
                    StepStatus::Succeeded => writeln!(out, "  done    {} ({dur})", r.name),
                    StepStatus::Failed => writeln!(out, "  FAILED  {} ({dur})", r.name),
                    StepStatus::Interrupted => writeln!(out, "  STOPPED {} ({dur})", r.name),
                    StepStatus::Skipped => writeln!(out, "  skipped {}: {}", r.name, r.reason),
                }
            }
            Event::Warning(w) => writeln!(out, "warning: {w}"),
            Event::Note(n) => writeln!(out, "note: {n}"),
        };
    }
}

/// The width of the terminal on stderr, if it is one and says.
fn terminal_columns() -> Option<usize> {
    // SAFETY: TIOCGWINSZ only fills the winsize struct it is given.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 1).then_some(ws.ws_col as usize)
}

/// `width` cells, filled in proportion to done / total.
fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((done.min(total) as u128 * width as u128) / total as u128) as usize
    };
    "█".repeat(filled) + &"░".repeat(width - filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::StepResult;

    fn finished(name: &str, status: StepStatus) -> Event {
        Event::StepFinished(StepResult {
            name: name.into(),
            status,
            key: None,
            reason: "upstream `a` failed".into(),
            outputs: Default::default(),
            error: None,
            step_run_id: None,
            duration: std::time::Duration::from_millis(1500),
        })
    }

    #[test]
    fn renders_plain_lines_and_tracks_running_steps() {
        let mut p = Progress::new(false, false);
        let mut out = String::new();
        p.render(
            &Event::RunStarted {
                run_id: 3,
                workflow: "w".into(),
                steps: 2,
            },
            &mut out,
        );
        p.render(
            &Event::StepStarted {
                name: "a".into(),
                reason: "no earlier run of this step".into(),
            },
            &mut out,
        );
        assert_eq!(p.status_line(), "[0/2] running: a");
        p.render(&finished("a", StepStatus::Failed), &mut out);
        p.render(&finished("b", StepStatus::Skipped), &mut out);
        assert_eq!(
            out,
            "run 3: w (2 steps)\n  start   a: no earlier run of this step\n  FAILED  a (1.50s)\n  skipped b: upstream `a` failed\n"
        );
        assert_eq!(p.status_line(), "");
    }

    #[test]
    fn a_steps_progress_shows_in_the_status_line_only_while_it_runs() {
        let mut p = Progress::new(false, false);
        let mut out = String::new();
        let started = |name: &str| Event::StepStarted {
            name: name.into(),
            reason: "r".into(),
        };
        p.render(&started("train"), &mut out);
        p.render(&started("eval"), &mut out);
        let line = "12/40 loss 0.3412 valid ndcg@20 0.2811";
        p.render(&Event::progress("train", line).unwrap(), &mut out);
        // A report for a step that is not running (late, or made up) changes nothing.
        p.render(&Event::progress("other", "1/2").unwrap(), &mut out);
        assert_eq!(
            p.status_line(),
            "[0/0] running: eval, train 12/40 ███░░░░░░░ loss 0.3412 valid ndcg@20 0.2811"
        );
        let before = out.clone();
        p.render(&Event::progress("train", "40/40").unwrap(), &mut out);
        assert_eq!(out, before, "progress adds no lines");
        assert_eq!(
            p.status_line(),
            "[0/0] running: eval, train 40/40 ██████████"
        );
        p.render(&finished("train", StepStatus::Succeeded), &mut out);
        assert_eq!(p.status_line(), "[1/0] running: eval");
        p.render(&started("train"), &mut out);
        assert_eq!(p.status_line(), "[1/0] running: eval, train");
    }

    #[test]
    fn progress_lines_parse_or_are_ignored() {
        assert!(Event::progress("s", "12 of 40").is_none());
        assert!(Event::progress("s", "a/40 x").is_none());
        assert!(Event::progress("s", "-1/40").is_none());
        let Some(Event::StepProgress {
            done, total, text, ..
        }) = Event::progress("s", "3/0")
        else {
            panic!("3/0 parses")
        };
        assert_eq!((done, total, text.as_str()), (3, 0, ""));
        // Escape sequences and carriage returns never reach the terminal.
        let Some(Event::StepProgress { text, .. }) =
            Event::progress("s", "1/2 \x1b[2Jwiped\rover \x07")
        else {
            panic!("parses")
        };
        assert_eq!(text, "[2Jwiped over");
        assert_eq!(bar(3, 0, 4), "░░░░");
        assert_eq!(bar(9, 4, 4), "████");
    }

    #[test]
    fn the_status_line_fits_one_terminal_row() {
        let mut p = Progress::new(false, false);
        p.width = 40;
        let mut out = String::new();
        p.render(
            &Event::StepStarted {
                name: "train".into(),
                reason: "r".into(),
            },
            &mut out,
        );
        let long = format!("1/9 {}", "x".repeat(80));
        p.render(&Event::progress("train", &long).unwrap(), &mut out);
        let line = p.status_line();
        assert_eq!(line.chars().count(), 40, "{line}");
        assert!(line.ends_with("..."), "{line}");
    }

    #[test]
    fn quiet_keeps_only_warnings() {
        let mut p = Progress::new(false, true);
        let mut out = String::new();
        p.render(&finished("a", StepStatus::Cached), &mut out);
        p.render(&Event::Warning("object damaged".into()), &mut out);
        assert_eq!(out, "warning: object damaged\n");
    }
}
