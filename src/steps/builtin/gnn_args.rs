//! Reading the params of the model steps (`graph-build`, `train-gnnr`,
//! `evaluate`, `publish`) from the request into typed configs, with errors that
//! name the param and say what is accepted. The same functions serve `validate`
//! (load time, with a place in the workflow) and `run` (in the child).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::ParamIssue;
use crate::steps::plugin::{ParamDecl, ParamType};

pub type Params = BTreeMap<String, Json>;

pub fn issue(param: &str, message: impl Into<String>, help: impl Into<String>) -> ParamIssue {
    ParamIssue {
        param: param.to_owned(),
        message: message.into(),
        help: help.into(),
    }
}

pub fn decl(ty: ParamType, default: Json) -> ParamDecl {
    ParamDecl {
        ty,
        default: Some(default),
    }
}

pub fn f64_of(p: &Params, name: &str, default: f64) -> Result<f64, ParamIssue> {
    match p.get(name) {
        None | Some(Json::Null) => Ok(default),
        Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
            issue(
                name,
                format!("`{name}` must be a number, not {v}"),
                format!("write e.g. `{name}: {default}`"),
            )
        }),
    }
}

pub fn usize_of(p: &Params, name: &str, default: usize) -> Result<usize, ParamIssue> {
    match p.get(name) {
        None | Some(Json::Null) => Ok(default),
        Some(v) => v.as_u64().map(|x| x as usize).ok_or_else(|| {
            issue(
                name,
                format!("`{name}` must be a whole number ≥ 0, not {v}"),
                format!("write e.g. `{name}: {default}`"),
            )
        }),
    }
}

pub fn bool_of(p: &Params, name: &str, default: bool) -> Result<bool, ParamIssue> {
    match p.get(name) {
        None | Some(Json::Null) => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| {
            issue(
                name,
                format!("`{name}` must be true or false, not {v}"),
                format!("write `{name}: {default}`"),
            )
        }),
    }
}

pub fn str_of<'a>(p: &'a Params, name: &str, default: &'a str) -> Result<&'a str, ParamIssue> {
    match p.get(name) {
        None | Some(Json::Null) => Ok(default),
        Some(v) => v.as_str().ok_or_else(|| {
            issue(
                name,
                format!("`{name}` must be text, not {v}"),
                format!("write e.g. `{name}: {default}`"),
            )
        }),
    }
}

/// One of `choices` (its index).
pub fn choice_of(
    p: &Params,
    name: &str,
    choices: &[&str],
    default: &str,
) -> Result<usize, ParamIssue> {
    let s = str_of(p, name, default)?;
    choices.iter().position(|c| *c == s).ok_or_else(|| {
        issue(
            name,
            format!("`{name}: {s}` is not one of {}", choices.join(", ")),
            format!("write e.g. `{name}: {default}`"),
        )
    })
}

/// Checks a map param's keys against the known ones.
pub fn known_keys(map: &Json, param: &str, known: &[&str]) -> Result<(), ParamIssue> {
    if let Json::Object(m) = map {
        for k in m.keys() {
            if !known.contains(&k.as_str()) {
                return Err(issue(
                    param,
                    format!("`{param}` has an unknown key `{k}`"),
                    format!("the keys of `{param}` are: {}", known.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

/// A map param (`{}` when absent).
pub fn map_of(p: &Params, name: &str) -> Result<Params, ParamIssue> {
    match p.get(name) {
        None | Some(Json::Null) => Ok(Params::new()),
        Some(Json::Object(m)) => Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(v) => Err(issue(
            name,
            format!("`{name}` must be a mapping, not {v}"),
            format!("write e.g. `{name}: {{ key: value }}`"),
        )),
    }
}
