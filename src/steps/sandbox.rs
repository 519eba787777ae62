//! A write sandbox for plugin processes, with Linux Landlock: a plugin may read
//! anything it could read before, but create, modify or delete files only inside
//! its scratch folder (and write to devices such as `/dev/null`). A plugin that
//! tries to write into the workspace, the store or the user's home gets `EACCES`.
//!
//! The ruleset is built in the parent; the child only calls `prctl` and
//! `landlock_restrict_self` between `fork` and `exec`. On kernels without Landlock
//! the step runs unsandboxed and the run says so once.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;

const WRITE_FILE: u64 = 1 << 1;
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

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
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

impl Sandbox {
    /// Writes allowed under `writable` (all write rights) and to existing files
    /// under `/dev` (write only). `None` when the kernel has no Landlock.
    pub fn new(writable: &[&Path]) -> std::io::Result<Option<Sandbox>> {
        let Some(abi) = abi() else { return Ok(None) };
        let mut all = WRITE_FILE
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
        let attr = RulesetAttr {
            handled_access_fs: all,
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
        let file_rights = WRITE_FILE | if abi >= 3 { TRUNCATE } else { 0 };
        let mut rules: Vec<(&Path, u64)> = writable.iter().map(|p| (*p, all)).collect();
        rules.push((Path::new("/dev"), file_rights));
        for (path, rights) in rules {
            let Ok(dir) = open_path(path) else { continue };
            let rule = PathBeneathAttr {
                allowed_access: rights,
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
                return Err(std::io::Error::last_os_error());
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
