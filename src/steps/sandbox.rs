//! A filesystem sandbox for plugin processes, with Linux Landlock. A sandboxed
//! plugin may:
//!
//! - read, write, create and delete under its scratch folder;
//! - read (not write) the workspace's own files, except the `.pedigree/` folder,
//!   where only `objects/` is readable (its inputs are links into it);
//! - read and execute the system (`/usr`, `/etc`, `/proc`, …), the folders on its
//!   `PATH` and their toolchain prefixes (the parent of a `bin`, `sbin` or `shims`
//!   folder, so a pyenv or virtualenv interpreter finds its libraries) and the
//!   `read:` folders its manifest declares;
//! - read and write existing devices (`/dev/null`, ttys);
//! - on Linux 6.12+ (Landlock ABI 6), signal and reach through abstract unix
//!   sockets only processes of its own sandbox: not its supervisor, not
//!   pedigree, not another step.
//!
//! Everything else, the user's home, other workspaces and `/tmp` among them, gives
//! `EACCES`. The step supervisor ([`super::supervise`]) builds the ruleset from
//! its command line and, between its own `fork` and the step's `exec`, calls only
//! `sigprocmask`, `prctl` and `landlock_restrict_self`. On kernels without
//! Landlock the step runs unconfined and the run says so once.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const REMOVE_DIR: u64 = 1 << 4;
const REMOVE_FILE: u64 = 1 << 5;
const MAKE_CHAR: u64 = 1 << 6;
const MAKE_DIR: u64 = 1 << 7;
const MAKE_REG: u64 = 1 << 8;
const MAKE_SOCK: u64 = 1 << 9;
const MAKE_FIFO: u64 = 1 << 10;
const MAKE_BLOCK: u64 = 1 << 11;
const MAKE_SYM: u64 = 1 << 12;
const REFER: u64 = 1 << 13;
const TRUNCATE: u64 = 1 << 14;

/// Landlock ABI 6: the sandboxed process may not signal, nor connect to an
/// abstract unix socket of, any process outside its own sandbox.
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    /// Always 0: the network is not restricted.
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// A ready ruleset: apply it in the child with [`Sandbox::restrict_self`].
#[derive(Debug)]
pub struct Sandbox {
    ruleset: OwnedFd,
}

/// The Landlock ABI version the kernel offers, if any.
pub fn abi() -> Option<i64> {
    // SAFETY: querying the ABI version with a null attribute is the documented probe.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v)
}

/// Whether this kernel offers Landlock (probed once per process).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| abi().is_some())
}

fn open_path(p: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: a plain open(2) of a NUL-terminated path; the fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Folders readable by every sandboxed step: the system a program needs to start.
const SYSTEM: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/proc",
    "/sys",
    "/nix/store",
    // Where `/etc/resolv.conf` points on systemd and resolvconf hosts (not all of
    // `/run`: container secrets live there).
    "/run/systemd/resolve",
    "/run/resolvconf",
];

/// What a sandboxed step may touch (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Read, write, create, delete.
    pub read_write: Vec<PathBuf>,
    /// Read and execute.
    pub read: Vec<PathBuf>,
    /// List the folder tree (names only, no file contents).
    pub list: Vec<PathBuf>,
}

impl Policy {
    /// The policy of one step: `scratch` writable; the workspace (but not
    /// `.pedigree/` beyond `objects/`), the system, `path_var`'s folders and
    /// `extra` readable. (The supervisor is not confined, so its executable
    /// needs no rule.)
    pub fn for_step(
        scratch: &Path,
        workspace: &Path,
        extra: &[PathBuf],
        path_var: Option<&str>,
    ) -> Policy {
        let mut read: Vec<PathBuf> = SYSTEM.iter().map(PathBuf::from).collect();
        if let Ok(entries) = std::fs::read_dir(workspace) {
            for e in entries.flatten() {
                if e.file_name() != ".pedigree" {
                    read.push(e.path());
                }
            }
        }
        read.push(workspace.join(".pedigree").join("objects"));
        for dir in std::env::split_paths(path_var.unwrap_or_default()) {
            if !dir.is_absolute() {
                continue;
            }
            let prefix = matches!(
                dir.file_name().and_then(|n| n.to_str()),
                Some("bin" | "sbin" | "shims")
            );
            if prefix && let Some(parent) = dir.parent().filter(|p| *p != Path::new("/")) {
                read.push(parent.to_owned());
            }
            read.push(dir);
        }
        read.extend(extra.iter().cloned());
        Policy {
            read_write: vec![scratch.to_owned()],
            read,
            list: vec![workspace.to_owned()],
        }
    }
}

impl Sandbox {
    /// The ruleset for `policy`, plus read and write access to existing devices
    /// under `/dev`. `None` when the kernel has no Landlock.
    pub fn new(policy: &Policy) -> std::io::Result<Option<Sandbox>> {
        let Some(abi) = abi() else { return Ok(None) };
        let mut all = EXECUTE
            | WRITE_FILE
            | READ_FILE
            | READ_DIR
            | REMOVE_DIR
            | REMOVE_FILE
            | MAKE_CHAR
            | MAKE_DIR
            | MAKE_REG
            | MAKE_SOCK
            | MAKE_FIFO
            | MAKE_BLOCK
            | MAKE_SYM;
        if abi >= 2 {
            all |= REFER;
        }
        if abi >= 3 {
            all |= TRUNCATE;
        }
        // Scoped (ABI 6+): a step cannot kill its supervisor to escape it, nor
        // hand a file descriptor to a process outside through an abstract socket.
        // Older kernels get zeros there, which they accept.
        let attr = RulesetAttr {
            handled_access_fs: all,
            handled_access_net: 0,
            scoped: if abi >= 6 {
                SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET
            } else {
                0
            },
        };
        // SAFETY: attr is a valid ruleset attribute of the size we pass.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a new descriptor we own.
        let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let truncate = if abi >= 3 { TRUNCATE } else { 0 };
        // Rights that make sense on a file (not a folder) rule.
        let file_only = EXECUTE | WRITE_FILE | READ_FILE | truncate;
        let read = EXECUTE | READ_FILE | READ_DIR;
        let mut rules: Vec<(&Path, u64)> = Vec::new();
        rules.extend(policy.read.iter().map(|p| (p.as_path(), read)));
        rules.extend(policy.read_write.iter().map(|p| (p.as_path(), all)));
        rules.push((
            Path::new("/dev"),
            READ_FILE | READ_DIR | WRITE_FILE | truncate,
        ));
        rules.extend(policy.list.iter().map(|p| (p.as_path(), READ_DIR)));
        for (path, rights) in rules {
            // A folder that does not exist (no `/lib32` here) needs no rule.
            let Ok(dir) = open_path(path) else { continue };
            let dir = std::fs::File::from(dir);
            let is_dir = dir.metadata().is_ok_and(|m| m.is_dir());
            let rule = PathBeneathAttr {
                allowed_access: if is_dir { rights } else { rights & file_only },
                parent_fd: dir.as_raw_fd(),
            };
            // SAFETY: rule is a valid path-beneath attribute; both fds are open.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset.as_raw_fd(),
                    RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                return Err(std::io::Error::other(format!("{}: {e}", path.display())));
            }
        }
        Ok(Some(Sandbox { ruleset }))
    }

    /// Apply the ruleset to the calling process. Only async-signal-safe calls: this
    /// runs in the child between `fork` and `exec`.
    pub fn restrict_self(&self) -> std::io::Result<()> {
        // SAFETY: prctl and the Landlock syscall take plain integers here.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::syscall(
                libc::SYS_landlock_restrict_self,
                self.ruleset.as_raw_fd(),
                0u32,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_policy_reads_the_workspace_but_not_its_database() {
        let ws = tempfile::tempdir().unwrap();
        for d in [
            ".pedigree/objects",
            ".pedigree/tmp/s",
            "plugins",
            "workflows",
        ] {
            std::fs::create_dir_all(ws.path().join(d)).unwrap();
        }
        std::fs::write(ws.path().join(".pedigree/lineage.db"), "").unwrap();
        let scratch = ws.path().join(".pedigree/tmp/s");
        let p = Policy::for_step(
            &scratch,
            ws.path(),
            &[PathBuf::from("/opt/models")],
            Some("/home/u/.pyenv/shims:/usr/local/bin:relative/bin:/bin"),
        );
        assert_eq!(p.read_write, [scratch]);
        let has = |q: &str| p.read.iter().any(|r| r == Path::new(q));
        let in_ws = |q: &str| p.read.contains(&ws.path().join(q));
        assert!(in_ws("plugins") && in_ws("workflows") && in_ws(".pedigree/objects"));
        assert!(!in_ws(".pedigree"), "the database folder is not readable");
        assert!(
            has("/home/u/.pyenv/shims") && has("/home/u/.pyenv"),
            "toolchain prefix"
        );
        assert!(has("/usr/local/bin") && has("/usr/local"));
        assert!(!has("/"), "`/bin` does not open the root");
        assert!(
            !p.read.iter().any(|r| r.is_relative()),
            "relative PATH entries"
        );
        assert!(has("/opt/models") && has("/etc"));
        assert_eq!(p.list, [ws.path().to_owned()]);
    }
}
