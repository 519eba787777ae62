//! The engine: step keys, planning, scheduling and executing a resolved workflow,
//! and the records of it in the store and the lineage database.

pub mod events;
pub mod hashing;
pub mod key;
pub mod lockfile;
pub mod resolve;
pub mod run;
pub mod status;
