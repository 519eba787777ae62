//! The step protocol every step kind speaks, plugins and built-ins alike, and the
//! only definition of both of its ends:
//!
//! - **request**: the JSON file at `$PEDIGREE_REQUEST` ([`Request`]), written by
//!   the orchestrator ([`Request::to_bytes`]) and read by the step ([`Request::read`]);
//! - **environment**: the variable names the orchestrator sets ([`INPUT_PREFIX`],
//!   [`OUTPUT_PREFIX`], [`PARAM_PREFIX`] + [`env_suffix`], and the fixed names);
//! - **response**: `metrics.json` and `facets.json` in the step's working folder,
//!   written by [`Response::write`] and read back by [`read_metrics`] and
//!   [`read_facets`] (which accept every shape a plugin may write);
//! - **progress**: stderr lines starting with [`PROGRESS_PREFIX`], written with
//!   [`Progress::line`] and parsed with [`Progress::parse`].
//!
//! A field added to [`Request`] is therefore sent by the orchestrator as soon as it
//! compiles: there is no second, hand-built copy of the request to forget.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// `PEDIGREE_INPUT_SLOT`: the path of input slot `slot` ([`env_suffix`]).
pub const INPUT_PREFIX: &str = "PEDIGREE_INPUT_";
/// `PEDIGREE_OUTPUT_SLOT`: where the step writes output slot `slot`.
pub const OUTPUT_PREFIX: &str = "PEDIGREE_OUTPUT_";
/// `PEDIGREE_PARAM_KEY`: a param's value (strings as they are, the rest as JSON).
pub const PARAM_PREFIX: &str = "PEDIGREE_PARAM_";
/// The path of the request file.
pub const REQUEST_VAR: &str = "PEDIGREE_REQUEST";
/// The folder of the plugin's manifest (empty for a built-in kind).
pub const PLUGIN_DIR_VAR: &str = "PEDIGREE_PLUGIN_DIR";
/// The step's name in the workflow.
pub const STEP_VAR: &str = "PEDIGREE_STEP";
/// The response files, in the step's working folder.
pub const METRICS_FILE: &str = "metrics.json";
pub const FACETS_FILE: &str = "facets.json";

/// A slot or param name as it appears in a variable name: ASCII letters and digits
/// upper-cased, everything else `_`.
pub fn env_suffix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `PEDIGREE_INPUT_SLOT` for `slot`.
pub fn input_var(slot: &str) -> String {
    format!("{INPUT_PREFIX}{}", env_suffix(slot))
}

/// `PEDIGREE_OUTPUT_SLOT` for `slot`.
pub fn output_var(slot: &str) -> String {
    format!("{OUTPUT_PREFIX}{}", env_suffix(slot))
}

/// `PEDIGREE_PARAM_KEY` for `key`.
pub fn param_var(key: &str) -> String {
    format!("{PARAM_PREFIX}{}", env_suffix(key))
}

/// A param's value in its environment variable: a string as it is, anything else
/// as its JSON text.
pub fn param_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub step: String,
    pub inputs: BTreeMap<String, PathBuf>,
    pub outputs: BTreeMap<String, PathBuf>,
    pub params: BTreeMap<String, Json>,
    pub scratch: PathBuf,
    /// The workspace root (steps that write outside the store, like `publish`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
    /// The run this step belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// The content hash of each input (its name in the store and in lineage).
    #[serde(default)]
    pub input_hashes: BTreeMap<String, String>,
}

impl Request {
    pub fn read(path: &Path) -> Result<Request, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the request `{}`: {e}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("the request `{}` is invalid: {e}", path.display()))
    }

    /// The bytes of the request file: pretty JSON, with the key order of a
    /// `serde_json::Value` (the order plugins have always been given).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(&serde_json::to_value(self)?)
    }

    /// The path of a declared input slot (present for every non-optional slot).
    pub fn input(&self, slot: &str) -> Result<&Path, String> {
        self.inputs
            .get(slot)
            .map(PathBuf::as_path)
            .ok_or_else(|| format!("input `{slot}` was not given"))
    }

    pub fn output(&self, slot: &str) -> Result<&Path, String> {
        self.outputs
            .get(slot)
            .map(PathBuf::as_path)
            .ok_or_else(|| format!("output `{slot}` was not given"))
    }
}

/// One metric value; `step` orders a series (an epoch, an iteration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub key: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
}

/// What a step reports besides its outputs.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub metrics: Vec<MetricPoint>,
    pub facets: BTreeMap<String, Json>,
}

impl Response {
    /// Write `metrics.json` and `facets.json` into `dir` (the step's working directory).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        if !self.metrics.is_empty() {
            std::fs::write(dir.join(METRICS_FILE), serde_json::to_vec(&self.metrics)?)?;
        }
        if !self.facets.is_empty() {
            std::fs::write(dir.join(FACETS_FILE), serde_json::to_vec(&self.facets)?)?;
        }
        Ok(())
    }
}

/// A response file a step wrote that the orchestrator cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file} written by the plugin is invalid: {reason}")]
pub struct ResponseError {
    pub file: &'static str,
    pub reason: String,
}

/// `metrics.json`: `{"name": number}` or `[{"key", "value", "step"?}]`; none
/// when the step wrote no such file.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricPoint>, ResponseError> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(Vec::new());
    };
    let bad = |reason: String| ResponseError {
        file: METRICS_FILE,
        reason,
    };
    let v: Json = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    match v {
        Json::Object(m) => {
            for (k, v) in m {
                let value = v
                    .as_f64()
                    .ok_or_else(|| bad(format!("`{k}` is not a number")))?;
                out.push(MetricPoint {
                    key: k,
                    value,
                    step: None,
                });
            }
        }
        Json::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let key = item
                    .get("key")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad(format!("item {i} has no string `key`")))?;
                let value = item
                    .get("value")
                    .and_then(Json::as_f64)
                    .ok_or_else(|| bad(format!("item {i} has no numeric `value`")))?;
                let step = match item.get("step") {
                    None | Some(Json::Null) => None,
                    Some(s) => Some(s.as_i64().ok_or_else(|| {
                        bad(format!("item {i} has a `step` that is not an integer"))
                    })?),
                };
                out.push(MetricPoint {
                    key: key.to_owned(),
                    value,
                    step,
                });
            }
        }
        _ => return Err(bad("expected an object or a list".into())),
    }
    Ok(out)
}

/// `facets.json`: `{"name": any JSON}`, as (name, JSON text) in the file's order;
/// none when the step wrote no such file.
pub fn read_facets(path: &Path) -> Result<Vec<(String, String)>, ResponseError> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(Vec::new());
    };
    let bad = |reason: String| ResponseError {
        file: FACETS_FILE,
        reason,
    };
    let v: Json = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let Json::Object(m) = v else {
        return Err(bad("expected an object of named facets".into()));
    };
    Ok(m.into_iter().map(|(k, v)| (k, v.to_string())).collect())
}

/// A step reports progress by writing `pedigree:progress DONE/TOTAL TEXT` as one
/// line on stderr, e.g. `pedigree:progress 12/100 loss 0.3412`.
pub const PROGRESS_PREFIX: &str = "pedigree:progress ";

/// One progress report of a running step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub text: String,
}

impl Progress {
    /// Parses the rest of a progress line (after [`PROGRESS_PREFIX`]),
    /// `DONE/TOTAL TEXT`; `None` when it does not start with two counts. Control
    /// characters in the text (escape sequences, carriage returns) become spaces:
    /// the text is drawn on the user's terminal.
    pub fn parse(rest: &str) -> Option<Progress> {
        let (counts, text) = rest.split_once(' ').unwrap_or((rest, ""));
        let (done, total) = counts.split_once('/')?;
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Some(Progress {
            done: done.parse().ok()?,
            total: total.parse().ok()?,
            text: text.trim().to_owned(),
        })
    }

    /// The whole stderr line (without its newline) a step writes to report
    /// `done` of `total`, with `text` after the counts.
    pub fn line(done: u64, total: u64, text: &str) -> String {
        if text.is_empty() {
            format!("{PROGRESS_PREFIX}{done}/{total}")
        } else {
            format!("{PROGRESS_PREFIX}{done}/{total} {text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_round_trip() {
        let line = Progress::line(3, 40, "loss 0.5");
        assert_eq!(line, "pedigree:progress 3/40 loss 0.5");
        let rest = line.strip_prefix(PROGRESS_PREFIX).unwrap();
        assert_eq!(
            Progress::parse(rest),
            Some(Progress {
                done: 3,
                total: 40,
                text: "loss 0.5".into()
            })
        );
        assert_eq!(Progress::parse("3 of 40"), None);
        assert_eq!(Progress::parse("1/2 a\x1b[2Jb").unwrap().text, "a [2Jb");
    }

    #[test]
    fn metrics_accept_both_shapes_and_name_the_bad_item() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(METRICS_FILE);
        assert_eq!(read_metrics(&p).unwrap(), Vec::new(), "no file, no metrics");
        std::fs::write(&p, r#"{"loss": 0.5}"#).unwrap();
        assert_eq!(
            read_metrics(&p).unwrap(),
            [MetricPoint {
                key: "loss".into(),
                value: 0.5,
                step: None
            }]
        );
        std::fs::write(&p, r#"[{"key": "loss", "value": 1, "step": 2}]"#).unwrap();
        assert_eq!(read_metrics(&p).unwrap()[0].step, Some(2));
        std::fs::write(&p, r#"[{"key": "loss"}]"#).unwrap();
        assert_eq!(
            read_metrics(&p).unwrap_err().to_string(),
            "metrics.json written by the plugin is invalid: item 0 has no numeric `value`"
        );
        let f = dir.path().join(FACETS_FILE);
        std::fs::write(&f, "[1]").unwrap();
        assert!(read_facets(&f).is_err());
        std::fs::write(&f, r#"{"rows": {"in": 1}}"#).unwrap();
        assert_eq!(
            read_facets(&f).unwrap(),
            [("rows".to_owned(), r#"{"in":1}"#.to_owned())]
        );
    }

    #[test]
    fn the_request_file_is_what_plugins_have_always_read() {
        let req = Request {
            step: "s".into(),
            inputs: BTreeMap::from([("src".into(), PathBuf::from("/w/in/a.csv"))]),
            outputs: BTreeMap::from([("out".into(), PathBuf::from("/w/out/b.csv"))]),
            params: BTreeMap::from([("k".into(), Json::from(3))]),
            scratch: PathBuf::from("/w/work"),
            workspace: Some(PathBuf::from("/ws")),
            run_id: Some(7),
            input_hashes: BTreeMap::from([("src".into(), "ab".into())]),
        };
        // The request the orchestrator wrote before this type was used on its side.
        let before = serde_json::json!({
            "step": "s",
            "inputs": {"src": "/w/in/a.csv"},
            "outputs": {"out": "/w/out/b.csv"},
            "params": {"k": 3},
            "scratch": "/w/work",
            "workspace": "/ws",
            "run_id": 7,
            "input_hashes": {"src": "ab"},
        });
        assert_eq!(
            req.to_bytes().unwrap(),
            serde_json::to_vec_pretty(&before).unwrap()
        );
        assert_eq!(
            serde_json::from_slice::<Request>(&req.to_bytes().unwrap()).unwrap(),
            req
        );
    }
}
