//! Whether a process is alive on this host: how `recover_dead_runs` tells a run
//! whose `pedigree` was killed from one still in progress, and how the step
//! supervisor tells its child is gone. A kernel question, not a query, so it sits
//! beside the queries rather than among them.

/// Whether a process with `pid` exists on this host.
pub fn process_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's host name (`localhost` when the kernel does not say): with a pid,
/// what names a live process.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}
