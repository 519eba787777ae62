//! Binding a workflow's raw inputs: each one checked to be a regular file or a
//! folder, hashed through the stat cache, copied into the store (a no-op when its
//! object is already there) and described for lineage.
//!
//! An input must be a regular file or a folder. A named pipe, a socket or a
//! device (also when reached through a symbolic link) is refused before it is
//! opened: opening a FIFO blocks until something writes to it, and reading a
//! device never ends.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::hashing::{ContentHash, StatCache};
use super::plan::Artifact;
use super::run::RunError;
use crate::lineage::NewArtifact;
use crate::store::Store;

/// A raw input as the run sees it.
#[derive(Debug, Clone)]
pub struct RawInput {
    pub artifact: Artifact,
    pub hash: ContentHash,
}

/// Hash the inputs `names` (at `paths`) through `stat`, in name order.
pub async fn hash_inputs<'a>(
    stat: &mut StatCache,
    inputs: impl IntoIterator<Item = (&'a String, &'a PathBuf)>,
) -> Result<BTreeMap<String, RawInput>, RunError> {
    let mut raw = BTreeMap::new();
    for (name, path) in inputs {
        check_kind(name, path)?;
        let h = stat
            .hash_path(path)
            .await
            .map_err(|source| RunError::Input {
                name: name.clone(),
                source,
            })?;
        let file_name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.clone());
        raw.insert(
            name.clone(),
            RawInput {
                artifact: Artifact {
                    hash: h.hash.clone(),
                    name: file_name,
                    is_tree: h.is_tree,
                },
                hash: h,
            },
        );
    }
    Ok(raw)
}

/// Refuse an input that is neither a regular file nor a folder (after following
/// symbolic links), before anything opens it. A missing input is left to the
/// hashing error, which names it.
pub fn check_kind(name: &str, path: &Path) -> Result<(), RunError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let t = meta.file_type();
    let found = if t.is_file() || t.is_dir() {
        return Ok(());
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    };
    Err(RunError::InputKind {
        name: name.to_owned(),
        path: path.to_owned(),
        found,
    })
}

/// Copy a raw input into the store unless its object is already there, checking
/// that the bytes copied are the bytes hashed.
pub fn ingest(store: &Store, name: &str, path: &Path, h: &ContentHash) -> Result<(), RunError> {
    if store.object_path(&h.hash).exists() {
        return Ok(());
    }
    let stored = store.put_path(path)?;
    if stored.hash != h.hash {
        return Err(RunError::InputChanged {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The lineage description of a raw input.
pub fn artifact_of(input: &RawInput) -> NewArtifact {
    let h = &input.hash;
    NewArtifact {
        stored: crate::store::Stored {
            hash: h.hash.clone(),
            size: h.size,
            content_size: h.content_size,
            is_tree: h.is_tree,
        },
        kind: if h.is_tree {
            "folder".into()
        } else {
            "file".into()
        },
        media_type: media_type_of(&input.artifact.name, h.is_tree),
    }
}

/// The media type recorded for a raw input, from its file name.
pub fn media_type_of(name: &str, is_tree: bool) -> String {
    if is_tree {
        return "inode/directory".into();
    }
    match Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
    {
        "csv" => "text/csv",
        "tsv" | "inter" | "item" | "user" => "text/tab-separated-values",
        "json" => "application/json",
        "parquet" => "application/vnd.apache.parquet",
        "md" => "text/markdown",
        "txt" | "log" => "text/plain",
        "yaml" | "yml" => "application/yaml",
        _ => "application/octet-stream",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_and_folders_are_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.csv");
        std::fs::write(&file, "x").unwrap();
        assert!(check_kind("a", &file).is_ok());
        assert!(check_kind("d", dir.path()).is_ok());
        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = check_kind("events", &fifo).unwrap_err().to_string();
        assert!(
            e.contains("input `events`") && e.contains("named pipe"),
            "{e}"
        );
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let e = check_kind("z", &link).unwrap_err().to_string();
        assert!(e.contains("character device"), "{e}");
    }
}
