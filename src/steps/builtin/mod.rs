//! Built-in step kinds. Each is a [`Kind`]: its slots, typed params, an
//! implementation version (bumped when its semantics change, which changes every
//! key that uses it) and a `run` function.
//!
//! A built-in step runs as a child process of pedigree itself
//! (`pedigree __builtin KIND`), speaking the same request protocol as plugins. So
//! built-ins and plugins share one execution path: process group, timeout,
//! cancellation, captured log, output checks. A crash in a step cannot take the
//! orchestrator down, and a step can be killed without leaving the orchestrator's
//! memory in an unknown state.

pub mod clean;
mod common;
pub mod dedupe;
mod evaluate;
mod gnn_args;
mod graph_build;
pub mod impute;
mod publish;
mod train_gnnr;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::plugin::{InputSlot, OutputSlot, ParamDecl, SpecSource, StepSpec};
use super::protocol::{Request, Response};

/// An output slot of a built-in kind.
pub struct Output {
    pub slot: &'static str,
    pub file: &'static str,
    pub kind: &'static str,
    pub media_type: &'static str,
    pub dir: bool,
}

/// A param that is well-typed but not acceptable, found before anything runs.
#[derive(Debug)]
pub struct ParamIssue {
    pub param: String,
    pub message: String,
    pub help: String,
}

/// One built-in step kind.
pub struct Kind {
    pub name: &'static str,
    /// Part of every step key: bump it whenever the kind can write different bytes
    /// for the same inputs and params (a new default is caught by the params, a new
    /// way of computing is not), or a cached output would be a false hit.
    pub version: u32,
    pub description: &'static str,
    /// (slot, optional)
    pub inputs: &'static [(&'static str, bool)],
    pub outputs: &'static [Output],
    pub params: fn() -> Vec<(&'static str, ParamDecl)>,
    /// Checks beyond the declared types, so bad params fail at load time with a place.
    pub validate: fn(&BTreeMap<String, Json>) -> Result<(), ParamIssue>,
    /// Runs in the child process.
    pub run: fn(&Request) -> Result<Response, String>,
    pub timeout: Duration,
}

/// Every built-in kind this build provides.
static KINDS: &[&Kind] = &[
    &clean::KIND,
    &dedupe::KIND,
    &impute::KIND,
    &graph_build::KIND,
    &train_gnnr::KIND,
    &evaluate::KIND,
    &publish::KIND,
];

pub fn lookup(name: &str) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|k| k.name == name)
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
        })
    }
}

/// Entry point of `pedigree __builtin KIND` (the child process).
pub fn main(kind: &str) -> ExitCode {
    let Some(k) = lookup(kind) else {
        eprintln!("error: no built-in step kind `{kind}`");
        return ExitCode::from(2);
    };
    let result = std::env::var_os("PEDIGREE_REQUEST")
        .ok_or_else(|| {
            "PEDIGREE_REQUEST is not set; built-in steps are run by `pedigree run`".to_owned()
        })
        .and_then(|p| Request::read(std::path::Path::new(&p)))
        .and_then(|req| (k.run)(&req))
        .and_then(|resp| {
            resp.write(&std::env::current_dir().unwrap_or_default())
                .map_err(|e| format!("cannot write metrics or facets: {e}"))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
