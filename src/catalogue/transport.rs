//! One event, delivered: POSTed to the catalogue, appended to a file, or printed.
//! The answer says what to do next: forget it, try again later, or keep it aside.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::util::fmt::one_line;

/// Where events go.
#[derive(Debug, Clone)]
pub enum Transport {
    /// POST to `url` (the endpoint, joined), with `Authorization: Bearer API_KEY`.
    Http {
        url: String,
        api_key: Option<String>,
    },
    /// Appended to this file, one JSON object per line.
    File(PathBuf),
    /// Printed to stderr, one JSON object per line.
    Console,
}

/// What delivering one event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Not now (the catalogue is down, slow, or asked to wait): try again, after
    /// `retry_after` if it said.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The catalogue refused this event; sending it again will not help.
    Rejected(String),
}

impl Transport {
    /// Where events go, for people (never the API key).
    pub fn target(&self) -> String {
        match self {
            Transport::Http { url, .. } => url.clone(),
            Transport::File(p) => p.display().to_string(),
            Transport::Console => "stderr".into(),
        }
    }

    /// Deliver what was queued (`body`, one JSON event) with `timeout` for the whole
    /// attempt.
    pub async fn deliver(&self, client: &Client, body: &str, timeout: Duration) -> Outcome {
        match self {
            Transport::Http { url, api_key } => {
                post(client, url, api_key.as_deref(), body, timeout).await
            }
            Transport::File(path) => append(path.clone(), body.to_owned()).await,
            Transport::Console => {
                eprintln!("{body}");
                Outcome::Delivered
            }
        }
    }
}

/// The HTTP client of a sender (one per process; made on first use).
#[derive(Debug, Default)]
pub struct Client(std::sync::OnceLock<Result<reqwest::Client, String>>);

impl Client {
    fn get(&self) -> Result<&reqwest::Client, String> {
        self.0
            .get_or_init(|| {
                // rustls needs one process-wide crypto provider: ring's (see Cargo.toml).
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .user_agent(concat!("pedigree/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("cannot make an HTTP client: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

async fn post(
    client: &Client,
    url: &str,
    api_key: Option<&str>,
    body: &str,
    timeout: Duration,
) -> Outcome {
    let client = match client.get() {
        Ok(c) => c,
        Err(error) => {
            return Outcome::Transient {
                error,
                retry_after: None,
            };
        }
    };
    let mut req = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some(key) = api_key {
        req = req.bearer_auth(key);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let why = if e.is_timeout() {
                format!(
                    "no answer within {}",
                    crate::util::fmt::human_duration(timeout.as_secs_f64())
                )
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                one_line(&e.to_string())
            };
            return Outcome::Transient {
                error: format!("{url}: {why}"),
                retry_after: None,
            };
        }
    };
    let status = resp.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // A short excerpt of what it said (the catalogue's reason for a 4xx).
    let text = tokio::time::timeout(timeout, resp.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let said = one_line(&text);
    let error = if said.is_empty() {
        format!("{url} answered {status}")
    } else {
        format!("{url} answered {status}: {said}")
    };
    match status.as_u16() {
        408 | 425 | 429 | 500..=599 => Outcome::Transient { error, retry_after },
        // 401/403 are a setting to fix (the key), not a bad event: keep trying.
        401 | 403 => Outcome::Transient {
            error: format!("{error} (check ${})", super::API_KEY_ENV),
            retry_after: None,
        },
        _ => Outcome::Rejected(error),
    }
}

/// One line, written whole with one `write` on a file opened for appending, so
/// lines from two processes never interleave.
async fn append(path: PathBuf, body: String) -> Outcome {
    let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let mut line = body.into_bytes();
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()
    })
    .await;
    match res {
        Ok(Ok(())) => Outcome::Delivered,
        Ok(Err(e)) => Outcome::Transient {
            error: format!("cannot append to the events file: {e}"),
            retry_after: None,
        },
        Err(e) => Outcome::Transient {
            error: format!("the events file writer stopped: {e}"),
            retry_after: None,
        },
    }
}
