//! The integration tests: one binary, one module per area (as ripgrep's
//! `tests/tests.rs` and just's `tests/lib.rs`), so the heavy dependencies are linked
//! once. Every test runs the real `pedigree` binary on real workflows in a temp
//! folder, except `layers` (which reads the source tree).

/// The temp workspace builder, shell test plugins, and the `snapshot!` helper.
#[macro_use]
mod common;

/// The bad-workflow corpus: each file's diagnostic, pinned.
mod bad_workflows;
/// Each built-in kind's (version, output hash) pinned, and computed twice.
mod builtin_versions;
/// `init`, `completions`, closed pipes, gc and lock files outside `workflows/`.
mod cli;
/// Kills at random moments and at named failpoints: nothing lost, nothing corrupt.
mod crash;
/// The data steps on the committed sample and on generated tables.
mod data_steps;
/// The shipped plugins' own tests and the README's quickstart.
mod examples;
/// GNN-R end to end: graph, train, evaluate, publish, recommend, gc of releases.
mod gnn;
/// The layer rule and the code map of ARCHITECTURE.md.
mod layers;
/// OpenLineage events: schema-valid, in order, delivered once to a real HTTP catalogue.
mod openlineage;
/// The human output of every command, through filtered snapshots.
mod output;
/// The remote cache on moto (S3) and a folder: sharing, damage, trust, gc, secrets.
mod remote;
/// Running workflows: caching, keys, reasons, status, lock files, lineage, gc.
mod run;
/// Secrets, the sandbox, process trees, signals and scheduling.
mod security;
/// The dashboard: screens pinned, state, and a real terminal through tmux.
mod tui;
