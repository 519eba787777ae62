//! User-facing diagnostics for YAML sources: a message, the place it points at
//! (`file:line:col` with the offending line and a caret), and a `help:` line.
//!
//! serde_yaml reports a location for syntax and type errors but keeps no spans on
//! values, so semantic errors (an unknown step in a reference, a param of the wrong
//! type) find their place through [`Locator`]: a second, event-level pass over the
//! same text with yaml-rust2 that maps a key path such as `steps.train.with.lr`
//! to the marks of its key and value. That pass only runs when an error needs a
//! location, so valid files are parsed once.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

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

/// The nearest of `candidates` to `name`, if it is close enough to be a likely typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or a list of what exists.
pub fn suggest<'a>(
    name: &str,
    what: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    if let Some(n) = nearest(name, candidates.clone()) {
        return format!("did you mean `{n}`?");
    }
    let all: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
    if all.is_empty() {
        format!("there are no {what}s here")
    } else {
        format!("the {what}s are {}", all.join(", "))
    }
}

/// What a YAML document is, for messages: "workflow" or "plugin manifest", with an
/// example of the value expected at a key path (e.g. "`inputs: { table: inputs.events }`")
/// where the caller knows one.
pub struct YamlDoc<'a> {
    pub what: &'a str,
    pub example: &'a dyn Fn(&YamlPath) -> Option<&'static str>,
}

/// A serde_yaml error as a diagnostic: serde_yaml's place, the key path it names
/// (a duplicate key is pointed at its second occurrence), a message without serde's
/// jargon, and a hint for the kind of error.
pub fn yaml_error(source: &Source, e: &serde_yaml::Error, doc: &YamlDoc) -> Diagnostic {
    let full = e.to_string();
    // Syntax errors end with ", while parsing X at line L column C": where the construct
    // that could not be finished began.
    let (head, context) = match full.find(", while ") {
        Some(i) => (&full[..i], Some(&full[i + 2..])),
        None => (full.as_str(), None),
    };
    let (problem, _) = strip_mark(head);
    let context = context.map(strip_mark);
    let span = e
        .location()
        .map(|l| source.span_at(l.line(), l.column(), 1));
    let (path, detail, serde_detail) = split_serde_path(problem);
    let at = |path: &YamlPath| -> String {
        if path.0.is_empty() {
            format!("at the top level of the {}", doc.what)
        } else {
            format!("in `{path}`")
        }
    };

    // Unknown key: point at it and suggest the nearest allowed one.
    if let Some(rest) = detail.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let allowed = backticked(expected);
        let help = match nearest(field, allowed.iter().map(String::as_str)) {
            Some(n) => format!("did you mean `{n}`?"),
            None if allowed.is_empty() => "remove the key".to_owned(),
            None => format!(
                "the keys allowed here are {}; remove `{field}` or fix its spelling",
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let span = span.map(|s| Span {
            width: field.chars().count(),
            ..s
        });
        return Diagnostic::new(format!("unknown key `{field}` {}", at(&path)))
            .at(source, span)
            .help(help);
    }

    // Missing key: serde points at the start of the mapping that lacks it.
    if let Some(rest) = detail.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let help = match (doc.example)(&path.join(field)) {
            Some(ex) => format!("add `{field}:` {}, e.g. {ex}", at(&path)),
            None => format!("add `{field}:` {}", at(&path)),
        };
        return Diagnostic::new(format!("missing key `{field}` {}", at(&path)))
            .at(source, span)
            .help(help);
    }

    // Duplicate key: serde points at the mapping; point at the second occurrence.
    let dup = [
        "duplicate field ",
        "duplicate key ",
        "duplicate entry with key ",
    ]
    .iter()
    .find_map(|p| detail.strip_prefix(p));
    if let Some(key) = dup {
        let key = key.trim_matches(|c| c == '`' || c == '"');
        let spans = source.key_spans(&path.join(key));
        let d = Diagnostic::new(format!("duplicate key `{key}` {}", at(&path)));
        return match spans.as_slice() {
            [first, second, ..] => d.at(source, Some(*second)).help(format!(
                "`{key}` is already set at line {}; a key may appear once in a mapping, so remove or rename one of them",
                first.line
            )),
            _ => d
                .at(source, span)
                .help("a key may appear once in a mapping; remove or rename one of them"),
        };
    }

    // Unknown value of a closed set (a plugin param's `type:`).
    if let Some(rest) = detail.strip_prefix("unknown variant `") {
        let (value, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let allowed = backticked(expected);
        let help = match nearest(value, allowed.iter().map(String::as_str)) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!(
                "use one of {}",
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Diagnostic::new(format!("unknown value `{value}` {}", at(&path)))
            .at(source, span)
            .help(help);
    }

    // Wrong type: say what was found and what is expected, in YAML words.
    if let Some(rest) = detail.strip_prefix("invalid type: ") {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        let found = yaml_type_words(found);
        let expected = yaml_type_words(expected);
        let what = if path.0.is_empty() {
            format!("the {}", doc.what)
        } else {
            format!("`{path}`")
        };
        let help = match (missing_space_after_colon(&found), (doc.example)(&path)) {
            (Some((key, value)), _) => format!(
                "a key needs a space after its colon: write `{key}: {value}`, not `{key}:{value}`"
            ),
            (None, Some(ex)) => format!("write it as {expected}, e.g. {ex}"),
            (None, None) => format!("change the value to {expected}"),
        };
        return Diagnostic::new(format!(
            "wrong type for {what}: found {found}, expected {expected}"
        ))
        .at(source, span)
        .help(help);
    }

    let (message, help) = match detail {
        "recursion limit exceeded" => (
            "the YAML nests too deeply (recursion limit exceeded)".to_owned(),
            "serde_yaml reads at most 128 nested levels; flatten the value".to_owned(),
        ),
        "repetition limit exceeded" => (
            "aliases expand to too many values (repetition limit exceeded)".to_owned(),
            "write the values out instead of chaining aliases (`*name`)".to_owned(),
        ),
        "unknown anchor" => {
            // Name the alias: the text from the `*` serde_yaml points at.
            let alias: Option<String> = span.and_then(|s| {
                let line = source.line_text(s.line)?;
                let rest: String = line.chars().skip(s.col.saturating_sub(1)).collect();
                let name: String = rest
                    .strip_prefix('*')?
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}'))
                    .collect();
                Some(name).filter(|n| !n.is_empty())
            });
            match alias {
                Some(a) => (
                    format!("the alias `*{a}` refers to no anchor `&{a}` defined before it"),
                    format!("put `&{a}` on a value above this line, or write the value out"),
                ),
                None => (
                    "an alias (`*name`) refers to no anchor defined before it".to_owned(),
                    "put the anchor `&name` on a value above the alias, or write the value out"
                        .to_owned(),
                ),
            }
        }
        d if d.contains("more than one document") => {
            let span = second_document(&source.text).map(|line| source.span_at(line, 1, 3));
            return Diagnostic::new(format!("the {} file holds more than one YAML document", doc.what))
                .at(source, span)
                .help("a file holds one YAML document; remove this `---` and what follows, or split it into two files");
        }
        _ if serde_detail || e.location().is_none() => (
            format!("invalid {}: {problem}", doc.what),
            format!("see the {} format in README.md", doc.what),
        ),
        _ => {
            let (message, help) = syntax_hint(source, span, problem, context);
            // An error at the end of the file (an unclosed quote or bracket) is better
            // shown where the unfinished construct starts.
            let span = match (span, context) {
                (Some(s), Some((_, Some((line, col))))) if source.line_text(s.line).is_none() => {
                    Some(source.span_at(line, col, 1))
                }
                _ => span,
            };
            return Diagnostic::new(message).at(source, span).help(help);
        }
    };
    Diagnostic::new(message).at(source, span).help(help)
}

/// A message and a hint for a YAML syntax error from libyaml.
fn syntax_hint(
    source: &Source,
    span: Option<Span>,
    problem: &str,
    context: Option<(&str, Option<(usize, usize)>)>,
) -> (String, String) {
    let message = format!("YAML syntax error: {problem}");
    let opened = |what: &str| match context {
        Some((_, Some((line, col)))) => format!("the {what} at line {line} column {col}"),
        _ => format!("a {what} before this point"),
    };
    let here = span.and_then(|s| {
        source
            .line_text(s.line)?
            .chars()
            .nth(s.col.saturating_sub(1))
    });
    let help = if problem.starts_with("found character that cannot start any token") {
        match here {
            Some('\t') => {
                return (
                    "YAML syntax error: a tab character where YAML expects indentation or a value"
                        .to_owned(),
                    "YAML does not allow tabs for indentation; indent with spaces".to_owned(),
                );
            }
            Some(c) => format!("a plain value cannot start with `{c}`; put the value in quotes"),
            None => "put the value in quotes".to_owned(),
        }
    } else if problem.contains("expected ',' or '}'") {
        format!(
            "{} needs `,` between its entries and a closing `}}`",
            opened("`{` (flow mapping)")
        )
    } else if problem.contains("expected ',' or ']'") {
        format!(
            "{} needs `,` between its items and a closing `]`",
            opened("`[` (flow list)")
        )
    } else if problem.contains("did not find expected key")
        || problem.contains("did not find expected '-' indicator")
    {
        "check the indentation: the keys of one mapping (and the `-` items of one list) must start in the same column".to_owned()
    } else if problem.contains("mapping values are not allowed") {
        "check the indentation, or put the value in quotes if it contains `: `".to_owned()
    } else if problem.contains("found unexpected end of stream")
        || problem.contains("found unknown escape character")
    {
        match context {
            Some((c, _)) if c.contains("quoted scalar") => {
                if problem.contains("end of stream") {
                    return (
                        "YAML syntax error: a quoted string is not closed before the end of the file"
                            .to_owned(),
                        format!("close {} with the same quote", opened("quoted string")),
                    );
                }
                format!("close {} with the same quote", opened("quoted string"))
            }
            _ => "fix the YAML syntax at this place".to_owned(),
        }
    } else if problem.contains("did not find expected node content") {
        "a value is missing here: after a `:`, `-` or `,`, or before the end of a `{` or `[` that is not closed".to_owned()
    } else if problem.contains("could not find expected ':'") {
        "a key must be followed by `: ` on the same line; put multi-line text in quotes or use `|`"
            .to_owned()
    } else {
        "fix the YAML syntax at this place".to_owned()
    };
    (message, help)
}

/// Split " at line L column C" (or " at position N") off a serde_yaml message.
fn strip_mark(text: &str) -> (&str, Option<(usize, usize)>) {
    if let Some(i) = text.rfind(" at line ") {
        let mark = text[i + 9..]
            .split_once(" column ")
            .and_then(|(l, c)| Some((l.trim().parse().ok()?, c.trim().parse().ok()?)));
        if mark.is_some() {
            return (&text[..i], mark);
        }
    }
    if let Some(i) = text.rfind(" at position ") {
        return (&text[..i], None);
    }
    (text, None)
}

/// serde_yaml prefixes a message from serde with the key path it concerns
/// (`steps.a.with: duplicate key ...`); libyaml's syntax errors have none. The flag
/// says whether the message is one of serde's.
fn split_serde_path(problem: &str) -> (YamlPath, &str, bool) {
    const DETAILS: &[&str] = &[
        "unknown field ",
        "missing field ",
        "duplicate field ",
        "duplicate key ",
        "duplicate entry ",
        "invalid type: ",
        "invalid value: ",
        "invalid length ",
        "unknown variant ",
    ];
    let start = DETAILS
        .iter()
        .filter_map(|d| {
            if problem.starts_with(d) {
                Some(0)
            } else {
                problem.find(&format!(": {d}")).map(|i| i + 2)
            }
        })
        .min();
    match start {
        None => (YamlPath::root(), problem, false),
        Some(0) => (YamlPath::root(), problem, true),
        Some(i) => (parse_serde_path(&problem[..i - 2]), &problem[i..], true),
    }
}

/// `steps.a.env[1]` → its segments.
fn parse_serde_path(text: &str) -> YamlPath {
    let mut path = YamlPath::root();
    for part in text.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            path = path.join(key);
        }
        while let Some(r) = rest.strip_prefix('[') {
            let Some((idx, after)) = r.split_once(']') else {
                break;
            };
            if let Ok(i) = idx.parse::<usize>() {
                path = path.join(i);
            }
            rest = after;
        }
    }
    path
}

/// The names in backticks in serde's "expected one of `a`, `b`".
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// serde's type words ("sequence", "map", "unit value") as YAML users say them.
fn yaml_type_words(text: &str) -> String {
    let text = text.trim();
    for (serde, yaml) in [
        ("a sequence", "a list"),
        ("sequence", "a list"),
        ("a map", "a mapping"),
        ("map", "a mapping"),
        ("unit value", "an empty value"),
        ("string", "a string"),
        ("integer", "an integer"),
        ("floating point", "a number"),
        ("boolean", "a boolean"),
        ("field identifier", "a plain key name"),
    ] {
        if text == serde {
            return yaml.to_owned();
        }
        if let Some(rest) = text.strip_prefix(serde).filter(|r| r.starts_with(' ')) {
            return format!("{yaml}{rest}");
        }
    }
    text.to_owned()
}

/// In a string found where a mapping was expected, a `key:value` written without the
/// space YAML needs after the colon (so the text was read as one plain string).
fn missing_space_after_colon(found: &str) -> Option<(String, String)> {
    let text = found.strip_prefix("a string \"")?;
    text.split_whitespace().find_map(|word| {
        let (key, value) = word.split_once(':')?;
        let plain = |s: &str| !s.is_empty() && !s.starts_with(['/', ':', '"', '\\']);
        (plain(key) && plain(value))
            .then(|| (key.to_owned(), value.trim_end_matches('"').to_owned()))
    })
}

/// The 1-based line of a `---` that starts a second document.
fn second_document(text: &str) -> Option<usize> {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_marker && content {
            return Some(i + 1);
        }
        let t = line.trim();
        if !is_marker && !t.is_empty() && !t.starts_with('#') {
            content = true;
        }
    }
    None
}

/// Two hints as one help text: `first` (a question or a list from [`suggest`]) then `next`.
pub fn and_then(first: &str, next: &str) -> String {
    let first = first.trim_end();
    if first.ends_with(['?', '.', '!']) {
        format!("{first} {next}")
    } else {
        format!("{first}. {next}")
    }
}

/// (line, col, width) of a key and of its value, 1-based.
type Mark = (usize, usize, usize);

#[derive(Clone, Copy)]
struct Entry {
    key: Option<Mark>,
    value: Mark,
}

/// Maps every key path of a YAML document to the marks of its key and value (every
/// occurrence, in file order, so a duplicate key can be pointed at).
struct Locator {
    entries: HashMap<YamlPath, Vec<Entry>>,
}

enum Frame {
    Map { pending_key: Option<(String, Mark)> },
    Seq { next: usize },
}

struct Builder<'a> {
    text: &'a str,
    path: Vec<Seg>,
    frames: Vec<Frame>,
    entries: HashMap<YamlPath, Vec<Entry>>,
}

impl Builder<'_> {
    fn mark(&self, m: Marker, width: usize) -> Mark {
        // yaml-rust2 reports a 0-based column; make it 1-based like serde_yaml.
        let _ = self.text;
        (m.line(), m.col() + 1, width)
    }

    /// Called for a node (scalar or collection start) at `m`: decides its path.
    fn node(&mut self, m: Marker, width: usize, is_scalar: bool, scalar: Option<&str>) -> bool {
        let value = self.mark(m, width);
        match self.frames.last_mut() {
            Some(Frame::Map { pending_key }) => match pending_key.take() {
                None => {
                    // This node is a key.
                    let k = scalar.unwrap_or("?").to_owned();
                    *pending_key = Some((k, value));
                    false
                }
                Some((k, key_mark)) => {
                    self.path.push(Seg::Key(k));
                    self.entries
                        .entry(YamlPath(self.path.clone()))
                        .or_default()
                        .push(Entry {
                            key: Some(key_mark),
                            value,
                        });
                    if is_scalar {
                        self.path.pop();
                    }
                    true
                }
            },
            Some(Frame::Seq { next }) => {
                let i = *next;
                *next += 1;
                self.path.push(Seg::Index(i));
                self.entries
                    .entry(YamlPath(self.path.clone()))
                    .or_default()
                    .push(Entry { key: None, value });
                if is_scalar {
                    self.path.pop();
                }
                true
            }
            None => {
                self.entries
                    .entry(YamlPath(Vec::new()))
                    .or_default()
                    .push(Entry { key: None, value });
                true
            }
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, m: Marker) {
        match ev {
            Event::Scalar(s, style, _, _) => {
                let quoted = !matches!(style, yaml_rust2::scanner::TScalarStyle::Plain);
                let width = s.chars().count() + if quoted { 2 } else { 0 };
                self.node(m, width, true, Some(&s));
            }
            Event::Alias(_) => {
                self.node(m, 1, true, Some("*"));
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                // A collection used as a mapping key cannot be located by name; it still
                // needs a frame so the events inside it stay balanced.
                let as_key = matches!(self.frames.last(), Some(Frame::Map { pending_key: None }));
                if as_key {
                    self.node(m, 1, true, Some("?"));
                    self.path.push(Seg::Key("?".into()));
                } else if !self.node(m, 1, false, None) {
                    self.path.push(Seg::Key("?".into()));
                }
                self.frames.push(if is_map {
                    Frame::Map { pending_key: None }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.frames.pop();
                self.path.pop();
            }
            _ => {}
        }
    }
}

impl Locator {
    fn build(text: &str) -> Locator {
        let mut b = Builder {
            text,
            path: Vec::new(),
            frames: Vec::new(),
            entries: HashMap::new(),
        };
        let mut parser = Parser::new_from_str(text);
        // A syntax error stops the walk; what was located before it is still useful.
        let _ = parser.load(&mut b, false);
        Locator { entries: b.entries }
    }
}

#[cfg(test)]
mod tests {
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
