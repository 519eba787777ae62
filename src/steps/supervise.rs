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
//!   dies, however it dies, the supervisor is told and takes the tree down; it
//!   arms that signal itself, so the orchestrator starts it without running any
//!   code between fork and exec (std then spawns with `posix_spawn` on glibc
//!   2.29+, which does not copy the orchestrator's large address space for
//!   every step);
//! - it applies the step's Landlock sandbox ([`super::sandbox`]) to the step
//!   alone, between its own fork and the step's exec: the supervisor stays
//!   unconfined, so it can still read `/proc` for the processes it adopts;
//! - when the step's main process exits, or after the grace period that follows a
//!   SIGTERM, it SIGKILLs the step's process group and every process re-parented
//!   to it, generation by generation, until it has no child left;
//! - it exits with the step's own status (re-raising the step's fatal signal), so
//!   the orchestrator sees exactly what the step did; a normal exit therefore
//!   also says that the whole tree is gone (a tree it cannot reap is reported
//!   as killed by SIGKILL).
//!
//! Only plain system calls: no runtime, no threads, nothing that can block on a
//! lock the orchestrator held.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::sandbox::{Policy, Sandbox};

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

/// What one supervisor is asked to do, as its command line says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The orchestrator's pid: if it is gone by the time we start, nothing runs.
    pub parent: i32,
    /// Time between passing on a stop (SIGTERM) and killing the tree.
    pub grace: Duration,
    /// The file sandbox to confine the step to, applied to the step alone.
    pub sandbox: Option<Policy>,
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// The command line that starts a supervisor (`prefix`, from [`command`]) for
/// `argv`: `--parent PID --grace-ms MS [--sandbox [--read P]… [--write P]…
/// [--list P]…] -- ARGV…`. Paths travel as arguments, never through a shell.
pub fn command_line(
    prefix: &[OsString],
    parent: u32,
    grace: Duration,
    sandbox: Option<&Policy>,
    argv: &[String],
) -> Vec<OsString> {
    let mut line: Vec<OsString> = prefix.to_vec();
    line.extend([
        "--parent".into(),
        parent.to_string().into(),
        "--grace-ms".into(),
        grace.as_millis().to_string().into(),
    ]);
    if let Some(p) = sandbox {
        line.push("--sandbox".into());
        for (flag, paths) in [
            ("--read", &p.read),
            ("--write", &p.read_write),
            ("--list", &p.list),
        ] {
            for path in paths {
                line.push(flag.into());
                line.push(path.clone().into_os_string());
            }
        }
    }
    line.push("--".into());
    line.extend(argv.iter().map(OsString::from));
    line
}

/// Read a supervisor's command line (the arguments after the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request, String> {
    let mut args = args.into_iter();
    let (mut parent, mut grace, mut sandboxed) = (None, None, false);
    let mut policy = Policy::default();
    let mut separated = false;
    while let Some(a) = args.next() {
        let flag = a.to_str().unwrap_or_default();
        let mut value = || args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        let number = |v: OsString| {
            v.to_str()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| format!("`{flag}` needs a number"))
        };
        match flag {
            "--parent" => {
                let p = number(value()?)?;
                parent = Some(i32::try_from(p).map_err(|_| format!("no such pid {p}"))?);
            }
            "--grace-ms" => grace = Some(Duration::from_millis(number(value()?)?)),
            "--sandbox" => sandboxed = true,
            "--read" => policy.read.push(value()?.into()),
            "--write" => policy.read_write.push(value()?.into()),
            "--list" => policy.list.push(value()?.into()),
            "--" => {
                separated = true;
                break;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let sandbox = match (sandboxed, policy == Policy::default()) {
        (true, _) => Some(policy),
        (false, true) => None,
        (false, false) => {
            return Err(
                "`--read`, `--write` and `--list` are only meaningful after `--sandbox`".into(),
            );
        }
    };
    let (Some(parent), Some(grace)) = (parent, grace) else {
        return Err("`--parent` and `--grace-ms` are required".into());
    };
    let mut argv = args;
    let program = match (separated, argv.next()) {
        (true, Some(p)) => p,
        _ => return Err("no command after `--`".into()),
    };
    Ok(Request {
        parent,
        grace,
        sandbox,
        program,
        args: argv.collect(),
    })
}

/// Entry point from a command line (see [`command_line`]).
pub fn main_from_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    match parse(args) {
        Ok(req) => supervise(req),
        Err(e) => {
            eprintln!(
                "pedigree-supervise: {e}\nusage: pedigree-supervise --parent PID --grace-ms MS [--sandbox [--read DIR]… [--write DIR]… [--list DIR]…] -- COMMAND [ARG…] (started by `pedigree run`, not by people)"
            );
            ExitCode::from(2)
        }
    }
}

/// Run the requested command under supervision.
fn supervise(req: Request) -> ExitCode {
    // SAFETY: plain prctl/sigprocmask calls on this single-threaded process.
    let signals = unsafe {
        // Our own death signal: told (catchably) when the orchestrator dies,
        // however it dies. Armed here rather than between the orchestrator's fork
        // and exec, so the orchestrator can start us without running code in
        // the child (a vfork-style spawn, not a fork of a large process).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    // If the orchestrator died before the death signal was armed, we were
    // re-parented already and must not start anything.
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != req.parent {
        return ExitCode::from(CANNOT_START);
    }
    // The ruleset confines the step, not us: we still read `/proc` to find the
    // processes we adopt.
    let sandbox = match req.sandbox.as_ref().map(Sandbox::new) {
        None => None,
        Some(Ok(Some(s))) => Some(s),
        Some(Ok(None)) => {
            eprintln!("cannot set up the file sandbox: this kernel has no Landlock");
            return ExitCode::from(CANNOT_START);
        }
        Some(Err(e)) => {
            eprintln!("cannot set up the file sandbox: {e}");
            return ExitCode::from(CANNOT_START);
        }
    };
    let program = &req.program;
    let mut cmd = std::process::Command::new(program);
    cmd.args(&req.args).process_group(0);
    // The step must not inherit our blocked signals (SIGTERM above all), and
    // gets the sandbox.
    // SAFETY: sigemptyset, sigprocmask, prctl and the Landlock call are
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(s) = &sandbox {
                s.restrict_self()?;
            }
            Ok(())
        });
    }
    let pid = match cmd.spawn() {
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
                deadline.get_or_insert_with(|| Instant::now() + req.grace);
            }
            _ => {
                tree.reap();
            }
        }
    }
    if !tree.kill_all() {
        // Something of the step outlived every round (stuck in the kernel): the
        // orchestrator must not take the step as finished, so it is reported
        // killed, whatever its main process returned.
        eprintln!(
            "pedigree-supervise: processes of the step could not be reaped; reporting it killed"
        );
        tree.status = Some(libc::SIGKILL);
    }
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
    /// process stuck in the kernel cannot hold the orchestrator forever. True
    /// when no child is left.
    fn kill_all(&mut self) -> bool {
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
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_command_line_reads_back_as_the_request_it_was_made_from() {
        let policy = Policy {
            read_write: vec![PathBuf::from("/ws/.pedigree/tmp/s")],
            read: vec![PathBuf::from("/usr"), PathBuf::from("/a dir/with space")],
            list: vec![PathBuf::from("/ws")],
        };
        let argv = ["python3".to_owned(), "--read".to_owned(), "-".to_owned()];
        for sandbox in [None, Some(&policy)] {
            let line = command_line(
                &os(&["/bin/pedigree-supervise"]),
                42,
                Duration::from_millis(3000),
                sandbox,
                &argv,
            );
            assert_eq!(line[0], "/bin/pedigree-supervise");
            let req = parse(line.into_iter().skip(1)).unwrap();
            assert_eq!(
                req,
                Request {
                    parent: 42,
                    grace: Duration::from_millis(3000),
                    sandbox: sandbox.cloned(),
                    program: "python3".into(),
                    // The step's own flags are not read as ours.
                    args: os(&["--read", "-"]),
                }
            );
        }
    }

    #[test]
    fn a_bad_command_line_is_refused_with_what_is_wrong() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--parent", "1", "--grace-ms", "5"],
                "no command after `--`",
            ),
            (&["--parent", "1", "--", "sh"], "`--grace-ms` are required"),
            (
                &["--parent", "x", "--grace-ms", "5", "--", "sh"],
                "`--parent` needs a number",
            ),
            (
                &["--parent", "1", "--grace-ms"],
                "`--grace-ms` needs a value",
            ),
            (
                &[
                    "--parent",
                    "1",
                    "--grace-ms",
                    "5",
                    "--read",
                    "/",
                    "--",
                    "sh",
                ],
                "only meaningful after `--sandbox`",
            ),
            (
                &["--parent", "1", "--grace-ms", "5", "--bogus", "--", "sh"],
                "unknown argument `--bogus`",
            ),
        ];
        for (line, want) in cases {
            let e = parse(os(line)).unwrap_err();
            assert!(e.contains(want), "{line:?}: {e}");
        }
    }
}
