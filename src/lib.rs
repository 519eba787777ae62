//! pedigree runs declarative ML workflows as a content-hashed DAG, records the
//! lineage of every artifact in SQLite and shows it in the terminal.
//!
//! The phases a workflow goes through, and the modules that own them:
//! [`spec`] (YAML → validated workflow → DAG), [`engine`] (resolve against plugins,
//! step keys, schedule, execute), [`store`] (content-addressed objects),
//! [`lineage`] (the SQLite record), [`steps`] (step kinds), [`tui`] (the dashboard), [`cli`] (commands).

pub mod alloc;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod diag;
pub mod engine;
pub mod failpoint;
pub mod gnn;
pub mod keys;
pub mod lineage;
pub mod maintenance;
pub mod openlineage;
pub mod registry;
pub mod remote;
pub mod sample;
pub mod spec;
pub mod steps;
pub mod store;
pub mod table;
pub mod tui;
pub mod util;
pub mod workspace;
