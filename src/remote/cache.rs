//! The remote as the engine's [`ResultCache`]: asked on a local miss, offered
//! every computed result.
//!
//! Reading (`fetch`): one GET per trusted signer of `v1/ac/…/KEY/SIGNER` (never a
//! LIST), the first entry that [`entry::open`] accepts, then every object it names
//! that the local store lacks, streamed through blake3 into `.pedigree/tmp/` and
//! renamed in only when it matches. Any failure is a miss with a one-line warning.
//!
//! Writing (`publish`, in the background of the run): every blob first (known
//! ones skipped without a request, from `remote_objects`), the signed entry last,
//! both as conditional creates. When the writer's slot already holds an entry with
//! other outputs, the step is recorded as non-deterministic (a facet).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::entry::{self, Body, Output, Producer, Rejected};
use super::store::{Created, ENTRY_MAX, RemoteError, RemoteStore};
use crate::engine::cache::{BoxFuture, Fetched, Finished, Offer, ResultCache, ResultCacheError};
use crate::engine::key::KeyManifest;
use crate::keys::{PublicKey, Signer};
use crate::lineage::{Metric, NewArtifact, NewOutput, Success};
use crate::store::{Check, Store, Stored, Tree};
use crate::util::fmt::short;
use crate::workspace::Workspace;

pub use crate::lineage::NONDETERMINISTIC_FACET;

/// Uploads in flight at once.
const UPLOADS: usize = 4;

/// The remote cache of one command.
#[derive(Debug)]
pub struct RemoteCache {
    remote: RemoteStore,
    trust: Vec<(String, PublicKey)>,
    /// Set when this workspace publishes.
    signer: Option<Arc<Signer>>,
    tasks: Mutex<JoinSet<Report>>,
    permits: Arc<Semaphore>,
    /// The store was found down: said once, then quiet.
    said_down: std::sync::atomic::AtomicBool,
}

/// What publishing one result did.
#[derive(Debug, Default)]
struct Report {
    entry: Option<Created>,
    objects: usize,
    bytes: u64,
    warning: Option<String>,
}

impl RemoteCache {
    pub fn new(
        remote: RemoteStore,
        trust: Vec<(String, PublicKey)>,
        signer: Option<Signer>,
    ) -> RemoteCache {
        RemoteCache {
            remote,
            trust,
            signer: signer.map(Arc::new),
            tasks: Mutex::new(JoinSet::new()),
            permits: Arc::new(Semaphore::new(UPLOADS)),
            said_down: Default::default(),
        }
    }

    pub fn remote(&self) -> &RemoteStore {
        &self.remote
    }

    pub fn publishes(&self) -> bool {
        self.signer.is_some()
    }

    /// `fetch` (with `download`) and `peek` (without) for the engine: the
    /// problems as one error.
    fn answer<'a>(
        &'a self,
        ws: &'a Workspace,
        key: &'a str,
        download: bool,
    ) -> BoxFuture<'a, Result<Option<Fetched>, ResultCacheError>> {
        Box::pin(async move {
            self.fetch_key(ws, key, download)
                .await
                .map_err(|problems| ResultCacheError {
                    cache: self.remote.url.clone(),
                    message: problems.join("; "),
                })
        })
    }

    /// A warning for `e`, or nothing when the store is down and that was said.
    fn warning(&self, what: &str, e: RemoteError) -> Option<String> {
        if matches!(e, RemoteError::Down { .. } | RemoteError::Denied { .. }) {
            if self
                .said_down
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                return None;
            }
            return Some(format!(
                "{e}; computing locally, and not asking it again in this command"
            ));
        }
        Some(format!("{what}: {e}"))
    }

    /// Fetch `key`: the verified entry and its objects, or why not.
    /// With `download` false, only the entry is read and checked (`peek`): the
    /// objects stay on the remote.
    async fn fetch_key(
        &self,
        ws: &Workspace,
        key: &str,
        download: bool,
    ) -> Result<Option<Fetched>, Vec<String>> {
        if self.trust.is_empty() || self.remote.is_down().is_some() {
            return Ok(None);
        }
        let gets = self.trust.iter().map(|(_, k)| {
            let path = self.remote.entry_path(key, &signer_hex(k));
            async move { self.remote.get_small(&path, ENTRY_MAX).await }
        });
        let found = futures::future::join_all(gets).await;
        let mut problems = Vec::new();
        for ((name, k), got) in self.trust.iter().zip(found) {
            let bytes = match got {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    problems.extend(self.warning("cannot read the remote entry", e));
                    continue;
                }
            };
            let verified = match entry::open(&bytes, key, k, Some(&self.trust)) {
                Ok(v) => v,
                Err(r) => {
                    problems.push(rejected(&self.remote.url, key, name, &r));
                    continue;
                }
            };
            let hashes: Vec<String> = verified
                .body
                .outputs
                .iter()
                .map(|o| o.hash.clone())
                .collect();
            if !download {
                return Ok(Some(fetched(&self.remote.url, verified)));
            }
            match self.download(ws, &verified.body).await {
                Ok(()) => {
                    let _ = ws
                        .db
                        .remember_remote_objects(self.remote.identity(), &hashes)
                        .await;
                    return Ok(Some(fetched(&self.remote.url, verified)));
                }
                Err(e) => {
                    // The remote may have lost what this workspace remembers it
                    // holds: forget, so publishing uploads it again.
                    let _ = ws
                        .db
                        .forget_remote_objects(self.remote.identity(), &hashes)
                        .await;
                    problems.extend(self.warning(
                        &format!(
                            "remote `{}`: the result of step key {} by `{name}` is unusable",
                            self.remote.url,
                            short(key)
                        ),
                        e,
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(None)
        } else {
            Err(problems)
        }
    }

    /// Bring every object of `body` into the local store, verified.
    async fn download(&self, ws: &Workspace, body: &Body) -> Result<(), RemoteError> {
        for o in &body.outputs {
            if o.is_tree {
                download_tree(&self.remote, &ws.store, &o.hash).await?;
            } else if !present(&ws.store, &o.hash, o.size) {
                self.remote
                    .download_blob(&ws.store, &o.hash, Some(o.size))
                    .await?;
            }
        }
        Ok(())
    }

    fn spawn_publish(&self, ws: Workspace, offer: Offer, signer: Arc<Signer>) {
        let remote = self.remote.clone();
        let permits = self.permits.clone();
        let trust = self.trust.clone();
        let task = async move {
            let _permit = permits.acquire_owned().await;
            match publish(&remote, &ws, &offer, &signer, &trust).await {
                Ok(r) => r,
                Err(e) => Report {
                    warning: Some(format!(
                        "not published to the remote: step `{}`: {e}",
                        offer.step
                    )),
                    ..Default::default()
                },
            }
        };
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.spawn(task);
        }
    }
}

impl ResultCache for RemoteCache {
    fn fetch<'a>(
        &'a self,
        ws: &'a Workspace,
        key: &'a str,
        _manifest: &'a KeyManifest,
    ) -> BoxFuture<'a, Result<Option<Fetched>, ResultCacheError>> {
        self.answer(ws, key, true)
    }

    fn peek<'a>(
        &'a self,
        ws: &'a Workspace,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Fetched>, ResultCacheError>> {
        self.answer(ws, key, false)
    }

    fn publish(&self, ws: &Workspace, offer: Offer) {
        if let Some(signer) = &self.signer
            && self.remote.is_down().is_none()
        {
            self.spawn_publish(ws.clone(), offer, signer.clone());
        }
    }

    fn finish(&self) -> BoxFuture<'_, Finished> {
        Box::pin(async move {
            let mut tasks = match self.tasks.lock() {
                Ok(mut t) => std::mem::take(&mut *t),
                Err(_) => JoinSet::new(),
            };
            let mut out = Finished::default();
            let (mut new, mut had, mut objects, mut bytes) = (0, 0, 0, 0u64);
            while let Some(done) = tasks.join_next().await {
                let Ok(r) = done else { continue };
                out.warnings.extend(r.warning);
                match r.entry {
                    Some(Created::New) => new += 1,
                    Some(Created::Exists) => had += 1,
                    None => {}
                }
                objects += r.objects;
                bytes += r.bytes;
            }
            if new + had > 0 {
                out.notes.push(format!(
                    "published {new} result{} to `{}` ({objects} object{} uploaded, {}){}",
                    if new == 1 { "" } else { "s" },
                    self.remote.url,
                    if objects == 1 { "" } else { "s" },
                    crate::util::fmt::bytes(bytes as i64),
                    if had > 0 {
                        format!("; {had} already there")
                    } else {
                        String::new()
                    }
                ));
            }
            out
        })
    }
}

/// The hex of a public key: the name of its entry slot.
pub fn signer_hex(k: &PublicKey) -> String {
    k.to_string().trim_start_matches("ed25519:").to_owned()
}

fn rejected(url: &str, key: &str, name: &str, r: &Rejected) -> String {
    format!(
        "remote `{url}`: entry of step key {} in `{name}`'s slot rejected: {r}",
        short(key)
    )
}

/// Is the object `hash` in the local store with `size` bytes and its content?
fn present(store: &Store, hash: &str, size: u64) -> bool {
    matches!(store.check(hash, size, None), Check::Ok(_))
}

/// Download a tree: its manifest (checked against its hash), each member the
/// store lacks, then the manifest into the store, last, so a tree object in the
/// store always has its members.
async fn download_tree(remote: &RemoteStore, store: &Store, hash: &str) -> Result<(), RemoteError> {
    let path = remote.blob_path(hash);
    let bytes = remote
        .get_small(&path, ENTRY_MAX * 4)
        .await?
        .ok_or_else(|| RemoteError::Refused {
            url: remote.url.clone(),
            message: format!("folder manifest {} is missing", short(hash)),
        })?;
    let found = blake3::hash(&bytes).to_hex().to_string();
    if found != hash {
        return Err(RemoteError::Refused {
            url: remote.url.clone(),
            message: format!(
                "folder manifest {} is damaged: it hashes to {}",
                short(hash),
                short(&found)
            ),
        });
    }
    let tree = Tree::parse(hash, &bytes)?;
    for e in &tree.entries {
        if !present(store, &e.hash, e.size) {
            remote.download_blob(store, &e.hash, Some(e.size)).await?;
        }
    }
    store.put_bytes(&bytes)?;
    Ok(())
}

/// The fetched result as the engine records it.
fn fetched(url: &str, v: entry::Verified) -> Fetched {
    let b = v.body;
    let outputs = b
        .outputs
        .iter()
        .map(|o| NewOutput {
            slot: o.slot.clone(),
            name: o.name.clone(),
            artifact: NewArtifact {
                stored: Stored {
                    hash: o.hash.clone(),
                    size: o.size,
                    content_size: o.content_size,
                    is_tree: o.is_tree,
                },
                kind: o.kind.clone(),
                media_type: o.media_type.clone(),
            },
            fingerprint: None,
        })
        .collect();
    let p = &b.producer;
    let source = format!(
        "remote `{url}` (signed by `{}`; computed by {}@{} in its run {})",
        v.signer_name, p.user, p.host, p.run
    );
    let source_json = json!({
        "remote": url,
        "signer": v.signer.to_string(),
        "signer_name": v.signer_name,
        "producer": p,
    })
    .to_string();
    Fetched {
        success: Success {
            outputs,
            params: b.params,
            metrics: b
                .metrics
                .into_iter()
                .map(|(key, value, step)| Metric { key, value, step })
                .collect(),
            facets: b.facets,
            stderr_tail: None,
            log_hash: None,
        },
        source,
        source_json,
    }
}

/// Publish one result: blobs, then the entry.
async fn publish(
    remote: &RemoteStore,
    ws: &Workspace,
    offer: &Offer,
    signer: &Signer,
    others: &[(String, PublicKey)],
) -> Result<Report, RemoteError> {
    // Every object of the result: files, and folders as manifest plus members.
    let mut objects: BTreeMap<String, u64> = BTreeMap::new();
    for o in &offer.success.outputs {
        let s = &o.artifact.stored;
        if s.is_tree {
            let tree = ws.store.read_tree(&s.hash)?;
            for e in tree.entries {
                objects.insert(e.hash, e.size);
            }
        }
        objects.insert(s.hash.clone(), s.size);
    }
    let hashes: Vec<String> = objects.keys().cloned().collect();
    let known = ws
        .db
        .remote_objects_known(remote.identity(), &hashes)
        .await
        .unwrap_or_default();
    let mut report = Report::default();
    // Members before manifests: a tree manifest sorts anywhere, so upload them
    // in two passes.
    let trees: Vec<&String> = offer
        .success
        .outputs
        .iter()
        .filter(|o| o.artifact.stored.is_tree)
        .map(|o| &o.artifact.stored.hash)
        .collect();
    let mut uploaded = Vec::new();
    for pass in [false, true] {
        for (hash, size) in &objects {
            if known.contains(hash) || trees.contains(&hash) != pass {
                continue;
            }
            if remote.upload_blob(&ws.store, hash, *size).await? == Created::New {
                report.objects += 1;
                report.bytes += size;
            }
            uploaded.push(hash.clone());
        }
    }
    let _ = ws
        .db
        .remember_remote_objects(remote.identity(), &uploaded)
        .await;

    let body = body_of(offer);
    let path = remote.entry_path(&offer.key, &signer_hex(signer.public()));
    let created = remote
        .create(&path, Bytes::from(entry::seal(&body, signer)))
        .await?;
    report.entry = Some(created);
    if created == Created::Exists {
        report.warning = compare_existing(remote, ws, offer, signer.public(), true, &body).await;
    } else {
        // The other trusted writers' results for this key should be the same.
        for (_, k) in others.iter().filter(|(_, k)| k != signer.public()) {
            if let Some(w) = compare_existing(remote, ws, offer, k, false, &body).await {
                report.warning = Some(w);
                break;
            }
        }
    }
    Ok(report)
}

/// The writer's slot already held an entry: the same outputs is success; other
/// outputs mean the step is not deterministic, recorded as a facet.
async fn compare_existing(
    remote: &RemoteStore,
    ws: &Workspace,
    offer: &Offer,
    slot: &PublicKey,
    own: bool,
    ours: &Body,
) -> Option<String> {
    let path = remote.entry_path(&offer.key, &signer_hex(slot));
    let theirs = match remote.get_small(&path, ENTRY_MAX).await {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) if own => return Some(format!("cannot compare with the remote's entry: {e}")),
        Err(_) => return None,
    };
    let theirs = match entry::open(&theirs, &offer.key, slot, None) {
        Ok(v) => v.body,
        Err(r) if own => {
            return Some(format!(
                "remote `{}`: the entry already in this writer's slot for step `{}` is unusable ({r}); it stays (the first writer wins)",
                remote.url, offer.step
            ));
        }
        // Another writer's unusable entry is its readers' problem (they warn).
        Err(_) => return None,
    };
    let slots = |b: &Body| -> BTreeMap<String, String> {
        b.outputs
            .iter()
            .map(|o| (o.slot.clone(), o.hash.clone()))
            .collect()
    };
    let (a, b) = (slots(ours), slots(&theirs));
    if a == b {
        return None;
    }
    let facet = json!({
        "remote": remote.url,
        "ours": a,
        "theirs": b,
        "theirs_producer": theirs.producer,
    })
    .to_string();
    let _ = ws
        .db
        .add_facet(offer.step_run_id, NONDETERMINISTIC_FACET, &facet)
        .await;
    Some(format!(
        "step `{}` is not deterministic: the remote already holds other outputs for its key {} (computed by {}@{} in its run {}); the remote keeps the first",
        offer.step,
        short(&offer.key),
        theirs.producer.user,
        theirs.producer.host,
        theirs.producer.run
    ))
}

fn body_of(offer: &Offer) -> Body {
    let s = &offer.success;
    Body {
        format: entry::BODY_FORMAT.into(),
        key: offer.key.clone(),
        manifest: offer.manifest.canonical(),
        outputs: s
            .outputs
            .iter()
            .map(|o| Output {
                slot: o.slot.clone(),
                name: o.name.clone(),
                hash: o.artifact.stored.hash.clone(),
                size: o.artifact.stored.size,
                content_size: o.artifact.stored.content_size,
                is_tree: o.artifact.stored.is_tree,
                kind: o.artifact.kind.clone(),
                media_type: o.artifact.media_type.clone(),
            })
            .collect(),
        params: s.params.clone(),
        metrics: s
            .metrics
            .iter()
            .map(|m| (m.key.clone(), m.value, m.step))
            .collect(),
        facets: s.facets.clone(),
        producer: Producer {
            host: crate::engine::run::hostname(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_default(),
            workflow: offer.workflow.clone(),
            step: offer.step.clone(),
            run: offer.run_id,
            step_run: offer.step_run_id,
            at: crate::util::time::now(),
            pedigree: env!("CARGO_PKG_VERSION").into(),
        },
    }
}
