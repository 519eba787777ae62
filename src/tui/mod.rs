//! `pedigree tui`: the terminal dashboard over the lineage database.
//!
//! Four screens on a stack (Runs → Run → Artifact, and Metrics from either run
//! screen), built the Elm way: [`app::App`] is the whole state,
//! [`app::update`] the only transition (keys and reader answers in, read
//! requests out), [`view::view`] a pure drawing of the state. Keys mean what
//! the one table [`input::KEYMAP`] says; the hint line and help are drawn from it. The render loop
//! in [`run_interactive`] only polls keys, drains the reader's channel and draws;
//! the database is read on the [`data::Loader`] thread with its own read-only
//! connection, so a slow query never freezes the screen.
//!
//! Architecture invariant: **the TUI never writes the database.** It holds a
//! `lineage::ReadDb` (opened with SQLite `mode=ro`), which has no write method.

pub mod app;
pub mod data;
pub mod input;
pub mod keys;
pub mod tree;
pub mod view;

use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event as TermEvent};

use app::{App, Event, update};
use data::{Incoming, Loader, Request, load};

use crate::lineage::{LineageError, ReadDb};

/// Answer requests in place until none are left (for `--once` and tests).
pub async fn settle(
    db: &ReadDb,
    app: &mut App,
    mut reqs: Vec<Request>,
) -> Result<(), LineageError> {
    while let Some(req) = reqs.pop() {
        let res = load(db, &req).await.map_err(|e| e.to_string());
        reqs.extend(update(app, Event::Loaded(req, res)));
    }
    Ok(())
}

/// Apply keys one by one, answering each key's requests before the next.
pub async fn press(db: &ReadDb, app: &mut App, keys: &[app::Key]) -> Result<(), LineageError> {
    for k in keys {
        let reqs = update(app, Event::Key(*k));
        settle(db, app, reqs).await?;
        if app.quit {
            break;
        }
    }
    Ok(())
}

/// Draw the state once into a `width`×`height` buffer.
pub fn render(app: &App, width: u16, height: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("a test backend cannot fail");
    t.draw(|f| view::view(app, f))
        .expect("drawing into memory cannot fail");
    t.backend().buffer().clone()
}

/// A buffer as plain text: one line per row, trailing spaces removed.
pub fn buffer_text(b: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..b.area.height {
        let mut line = String::new();
        for x in 0..b.area.width {
            line.push_str(b[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Restores the terminal however the loop ends (return, `?`, panic unwinding).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Run the dashboard in the terminal until `q`, Ctrl-C or a signal.
pub fn run_interactive(db_path: PathBuf, mut app: App) -> io::Result<()> {
    let (tx, rx) = mpsc::channel::<Incoming>();
    let loader = Loader::spawn(db_path, tx)?;
    // `try_init` enters raw mode and the alternate screen and installs a panic
    // hook that restores the terminal before the panic message prints.
    let mut terminal = ratatui::try_init()?;
    let _restore = Restore;
    let send = |reqs: Vec<Request>| {
        for r in reqs {
            loader.send(r);
        }
    };
    send(app.start());
    let tick = Duration::from_secs(1);
    let mut last_tick = Instant::now();
    let mut dirty = true;
    let mut reader_gone = false;
    while !app.quit {
        if dirty {
            terminal.draw(|f| view::view(&app, f))?;
            dirty = false;
        }
        if event::poll(Duration::from_millis(50))? {
            match event::read()? {
                TermEvent::Key(k) => {
                    if let Some(key) = keys::translate(k) {
                        send(update(&mut app, Event::Key(key)));
                        dirty = true;
                    }
                }
                TermEvent::Resize(..) => dirty = true,
                _ => {}
            }
        }
        loop {
            match rx.try_recv() {
                Ok(Incoming::Reply((req, res))) => {
                    send(update(&mut app, Event::Loaded(req, res)));
                    dirty = true;
                }
                Ok(Incoming::Failed(m)) => {
                    update(&mut app, Event::Fatal(m));
                    dirty = true;
                }
                Ok(Incoming::Signal) => {
                    update(&mut app, Event::Quit);
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    if !reader_gone {
                        reader_gone = true;
                        update(&mut app, Event::Fatal("the database reader stopped".into()));
                        dirty = true;
                    }
                    break;
                }
            }
        }
        if last_tick.elapsed() >= tick {
            last_tick = Instant::now();
            let now = crate::lineage::time::now();
            send(update(&mut app, Event::Tick { now }));
            dirty = true;
        }
    }
    Ok(())
}
