//! `pedigree status`, `pedigree why` and `run --dry-run`: what a run would do now,
//! computed without running anything or recording a run.

use std::collections::BTreeMap;

use serde::Serialize;

use super::hashing;
use super::key::{Change, KeyManifest};
use super::resolve::Resolved;
use super::run::RunError;
use crate::spec::Ref;
use crate::store::Check;
use crate::workspace::Workspace;

#[derive(Debug, Clone, Serialize)]
pub struct StepState {
    pub name: String,
    /// `fresh` (cached result usable) or `stale` (would run).
    pub state: &'static str,
    /// Known when every input is known (no upstream step is stale).
    pub key: Option<String>,
    pub reason: String,
    /// Ingredient changes against the last run of this step, when computable.
    pub changes: Vec<Change>,
    #[serde(skip)]
    pub manifest: Option<KeyManifest>,
}

/// The state of every step, in DAG order.
/// `with_changes` also diffs fresh steps against their last run (for `why`).
pub async fn status(
    ws: &Workspace,
    resolved: &Resolved,
    with_changes: bool,
) -> Result<Vec<StepState>, RunError> {
    let db = &ws.db;
    let mut raw = BTreeMap::new();
    let mut stat = hashing::StatCache::load(db).await?;
    for (name, path) in &resolved.inputs {
        let h = stat
            .hash_path(path)
            .await
            .map_err(|source| RunError::Input {
                name: name.clone(),
                source,
            })?;
        raw.insert(name.clone(), h.hash);
    }
    stat.flush(db).await?;
    let n = resolved.steps.len();
    let mut outputs: Vec<Option<BTreeMap<String, String>>> = vec![None; n];
    let mut stale_reason: Vec<Option<String>> = vec![None; n];
    let mut out = Vec::with_capacity(n);
    for &i in &resolved.dag.order {
        let step = &resolved.steps[i];
        let mut inputs = BTreeMap::new();
        let mut blocked = None;
        for (slot, r) in &step.inputs {
            match r {
                Ref::Input(name) => {
                    inputs.insert(slot.clone(), raw[name].clone());
                }
                Ref::Output { step: up, output } => {
                    let j = resolved.dag.index(up).unwrap_or(0);
                    match outputs[j].as_ref().and_then(|o| o.get(output)) {
                        Some(h) => {
                            inputs.insert(slot.clone(), h.clone());
                        }
                        None => blocked = Some(up.clone()),
                    }
                }
            }
        }
        if let Some(up) = blocked {
            let j = resolved.dag.index(&up).unwrap_or(0);
            stale_reason[i] = Some(format!("upstream `{up}` is stale"));
            out.push(StepState {
                name: step.name.clone(),
                state: "stale",
                key: None,
                reason: format!(
                    "upstream `{up}` will run ({}); this step reruns if its output changes",
                    stale_reason[j].clone().unwrap_or_default()
                ),
                changes: Vec::new(),
                manifest: None,
            });
            continue;
        }
        let manifest = step.manifest(inputs);
        let key = manifest.key();
        let entry = db.lookup(&key).await?;
        let usable = match &entry {
            Some(e) => e.outputs.iter().all(|o| {
                matches!(
                    ws.store
                        .check(&o.artifact_hash, o.size as u64, o.fingerprint()),
                    Check::Ok(_)
                )
            }),
            None => false,
        };
        // The last run's manifest only matters to explain a stale step (or to `why`).
        let last = if usable && !with_changes {
            None
        } else {
            db.last_manifest(&resolved.wf.name, &step.name).await?
        };
        let changes = last
            .as_ref()
            .and_then(|(_, j)| serde_json::from_str::<KeyManifest>(j).ok())
            .map(|old| manifest.diff(&old))
            .unwrap_or_default();
        let (state, reason) = if usable {
            ("fresh", "cached".to_owned())
        } else if entry.is_some() {
            (
                "stale",
                "its cached outputs are missing or damaged".to_owned(),
            )
        } else if last.is_none() {
            ("stale", "no earlier run of this step".to_owned())
        } else if changes.is_empty() {
            (
                "stale",
                "same key as its last run, but that result is no longer cached".to_owned(),
            )
        } else {
            (
                "stale",
                changes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        if usable {
            outputs[i] = entry.map(|e| {
                e.outputs
                    .into_iter()
                    .map(|o| (o.slot, o.artifact_hash))
                    .collect()
            });
        } else {
            stale_reason[i] = Some(reason.clone());
        }
        out.push(StepState {
            name: step.name.clone(),
            state,
            key: Some(key),
            reason,
            changes,
            manifest: Some(manifest),
        });
    }
    Ok(out)
}
