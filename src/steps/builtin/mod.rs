//! Built-in step kinds. Each kind implements [`Builtin`]: its slots, its typed
//! params (a serde struct whose `Default` is the one place its defaults are written),
//! the cross-field checks serde cannot express, an implementation version (bumped
//! when its output bytes change, which changes every key that uses it) and `run`.
//! [`kind`] turns a `Builtin` into the [`Kind`] table entry the engine sees: the
//! declared params, load-time validation and the child's entry point all come from
//! that one description, so the params a step key hashes, the params validation
//! accepts and the params `run` reads cannot drift apart.
//!
//! A built-in step runs as a child process of pedigree itself
//! (`pedigree __builtin KIND`), speaking the same request protocol as plugins. So
//! built-ins and plugins share one execution path: process group, timeout,
//! cancellation, captured log, output checks. A crash in a step cannot take the
//! orchestrator down, and a step can be killed without leaving the orchestrator's
//! memory in an unknown state.
//!
//! Every built-in kind is deterministic: the same inputs and params give the same
//! output bytes (timings are metrics, never artifact content), which
//! `tests/it/builtin_versions.rs` pins together with each kind's version.

pub mod clean;
mod common;
pub mod dedupe;
mod evaluate;
mod graph_build;
pub mod impute;
mod publish;
mod train_gnnr;

use std::collections::BTreeMap;
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::plugin::{InputSlot, OutputSlot, ParamDecl, ParamType, SpecSource, StepSpec};
use super::protocol::{Request, Response};

/// An output slot of a built-in kind.
pub struct Output {
    pub slot: &'static str,
    pub file: &'static str,
    pub kind: &'static str,
    pub media_type: &'static str,
    pub dir: bool,
}

impl Output {
    /// A Parquet table written to `file`: the output of every data step.
    pub const fn table(slot: &'static str, file: &'static str) -> Output {
        Output {
            slot,
            file,
            kind: "table",
            media_type: crate::table::PARQUET_MEDIA_TYPE,
            dir: false,
        }
    }
}

/// A param that is well-typed but not acceptable, found before anything runs.
#[derive(Debug)]
pub struct ParamIssue {
    pub param: String,
    pub message: String,
    pub help: String,
}

pub fn issue(param: &str, message: impl Into<String>, help: impl Into<String>) -> ParamIssue {
    ParamIssue {
        param: param.to_owned(),
        message: message.into(),
        help: help.into(),
    }
}

/// Why a built-in step failed: what happened, and what to do about it. The child
/// prints it as a [`crate::diag::Diagnostic`] (`error: …` then `  = help: …`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepError {
    pub message: String,
    pub help: Option<String>,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> StepError {
        self.help = Some(help.into());
        self
    }

    /// Prefix the message with where it happened (`cannot write the report: …`).
    pub fn context(mut self, what: impl fmt::Display) -> StepError {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The diagnostic the child prints.
    pub fn diagnostic(&self) -> crate::diag::Diagnostic {
        let d = crate::diag::Diagnostic::new(self.message.clone());
        match &self.help {
            Some(h) => d.help(h.clone()),
            None => d,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\n  = help: {h}")?;
        }
        Ok(())
    }
}

impl From<String> for StepError {
    fn from(message: String) -> StepError {
        StepError::new(message)
    }
}

impl From<&str> for StepError {
    fn from(message: &str) -> StepError {
        StepError::new(message)
    }
}

impl From<ParamIssue> for StepError {
    fn from(i: ParamIssue) -> StepError {
        StepError::new(format!("param `{}`: {}", i.param, i.message)).help(i.help)
    }
}

impl From<crate::table::TableError> for StepError {
    fn from(e: crate::table::TableError) -> StepError {
        let help = e.help();
        StepError {
            message: e.to_string(),
            help,
        }
    }
}

/// One declared param of a built-in kind: its name, its type as the workflow sees
/// it, and the help shown when its value is refused. Its default is not here: it
/// comes from the kind's `Params::default()`.
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub help: &'static str,
}

pub const fn param(name: &'static str, ty: ParamType, help: &'static str) -> Param {
    Param { name, ty, help }
}

/// What every built-in kind is: mini-redis's "parse into a typed value, then apply
/// it" shape. `Params` is deserialised once from the resolved params (declared
/// defaults filled in) with `#[serde(default, deny_unknown_fields)]`; a field the
/// kind must be given (no default) is `#[serde(skip_serializing)]`, so it has no
/// entry in the serialised default.
pub trait Builtin {
    const NAME: &'static str;
    /// Part of every step key: bump it whenever the kind can write different bytes
    /// for the same inputs and params (a new default is caught by the params, a new
    /// way of computing is not), or a cached output would be a false hit.
    const VERSION: u32;
    const DESCRIPTION: &'static str;
    const TIMEOUT: Duration = Duration::from_secs(3600);
    /// The kind's effect goes beyond its outputs into the running workspace (its
    /// registry, its lineage), so a result of another workspace is no substitute
    /// for running it: never fetched from a remote cache nor offered to one.
    const WORKSPACE_EFFECT: bool = false;
    /// (slot, optional)
    const INPUTS: &'static [(&'static str, bool)];
    const OUTPUTS: &'static [Output];
    /// The declared params, in the order they are listed to users.
    const PARAMS: &'static [Param];
    type Params: DeserializeOwned + Serialize + Default;

    /// Rules across fields, or on values serde accepts but the kind cannot use.
    fn check(_p: &Self::Params) -> Result<(), ParamIssue> {
        Ok(())
    }

    /// Checks that need the orchestrator's environment, run only when the workflow
    /// is validated: a step's child process never sees that environment (only
    /// `PATH` and what the step declares), so it cannot repeat them.
    fn check_workflow(_p: &Self::Params) -> Result<(), ParamIssue> {
        Ok(())
    }

    /// Runs in the child process.
    fn run(p: Self::Params, req: &Request) -> Result<Response, StepError>;
}

/// One built-in step kind, as the engine sees it.
pub struct Kind {
    pub name: &'static str,
    /// See [`Builtin::VERSION`].
    pub version: u32,
    pub description: &'static str,
    /// (slot, optional)
    pub inputs: &'static [(&'static str, bool)],
    pub outputs: &'static [Output],
    pub params: fn() -> Vec<(&'static str, ParamDecl)>,
    /// Checks beyond the declared types, so bad params fail at load time with a place
    /// (in the orchestrator: [`Builtin::check`] and [`Builtin::check_workflow`]).
    pub validate: fn(&BTreeMap<String, Json>) -> Result<(), ParamIssue>,
    /// Runs in the child process.
    pub run: fn(&Request) -> Result<Response, StepError>,
    pub timeout: Duration,
    /// See [`Builtin::WORKSPACE_EFFECT`].
    pub workspace_effect: bool,
}

/// The table entry of a built-in kind: everything derived from its [`Builtin`] impl.
pub const fn kind<B: Builtin>() -> Kind {
    Kind {
        name: B::NAME,
        version: B::VERSION,
        description: B::DESCRIPTION,
        inputs: B::INPUTS,
        outputs: B::OUTPUTS,
        params: declared::<B>,
        validate: validate::<B>,
        run: run::<B>,
        timeout: B::TIMEOUT,
        workspace_effect: B::WORKSPACE_EFFECT,
    }
}

/// The serialised `Params::default()`: the default of every param that has one.
fn defaults<B: Builtin>() -> serde_json::Map<String, Json> {
    match serde_json::to_value(B::Params::default()) {
        Ok(Json::Object(m)) => m,
        // A kind's params are a struct; anything else is a bug caught by the tests.
        _ => serde_json::Map::new(),
    }
}

fn declared<B: Builtin>() -> Vec<(&'static str, ParamDecl)> {
    let d = defaults::<B>();
    B::PARAMS
        .iter()
        .map(|p| {
            let default = d.get(p.name).filter(|v| !v.is_null()).cloned();
            (p.name, ParamDecl { ty: p.ty, default })
        })
        .collect()
}

/// The typed params of a resolved param map. On failure the issue names the param
/// at fault: each param is tried alone (the others at their defaults), and the
/// first that does not deserialise is the one reported, with serde's message and
/// the param's help.
fn parse<B: Builtin>(p: &BTreeMap<String, Json>) -> Result<B::Params, ParamIssue> {
    let whole = |m: serde_json::Map<String, Json>| serde_json::from_value::<B::Params>(m.into());
    let given: serde_json::Map<String, Json> =
        p.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let e = match whole(given.clone()) {
        Ok(params) => return Ok(params),
        Err(e) => e,
    };
    let d = defaults::<B>();
    // Params without a default first: they keep their given value while another param
    // is tried, so they must be known good by then.
    let order = B::PARAMS
        .iter()
        .filter(|p| !d.contains_key(p.name))
        .chain(B::PARAMS.iter().filter(|p| d.contains_key(p.name)));
    for decl in order {
        if !given.contains_key(decl.name) {
            continue;
        }
        let mut alone = given.clone();
        for (k, x) in alone.iter_mut() {
            if k != decl.name
                && let Some(dv) = d.get(k)
            {
                *x = dv.clone();
            }
        }
        if let Err(e) = whole(alone) {
            return Err(issue(decl.name, e.to_string(), decl.help));
        }
    }
    let first = B::PARAMS.first().map_or("", |d| d.name);
    Err(issue(
        first,
        e.to_string(),
        format!(
            "check the params against the documentation of `{}`",
            B::NAME
        ),
    ))
}

fn validate<B: Builtin>(p: &BTreeMap<String, Json>) -> Result<(), ParamIssue> {
    let params = parse::<B>(p)?;
    B::check(&params)?;
    B::check_workflow(&params)
}

fn run<B: Builtin>(req: &Request) -> Result<Response, StepError> {
    let p = parse::<B>(&req.params)?;
    B::check(&p)?;
    B::run(p, req)
}

/// The typed params of kind `B` for `with` (its declared defaults filled in),
/// validated as a workflow would be: for unit tests of the kinds.
#[cfg(test)]
pub fn params_of<B: Builtin>(with: Json) -> Result<B::Params, ParamIssue> {
    let mut p: BTreeMap<String, Json> = defaults::<B>().into_iter().collect();
    if let Json::Object(m) = with {
        p.extend(m);
    }
    let params = parse::<B>(&p)?;
    B::check(&params)?;
    Ok(params)
}

/// Every built-in kind this build provides.
static KINDS: &[Kind] = &[
    kind::<clean::Clean>(),
    kind::<dedupe::Dedupe>(),
    kind::<impute::Impute>(),
    kind::<graph_build::GraphBuild>(),
    kind::<train_gnnr::TrainGnnr>(),
    kind::<evaluate::Evaluate>(),
    kind::<publish::Publish>(),
];

pub fn lookup(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    KINDS.iter().map(|k| k.name)
}

impl Kind {
    /// The spec the engine runs: this binary, as `__builtin NAME`.
    pub fn spec(&self) -> Result<StepSpec, String> {
        let exe = std::env::current_exe().map_err(|e| {
            format!("cannot find the pedigree executable to run built-in steps: {e}")
        })?;
        Ok(StepSpec {
            name: self.name.to_owned(),
            source: SpecSource::Builtin {
                version: self.version,
            },
            description: Some(self.description.to_owned()),
            command: vec![
                exe.to_string_lossy().into_owned(),
                "__builtin".into(),
                self.name.into(),
            ],
            inputs: self
                .inputs
                .iter()
                .map(|(s, optional)| {
                    (
                        (*s).to_owned(),
                        InputSlot {
                            optional: *optional,
                        },
                    )
                })
                .collect(),
            outputs: self
                .outputs
                .iter()
                .map(|o| {
                    let slot = OutputSlot {
                        file: o.file.into(),
                        dir: o.dir,
                        kind: o.kind.into(),
                        media_type: o.media_type.into(),
                    };
                    (o.slot.to_owned(), slot)
                })
                .collect::<IndexMap<_, _>>(),
            params: (self.params)()
                .into_iter()
                .map(|(k, d)| (k.to_owned(), d))
                .collect(),
            env: Vec::new(),
            secrets: Vec::new(),
            // Built-ins are pedigree's own code; `publish` writes to `registry/`.
            sandbox: false,
            read: Vec::new(),
            timeout: self.timeout,
            shareable: !self.workspace_effect,
        })
    }
}

/// Entry point of `pedigree __builtin KIND` (the child process).
pub fn main(kind: &str) -> ExitCode {
    let Some(k) = lookup(kind) else {
        eprint!(
            "{}",
            StepError::new(format!("no built-in step kind `{kind}`")).diagnostic()
        );
        return ExitCode::from(2);
    };
    match child(k) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", e.diagnostic());
            ExitCode::from(1)
        }
    }
}

fn child(k: &Kind) -> Result<(), StepError> {
    let path = std::env::var_os("PEDIGREE_REQUEST").ok_or_else(|| {
        StepError::new("PEDIGREE_REQUEST is not set")
            .help("built-in steps are run by `pedigree run`")
    })?;
    let req = Request::read(std::path::Path::new(&path))?;
    let resp = (k.run)(&req)?;
    let dir =
        std::env::current_dir().map_err(|e| format!("cannot find the working directory: {e}"))?;
    resp.write(&dir)
        .map_err(|e| StepError::new(format!("cannot write metrics or facets: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every declared param is a field of the kind's `Params`, and every field with a
    /// default is declared: a field missing from either side would be a param the key
    /// never sees or one `run` never reads.
    #[test]
    fn declared_params_are_the_params_struct() {
        for k in KINDS {
            let declared: Vec<&str> = (k.params)().iter().map(|(n, _)| *n).collect();
            let mut sorted = declared.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), declared.len(), "{}: a param twice", k.name);
            // The resolved params (defaults + required ones) must deserialise and validate.
            let mut p: BTreeMap<String, Json> = (k.params)()
                .into_iter()
                .filter_map(|(n, d)| d.default.map(|v| (n.to_owned(), v)))
                .collect();
            match k.name {
                "impute" => {
                    p.insert("columns".into(), serde_json::json!({"x": "median"}));
                }
                "publish" => {
                    p.insert("name".into(), serde_json::json!("r"));
                }
                _ => {}
            }
            (k.validate)(&p).unwrap_or_else(|e| panic!("{}: {e:?}", k.name));
        }
    }

    /// The declared params of every kind, names, types and defaults: these are in
    /// every step key, so they must never move by accident.
    #[test]
    fn declared_params_are_pinned() {
        let mut out = String::new();
        for k in KINDS {
            for (n, d) in (k.params)() {
                let default = d.default.map_or("(required)".to_owned(), |v| v.to_string());
                out.push_str(&format!("{} {n} {} {default}\n", k.name, d.ty.as_str()));
            }
        }
        let want = "\
clean read map {}
clean required list []
clean trim bool true
clean lowercase list []
clean types map {}
clean allowed map {}
clean ranges map {}
clean outliers map {}
dedupe read map {}
dedupe exact bool true
dedupe key list []
dedupe keep string \"first\"
dedupe window map {}
impute read map {}
impute side_read map {}
impute columns map (required)
graph-build weights map {}
graph-build split map {}
graph-build unseen string \"keep\"
graph-build columns map {}
train-gnnr dim int 64
train-gnnr layers int 3
train-gnnr attention string \"cosine\"
train-gnnr theta float -0.25
train-gnnr learn_theta bool false
train-gnnr attention_refresh string \"epoch\"
train-gnnr activation string \"none\"
train-gnnr bias bool false
train-gnnr epochs int 300
train-gnnr batch int 2048
train-gnnr max_batches int 64
train-gnnr valid_users int 5000
train-gnnr lr float 0.01
train-gnnr reg float 0.001
train-gnnr seed int 2020
train-gnnr patience int 30
train-gnnr metric string \"ndcg@20\"
train-gnnr edge_weights bool true
train-gnnr category_weight float 1.0
train-gnnr threads int 0
evaluate k list [10,20]
evaluate baselines list [\"popularity\",\"item-knn\",\"bpr-mf\"]
evaluate split string \"test\"
evaluate knn_k int 50
evaluate bpr_mf map {}
publish name string (required)
publish gate map {}
publish registry string \"registry\"
";
        assert_eq!(out, want);
    }

    /// A value serde refuses is reported on its own param, not on the first one
    /// (`clean` and `dedupe` used to blame `read:` for any of theirs).
    #[test]
    fn a_refused_value_is_pinned_on_its_param() {
        use serde_json::json;
        let e = params_of::<clean::Clean>(json!({"outliers": {"column": 3}})).unwrap_err();
        assert_eq!(e.param, "outliers", "{e:?}");
        assert!(e.help.contains("max_rows"), "{}", e.help);
        let e = params_of::<dedupe::Dedupe>(json!({"window": {"colum": "ts"}})).unwrap_err();
        assert_eq!(e.param, "window", "{e:?}");
        assert!(e.message.contains("unknown field `colum`"), "{}", e.message);
        // A required param that is wrong is found even though it has no default.
        let e = params_of::<impute::Impute>(json!({"columns": {"x": "mediun"}})).unwrap_err();
        assert_eq!(e.param, "columns", "{e:?}");
        let e = params_of::<impute::Impute>(
            json!({"columns": {"x": "median"}, "side_read": {"header": "yes"}}),
        )
        .unwrap_err();
        assert_eq!(e.param, "side_read", "{e:?}");
    }

    #[test]
    fn a_step_error_prints_like_a_diagnostic() {
        let e = StepError::new("the model does not pass its gates").help("lower the gate");
        assert_eq!(
            e.diagnostic().to_string(),
            "error: the model does not pass its gates\n  = help: lower the gate\n"
        );
    }
}
