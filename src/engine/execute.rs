//! Executing one planned step: take its key lock (across processes), check the
//! local cache again (another process may have computed the key meanwhile), ask
//! the [`ResultCache`] on a miss, then record the step as started, run it through
//! [`invoke`] (and so the [`Executor`]) and commit its result to lineage.
//!
//! Architecture invariant: a step run is recorded `succeeded` only in the same
//! transaction that records all of its outputs, and only after every output object
//! is durably in the store ([`invoke`] stores them; `Db::finish_success` commits).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::cache::{self, CacheStatus, CheckMode, KeyLock, Offer, ResultCache};
use super::events::{Event, FROM_RESULT_CACHE, StepResult, StepStatus};
use super::executor::Executor;
use super::invoke::{ScratchPool, StepDone, StepFailed, invoke};
use super::key::KeyManifest;
use super::plan::{Artifact, Outputs};
use super::resolve::{Resolved, ResolvedStep};
use crate::lineage::{CachedRecord, OutputRow};
use crate::workspace::Workspace;

/// Everything a step task needs, cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    pub ws: Workspace,
    pub resolved: Arc<Resolved>,
    pub run_id: i64,
    pub events: mpsc::UnboundedSender<Event>,
    pub cancel: watch::Receiver<bool>,
    pub executor: Arc<dyn Executor>,
    pub cache: Arc<dyn ResultCache>,
    /// The run's scratch folders, reused from step to step.
    pub scratch: Arc<ScratchPool>,
}

/// A step about to execute: everything decided before it runs.
pub struct Planned {
    pub i: usize,
    pub manifest: KeyManifest,
    pub key: String,
    pub inputs: BTreeMap<String, Artifact>,
    pub reason: String,
    pub forced: bool,
    pub started: Instant,
}

/// Take the step's key lock, re-check the caches, then run it.
pub async fn execute(ctx: &Ctx, planned: Planned) -> (StepResult, Outputs) {
    let Planned {
        i,
        manifest,
        key,
        inputs,
        reason,
        forced,
        started,
    } = planned;
    let step = &ctx.resolved.steps[i];
    let fail = |status: StepStatus, error: String, id: Option<i64>| StepResult {
        name: step.name.clone(),
        status,
        key: Some(key.clone()),
        reason: reason.clone(),
        outputs: BTreeMap::new(),
        error: Some(error),
        step_run_id: id,
        duration: started.elapsed(),
    };
    let wait = || {
        let _ = ctx.events.send(Event::Warning(format!(
            "waiting for another pedigree process that is computing key {}",
            &key[..12]
        )));
    };
    let lock = match KeyLock::acquire(&ctx.ws.store, &key, &ctx.cancel, wait).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return (
                fail(
                    StepStatus::Interrupted,
                    "interrupted while waiting for another process computing this step".into(),
                    None,
                ),
                None,
            );
        }
        Err(e) => {
            return (
                fail(
                    StepStatus::Failed,
                    format!("cannot take the step lock: {e}"),
                    None,
                ),
                None,
            );
        }
    };
    // Another process may have computed this key while we waited for the lock.
    let hit = if forced {
        Ok(CacheStatus::Miss)
    } else {
        cache::lookup(&ctx.ws, &key, CheckMode::Repair).await
    };
    match hit {
        Ok(CacheStatus::Hit(hit)) => {
            let why = "cached: computed meanwhile by another pedigree process".to_owned();
            let (mut r, record) = cached(
                step,
                &key,
                &inputs,
                hit.step_run_id,
                &hit.outputs,
                why,
                started,
            );
            let recorded = ctx.ws.db.record_cached(ctx.run_id, &[record]).await;
            r.step_run_id = recorded.as_ref().ok().and_then(|ids| ids.first().copied());
            drop(lock);
            return match recorded {
                Ok(_) => (r, Some(to_artifacts(&hit.outputs))),
                Err(e) => (fail(StepStatus::Failed, e.to_string(), None), None),
            };
        }
        Ok(CacheStatus::Damaged(why)) => {
            let _ = ctx.events.send(Event::Warning(why));
        }
        Ok(CacheStatus::Miss) => {}
        Err(e) => return (fail(StepStatus::Failed, e.to_string(), None), None),
    }
    let db = &ctx.ws.db;
    let ins: Vec<(String, String)> = inputs
        .iter()
        .map(|(k, a)| (k.clone(), a.hash.clone()))
        .collect();
    // No usable local result: a result cache beyond the store may have one.
    let shareable = step.spec.shareable;
    let fetched = if forced || !shareable {
        None
    } else {
        match ctx.cache.fetch(&ctx.ws, &key, &manifest).await {
            Ok(f) => f,
            Err(e) => {
                let _ = ctx.events.send(Event::Warning(e.to_string()));
                None
            }
        }
    };
    let reason = match &fetched {
        Some(f) => format!("{FROM_RESULT_CACHE}{}", f.source),
        None => {
            let _ = ctx.events.send(Event::StepStarted {
                name: step.name.clone(),
                reason: reason.clone(),
            });
            reason.clone()
        }
    };
    let id = match db
        .start_step(
            ctx.run_id,
            &step.name,
            &step.kind_label(),
            &key,
            &manifest.canonical(),
            &reason,
            &ins,
        )
        .await
    {
        Ok(id) => id,
        Err(e) => return (fail(StepStatus::Failed, e.to_string(), None), None),
    };
    let (status, source_json, result) = match fetched {
        Some(f) => (
            StepStatus::Cached,
            Some(f.source_json.clone()),
            Ok(fetched_done(f)),
        ),
        None => {
            crate::failpoint::hit("step-started");
            (
                StepStatus::Succeeded,
                None,
                invoke(ctx, step, &manifest, &inputs).await,
            )
        }
    };
    let out = match result {
        Ok(StepDone { success, outputs }) => match db
            .finish_success(id, &success, source_json.as_deref())
            .await
        {
            Ok(()) => {
                crate::failpoint::hit("step-committed");
                if status == StepStatus::Succeeded && shareable {
                    ctx.cache.publish(
                        &ctx.ws,
                        Offer {
                            run_id: ctx.run_id,
                            step_run_id: id,
                            workflow: ctx.resolved.wf.name.clone(),
                            step: step.name.clone(),
                            key: key.clone(),
                            manifest: manifest.clone(),
                            success,
                        },
                    );
                }
                let r = StepResult {
                    name: step.name.clone(),
                    status,
                    key: Some(key.clone()),
                    reason: reason.clone(),
                    outputs: outputs
                        .iter()
                        .map(|(k, a)| (k.clone(), a.hash.clone()))
                        .collect(),
                    error: None,
                    step_run_id: Some(id),
                    duration: started.elapsed(),
                };
                (r, Some(outputs))
            }
            Err(e) => (
                fail(
                    StepStatus::Failed,
                    format!("cannot record the step's outputs: {e}"),
                    Some(id),
                ),
                None,
            ),
        },
        Err(StepFailed {
            status,
            error,
            stderr_tail,
            log_hash,
        }) => {
            let s = if status == StepStatus::Interrupted {
                "interrupted"
            } else {
                "failed"
            };
            if let Err(e) = db
                .finish_failure(id, s, &error, stderr_tail.as_deref(), log_hash.as_deref())
                .await
            {
                let _ = ctx.events.send(Event::Warning(format!(
                    "cannot record the failure of `{}`: {e}",
                    step.name
                )));
            }
            let mut r = fail(status, error, Some(id));
            if let (Some(tail), Some(err)) = (
                stderr_tail.filter(|t| !t.trim().is_empty()),
                r.error.as_mut(),
            ) {
                err.push_str("\n--- stderr (last lines) ---\n");
                err.push_str(&last_lines(&tail, 20));
            }
            (r, None)
        }
    };
    drop(lock);
    out
}

/// A result from the result cache, recorded as the step's run.
fn fetched_done(f: cache::Fetched) -> StepDone {
    StepDone {
        outputs: f.artifacts(),
        success: f.success,
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The artifacts of a cached step's outputs, by slot.
pub fn to_artifacts(outs: &[OutputRow]) -> BTreeMap<String, Artifact> {
    outs.iter()
        .map(|o| {
            (
                o.slot.clone(),
                Artifact {
                    hash: o.artifact_hash.clone(),
                    name: o.name.clone(),
                    is_tree: o.is_tree,
                },
            )
        })
        .collect()
}

/// The result and the lineage record of a step satisfied from the cache.
pub fn cached(
    step: &ResolvedStep,
    key: &str,
    inputs: &BTreeMap<String, Artifact>,
    from: i64,
    outs: &[OutputRow],
    reason: String,
    started: Instant,
) -> (StepResult, CachedRecord) {
    let record = CachedRecord {
        step: step.name.clone(),
        kind: step.kind_label(),
        key: key.to_owned(),
        reason: reason.clone(),
        cached_from: from,
        inputs: inputs
            .iter()
            .map(|(k, a)| (k.clone(), a.hash.clone()))
            .collect(),
        outputs: outs
            .iter()
            .map(|o| (o.slot.clone(), o.artifact_hash.clone(), o.name.clone()))
            .collect(),
    };
    let result = StepResult {
        name: step.name.clone(),
        status: StepStatus::Cached,
        key: Some(key.to_owned()),
        reason,
        outputs: outs
            .iter()
            .map(|o| (o.slot.clone(), o.artifact_hash.clone()))
            .collect(),
        error: None,
        step_run_id: None,
        duration: started.elapsed(),
    };
    (result, record)
}
