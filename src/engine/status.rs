//! `pedigree status`, `pedigree why` and `run --dry-run`: what a run would do now,
//! computed without running anything or recording a run.
//!
//! This is the dry branch of a run, not a second implementation of one: inputs are
//! bound by [`super::inputs`], a step's inputs by the run's [`Board`], and the
//! cache is checked by [`cache::check_entry`] (in [`CheckMode::Inspect`], which
//! changes nothing) and explained by [`cache::explain`], exactly as `run` does. So
//! `status` says `fresh` only where `run` would reuse the result, folder outputs
//! included.

use serde::Serialize;

use super::cache::{self, CacheStatus, CheckMode, ResultCache};
use super::execute::to_artifacts;
use super::hashing;
use super::inputs;
use super::key::{Change, KeyManifest};
use super::plan::{Board, Selection};
use super::resolve::Resolved;
use super::run::RunError;
use crate::workspace::Workspace;

/// What `status` asks beyond the local cache.
#[derive(Clone, Copy)]
pub enum Remote<'a> {
    /// Nothing: the local cache alone.
    Local,
    /// Whether the remote has a result (`status`): state `remote`, nothing downloaded.
    Peek(&'a dyn ResultCache),
    /// Fetch it (`pull`): state `pulled`, the objects land in the store, nothing is
    /// recorded.
    Pull(&'a dyn ResultCache),
}

#[derive(Debug, Clone, Serialize)]
pub struct StepState {
    pub name: String,
    /// `fresh` (cached result usable), `remote` (the remote has it: a run fetches
    /// it), `pulled` (just fetched) or `stale` (would run).
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
/// `remote` says what to ask a result cache beyond the store about a step the
/// local cache lacks, so the steps below it get keys too.
pub async fn status(
    ws: &Workspace,
    resolved: &Resolved,
    with_changes: bool,
    remote: Remote<'_>,
) -> Result<Vec<StepState>, RunError> {
    let db = &ws.db;
    let mut stat = hashing::StatCache::load(db).await?;
    let raw = inputs::hash_inputs(&mut stat, resolved.inputs.iter()).await?;
    stat.flush(db).await?;
    let n = resolved.steps.len();
    let selection = Selection::all(n);
    let mut board = Board::new(
        &resolved.dag,
        &selection.roles,
        resolved.steps.iter().map(|s| &s.inputs),
    );
    let mut stale_reason: Vec<Option<String>> = vec![None; n];
    let mut out = Vec::with_capacity(n);
    for &i in &resolved.dag.order {
        let step = &resolved.steps[i];
        let bound = board.bind(i, |name| raw.get(name).map(|r| r.artifact.clone()));
        if let Some(j) = bound.waiting_on {
            let up = &resolved.steps[j].name;
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
        let manifest = step.manifest(
            bound
                .inputs
                .iter()
                .map(|(k, a)| (k.clone(), a.hash.clone()))
                .collect(),
        );
        let key = manifest.key();
        let cached = cache::lookup(ws, &key, CheckMode::Inspect).await?;
        let asked = match (remote, &cached) {
            (_, CacheStatus::Hit(_)) | (Remote::Local, _) => None,
            (Remote::Peek(c), _) if step.spec.shareable => Some(("remote", c.peek(ws, &key).await)),
            (Remote::Pull(c), _) if step.spec.shareable => {
                Some(("pulled", c.fetch(ws, &key, &manifest).await))
            }
            _ => None,
        };
        // A remote that could not answer is said in the step's reason (once: a
        // remote found down is not asked again).
        let mut unanswered = None;
        if let Some((state, answer)) = asked {
            match answer {
                Ok(Some(f)) => {
                    board.outputs[i] = Some(f.artifacts());
                    out.push(StepState {
                        name: step.name.clone(),
                        state,
                        key: Some(key),
                        reason: format!("from {}", f.source),
                        changes: Vec::new(),
                        manifest: Some(manifest),
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) => unanswered = Some(e.to_string()),
            }
        }
        // The last run's manifest only matters to explain a stale step (or to `why`).
        let explanation = match (&cached, with_changes) {
            (CacheStatus::Hit(_), false) => None,
            _ => Some(cache::explain(db, &resolved.wf.name, &step.name, &manifest).await?),
        };
        let (state, mut reason) = match &cached {
            CacheStatus::Hit(_) => ("fresh", "cached".to_owned()),
            CacheStatus::Damaged(why) => ("stale", why.clone()),
            CacheStatus::Miss => (
                "stale",
                explanation
                    .as_ref()
                    .map(|e| e.text.clone())
                    .unwrap_or_default(),
            ),
        };
        if let Some(e) = unanswered {
            reason = format!("{reason} ({e})");
        }
        match cached {
            CacheStatus::Hit(hit) => board.outputs[i] = Some(to_artifacts(&hit.outputs)),
            _ => stale_reason[i] = Some(reason.clone()),
        }
        out.push(StepState {
            name: step.name.clone(),
            state,
            key: Some(key),
            reason,
            changes: explanation.map(|e| e.changes).unwrap_or_default(),
            manifest: Some(manifest),
        });
    }
    Ok(out)
}
