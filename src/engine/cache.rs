//! Would this step run? The one answer, used by `run`, `status`, `why` and
//! `run --dry-run` alike:
//!
//! - [`check_entry`] turns the lineage cache entry of a key into a
//!   [`CacheStatus`]: a [`CacheStatus::Hit`] only when every output object is in
//!   the store with its recorded size and content, folder outputs member by member
//!   ([`check_tree`]);
//! - [`explain`] says why a step must run: the ingredient-by-ingredient diff of its
//!   key manifest against its last run;
//! - [`KeyLock`] is the cross-process lock a step holds while it computes a key, so
//!   two runs compute each key once.
//!
//! It also holds the **result cache seam**: [`ResultCache`] is consulted when the
//! local store has no usable result for a key, before the step executes, and is
//! told about every result a step computes. [`LocalOnly`] (the only implementation
//! today) never has a result; a remote cache (S3, HTTP) implements the trait, and
//! the scheduler does not change.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;

use super::key::{Change, KeyManifest};
use crate::lineage::{CacheEntry, Db, LineageError, OutputRow, StepRunRow, Success};
use crate::store::{Check, Store};
use crate::workspace::Workspace;

/// A boxed, sendable future: what the seams' trait methods return, so the traits
/// can be used as `dyn` objects (async fns in traits cannot be, yet).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the local cache has for a key.
#[derive(Debug, Clone)]
pub enum CacheStatus {
    /// A usable result: the step run that computed it and its outputs.
    Hit(CacheHit),
    /// There was a result, but some of its objects are missing or damaged; the
    /// reason names each.
    Damaged(String),
    /// No result with this key.
    Miss,
}

#[derive(Debug, Clone)]
pub struct CacheHit {
    pub step_run_id: i64,
    pub outputs: Vec<OutputRow>,
}

/// What [`check_entry`] may change while it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMode {
    /// `run`: move damaged objects aside (so a rerun can write good copies) and
    /// remember the fingerprints of objects found good.
    Repair,
    /// `status`, `why`, `--dry-run`: look, change nothing.
    Inspect,
}

/// Check a cache entry's objects.
pub async fn check_entry(
    ws: &Workspace,
    entry: Option<CacheEntry>,
    mode: CheckMode,
) -> Result<CacheStatus, LineageError> {
    let Some(entry) = entry else {
        return Ok(CacheStatus::Miss);
    };
    let store = &ws.store;
    let mut problems = Vec::new();
    for o in &entry.outputs {
        let mut check = store.check(&o.artifact_hash, o.size as u64, o.fingerprint());
        if let (Check::Ok(_), true) = (&check, o.is_tree) {
            check = check_tree(store, &o.artifact_hash);
        }
        match check {
            Check::Ok(fp) => {
                if mode == CheckMode::Repair && o.fingerprint() != Some(fp) && !o.is_tree {
                    ws.db.set_fingerprint(&o.artifact_hash, fp).await?;
                }
            }
            Check::Missing => problems.push(format!(
                "output `{}` (object {}) is no longer in the store (removed by `pedigree gc` or by hand)",
                o.slot,
                short(&o.artifact_hash)
            )),
            Check::Corrupt(why) => {
                let moved = match mode {
                    CheckMode::Repair => store.quarantine(&o.artifact_hash).ok(),
                    CheckMode::Inspect => None,
                };
                problems.push(format!(
                    "output `{}` (object {}) is damaged: {why}{}",
                    o.slot,
                    short(&o.artifact_hash),
                    moved
                        .map(|p| format!("; moved to `{}`", p.display()))
                        .unwrap_or_default()
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(CacheStatus::Hit(CacheHit {
            step_run_id: entry.step_run_id,
            outputs: entry.outputs,
        }));
    }
    Ok(CacheStatus::Damaged(format!(
        "cached result unusable, recomputing: {}",
        problems.join("; ")
    )))
}

/// Look `key` up and check its objects.
pub async fn lookup(
    ws: &Workspace,
    key: &str,
    mode: CheckMode,
) -> Result<CacheStatus, LineageError> {
    let entry = ws.db.lookup(key).await?;
    check_entry(ws, entry, mode).await
}

/// A tree is usable when its manifest is and every member exists with its size
/// and content.
pub fn check_tree(store: &Store, hash: &str) -> Check {
    let tree = match store.read_tree(hash) {
        Ok(t) => t,
        Err(e) => return Check::Corrupt(e.to_string()),
    };
    for e in &tree.entries {
        match store.check(&e.hash, e.size, None) {
            Check::Ok(_) => {}
            Check::Missing => return Check::Missing,
            Check::Corrupt(why) => return Check::Corrupt(format!("member `{}`: {why}", e.path)),
        }
    }
    store.check(
        hash,
        std::fs::metadata(store.object_path(hash))
            .map(|m| m.len())
            .unwrap_or(0),
        None,
    )
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Why a step must run, against its last successful (or cached) run.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// For people: the changed ingredients, or why there is nothing to compare.
    pub text: String,
    /// The last run of the step and its key manifest (JSON), if there is one.
    pub last: Option<(StepRunRow, String)>,
    /// Ingredient changes since then (empty when the old manifest does not parse).
    pub changes: Vec<Change>,
    /// The old manifest is from another key schema (or otherwise unreadable).
    pub other_schema: bool,
}

/// The ingredient-by-ingredient diff of `manifest` against the last run of
/// `step` in `workflow`.
pub async fn explain(
    db: &Db,
    workflow: &str,
    step: &str,
    manifest: &KeyManifest,
) -> Result<Explanation, LineageError> {
    let last = db.last_manifest(workflow, step).await?;
    let Some((_, old_json)) = &last else {
        return Ok(Explanation {
            text: "no earlier run of this step".into(),
            last,
            changes: Vec::new(),
            other_schema: false,
        });
    };
    let Ok(old) = serde_json::from_str::<KeyManifest>(old_json) else {
        return Ok(Explanation {
            text: "the last run's key manifest is from another key schema".into(),
            last,
            changes: Vec::new(),
            other_schema: true,
        });
    };
    let changes = manifest.diff(&old);
    let text = if changes.is_empty() {
        "same key as its last run, but that result is no longer cached".into()
    } else {
        changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    Ok(Explanation {
        text,
        last,
        changes,
        other_schema: false,
    })
}

/// The per-key lock file a step holds while it computes its key. The kernel
/// drops the lock when its process dies, so a killed run never leaves a stale lock.
#[derive(Debug)]
pub struct KeyLock {
    _file: std::fs::File,
}

impl KeyLock {
    /// Hold the lock of `key`; `None` if `cancel` is set while waiting.
    /// `on_wait` is called once, when another process holds it.
    pub async fn acquire(
        store: &Store,
        key: &str,
        cancel: &watch::Receiver<bool>,
        on_wait: impl FnOnce(),
    ) -> std::io::Result<Option<KeyLock>> {
        let path: PathBuf = store.locks_dir().join(format!("{key}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        let mut on_wait = Some(on_wait);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(KeyLock { _file: file })),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            if *cancel.borrow() {
                return Ok(None);
            }
            if let Some(f) = on_wait.take() {
                f();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A result cache that is not the local store: consulted on a local miss
/// before a step executes, and offered every result a step computes.
///
/// `fetch` puts the objects it downloads into the workspace's store (through the
/// store's own writers, so the object invariants hold, and only after checking
/// them) and returns the outputs, which the engine records as the step's run.
/// `publish` may work in the background; `finish` waits for it before the run
/// ends. A failing cache never fails a step: `fetch` errors count as a miss and
/// `publish` errors as a warning.
pub trait ResultCache: Send + Sync + fmt::Debug {
    /// A result for `key`, its objects already in the store; `None` on a miss.
    fn fetch<'a>(
        &'a self,
        ws: &'a Workspace,
        key: &'a str,
        manifest: &'a KeyManifest,
    ) -> BoxFuture<'a, Result<Option<Fetched>, ResultCacheError>>;

    /// Would `fetch` find a result for `key`? The entry is read and checked, but
    /// no object is downloaded (`status`).
    fn peek<'a>(
        &'a self,
        ws: &'a Workspace,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Fetched>, ResultCacheError>>;

    /// Offer a result a step just computed (its objects are in the store and its
    /// run is recorded).
    fn publish(&self, ws: &Workspace, offer: Offer);

    /// Wait for the background work of [`ResultCache::publish`]: what to tell
    /// people about it (warnings first, then a summary), nothing when idle.
    fn finish(&self) -> BoxFuture<'_, Finished>;
}

/// A computed result offered to a [`ResultCache`].
#[derive(Debug, Clone)]
pub struct Offer {
    pub run_id: i64,
    pub step_run_id: i64,
    pub workflow: String,
    pub step: String,
    pub key: String,
    pub manifest: KeyManifest,
    pub success: Success,
}

/// A result fetched from a [`ResultCache`]: the step's outputs, params, metrics and
/// facets as the producer recorded them, and where they came from.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub success: Success,
    /// For people: which cache, which signer, who computed it.
    pub source: String,
    /// The same as JSON, recorded with the step run.
    pub source_json: String,
}

impl Fetched {
    /// The fetched outputs as the scheduler binds them, by slot.
    pub fn artifacts(&self) -> std::collections::BTreeMap<String, super::plan::Artifact> {
        self.success
            .outputs
            .iter()
            .map(|o| {
                (
                    o.slot.clone(),
                    super::plan::Artifact {
                        hash: o.artifact.stored.hash.clone(),
                        name: o.name.clone(),
                        is_tree: o.artifact.stored.is_tree,
                    },
                )
            })
            .collect()
    }
}

/// What background publishing ended with.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

/// A result cache that could not answer.
#[derive(Debug, thiserror::Error)]
#[error("result cache `{cache}`: {message}")]
pub struct ResultCacheError {
    pub cache: String,
    pub message: String,
}

/// No result cache beyond the local store: never a hit, nothing to publish.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalOnly;

impl ResultCache for LocalOnly {
    fn fetch<'a>(
        &'a self,
        _ws: &'a Workspace,
        _key: &'a str,
        _manifest: &'a KeyManifest,
    ) -> BoxFuture<'a, Result<Option<Fetched>, ResultCacheError>> {
        Box::pin(async { Ok(None) })
    }

    fn peek<'a>(
        &'a self,
        _ws: &'a Workspace,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Fetched>, ResultCacheError>> {
        Box::pin(async { Ok(None) })
    }

    fn publish(&self, _ws: &Workspace, _offer: Offer) {}

    fn finish(&self) -> BoxFuture<'_, Finished> {
        Box::pin(async { Finished::default() })
    }
}
