//! Phase four: a validated [`Workflow`] bound to what its steps *are*: plugin
//! manifests loaded and hashed, params checked against their declarations and
//! coerced, input slots and output references checked against declared slots,
//! input paths checked to stay inside the workspace.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::key::{KEY_SCHEMA, KeyManifest, KindIngredient};
use crate::diag::{self, Diagnostic, Part, YamlPath};
use crate::spec::{Action, Dag, Ref, Workflow};
use crate::steps::plugin::{OutputSlot, ParamError, SpecSource, StepSpec};

/// A workflow ready to plan and run.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub wf: Workflow,
    pub dag: Dag,
    /// Steps in file order (the same indices as `dag`).
    pub steps: Vec<ResolvedStep>,
    /// Workflow input name → canonical absolute path.
    pub inputs: IndexMap<String, PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ResolvedStep {
    pub name: String,
    pub spec: Arc<StepSpec>,
    pub params: BTreeMap<String, Json>,
    pub inputs: IndexMap<String, Ref>,
    /// Env var names hashed into the key and passed to the step, sorted.
    pub env: Vec<String>,
    /// Env var names passed to the step but never hashed, recorded or logged.
    pub secrets: Vec<String>,
}

impl ResolvedStep {
    /// The kind as stored in lineage: `plugin:NAME` or the built-in kind.
    pub fn kind_label(&self) -> String {
        self.spec.label()
    }

    pub fn kind_ingredient(&self) -> KindIngredient {
        match &self.spec.source {
            SpecSource::Plugin { files, .. } => KindIngredient::Plugin {
                files: files.clone(),
            },
            SpecSource::Builtin { version } => KindIngredient::Builtin {
                name: self.spec.name.clone(),
                version: *version,
            },
        }
    }

    /// The key manifest of this step for the given input content hashes; declared
    /// environment variables are read from this process's environment.
    pub fn manifest(&self, inputs: BTreeMap<String, String>) -> KeyManifest {
        KeyManifest {
            schema: KEY_SCHEMA,
            kind: self.kind_ingredient(),
            params: self.params.clone(),
            inputs,
            env: self
                .env
                .iter()
                .map(|v| (v.clone(), std::env::var(v).ok()))
                .collect(),
        }
    }

    pub fn outputs(&self) -> &IndexMap<String, OutputSlot> {
        &self.spec.outputs
    }
}

pub fn resolve(
    wf: Workflow,
    dag: Dag,
    workspace_root: &std::path::Path,
) -> Result<Resolved, Diagnostic> {
    let src = &wf.source;
    let step_path = |name: &str| YamlPath::root().join("steps").join(name);
    let mut inputs = IndexMap::new();
    let root = workspace_root
        .canonicalize()
        .unwrap_or_else(|_| workspace_root.to_owned());
    for (name, input) in &wf.inputs {
        let at = YamlPath::root().join("inputs").join(name.as_str());
        let canon = input.path.canonicalize().map_err(|e| {
            let looked = crate::spec::validate::display_path(&input.path);
            let d = if e.kind() == std::io::ErrorKind::NotFound {
                Diagnostic::new(format!(
                    "input `{name}`: `{}` does not exist (looked for `{}`)",
                    input.declared,
                    looked.display()
                ))
            } else {
                Diagnostic::new(format!(
                    "input `{name}`: cannot read `{}` (`{}`): {e}",
                    input.declared,
                    looked.display()
                ))
            };
            d.at_path(src, &at, Part::Value).help(
                "the path is relative to the workflow file's folder; check that the file or folder exists",
            )
        })?;
        if !canon.starts_with(&root) {
            return Err(Diagnostic::new(format!("input `{name}` (`{}`) resolves to `{}`, outside the workspace `{}`", input.declared, canon.display(), root.display()))
                .at_path(src, &at, Part::Value)
                .help("keep inputs inside the workspace (copy or link the data into it), so runs are reproducible from the workspace alone"));
        }
        inputs.insert(name.clone(), canon);
    }

    let plugins_dir = workspace_root.join("plugins");
    let mut plugins: HashMap<String, Arc<StepSpec>> = HashMap::new();
    let mut steps = Vec::with_capacity(wf.steps.len());
    for (name, step) in &wf.steps {
        let plugin = match &step.action {
            Action::Builtin(kind) => match crate::steps::builtin::lookup(kind) {
                Some(k) => match plugins.get(&format!("builtin:{kind}")) {
                    Some(spec) => spec.clone(),
                    None => {
                        let spec = k
                            .spec()
                            .map_err(|e| Diagnostic::new(e).in_file(&src.path))?;
                        let spec = Arc::new(spec);
                        plugins.insert(format!("builtin:{kind}"), spec.clone());
                        spec
                    }
                },
                None => {
                    let at = step_path(name).join("uses");
                    let hint = diag::suggest(kind, "built-in kind", crate::steps::builtin::names());
                    let d = Diagnostic::new(format!(
                        "step `{name}` uses `{kind}`, which is not a built-in kind"
                    ))
                    .help(diag::and_then(
                        &hint,
                        "For a plugin, write `plugin: NAME` (a folder in `plugins/`) instead of `uses:`",
                    ));
                    return Err(d.at_path(src, &at, Part::Value));
                }
            },
            Action::Plugin(p) => match plugins.get(p) {
                Some(pl) => pl.clone(),
                None => {
                    let loaded = StepSpec::load_plugin(&plugins_dir, p).map_err(|mut d| {
                        if d.file.is_none() {
                            // The manifest could not be read: point at the step naming it.
                            let span = src.locate(&step_path(name).join("plugin"), Part::Value);
                            d = d.at(src, span);
                            if !plugins_dir.join(p).join("plugin.yaml").exists() {
                                let names = plugin_names(&plugins_dir);
                                let hint =
                                    diag::suggest(p, "plugin", names.iter().map(String::as_str));
                                d = d.help(diag::and_then(
                                    &hint,
                                    "A plugin is a folder `plugins/NAME/` with a `plugin.yaml`",
                                ));
                            }
                        }
                        d
                    })?;
                    let pl = Arc::new(loaded);
                    plugins.insert(p.clone(), pl.clone());
                    pl
                }
            },
        };
        for (slot, _) in &step.inputs {
            if !plugin.inputs.contains_key(slot) {
                let at = step_path(name).join("inputs").join(slot.as_str());
                return Err(Diagnostic::new(format!(
                    "{} has no input slot `{slot}`",
                    plugin.describe()
                ))
                .at_path(src, &at, Part::Key)
                .help(diag::suggest(
                    slot,
                    "input slot",
                    plugin.inputs.keys().map(String::as_str),
                )));
            }
        }
        for (slot, decl) in &plugin.inputs {
            if !decl.optional && !step.inputs.contains_key(slot) {
                // Point at the step's `inputs:` (or the step, when it has none).
                return Err(Diagnostic::new(format!(
                    "step `{name}` does not fill the input slot `{slot}` of {}",
                    plugin.describe()
                ))
                .at_path(src, &step_path(name).join("inputs"), Part::Key)
                .help(format!(
                    "add `{slot}: inputs.NAME` or `{slot}: STEP.OUTPUT` under the step's `inputs:`"
                )));
            }
        }
        let params = plugin.resolve_params(&step.with).map_err(|e| {
            let with = step_path(name).join("with");
            match e {
                ParamError::Unknown { name: k, known } => {
                    Diagnostic::new(format!("{} has no param `{k}`", plugin.describe()))
                        .at_path(src, &with.join(k.as_str()), Part::Key)
                        .help(diag::suggest(&k, "param", known.iter().map(String::as_str)))
                }
                ParamError::Type { name: k, message } => {
                    let ty = plugin
                        .params
                        .get(&k)
                        .map(|d| d.ty.as_str())
                        .unwrap_or("any");
                    Diagnostic::new(format!("param `{k}` of step `{name}`: {message}"))
                        .at_path(src, &with.join(k.as_str()), Part::Value)
                        .help(format!(
                            "{} declares `{k}` with `type: {ty}`; change the value to match",
                            declared_in(&plugin)
                        ))
                }
                // Point at the step's `with:` (or the step, when it has none).
                ParamError::Missing { name: k } => Diagnostic::new(format!(
                    "step `{name}` does not set the required param `{k}` of {}",
                    plugin.describe()
                ))
                .at_path(src, &with, Part::Key)
                .help(format!(
                    "add `{k}: VALUE` under the step's `with:`; {} gives it no default",
                    declared_in(&plugin)
                )),
            }
        })?;
        if let Action::Builtin(kind) = &step.action
            && let Some(k) = crate::steps::builtin::lookup(kind)
            && let Err(issue) = (k.validate)(&params)
        {
            let at = step_path(name).join("with").join(issue.param.as_str());
            return Err(Diagnostic::new(format!(
                "param `{}` of step `{name}` (`{kind}`): {}",
                issue.param, issue.message
            ))
            .at_path(src, &at, Part::Value)
            .help(issue.help));
        }
        let mut env: Vec<String> = plugin.env.iter().chain(step.env.iter()).cloned().collect();
        env.sort();
        env.dedup();
        let mut secrets: Vec<String> = plugin
            .secrets
            .iter()
            .chain(step.secrets.iter())
            .cloned()
            .collect();
        secrets.sort();
        secrets.dedup();
        // A variable a plugin reads as a secret must not be hashed by a workflow `env:`.
        env.retain(|v| !secrets.contains(v));
        steps.push(ResolvedStep {
            name: name.clone(),
            spec: plugin,
            params,
            inputs: step.inputs.clone(),
            env,
            secrets,
        });
    }
    // Output references name a declared output of their producer.
    for (name, step) in &wf.steps {
        for (slot, r) in &step.inputs {
            if let Ref::Output {
                step: producer,
                output,
            } = r
            {
                let idx = wf.steps.get_index_of(producer).unwrap_or(0);
                let outs = steps[idx].outputs();
                if !outs.contains_key(output) {
                    let at = step_path(name).join("inputs").join(slot.as_str());
                    return Err(Diagnostic::new(format!(
                        "step `{producer}` has no output `{output}`"
                    ))
                    .at_path(src, &at, Part::Value)
                    .help(diag::suggest(
                        output,
                        "output",
                        outs.keys().map(String::as_str),
                    )));
                }
            }
        }
    }
    Ok(Resolved {
        wf,
        dag,
        steps,
        inputs,
    })
}

/// Where a kind's params are declared, for messages.
fn declared_in(spec: &StepSpec) -> String {
    match spec.source {
        SpecSource::Plugin { .. } => format!("`plugins/{}/plugin.yaml`", spec.name),
        SpecSource::Builtin { .. } => format!("the built-in kind `{}`", spec.name),
    }
}

fn plugin_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().join("plugin.yaml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
