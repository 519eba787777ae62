//! Store upkeep below the command line: [`gc`] (what may go, by reachability from
//! recent runs, lock files and releases, and the sweep that removes it) and
//! [`verify`] (every object re-hashed, every lineage reference checked). `cli/gc.rs`
//! only parses flags and prints what these return.
//!
//! **Architecture invariant:** gc never removes an object during a run. Runs hold the
//! workspace lock shared and gc holds it exclusively ([`gc::collect`] takes it), and gc
//! records what it removes before removing it, so a kill in between leaves objects
//! marked collected but present — never lineage pointing at an unexplained hole.
//! Checked by `tests/it/crash.rs` (`killed_during_gc…`) and `tests/it/run.rs`
//! (`gc_keeps_what_runs_and_lock_files_need`).

pub mod gc;
pub mod remote_gc;
pub mod verify;

/// A failure of gc or verify: the database, the store, or the workspace lock.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Lineage(#[from] crate::lineage::LineageError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot lock the workspace: {0}")]
    Lock(#[source] std::io::Error),
}
