//! Opening the remote named by a URL: the scheme picks the object_store builder,
//! the environment and the providers' usual files give the credentials (never
//! `pedigree.toml`), and every request has a bounded timeout and few retries, so
//! a remote that is down costs a few seconds once, not a hang.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, RetryConfig};

use super::store::{Build, RemoteError, RemoteStore};
use crate::config::{check_url_has_no_credentials, credentials_help, is_secret_name};

/// The default time one small request may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Open the store at `url` with the non-secret `options` of `pedigree.toml`.
pub fn open(
    url: &str,
    options: &BTreeMap<String, String>,
    timeout: Option<Duration>,
) -> Result<RemoteStore, RemoteError> {
    check_url_has_no_credentials(url).map_err(RemoteError::Config)?;
    if let Some(name) = options.keys().find(|k| is_secret_name(k)) {
        return Err(RemoteError::Config(format!(
            "remote option `{name}` is a credential; {}",
            credentials_help(url)
        )));
    }
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    install_crypto();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        RemoteError::Config(format!(
            "`{url}` is not a remote URL: use s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX or file:///FOLDER"
        ))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.split(['?', '#']).next().unwrap_or("");
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: timeout,
    };
    // Bounded requests first, then the workspace's own options (which may change them).
    let settings: Vec<(String, String)> = [
        (
            "timeout".to_owned(),
            format!("{}s", timeout.as_secs().max(1)),
        ),
        ("connect_timeout".to_owned(), "3s".to_owned()),
    ]
    .into_iter()
    .chain(options.iter().map(|(k, v)| (k.clone(), v.clone())))
    .collect();
    let build: Build = match scheme {
        "file" => {
            let dir = PathBuf::from(format!("/{}", rest.trim_start_matches('/')));
            std::fs::create_dir_all(&dir).map_err(|e| {
                RemoteError::Config(format!("cannot use `{}` as the remote: {e}", dir.display()))
            })?;
            let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| {
                RemoteError::Config(format!("cannot use `{}` as the remote: {e}", dir.display()))
            })?;
            let fs: Arc<dyn ObjectStore> = Arc::new(fs);
            let build: Build = Arc::new(move || Ok(fs.clone()));
            return Ok(RemoteStore::new(build, url, "", timeout).with_local_root(dir));
        }
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(format!("s3://{bucket}"))
                .with_retry(retry);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                && let Some(p) = aws_profile()
            {
                b = b
                    .with_access_key_id(p.access_key_id)
                    .with_secret_access_key(p.secret_access_key);
                if let Some(t) = p.session_token {
                    b = b.with_token(t);
                }
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                    && let Some(r) = p.region
                {
                    b = b.with_region(r);
                }
            }
            b = configure(b, &settings, |b, k: AmazonS3ConfigKey, v| {
                b.with_config(k, v)
            })?;
            lazily(url, move || b.clone().build())
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(format!("gs://{bucket}"))
                .with_retry(retry);
            b = configure(b, &settings, |b, k: GoogleConfigKey, v| b.with_config(k, v))?;
            lazily(url, move || b.clone().build())
        }
        "az" | "azure" => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(format!("az://{bucket}"))
                .with_retry(retry);
            b = configure(b, &settings, |b, k: AzureConfigKey, v| b.with_config(k, v))?;
            lazily(url, move || b.clone().build())
        }
        other => {
            return Err(RemoteError::Config(format!(
                "remote `{url}`: unknown scheme `{other}`; use s3://, gs://, az:// or file://"
            )));
        }
    };
    // The endpoint the builder will use: the option, else the provider's variable.
    let endpoint = options
        .get("endpoint")
        .or_else(|| options.get("aws_endpoint"))
        .cloned()
        .or_else(|| match scheme {
            "s3" | "s3a" => std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .ok(),
            _ => None,
        });
    Ok(RemoteStore::new(build, url, prefix, timeout).with_endpoint(endpoint.as_deref()))
}

/// A [`Build`] from a builder's `build`, its error worded for people.
fn lazily<S: ObjectStore>(
    url: &str,
    build: impl Fn() -> object_store::Result<S> + Send + Sync + 'static,
) -> Build {
    let url = url.to_owned();
    Arc::new(move || {
        build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            .map_err(|e| config_error(&url, e).to_string())
    })
}

/// Apply `settings` to a builder through its `with_config`, each name parsed as
/// that builder's config key.
fn configure<B, K: std::str::FromStr>(
    mut b: B,
    settings: &[(String, String)],
    set: impl Fn(B, K, String) -> B,
) -> Result<B, RemoteError> {
    for (k, v) in settings {
        b = set(b, parse_key::<K>(k)?, v.clone());
    }
    Ok(b)
}

fn parse_key<K: std::str::FromStr>(k: &str) -> Result<K, RemoteError> {
    k.parse::<K>().map_err(|_| {
        RemoteError::Config(format!("unknown remote option `{k}` in `[remote] options`"))
    })
}

fn config_error(url: &str, e: object_store::Error) -> RemoteError {
    RemoteError::Config(format!(
        "cannot open remote `{url}`: {}",
        super::store::one_line(&e.to_string())
    ))
}

/// rustls needs one process-wide crypto provider: ring's (see Cargo.toml).
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Credentials of an AWS profile from the shared files.
struct Profile {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    region: Option<String>,
}

/// The profile `AWS_PROFILE` (default `default`) from `~/.aws/credentials`
/// (`AWS_SHARED_CREDENTIALS_FILE`) and its region from `~/.aws/config`
/// (`AWS_CONFIG_FILE`), as the AWS CLI reads them. Only static keys: a profile
/// with `credential_process` or SSO is not read (set `AWS_*` instead).
fn aws_profile() -> Option<Profile> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let creds = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let config = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/config"));
    let section = ini_section(&std::fs::read_to_string(creds).ok()?, &name);
    let region = std::fs::read_to_string(config).ok().and_then(|t| {
        let header = if name == "default" {
            "default".to_owned()
        } else {
            format!("profile {name}")
        };
        ini_section(&t, &header).remove("region")
    });
    let mut section = section;
    Some(Profile {
        access_key_id: section.remove("aws_access_key_id")?,
        secret_access_key: section.remove("aws_secret_access_key")?,
        session_token: section.remove("aws_session_token"),
        region,
    })
}

/// The `key = value` pairs of `[name]` in an INI text.
fn ini_section(text: &str, name: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = h.trim() == name;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_are_read_by_name() {
        let t = "[default]\naws_access_key_id = A\n[other]\naws_access_key_id=B\n# c\naws_secret_access_key = S\n";
        assert_eq!(ini_section(t, "other")["aws_access_key_id"], "B");
        assert_eq!(ini_section(t, "other")["aws_secret_access_key"], "S");
        assert_eq!(ini_section(t, "default").len(), 1);
    }

    #[test]
    fn one_bucket_behind_two_endpoints_is_two_stores_to_remember() {
        let at = |e: &str| {
            let opts = BTreeMap::from([("endpoint".to_owned(), e.to_owned())]);
            open("s3://team-cache/p", &opts, None)
                .unwrap()
                .identity()
                .to_owned()
        };
        assert_ne!(at("http://127.0.0.1:9000"), at("http://127.0.0.1:9001"));
        assert!(at("http://127.0.0.1:9000").starts_with("s3://team-cache/p"));
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        assert_eq!(open(&url, &BTreeMap::new(), None).unwrap().identity(), url);
    }

    #[test]
    fn bad_urls_say_what_is_accepted() {
        let e = open("ftp://x/y", &BTreeMap::new(), None).unwrap_err();
        assert!(e.to_string().contains("unknown scheme `ftp`"), "{e}");
        let e = open("bucket", &BTreeMap::new(), None).unwrap_err();
        assert!(e.to_string().contains("s3://BUCKET"), "{e}");
        let e = open("s3://k:s@b/p", &BTreeMap::new(), None).unwrap_err();
        assert!(e.to_string().contains("credentials"), "{e}");
        assert!(!e.to_string().contains("k:s"), "{e}");
    }
}
