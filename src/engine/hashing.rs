//! Content hashes of workspace files and folders through a stat cache: a file
//! whose (device, inode, size, mtime, ctime) are unchanged since it was hashed is
//! not read again, so an unchanged multi-GB input costs one `stat`.
//!
//! A file modified twice within one timestamp tick keeps its mtime, so a cache
//! entry is only written for files whose mtime and ctime are safely in the past
//! (the "racy clean" rule git uses). A fresh file is hashed again next time.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::lineage::{Db, FileHashRow, LineageError, ReadDb};
use crate::store::{self, StoreError, TreeEntry};

/// Files modified more recently than this are never cached by stat.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lineage(#[from] LineageError),
}

/// The content hash of a file or folder (a folder hashes as its tree manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHash {
    pub hash: String,
    pub is_tree: bool,
    pub size: u64,
    pub content_size: u64,
}

/// The stat cache of one command: loaded in one query, new entries written back in
/// one transaction by [`StatCache::flush`].
pub struct StatCache {
    rows: HashMap<String, FileHashRow>,
    fresh: Vec<FileHashRow>,
}

impl StatCache {
    pub async fn load(db: &ReadDb) -> Result<StatCache, HashError> {
        Ok(StatCache {
            rows: db.file_hashes().await?,
            fresh: Vec::new(),
        })
    }

    /// Write the entries learnt since `load`.
    pub async fn flush(&mut self, db: &Db) -> Result<(), HashError> {
        if !self.fresh.is_empty() {
            db.put_file_hashes(&self.fresh).await?;
            self.fresh.clear();
        }
        Ok(())
    }

    /// The content hash of a file or folder (a folder hashes as its tree manifest).
    pub async fn hash_path(&mut self, path: &Path) -> Result<ContentHash, HashError> {
        let meta = std::fs::metadata(path).map_err(|source| HashError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if !meta.is_dir() {
            let (hash, size) = self.hash_file(path).await?;
            return Ok(ContentHash {
                hash,
                is_tree: false,
                size,
                content_size: size,
            });
        }
        let mut files = Vec::new();
        store::walk(path, path, &mut |rel, p, m| {
            files.push((
                rel.to_owned(),
                p.to_owned(),
                m.permissions().mode() & 0o111 != 0,
            ));
            Ok(())
        })?;
        let mut entries = Vec::with_capacity(files.len());
        for (rel, p, exec) in files {
            let (hash, size) = self.hash_file(&p).await?;
            entries.push(TreeEntry {
                path: rel,
                hash,
                size,
                exec,
            });
        }
        let content_size = entries.iter().map(|e| e.size).sum();
        let bytes = store::tree_bytes(entries);
        Ok(ContentHash {
            hash: blake3::hash(&bytes).to_hex().to_string(),
            is_tree: true,
            size: bytes.len() as u64,
            content_size,
        })
    }

    /// Hash one file, through the stat cache.
    pub async fn hash_file(&mut self, path: &Path) -> Result<(String, u64), HashError> {
        let io = |source| HashError::Io {
            path: path.display().to_string(),
            source,
        };
        let abs = std::path::absolute(path).map_err(io)?;
        let key = abs.to_string_lossy().into_owned();
        let meta = std::fs::metadata(&abs).map_err(io)?;
        let row = stat_row(&key, &meta, String::new());
        if let Some(cached) = self.rows.get(&key)
            && same_stat(cached, &row)
        {
            return Ok((cached.hash.clone(), meta.len()));
        }
        let p = abs.clone();
        let hash = tokio::task::spawn_blocking(move || store::hash_file(&p))
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?;
        // Re-stat: if the file changed while we read it, the hash describes no single
        // state of the file; don't cache it.
        let after = std::fs::metadata(&abs).map_err(io)?;
        let row_after = stat_row(&key, &after, hash.clone());
        let settled = SystemTime::now() - RACY_WINDOW;
        let old_enough = after.modified().is_ok_and(|m| m < settled)
            && ctime(&after).is_some_and(|c| c < settled);
        if old_enough && same_stat(&row_after, &row) {
            self.rows.insert(key, row_after.clone());
            self.fresh.push(row_after);
        }
        Ok((hash, after.len()))
    }
}

fn same_stat(a: &FileHashRow, b: &FileHashRow) -> bool {
    (a.dev, a.ino, a.size, a.mtime_ns, a.ctime_ns) == (b.dev, b.ino, b.size, b.mtime_ns, b.ctime_ns)
}

fn ctime(meta: &std::fs::Metadata) -> Option<SystemTime> {
    let secs = u64::try_from(meta.ctime()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, meta.ctime_nsec() as u32))
}

fn stat_row(path: &str, meta: &std::fs::Metadata, hash: String) -> FileHashRow {
    FileHashRow {
        path: path.to_owned(),
        dev: meta.dev() as i64,
        ino: meta.ino() as i64,
        size: meta.size() as i64,
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        hash,
    }
}
