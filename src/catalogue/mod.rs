//! The catalogue the company runs (Marquez, DataHub, …), fed OpenLineage events.
//!
//! - [`Settings`]: where events go, from `pedigree.toml`'s `[openlineage]` and the
//!   OpenLineage client's own environment variables ([`resolve`]);
//! - [`transport`]: one event to the catalogue (HTTP), a file or stderr, with an
//!   answer that says whether to retry;
//! - [`send`]: draining the outbox (`lineage::outbox`) in order, in the background
//!   of a run and in `pedigree openlineage flush`.
//!
//! The events themselves are composed by `openlineage` from what `lineage` records;
//! nothing here decides what an event says.

pub mod send;
pub mod transport;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::openlineage::{Context, Objects};

pub use send::{Drained, Sender};
pub use transport::{Outcome, Transport};

/// The OpenLineage client's variables, as its Python and Java clients read them.
pub const URL_ENV: &str = "OPENLINEAGE_URL";
pub const ENDPOINT_ENV: &str = "OPENLINEAGE_ENDPOINT";
pub const API_KEY_ENV: &str = "OPENLINEAGE_API_KEY";
pub const NAMESPACE_ENV: &str = "OPENLINEAGE_NAMESPACE";
pub const DISABLED_ENV: &str = "OPENLINEAGE_DISABLED";

/// The default path events are posted to under the URL (Marquez's).
pub const DEFAULT_ENDPOINT: &str = "api/v1/lineage";
/// How long one delivery may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a workspace's events go.
#[derive(Debug, Clone)]
pub struct Settings {
    pub transport: Transport,
    /// The job namespace.
    pub namespace: String,
    /// How long one delivery may take.
    pub timeout: Duration,
}

impl Settings {
    /// Where events go, for people (never the API key).
    pub fn target(&self) -> String {
        self.transport.target()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The settings after `pedigree.toml` and the environment; `None` when events are
/// off (no `[openlineage]` and no `OPENLINEAGE_URL`, or `OPENLINEAGE_DISABLED=true`).
pub fn resolve(config: &Config, root: &Path) -> Result<Option<Settings>, String> {
    if env(DISABLED_ENV)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
    {
        return Ok(None);
    }
    let file = config.openlineage.clone();
    let env_url = env(URL_ENV);
    if file.is_none() && env_url.is_none() {
        return Ok(None);
    }
    let file = file.unwrap_or_default();
    let timeout = file.timeout.map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    // The environment's URL wins, and means HTTP, whatever the file's transport.
    let transport = match (env_url, file.transport.as_deref()) {
        (Some(url), _) => http(&url, env(ENDPOINT_ENV).or(file.endpoint), URL_ENV)?,
        (None, Some("file")) => {
            let path = file.path.as_deref().ok_or(
                "`pedigree.toml`: `[openlineage]` transport `file` needs `path` (the file events are appended to, relative to the workspace)",
            )?;
            Transport::File(root.join(path))
        }
        (None, Some("console")) => Transport::Console,
        (None, _) => {
            let url = file.url.as_deref().ok_or(
                "`pedigree.toml`: `[openlineage]` needs `url` (the catalogue, e.g. `http://localhost:5000`), or `transport = \"file\"` with a `path`",
            )?;
            http(
                url,
                env(ENDPOINT_ENV).or(file.endpoint),
                "`pedigree.toml`: `[openlineage]` url",
            )?
        }
    };
    let namespace = namespace(config, root);
    Ok(Some(Settings {
        transport,
        namespace,
        timeout,
    }))
}

fn http(url: &str, endpoint: Option<String>, from: &str) -> Result<Transport, String> {
    let url = url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{from} `{url}` is not an http:// or https:// URL"));
    }
    crate::config::check_catalogue_url(url).map_err(|why| format!("{from}: {why}"))?;
    let endpoint = endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    Ok(Transport::Http {
        url: format!(
            "{}/{}",
            url.trim_end_matches('/'),
            endpoint.trim_start_matches('/')
        ),
        api_key: env(API_KEY_ENV),
    })
}

/// The repository's URL without any credentials in it, if it has an `origin`.
pub fn repo_url(root: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["remote", "get-url", "origin"])
        .current_dir(root)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!url.is_empty()).then(|| without_userinfo(&url))
}

/// `https://user:token@host/x` → `https://host/x` (a token in a clone URL must
/// never reach an event).
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        // `git@host:org/repo`: the user is the transport's, not a secret.
        None => url.to_owned(),
    }
}

/// The job namespace: `OPENLINEAGE_NAMESPACE`, else `[openlineage] namespace`, else
/// the repository's name (from `origin`), else the workspace folder's name.
pub fn namespace(config: &Config, root: &Path) -> String {
    env(NAMESPACE_ENV)
        .or_else(|| config.openlineage.as_ref()?.namespace.clone())
        .unwrap_or_else(|| default_namespace(root))
}

fn default_namespace(root: &Path) -> String {
    repo_url(root)
        .and_then(|u| {
            let name = u
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .rsplit(['/', ':'])
                .next()?
                .to_owned();
            (!name.is_empty()).then_some(name)
        })
        .or_else(|| {
            std::path::absolute(root)
                .ok()?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "pedigree".into())
}

/// The context events of the workspace at `root` are composed with: objects named
/// in `remote` (the team's cache URL) when there is one, else in the local store
/// at `objects` on `host`.
pub fn context(
    namespace: &str,
    root: &Path,
    host: &str,
    objects: &Path,
    remote: Option<&str>,
) -> Context {
    let absolute =
        |p: &Path| -> PathBuf { std::path::absolute(p).unwrap_or_else(|_| p.to_owned()) };
    Context {
        namespace: namespace.to_owned(),
        objects: match remote {
            Some(url) => Objects::remote(url),
            None => Objects::Local {
                host: host.to_owned(),
                root: absolute(objects).to_string_lossy().into_owned(),
            },
        },
        root: absolute(root).to_string_lossy().into_owned(),
        host: host.to_owned(),
        repo_url: repo_url(root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_urls_lose_their_credentials() {
        assert_eq!(
            without_userinfo("https://bot:ghp_secret@github.com/acme/recs.git"),
            "https://github.com/acme/recs.git"
        );
        assert_eq!(
            without_userinfo("git@github.com:acme/recs.git"),
            "git@github.com:acme/recs.git"
        );
    }

    #[test]
    fn http_urls_are_checked_and_joined() {
        let t = http("http://127.0.0.1:5000/", None, "url").unwrap();
        assert_eq!(t.target(), "http://127.0.0.1:5000/api/v1/lineage");
        let t = http("http://h", Some("/custom/lineage".into()), "url").unwrap();
        assert_eq!(t.target(), "http://h/custom/lineage");
        assert!(
            http("ftp://h", None, "url")
                .unwrap_err()
                .contains("not an http")
        );
        assert!(
            http("http://u:p@h", None, "url")
                .unwrap_err()
                .contains("credentials")
        );
    }
}
