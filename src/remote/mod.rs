//! The shared result cache on object storage (S3, GCS, Azure or a folder).
//!
//! - [`store`]: the layout (`v1/cas/…`, `v1/ac/…`), bounded requests, conditional
//!   creates, verified downloads;
//! - [`open`]: a URL and the environment's credentials to an object store;
//! - [`entry`]: the signed step-result entry and every check a read makes;
//! - [`cache`]: the engine's `ResultCache` over them;
//! - [`check`]: `pedigree remote check`, a conformance probe of the store;
//! - `maintenance::remote_gc`: `pedigree remote gc`, by reachability from lock
//!   files and releases.
//!
//! Settings come from `pedigree.toml`'s `[remote]`, then `PEDIGREE_REMOTE` /
//! `PEDIGREE_PUSH`, then `--remote URL` / `--no-remote` / `--push` ([`resolve`]).

pub mod cache;
pub mod check;
pub mod entry;
pub mod open;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::keys::{self, PublicKey};

pub use cache::RemoteCache;
pub use store::{RemoteError, RemoteStore};

/// The environment variable naming the remote (a URL, or `none`).
pub const REMOTE_ENV: &str = "PEDIGREE_REMOTE";
/// The environment variable that turns publishing on (`1`, `true`) or off.
pub const PUSH_ENV: &str = "PEDIGREE_PUSH";

/// The command line's say.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub remote: Option<String>,
    pub no_remote: bool,
    pub push: bool,
}

/// The remote settings in force for a command.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub options: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    pub push: bool,
    pub trust: Vec<(String, PublicKey)>,
}

/// The settings after `pedigree.toml`, the environment and the flags; `None` when
/// no remote is configured (or `--no-remote`).
pub fn resolve(config: &Config, flags: &Flags) -> Result<Option<Settings>, String> {
    let file = config.remote.clone().unwrap_or_default();
    let env_url = std::env::var(REMOTE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let url = if flags.no_remote {
        None
    } else if let Some(u) = &flags.remote {
        Some(u.clone())
    } else if let Some(u) = env_url {
        (u.trim() != "none").then_some(u)
    } else {
        file.url.clone()
    };
    let Some(url) = url else { return Ok(None) };
    let push = flags.push
        || match std::env::var(PUSH_ENV).ok().as_deref().map(str::trim) {
            Some("1" | "true" | "yes") => true,
            Some("0" | "false" | "no") => false,
            _ => file.push,
        };
    let mut trust = Vec::new();
    for (name, text) in &file.trust {
        // Checked when the file was read; a bad one here is a programming error
        // made visible, not a panic.
        let k = PublicKey::parse(text).map_err(|e| format!("trusted key `{name}`: {e}"))?;
        trust.push((name.clone(), k));
    }
    Ok(Some(Settings {
        url,
        options: file.options.clone(),
        timeout: file.timeout.map(Duration::from_secs),
        push,
        trust,
    }))
}

/// Why the remote cache of a command could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `pedigree.toml` does not parse or validate.
    #[error("{0}")]
    Config(crate::diag::Diagnostic),
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// Open the remote cache a command uses, with what to warn about. `None`
/// when no remote is configured.
pub fn open_cache(
    root: &Path,
    flags: &Flags,
) -> Result<Option<(RemoteCache, Vec<String>)>, OpenError> {
    if flags.no_remote {
        return Ok(None);
    }
    let config = Config::load(root).map_err(OpenError::Config)?;
    let Some(s) = resolve(&config, flags).map_err(OpenError::Settings)? else {
        return Ok(None);
    };
    let remote = open::open(&s.url, &s.options, s.timeout)?;
    let mut warnings = Vec::new();
    if s.trust.is_empty() {
        warnings.push(format!(
            "remote `{}`: `pedigree.toml` trusts no key (`[remote.trust]`), so nothing is read from it",
            s.url
        ));
    }
    let signer = if s.push {
        match keys::load_signer() {
            Ok(Some((signer, _))) => {
                if !s.trust.iter().any(|(_, k)| k == signer.public()) {
                    warnings.push(format!(
                        "your signing key {} is not in `[remote.trust]`: workspaces with this `pedigree.toml` will not read what you publish (`pedigree key trust`)",
                        signer.public()
                    ));
                }
                Some(signer)
            }
            Ok(None) => {
                warnings.push(format!(
                    "publishing is on but there is no signing key, so nothing is published: make one with `pedigree key new`, or set ${} or ${}",
                    keys::KEY_FILE_ENV,
                    keys::KEY_ENV
                ));
                None
            }
            Err(e) => {
                warnings.push(format!("not publishing: {e}"));
                None
            }
        }
    } else {
        None
    };
    Ok(Some((RemoteCache::new(remote, s.trust, signer), warnings)))
}
