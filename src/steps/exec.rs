//! Running an external command for a step: under a supervisor (see
//! [`super::supervise`]) that owns its whole process tree, with a cleared
//! environment, a captured and size-capped log, a timeout and cancellation that
//! take the whole tree down (SIGTERM, then SIGKILL after a grace period).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

/// Bytes of output kept in a step's log; the rest is counted and dropped.
pub const LOG_LIMIT: u64 = 16 * 1024 * 1024;
/// Bytes of stderr kept as the "tail" shown on failure and stored in lineage.
pub const TAIL_LIMIT: usize = 8 * 1024;
/// Time between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// What to run.
pub struct Invocation<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    /// The complete environment of the process (nothing is inherited).
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub log_path: PathBuf,
    pub cancel: watch::Receiver<bool>,
    /// Confine the process's file access (see [`super::sandbox`]): applied by
    /// the supervisor, or here between fork and exec when there is none.
    pub sandbox: Option<&'a super::sandbox::Policy>,
    /// How to start the supervisor ([`super::supervise::command`]). Without it
    /// the command runs directly: its process group is still taken down, but a
    /// daemon that leaves the group, or outlives a SIGKILLed orchestrator, escapes.
    pub supervisor: Option<&'static [std::ffi::OsString]>,
    /// Called with the rest of every stderr line that starts with
    /// [`PROGRESS_PREFIX`], as it arrives (the line is logged as well).
    pub on_progress: Option<Box<ProgressFn>>,
}

/// What receives a step's progress lines.
pub type ProgressFn = dyn Fn(&str) + Send + Sync;

/// The progress-line prefix, defined with the rest of the step protocol.
pub use super::protocol::PROGRESS_PREFIX;

/// Longer stderr lines are not looked at for progress (they are still logged).
const PROGRESS_LINE_LIMIT: usize = 4096;

/// Finds progress lines in a byte stream that arrives in arbitrary pieces.
#[derive(Default)]
struct ProgressLines {
    line: Vec<u8>,
    /// The current line outgrew the limit: skip to its end.
    skipping: bool,
}

impl ProgressLines {
    fn feed(&mut self, bytes: &[u8], report: &dyn Fn(&str)) {
        for &b in bytes {
            if b == b'\n' {
                if !self.skipping
                    && let Ok(line) = std::str::from_utf8(&self.line)
                    && let Some(rest) = line.strip_prefix(PROGRESS_PREFIX)
                {
                    report(rest.trim_end_matches('\r'));
                }
                self.line.clear();
                self.skipping = false;
            } else if !self.skipping {
                self.line.push(b);
                if self.line.len() > PROGRESS_LINE_LIMIT {
                    self.line.clear();
                    self.skipping = true;
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Success,
    Code(i32),
    Signal(i32),
    TimedOut(Duration),
    Cancelled,
}

#[derive(Debug)]
pub struct Outcome {
    pub exit: Exit,
    pub stderr_tail: String,
    /// Bytes of output dropped past [`LOG_LIMIT`].
    pub dropped: u64,
}

struct LogSink {
    file: std::fs::File,
    written: u64,
    dropped: u64,
    tail: VecDeque<u8>,
}

impl LogSink {
    fn push(&mut self, bytes: &[u8], is_stderr: bool) {
        use std::io::Write;
        let room = LOG_LIMIT.saturating_sub(self.written);
        let keep = (bytes.len() as u64).min(room) as usize;
        if keep > 0 && self.file.write_all(&bytes[..keep]).is_ok() {
            self.written += keep as u64;
        }
        self.dropped += (bytes.len() - keep) as u64;
        if is_stderr {
            self.tail.extend(bytes.iter().copied());
            let excess = self.tail.len().saturating_sub(TAIL_LIMIT);
            self.tail.drain(..excess);
        }
    }
}

async fn pump(
    mut r: impl AsyncRead + Unpin,
    sink: Arc<Mutex<LogSink>>,
    is_stderr: bool,
    on_progress: Option<Arc<ProgressFn>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = ProgressLines::default();
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Ok(mut s) = sink.lock() {
                    s.push(&buf[..n], is_stderr);
                }
                if let Some(report) = &on_progress {
                    lines.feed(&buf[..n], report.as_ref());
                }
            }
        }
    }
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: killpg only sends a signal; a stale pgid yields ESRCH, which we ignore.
    unsafe {
        libc::killpg(pgid, sig);
    }
}

/// Sends SIGTERM to the supervisor if the run is abandoned (its future dropped)
/// before the step finished, so the supervisor still takes the tree down.
struct StopOnDrop(Option<i32>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: signalling our own unreaped child; the pid cannot be reused.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

/// Run the command to completion, timeout or cancellation.
pub async fn run(inv: Invocation<'_>) -> std::io::Result<Outcome> {
    let log = std::fs::File::create(&inv.log_path)?;
    let supervised = inv.supervisor.is_some();
    let mut cmd = match inv.supervisor {
        Some(prefix) => {
            let line = super::supervise::command_line(
                prefix,
                std::process::id(),
                KILL_GRACE,
                inv.sandbox,
                inv.argv,
            );
            let mut c = Command::new(&line[0]);
            c.args(&line[1..]);
            c
        }
        None => {
            let mut c = Command::new(&inv.argv[0]);
            c.args(&inv.argv[1..]);
            // No supervisor to arm a death signal or apply the sandbox: both
            // happen here, between fork and exec. SIGKILL, as a bare command
            // cannot be trusted to clean up on a catchable signal.
            let sandbox = match inv.sandbox {
                Some(policy) => super::sandbox::Sandbox::new(policy).map_err(|e| {
                    std::io::Error::other(format!("cannot set up the file sandbox: {e}"))
                })?,
                None => None,
            };
            // SAFETY: prctl and the Landlock calls are async-signal-safe.
            unsafe {
                c.pre_exec(move || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if let Some(s) = &sandbox {
                        s.restrict_self()?;
                    }
                    Ok(())
                });
            }
            c
        }
    };
    cmd.current_dir(inv.cwd)
        .env_clear()
        .envs(&inv.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A supervisor is stopped with SIGTERM (below), never killed outright:
        // killing it would orphan the tree it owns.
        .kill_on_drop(!supervised);
    // A supervised spawn runs no code between fork and exec (the supervisor arms
    // its own death signal and applies the sandbox), so std starts it with
    // posix_spawn (glibc 2.29+, which can change folder inside it) rather than a
    // fork of this process.
    let mut child = cmd.spawn()?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let mut guard = StopOnDrop((supervised && pgid > 0).then_some(pgid));
    crate::failpoint::hit("plugin-running");
    let sink = Arc::new(Mutex::new(LogSink {
        file: log,
        written: 0,
        dropped: 0,
        tail: VecDeque::new(),
    }));
    let out = tokio::spawn(pump(
        child.stdout.take().expect("piped"),
        sink.clone(),
        false,
        None,
    ));
    let err = tokio::spawn(pump(
        child.stderr.take().expect("piped"),
        sink.clone(),
        true,
        inv.on_progress.map(Arc::from),
    ));

    let mut cancel = inv.cancel.clone();
    let exit = tokio::select! {
        status = child.wait() => {
            let status = status?;
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(0), _) => Exit::Success,
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                _ => Exit::Code(-1),
            }
        }
        _ = tokio::time::sleep(inv.timeout) => {
            stop(&mut child, pgid, supervised).await;
            Exit::TimedOut(inv.timeout)
        }
        _ = async { while !*cancel.borrow_and_update() { if cancel.changed().await.is_err() { std::future::pending::<()>().await } } } => {
            stop(&mut child, pgid, supervised).await;
            Exit::Cancelled
        }
    };
    guard.0 = None;
    // Anything the step left running in its group (daemons, stragglers) goes too.
    if pgid > 0 {
        signal_group(pgid, libc::SIGKILL);
    }
    // Pipes close once every holder in the group is gone; don't wait forever on an
    // escaped grandchild that kept them open. After that the pumps are stopped, so
    // they cannot keep the progress callback (and the run's event channel) alive.
    let (abort_out, abort_err) = (out.abort_handle(), err.abort_handle());
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = out.await;
        let _ = err.await;
    })
    .await;
    abort_out.abort();
    abort_err.abort();
    let s = sink
        .lock()
        .map_err(|_| std::io::Error::other("log sink poisoned"))?;
    let tail: Vec<u8> = s.tail.iter().copied().collect();
    Ok(Outcome {
        exit,
        stderr_tail: String::from_utf8_lossy(&tail).into_owned(),
        dropped: s.dropped,
    })
}

async fn stop(child: &mut tokio::process::Child, pgid: i32, supervised: bool) {
    if pgid > 0 {
        signal_group(pgid, libc::SIGTERM);
    }
    // A supervisor spends the grace period itself, then kills the tree: give it
    // that long and a little more before taking it down.
    let wait = if supervised {
        KILL_GRACE + Duration::from_secs(2)
    } else {
        KILL_GRACE
    };
    if tokio::time::timeout(wait, child.wait()).await.is_err() {
        if pgid > 0 {
            signal_group(pgid, libc::SIGKILL);
        }
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv<'a>(
        argv: &'a [String],
        dir: &'a Path,
        timeout: Duration,
        cancel: watch::Receiver<bool>,
    ) -> Invocation<'a> {
        Invocation {
            argv,
            cwd: dir,
            env: BTreeMap::from([(
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            )]),
            timeout,
            log_path: dir.join("log"),
            cancel,
            sandbox: None,
            supervisor: None,
            on_progress: None,
        }
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn captures_exit_code_and_stderr_tail() {
        let d = tempfile::tempdir().unwrap();
        let (_tx, rx) = watch::channel(false);
        let argv = sh("echo out; echo oops >&2; exit 3");
        let o = run(inv(&argv, d.path(), Duration::from_secs(10), rx))
            .await
            .unwrap();
        assert_eq!(o.exit, Exit::Code(3));
        assert_eq!(o.stderr_tail, "oops\n");
        let log = std::fs::read_to_string(d.path().join("log")).unwrap();
        assert!(log.contains("out") && log.contains("oops"));
    }

    #[tokio::test]
    async fn progress_lines_are_reported_in_order_and_still_logged() {
        let d = tempfile::tempdir().unwrap();
        let (_tx, rx) = watch::channel(false);
        // Progress on stderr only, split across writes, between other output.
        let argv = sh(concat!(
            "echo 'pedigree:progress 9/9 on stdout'; ",
            "printf 'pedigree:progress 1/3 loss ' >&2; sleep 0.05; printf '0.5\\n' >&2; ",
            "echo 'not progress' >&2; echo 'x pedigree:progress 5/5' >&2; ",
            "echo 'pedigree:progress 2/3 loss 0.4' >&2"
        ));
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut i = inv(&argv, d.path(), Duration::from_secs(10), rx);
        let s = seen.clone();
        i.on_progress = Some(Box::new(move |p| s.lock().unwrap().push(p.to_owned())));
        let o = run(i).await.unwrap();
        assert_eq!(o.exit, Exit::Success);
        assert_eq!(*seen.lock().unwrap(), ["1/3 loss 0.5", "2/3 loss 0.4"]);
        let log = std::fs::read_to_string(d.path().join("log")).unwrap();
        assert!(log.contains("pedigree:progress 2/3 loss 0.4"), "{log}");
    }

    #[test]
    fn an_overlong_line_is_not_progress() {
        let seen = Mutex::new(Vec::<String>::new());
        let report = |p: &str| seen.lock().unwrap().push(p.to_owned());
        let mut lines = ProgressLines::default();
        let long = format!("{PROGRESS_PREFIX}1/2 {}\n", "x".repeat(PROGRESS_LINE_LIMIT));
        lines.feed(long.as_bytes(), &report);
        lines.feed(b"pedigree:progress 2/2 ok\n", &report);
        assert_eq!(*seen.lock().unwrap(), ["2/2 ok"]);
    }

    #[tokio::test]
    async fn environment_is_cleared() {
        let d = tempfile::tempdir().unwrap();
        let (_tx, rx) = watch::channel(false);
        // SAFETY: single-threaded test setup before the child is spawned.
        unsafe { std::env::set_var("PEDIGREE_TEST_LEAK", "secret") };
        let argv = sh("echo \"[$PEDIGREE_TEST_LEAK]\" >&2");
        let o = run(inv(&argv, d.path(), Duration::from_secs(10), rx))
            .await
            .unwrap();
        assert_eq!(o.stderr_tail, "[]\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group_even_if_sigterm_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let (_tx, rx) = watch::channel(false);
        let pidfile = d.path().join("child.pid");
        let argv = sh(&format!(
            "trap '' TERM; (trap '' TERM; sleep 60) & echo $! > {}; sleep 60",
            pidfile.display()
        ));
        let start = std::time::Instant::now();
        let o = run(inv(&argv, d.path(), Duration::from_millis(300), rx))
            .await
            .unwrap();
        assert!(matches!(o.exit, Exit::TimedOut(_)));
        assert!(start.elapsed() < Duration::from_secs(10));
        let pid: i64 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid),
            "grandchild {pid} survived"
        );
    }

    fn is_zombie(pid: i64) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
    }

    #[tokio::test]
    async fn cancellation_stops_the_step() {
        let d = tempfile::tempdir().unwrap();
        let (tx, rx) = watch::channel(false);
        let argv = sh("sleep 60");
        let h = tokio::spawn({
            let dir = d.path().to_owned();
            async move {
                run(inv(&argv, &dir, Duration::from_secs(60), rx))
                    .await
                    .unwrap()
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send(true).unwrap();
        assert_eq!(h.await.unwrap().exit, Exit::Cancelled);
    }

    #[tokio::test]
    async fn the_sandbox_confines_writes_to_the_allowed_folder() {
        if crate::steps::sandbox::abi().is_none() {
            // In CI (`CI` set, as `.ci/run` is run) a missing prerequisite is a failure.
            let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "false" | "0"));
            assert!(
                !ci,
                "Landlock is required in CI but this kernel does not offer it \
                 (Linux 5.13+ with `landlock` in the `lsm=` list)"
            );
            eprintln!("SKIPPED (not in CI): this kernel has no Landlock");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let inside = d.path().join("scratch");
        std::fs::create_dir(&inside).unwrap();
        let (_tx, rx) = watch::channel(false);
        let argv = sh(&format!(
            "echo ok > {in}/a.txt && echo ok > /dev/null && cat {in}/a.txt >&2 && echo bad > {out}/b.txt",
            in = inside.display(),
            out = d.path().display()
        ));
        let mut i = inv(&argv, &inside, Duration::from_secs(10), rx);
        let policy = crate::steps::sandbox::Policy {
            read_write: vec![inside.clone()],
            read: ["/usr", "/bin", "/lib", "/lib64", "/etc"]
                .map(PathBuf::from)
                .to_vec(),
            list: vec![],
        };
        i.sandbox = Some(&policy);
        let o = run(i).await.unwrap();
        assert_eq!(o.exit, Exit::Code(2), "{}", o.stderr_tail);
        assert!(o.stderr_tail.starts_with("ok\n"), "{}", o.stderr_tail);
        assert!(
            o.stderr_tail.contains("Permission denied"),
            "{}",
            o.stderr_tail
        );
        assert!(inside.join("a.txt").exists());
        assert!(!d.path().join("b.txt").exists());
    }

    #[tokio::test]
    async fn output_past_the_limit_is_dropped_not_buffered() {
        let d = tempfile::tempdir().unwrap();
        let (_tx, rx) = watch::channel(false);
        let argv = sh("head -c 20000000 /dev/zero");
        let o = run(inv(&argv, d.path(), Duration::from_secs(30), rx))
            .await
            .unwrap();
        assert_eq!(o.exit, Exit::Success);
        assert_eq!(
            std::fs::metadata(d.path().join("log")).unwrap().len(),
            LOG_LIMIT
        );
        assert_eq!(o.dropped, 20_000_000 - LOG_LIMIT);
    }
}
