//! The dashboard's keymap: which [`Key`] means which [`Action`] on which
//! screen, and the texts that say so.
//!
//! [`KEYMAP`] is the one table. [`translate`] reads it to turn a key into a
//! semantic action (so [`super::app::update`] never matches raw keys), and the
//! hint line ([`hint_line`]), the title bar's keys ([`title_hints`]) and the help
//! screen ([`help_lines`]) are generated from it, so a key and its
//! documentation cannot drift apart.

/// A key, already translated from the terminal's event (see `keys.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Esc,
    Backspace,
    Tab,
    Char(char),
    /// Ctrl-C: quit from anywhere, even while typing a search.
    Interrupt,
}

impl Key {
    /// The key's name as the screens write it.
    pub fn label(self) -> String {
        match self {
            Key::Up => "↑".into(),
            Key::Down => "↓".into(),
            Key::Left => "←".into(),
            Key::Right => "→".into(),
            Key::PageUp => "PgUp".into(),
            Key::PageDown => "PgDn".into(),
            Key::Home => "Home".into(),
            Key::End => "End".into(),
            Key::Enter => "Enter".into(),
            Key::Esc => "Esc".into(),
            Key::Backspace => "Backspace".into(),
            Key::Tab => "Tab".into(),
            Key::Char(' ') => "space".into(),
            Key::Char(c) => c.to_string(),
            Key::Interrupt => "Ctrl-C".into(),
        }
    }
}

/// What a key asks for, whatever key it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Move the selection one row down (up), by a page, to the first (last) row.
    Down,
    Up,
    PageDown,
    PageUp,
    First,
    Last,
    /// Open the selection (on a run: its step's first output).
    Open,
    /// Open output N (0-based) of the selected step.
    OpenOutput(usize),
    /// Close the overlay or the screen on display.
    Back,
    /// Run the search typed into the prompt.
    Submit,
    Quit,
    Help,
    /// Open the search prompt.
    Search,
    CycleWorkflow,
    CycleStatus,
    ClearFilters,
    /// The metrics of the selected run.
    Metrics,
    /// Mark a run for comparison, or compare it with the marked one.
    Compare,
    /// Read the screen's data again.
    Refresh,
    /// Fold or unfold the selected tree node.
    Fold,
    /// In the tree: fold, else go to the parent, else back.
    Out,
    /// In the tree: unfold, else go to the first child.
    In,
    /// The run of the selected step (or of the step that made the selected artifact).
    ParentRun,
    /// Show the tree of the selected artifact.
    ReRoot,
    NextChart,
    PrevChart,
}

/// Where a key is pressed: the screen on display, or the overlay over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Everywhere but the search prompt (the screen's own keys win, but none
    /// clashes; the keymap test checks).
    Global,
    /// The search prompt while typing: keys not bound here are text.
    Prompt,
    /// The search results over a screen.
    Search,
    Runs,
    Run,
    Artifact,
    Metrics,
}

impl Context {
    /// The screens, in the order the help screen shows their sections.
    pub const SCREENS: [Context; 4] = [
        Context::Runs,
        Context::Run,
        Context::Artifact,
        Context::Metrics,
    ];

    /// Whether the [`Context::Global`] keys work here too.
    fn inherits_global(self) -> bool {
        !matches!(self, Context::Global | Context::Prompt)
    }

    /// Whether the hint line also shows the global keys' hints (the search
    /// results are a small overlay: their line names only their own keys).
    fn shows_global_hints(self) -> bool {
        self.inherits_global() && self != Context::Search
    }

    /// The name of a screen's section on the help screen.
    fn title(self) -> &'static str {
        match self {
            Context::Global => "",
            Context::Prompt => "Search prompt",
            Context::Search => "Search",
            Context::Runs => "Runs",
            Context::Run => "Run",
            Context::Artifact => "Artifact",
            Context::Metrics => "Metrics",
        }
    }
}

/// Where a binding is named on screen outside the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// Nowhere (the help says it, or nothing does).
    None,
    /// A fragment of the hint line at the bottom.
    Line(&'static str),
    /// A fragment at the end of the hint line, after the global keys: the
    /// first to go when a narrow terminal cuts the line.
    Last(&'static str),
    /// A fragment of the title bar's right end (global keys).
    Title(&'static str),
}

/// Where a binding is named on the help screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Help {
    /// Not there.
    None,
    /// A row of the common keys at the top: the keys as shown, and what they do.
    Row(&'static str, &'static str),
    /// A fragment of its screen's section.
    Item(&'static str),
    /// A fragment that starts a new line of its screen's section.
    ItemOnNewLine(&'static str),
}

/// One group of keys with one text: in each of `contexts`, each key of
/// `keys` means its action, and `hint` and `help` name the group.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub contexts: &'static [Context],
    pub keys: &'static [(Key, Action)],
    pub hint: Hint,
    pub help: Help,
}

use Action as A;
use Context as C;
use Key as K;

const BACK_KEYS: &[(Key, Action)] = &[
    (K::Esc, A::Back),
    (K::Backspace, A::Back),
    (K::Left, A::Back),
    (K::Char('h'), A::Back),
];

/// The keymap. Hint lines and help sections list their fragments in this order.
pub const KEYMAP: &[Binding] = &[
    Binding {
        contexts: &[C::Search, C::Runs, C::Run, C::Artifact],
        keys: &[
            (K::Char('j'), A::Down),
            (K::Down, A::Down),
            (K::Char('k'), A::Up),
            (K::Up, A::Up),
            (K::Char('J'), A::PageDown),
            (K::PageDown, A::PageDown),
            (K::Char('K'), A::PageUp),
            (K::PageUp, A::PageUp),
            (K::Char('g'), A::First),
            (K::Home, A::First),
            (K::Char('G'), A::Last),
            (K::End, A::Last),
        ],
        hint: Hint::Line("j/k move"),
        help: Help::Row("j k  ↓ ↑", "move (J K, PgDn PgUp: by 10; g G: first, last)"),
    },
    // The search results.
    Binding {
        contexts: &[C::Search],
        keys: &[
            (K::Enter, A::Open),
            (K::Right, A::Open),
            (K::Char('l'), A::Open),
        ],
        hint: Hint::Line("Enter open artifact"),
        help: Help::None,
    },
    Binding {
        contexts: &[C::Search],
        keys: BACK_KEYS,
        hint: Hint::Line("Esc close"),
        help: Help::None,
    },
    // The runs list.
    Binding {
        contexts: &[C::Runs],
        keys: &[
            (K::Enter, A::Open),
            (K::Right, A::Open),
            (K::Char('l'), A::Open),
        ],
        hint: Hint::Line("Enter open"),
        help: Help::Row("Enter  l  →", "open the selection"),
    },
    Binding {
        contexts: &[C::Runs],
        keys: &[(K::Char('w'), A::CycleWorkflow)],
        hint: Hint::Line("w workflow"),
        help: Help::Item("w: cycle workflow filter"),
    },
    Binding {
        contexts: &[C::Runs],
        keys: &[(K::Char('s'), A::CycleStatus)],
        hint: Hint::Line("s status"),
        help: Help::Item("s: cycle status"),
    },
    Binding {
        contexts: &[C::Runs],
        keys: &[(K::Char('x'), A::ClearFilters)],
        hint: Hint::Line("x clear"),
        help: Help::Item("x: clear"),
    },
    Binding {
        contexts: &[C::Runs],
        keys: &[(K::Char('m'), A::Metrics)],
        hint: Hint::Line("m metrics"),
        help: Help::ItemOnNewLine("m: metrics"),
    },
    Binding {
        contexts: &[C::Runs],
        keys: &[(K::Char('c'), A::Compare)],
        hint: Hint::Line("c compare"),
        help: Help::Item("c: mark, then c on another run: compare"),
    },
    Binding {
        contexts: &[C::Runs],
        keys: &[(K::Char('r'), A::Refresh)],
        hint: Hint::Last("r refresh"),
        help: Help::Item("r: refresh"),
    },
    // A run.
    Binding {
        contexts: &[C::Run],
        keys: &[
            (K::Enter, A::Open),
            (K::Right, A::Open),
            (K::Char('l'), A::Open),
            (K::Char('a'), A::Open),
            (K::Char('1'), A::OpenOutput(0)),
            (K::Char('2'), A::OpenOutput(1)),
            (K::Char('3'), A::OpenOutput(2)),
            (K::Char('4'), A::OpenOutput(3)),
            (K::Char('5'), A::OpenOutput(4)),
            (K::Char('6'), A::OpenOutput(5)),
            (K::Char('7'), A::OpenOutput(6)),
            (K::Char('8'), A::OpenOutput(7)),
            (K::Char('9'), A::OpenOutput(8)),
        ],
        hint: Hint::Line("Enter/1-9 open output"),
        help: Help::Item("Enter: first output's ancestry  1-9: output N"),
    },
    Binding {
        contexts: &[C::Run],
        keys: &[(K::Char('m'), A::Metrics)],
        hint: Hint::Line("m metrics"),
        help: Help::Item("m: metrics"),
    },
    Binding {
        contexts: &[C::Run],
        keys: &[(K::Char('c'), A::Compare)],
        hint: Hint::Line("c compare"),
        help: Help::None,
    },
    Binding {
        contexts: &[C::Run],
        keys: &[(K::Char('r'), A::Refresh)],
        hint: Hint::Last("r refresh"),
        help: Help::ItemOnNewLine("r: refresh"),
    },
    // An artifact's tree.
    Binding {
        contexts: &[C::Artifact],
        keys: &[(K::Enter, A::Fold), (K::Char(' '), A::Fold)],
        hint: Hint::Line("Enter fold"),
        help: Help::Item("Enter/space: fold"),
    },
    Binding {
        contexts: &[C::Artifact],
        keys: &[
            (K::Char('h'), A::Out),
            (K::Left, A::Out),
            (K::Char('l'), A::In),
            (K::Right, A::In),
        ],
        hint: Hint::Line("h/l out/in"),
        help: Help::None,
    },
    Binding {
        contexts: &[C::Artifact],
        keys: &[(K::Char('r'), A::ParentRun)],
        hint: Hint::Line("r run"),
        help: Help::Item("r: the run that made it"),
    },
    Binding {
        contexts: &[C::Artifact],
        keys: &[(K::Char('a'), A::ReRoot)],
        hint: Hint::Line("a re-root"),
        help: Help::Item("a: re-root"),
    },
    // Metrics.
    Binding {
        contexts: &[C::Metrics],
        keys: &[
            (K::Char('j'), A::NextChart),
            (K::Down, A::NextChart),
            (K::Tab, A::NextChart),
            (K::Char('k'), A::PrevChart),
            (K::Up, A::PrevChart),
        ],
        hint: Hint::Line("j/k/Tab chart"),
        help: Help::Item("j k Tab: next chart"),
    },
    Binding {
        contexts: &[C::Metrics],
        keys: &[(K::Char('r'), A::Refresh)],
        hint: Hint::Last("r refresh"),
        help: Help::Item("r: refresh"),
    },
    // Back, on every screen above the runs list.
    Binding {
        contexts: &[C::Run, C::Metrics],
        keys: BACK_KEYS,
        hint: Hint::Line("Esc back"),
        help: Help::Row("Esc  h  ←", "back (in a tree: fold, then go to the parent)"),
    },
    Binding {
        contexts: &[C::Artifact],
        keys: &[(K::Esc, A::Back), (K::Backspace, A::Back)],
        hint: Hint::Line("Esc back"),
        help: Help::None,
    },
    // Everywhere.
    Binding {
        contexts: &[C::Global],
        keys: &[(K::Char('/'), A::Search)],
        hint: Hint::Line("/ search"),
        help: Help::Row(
            "/",
            "search artifacts: hash prefix, path, release, RUN/STEP.OUTPUT",
        ),
    },
    Binding {
        contexts: &[C::Global],
        keys: &[(K::Char('?'), A::Help)],
        hint: Hint::Title("? help"),
        help: Help::Row("?", "this help (any key closes it)"),
    },
    Binding {
        contexts: &[C::Global],
        keys: &[(K::Char('q'), A::Quit), (K::Interrupt, A::Quit)],
        hint: Hint::Title("q quit"),
        help: Help::Row("q  Ctrl-C", "quit"),
    },
    // The search prompt (other keys edit the text).
    Binding {
        contexts: &[C::Prompt],
        keys: &[(K::Enter, A::Submit), (K::Esc, A::Back)],
        hint: Hint::Line("hash prefix, path, release or RUN/STEP.OUTPUT; Enter search, Esc cancel"),
        help: Help::None,
    },
    Binding {
        contexts: &[C::Prompt],
        keys: &[(K::Interrupt, A::Quit)],
        hint: Hint::None,
        help: Help::None,
    },
];

/// The bindings that work in `context` itself (not the global ones it inherits).
fn bindings(context: Context) -> impl Iterator<Item = &'static Binding> {
    KEYMAP.iter().filter(move |b| b.contexts.contains(&context))
}

fn lookup(context: Context, key: Key) -> Option<Action> {
    bindings(context)
        .flat_map(|b| b.keys)
        .find(|(k, _)| *k == key)
        .map(|(_, a)| *a)
}

/// What `key` means in `context`: its own bindings, then the global ones.
pub fn translate(context: Context, key: Key) -> Option<Action> {
    lookup(context, key).or_else(|| {
        context
            .inherits_global()
            .then(|| lookup(Context::Global, key))
            .flatten()
    })
}

/// The name of the first key meaning `action` in `context` (or globally), for
/// texts that mention a key in passing ("Esc: back"); `?` if none does.
pub fn key_name(context: Context, action: Action) -> String {
    let global = context.inherits_global().then_some(Context::Global);
    [Some(context), global]
        .into_iter()
        .flatten()
        .flat_map(bindings)
        .flat_map(|b| b.keys)
        .find(|(_, a)| *a == action)
        .map_or_else(|| "?".into(), |(k, _)| k.label())
}

fn line_hints(context: Context, last: bool) -> impl Iterator<Item = &'static str> {
    bindings(context).filter_map(move |b| match b.hint {
        Hint::Line(t) if !last => Some(t),
        Hint::Last(t) if last => Some(t),
        _ => None,
    })
}

/// The hint line of `context`: its keys, in keymap order, then the global
/// ones, then its [`Hint::Last`] ones.
pub fn hint_line(context: Context) -> String {
    let global = context
        .shows_global_hints()
        .then(|| line_hints(Context::Global, false))
        .into_iter()
        .flatten();
    line_hints(context, false)
        .chain(global)
        .chain(line_hints(context, true))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The global keys the title bar names.
pub fn title_hints() -> String {
    bindings(Context::Global)
        .filter_map(|b| match b.hint {
            Hint::Title(t) => Some(t),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// The help screen: rows of (keys or section title, text). The common keys come
/// first, then a blank row, then one section per screen.
pub fn help_lines() -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = KEYMAP
        .iter()
        .filter_map(|b| match b.help {
            Help::Row(k, t) => Some((k, t.to_owned())),
            _ => None,
        })
        .collect();
    out.push(("", String::new()));
    for c in Context::SCREENS {
        let first = out.len();
        for b in bindings(c) {
            let (text, new_line) = match b.help {
                Help::Item(t) => (t, false),
                Help::ItemOnNewLine(t) => (t, true),
                Help::None | Help::Row(..) => continue,
            };
            let started = out.len() > first;
            match out.last_mut() {
                Some((_, line)) if started && !new_line => {
                    line.push_str("  ");
                    line.push_str(text);
                }
                _ => out.push((if started { "" } else { c.title() }, text.to_owned())),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Context; 7] = [
        C::Global,
        C::Prompt,
        C::Search,
        C::Runs,
        C::Run,
        C::Artifact,
        C::Metrics,
    ];

    fn documented(b: &Binding) -> bool {
        b.hint != Hint::None || b.help != Help::None
    }

    #[test]
    fn every_bound_action_is_named_by_its_contexts_hint_or_the_help() {
        for c in ALL {
            for b in bindings(c) {
                for (k, a) in b.keys {
                    let named = bindings(c)
                        .chain(bindings(C::Global))
                        .filter(|d| documented(d))
                        .any(|d| d.keys.iter().any(|(_, da)| da == a));
                    assert!(
                        named,
                        "{c:?}: `{}` ({a:?}) is in neither the hint line nor the help",
                        k.label()
                    );
                }
            }
        }
    }

    /// A hint or help text names at least one of its binding's keys, so a key
    /// changed in the table without its text shows here.
    #[test]
    fn every_text_names_one_of_its_keys() {
        for b in KEYMAP {
            let texts = [
                match b.hint {
                    Hint::Line(t) | Hint::Last(t) | Hint::Title(t) => Some(t),
                    Hint::None => None,
                },
                match b.help {
                    Help::Row(k, _) => Some(k),
                    Help::Item(t) | Help::ItemOnNewLine(t) => Some(t),
                    Help::None => None,
                },
            ];
            for t in texts.into_iter().flatten() {
                let words: Vec<&str> = t
                    .split(|c: char| c.is_whitespace() || "/:,;".contains(c))
                    .collect();
                let names = b.keys.iter().any(|(k, _)| {
                    let l = k.label();
                    t == l || words.contains(&l.as_str()) || t.starts_with(&format!("{l} "))
                });
                assert!(names, "`{t}` names none of its keys");
            }
        }
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for c in ALL {
            let mut seen: Vec<Key> = Vec::new();
            let inherited = c.inherits_global().then(|| bindings(C::Global));
            for b in bindings(c).chain(inherited.into_iter().flatten()) {
                for (k, _) in b.keys {
                    assert!(!seen.contains(k), "{c:?}: `{}` is bound twice", k.label());
                    seen.push(*k);
                }
            }
        }
    }

    #[test]
    fn hints_and_help_are_made_of_the_table_texts() {
        assert_eq!(
            hint_line(C::Search),
            "j/k move  Enter open artifact  Esc close"
        );
        assert_eq!(
            hint_line(C::Metrics),
            "j/k/Tab chart  Esc back  / search  r refresh"
        );
        assert_eq!(title_hints(), "? help  q quit");
        let help = help_lines();
        assert_eq!(help[0].0, "j k  ↓ ↑");
        let sections: Vec<&str> = help
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| Context::SCREENS.iter().any(|c| c.title() == *k))
            .collect();
        assert_eq!(sections, ["Runs", "Run", "Artifact", "Metrics"]);
    }

    #[test]
    fn keys_translate_per_context_with_the_global_ones_behind() {
        assert_eq!(translate(C::Run, K::Char('a')), Some(A::Open));
        assert_eq!(translate(C::Artifact, K::Char('a')), Some(A::ReRoot));
        assert_eq!(translate(C::Artifact, K::Left), Some(A::Out));
        assert_eq!(translate(C::Metrics, K::Tab), Some(A::NextChart));
        assert_eq!(translate(C::Run, K::Char('3')), Some(A::OpenOutput(2)));
        assert_eq!(translate(C::Search, K::Char('q')), Some(A::Quit));
        assert_eq!(translate(C::Runs, K::Esc), None);
        assert_eq!(translate(C::Prompt, K::Char('q')), None, "text");
        assert_eq!(translate(C::Prompt, K::Interrupt), Some(A::Quit));
        assert_eq!(key_name(C::Artifact, A::Back), "Esc");
        assert_eq!(key_name(C::Metrics, A::PrevChart), "k");
        assert_eq!(key_name(C::Run, A::Quit), "q", "a global key");
    }
}
