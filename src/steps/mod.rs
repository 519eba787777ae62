//! Step kinds. Built-in kinds (one module each, dispatched through a closed enum)
//! arrive with the data and model issues; plugins are the open end: any command in
//! `plugins/NAME/`.

pub mod builtin;
pub mod exec;
pub mod plugin;
pub mod protocol;
pub mod sandbox;
pub mod supervise;

/// The built-in step kinds the design names. Those not in [`builtin::lookup`] yet
/// give a clear "not available yet" error instead of a stub.
pub const BUILTIN_KINDS: &[&str] = &[
    "clean",
    "dedupe",
    "impute",
    "graph-build",
    "train-gnnr",
    "evaluate",
    "publish",
];
