//! Step kinds. Built-in kinds ([`builtin`]: one module each, every one the same
//! [`builtin::Builtin`] shape, in a closed table) and plugins, the open end: any
//! command in `plugins/NAME/`. Both run as a child process speaking [`protocol`].

pub mod builtin;
pub mod exec;
pub mod plugin;
pub mod protocol;
pub mod sandbox;
pub mod supervise;
