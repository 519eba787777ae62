//! User-facing diagnostics for YAML sources: a message, the place it points at
//! (`file:line:col` with the offending line and a caret), and a `help:` line.
//!
//! serde_yaml reports a location for syntax and type errors but keeps no spans on
//! values, so semantic errors (an unknown step in a reference, a param of the wrong
//! type) find their place through [`Locator`]: a second, event-level pass over the
//! same text with yaml-rust2 that maps a key path such as `steps.train.with.lr`
//! to the marks of its key and value. That pass only runs when an error needs a
//! location, so valid files are parsed once.

use std::fmt;
use std::path::{Path, PathBuf};

/// One segment of a path into a YAML document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(s: &str) -> Self {
        Seg::Key(s.to_owned())
    }
}

impl From<String> for Seg {
    fn from(s: String) -> Self {
        Seg::Key(s)
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// A path into a YAML document, e.g. `steps.train.with.lr`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    pub fn root() -> Self {
        YamlPath(Vec::new())
    }

    pub fn join(&self, seg: impl Into<Seg>) -> Self {
        let mut v = self.0.clone();
        v.push(seg.into());
        YamlPath(v)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// Which part of a mapping entry a diagnostic points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

/// A 1-based line and column plus the width of the marked text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub line: usize,
    pub col: usize,
    pub width: usize,
}

/// A source file as read, for pointing into.
#[derive(Clone, Debug)]
pub struct Source {
    /// The path as the user should see it (relative to the current directory when possible).
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The span of the key or value at `path`, or of the nearest ancestor that exists.
    pub fn locate(&self, path: &YamlPath, part: Part) -> Option<Span> {
        let locator = Locator::build(&self.text);
        let mut p = path.clone();
        loop {
            if let Some(entry) = locator.entries.get(&p).and_then(|v| v.first()) {
                // A missing leaf is pointed at through its nearest ancestor's key.
                let mark = match part {
                    Part::Value if p == *path => entry.value,
                    _ => entry.key.unwrap_or(entry.value),
                };
                return Some(self.span_at(mark.0, mark.1, mark.2));
            }
            p.0.pop()?;
        }
    }

    /// The span of the key at `path` each time it appears, in file order: more than
    /// one for a duplicate key.
    pub fn key_spans(&self, path: &YamlPath) -> Vec<Span> {
        Locator::build(&self.text)
            .entries
            .remove(path)
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let m = e.key.unwrap_or(e.value);
                self.span_at(m.0, m.1, m.2)
            })
            .collect()
    }

    /// A span from a 1-based line and column (as serde_yaml reports them).
    pub fn span_at(&self, line: usize, col: usize, width: usize) -> Span {
        Span {
            line,
            col,
            width: width.max(1),
        }
    }

    fn line_text(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }
}

/// A finished diagnostic, ready to print. Boxed, so `Result<T, Diagnostic>` stays small.
#[derive(Clone, Debug)]
pub struct Diagnostic(Box<DiagnosticData>);

#[derive(Clone, Debug)]
pub struct DiagnosticData {
    pub message: String,
    pub file: Option<PathBuf>,
    pub span: Option<Span>,
    pub snippet: Option<String>,
    pub help: Option<String>,
}

impl std::ops::Deref for Diagnostic {
    type Target = DiagnosticData;
    fn deref(&self) -> &DiagnosticData {
        &self.0
    }
}

impl std::ops::DerefMut for Diagnostic {
    fn deref_mut(&mut self) -> &mut DiagnosticData {
        &mut self.0
    }
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic(Box::new(DiagnosticData {
            message: message.into(),
            file: None,
            span: None,
            snippet: None,
            help: None,
        }))
    }

    /// Point the diagnostic at a place in `source`. A place past the last line (an
    /// error at the end of the file) is shown at the end of the last line.
    pub fn at(mut self, source: &Source, span: Option<Span>) -> Self {
        self.file = Some(source.path.clone());
        if let Some(mut span) = span {
            let last = source.text.lines().count();
            if span.line > last && last > 0 {
                let len = source
                    .line_text(last)
                    .map_or(0, |l| l.trim_end().chars().count());
                span = source.span_at(last, len + 1, 1);
            }
            self.snippet = source.line_text(span.line).map(str::to_owned);
            self.span = Some(span);
        }
        self
    }

    /// Point at the key or value found at `path` in `source`.
    pub fn at_path(self, source: &Source, path: &YamlPath, part: Part) -> Self {
        let span = source.locate(path, part);
        self.at(source, span)
    }

    pub fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_owned());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if let Some(file) = &self.file {
            match self.span {
                Some(span) => writeln!(f, "  --> {}:{}:{}", file.display(), span.line, span.col)?,
                None => writeln!(f, "  --> {}", file.display())?,
            }
        }
        if let (Some(span), Some(line)) = (self.span, &self.snippet) {
            let num = span.line.to_string();
            let pad = " ".repeat(num.len());
            let (shown, lead, width) = snippet_window(line.trim_end(), span);
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {shown}")?;
            writeln!(f, "{pad} | {lead}{}", "^".repeat(width))?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Lines longer than this many characters are shown as a window around the caret.
const SNIPPET_MAX: usize = 100;

/// The part of `line` to show, the text that puts the caret under `span.col`, and the
/// caret's width. Columns count characters, so the caret lines up under multi-byte text
/// too; control characters other than tab are shown as U+FFFD so they cannot garble
/// the terminal; a long line (minified or deeply nested YAML) is cut around the caret.
fn snippet_window(line: &str, span: Span) -> (String, String, usize) {
    let chars: Vec<char> = line
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect();
    let col = span.col.saturating_sub(1).min(chars.len());
    let (start, end) = if chars.len() <= SNIPPET_MAX {
        (0, chars.len())
    } else {
        let end = (col.saturating_sub(SNIPPET_MAX / 2) + SNIPPET_MAX).min(chars.len());
        (end - SNIPPET_MAX, end)
    };
    let mut shown = String::new();
    let mut lead = String::new();
    if start > 0 {
        shown.push_str("...");
        lead.push_str("   ");
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push_str("...");
    }
    lead.extend(
        chars[start..col]
            .iter()
            .map(|&c| if c == '\t' { '\t' } else { ' ' }),
    );
    let width = span.width.min(end.saturating_sub(col).max(1));
    (shown, lead, width)
}

mod locate;
mod suggest;
mod yaml_error;

use locate::Locator;
pub use suggest::{and_then, nearest, suggest};
pub use yaml_error::{YamlDoc, yaml_error};

#[cfg(test)]
mod tests {
    use super::yaml_error::{parse_serde_path, split_serde_path};
    use super::*;

    fn p(s: &str) -> YamlPath {
        YamlPath(s.split('.').map(|k| Seg::Key(k.to_owned())).collect())
    }

    #[test]
    fn locates_block_and_flow_values() {
        let src = Source::new(
            "w.yaml",
            "name: x\nsteps:\n  a:\n    inputs: { table: b.out }\n    with:\n      lr: 0.1\n",
        );
        assert_eq!(
            src.locate(&p("steps.a.inputs.table"), Part::Value),
            Some(Span {
                line: 4,
                col: 22,
                width: 5
            })
        );
        assert_eq!(
            src.locate(&p("steps.a.with.lr"), Part::Key),
            Some(Span {
                line: 6,
                col: 7,
                width: 2
            })
        );
        // A missing leaf falls back to its nearest ancestor.
        assert_eq!(
            src.locate(&p("steps.a.with.nope"), Part::Key).unwrap().line,
            5
        );
    }

    #[test]
    fn locates_sequence_items() {
        let src = Source::new("w.yaml", "env:\n  - A\n  - B\n");
        let path = YamlPath::root().join("env").join(1usize);
        assert_eq!(
            src.locate(&path, Part::Value),
            Some(Span {
                line: 3,
                col: 5,
                width: 1
            })
        );
    }

    #[test]
    fn renders_caret_under_the_value() {
        let src = Source::new("w.yaml", "steps:\n  a:\n    inputs: { t: clen.x }\n");
        let d = Diagnostic::new("unknown step `clen`")
            .at_path(&src, &p("steps.a.inputs.t"), Part::Value)
            .help("did you mean `clean`?");
        assert_eq!(
            d.to_string(),
            "error: unknown step `clen`\n  --> w.yaml:3:18\n  |\n3 |     inputs: { t: clen.x }\n  |                  ^^^^^^\n  = help: did you mean `clean`?\n"
        );
    }

    fn yaml_err<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        let src = Source::new("w.yaml", text);
        let e = serde_yaml::from_str::<T>(text).unwrap_err();
        let doc = YamlDoc {
            what: "workflow",
            example: &|_| None,
        };
        yaml_error(&src, &e, &doc).to_string()
    }

    #[test]
    fn duplicate_keys_point_at_the_second_occurrence() {
        let e = yaml_err::<serde_yaml::Value>("a: 1\nb:\n  x: 1\n  x: 2\n");
        assert!(e.contains("duplicate key `x` in `b`"), "{e}");
        assert!(e.contains("w.yaml:4:3"), "{e}");
        assert!(e.contains("already set at line 3"), "{e}");
    }

    #[test]
    fn unknown_keys_suggest_the_nearest_allowed_one() {
        // A stand-in for the workflow's top level: diag knows nothing of spec.
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Top {
            name: String,
            steps: serde_yaml::Value,
        }
        let e = yaml_err::<Top>("name: x\nstpes: {}\n");
        assert!(e.contains("unknown key `stpes` at the top level"), "{e}");
        assert!(e.contains("w.yaml:2:1"), "{e}");
        assert!(e.contains("did you mean `steps`?"), "{e}");
    }

    #[test]
    fn serde_paths_parse_into_segments() {
        assert_eq!(
            parse_serde_path("steps.a.env[1]"),
            YamlPath::root()
                .join("steps")
                .join("a")
                .join("env")
                .join(1usize)
        );
        let (path, detail, serde) = split_serde_path("steps.a: invalid type: map, expected x");
        assert_eq!(path.to_string(), "steps.a");
        assert_eq!(detail, "invalid type: map, expected x");
        assert!(serde);
        assert!(!split_serde_path("did not find expected key").2);
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let line = format!("{}X{}", "a".repeat(300), "b".repeat(300));
        let span = Span {
            line: 1,
            col: 301,
            width: 1,
        };
        let (shown, lead, width) = snippet_window(&line, span);
        assert!(
            shown.starts_with("...") && shown.ends_with("..."),
            "{shown}"
        );
        assert_eq!(shown.chars().nth(lead.chars().count()), Some('X'));
        assert_eq!(width, 1);
        let (shown, lead, _) = snippet_window(
            "a\u{0}b",
            Span {
                line: 1,
                col: 2,
                width: 1,
            },
        );
        assert_eq!(shown, "a\u{FFFD}b");
        assert_eq!(lead, " ");
    }

    #[test]
    fn nearest_finds_typos_only() {
        assert_eq!(nearest("clen", ["clean", "train"]), Some("clean"));
        assert_eq!(nearest("zzzzzz", ["clean", "train"]), None);
    }
}
