//! `gc`: keep what recent runs, lock files and releases reach; remove the rest once
//! it is older than the grace period.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::MaintenanceError;
use crate::engine::lockfile::{self, LockFile};
use crate::util::time;
use crate::workspace::Workspace;

/// What a gc did (or, with `dry_run`, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Collected {
    pub dry_run: bool,
    pub removed: Vec<String>,
    pub bytes: u64,
}

/// Collect the objects nothing keeps and that are older than `grace`.
pub async fn collect(
    ws: &Workspace,
    grace: Duration,
    dry_run: bool,
) -> Result<Collected, MaintenanceError> {
    let db = &ws.db;
    // Runs hold the workspace lock shared; gc holds it exclusively, so it never
    // removes an object that a run in progress has checked and is about to use.
    let lock = crate::workspace::lock_workspace(ws, true).map_err(MaintenanceError::Lock)?;
    let cutoff = SystemTime::now() - grace;
    let since = time::format_time(cutoff);
    let mut keep: BTreeSet<String> = db.recently_referenced(&since).await?.into_iter().collect();
    keep.extend(lock_pins(ws).await?.hashes);
    // Releases pin their whole ancestry: `pedigree recommend` and the model card
    // trace back through it to the input rows. The database has every release a
    // run published, whatever its `registry:`; the default folder's files are read
    // too, for a `publish` started outside a run (no run id, no database row).
    keep.extend(db.release_ancestry().await?);
    keep.extend(crate::registry::release_hashes(&ws.root.join("registry")));
    // Trees keep their members.
    for h in keep.clone() {
        if let Ok(tree) = ws.store.read_tree(&h) {
            keep.extend(tree.entries.into_iter().map(|e| e.hash));
        }
    }
    let mut removed = Vec::new();
    let mut bytes = 0u64;
    for h in ws.store.list()? {
        if keep.contains(&h) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(ws.store.object_path(&h)) else {
            continue;
        };
        if meta.modified().is_ok_and(|m| m > cutoff) {
            continue;
        }
        bytes += meta.len();
        removed.push(h);
    }
    if !dry_run {
        // Recorded before removal: a kill in between leaves objects marked collected
        // but present, never lineage pointing at an unexplained hole.
        db.mark_collected(&removed).await?;
        for h in &removed {
            ws.store.remove(h)?;
            crate::failpoint::hit("gc-removing");
        }
        clean_tmp_and_locks(ws, cutoff);
    }
    drop(lock);
    Ok(Collected {
        dry_run,
        removed,
        bytes,
    })
}

/// What the workspace's lock files pin.
#[derive(Debug, Default)]
pub struct Pins {
    /// Step keys.
    pub keys: BTreeSet<String>,
    /// Input and output object hashes.
    pub hashes: BTreeSet<String>,
}

/// The step keys and objects the lock files name: beside every workflow a run has
/// read, and anywhere under `workflows/` (a fresh clone has lock files and no runs
/// yet).
pub async fn lock_pins(ws: &Workspace) -> Result<Pins, MaintenanceError> {
    let recorded: Vec<PathBuf> = ws
        .db
        .workflow_paths()
        .await?
        .into_iter()
        .map(|p| ws.root.join(p))
        .collect();
    let mut pins = Pins::default();
    for path in lock_files(&ws.root, &recorded) {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(lock) = serde_yaml::from_str::<LockFile>(&text)
        {
            pins.hashes.extend(lock.inputs.into_values());
            for s in lock.steps.into_values() {
                pins.keys.insert(s.key);
                pins.hashes.extend(s.outputs.into_values());
            }
        }
    }
    Ok(pins)
}

/// Remove scratch folders and temp files older than the grace period (left by
/// killed runs) and key lock files nobody holds.
fn clean_tmp_and_locks(ws: &Workspace, cutoff: SystemTime) {
    if let Ok(rd) = std::fs::read_dir(ws.store.tmp_dir()) {
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m < cutoff);
            if old {
                let p = e.path();
                if p.is_dir() {
                    let _ = crate::store::remove_scratch(&p);
                } else {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(ws.store.locks_dir()) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "lock")
                && p.file_stem().is_some_and(|s| s.len() == 64)
                && let Ok(f) = std::fs::File::open(&p)
                && f.try_lock().is_ok()
            {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// The lock files that may pin objects: the one beside each workflow file a run
/// recorded (wherever it lives), and every `*.lock` under `workflows/`, sorted and
/// without repeats.
fn lock_files(root: &Path, workflows: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() && depth < 8 => walk(&p, depth + 1, out),
                Ok(t) if t.is_file() && p.extension().is_some_and(|x| x == "lock") => {
                    out.insert(p);
                }
                _ => {}
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&root.join("workflows"), 0, &mut out);
    for wf in workflows {
        let lock = lockfile::path_for(wf);
        if lock.is_file() {
            out.insert(lock);
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_are_found_beside_recorded_workflows_and_under_workflows() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for rel in [
            "workflows/a.lock",
            "workflows/team/b.lock",
            "pipelines/c.lock",
            "pipelines/c.yaml",
            "elsewhere/d.lock",
        ] {
            std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
            std::fs::write(root.join(rel), "").unwrap();
        }
        let found = lock_files(root, &[root.join("pipelines/c.yaml")]);
        let rel: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "pipelines/c.lock",
                "workflows/a.lock",
                "workflows/team/b.lock"
            ]
        );
    }
}
