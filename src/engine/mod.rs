//! The engine: step keys, planning, scheduling and executing a resolved workflow,
//! and the records of it in the store and the lineage database.
//!
//! `run` drives a run; `plan` decides which steps take part and what feeds them;
//! `cache` answers "would this step run?" for `run` and `status` alike; `execute`
//! runs one step from its key lock to its commit; `invoke` builds the step's
//! invocation, which an `executor` runs. `executor::Executor` and
//! `cache::ResultCache` are the seams a remote executor or cache plugs into.

pub mod cache;
pub mod events;
pub mod execute;
pub mod executor;
pub mod hashing;
pub mod inputs;
pub mod invoke;
pub mod key;
pub mod lockfile;
pub mod plan;
pub mod provenance;
pub mod resolve;
pub mod run;
pub mod secrets;
pub mod status;
