//! Crash points for the crash campaign (`tests/it/crash.rs`): when the environment
//! variable `PEDIGREE_FAILPOINT` names a point, the process SIGKILLs itself there,
//! exactly as a power cut or an OOM kill would stop it. Unset (always, outside
//! tests), a point costs one load of a `OnceLock`.
//!
//! A step process (a built-in step) gets the variable from the orchestrator with
//! `PEDIGREE_FAILPOINT_TARGET`, the orchestrator's pid: at the point it kills the
//! orchestrator, not itself, and waits to be taken down with it, so the kill
//! lands in the middle of the step's own work.

use std::sync::OnceLock;

/// The named points, in commit-path order.
pub const POINTS: &[&str] = &[
    "run-recorded",
    "object-temp-written",
    "object-renamed",
    "step-started",
    "plugin-running",
    "outputs-stored",
    "commit-in-transaction",
    "step-committed",
    "gc-removing",
    "builtin-writing",
];

/// The variables the orchestrator passes to a step process when a point is armed.
pub fn step_env() -> Option<[(String, String); 2]> {
    let point = armed()?;
    Some([
        ("PEDIGREE_FAILPOINT".into(), point.to_owned()),
        (
            "PEDIGREE_FAILPOINT_TARGET".into(),
            std::process::id().to_string(),
        ),
    ])
}

static ARMED: OnceLock<Option<String>> = OnceLock::new();

fn armed() -> Option<&'static str> {
    ARMED
        .get_or_init(|| std::env::var("PEDIGREE_FAILPOINT").ok())
        .as_deref()
}

/// Die here if `PEDIGREE_FAILPOINT` names this point.
pub fn hit(point: &str) {
    if armed() == Some(point) {
        let target = std::env::var("PEDIGREE_FAILPOINT_TARGET")
            .ok()
            .and_then(|p| p.parse::<i32>().ok());
        // SAFETY: sending SIGKILL to our own process or to our orchestrator.
        unsafe {
            libc::kill(target.unwrap_or_else(|| libc::getpid()), libc::SIGKILL);
        }
        if target.is_some() {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}
