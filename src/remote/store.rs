//! The remote's object store: one [`object_store::ObjectStore`] (S3, GCS, Azure or
//! a local folder) under the configured prefix, with the layout, the bounded
//! timeouts and the conditional writes the protocol needs.
//!
//! Layout (version 1, under the URL's prefix), so a later layout can sit beside it:
//! - `v1/cas/blake3/AB/HASH`: content blobs by blake3 hash (a folder is its tree
//!   manifest plus one blob per member);
//! - `v1/ac/AB/KEY/SIGNER`: the signed result entry of step key `KEY` written by the
//!   public key `SIGNER` (hex). One slot per writer: a writer nobody trusts cannot
//!   occupy the key that trusted writers will fill.

use std::sync::Arc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::store::{Incoming, Store, StoreError, Stored};
use crate::util::fmt::short;

/// Blobs up to this size are one conditional PUT; larger ones a multipart upload.
pub const SINGLE_PUT_MAX: u64 = 16 * 1024 * 1024;
/// Parts of one multipart upload in flight at once.
const UPLOAD_PARTS: usize = 10;
/// The part size of multipart uploads.
const PART: usize = 8 * 1024 * 1024;
/// An entry larger than this is not an entry (a lying server cannot make us read
/// without end).
pub const ENTRY_MAX: usize = 16 * 1024 * 1024;

/// Builds the object store of a remote (see [`RemoteStore::store`]).
pub type Build = Arc<dyn Fn() -> Result<Arc<dyn ObjectStore>, String> + Send + Sync>;

/// A remote store opened from its URL.
#[derive(Clone)]
pub struct RemoteStore {
    /// Built at the first request: a command that never asks the remote (a no-op
    /// rerun) does not pay for its HTTP client and TLS roots.
    inner: Arc<OnceLock<Result<Arc<dyn ObjectStore>, String>>>,
    build: Build,
    /// For a `file://` remote, its folder: downloads read it directly, in large
    /// blocks (object_store's local stream reads 8 KiB at a time).
    local_root: Option<std::path::PathBuf>,
    /// The URL as configured (no credentials: they are refused before this).
    pub url: String,
    /// What `remote_objects` remembers this store by: the URL and, when one is
    /// set, the endpoint (one `s3://bucket` on two servers is two stores).
    identity: String,
    prefix: Vec<String>,
    /// The time one small request may take.
    pub timeout: Duration,
    /// Set at the first failure to reach the store: the rest of the process
    /// does not wait on it again.
    down: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("url", &self.url)
            .finish()
    }
}

/// Why a remote operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Config(String),
    #[error("remote `{url}` is unreachable: {message}")]
    Down { url: String, message: String },
    #[error("remote `{url}` refused the credentials ({message}); {help}")]
    Denied {
        url: String,
        message: String,
        help: &'static str,
    },
    #[error("remote `{url}`: {message}")]
    Refused { url: String, message: String },
    #[error("{0}")]
    Local(#[from] StoreError),
}

/// What a conditional create found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This write made the object.
    New,
    /// An object was already there (the first writer won).
    Exists,
}

fn is_transport(e: &object_store::Error) -> bool {
    !matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. }
    )
}

impl RemoteStore {
    pub fn new(build: Build, url: &str, prefix: &str, timeout: Duration) -> Self {
        RemoteStore {
            inner: Arc::new(OnceLock::new()),
            build,
            local_root: None,
            url: url.to_owned(),
            identity: url.to_owned(),
            prefix: prefix
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            timeout,
            down: Arc::new(Mutex::new(None)),
        }
    }

    pub fn with_endpoint(mut self, endpoint: Option<&str>) -> Self {
        if let Some(e) = endpoint.filter(|e| !e.is_empty()) {
            self.identity = format!("{} at {e}", self.url);
        }
        self
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn with_local_root(mut self, dir: std::path::PathBuf) -> Self {
        self.local_root = Some(dir);
        self
    }

    /// The object store, built on first use.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>, RemoteError> {
        self.inner
            .get_or_init(|| (self.build)())
            .clone()
            .map_err(RemoteError::Config)
    }

    fn path(&self, parts: &[&str]) -> ObjPath {
        ObjPath::from_iter(
            self.prefix
                .iter()
                .map(String::as_str)
                .chain(parts.iter().copied()),
        )
    }

    /// Where the blob `hash` lives.
    pub fn blob_path(&self, hash: &str) -> ObjPath {
        self.path(&["v1", "cas", "blake3", &hash[..2.min(hash.len())], hash])
    }

    /// Where `signer`'s entry for step key `key` lives.
    pub fn entry_path(&self, key: &str, signer_hex: &str) -> ObjPath {
        self.path(&["v1", "ac", &key[..2.min(key.len())], key, signer_hex])
    }

    /// The folder of every entry of `key`, one per signer.
    pub fn entries_prefix(&self, key: &str) -> ObjPath {
        self.path(&["v1", "ac", &key[..2.min(key.len())], key])
    }

    /// A path under the prefix for `remote check`'s probes.
    pub fn probe_path(&self, name: &str) -> ObjPath {
        self.path(&["v1", "probe", name])
    }

    /// The layout's root (for `remote gc`).
    pub fn root(&self, part: &str) -> ObjPath {
        self.path(&["v1", part])
    }

    /// Is the store known to be unreachable in this process?
    pub fn is_down(&self) -> Option<String> {
        self.down.lock().ok().and_then(|d| d.clone())
    }

    /// Remember the first reason the store is not usable in this process.
    fn mark_down(&self, why: &str) {
        if let Ok(mut d) = self.down.lock()
            && d.is_none()
        {
            *d = Some(why.to_owned());
        }
    }

    fn fail(&self, e: object_store::Error) -> RemoteError {
        let message = one_line(&e.to_string());
        if matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) {
            // The same credentials fail every request: stop asking, as for a
            // store that is down.
            let denied = RemoteError::Denied {
                url: self.url.clone(),
                message: "permission denied".into(),
                help: crate::config::credentials_help(&self.url),
            };
            self.mark_down("it refused the credentials");
            return denied;
        }
        if is_transport(&e) {
            self.mark_down(&message);
            RemoteError::Down {
                url: self.url.clone(),
                message,
            }
        } else {
            RemoteError::Refused {
                url: self.url.clone(),
                message,
            }
        }
    }

    fn check_up(&self) -> Result<(), RemoteError> {
        match self.is_down() {
            Some(message) => Err(RemoteError::Down {
                url: self.url.clone(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Run `op` within `limit`; a timeout marks the store down.
    async fn bounded<T>(
        &self,
        limit: Duration,
        op: impl Future<Output = object_store::Result<T>>,
    ) -> Result<object_store::Result<T>, RemoteError> {
        self.check_up()?;
        match tokio::time::timeout(limit, op).await {
            Ok(r) => Ok(r),
            Err(_) => {
                let message = format!(
                    "no answer within {}",
                    crate::util::fmt::human_duration(limit.as_secs_f64())
                );
                self.mark_down(&message);
                Err(RemoteError::Down {
                    url: self.url.clone(),
                    message,
                })
            }
        }
    }

    /// The bytes at `path`, at most `max` of them; `None` when there is nothing.
    pub async fn get_small(
        &self,
        path: &ObjPath,
        max: usize,
    ) -> Result<Option<Bytes>, RemoteError> {
        let store = self.store()?;
        let got = self
            .bounded(self.timeout, async {
                let r = store.get(path).await?;
                if r.meta.size > max as u64 {
                    return Err(object_store::Error::Generic {
                        store: "pedigree",
                        source: format!(
                            "{} bytes, more than the {max} an entry may have",
                            r.meta.size
                        )
                        .into(),
                    });
                }
                let mut out = Vec::with_capacity(r.meta.size as usize);
                let mut stream = r.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    if out.len() + chunk.len() > max {
                        return Err(object_store::Error::Generic {
                            store: "pedigree",
                            source: "the body is longer than its announced size".into(),
                        });
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(Bytes::from(out))
            })
            .await?;
        match got {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Create `path` with `bytes` unless something is there already.
    pub async fn create(&self, path: &ObjPath, bytes: Bytes) -> Result<Created, RemoteError> {
        let store = self.store()?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let r = self
            .bounded(
                self.timeout + transfer_time(bytes.len() as u64),
                store.put_opts(path, PutPayload::from(bytes), opts),
            )
            .await?;
        match r {
            Ok(_) => Ok(Created::New),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(Created::Exists),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The size of the object at `path`, if there is one.
    pub async fn size_of(&self, path: &ObjPath) -> Result<Option<u64>, RemoteError> {
        let store = self.store()?;
        match self.bounded(self.timeout, store.head(path)).await? {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    pub async fn delete(&self, path: &ObjPath) -> Result<(), RemoteError> {
        let store = self.store()?;
        match self.bounded(self.timeout, store.delete(path)).await? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Upload the local object `hash` (`size` bytes) unless the remote has it.
    /// Small blobs are one conditional create; large ones a multipart upload
    /// after a HEAD (a multipart upload is invisible until it completes, so a
    /// reader never sees part of one).
    pub async fn upload_blob(
        &self,
        store: &Store,
        hash: &str,
        size: u64,
    ) -> Result<Created, RemoteError> {
        let os = self.store()?;
        let path = self.blob_path(hash);
        let local = store.object_path(hash);
        if size <= SINGLE_PUT_MAX {
            let bytes = tokio::fs::read(&local)
                .await
                .map_err(|source| StoreError::Io {
                    action: "read",
                    path: local.clone(),
                    source,
                })?;
            return self.create(&path, Bytes::from(bytes)).await;
        }
        if self.size_of(&path).await? == Some(size) {
            return Ok(Created::Exists);
        }
        let limit = self.timeout + transfer_time(size);
        let r = self
            .bounded(limit, async {
                let upload = os.put_multipart(&path).await?;
                let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
                let mut file = tokio::fs::File::open(&local).await.map_err(|e| {
                    object_store::Error::Generic {
                        store: "pedigree",
                        source: Box::new(e),
                    }
                })?;
                let mut buf = vec![0u8; PART];
                loop {
                    use tokio::io::AsyncReadExt;
                    let n =
                        file.read(&mut buf)
                            .await
                            .map_err(|e| object_store::Error::Generic {
                                store: "pedigree",
                                source: Box::new(e),
                            })?;
                    if n == 0 {
                        break;
                    }
                    w.wait_for_capacity(UPLOAD_PARTS).await?;
                    w.write(&buf[..n]);
                }
                w.finish().await
            })
            .await?;
        match r {
            Ok(_) => Ok(Created::New),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Download the blob `hash` into `store`, streamed through blake3: it becomes
    /// a local object only if its bytes hash to `hash` (and are `size` long, when
    /// the size is known).
    pub async fn download_blob(
        &self,
        store: &Store,
        hash: &str,
        size: Option<u64>,
    ) -> Result<Stored, RemoteError> {
        let os = self.store()?;
        let path = self.blob_path(hash);
        let limit = self.timeout + transfer_time(size.unwrap_or(SINGLE_PUT_MAX));
        let mut incoming: Incoming = store.incoming()?;
        if let Some(root) = &self.local_root {
            self.read_local(&root.join(path.as_ref()), hash, &mut incoming)?;
            return self.finish_download(incoming, hash, size);
        }
        let r = self
            .bounded(limit, async {
                let r = os.get(&path).await?;
                let mut stream = r.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    if let Err(e) = incoming.write(&chunk) {
                        return Err(object_store::Error::Generic {
                            store: "pedigree",
                            source: Box::new(e),
                        });
                    }
                }
                Ok(())
            })
            .await?;
        match r {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => {
                return Err(RemoteError::Refused {
                    url: self.url.clone(),
                    message: format!("blob {} is missing", short(hash)),
                });
            }
            Err(e) => return Err(self.fail(e)),
        }
        self.finish_download(incoming, hash, size)
    }

    /// Check a received blob's size and hash and make it a local object.
    fn finish_download(
        &self,
        incoming: Incoming,
        hash: &str,
        size: Option<u64>,
    ) -> Result<Stored, RemoteError> {
        if let Some(size) = size
            && incoming.size() != size
        {
            return Err(RemoteError::Refused {
                url: self.url.clone(),
                message: format!(
                    "blob {} has {} bytes, its entry says {size}",
                    short(hash),
                    incoming.size()
                ),
            });
        }
        incoming.commit(hash).map_err(|e| match e {
            StoreError::Mismatch { found, size, .. } => RemoteError::Refused {
                url: self.url.clone(),
                message: format!(
                    "blob {} is damaged: its {size} bytes hash to {}",
                    short(hash),
                    short(&found)
                ),
            },
            e => RemoteError::Local(e),
        })
    }

    /// A `file://` remote's blob, read in 1 MiB blocks.
    fn read_local(
        &self,
        file: &std::path::Path,
        hash: &str,
        incoming: &mut Incoming,
    ) -> Result<(), RemoteError> {
        use std::io::Read;
        let mut f = match std::fs::File::open(file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RemoteError::Refused {
                    url: self.url.clone(),
                    message: format!("blob {} is missing", short(hash)),
                });
            }
            Err(e) => {
                return Err(RemoteError::Down {
                    url: self.url.clone(),
                    message: format!("cannot read `{}`: {e}", file.display()),
                });
            }
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(RemoteError::Down {
                        url: self.url.clone(),
                        message: format!("cannot read `{}`: {e}", file.display()),
                    });
                }
            };
            incoming.write(&buf[..n])?;
        }
    }

    /// Every object under `prefix` (for `remote gc`; never on the run path).
    pub async fn list(
        &self,
        prefix: &ObjPath,
    ) -> Result<Vec<object_store::ObjectMeta>, RemoteError> {
        let store = self.store()?;
        self.check_up()?;
        let mut out = Vec::new();
        let mut stream = store.list(Some(prefix));
        while let Some(m) = stream.next().await {
            out.push(m.map_err(|e| self.fail(e))?);
        }
        Ok(out)
    }
}

/// A generous time for moving `bytes` (at 5 MB/s), added to the request timeout.
fn transfer_time(bytes: u64) -> Duration {
    Duration::from_millis(bytes / 5_000)
}

pub use crate::util::fmt::one_line;
