//! The step protocol every step kind speaks, plugins and built-ins alike: a JSON
//! request file (`$PEDIGREE_REQUEST`) in, declared output paths, `metrics.json` and
//! `facets.json` out (in the working directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Debug, Clone, Serialize, Deserialize)]
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
            std::fs::write(dir.join("metrics.json"), serde_json::to_vec(&self.metrics)?)?;
        }
        if !self.facets.is_empty() {
            std::fs::write(dir.join("facets.json"), serde_json::to_vec(&self.facets)?)?;
        }
        Ok(())
    }
}
