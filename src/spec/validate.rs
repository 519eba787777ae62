//! Phase two: a [`RawWorkflow`] checked and turned into a [`Workflow`]: names are
//! well-formed, references resolve, `--set` overrides are applied and
//! `${params.NAME}` is interpolated. Every error points at its place in the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::raw::{RawStep, RawWorkflow};
use super::value::{self, ValueError};
use crate::diag::{self, Diagnostic, Part, Source, Span, YamlPath};

/// Workflow files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A validated workflow: what the engine plans from.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// The file as read, for diagnostics found in later phases.
    pub source: Source,
    /// blake3 of the file's bytes (recorded with each run; not part of any step key).
    pub file_hash: String,
    /// Absolute directory of the workflow file; input paths are relative to it.
    pub dir: PathBuf,
    pub inputs: IndexMap<String, WorkflowInput>,
    pub params: BTreeMap<String, Json>,
    pub steps: IndexMap<String, Step>,
}

#[derive(Debug, Clone)]
pub struct WorkflowInput {
    pub name: String,
    /// The path as written in the workflow file.
    pub declared: String,
    /// `dir` joined with `declared` (not canonicalised: the engine does that).
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub action: Action,
    /// Input slot → what feeds it, in file order.
    pub inputs: IndexMap<String, Ref>,
    /// Params after overrides and interpolation.
    pub with: BTreeMap<String, Json>,
    /// Extra environment variables passed to the step and hashed into its key.
    pub env: Vec<String>,
    /// Environment variables passed to the step but never hashed, recorded or logged.
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `uses: KIND`, a built-in step kind.
    Builtin(String),
    /// `plugin: NAME`, a folder `plugins/NAME`.
    Plugin(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ref {
    /// `inputs.NAME`
    Input(String),
    /// `STEP.OUTPUT`
    Output { step: String, output: String },
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Input(n) => write!(f, "inputs.{n}"),
            Ref::Output { step, output } => write!(f, "{step}.{output}"),
        }
    }
}

/// A `--set TARGET.KEY=VALUE` override: TARGET is `params` or a step name.
#[derive(Debug, Clone)]
pub struct Override {
    pub target: String,
    pub key: String,
    pub value: Json,
}

impl Override {
    pub fn parse(text: &str) -> Result<Override, String> {
        let Some((lhs, rhs)) = text.split_once('=') else {
            return Err(format!(
                "`--set {text}` has no `=`; write `--set STEP.KEY=VALUE` or `--set params.NAME=VALUE`"
            ));
        };
        let Some((target, key)) = lhs.split_once('.') else {
            return Err(format!(
                "`--set {text}` names no step; write `--set STEP.KEY=VALUE` or `--set params.NAME=VALUE`"
            ));
        };
        if target.is_empty() || key.is_empty() {
            return Err(format!("`--set {text}` is missing a step or key name"));
        }
        let value = value::parse_override(rhs).map_err(|e| format!("`--set {text}`: {e}"))?;
        Ok(Override {
            target: target.to_owned(),
            key: key.to_owned(),
            value,
        })
    }
}

/// Read, parse and validate the workflow file at `path`.
pub fn load(path: &Path, overrides: &[Override]) -> Result<Workflow, Diagnostic> {
    let shown = display_path(path);
    let meta = std::fs::metadata(path).map_err(|e| {
        Diagnostic::new(format!(
            "cannot read workflow file `{}`: {e}",
            shown.display()
        ))
        .help("check the path; workflows usually live in `workflows/NAME.yaml`")
    })?;
    if !meta.is_file() {
        return Err(
            Diagnostic::new(format!("`{}` is not a file", shown.display()))
                .help("pass the path of a workflow YAML file"),
        );
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::new(format!(
            "workflow file is {} bytes; the limit is {MAX_FILE_BYTES} bytes (1 MiB)",
            meta.len()
        ))
        .in_file(&shown)
        .help("a workflow describes steps, not data: move large values into an input file"));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostic::new(format!(
            "cannot read workflow file `{}`: {e}",
            shown.display()
        ))
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let col = good.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            let source = Source::new(&shown, String::from_utf8_lossy(e.as_bytes()).into_owned());
            return Err(Diagnostic::new("workflow file is not valid UTF-8")
                .at(
                    &source,
                    Some(Span {
                        line,
                        col,
                        width: 1,
                    }),
                )
                .help("save the file as UTF-8"));
        }
    };
    let dir = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    parse(Source::new(shown, text), dir, overrides)
}

/// Parse and validate workflow text (the file is already read).
pub fn parse(source: Source, dir: PathBuf, overrides: &[Override]) -> Result<Workflow, Diagnostic> {
    if let Some(idx) = source.text.find('\0') {
        let before = &source.text[..idx];
        let line = before.matches('\n').count() + 1;
        let col = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
        return Err(Diagnostic::new("workflow file contains a NUL byte")
            .at(
                &source,
                Some(Span {
                    line,
                    col,
                    width: 1,
                }),
            )
            .help("workflow files are text; remove the binary content"));
    }
    if source.text.trim().is_empty() {
        return Err(Diagnostic::new("workflow file is empty")
            .in_file(&source.path)
            .help("a workflow needs at least `name:` and `steps:`"));
    }
    let only_comments = source.text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    });
    if only_comments {
        return Err(
            Diagnostic::new("workflow file has only comments, no YAML content")
                .in_file(&source.path)
                .help("a workflow needs at least `name:` and `steps:`"),
        );
    }
    let raw: RawWorkflow =
        serde_yaml::from_str(&source.text).map_err(|e| yaml_error(&source, &e))?;
    Validator { source: &source }.workflow(raw, dir, overrides)
}

/// Turn a serde_yaml error into a diagnostic with a place and a hint.
fn yaml_error(source: &Source, e: &serde_yaml::Error) -> Diagnostic {
    diag::yaml_error(
        source,
        e,
        &diag::YamlDoc {
            what: "workflow",
            example: &workflow_example,
        },
    )
}

/// An example of the value at a key path of a workflow, for hints.
fn workflow_example(path: &YamlPath) -> Option<&'static str> {
    use diag::Seg::Key;
    let keys: Vec<Option<&str>> = path
        .0
        .iter()
        .map(|s| match s {
            Key(k) => Some(k.as_str()),
            diag::Seg::Index(_) => None,
        })
        .collect();
    Some(match keys.as_slice() {
        [] => "`name: quickstart` on one line and `steps:` below it, neither indented",
        [Some("name")] => "`name: quickstart`",
        [Some("description")] => "`description: Rank items by popularity`",
        [Some("inputs")] => "`inputs: { events: data/events.csv }`",
        [Some("inputs"), _] => "`events: data/events.csv` (a path relative to the workflow file)",
        [Some("params")] => "`params: { top: 20 }`",
        [Some("steps")] => {
            "`steps: { clean: { plugin: csv-clean, inputs: { table: inputs.events } } }`"
        }
        [Some("steps"), _] => "`clean: { plugin: csv-clean, inputs: { table: inputs.events } }`",
        [Some("steps"), _, Some("uses")] => "`uses: clean`",
        [Some("steps"), _, Some("plugin")] => "`plugin: csv-clean`",
        [Some("steps"), _, Some("inputs")] => "`inputs: { table: inputs.events }`",
        [Some("steps"), _, Some("inputs"), _] => "`table: inputs.events` or `table: clean.table`",
        [Some("steps"), _, Some("with")] => "`with: { top: 20 }`",
        [Some("steps"), _, Some("env"), ..] => "`env: [SOME_VAR]`",
        _ => return None,
    })
}

/// Shorten an absolute path to one relative to the current directory for messages.
pub fn display_path(path: &Path) -> PathBuf {
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = path.strip_prefix(&cwd)
    {
        return rel.to_path_buf();
    }
    path.to_path_buf()
}

struct Validator<'a> {
    source: &'a Source,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.len() <= 64
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Variables pedigree sets for every step itself.
fn is_reserved_env(s: &str) -> bool {
    matches!(
        s,
        "PATH" | "HOME" | "TMPDIR" | "LANG" | "PYTHONDONTWRITEBYTECODE"
    )
}

/// Plugin folder names: lower-case words, never a path.
pub fn is_plugin_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && s.len() <= 64
}

fn p(path: &[&str]) -> YamlPath {
    YamlPath(path.iter().map(|s| (*s).into()).collect())
}

impl Validator<'_> {
    fn err(&self, path: &YamlPath, part: Part, message: String, help: String) -> Diagnostic {
        Diagnostic::new(message)
            .at_path(self.source, path, part)
            .help(help)
    }

    fn workflow(
        &self,
        raw: RawWorkflow,
        dir: PathBuf,
        overrides: &[Override],
    ) -> Result<Workflow, Diagnostic> {
        let name_ok = raw.name.len() <= 64
            && raw
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && raw
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return Err(self.err(
                &p(&["name"]),
                Part::Value,
                format!("workflow name `{}` is not a valid name", raw.name),
                "use lower-case letters, digits, `-` and `_` (at most 64), e.g. `ecommerce-gnnr`"
                    .into(),
            ));
        }
        let mut inputs = IndexMap::new();
        for (name, declared) in &raw.inputs {
            let path = p(&["inputs", name]);
            if !is_name(name) {
                return Err(self.err(
                    &path,
                    Part::Key,
                    format!("input name `{name}` is not a valid name"),
                    "start with a letter or `_`; then letters, digits, `_` or `-`".into(),
                ));
            }
            if declared.trim().is_empty() || declared.contains('\0') {
                return Err(self.err(
                    &path,
                    Part::Value,
                    format!("input `{name}` has an empty path"),
                    "give a file or folder path relative to the workflow file".into(),
                ));
            }
            if Path::new(declared).is_absolute() {
                return Err(self.err(&path, Part::Value, format!("input `{name}` has the absolute path `{declared}`"),
                    "write the path relative to the workflow file, so the workflow works in every clone".into()));
            }
            inputs.insert(
                name.clone(),
                WorkflowInput {
                    name: name.clone(),
                    declared: declared.clone(),
                    path: dir.join(declared),
                },
            );
        }

        let mut params = BTreeMap::new();
        for (name, v) in &raw.params {
            let path = p(&["params", name]);
            if !is_name(name) {
                return Err(self.err(
                    &path,
                    Part::Key,
                    format!("param name `{name}` is not a valid name"),
                    "start with a letter or `_`; then letters, digits, `_` or `-`".into(),
                ));
            }
            params.insert(name.clone(), self.value(v, &path)?);
        }
        for o in overrides.iter().filter(|o| o.target == "params") {
            if !params.contains_key(&o.key) {
                return Err(Diagnostic::new(format!(
                    "`--set params.{}` names a param the workflow does not declare",
                    o.key
                ))
                .in_file(&self.source.path)
                .help(diag::suggest(
                    &o.key,
                    "param",
                    params.keys().map(String::as_str),
                )));
            }
            params.insert(o.key.clone(), o.value.clone());
        }
        for o in overrides.iter().filter(|o| o.target != "params") {
            if !raw.steps.contains_key(&o.target) {
                return Err(Diagnostic::new(format!(
                    "`--set {}.{}` names no step of this workflow",
                    o.target, o.key
                ))
                .in_file(&self.source.path)
                .help(diag::suggest(
                    &o.target,
                    "step",
                    raw.steps.keys().map(String::as_str),
                )));
            }
        }

        if raw.steps.is_empty() {
            return Err(self.err(
                &p(&["steps"]),
                Part::Key,
                "workflow has no steps".into(),
                "add at least one step under `steps:`".into(),
            ));
        }
        let mut steps = IndexMap::new();
        let mut folded: BTreeMap<String, &str> = BTreeMap::new();
        for (name, rs) in &raw.steps {
            if let Some(first) = folded.insert(name.to_lowercase(), name) {
                return Err(self.err(
                    &p(&["steps", name]),
                    Part::Key,
                    format!("step names `{first}` and `{name}` differ only in case"),
                    "rename one: names that differ only in case are easy to misread in review and collide on case-insensitive file systems".into(),
                ));
            }
            let step = self.step(name, rs, &raw, &params, overrides)?;
            steps.insert(name.clone(), step);
        }
        Ok(Workflow {
            name: raw.name,
            description: raw.description,
            file_hash: blake3::hash(self.source.text.as_bytes())
                .to_hex()
                .to_string(),
            source: self.source.clone(),
            dir,
            inputs,
            params,
            steps,
        })
    }

    fn value(&self, v: &serde_yaml::Value, path: &YamlPath) -> Result<Json, Diagnostic> {
        value::from_yaml(v, path).map_err(
            |ValueError {
                 path,
                 message,
                 help,
             }| { self.err(&path, Part::Value, message, help) },
        )
    }

    fn step(
        &self,
        name: &str,
        rs: &RawStep,
        raw: &RawWorkflow,
        params: &BTreeMap<String, Json>,
        overrides: &[Override],
    ) -> Result<Step, Diagnostic> {
        let base = p(&["steps", name]);
        if let Some(c) = name.chars().find(|c| !c.is_ascii()) {
            return Err(self.err(&base, Part::Key,
                format!("step name `{name}` has the non-ASCII character `{c}` (U+{:04X})", c as u32),
                "step names are ASCII (letters, digits, `_`, `-`), so a look-alike letter cannot pass for another step; retype the name".into()));
        }
        if !is_name(name) || name == "inputs" || name == "params" {
            return Err(self.err(&base, Part::Key, format!("step name `{name}` is not a valid name"),
                "start with a letter or `_`; then letters, digits, `_` or `-`; `inputs` and `params` are reserved".into()));
        }
        let action = match (&rs.uses, &rs.plugin) {
            (Some(kind), None) => Action::Builtin(kind.clone()),
            (None, Some(plugin)) => {
                if !is_plugin_name(plugin) {
                    return Err(self.err(&base.join("plugin"), Part::Value,
                        format!("plugin name `{plugin}` is not a valid plugin name"),
                        "name a folder under `plugins/` (lower-case letters, digits, `-`, `_`), not a path".into()));
                }
                Action::Plugin(plugin.clone())
            }
            (Some(_), Some(_)) => {
                return Err(self.err(
                    &base.join("plugin"),
                    Part::Key,
                    format!("step `{name}` has both `uses` and `plugin`"),
                    "a step is either a built-in kind (`uses:`) or a plugin (`plugin:`); keep one"
                        .into(),
                ));
            }
            (None, None) => {
                return Err(self.err(&base, Part::Key, format!("step `{name}` says neither `uses` nor `plugin`"),
                    "add `uses: KIND` for a built-in step or `plugin: NAME` for a folder in `plugins/`".into()));
            }
        };

        let mut inputs = IndexMap::new();
        for (slot, text) in &rs.inputs {
            let path = base.join("inputs").join(slot.as_str());
            if !is_name(slot) {
                return Err(self.err(
                    &path,
                    Part::Key,
                    format!("input slot name `{slot}` is not a valid name"),
                    "start with a letter or `_`; then letters, digits, `_` or `-`".into(),
                ));
            }
            inputs.insert(slot.clone(), self.reference(name, text, &path, raw)?);
        }

        let mut with = BTreeMap::new();
        for (key, v) in &rs.with {
            let path = base.join("with").join(key.as_str());
            let value = self.value(v, &path)?;
            with.insert(key.clone(), self.interpolate(value, &path, params)?);
        }
        for o in overrides.iter().filter(|o| o.target == name) {
            with.insert(o.key.clone(), o.value.clone());
        }

        for (field, vars) in [("env", &rs.env), ("secrets", &rs.secrets)] {
            for (i, var) in vars.iter().enumerate() {
                if !is_env_name(var) || var.starts_with("PEDIGREE_") || is_reserved_env(var) {
                    return Err(self.err(
                        &base.join(field).join(i),
                        Part::Value,
                        format!("`{var}` is not an environment variable a step may declare"),
                        "use letters, digits and `_`; `PEDIGREE_*`, `PATH`, `HOME`, `TMPDIR` and `LANG` are set by pedigree"
                            .into(),
                    ));
                }
            }
        }
        if let Some((i, var)) = rs
            .secrets
            .iter()
            .enumerate()
            .find(|(_, v)| rs.env.contains(v))
        {
            return Err(self.err(
                &base.join("secrets").join(i),
                Part::Value,
                format!("`{var}` is declared both in `env` and in `secrets`"),
                "`env` values are part of the step key and recorded; a secret never is. Keep it in one list".into(),
            ));
        }
        let sorted = |v: &Vec<String>| {
            let mut v = v.clone();
            v.sort();
            v.dedup();
            v
        };
        Ok(Step {
            name: name.to_owned(),
            action,
            inputs,
            with,
            env: sorted(&rs.env),
            secrets: sorted(&rs.secrets),
        })
    }

    fn reference(
        &self,
        step: &str,
        text: &str,
        path: &YamlPath,
        raw: &RawWorkflow,
    ) -> Result<Ref, Diagnostic> {
        let parts = text
            .trim()
            .split_once('.')
            .filter(|(head, tail)| !head.is_empty() && !tail.is_empty());
        let Some((head, tail)) = parts else {
            return Err(self.err(path, Part::Value, format!("`{text}` is not a reference"),
                "write `inputs.NAME` for a workflow input or `STEP.OUTPUT` for another step's output".into()));
        };
        if head == "inputs" {
            if !raw.inputs.contains_key(tail) {
                return Err(self.err(
                    path,
                    Part::Value,
                    format!("unknown workflow input `{tail}` in `{text}`"),
                    diag::suggest(
                        tail,
                        "workflow input",
                        raw.inputs.keys().map(String::as_str),
                    ),
                ));
            }
            return Ok(Ref::Input(tail.to_owned()));
        }
        if head == step {
            return Err(self.err(
                path,
                Part::Value,
                format!("step `{step}` reads its own output `{text}`"),
                "a step cannot depend on itself; read another step's output or a workflow input"
                    .into(),
            ));
        }
        if !raw.steps.contains_key(head) {
            let mut names: Vec<&str> = raw.steps.keys().map(String::as_str).collect();
            names.push("inputs");
            return Err(self.err(
                path,
                Part::Value,
                format!("unknown step `{head}` in `{text}`"),
                diag::suggest(head, "step", names),
            ));
        }
        if !is_name(tail) {
            return Err(self.err(
                path,
                Part::Value,
                format!("`{tail}` in `{text}` is not an output name"),
                "write `STEP.OUTPUT`, e.g. `clean.table`".into(),
            ));
        }
        Ok(Ref::Output {
            step: head.to_owned(),
            output: tail.to_owned(),
        })
    }

    /// Replace `${params.NAME}`. A string that is exactly one placeholder takes the
    /// param's value and type; a placeholder inside text is replaced by the scalar's
    /// text. `$${` writes a literal `${`.
    fn interpolate(
        &self,
        v: Json,
        path: &YamlPath,
        params: &BTreeMap<String, Json>,
    ) -> Result<Json, Diagnostic> {
        Ok(match v {
            Json::String(s) => self.interpolate_str(&s, path, params)?,
            Json::Array(items) => Json::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| self.interpolate(x, &path.join(i), params))
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, x) in m {
                    let child = path.join(k.as_str());
                    out.insert(k, self.interpolate(x, &child, params)?);
                }
                Json::Object(out)
            }
            other => other,
        })
    }

    fn interpolate_str(
        &self,
        s: &str,
        path: &YamlPath,
        params: &BTreeMap<String, Json>,
    ) -> Result<Json, Diagnostic> {
        if !s.contains("${") {
            return Ok(Json::String(s.to_owned()));
        }
        let lookup = |name: &str| -> Result<&Json, Diagnostic> {
            params.get(name).ok_or_else(|| {
                self.err(
                    path,
                    Part::Value,
                    format!("unknown param `{name}` in `{s}`"),
                    diag::suggest(name, "param", params.keys().map(String::as_str)),
                )
            })
        };
        let trimmed = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
        if let Some(inner) = trimmed
            && !inner.contains('}')
            && !inner.contains("${")
        {
            let name = self.placeholder(inner, s, path)?;
            return Ok(lookup(name)?.clone());
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(r) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = r;
            } else if let Some(r) = after.strip_prefix("${") {
                let Some(end) = r.find('}') else {
                    return Err(self.err(
                        path,
                        Part::Value,
                        format!("unclosed `${{` in `{s}`"),
                        "close the placeholder with `}`, or write `$${` for a literal `${`".into(),
                    ));
                };
                let name = self.placeholder(&r[..end], s, path)?;
                match lookup(name)? {
                    Json::String(v) => out.push_str(v),
                    v @ (Json::Number(_) | Json::Bool(_)) => out.push_str(&v.to_string()),
                    v => {
                        let kind = match v {
                            Json::Array(_) => "a list",
                            Json::Object(_) => "a map",
                            _ => "null",
                        };
                        return Err(self.err(path, Part::Value,
                            format!("param `{name}` is {kind}, which cannot be placed inside the text `{s}`"),
                            format!("only strings, numbers and booleans go inside text; use `\"${{params.{name}}}\"` alone as the value to pass it whole")));
                    }
                }
                rest = &r[end + 1..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        Ok(Json::String(out))
    }

    fn placeholder<'s>(
        &self,
        inner: &'s str,
        s: &str,
        path: &YamlPath,
    ) -> Result<&'s str, Diagnostic> {
        match inner.trim().strip_prefix("params.") {
            Some(name) if !name.is_empty() => Ok(name),
            _ => Err(self.err(
                path,
                Part::Value,
                if s == format!("${{{inner}}}") {
                    format!("`{s}` is not a param placeholder")
                } else {
                    format!("`${{{inner}}}` in `{s}` is not a param placeholder")
                },
                "write `${params.NAME}` for a workflow param, or `$${` for a literal `${`".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Workflow, Diagnostic> {
        parse(
            Source::new("w.yaml", text),
            PathBuf::from("/ws/workflows"),
            &[],
        )
    }

    const OK: &str = "name: demo\ninputs:\n  events: data/e.csv\nparams:\n  seed: 42\n  label: fast\nsteps:\n  a:\n    plugin: p\n    inputs: { src: inputs.events }\n    with:\n      seed: \"${params.seed}\"\n      tag: \"run-${params.label}-${params.seed}\"\n      lit: \"$${params.seed}\"\n  b:\n    plugin: p\n    inputs: { src: a.out }\n";

    #[test]
    fn parses_and_interpolates() {
        let wf = parse_str(OK).unwrap();
        let a = &wf.steps["a"];
        assert_eq!(a.with["seed"], Json::from(42));
        assert_eq!(a.with["tag"], Json::from("run-fast-42"));
        assert_eq!(a.with["lit"], Json::from("${params.seed}"));
        assert_eq!(
            wf.steps["b"].inputs["src"],
            Ref::Output {
                step: "a".into(),
                output: "out".into()
            }
        );
        assert_eq!(
            wf.inputs["events"].path,
            PathBuf::from("/ws/workflows/data/e.csv")
        );
    }

    #[test]
    fn overrides_replace_params_and_step_values() {
        let o = [
            Override::parse("params.seed=7").unwrap(),
            Override::parse("b.epochs=50").unwrap(),
        ];
        let wf = parse(Source::new("w.yaml", OK), PathBuf::from("/ws"), &o).unwrap();
        assert_eq!(wf.steps["a"].with["seed"], Json::from(7));
        assert_eq!(wf.steps["b"].with["epochs"], Json::from(50));
    }

    #[test]
    fn comments_and_whitespace_do_not_change_the_meaning() {
        let a = parse_str(OK).unwrap();
        let b = parse_str(&format!(
            "# a comment\n{}\n\n",
            OK.replace("seed: 42", "seed:   42   # why")
        ))
        .unwrap();
        assert_eq!(a.steps["a"].with, b.steps["a"].with);
        assert_eq!(a.params, b.params);
    }

    #[test]
    fn unknown_step_suggests_the_nearest() {
        let e = parse_str(&OK.replace("a.out", "aa.out"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown step `aa` in `aa.out`"), "{e}");
        assert!(e.contains("did you mean `a`?"), "{e}");
        assert!(e.contains("w.yaml:17:20"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse_str("name: x\nsteps:\n  a: { plugin: p }\n  a: { plugin: q }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate"), "{e}");
    }
}
