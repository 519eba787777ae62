//! `pedigree gc` and `pedigree verify`.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::{CliError, Exit, Global, open_existing, print_json};
use crate::engine::key::short;
use crate::lineage::time;
use crate::store::Check;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Keep everything referenced by runs younger than this many seconds, and every
    /// unreferenced object younger than it (a run may be about to record it).
    #[arg(long, default_value_t = 7 * 24 * 3600, value_name = "SECS")]
    pub grace: u64,
    /// Say what would be removed without removing it.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[arg(long)]
    pub json: bool,
}

pub async fn gc(args: GcArgs, g: &Global) -> Result<Exit, CliError> {
    let ws = open_existing(g).await?;
    let db = &ws.db;
    // Runs hold the workspace lock shared; gc holds it exclusively, so it never
    // removes an object that a run in progress has checked and is about to use.
    let lock = crate::workspace::lock_workspace(&ws, true)
        .map_err(|e| CliError::failed(format!("error: cannot lock the workspace: {e}")))?;
    let cutoff = SystemTime::now() - Duration::from_secs(args.grace);
    let since = time::format_time(cutoff);
    let mut keep: BTreeSet<String> = db.recently_referenced(&since).await?.into_iter().collect();
    // Lock files in the workspace's workflows folder pin what they name.
    for path in lock_files(&ws.root.join("workflows")) {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(lock) = serde_yaml::from_str::<crate::engine::lockfile::LockFile>(&text)
        {
            keep.extend(lock.inputs.into_values());
            for s in lock.steps.into_values() {
                keep.extend(s.outputs.into_values());
            }
        }
    }
    // Releases pin their whole ancestry: `pedigree recommend` and the model card
    // trace back through it to the input rows. The database has every release a
    // run published, whatever its `registry:`; the default folder's files are read
    // too, for a `publish` started outside a run (no run id, no database row).
    keep.extend(db.release_ancestry().await?);
    keep.extend(release_hashes(&ws.root.join("registry")));
    // Trees keep their members.
    for h in keep.clone() {
        if let Ok(tree) = ws.store.read_tree(&h) {
            keep.extend(tree.entries.into_iter().map(|e| e.hash));
        }
    }
    let mut removed = Vec::new();
    let mut freed = 0u64;
    for h in ws
        .store
        .list()
        .map_err(|e| CliError::failed(format!("error: {e}")))?
    {
        if keep.contains(&h) {
            continue;
        }
        let p = ws.store.object_path(&h);
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.modified().is_ok_and(|m| m > cutoff) {
            continue;
        }
        freed += meta.len();
        removed.push(h);
    }
    if !args.dry_run {
        // Recorded before removal: a kill in between leaves objects marked collected
        // but present, never lineage pointing at an unexplained hole.
        db.mark_collected(&removed).await?;
        for h in &removed {
            ws.store
                .remove(h)
                .map_err(|e| CliError::failed(format!("error: {e}")))?;
            crate::failpoint::hit("gc-removing");
        }
        clean_tmp_and_locks(&ws, cutoff);
    }
    drop(lock);
    if args.json {
        print_json(
            &serde_json::json!({"dry_run": args.dry_run, "removed": removed, "bytes": freed}),
        );
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        println!("{verb} {} objects ({freed} bytes)", removed.len());
    }
    Ok(Exit::Ok)
}

/// Remove scratch folders and temp files older than the grace period (left by
/// killed runs) and key lock files nobody holds.
fn clean_tmp_and_locks(ws: &crate::workspace::Workspace, cutoff: SystemTime) {
    if let Ok(rd) = std::fs::read_dir(ws.store.tmp_dir()) {
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m < cutoff);
            if old {
                let p = e.path();
                if p.is_dir() {
                    let _ = crate::engine::run::remove_scratch(&p);
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

/// Every object hash named in the JSON files of `registry/NAME/VERSION/`
/// (`lineage.json`, `release.json`, …): any 64-hex string value. Keeping a hash
/// that is not an object costs nothing; missing one would break a release.
fn release_hashes(registry: &std::path::Path) -> Vec<String> {
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s)
                if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                out.push(s.to_ascii_lowercase())
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let dirs = |d: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    for name in dirs(registry) {
        for version in dirs(&name) {
            let Ok(rd) = std::fs::read_dir(&version) else {
                continue;
            };
            for f in rd.flatten().map(|e| e.path()) {
                if f.extension().is_some_and(|x| x == "json")
                    && let Ok(text) = std::fs::read_to_string(&f)
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                {
                    collect(&v, &mut out);
                }
            }
        }
    }
    out
}

fn lock_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "lock"))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn verify(args: VerifyArgs, g: &Global) -> Result<Exit, CliError> {
    let ws = open_existing(g).await?;
    let db = &ws.db;
    let mut problems: Vec<String> = Vec::new();
    let integrity = db.integrity_check().await?;
    if integrity != "ok" {
        problems.push(format!("the lineage database is damaged: {integrity}; restore `.pedigree/lineage.db` from a backup"));
    }
    let objects: BTreeSet<String> = ws
        .store
        .list()
        .map_err(|e| CliError::failed(format!("error: {e}")))?
        .into_iter()
        .collect();
    let mut checked = 0usize;
    for h in &objects {
        checked += 1;
        match ws.store.verify(h) {
            Check::Ok(fp) => db.set_fingerprint(h, fp).await?,
            Check::Missing => {}
            Check::Corrupt(why) => problems.push(format!(
                "object {h} is corrupt ({why}); delete it (`{}`) and rerun the workflows that made it",
                ws.store.object_path(h).display()
            )),
        }
    }
    let collected = db.collected().await?;
    let mut missing = BTreeSet::new();
    for (h, what) in db.referenced_hashes().await? {
        if !objects.contains(&h) && !collected.contains(&h) && missing.insert(h.clone()) {
            problems.push(format!("object {} referenced by {what} is missing from the store; rerun the workflow that made it", short(&h)));
        }
    }
    // A folder artifact needs every member object too.
    for t in db.tree_hashes().await? {
        if !objects.contains(&t) {
            continue;
        }
        match ws.store.read_tree(&t) {
            Ok(tree) => {
                for e in tree.entries {
                    if !objects.contains(&e.hash)
                        && !collected.contains(&e.hash)
                        && missing.insert(e.hash.clone())
                    {
                        problems.push(format!(
                            "object {} (file `{}` of folder {}) is missing from the store; rerun the workflow that made it",
                            short(&e.hash), e.path, short(&t)
                        ));
                    }
                }
            }
            Err(e) => problems.push(format!("folder object {}: {e}", short(&t))),
        }
    }
    for (h, what) in db.dangling_references().await? {
        problems.push(format!(
            "{what} references {h}, which the lineage database does not know"
        ));
    }
    if args.json {
        print_json(&serde_json::json!({"objects": checked, "problems": problems}));
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        println!("checked {checked} objects: {} problems", problems.len());
    }
    Ok(if problems.is_empty() {
        Exit::Ok
    } else {
        Exit::StepFailed
    })
}
