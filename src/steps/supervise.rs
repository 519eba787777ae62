//! `pedigree __supervise`: the small process between the orchestrator and a step
//! that owns the step's whole process tree.
//!
//! A process group is not enough to contain a step: a daemon that calls `setsid`
//! leaves the group, and `PR_SET_PDEATHSIG` only reaches the direct child when the
//! orchestrator is SIGKILLed. The supervisor closes both holes:
//!
//! - it is a *child subreaper*, so every descendant the step orphans (a
//!   double-forked daemon included) is re-parented to it, not to init;
//! - its own death signal is SIGTERM, which it can catch: when the orchestrator
//!   dies, however it dies, the supervisor is told and takes the tree down;
//! - when the step's main process exits, or after the grace period that follows a
//!   SIGTERM, it SIGKILLs the step's process group and every process re-parented
//!   to it, generation by generation, until it has no child left;
//! - it exits with the step's own status (re-raising the step's fatal signal), so
//!   the orchestrator sees exactly what the step did.
//!
//! Only plain system calls: no runtime, no threads, nothing that can block on a
//! lock the orchestrator held.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Exit status when the step cannot be started (as a shell reports it).
pub const CANNOT_START: u8 = 127;

/// The small executable installed next to `pedigree` that runs only the supervisor
/// (`src/bin/pedigree-supervise.rs`): it starts in a fraction of the time the
/// full binary takes, which is paid once per step.
pub const HELPER: &str = "pedigree-supervise";

/// How to start a supervisor from this executable: the helper beside it, else
/// this executable's own `__supervise` entry point. Looked up once per process.
pub fn command() -> Option<&'static [OsString]> {
    static COMMAND: OnceLock<Option<Vec<OsString>>> = OnceLock::new();
    COMMAND
        .get_or_init(|| {
            let exe = std::env::current_exe().ok()?;
            let helper = exe.parent()?.join(HELPER);
            Some(if helper.is_file() {
                vec![helper.into_os_string()]
            } else {
                vec![exe.into_os_string(), "__supervise".into()]
            })
        })
        .as_deref()
}

/// Entry point from a command line: `--parent PID --grace-ms MS -- ARGV…`.
pub fn main_from_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let mut args = args.into_iter();
    let number = |v: Option<OsString>| v?.to_str()?.parse::<u64>().ok();
    let (mut parent, mut grace, mut separated) = (None, None, false);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--parent") => parent = number(args.next()).and_then(|p| i32::try_from(p).ok()),
            Some("--grace-ms") => grace = number(args.next()).map(Duration::from_millis),
            Some("--") => {
                separated = true;
                break;
            }
            // Anything else: not our command line.
            _ => break,
        }
    }
    let argv: Vec<OsString> = args.collect();
    match (separated, parent, grace, argv.split_first()) {
        (true, Some(p), Some(g), Some((program, rest))) => supervise(p, g, program, rest),
        _ => {
            eprintln!(
                "usage: pedigree-supervise --parent PID --grace-ms MS -- COMMAND [ARG…] (started by `pedigree run`, not by people)"
            );
            ExitCode::from(2)
        }
    }
}

/// Run `program` with `args` under supervision. `parent` is the orchestrator's
/// pid: if it is already gone, nothing starts.
fn supervise(parent: i32, grace: Duration, program: &OsString, args: &[OsString]) -> ExitCode {
    // SAFETY: plain prctl/sigprocmask calls on this single-threaded process.
    let signals = unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    // The death signal was armed before exec; if the orchestrator died before
    // that, we were re-parented already and must not start anything.
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != parent {
        return ExitCode::from(CANNOT_START);
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).process_group(0);
    // The step must not inherit our blocked signals (SIGTERM above all).
    // SAFETY: sigemptyset and sigprocmask are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    let pid = match child {
        Ok(c) => c.id() as i32,
        Err(e) => {
            eprintln!("cannot start `{}`: {e}", program.to_string_lossy());
            return ExitCode::from(CANNOT_START);
        }
    };
    let mut tree = Tree {
        main: pid,
        status: None,
    };
    let mut deadline: Option<Instant> = None;
    while tree.status.is_none() {
        let timeout = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => break,
            },
            None => None,
        };
        match wait_signal(&signals, timeout) {
            Some(libc::SIGTERM | libc::SIGINT | libc::SIGHUP) => {
                // Stop requested (or the orchestrator died): pass it on, then
                // give the step its grace period.
                // SAFETY: signalling the step's own group.
                unsafe { libc::killpg(pid, libc::SIGTERM) };
                deadline.get_or_insert_with(|| Instant::now() + grace);
            }
            _ => {
                tree.reap();
            }
        }
    }
    tree.kill_all();
    tree.exit()
}

struct Tree {
    /// The step's main process (also its process group id).
    main: i32,
    /// Its wait status once it has exited.
    status: Option<i32>,
}

impl Tree {
    /// Collect every child that has exited, without blocking. False when no child
    /// is left at all.
    fn reap(&mut self) -> bool {
        loop {
            let mut st = 0;
            // SAFETY: waitpid with a valid status pointer.
            let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if r > 0 {
                if r == self.main {
                    self.status = Some(st);
                }
                continue;
            }
            return r == 0;
        }
    }

    /// SIGKILL the step's group and every child (own or adopted), round after
    /// round: killing a process re-parents its children to us. Bounded, so a
    /// process stuck in the kernel cannot hold the orchestrator forever.
    fn kill_all(&mut self) {
        // SAFETY: signalling the step's group; ESRCH when it is gone.
        unsafe { libc::killpg(self.main, libc::SIGKILL) };
        for _ in 0..2000 {
            let kids = children();
            for &k in &kids {
                // SAFETY: k is our child (alive or a zombie); the pid cannot be
                // reused before we reap it.
                unsafe {
                    libc::kill(k, libc::SIGKILL);
                }
            }
            if !self.reap() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn exit(self) -> ExitCode {
        // Not reaped (only if the kernel kept it past every round): report it
        // as killed, which is what we did.
        let st = self.status.unwrap_or(libc::SIGKILL);
        if libc::WIFEXITED(st) {
            return ExitCode::from(libc::WEXITSTATUS(st) as u8);
        }
        let sig = if libc::WIFSIGNALED(st) {
            libc::WTERMSIG(st)
        } else {
            libc::SIGKILL
        };
        // Die of the same signal, so the orchestrator sees what the step saw.
        // SAFETY: restoring the default action and unblocking before raising.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
        }
        ExitCode::from(128u8.wrapping_add(sig as u8))
    }
}

/// Wait for one of the blocked signals, at most `timeout` (forever if `None`).
fn wait_signal(set: &libc::sigset_t, timeout: Option<Duration>) -> Option<i32> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: set and ts are valid for the call; no siginfo is requested.
    let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), ts_ptr) };
    (r > 0).then_some(r)
}

/// Our children, from `/proc` (zombies included).
fn children() -> Vec<i32> {
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    // Fast path: the kernel's own list (CONFIG_PROC_CHILDREN).
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")) {
        return s
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(me))
        .collect()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
