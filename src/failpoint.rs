//! Crash points for the crash campaign (`tests/crash.rs`): when the environment
//! variable `PEDIGREE_FAILPOINT` names a point, the process SIGKILLs itself there,
//! exactly as a power cut or an OOM kill would stop it. Unset (always, outside
//! tests), a point costs one load of a `OnceLock`.

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
];

static ARMED: OnceLock<Option<String>> = OnceLock::new();

/// Die here if `PEDIGREE_FAILPOINT` names this point.
pub fn hit(point: &str) {
    let armed = ARMED.get_or_init(|| std::env::var("PEDIGREE_FAILPOINT").ok());
    if armed.as_deref() == Some(point) {
        // SAFETY: sending SIGKILL to our own process; nothing after this runs.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
