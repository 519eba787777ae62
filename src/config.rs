//! The team's settings: `pedigree.toml` at the workspace root, committed with the
//! workflows. It names what a team shares (today: the remote cache, whom it trusts
//! and whether this workspace publishes). The environment and command-line flags
//! override it; credentials never live in it (a field or URL that carries one is
//! refused, with where it goes instead).
//!
//! Without the file, every setting has its default and nothing is shared: the
//! embedded behaviour (a folder store, SQLite, local processes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diag::{Diagnostic, Source};

/// The file's name at the workspace root.
pub const FILE: &str = "pedigree.toml";

/// What `pedigree init` writes: every setting commented out, so the file documents
/// itself and changes nothing until a team edits it.
pub const TEMPLATE: &str = "\
# pedigree.toml: what this workspace shares with a team. Committed with the workflows;
# credentials never go here (they come from the environment: AWS_*, GOOGLE_*, AZURE_*,
# or the providers' usual files such as ~/.aws/credentials).

# [remote]
# The shared result cache: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix
# or file:///shared/folder. Overridden by PEDIGREE_REMOTE and --remote / --no-remote.
# url = \"s3://team-cache/pedigree\"
# Publish the results this workspace computes (needs a signing key: `pedigree key new`).
# Overridden by PEDIGREE_PUSH=1 and --push. Usually true only on the main branch's CI.
# push = false
# Store options that are not secrets (object_store names), e.g. for an S3-compatible server:
# options = { endpoint = \"http://127.0.0.1:9000\", region = \"us-east-1\", allow_http = \"true\" }

# [remote.trust]
# The public keys whose entries this workspace accepts (`pedigree key trust KEY --name N`).
# ci = \"ed25519:...\"

# [openlineage]
# Send every run and step run to the lineage catalogue (Marquez, DataHub, ...) as
# OpenLineage events. Overridden by OPENLINEAGE_URL; the API key is OPENLINEAGE_API_KEY.
# url = \"http://localhost:5000\"
# Or append them to a file (transport = \"file\", path = \"lineage-events.jsonl\").
# The job namespace (default: the repository's name).
# namespace = \"recs\"
";

/// The parsed file; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the file was read from (`None` when there is none).
    #[serde(skip)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub remote: Option<RemoteConfig>,
    #[serde(default)]
    pub openlineage: Option<OpenLineageConfig>,
}

/// `[openlineage]`: where the run and step events go (off without it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLineageConfig {
    /// `http` (the default when `url` is set), `file` or `console`.
    pub transport: Option<String>,
    /// The catalogue's base URL (`http://marquez:5000`), for `http`.
    pub url: Option<String>,
    /// The path under `url` events are posted to (default `api/v1/lineage`).
    pub endpoint: Option<String>,
    /// The file events are appended to as JSON lines, for `file` (relative to the
    /// workspace root).
    pub path: Option<String>,
    /// The job namespace (default: the repository's name).
    pub namespace: Option<String>,
    /// Seconds one delivery may take.
    pub timeout: Option<u64>,
    /// Never valid here: read so that its presence is refused with where it goes.
    #[serde(default)]
    api_key: Option<toml::Value>,
}

/// `[remote]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    pub url: Option<String>,
    #[serde(default)]
    pub push: bool,
    /// Options passed to the store's builder (endpoint, region, ...), never secrets.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Name → `ed25519:HEX` public key.
    #[serde(default)]
    pub trust: BTreeMap<String, String>,
    /// Seconds a single request to the remote may take before it counts as down.
    pub timeout: Option<u64>,
}

/// Words that mark an option or URL parameter as a credential.
const SECRET_WORDS: &[&str] = &[
    "secret",
    "password",
    "token",
    "access_key",
    "key_id",
    "credential",
    "sas",
    "signature",
    "private",
];

/// Where credentials go instead, per scheme.
pub fn credentials_help(url: &str) -> &'static str {
    match url.split(':').next().unwrap_or("") {
        "gs" => {
            "credentials come from the environment: GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT (a key file outside the repository), or the instance's metadata server"
        }
        "az" | "azure" | "abfs" | "abfss" => {
            "credentials come from the environment: AZURE_STORAGE_ACCOUNT_KEY, AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID, or a managed identity"
        }
        _ => {
            "credentials come from the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), a profile in ~/.aws/credentials (AWS_PROFILE), or the instance's metadata"
        }
    }
}

/// Is this option name a credential?
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    // A KMS key id names a key, it is not one.
    if n.ends_with("kms_key_id") {
        return false;
    }
    SECRET_WORDS.iter().any(|w| n.contains(w)) || n == "key"
}

/// What credential a URL carries, if any: user info (`s3://KEY:SECRET@b`) or a
/// query parameter named like one; said without repeating the secret.
pub fn url_credential(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Some("credentials (user info before `@`)".into());
    }
    let (_, query) = rest.split_once('?')?;
    query
        .split('&')
        .map(|pair| pair.split('=').next().unwrap_or(""))
        .find(|name| is_secret_name(name))
        .map(|name| format!("a credential (query parameter `{name}`)"))
}

/// Refuse a remote URL that carries a credential, saying where it goes instead.
pub fn check_url_has_no_credentials(url: &str) -> Result<(), String> {
    match url_credential(url) {
        Some(what) => Err(format!(
            "the remote URL carries {what}; remove {}: {}",
            if what.starts_with("credentials") {
                "them"
            } else {
                "it"
            },
            credentials_help(url)
        )),
        None => Ok(()),
    }
}

/// Refuse a catalogue URL that carries a credential: its key is `OPENLINEAGE_API_KEY`.
pub fn check_catalogue_url(url: &str) -> Result<(), String> {
    match url_credential(url) {
        Some(what) => Err(format!(
            "the URL carries {what}; remove it: set OPENLINEAGE_API_KEY in the environment instead (sent as a bearer token)"
        )),
        None => Ok(()),
    }
}

impl Config {
    /// Read `pedigree.toml` under `root`; its absence is the default config.
    pub fn load(root: &Path) -> Result<Config, Diagnostic> {
        let path = root.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => {
                return Err(Diagnostic::new(format!("cannot read `{FILE}`: {e}")).in_file(&path));
            }
        };
        Config::parse(&path, &text)
    }

    /// Parse the text of a `pedigree.toml` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostic> {
        let source = Source::new(path, text);
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let span = e.span().map(|r| span_of(&source, r));
            let message = e.message().trim().to_owned();
            let d = Diagnostic::new(format!("invalid `{FILE}`: {message}")).at(&source, span);
            if message.contains("unknown field") {
                d.help(
                    "the settings are `[remote]` url, push, options, timeout, `[remote.trust]`, and `[openlineage]` transport, url, endpoint, path, namespace, timeout; see the README's `pedigree.toml` section",
                )
            } else {
                d
            }
        })?;
        config.path = Some(path.to_owned());
        let at = |needle: &str| {
            text.find(needle)
                .map(|start| span_of(&source, start..start + needle.len()))
        };
        // A credential's line is never shown: the message would repeat it.
        let line =
            |needle: &str| at(needle).map_or(String::new(), |s| format!(" (line {})", s.line));
        if let Some(o) = &config.openlineage {
            if o.api_key.is_some() {
                return Err(Diagnostic::new(format!(
                    "invalid `{FILE}`{}: `[openlineage]` api_key is a credential, and this file is committed",
                    line("api_key")
                ))
                .in_file(path)
                .help("set OPENLINEAGE_API_KEY in the environment instead (sent as a bearer token)"));
            }
            if let Some(url) = &o.url
                && let Err(why) = check_catalogue_url(url)
            {
                return Err(Diagnostic::new(format!(
                    "invalid `{FILE}`{}: `[openlineage]` url: {why}",
                    line(url),
                ))
                .in_file(path));
            }
            if let Some(t) = &o.transport
                && !["http", "file", "console"].contains(&t.as_str())
            {
                let start = text.find(&format!("\"{t}\"")).map(|s| s + 1);
                return Err(Diagnostic::new(format!(
                    "invalid `{FILE}`: `[openlineage]` transport `{t}` is not one of http, file, console"
                ))
                .at(&source, start.map(|s| span_of(&source, s..s + t.len())))
                .help(crate::diag::suggest(t, "transport", ["http", "file", "console"])));
            }
        }
        if let Some(r) = &config.remote {
            if let Some(url) = &r.url
                && let Err(why) = check_url_has_no_credentials(url)
            {
                return Err(Diagnostic::new(format!("invalid `{FILE}`{}: {why}", line(url)))
                    .in_file(path)
                    .help("the URL is committed with the workflows: keep only the bucket and prefix in it"));
            }
            for name in r.options.keys() {
                if is_secret_name(name) {
                    return Err(Diagnostic::new(format!(
                        "invalid `{FILE}`{}: `{name}` is a credential, and this file is committed",
                        line(name)
                    ))
                    .in_file(path)
                    .help(credentials_help(r.url.as_deref().unwrap_or(""))));
                }
            }
            for (name, key) in &r.trust {
                if let Err(why) = crate::keys::PublicKey::parse(key) {
                    return Err(Diagnostic::new(format!(
                        "invalid `{FILE}`: trusted key `{name}`: {why}"
                    ))
                    .at(&source, at(key))
                    .help("a trusted key is `ed25519:` and 64 hex digits, as `pedigree key new` prints it"));
                }
            }
        }
        Ok(config)
    }
}

/// A byte range of `source` as a 1-based line, column and width.
fn span_of(source: &Source, r: std::ops::Range<usize>) -> crate::diag::Span {
    let before = &source.text[..r.start.min(source.text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let width = source
        .text
        .get(r.clone())
        .map_or(1, |s| s.lines().next().map_or(1, |l| l.chars().count()));
    source.span_at(line, col, width)
}

/// Add (or replace) a trusted key in the `pedigree.toml` under `root`, keeping
/// the rest of the file (comments included) as it is. Creates the file when it
/// is absent.
pub fn add_trusted_key(root: &Path, name: &str, key: &str) -> Result<PathBuf, String> {
    let path = root.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    // Refuse to edit a file that does not parse as a config: the edit would hide it.
    Config::parse(&path, &text).map_err(|d| d.to_string().trim_end().to_owned())?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("cannot parse `{}`: {e}", path.display()))?;
    let remote = doc
        .entry("remote")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .ok_or_else(|| format!("`remote` in `{}` is not a table", path.display()))?;
    let trust = remote
        .entry("trust")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| format!("`remote.trust` in `{}` is not a table", path.display()))?;
    trust.insert(name, toml_edit::value(key));
    let out = doc.to_string();
    Config::parse(&path, &out).map_err(|d| d.to_string().trim_end().to_owned())?;
    let tmp = root.join(format!(".{FILE}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, out.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write `{}`: {e}", path.display())
        })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("pedigree.toml"), text).map_err(|d| d.to_string())
    }

    #[test]
    fn an_empty_file_is_the_default() {
        let c = parse("").unwrap();
        assert!(c.remote.is_none());
    }

    #[test]
    fn the_template_parses_and_shares_nothing() {
        let c = parse(TEMPLATE).unwrap();
        assert!(c.remote.is_none());
    }

    #[test]
    fn a_remote_with_trust_parses() {
        let key = format!("ed25519:{}", "ab".repeat(32));
        let c = parse(&format!(
            "[remote]\nurl = \"s3://b/p\"\npush = true\n[remote.trust]\nci = \"{key}\"\n"
        ))
        .unwrap();
        let r = c.remote.unwrap();
        assert_eq!(r.url.as_deref(), Some("s3://b/p"));
        assert!(r.push);
        assert_eq!(r.trust["ci"], key);
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_repeating_them() {
        let e = parse("[remote]\nurl = \"s3://AKIAXX:hunter2@bucket/p\"\n").unwrap_err();
        assert!(e.contains("carries credentials"), "{e}");
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(e.contains("(line 2)"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = check_url_has_no_credentials("az://c/p?sas_token=abc").unwrap_err();
        assert!(e.contains("sas_token") && e.contains("AZURE"), "{e}");
        assert!(check_url_has_no_credentials("s3://bucket/prefix").is_ok());
    }

    #[test]
    fn a_secret_option_is_refused() {
        let e = parse("[remote]\nurl = \"s3://b\"\noptions = { secret_access_key = \"x\" }\n")
            .unwrap_err();
        assert!(e.contains("is a credential"), "{e}");
        assert!(!e.contains("= \"x\""), "{e}");
        assert!(parse("[remote]\noptions = { endpoint = \"http://127.0.0.1:1\" }\n").is_ok());
    }

    #[test]
    fn unknown_fields_and_bad_keys_name_the_place() {
        let e = parse("[remote]\nurll = \"s3://b\"\n").unwrap_err();
        assert!(
            e.contains("unknown field") && e.contains("pedigree.toml:2:1"),
            "{e}"
        );
        let e = parse("[remote.trust]\nci = \"ed25519:zz\"\n").unwrap_err();
        assert!(e.contains("trusted key `ci`"), "{e}");
    }

    #[test]
    fn trusting_a_key_keeps_comments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            "# team settings\n[remote]\nurl = \"file:///x\" # shared\n",
        )
        .unwrap();
        let key = format!("ed25519:{}", "cd".repeat(32));
        add_trusted_key(dir.path(), "ci", &key).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.starts_with("# team settings\n"), "{text}");
        assert!(text.contains("# shared"), "{text}");
        let c = Config::load(dir.path()).unwrap();
        assert_eq!(c.remote.unwrap().trust["ci"], key);
    }
}
