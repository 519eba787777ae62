//! The model registry: `REGISTRY/NAME/VERSION/`, the one place pedigree writes
//! outside its store (`publish`) and reads releases back (`recommend`, gc).
//!
//! This module owns the layout and its safety rules:
//!
//! - **Where a registry may be.** A relative folder inside the workspace
//!   (normalised: no `..`), which must not leave the workspace through a symlink
//!   either; or an absolute folder named in `PEDIGREE_REGISTRY_ROOTS`
//!   (colon-separated absolute folders). That variable stands in for the
//!   workspace configuration until `pedigree.toml` exists; it is read by the
//!   orchestrator when a workflow is validated (a step's child process never sees
//!   the orchestrator's environment, so the child re-checks everything else).
//! - **Names and versions never escape it.** A release name is letters, digits,
//!   `-`, `_` and `.`, never starting with `.`; a version is a number.
//! - **The manifests.** `release.json` ([`ReleaseManifest`]) and `lineage.json`
//!   ([`LineageManifest`]) are typed here; their JSON is what `publish` has always
//!   written (field order included).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The environment variable naming the absolute folders a registry may be in.
pub const ROOTS_VAR: &str = "PEDIGREE_REGISTRY_ROOTS";

/// The registry folder `publish` and `recommend` use by default.
pub const DEFAULT: &str = "registry";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the registry `{0}` is empty")]
    Empty(String),
    #[error("the registry `{0}` goes up with `..`, out of the folder it names")]
    Parent(String),
    #[error(
        "the registry `{registry}` is outside the workspace, and `{ROOTS_VAR}` does not name a folder holding it"
    )]
    Outside { registry: String },
    #[error(
        "the registry `{registry}` resolves to `{resolved}` through a symlink, outside `{base}`"
    )]
    Symlink {
        registry: String,
        resolved: PathBuf,
        base: PathBuf,
    },
    #[error("`{0}` is not a release name")]
    Name(String),
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RegistryError {
    /// What to do about it.
    pub fn help(&self) -> String {
        match self {
            RegistryError::Name(_) => {
                "use letters, digits, `-`, `_` and `.`, e.g. `name: gnnr-ecommerce`".into()
            }
            RegistryError::Io { .. } => "check the folder's permissions".into(),
            _ => format!(
                "write a folder inside the workspace, e.g. `registry: {DEFAULT}`; to publish to an absolute folder, name it (or a folder above it) in the environment variable `{ROOTS_VAR}` (colon-separated), which stands in for the workspace configuration"
            ),
        }
    }
}

/// The absolute folders `PEDIGREE_REGISTRY_ROOTS` names (relative entries are ignored).
pub fn roots_from_env() -> Vec<PathBuf> {
    std::env::var_os(ROOTS_VAR)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| p.is_absolute())
                .collect()
        })
        .unwrap_or_default()
}

/// A release name: letters, digits, `-`, `_`, `.`; not empty, not starting with `.`
/// (so never `.`, `..` or a hidden folder), and never a path.
pub fn check_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Name(name.to_owned()))
    }
}

/// The registry's path without `.` components; `..` anywhere is refused.
fn normalised(registry: &str) -> Result<PathBuf, RegistryError> {
    if registry.trim().is_empty() {
        return Err(RegistryError::Empty(registry.to_owned()));
    }
    let mut out = PathBuf::new();
    for c in Path::new(registry).components() {
        match c {
            Component::ParentDir => return Err(RegistryError::Parent(registry.to_owned())),
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(RegistryError::Empty(registry.to_owned()));
    }
    Ok(out)
}

/// Check a `registry:` value by its text alone: a relative folder without `..`, or
/// an absolute one inside one of `roots`. (The workspace's symlinks are checked
/// by [`Registry::open`].)
pub fn check_param(registry: &str, roots: &[PathBuf]) -> Result<(), RegistryError> {
    let p = normalised(registry)?;
    if p.is_absolute() && !roots.iter().any(|r| p.starts_with(r)) {
        return Err(RegistryError::Outside {
            registry: registry.to_owned(),
        });
    }
    Ok(())
}

/// The canonical form of `path`'s deepest existing ancestor, with the rest appended:
/// where `path` really is, following every symlink that exists so far.
fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(&existing).is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n.to_owned());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&existing)?;
    out.extend(rest.iter().rev());
    Ok(out)
}

/// A registry folder, checked to be where its rules allow.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The registry folder (absolute; it may not exist yet).
    pub root: PathBuf,
    /// The folder it must stay in: the workspace, or the root it was allowed by.
    base: PathBuf,
    /// What the user wrote, for messages.
    written: String,
}

impl Registry {
    /// The registry `registry` (a `registry:` param or `--registry`) of the
    /// workspace at `workspace`. `roots` are the allowed absolute folders; pass
    /// `None` where they cannot be known (a step's child process): an absolute
    /// registry is then only checked to be normalised and free of symlink escapes.
    pub fn open(
        workspace: &Path,
        registry: &str,
        roots: Option<&[PathBuf]>,
    ) -> Result<Registry, RegistryError> {
        let p = normalised(registry)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RegistryError::Io { path, source }
        };
        let (root, base) = if p.is_absolute() {
            let allowed = match roots {
                Some(roots) => roots.iter().find(|r| p.starts_with(r)).cloned(),
                None => Some(p.clone()),
            };
            let Some(base) = allowed else {
                return Err(RegistryError::Outside {
                    registry: registry.to_owned(),
                });
            };
            (p.clone(), base)
        } else {
            (workspace.join(&p), workspace.to_path_buf())
        };
        let canonical_base = resolved(&base).map_err(io(&base))?;
        let real = resolved(&root).map_err(io(&root))?;
        if !real.starts_with(&canonical_base) {
            return Err(RegistryError::Symlink {
                registry: registry.to_owned(),
                resolved: real,
                base: canonical_base,
            });
        }
        Ok(Registry {
            root,
            base: canonical_base,
            written: registry.to_owned(),
        })
    }

    /// `REGISTRY/NAME`, for a valid release name that stays inside the registry.
    pub fn release(&self, name: &str) -> Result<PathBuf, RegistryError> {
        check_name(name)?;
        let dir = self.root.join(name);
        let real = resolved(&dir).map_err(|source| RegistryError::Io {
            path: dir.clone(),
            source,
        })?;
        if !real.starts_with(&self.base) {
            return Err(RegistryError::Symlink {
                registry: self.written.clone(),
                resolved: real,
                base: self.base.clone(),
            });
        }
        Ok(dir)
    }

    /// The registry as the workspace-relative text `release.json` records.
    pub fn display_from(&self, workspace: &Path) -> String {
        self.root
            .strip_prefix(workspace)
            .unwrap_or(&self.root)
            .display()
            .to_string()
    }
}

/// The versions of a release folder (`REGISTRY/NAME`), oldest first, with their folders.
pub fn versions(release: &Path) -> Result<Vec<(u32, PathBuf)>, RegistryError> {
    let rd = std::fs::read_dir(release).map_err(|source| RegistryError::Io {
        path: release.to_path_buf(),
        source,
    })?;
    let mut out: Vec<(u32, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The newest version of a release folder, if it has one.
pub fn newest(release: &Path) -> Option<u32> {
    versions(release).ok()?.last().map(|(v, _)| *v)
}

/// The version after the newest (1 for a new release).
pub fn next_version(release: &Path) -> Result<u32, RegistryError> {
    Ok(versions(release)?.last().map_or(1, |(v, _)| v + 1))
}

/// The version of a release that already holds the model `model_hash`.
pub fn find_by_model(release: &Path, model_hash: &str) -> Result<Option<u32>, RegistryError> {
    for (v, dir) in versions(release)? {
        let held = std::fs::read(dir.join("release.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<ReleaseManifest>(&b).ok());
        if held.is_some_and(|r| r.model_hash == model_hash) {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// `release.json`: what a version of a release holds and why it was published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    pub name: String,
    pub version: u32,
    pub model_hash: String,
    #[serde(default)]
    pub report_hash: String,
    /// `REGISTRY/NAME/VERSION`, relative to the workspace when inside it.
    #[serde(default)]
    pub path: String,
    /// The gates the model passed, with their numbers.
    #[serde(default)]
    pub gates: Vec<String>,
    /// The model's metrics from the report (`null` when the report has none).
    #[serde(default)]
    pub metrics: Json,
}

/// One step-run edge of a release's ancestry: `output` was written by `step`
/// (in `output_slot`) from `input` (in its `input_slot`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineageEdge {
    pub output: String,
    pub step: String,
    pub step_run: i64,
    pub run: i64,
    pub output_slot: String,
    pub input_slot: String,
    pub input: String,
}

/// A raw workflow input at the top of a release's ancestry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineageSource {
    pub hash: String,
    pub input: String,
    pub path: String,
}

/// `lineage.json`: the whole ancestry of a release, so it can be explained
/// without the lineage database.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LineageManifest {
    /// The artifacts the ancestry is of (the model, the report).
    pub artifacts: Vec<String>,
    pub edges: Vec<LineageEdge>,
    pub sources: Vec<LineageSource>,
}

impl LineageManifest {
    /// The input in one of `slots` of the step that produced `output` (or its only
    /// input when `slots` is empty).
    pub fn producer_input(&self, output: &str, slots: &[&str]) -> Option<&str> {
        let ins: Vec<&LineageEdge> = self.edges.iter().filter(|e| e.output == output).collect();
        let pick = ins
            .iter()
            .find(|e| slots.contains(&e.input_slot.as_str()))
            .or_else(|| (slots.is_empty() && ins.len() == 1).then(|| &ins[0]))?;
        Some(pick.input.as_str())
    }

    /// The chain of tables from the graph's `interactions` input up to a raw input,
    /// nearest first: (hash, label), the label `STEP.SLOT` for a step's output and
    /// the workspace path for a raw input.
    pub fn table_chain(&self, graph_hash: &str) -> Vec<(String, String)> {
        let mut chain: Vec<(String, String)> = Vec::new();
        let mut cur = self.producer_input(graph_hash, &["interactions"]);
        while let Some(h) = cur {
            if chain.iter().any(|(x, _)| x == h) || chain.len() > 32 {
                break;
            }
            let producer = self.edges.iter().find(|e| e.output == h);
            let label = match producer {
                Some(e) => format!("{}.{}", e.step, e.output_slot),
                None => match self.sources.iter().find(|s| s.hash == h) {
                    Some(s) => s.path.clone(),
                    None => "input".to_owned(),
                },
            };
            chain.push((h.to_owned(), label));
            cur = producer.and_then(|_| {
                self.producer_input(h, &["table", "interactions", "events", "src", "input"])
                    .or_else(|| self.producer_input(h, &[]))
            });
        }
        chain
    }
}

/// Every object hash the JSON files of `REGISTRY/NAME/VERSION/` name
/// (`lineage.json`, `release.json`, …): any 64-hex string value, lower-cased.
/// Keeping a hash that is not an object costs nothing; missing one would break a
/// release. gc keeps these.
pub fn release_hashes(registry: &Path) -> BTreeSet<String> {
    fn collect(v: &Json, out: &mut BTreeSet<String>) {
        match v {
            Json::String(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                out.insert(s.to_ascii_lowercase());
            }
            Json::Array(a) => a.iter().for_each(|x| collect(x, out)),
            Json::Object(m) => m.values().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    let dirs = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for name in dirs(registry) {
        for version in dirs(&name) {
            let Ok(rd) = std::fs::read_dir(&version) else {
                continue;
            };
            for f in rd.flatten().map(|e| e.path()) {
                if f.extension().is_some_and(|x| x == "json")
                    && let Ok(text) = std::fs::read_to_string(&f)
                    && let Ok(v) = serde_json::from_str::<Json>(&text)
                {
                    collect(&v, &mut out);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_stays_inside_the_workspace_or_a_named_root() {
        let none: &[PathBuf] = &[];
        assert!(check_param("registry", none).is_ok());
        assert!(check_param("./models/v1", none).is_ok());
        for bad in ["../x", "registry/../../x", "a/..", "", "."] {
            assert!(check_param(bad, none).is_err(), "{bad}");
        }
        let e = check_param("/tmp/x", none).unwrap_err();
        assert!(matches!(e, RegistryError::Outside { .. }), "{e}");
        assert!(e.help().contains(ROOTS_VAR));
        let roots = [PathBuf::from("/srv/models")];
        assert!(check_param("/srv/models/team", &roots).is_ok());
        assert!(check_param("/srv/models", &roots).is_ok());
        assert!(check_param("/srv/modelsx", &roots).is_err());
        assert!(check_param("/srv/models/../etc", &roots).is_err());
    }

    #[test]
    fn release_names_never_make_a_path() {
        for ok in ["tiny", "gnnr-ecommerce", "a.b_c"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b", "/abs"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_symlink_out_of_the_workspace_is_refused() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.path().join("out")).unwrap();
        let e = Registry::open(ws.path(), "out/registry", None).unwrap_err();
        assert!(matches!(e, RegistryError::Symlink { .. }), "{e}");
        let r = Registry::open(ws.path(), "registry", None).unwrap();
        std::fs::create_dir_all(&r.root).unwrap();
        std::os::unix::fs::symlink(outside.path(), r.root.join("evil")).unwrap();
        assert!(r.release("evil").is_err());
        assert!(r.release("..").is_err());
        assert_eq!(r.release("tiny").unwrap(), ws.path().join("registry/tiny"));
        // An absolute registry needs a root that holds it.
        let abs = outside.path().join("reg");
        let abs = abs.to_str().unwrap();
        assert!(Registry::open(ws.path(), abs, Some(&[])).is_err());
        let roots = [outside.path().to_path_buf()];
        assert!(Registry::open(ws.path(), abs, Some(&roots)).is_ok());
    }

    #[test]
    fn versions_count_up_and_find_a_held_model() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(next_version(d.path()).unwrap(), 1);
        for v in [1, 2, 10] {
            std::fs::create_dir_all(d.path().join(v.to_string())).unwrap();
        }
        std::fs::create_dir_all(d.path().join(".tmp-3-1")).unwrap();
        assert_eq!(next_version(d.path()).unwrap(), 11);
        assert_eq!(newest(d.path()), Some(10));
        let m = ReleaseManifest {
            name: "r".into(),
            version: 2,
            model_hash: "ab".repeat(32),
            report_hash: String::new(),
            path: "registry/r/2".into(),
            gates: vec![],
            metrics: Json::Null,
        };
        std::fs::write(
            d.path().join("2/release.json"),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
        assert_eq!(find_by_model(d.path(), &"ab".repeat(32)).unwrap(), Some(2));
        assert_eq!(find_by_model(d.path(), "cd").unwrap(), None);
    }
}
