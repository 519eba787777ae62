//! Plugin steps: a folder `plugins/NAME/` with a `plugin.yaml` that declares an
//! argv command, input and output slots, typed params, the env vars it reads and a
//! timeout. The whole folder (minus Python byte-code caches) is hashed into the
//! step key, so editing any file of a plugin reruns the steps that use it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::diag::{Diagnostic, Part, Source, YamlPath};
use crate::spec::raw::unique_map;

/// Default step timeout when a plugin declares none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `command:` and `outputs:` (a plugin manifest)"
)]
struct RawManifest {
    #[serde(default)]
    description: Option<String>,
    command: Vec<String>,
    #[serde(default, deserialize_with = "unique_map")]
    inputs: IndexMap<String, RawInput>,
    #[serde(deserialize_with = "unique_map")]
    outputs: IndexMap<String, RawOutput>,
    #[serde(default, deserialize_with = "unique_map")]
    params: IndexMap<String, RawParam>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    /// Confine the plugin's file access (Landlock). On by default.
    #[serde(default = "yes")]
    sandbox: bool,
    /// Absolute folders outside the workspace the sandboxed plugin may read.
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    timeout: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    #[serde(default)]
    optional: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    dir: bool,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    media_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(rename = "type", default = "any")]
    ty: ParamType,
    #[serde(default)]
    default: Option<serde_yaml::Value>,
}

fn yes() -> bool {
    true
}

fn any() -> ParamType {
    ParamType::Any
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Float,
    Bool,
    List,
    Map,
    Any,
}

impl ParamType {
    /// The name as written in `plugin.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::List => "list",
            ParamType::Map => "map",
            ParamType::Any => "any",
        }
    }
}

/// A validated plugin manifest.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// The plugin's folder name, or the built-in kind's name.
    pub name: String,
    pub source: SpecSource,
    pub description: Option<String>,
    /// argv with `${plugin}` already replaced by the plugin folder.
    pub command: Vec<String>,
    pub inputs: IndexMap<String, InputSlot>,
    pub outputs: IndexMap<String, OutputSlot>,
    pub params: IndexMap<String, ParamDecl>,
    pub env: Vec<String>,
    /// Env vars the step reads that are secret: passed, never hashed or recorded.
    pub secrets: Vec<String>,
    /// File access confined by [`super::sandbox`] (plugins, unless they opt out).
    pub sandbox: bool,
    /// Extra absolute folders a sandboxed step may read (`read:` in `plugin.yaml`).
    pub read: Vec<PathBuf>,
    pub timeout: Duration,
    /// Whether a result of this kind may be taken from, and offered to, a remote
    /// cache: false for a kind whose effect is the running workspace's own
    /// (`publish` writes its registry and records the release in its lineage).
    pub shareable: bool,
}

/// Where a step kind comes from, which is also what identifies it in step keys.
#[derive(Debug, Clone)]
pub enum SpecSource {
    Plugin {
        dir: PathBuf,
        /// Relative path → blake3 of every file of the folder (the key ingredient).
        files: BTreeMap<String, String>,
    },
    Builtin {
        /// The kind's implementation version, bumped when its semantics change.
        version: u32,
    },
}

impl StepSpec {
    /// The kind as lineage records it: `plugin:NAME` or the built-in kind's name.
    pub fn label(&self) -> String {
        match self.source {
            SpecSource::Plugin { .. } => format!("plugin:{}", self.name),
            SpecSource::Builtin { .. } => self.name.clone(),
        }
    }

    /// How messages name it: "plugin `x`" or "built-in step `clean`".
    pub fn describe(&self) -> String {
        match self.source {
            SpecSource::Plugin { .. } => format!("plugin `{}`", self.name),
            SpecSource::Builtin { .. } => format!("built-in step `{}`", self.name),
        }
    }

    /// The folder a plugin runs from (`PEDIGREE_PLUGIN_DIR`); none for a built-in.
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            SpecSource::Plugin { dir, .. } => Some(dir),
            SpecSource::Builtin { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct InputSlot {
    pub optional: bool,
}

#[derive(Debug, Clone)]
pub struct OutputSlot {
    /// File name the plugin writes (or folder name when `dir`).
    pub file: String,
    pub dir: bool,
    pub kind: String,
    pub media_type: String,
}

#[derive(Debug, Clone)]
pub struct ParamDecl {
    pub ty: ParamType,
    pub default: Option<Json>,
}

/// An example of the value at a key path of a `plugin.yaml`, for hints.
fn manifest_example(path: &YamlPath) -> Option<&'static str> {
    use crate::diag::Seg::Key;
    let first = match path.0.first() {
        Some(Key(k)) => k.as_str(),
        _ => return None,
    };
    Some(match (first, path.0.len()) {
        ("description", 1) => "`description: What it does`",
        ("command", _) => "`command: [python3, \"${plugin}/main.py\"]`",
        ("inputs", 1) => "`inputs: { table: {} }`",
        ("inputs", 2) => "`table: { optional: true }`",
        ("outputs", 1) => "`outputs: { table: { file: clean.csv } }`",
        ("outputs", 2) => "`table: { file: clean.csv, kind: table }`",
        ("params", 1) => "`params: { top: { type: int, default: 20 } }`",
        ("params", 2) => "`top: { type: int, default: 20 }`",
        ("params", 3) => "`type: int` (string, int, float, bool, list, map or any)",
        ("env", _) => "`env: [SOME_VAR]`",
        ("timeout", 1) => "`timeout: 600`",
        ("read", _) => "`read: [/opt/models]`",
        _ => return None,
    })
}

fn is_slot_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

fn is_file_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s.contains('/')
        && !s.contains('\0')
        && s.len() <= 255
}

impl StepSpec {
    /// Load `plugins_dir/NAME/plugin.yaml` and hash the folder.
    pub fn load_plugin(plugins_dir: &Path, name: &str) -> Result<StepSpec, Diagnostic> {
        let dir = plugins_dir.join(name);
        let manifest_path = dir.join("plugin.yaml");
        let shown = crate::spec::validate::display_path(&manifest_path);
        let text = match std::fs::read(&manifest_path) {
            Ok(bytes) if bytes.len() as u64 > crate::spec::validate::MAX_FILE_BYTES => {
                return Err(Diagnostic::new("plugin manifest is larger than 1 MiB").in_file(&shown));
            }
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
                Diagnostic::new("plugin manifest is not valid UTF-8")
                    .in_file(&shown)
                    .help("save it as UTF-8")
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Diagnostic::new(format!(
                    "unknown plugin `{name}`: there is no `{}`",
                    shown.display()
                ))
                .help(format!(
                    "create `plugins/{name}/plugin.yaml`, or fix the plugin name in the workflow"
                )));
            }
            Err(e) => {
                return Err(Diagnostic::new(format!(
                    "cannot read plugin `{name}`: `{}`: {e}",
                    shown.display()
                ))
                .help(format!(
                    "create `plugins/{name}/plugin.yaml`, or fix the plugin name in the workflow"
                )));
            }
        };
        let source = Source::new(&shown, text);
        let raw: RawManifest = serde_yaml::from_str(&source.text).map_err(|e| {
            crate::diag::yaml_error(
                &source,
                &e,
                &crate::diag::YamlDoc {
                    what: "plugin manifest",
                    example: &manifest_example,
                },
            )
        })?;
        let err = |path: YamlPath, part, msg: String, help: &str| {
            Diagnostic::new(msg)
                .at_path(&source, &path, part)
                .help(help.to_owned())
        };
        let root = YamlPath::root();
        if raw.command.is_empty() || raw.command[0].trim().is_empty() {
            return Err(err(
                root.join("command"),
                Part::Value,
                "`command` is empty".into(),
                "give the argv to run, e.g. `[python3, \"${plugin}/main.py\"]`",
            ));
        }
        let abs_dir = std::path::absolute(&dir).unwrap_or(dir.clone());
        let plugin_str = abs_dir.to_string_lossy();
        let command = raw
            .command
            .iter()
            .map(|a| a.replace("${plugin}", &plugin_str))
            .collect();

        let mut inputs = IndexMap::new();
        for (slot, i) in raw.inputs {
            if !is_slot_name(&slot) {
                return Err(err(
                    root.join("inputs").join(slot.as_str()),
                    Part::Key,
                    format!("`{slot}` is not a valid slot name"),
                    "use letters, digits, `_` and `-`",
                ));
            }
            inputs.insert(
                slot,
                InputSlot {
                    optional: i.optional,
                },
            );
        }
        let mut outputs = IndexMap::new();
        if raw.outputs.is_empty() {
            return Err(err(
                root.join("outputs"),
                Part::Key,
                "the plugin declares no outputs".into(),
                "declare at least one output slot; a step's outputs are what it is run for",
            ));
        }
        for (slot, o) in raw.outputs {
            let path = root.join("outputs").join(slot.as_str());
            if !is_slot_name(&slot) {
                return Err(err(
                    path,
                    Part::Key,
                    format!("`{slot}` is not a valid slot name"),
                    "use letters, digits, `_` and `-`",
                ));
            }
            let file = o.file.unwrap_or_else(|| slot.clone());
            if !is_file_name(&file) {
                return Err(err(
                    path.join("file"),
                    Part::Value,
                    format!("output file name `{file}` is not a plain file name"),
                    "give a name without `/`, like `model.json`",
                ));
            }
            outputs.insert(
                slot,
                OutputSlot {
                    file,
                    dir: o.dir,
                    kind: o.kind.unwrap_or_else(|| "file".into()),
                    media_type: o.media_type.unwrap_or_else(|| {
                        if o.dir {
                            "inode/directory".into()
                        } else {
                            "application/octet-stream".into()
                        }
                    }),
                },
            );
        }
        let mut params = IndexMap::new();
        for (pname, p) in raw.params {
            let path = root.join("params").join(pname.as_str());
            let default = match &p.default {
                None => None,
                Some(v) => {
                    let j = crate::spec::value::from_yaml(v, &path)
                        .map_err(|e| err(path.clone(), Part::Value, e.message, &e.help))?;
                    Some(coerce(p.ty, j).map_err(|m| {
                        err(
                            path.join("default"),
                            Part::Value,
                            format!("default of `{pname}`: {m}"),
                            "make the default match the declared type",
                        )
                    })?)
                }
            };
            params.insert(pname, ParamDecl { ty: p.ty, default });
        }
        let timeout = match raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) if t.is_finite() && t > 0.0 && t <= 7.0 * 86400.0 => Duration::from_secs_f64(t),
            Some(t) => {
                return Err(err(
                    root.join("timeout"),
                    Part::Value,
                    format!("timeout {t} is not a positive number of seconds"),
                    "give seconds, e.g. `timeout: 600`",
                ));
            }
        };
        let mut read = Vec::with_capacity(raw.read.len());
        for (i, r) in raw.read.iter().enumerate() {
            let p = PathBuf::from(r);
            if !p.is_absolute() || r.contains('\0') {
                return Err(err(
                    root.join("read").join(i),
                    Part::Value,
                    format!("`{r}` is not an absolute folder path"),
                    "give absolute paths, e.g. `read: [/opt/models]`; the workspace is readable already",
                ));
            }
            read.push(p);
        }
        let files = hash_folder(&dir).map_err(|e| {
            Diagnostic::new(format!(
                "cannot hash plugin folder `{}`: {e}",
                dir.display()
            ))
        })?;
        Ok(StepSpec {
            name: name.to_owned(),
            source: SpecSource::Plugin {
                dir: abs_dir,
                files,
            },
            description: raw.description,
            command,
            inputs,
            outputs,
            params,
            env: raw.env,
            secrets: raw.secrets,
            sandbox: raw.sandbox,
            read,
            timeout,
            shareable: true,
        })
    }

    /// Check the step's params against the declaration: unknown params are errors,
    /// defaults fill the rest, and values are coerced to their declared type so that
    /// `1` and `1.0` are the same value for a `float` param.
    pub fn resolve_params(
        &self,
        with: &BTreeMap<String, Json>,
    ) -> Result<BTreeMap<String, Json>, ParamError> {
        let mut out = BTreeMap::new();
        for (k, v) in with {
            let Some(decl) = self.params.get(k) else {
                return Err(ParamError::Unknown {
                    name: k.clone(),
                    known: self.params.keys().cloned().collect(),
                });
            };
            let v = coerce(decl.ty, v.clone()).map_err(|message| ParamError::Type {
                name: k.clone(),
                message,
            })?;
            out.insert(k.clone(), v);
        }
        for (k, decl) in &self.params {
            if out.contains_key(k) {
                continue;
            }
            match &decl.default {
                Some(d) => {
                    out.insert(k.clone(), d.clone());
                }
                None => return Err(ParamError::Missing { name: k.clone() }),
            }
        }
        Ok(out)
    }
}

#[derive(Debug)]
pub enum ParamError {
    Unknown { name: String, known: Vec<String> },
    Type { name: String, message: String },
    Missing { name: String },
}

/// Coerce a value to a declared type.
pub fn coerce(ty: ParamType, v: Json) -> Result<Json, String> {
    let name = |v: &Json| match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a map",
    };
    match (ty, v) {
        (ParamType::Any, v) => Ok(v),
        (ParamType::String, v @ Json::String(_)) => Ok(v),
        (ParamType::Bool, v @ Json::Bool(_)) => Ok(v),
        (ParamType::List, v @ Json::Array(_)) => Ok(v),
        (ParamType::Map, v @ Json::Object(_)) => Ok(v),
        (ParamType::Int, Json::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Json::from(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                Ok(Json::from(f as i64))
            } else {
                Err(format!("expected an integer, found {n}"))
            }
        }
        (ParamType::Float, Json::Number(n)) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("expected a number, found {n}")),
        // YAML 1.1 habits that YAML 1.2 (and so pedigree) reads as text.
        (ParamType::Bool, Json::String(s))
            if matches!(
                s.to_ascii_lowercase().as_str(),
                "yes" | "no" | "on" | "off" | "y" | "n"
            ) =>
        {
            let meant = matches!(s.to_ascii_lowercase().as_str(), "yes" | "on" | "y");
            Err(format!(
                "expected a boolean, found the string `{s}` (YAML 1.2 reads `{s}` as text, not as {meant}); write `{meant}`"
            ))
        }
        (ParamType::Int, Json::String(s))
            if s.len() > 1
                && s.trim_start_matches(['+', '-']).starts_with('0')
                && s.trim_start_matches(['+', '-'])
                    .bytes()
                    .all(|b| b.is_ascii_digit()) =>
        {
            let sign = if s.starts_with('-') { "-" } else { "" };
            let digits = s.trim_start_matches(['+', '-']).trim_start_matches('0');
            let digits = if digits.is_empty() { "0" } else { digits };
            Err(format!(
                "expected an integer, found the string `{s}` (a leading zero makes it text); write `{sign}{digits}`, or `{sign}0o{digits}` for an octal number"
            ))
        }
        (ty, v) => Err(format!(
            "expected {}, found {}",
            match ty {
                ParamType::String => "a string",
                ParamType::Int => "an integer",
                ParamType::Float => "a number",
                ParamType::Bool => "a boolean (`true` or `false`)",
                ParamType::List => "a list",
                ParamType::Map => "a map",
                ParamType::Any => "anything",
            },
            name(&v)
        )),
    }
}

/// Hash every file of a plugin folder by relative path. Python byte-code caches are
/// skipped: the interpreter writes them on its own and they carry no meaning.
/// Executable files hash differently from plain ones; symlinks hash their target text.
pub fn hash_folder(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    use std::os::unix::fs::PermissionsExt;
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name_s = name.to_string_lossy();
            if name_s == "__pycache__" || name_s.ends_with(".pyc") {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)?;
                out.insert(rel, format!("link:{}", target.to_string_lossy()));
            } else if meta.is_dir() {
                visit(root, &path, out)?;
            } else if meta.is_file() {
                let h = crate::store::hash_file(&path)?;
                let exec = meta.permissions().mode() & 0o111 != 0;
                out.insert(rel, if exec { format!("{h}+x") } else { h });
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    visit(dir, dir, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_plugin(dir: &Path, yaml: &str) {
        std::fs::create_dir_all(dir.join("p")).unwrap();
        std::fs::write(dir.join("p/plugin.yaml"), yaml).unwrap();
        std::fs::write(dir.join("p/main.sh"), "echo hi\n").unwrap();
    }

    #[test]
    fn loads_and_coerces_params() {
        let d = tempfile::tempdir().unwrap();
        write_plugin(
            d.path(),
            "command: [sh, \"${plugin}/main.sh\"]\ninputs: { src: {} }\noutputs: { out: { file: o.csv, kind: table } }\nparams:\n  lr: { type: float, default: 1 }\n  n: { type: int }\n",
        );
        let p = StepSpec::load_plugin(d.path(), "p").unwrap();
        assert!(p.command[1].ends_with("/p/main.sh"));
        let with = BTreeMap::from([("n".to_string(), Json::from(3.0))]);
        let r = p.resolve_params(&with).unwrap();
        assert_eq!(r["n"].to_string(), "3");
        assert_eq!(r["lr"].to_string(), "1.0");
        let bad = BTreeMap::from([("n".to_string(), Json::from("x"))]);
        assert!(matches!(
            p.resolve_params(&bad),
            Err(ParamError::Type { .. })
        ));
        assert!(matches!(
            p.resolve_params(&BTreeMap::new()),
            Err(ParamError::Missing { .. })
        ));
    }

    #[test]
    fn folder_hash_skips_bytecode_and_sees_every_file() {
        let d = tempfile::tempdir().unwrap();
        write_plugin(d.path(), "command: [sh]\noutputs: { out: {} }\n");
        let a = hash_folder(&d.path().join("p")).unwrap();
        std::fs::create_dir_all(d.path().join("p/__pycache__")).unwrap();
        std::fs::write(d.path().join("p/__pycache__/x.pyc"), "junk").unwrap();
        assert_eq!(hash_folder(&d.path().join("p")).unwrap(), a);
        std::fs::write(d.path().join("p/main.sh"), "echo bye\n").unwrap();
        assert_ne!(hash_folder(&d.path().join("p")).unwrap(), a);
    }

    #[test]
    fn manifest_errors_point_into_the_file() {
        let d = tempfile::tempdir().unwrap();
        write_plugin(
            d.path(),
            "command: [sh]\noutputs: { out: {} }\nparams:\n  n: { type: integer }\n",
        );
        let e = StepSpec::load_plugin(d.path(), "p")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown value `integer` in `params.n.type`"),
            "{e}"
        );
        assert!(e.contains("use one of `string`, `int`"), "{e}");
        assert!(e.contains("plugin.yaml:4:"), "{e}");
    }

    #[test]
    fn read_folders_must_be_absolute() {
        let d = tempfile::tempdir().unwrap();
        write_plugin(
            d.path(),
            "command: [sh]\noutputs: { out: {} }\nread: [/opt/models, models]\n",
        );
        let e = StepSpec::load_plugin(d.path(), "p")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`models` is not an absolute folder path"), "{e}");
        assert!(e.contains("plugin.yaml:3:"), "{e}");
        write_plugin(
            d.path(),
            "command: [sh]\noutputs: { out: {} }\nread: [/opt/models]\n",
        );
        let p = StepSpec::load_plugin(d.path(), "p").unwrap();
        assert_eq!(p.read, [PathBuf::from("/opt/models")]);
    }

    #[test]
    fn yaml_1_1_spellings_get_a_hint() {
        let e = coerce(ParamType::Bool, Json::from("On")).unwrap_err();
        assert!(e.contains("write `true`"), "{e}");
        let e = coerce(ParamType::Bool, Json::from("no")).unwrap_err();
        assert!(e.contains("write `false`"), "{e}");
        let e = coerce(ParamType::Int, Json::from("-0755")).unwrap_err();
        assert!(e.contains("write `-755`, or `-0o755`"), "{e}");
        let e = coerce(ParamType::Int, Json::from("00")).unwrap_err();
        assert!(e.contains("write `0`"), "{e}");
        // Ordinary text keeps the plain message.
        let e = coerce(ParamType::Bool, Json::from("maybe")).unwrap_err();
        assert_eq!(e, "expected a boolean (`true` or `false`), found a string");
    }
}
