//! Progress for people, from engine events: one line per step event, and on a
//! terminal a status line at the bottom (`[12/40] running: train, evaluate`) redrawn
//! in place. Events that arrive together are written with one `write`, so a no-op
//! rerun of a thousand steps is not a thousand system calls.

use std::collections::BTreeSet;
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
}

impl Progress {
    pub fn new(tty: bool, quiet: bool) -> Self {
        Progress {
            tty,
            quiet,
            total: 0,
            done: 0,
            running: BTreeSet::new(),
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
        let names: Vec<&str> = self.running.iter().map(String::as_str).collect();
        let mut line = format!(
            "[{}/{}] running: {}",
            self.done,
            self.total,
            names.join(", ")
        );
        if line.chars().count() > 100 {
            line = line.chars().take(97).collect::<String>() + "...";
        }
        line
    }

    /// Append the lines for one event to `out`.
    pub fn render(&mut self, ev: &Event, out: &mut String) {
        if self.quiet {
            if let Event::Warning(w) = ev {
                let _ = writeln!(out, "warning: {w}");
            }
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
            Event::StepFinished(r) => {
                self.running.remove(&r.name);
                self.done += 1;
                let dur = human_duration(r.duration.as_secs_f64());
                match r.status {
                    StepStatus::Cached => writeln!(out, "  cached  {}", r.name),
                    StepStatus::Succeeded => writeln!(out, "  done    {} ({dur})", r.name),
                    StepStatus::Failed => writeln!(out, "  FAILED  {} ({dur})", r.name),
                    StepStatus::Interrupted => writeln!(out, "  STOPPED {} ({dur})", r.name),
                    StepStatus::Skipped => writeln!(out, "  skipped {}: {}", r.name, r.reason),
                }
            }
            Event::Warning(w) => writeln!(out, "warning: {w}"),
        };
    }
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
    fn quiet_keeps_only_warnings() {
        let mut p = Progress::new(false, true);
        let mut out = String::new();
        p.render(&finished("a", StepStatus::Cached), &mut out);
        p.render(&Event::Warning("object damaged".into()), &mut out);
        assert_eq!(out, "warning: object damaged\n");
    }
}
