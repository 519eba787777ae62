//! Leaf helpers that every layer may use and that use nothing else in the crate:
//! text for people ([`fmt`]), canonical JSON ([`canonical`]), RFC 3339 timestamps and
//! calendar arithmetic ([`time`]), the pinned random streams ([`rng`]) and the
//! topological sort ([`topo`]).
//!
//! **Architecture invariant:** nothing under `util/` names `crate::` — it sits below
//! every other module, so `spec`, `store`, `table`, `gnn` and `tui` can share one copy of
//! each helper without depending on each other (checked by `tests/it/layers.rs`). The fuzz
//! crate compiles it standalone with `spec` and `diag`.

pub mod canonical;
pub mod fmt;
pub mod rng;
pub mod time;
pub mod topo;
