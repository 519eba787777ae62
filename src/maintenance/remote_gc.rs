//! `pedigree remote gc`: remove what nothing pins from the shared cache.
//!
//! Roots: the step keys and objects of the workspace's lock files (committed, so
//! they are what the team's branches pin) and every release's ancestry. An entry
//! is kept when its key is pinned or it is younger than the grace period; a blob
//! when a kept entry names it (folders with their members), a root names it, or
//! it is younger than the grace period. Entries go before blobs, so a reader never
//! meets a kept entry whose blob is gone because of this sweep.
//!
//! This is the one place that LISTs the bucket; nothing on the run path does.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::MaintenanceError;
use crate::keys::PublicKey;
use crate::remote::entry;
use crate::remote::store::{ENTRY_MAX, RemoteError, RemoteStore};
use crate::store::{Tree, is_object_hash};
use crate::workspace::Workspace;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RemoteCollected {
    pub dry_run: bool,
    pub entries_kept: usize,
    pub entries_removed: usize,
    pub blobs_kept: usize,
    pub blobs_removed: usize,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteGcError {
    #[error(transparent)]
    Maintenance(#[from] MaintenanceError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

impl From<crate::lineage::LineageError> for RemoteGcError {
    fn from(e: crate::lineage::LineageError) -> Self {
        RemoteGcError::Maintenance(e.into())
    }
}

pub async fn collect(
    ws: &Workspace,
    remote: &RemoteStore,
    grace: Duration,
    dry_run: bool,
) -> Result<RemoteCollected, RemoteGcError> {
    let cutoff = SystemTime::now() - grace;
    let young = |m: &object_store::ObjectMeta| {
        let t: SystemTime = m.last_modified.into();
        t > cutoff
    };
    let pins = super::gc::lock_pins(ws).await?;
    let mut keep: BTreeSet<String> = pins.hashes.clone();
    keep.extend(ws.db.release_ancestry().await?);
    keep.extend(crate::registry::release_hashes(&ws.root.join("registry")));

    let mut out = RemoteCollected {
        dry_run,
        ..Default::default()
    };
    let mut doomed_entries = Vec::new();
    for m in remote.list(&remote.root("ac")).await? {
        // v1/ac/AB/KEY/SIGNER
        let segs: Vec<String> = m.location.parts().map(|p| p.as_ref().to_owned()).collect();
        let (key, signer) = match segs.as_slice() {
            [.., key, signer] => (key.clone(), signer.clone()),
            _ => continue,
        };
        if !(pins.keys.contains(&key) || young(&m)) {
            doomed_entries.push(m.location.clone());
            continue;
        }
        out.entries_kept += 1;
        let Ok(signer) = PublicKey::parse(&format!("ed25519:{signer}")) else {
            continue;
        };
        let Some(bytes) = remote.get_small(&m.location, ENTRY_MAX).await? else {
            continue;
        };
        // A kept entry keeps what it names, whoever signed it (gc is not the
        // place to judge trust; readers are).
        if let Ok(v) = entry::open(&bytes, &key, &signer, None) {
            for o in v.body.outputs {
                if o.is_tree {
                    keep.extend(tree_members(ws, remote, &o.hash).await);
                }
                keep.insert(o.hash);
            }
        }
    }
    // Folders pinned by lock files and releases keep their members too (known
    // from the local store: a pin this workspace never had locally is a file or
    // a folder whose entry, kept above, named its members).
    for h in keep.clone() {
        if let Ok(t) = ws.store.read_tree(&h) {
            keep.extend(t.entries.into_iter().map(|e| e.hash));
        }
    }
    let mut doomed_blobs = Vec::new();
    for m in remote.list(&remote.root("cas")).await? {
        let Some(hash) = m.location.filename().map(str::to_owned) else {
            continue;
        };
        if !is_object_hash(&hash) || keep.contains(&hash) || young(&m) {
            out.blobs_kept += 1;
            continue;
        }
        out.bytes += m.size;
        doomed_blobs.push((m.location.clone(), hash));
    }
    out.entries_removed = doomed_entries.len();
    out.blobs_removed = doomed_blobs.len();
    if !dry_run {
        for p in &doomed_entries {
            remote.delete(p).await?;
        }
        let mut gone = Vec::new();
        for (p, h) in &doomed_blobs {
            remote.delete(p).await?;
            gone.push(h.clone());
        }
        ws.db
            .forget_remote_objects(remote.identity(), &gone)
            .await?;
    }
    Ok(out)
}

/// The member hashes of `hash` if it is a folder: from the local store, else the
/// remote (verified against its hash).
async fn tree_members(ws: &Workspace, remote: &RemoteStore, hash: &str) -> Vec<String> {
    if let Ok(t) = ws.store.read_tree(hash) {
        return t.entries.into_iter().map(|e| e.hash).collect();
    }
    let Ok(Some(bytes)) = remote
        .get_small(&remote.blob_path(hash), ENTRY_MAX * 4)
        .await
    else {
        return Vec::new();
    };
    if blake3::hash(&bytes).to_hex().as_str() != hash {
        return Vec::new();
    }
    Tree::parse(hash, &bytes)
        .map(|t| t.entries.into_iter().map(|e| e.hash).collect())
        .unwrap_or_default()
}
