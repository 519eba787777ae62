//! `verify`: re-hash every object, check the database, and name every lineage
//! reference whose object is missing (folder members included), with what to do.

use std::collections::BTreeSet;

use super::MaintenanceError;
use crate::store::Check;
use crate::util::fmt::short;
use crate::workspace::ReadWorkspace;

/// What verify found. `problems` are sentences for people, each saying what to do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub objects: usize,
    pub problems: Vec<String>,
}

/// Verify `ws`. It writes nothing: not even the fingerprints of the objects it
/// re-hashed (a later cache hit re-checks what changed since).
pub async fn verify(ws: &ReadWorkspace) -> Result<Verified, MaintenanceError> {
    let db = &ws.db;
    let mut problems: Vec<String> = Vec::new();
    let integrity = db.integrity_check().await?;
    if integrity != "ok" {
        problems.push(format!(
            "the lineage database is damaged: {integrity}; restore `.pedigree/lineage.db` from a backup"
        ));
    }
    let objects: BTreeSet<String> = ws.store.list()?.into_iter().collect();
    for h in &objects {
        match ws.store.verify(h) {
            Check::Ok(_) | Check::Missing => {}
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
            problems.push(format!(
                "object {} referenced by {what} is missing from the store; rerun the workflow that made it",
                short(&h)
            ));
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
                            short(&e.hash),
                            e.path,
                            short(&t)
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
    Ok(Verified {
        objects: objects.len(),
        problems,
    })
}
