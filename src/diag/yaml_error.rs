//! serde_yaml's errors as diagnostics: its place (a duplicate key at its second
//! occurrence), a message without serde's jargon, and a hint for the kind of error.

use super::{Diagnostic, Source, Span, YamlPath, nearest};

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
pub(super) fn split_serde_path(problem: &str) -> (YamlPath, &str, bool) {
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
pub(super) fn parse_serde_path(text: &str) -> YamlPath {
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
