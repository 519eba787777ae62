//! Building a step's invocation and turning its outcome into a result: the scratch
//! layout, the step's environment ([`step_env`], exactly `PATH` + what the step
//! declares + pedigree's fixed variables), the request ([`Request`]), the run
//! through the [`Executor`], the output-shape check, and storing the outputs.
//!
//! The scratch folder of a step run, `.pedigree/tmp/scratch-PID-N/`:
//!
//! ```text
//! in/        one link (or folder of links) per input slot, under the artifact's name
//! work/      the working folder and HOME; metrics.json and facets.json go here
//! tmp/       TMPDIR
//! out/       the declared outputs (out/SLOT/FILE where two slots share a file name)
//! request.json, log
//! ```
//!
//! When the step ends, whatever the outcome (what is kept was copied into the
//! store), it is emptied for the next step of the run, or removed when a process
//! of the step may still run ([`ScratchPool`]); the run removes its scratch
//! folders when it ends.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value as Json;

use super::events::{Event, StepStatus};
use super::execute::Ctx;
use super::executor::{Control, ExpectedOutput, InputObject, Invocation};
use super::key::KeyManifest;
use super::plan::Artifact;
use super::resolve::ResolvedStep;
use super::secrets::Redactor;
use crate::lineage::{Metric, NewArtifact, NewOutput, Success};
use crate::steps::exec::Exit;
use crate::steps::protocol::{self, Request};

/// A step that ran and produced every output (now in the store).
pub struct StepDone {
    pub success: Success,
    pub outputs: BTreeMap<String, Artifact>,
}

/// A step that could not run, failed or was interrupted.
pub struct StepFailed {
    pub status: StepStatus,
    pub error: String,
    pub stderr_tail: Option<String>,
    pub log_hash: Option<String>,
}

impl StepFailed {
    pub fn new(error: impl Into<String>) -> Self {
        StepFailed {
            status: StepStatus::Failed,
            error: error.into(),
            stderr_tail: None,
            log_hash: None,
        }
    }
}

/// The folders and files of one step run's scratch space.
#[derive(Debug, Clone)]
pub struct Scratch {
    pub root: PathBuf,
}

/// The scratch folder's subfolders, made once and kept from step to step.
const SUBFOLDERS: [&str; 4] = ["in", "work", "tmp", "out"];

impl Scratch {
    pub fn inputs(&self) -> PathBuf {
        self.root.join(SUBFOLDERS[0])
    }
    pub fn work(&self) -> PathBuf {
        self.root.join(SUBFOLDERS[1])
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join(SUBFOLDERS[2])
    }
    pub fn outputs(&self) -> PathBuf {
        self.root.join(SUBFOLDERS[3])
    }
    pub fn request(&self) -> PathBuf {
        self.root.join("request.json")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }
}

/// The scratch folders of one run, reused from step to step.
///
/// On ext4 without a journal every new inode is searched for past the inodes
/// deleted in the last 60-300 s, so every file or folder a step run makes and
/// removes slows every later one, and the per-step cost grew with the number of
/// steps already run (`bench/orchestrators.py`, cold 1000 steps; perf puts most
/// of the orchestrator's CPU in `find_inode_bit`). Five of those were the
/// folders of each step's scratch. A step's folder is now emptied, not removed,
/// and the next step gets it, but only when the executor reports that no process
/// of the step can still run ([`Outcome::contained`]): a survivor keeps its
/// sandbox's write access to the folder, and could change the next step's inputs
/// or request. Emptying removes every file, strips the folders' ACLs and gives
/// them their original mode back; a folder that is not exactly as it was made (a
/// subfolder replaced by a link, a file that cannot be removed) is removed
/// instead of reused.
///
/// [`Outcome::contained`]: super::executor::Outcome::contained
#[derive(Debug)]
pub struct ScratchPool {
    /// `.pedigree/tmp/`.
    dir: PathBuf,
    idle: Mutex<Vec<Scratch>>,
    made: AtomicUsize,
    /// The mode the first folder was made with (0777 less the umask).
    mode: std::sync::OnceLock<u32>,
}

impl ScratchPool {
    pub fn new(tmp_dir: PathBuf) -> ScratchPool {
        ScratchPool {
            dir: tmp_dir,
            idle: Mutex::new(Vec::new()),
            made: AtomicUsize::new(0),
            mode: std::sync::OnceLock::new(),
        }
    }

    /// An empty scratch folder with its subfolders: an idle one, else a new one.
    pub fn take(&self) -> std::io::Result<Scratch> {
        if let Some(s) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(s);
        }
        // A new name every time: a folder a killed run left under the same name
        // (pids repeat) is never taken over, whatever it holds.
        let s = loop {
            let n = self.made.fetch_add(1, Ordering::Relaxed);
            let root = self.dir.join(format!("scratch-{}-{n}", std::process::id()));
            match std::fs::create_dir(&root) {
                Ok(()) => break Scratch { root },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1_000_000 => {}
                Err(e) => return Err(e),
            }
        };
        for d in [s.inputs(), s.work(), s.tmp(), s.outputs()] {
            std::fs::create_dir(&d)?;
        }
        if self.mode.get().is_none() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&s.root)?.permissions().mode() & 0o7777;
            let _ = self.mode.set(mode);
        }
        Ok(s)
    }

    /// Empty `s` for the next step, or remove it if it cannot be reused: when
    /// `contained` is false (a process of the step may still run) or it is not
    /// as it was made.
    pub fn give_back(&self, s: Scratch, contained: bool) {
        let emptied = || empty_scratch(&s.root, *self.mode.get().unwrap_or(&0o755));
        match (contained && emptied().is_ok(), self.idle.lock()) {
            (true, Ok(mut idle)) => idle.push(s),
            _ => {
                let _ = remove_scratch(&s.root);
            }
        }
    }
}

impl Drop for ScratchPool {
    fn drop(&mut self) {
        if let Ok(idle) = self.idle.get_mut() {
            for s in idle.drain(..) {
                let _ = remove_scratch(&s.root);
            }
        }
    }
}

/// Remove everything under `root` but its (emptied) subfolders, which lose any
/// ACL and get `mode` back. Links are removed, never followed. An error when
/// `root` is not as [`ScratchPool::take`] made it.
fn empty_scratch(root: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let clear = |entry: std::fs::DirEntry| -> std::io::Result<()> {
        if entry.file_type()?.is_dir() {
            remove_scratch(&entry.path())
        } else {
            std::fs::remove_file(entry.path())
        }
    };
    for d in std::iter::once(root.to_owned()).chain(SUBFOLDERS.map(|d| root.join(d))) {
        let d = d.as_path();
        let meta = std::fs::symlink_metadata(d)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a folder",
                d.display()
            )));
        }
        if meta.permissions().mode() & 0o7777 != mode {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode))?;
        }
        strip_acls(d)?;
    }
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        if SUBFOLDERS.iter().any(|d| name == *d) {
            for inner in std::fs::read_dir(entry.path())? {
                clear(inner?)?;
            }
        } else {
            clear(entry)?;
        }
    }
    Ok(())
}

/// Remove a folder's access and default ACLs (a default ACL would reach every
/// file made in it later). No ACL, or a file system without them, is fine.
fn strip_acls(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    for name in [c"system.posix_acl_default", c"system.posix_acl_access"] {
        // SAFETY: both are valid NUL-terminated strings; lremovexattr does not
        // follow a link (the folder was just checked not to be one).
        if unsafe { libc::lremovexattr(path.as_ptr(), name.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::ENODATA | libc::EOPNOTSUPP)) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The variables pedigree itself sets for every step (besides the per-slot and
/// per-param ones).
#[derive(Debug, Clone)]
pub struct FixedEnv {
    /// pedigree's own `PATH`, passed through unchanged.
    pub path: Option<String>,
    pub scratch: Scratch,
    /// The plugin's folder (empty for a built-in kind).
    pub plugin_dir: Option<PathBuf>,
    pub step: String,
    /// `PEDIGREE_FAILPOINT` and `PEDIGREE_FAILPOINT_TARGET`, forwarded only while a
    /// crash point is armed in pedigree's own environment (the crash tests, see
    /// [`crate::failpoint`]); never set otherwise, so never seen by a real step.
    pub failpoint: Option<[(String, String); 2]>,
}

/// The complete environment of a step: `PATH`, one variable per input, output and
/// param ([`protocol::input_var`] etc.), pedigree's fixed variables, the declared
/// variables that are set (`declared`, as hashed into the key) and the secrets.
/// Nothing else from pedigree's environment reaches the step.
pub fn step_env(
    inputs: &BTreeMap<String, PathBuf>,
    outputs: &BTreeMap<String, PathBuf>,
    params: &BTreeMap<String, Json>,
    fixed: &FixedEnv,
    declared: &BTreeMap<String, Option<String>>,
    secrets: &[(String, String)],
) -> BTreeMap<String, String> {
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let mut env = BTreeMap::new();
    for (slot, p) in inputs {
        env.insert(protocol::input_var(slot), text(p));
    }
    for (slot, p) in outputs {
        env.insert(protocol::output_var(slot), text(p));
    }
    for (k, v) in params {
        env.insert(protocol::param_var(k), protocol::param_text(v));
    }
    if let Some(path) = &fixed.path {
        env.insert("PATH".into(), path.clone());
    }
    env.insert("HOME".into(), text(&fixed.scratch.work()));
    env.insert("TMPDIR".into(), text(&fixed.scratch.tmp()));
    env.insert("LANG".into(), "C.UTF-8".into());
    env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    env.insert(protocol::REQUEST_VAR.into(), text(&fixed.scratch.request()));
    env.insert(
        protocol::PLUGIN_DIR_VAR.into(),
        fixed.plugin_dir.as_deref().map(text).unwrap_or_default(),
    );
    env.insert(protocol::STEP_VAR.into(), fixed.step.clone());
    env.extend(fixed.failpoint.clone().into_iter().flatten());
    for (k, v) in declared {
        if let Some(v) = v {
            env.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in secrets {
        env.insert(k.clone(), v.clone());
    }
    env
}

/// The name an input is materialised under: its own, or `SLOT-NAME` when another
/// input of the step has the same name.
fn input_name(slot: &str, name: &str, shared: bool) -> String {
    if shared {
        format!("{slot}-{name}")
    } else {
        name.to_owned()
    }
}

/// Where each input slot is materialised: one link (or folder) per slot directly
/// under `in/`, under the artifact's own name so messages name the user's file;
/// `SLOT-NAME` where two slots share a name. No folder per slot: a 200-input join
/// creates 200 links, not 400 inodes.
pub fn input_paths(
    scratch: &Scratch,
    inputs: &BTreeMap<String, Artifact>,
) -> BTreeMap<String, PathBuf> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for a in inputs.values() {
        *names.entry(a.name.as_str()).or_default() += 1;
    }
    inputs
        .iter()
        .map(|(slot, art)| {
            let shared = names[art.name.as_str()] > 1;
            (
                slot.clone(),
                scratch.inputs().join(input_name(slot, &art.name, shared)),
            )
        })
        .collect()
}

/// Where each declared output goes: `out/FILE`, or `out/SLOT/FILE` when two slots
/// declare the same file name.
pub fn output_paths(scratch: &Scratch, step: &ResolvedStep) -> BTreeMap<String, ExpectedOutput> {
    let mut files: HashMap<&str, usize> = HashMap::new();
    for d in step.outputs().values() {
        *files.entry(d.file.as_str()).or_default() += 1;
    }
    step.outputs()
        .iter()
        .map(|(slot, decl)| {
            let dir = if files[decl.file.as_str()] > 1 {
                scratch.outputs().join(slot)
            } else {
                scratch.outputs()
            };
            (
                slot.clone(),
                ExpectedOutput {
                    path: dir.join(&decl.file),
                    dir: decl.dir,
                },
            )
        })
        .collect()
}

/// Make the scratch folder, materialise the inputs, write the request and build
/// the invocation. Also returns the redactor of the step's secrets.
fn prepare(
    ctx: &Ctx,
    step: &ResolvedStep,
    scratch: &Scratch,
    manifest: &KeyManifest,
    inputs: &BTreeMap<String, Artifact>,
) -> Result<(Invocation, Redactor), StepFailed> {
    let store = &ctx.ws.store;
    let io = |what: &str, e: &dyn std::fmt::Display| {
        StepFailed::new(format!(
            "cannot prepare the step's scratch folder ({what}): {e}"
        ))
    };
    let in_paths = input_paths(scratch, inputs);
    for (slot, art) in inputs {
        store
            .materialize(&art.hash, art.is_tree, &in_paths[slot])
            .map_err(|e| io("inputs", &e))?;
    }
    let outputs = output_paths(scratch, step);
    for o in outputs.values() {
        if let Some(dir) = o.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("outputs", &e))?;
        }
    }
    let out_paths: BTreeMap<String, PathBuf> = outputs
        .iter()
        .map(|(s, o)| (s.clone(), o.path.clone()))
        .collect();
    let request = Request {
        step: step.name.clone(),
        inputs: in_paths.clone(),
        outputs: out_paths.clone(),
        params: manifest.params.clone(),
        scratch: scratch.work(),
        workspace: Some(ctx.ws.root.clone()),
        run_id: Some(ctx.run_id),
        input_hashes: inputs
            .iter()
            .map(|(s, a)| (s.clone(), a.hash.clone()))
            .collect(),
    };
    let bytes = request.to_bytes().map_err(|e| io("request", &e))?;
    std::fs::write(scratch.request(), bytes).map_err(|e| io("request", &e))?;

    // Secrets reach the step's environment and nothing else: not the key, not the
    // request, and every captured byte of output is redacted before it is kept.
    let mut redactor = Redactor::default();
    let mut secrets = Vec::new();
    for name in &step.secrets {
        match std::env::var(name) {
            Ok(v) => {
                redactor.add(name, &v);
                secrets.push((name.clone(), v));
            }
            Err(_) => {
                return Err(StepFailed::new(format!(
                    "the secret `{name}` is not set in pedigree's environment; export it before `pedigree run`"
                )));
            }
        }
    }
    let path = std::env::var("PATH").ok();
    let fixed = FixedEnv {
        path: path.clone(),
        scratch: scratch.clone(),
        plugin_dir: step.spec.dir().map(Path::to_path_buf),
        step: step.name.clone(),
        failpoint: crate::failpoint::step_env(),
    };
    let env = step_env(
        &in_paths,
        &out_paths,
        &manifest.params,
        &fixed,
        &manifest.env,
        &secrets,
    );
    let sandbox = step.spec.sandbox.then(|| {
        crate::steps::sandbox::Policy::for_step(
            &scratch.root,
            &ctx.ws.root,
            &step.spec.read,
            path.as_deref(),
        )
    });
    let inv = Invocation {
        step: step.name.clone(),
        argv: step.spec.command.clone(),
        cwd: scratch.work(),
        env,
        request_path: scratch.request(),
        request,
        inputs: inputs
            .iter()
            .map(|(slot, a)| {
                (
                    slot.clone(),
                    InputObject {
                        hash: a.hash.clone(),
                        path: in_paths[slot].clone(),
                        is_tree: a.is_tree,
                    },
                )
            })
            .collect(),
        outputs,
        timeout: step.spec.timeout,
        sandbox,
        scratch: scratch.root.clone(),
        log_path: scratch.log(),
    };
    Ok((inv, redactor))
}

/// What is at an output's path when it is not what was declared, for the message.
fn output_problem(path: &Path, dir: bool) -> Option<&'static str> {
    let meta = std::fs::symlink_metadata(path);
    let ok = match &meta {
        Ok(m) if dir => m.is_dir(),
        Ok(m) => m.is_file(),
        Err(_) => false,
    };
    if ok {
        return None;
    }
    Some(match meta {
        Err(_) => "nothing is there",
        Ok(m) if m.file_type().is_symlink() => "a symbolic link is there",
        Ok(m) if m.is_dir() => "a folder is there",
        Ok(_) => "a file is there",
    })
}

/// Run one step: prepare its invocation, hand it to the executor, check and store
/// its outputs.
pub async fn invoke(
    ctx: &Ctx,
    step: &ResolvedStep,
    manifest: &KeyManifest,
    inputs: &BTreeMap<String, Artifact>,
) -> Result<StepDone, StepFailed> {
    let store = &ctx.ws.store;
    let scratch = ctx.scratch.take().map_err(|e| {
        StepFailed::new(format!(
            "cannot prepare the step's scratch folder (create): {e}"
        ))
    })?;
    let mut guard = ScratchGuard {
        pool: &ctx.scratch,
        scratch: Some(scratch.clone()),
        contained: true,
    };
    let (inv, secrets) = prepare(ctx, step, &scratch, manifest, inputs)?;
    let ctl = Control {
        cancel: ctx.cancel.clone(),
        on_progress: Some({
            let (events, name, secrets) = (ctx.events.clone(), step.name.clone(), secrets.clone());
            Box::new(move |line| {
                if let Some(ev) = Event::progress(&name, &secrets.redact_str(line)) {
                    let _ = events.send(ev);
                }
            })
        }),
    };
    // Until the executor says otherwise, a process of the step may be running.
    guard.contained = false;
    let mut outcome = ctx
        .executor
        .execute(&inv, ctl)
        .await
        .map_err(|e| StepFailed::new(e.to_string()))?;
    guard.contained = outcome.contained;
    for w in std::mem::take(&mut outcome.warnings) {
        let _ = ctx.events.send(Event::Warning(w));
    }
    let log_path = &inv.log_path;
    if !secrets.is_empty()
        && let Ok(bytes) = std::fs::read(log_path)
    {
        let _ = std::fs::write(log_path, secrets.redact(&bytes));
    }
    // An empty log is not worth an object (most steps print nothing).
    let log_hash = match std::fs::metadata(log_path) {
        Ok(m) if m.len() > 0 => store.put_file(log_path).ok().map(|s| s.hash),
        _ => None,
    };
    let tail = Some(secrets.redact_str(&outcome.stderr_tail));
    let failed = |status, error: String| StepFailed {
        status,
        error,
        stderr_tail: tail.clone(),
        log_hash: log_hash.clone(),
    };
    let who = step.spec.describe();
    match outcome.exit {
        Exit::Success => {}
        Exit::Code(c) => {
            return Err(failed(
                StepStatus::Failed,
                format!("{who} exited with code {c}"),
            ));
        }
        Exit::Signal(s) => {
            return Err(failed(
                StepStatus::Failed,
                format!("{who} was killed by signal {s}"),
            ));
        }
        Exit::TimedOut(t) => {
            return Err(failed(
                StepStatus::Failed,
                format!(
                    "{who} ran longer than its timeout of {}s and was stopped",
                    t.as_secs_f64()
                ),
            ));
        }
        Exit::Cancelled => return Err(failed(StepStatus::Interrupted, "interrupted".into())),
    }

    // Every declared output must exist with the declared shape before anything is stored.
    for (slot, o) in &inv.outputs {
        if let Some(found) = output_problem(&o.path, o.dir) {
            let what = if o.dir { "a folder" } else { "a file" };
            return Err(failed(
                StepStatus::Failed,
                format!(
                    "{who} exited 0 but did not write output `{slot}`: expected {what} at ${} ({}), {found}",
                    protocol::output_var(slot),
                    o.path.display()
                ),
            ));
        }
    }
    let metrics = protocol::read_metrics(&inv.cwd.join(protocol::METRICS_FILE))
        .map_err(|e| failed(StepStatus::Failed, e.to_string()))?
        .into_iter()
        .map(|m| Metric {
            key: m.key,
            value: m.value,
            step: m.step,
        })
        .collect();
    let facets = protocol::read_facets(&inv.cwd.join(protocol::FACETS_FILE))
        .map_err(|e| failed(StepStatus::Failed, e.to_string()))?
        .into_iter()
        .map(|(name, json)| (None, secrets.redact_str(&name), secrets.redact_str(&json)))
        .collect();

    let mut success = Success {
        params: params_text(manifest),
        metrics,
        facets,
        stderr_tail: tail.clone(),
        log_hash: log_hash.clone(),
        ..Default::default()
    };
    let mut arts = BTreeMap::new();
    for (slot, o) in &inv.outputs {
        let decl = &step.outputs()[slot];
        let stored = store.put_path(&o.path).map_err(|e| {
            failed(
                StepStatus::Failed,
                format!("cannot store output `{slot}`: {e}"),
            )
        })?;
        let fp = std::fs::symlink_metadata(store.object_path(&stored.hash))
            .ok()
            .map(|m| crate::store::fingerprint(&m));
        arts.insert(
            slot.clone(),
            Artifact {
                hash: stored.hash.clone(),
                name: decl.file.clone(),
                is_tree: stored.is_tree,
            },
        );
        success.outputs.push(NewOutput {
            slot: slot.clone(),
            name: decl.file.clone(),
            artifact: NewArtifact {
                stored,
                kind: decl.kind.clone(),
                media_type: decl.media_type.clone(),
            },
            fingerprint: if decl.dir { None } else { fp },
        });
    }
    crate::failpoint::hit("outputs-stored");
    drop(guard);
    Ok(StepDone {
        success,
        outputs: arts,
    })
}

/// The params as recorded with a step run: name and JSON text.
pub fn params_text(manifest: &KeyManifest) -> Vec<(String, String)> {
    manifest
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

/// Gives a step's scratch folder back to the pool when dropped (what the step
/// made that is kept was copied into the store).
struct ScratchGuard<'a> {
    pool: &'a ScratchPool,
    scratch: Option<Scratch>,
    /// No process of the step can still be running (see [`ScratchPool`]).
    contained: bool,
}

impl Drop for ScratchGuard<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.scratch.take() {
            self.pool.give_back(s, self.contained);
        }
    }
}

pub use crate::store::remove_scratch;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn fixed(failpoint: Option<[(String, String); 2]>) -> FixedEnv {
        FixedEnv {
            path: Some("/usr/bin:/bin".into()),
            scratch: Scratch {
                root: PathBuf::from("/ws/.pedigree/tmp/step-1-2"),
            },
            plugin_dir: Some(PathBuf::from("/ws/plugins/upper")),
            step: "up".into(),
            failpoint,
        }
    }

    #[test]
    fn the_step_environment_is_path_declared_and_fixed_variables_only() {
        let inputs = BTreeMap::from([("src".to_owned(), PathBuf::from("/s/in/a.csv"))]);
        let outputs = BTreeMap::from([("out-table".to_owned(), PathBuf::from("/s/out/b"))]);
        let params = BTreeMap::from([
            ("suffix".to_owned(), Json::from("!")),
            ("k".to_owned(), Json::from(3)),
        ]);
        let declared = BTreeMap::from([
            ("FLAVOUR".to_owned(), Some("mild".to_owned())),
            ("UNSET".to_owned(), None),
        ]);
        let secrets = [("TOKEN".to_owned(), "s3cret".to_owned())];
        let env = step_env(
            &inputs,
            &outputs,
            &params,
            &fixed(None),
            &declared,
            &secrets,
        );
        let names: BTreeSet<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            BTreeSet::from([
                "PATH",
                "FLAVOUR",
                "TOKEN",
                "PEDIGREE_INPUT_SRC",
                "PEDIGREE_OUTPUT_OUT_TABLE",
                "PEDIGREE_PARAM_SUFFIX",
                "PEDIGREE_PARAM_K",
                "HOME",
                "TMPDIR",
                "LANG",
                "PYTHONDONTWRITEBYTECODE",
                "PEDIGREE_REQUEST",
                "PEDIGREE_PLUGIN_DIR",
                "PEDIGREE_STEP",
            ])
        );
        assert_eq!(env["PATH"], "/usr/bin:/bin");
        assert_eq!(env["PEDIGREE_PARAM_SUFFIX"], "!", "strings as they are");
        assert_eq!(env["PEDIGREE_PARAM_K"], "3", "the rest as JSON");
        assert_eq!(env["HOME"], "/ws/.pedigree/tmp/step-1-2/work");
        assert_eq!(env["TMPDIR"], "/ws/.pedigree/tmp/step-1-2/tmp");
        assert_eq!(
            env["PEDIGREE_REQUEST"],
            "/ws/.pedigree/tmp/step-1-2/request.json"
        );
        assert_eq!(env["FLAVOUR"], "mild");
    }

    #[test]
    fn failpoints_are_forwarded_only_when_armed() {
        let e = BTreeMap::new();
        let env = step_env(
            &e,
            &e,
            &BTreeMap::new(),
            &fixed(None),
            &BTreeMap::new(),
            &[],
        );
        assert!(!env.keys().any(|k| k.starts_with("PEDIGREE_FAILPOINT")));
        let armed = Some([
            ("PEDIGREE_FAILPOINT".to_owned(), "step-started".to_owned()),
            ("PEDIGREE_FAILPOINT_TARGET".to_owned(), "42".to_owned()),
        ]);
        let env = step_env(
            &e,
            &e,
            &BTreeMap::new(),
            &fixed(armed),
            &BTreeMap::new(),
            &[],
        );
        assert_eq!(env["PEDIGREE_FAILPOINT"], "step-started");
        assert_eq!(env["PEDIGREE_FAILPOINT_TARGET"], "42");
    }

    #[test]
    fn a_step_without_a_path_gets_none_and_no_plugin_dir_is_empty() {
        let e = BTreeMap::new();
        let mut f = fixed(None);
        f.path = None;
        f.plugin_dir = None;
        let env = step_env(&e, &e, &BTreeMap::new(), &f, &BTreeMap::new(), &[]);
        assert!(!env.contains_key("PATH"));
        assert_eq!(env["PEDIGREE_PLUGIN_DIR"], "");
    }

    #[test]
    fn inputs_sharing_a_name_get_the_slot_in_front() {
        let s = Scratch {
            root: PathBuf::from("/s"),
        };
        let a = |n: &str| Artifact {
            hash: "h".into(),
            name: n.into(),
            is_tree: false,
        };
        let inputs = BTreeMap::from([
            ("a".to_owned(), a("x.csv")),
            ("b".to_owned(), a("x.csv")),
            ("c".to_owned(), a("y.csv")),
        ]);
        let p = input_paths(&s, &inputs);
        assert_eq!(p["a"], PathBuf::from("/s/in/a-x.csv"));
        assert_eq!(p["b"], PathBuf::from("/s/in/b-x.csv"));
        assert_eq!(p["c"], PathBuf::from("/s/in/y.csv"));
    }

    /// Every path under `root`, relative, sorted.
    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![root.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    todo.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_scratch_folder_is_reused_empty_whatever_the_step_left_in_it() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep.txt"), "x").unwrap();
        let pool = ScratchPool::new(tmp.path().to_owned());
        let s = pool.take().unwrap();
        assert_eq!(tree(&s.root), ["in", "out", "tmp", "work"]);
        // What a step may leave: files and folders everywhere, a read-only
        // folder, a link out of the scratch folder, a subfolder made private.
        std::fs::write(s.request(), "{}").unwrap();
        std::fs::write(s.log(), "log").unwrap();
        std::fs::create_dir_all(s.work().join("a/b")).unwrap();
        std::fs::write(s.work().join("a/b/c.txt"), "c").unwrap();
        std::fs::set_permissions(s.work().join("a"), std::fs::Permissions::from_mode(0o500))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), s.tmp().join("link")).unwrap();
        std::fs::write(s.outputs().join("out.csv"), "o").unwrap();
        std::fs::set_permissions(s.inputs(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let root = s.root.clone();
        pool.give_back(s, true);
        let again = pool.take().unwrap();
        assert_eq!(again.root, root, "the folder is reused");
        assert_eq!(tree(&again.root), ["in", "out", "tmp", "work"]);
        let mode = std::fs::metadata(again.inputs())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o7777,
            *pool.mode.get().unwrap(),
            "the mode it was made with"
        );
        assert!(
            outside.path().join("keep.txt").exists(),
            "links are not followed"
        );
        // A second step at the same time gets a folder of its own.
        let other = pool.take().unwrap();
        assert_ne!(other.root, again.root);
        pool.give_back(other, true);
        pool.give_back(again, true);
        drop(pool);
        assert!(tree(tmp.path()).is_empty(), "the run removes its folders");
    }

    #[test]
    fn a_scratch_folder_is_not_reused_after_a_step_that_may_still_run_nor_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        // Left by a killed run of a process with our pid: never taken over.
        let stale = tmp.path().join(format!("scratch-{}-0", std::process::id()));
        std::fs::create_dir_all(stale.join("out")).unwrap();
        std::fs::write(stale.join("out/result"), "old").unwrap();
        let pool = ScratchPool::new(tmp.path().to_owned());
        let s = pool.take().unwrap();
        assert_ne!(s.root, stale);
        assert_eq!(tree(&s.root), ["in", "out", "tmp", "work"]);
        assert!(stale.join("out/result").exists(), "not ours: left alone");
        // A step whose processes may outlive it: its folder is removed.
        let root = s.root.clone();
        pool.give_back(s, false);
        assert!(!root.exists());
        assert_ne!(pool.take().unwrap().root, root);
    }

    #[test]
    fn a_scratch_folder_whose_subfolder_became_a_link_is_removed_not_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep.txt"), "x").unwrap();
        let pool = ScratchPool::new(tmp.path().to_owned());
        let s = pool.take().unwrap();
        std::fs::remove_dir(s.work()).unwrap();
        std::os::unix::fs::symlink(outside.path(), s.work()).unwrap();
        let root = s.root.clone();
        pool.give_back(s, true);
        assert!(!root.exists(), "removed");
        assert!(outside.path().join("keep.txt").exists(), "not followed");
        let fresh = pool.take().unwrap();
        assert_ne!(fresh.root, root);
        assert_eq!(tree(&fresh.root), ["in", "out", "tmp", "work"]);
    }
}
