//! The remote cache on the command line: the flags every command that may use it
//! takes, and `pedigree key`, `pedigree push`, `pedigree pull` and
//! `pedigree remote check|gc`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{CliError, Exit, Global, print_json};
use crate::engine::cache::{Offer, ResultCache};
use crate::engine::run::Backends;
use crate::keys::{self, Signer};
use crate::lineage::{Metric, Status};
use crate::remote::{self, RemoteCache};
use crate::workspace::{self, Workspace};

/// `--remote URL`, `--no-remote`, `--push`: the command line's say over
/// `pedigree.toml`'s `[remote]` and `$PEDIGREE_REMOTE` / `$PEDIGREE_PUSH`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RemoteArgs {
    /// Use this remote cache (s3://, gs://, az://, file://) instead of `pedigree.toml`'s.
    #[arg(long, value_name = "URL", conflicts_with = "no_remote")]
    pub remote: Option<String>,
    /// Use no remote cache, whatever `pedigree.toml` and $PEDIGREE_REMOTE say.
    #[arg(long)]
    pub no_remote: bool,
    /// Publish computed results to the remote (needs a signing key; `push = true` in `pedigree.toml`).
    #[arg(long)]
    pub push: bool,
}

impl RemoteArgs {
    pub(super) fn flags(&self) -> remote::Flags {
        remote::Flags {
            remote: self.remote.clone(),
            no_remote: self.no_remote,
            push: self.push,
        }
    }
}

/// The remote cache for a command run at `root`, its warnings printed; `None`
/// without a remote.
pub fn open_cache(root: &Path, args: &RemoteArgs) -> Result<Option<Arc<RemoteCache>>, CliError> {
    match remote::open_cache(root, &args.flags()) {
        Ok(Some((cache, warnings))) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            Ok(Some(Arc::new(cache)))
        }
        Ok(None) => Ok(None),
        Err(remote::OpenError::Config(d)) => Err(d.into()),
        Err(e) => Err(CliError::invalid(format!("error: {e}"))),
    }
}

/// What `status`, `why` and `--dry-run` ask beyond the local cache: whether the
/// remote, when there is one, has what the local cache lacks.
pub fn peek(cache: Option<&RemoteCache>) -> crate::engine::status::Remote<'_> {
    match cache {
        Some(c) => crate::engine::status::Remote::Peek(c),
        None => crate::engine::status::Remote::Local,
    }
}

/// The run's backends: the local executor, and the remote cache when there is one.
pub fn backends(root: &Path, args: &RemoteArgs) -> Result<Backends, CliError> {
    let mut b = Backends::default();
    if let Some(cache) = open_cache(root, args)? {
        b.cache = cache;
    }
    Ok(b)
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Make a signing key pair: the private key in a file outside the repository, the public key printed.
    New {
        /// Where to write the private key (default: $PEDIGREE_SIGNING_KEY_FILE, else ~/.config/pedigree/signing-key).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Trust a public key to write the remote cache: adds it to `pedigree.toml`'s `[remote.trust]`.
    Trust {
        /// The public key, `ed25519:` and 64 hex digits.
        key: String,
        /// A name for it (default: `key-` and its first hex digits).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print this user's public key (from the configured signing key).
    Show,
}

pub async fn key(cmd: KeyCommand, g: &Global) -> Result<Exit, CliError> {
    match cmd {
        KeyCommand::New { out } => {
            let path = out
                .or_else(|| std::env::var_os(keys::KEY_FILE_ENV).map(PathBuf::from))
                .or_else(keys::default_key_path)
                .ok_or_else(|| {
                    CliError::invalid(
                        "error: no place for the key: pass `--out FILE` (HOME is not set)",
                    )
                })?;
            let path = std::path::absolute(&path).unwrap_or(path);
            if let Some(repo) = enclosing_repository(&path) {
                return Err(CliError::invalid(format!(
                    "error: `{}` is inside `{}` (a workspace or git repository); a private key must never be committed\n  = help: pass `--out` a path outside it (the default is ~/.config/pedigree/signing-key)",
                    path.display(),
                    repo.display()
                )));
            }
            if path.exists() {
                return Err(CliError::invalid(format!(
                    "error: `{}` already exists; pedigree never overwrites a key\n  = help: remove it first, or pass `--out` another path",
                    path.display()
                )));
            }
            let (text, signer) =
                Signer::generate().map_err(|e| CliError::failed(format!("error: {e}")))?;
            write_private(&path, &text).map_err(|e| {
                CliError::failed(format!("error: cannot write `{}`: {e}", path.display()))
            })?;
            eprintln!(
                "wrote the private key to `{}` (mode 600; keep it out of the repository)",
                path.display()
            );
            eprintln!(
                "trust it in a workspace with: pedigree key trust {}",
                signer.public()
            );
            println!("{}", signer.public());
            Ok(Exit::Ok)
        }
        KeyCommand::Trust { key, name } => {
            let k = keys::PublicKey::parse(&key).map_err(|e| {
                CliError::invalid(format!(
                    "error: `{key}` is not a public key: {e}\n  = help: `pedigree key new` and `pedigree key show` print one"
                ))
            })?;
            let name =
                name.unwrap_or_else(|| format!("key-{}", &remote::cache::signer_hex(&k)[..8]));
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(CliError::invalid(format!(
                    "error: `{name}` is not a key name: use letters, digits, `-` and `_`"
                )));
            }
            let root = workspace::find_root(g.workspace.as_deref())?;
            let path = crate::config::add_trusted_key(&root, &name, &k.to_string())
                .map_err(|e| CliError::invalid(format!("error: {e}")))?;
            println!("trusted `{name}` ({k}) in `{}`", path.display());
            Ok(Exit::Ok)
        }
        KeyCommand::Show => match keys::load_signer() {
            Ok(Some((s, from))) => {
                eprintln!("from {from}");
                println!("{}", s.public());
                Ok(Exit::Ok)
            }
            Ok(None) => Err(CliError::invalid(
                "error: no signing key\n  = help: make one with `pedigree key new`",
            )),
            Err(e) => Err(CliError::invalid(format!("error: {e}"))),
        },
    }
}

/// The nearest folder above `path` that is a workspace (`.pedigree/` or
/// `pedigree.toml`) or a git work tree: where a key file would risk a commit.
fn enclosing_repository(path: &Path) -> Option<PathBuf> {
    path.ancestors().skip(1).find_map(|dir| {
        [workspace::DIR, crate::config::FILE, ".git"]
            .iter()
            .any(|m| dir.join(m).exists())
            .then(|| dir.to_owned())
    })
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The run whose computed results to publish (default: the latest run).
    pub run: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `pedigree push [RUN]`: publish the results a run computed.
pub async fn push(args: PushArgs, g: &Global) -> Result<Exit, CliError> {
    let ws = super::open_existing(g).await?;
    let mut flags = args.remote.clone();
    flags.push = true;
    let cache = open_cache(&ws.root, &flags)?.ok_or_else(no_remote)?;
    if !cache.publishes() {
        return Err(CliError::invalid(
            "error: nothing can be published without a signing key\n  = help: make one with `pedigree key new`, or set $PEDIGREE_SIGNING_KEY_FILE",
        ));
    }
    let reference = args.run.as_deref().unwrap_or("latest");
    let run = ws.db.run_ref(reference).await?;
    let offers = offers_of(&ws, run).await?;
    let n = offers.len();
    for o in offers {
        cache.publish(&ws, o);
    }
    let done = cache.finish().await;
    for w in &done.warnings {
        eprintln!("warning: {w}");
    }
    for note in &done.notes {
        println!("{note}");
    }
    if n == 0 {
        println!(
            "run {run} has no result to publish (every step failed, was skipped, or came from the remote)"
        );
    }
    Ok(if done.warnings.is_empty() {
        Exit::Ok
    } else {
        Exit::Failure
    })
}

/// The computed results of `run`, as the engine would have offered them.
async fn offers_of(ws: &Workspace, run: i64) -> Result<Vec<Offer>, CliError> {
    let db = &ws.db;
    let detail = db
        .run(run)
        .await?
        .ok_or_else(|| CliError::invalid(format!("error: there is no run {run}")))?;
    let mut out = Vec::new();
    for s in db.step_runs(run).await? {
        // What the run used: a step it computed, or a local cache hit (published
        // from the step run that computed it). A result fetched from a remote is
        // already there; a kind whose effect is the workspace's own is never shared.
        let source = match (s.status, s.cached_from) {
            (Status::Succeeded, _) => s.id,
            (Status::Cached, Some(from)) => from,
            _ => continue,
        };
        if crate::steps::builtin::lookup(&s.kind).is_some_and(|k| k.workspace_effect) {
            continue;
        }
        let Some(key) = s.step_key.clone() else {
            continue;
        };
        let Some(manifest) = db.manifest(&key).await? else {
            continue;
        };
        let Ok(manifest) = serde_json::from_str(&manifest) else {
            continue;
        };
        let outputs = db.outputs_of(source).await?;
        let params = db
            .params_of_many(&[source])
            .await?
            .into_iter()
            .map(|p| (p.key, p.value_json))
            .collect();
        let metrics: Vec<Metric> = db.metrics_of(source).await?;
        let facets = db
            .facets_of(source)
            .await?
            .into_iter()
            .filter(|f| f.name != remote::cache::NONDETERMINISTIC_FACET)
            .map(|f| (f.artifact_hash, f.name, f.json))
            .collect();
        out.push(Offer {
            run_id: run,
            step_run_id: source,
            workflow: detail.workflow.clone(),
            step: s.step.clone(),
            key,
            manifest,
            success: crate::lineage::Success {
                outputs: outputs
                    .iter()
                    .map(|o| crate::lineage::NewOutput {
                        slot: o.slot.clone(),
                        name: o.name.clone(),
                        artifact: o.artifact(),
                        fingerprint: o.fingerprint(),
                    })
                    .collect(),
                params,
                metrics,
                facets,
                stderr_tail: None,
                log_hash: None,
            },
        });
    }
    Ok(out)
}

fn no_remote() -> CliError {
    CliError::invalid(
        "error: no remote cache is configured\n  = help: set `[remote] url` in `pedigree.toml`, $PEDIGREE_REMOTE, or pass `--remote URL`",
    )
}

#[derive(Debug, clap::Subcommand)]
pub enum RemoteCommand {
    /// Probe the configured store: conditional creates, one winner of 32, multipart visibility, verified download.
    Check {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Print the probes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove entries and blobs that no lock file or release pins, once older than the grace period.
    Gc {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Keep everything newer than this many hours.
        #[arg(long, default_value_t = 24 * 7, value_name = "HOURS")]
        grace_hours: u64,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn remote_cmd(cmd: RemoteCommand, g: &Global) -> Result<Exit, CliError> {
    let root = workspace::find_root(g.workspace.as_deref())?;
    match cmd {
        RemoteCommand::Check { remote, json } => {
            let cache = open_cache(&root, &remote)?.ok_or_else(no_remote)?;
            let ws = Workspace::open(&root, true).await?;
            let probes = remote::check::run(cache.remote(), &ws.store).await;
            let ok = probes.iter().all(|p| p.ok);
            if json {
                print_json(&serde_json::json!({
                    "remote": cache.remote().url,
                    "safe": ok,
                    "probes": probes.iter().map(|p| serde_json::json!({"name": p.name, "ok": p.ok, "detail": p.detail})).collect::<Vec<_>>(),
                }));
            } else {
                println!("remote `{}`", cache.remote().url);
                for p in &probes {
                    println!(
                        "  {}  {}: {}",
                        if p.ok { "ok  " } else { "FAIL" },
                        p.name,
                        p.detail
                    );
                }
                if ok {
                    println!("safe to share: every probe passed");
                } else {
                    println!(
                        "UNSAFE for publishing: a store that breaks these promises can let two writers both win an entry"
                    );
                }
            }
            Ok(if ok { Exit::Ok } else { Exit::Failure })
        }
        RemoteCommand::Gc {
            remote,
            grace_hours,
            dry_run,
            json,
        } => {
            let cache = open_cache(&root, &remote)?.ok_or_else(no_remote)?;
            let ws = super::open_existing(g).await?;
            let done = crate::maintenance::remote_gc::collect(
                &ws,
                cache.remote(),
                Duration::from_secs(grace_hours * 3600),
                dry_run,
            )
            .await
            .map_err(|e| CliError::failed(format!("error: {e}")))?;
            if json {
                print_json(&done);
            } else {
                println!(
                    "{} {} entr{} and {} blob{} ({}) from `{}`; kept {} entr{} and {} blob{}",
                    if dry_run { "would remove" } else { "removed" },
                    done.entries_removed,
                    if done.entries_removed == 1 {
                        "y"
                    } else {
                        "ies"
                    },
                    done.blobs_removed,
                    if done.blobs_removed == 1 { "" } else { "s" },
                    crate::util::fmt::bytes(done.bytes as i64),
                    cache.remote().url,
                    done.entries_kept,
                    if done.entries_kept == 1 { "y" } else { "ies" },
                    done.blobs_kept,
                    if done.blobs_kept == 1 { "" } else { "s" },
                );
            }
            Ok(Exit::Ok)
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The workflow file (YAML).
    pub workflow: PathBuf,
    /// Override a param, as with `run`.
    #[arg(long = "set", value_name = "K=V")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[arg(long)]
    pub json: bool,
}

/// `pedigree pull WORKFLOW`: fetch every result the workflow needs that the local
/// cache lacks and the remote has, verified, without running anything.
pub async fn pull(args: PullArgs, g: &Global) -> Result<Exit, CliError> {
    let (ws, resolved) = super::run::load(g, &args.workflow, &args.set, true).await?;
    let cache = open_cache(&ws.root, &args.remote)?.ok_or_else(no_remote)?;
    let states = crate::engine::status::status(
        &ws,
        &resolved,
        false,
        crate::engine::status::Remote::Pull(cache.as_ref()),
    )
    .await?;
    let count = |s: &str| states.iter().filter(|x| x.state == s).count();
    if args.json {
        print_json(&serde_json::json!({ "workflow": resolved.wf.name, "steps": states }));
    } else {
        for s in &states {
            println!("{:<7} {:<20} {}", s.state, s.name, s.reason);
        }
        println!(
            "pulled {} step{}; {} already here; {} would run",
            count("pulled"),
            if count("pulled") == 1 { "" } else { "s" },
            count("fresh"),
            count("stale")
        );
    }
    Ok(Exit::Ok)
}
