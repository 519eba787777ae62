//! The workspace: the folder whose `.pedigree/` holds the store and the lineage
//! database, and whose `plugins/` holds plugins.

use std::path::{Path, PathBuf};

use crate::lineage::{Db, LineageError};
use crate::store::{Store, StoreError};

pub const DIR: &str = ".pedigree";

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lineage(#[from] LineageError),
    #[error("no pedigree workspace at `{0}`: it has no `.pedigree/` folder yet")]
    NotInitialised(PathBuf),
    #[error("cannot use `{path}` as the workspace: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An open workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub store: Store,
    pub db: Db,
}

/// The workspace root: `explicit` if given, else the nearest ancestor of the current
/// directory that has a `.pedigree/`, else the current directory.
pub fn find_root(explicit: Option<&Path>) -> Result<PathBuf, WorkspaceError> {
    let cwd = std::env::current_dir().map_err(|source| WorkspaceError::Io {
        path: PathBuf::from("."),
        source,
    })?;
    if let Some(dir) = explicit {
        return std::path::absolute(dir).map_err(|source| WorkspaceError::Io {
            path: dir.to_owned(),
            source,
        });
    }
    Ok(cwd
        .ancestors()
        .find(|a| a.join(DIR).is_dir())
        .map(Path::to_path_buf)
        .unwrap_or(cwd))
}

impl Workspace {
    /// Open the workspace at `root`, creating `.pedigree/` when `create` is set.
    pub async fn open(root: &Path, create: bool) -> Result<Workspace, WorkspaceError> {
        let dot = root.join(DIR);
        if !create && !dot.is_dir() {
            return Err(WorkspaceError::NotInitialised(root.to_owned()));
        }
        if !root.is_dir() {
            return Err(WorkspaceError::Io {
                path: root.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
            });
        }
        let store = Store::open(&dot)?;
        let db = Db::open(&dot.join("lineage.db"), &store.locks_dir()).await?;
        Ok(Workspace {
            root: root.to_owned(),
            store,
            db,
        })
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// A path relative to the workspace root when it is inside it.
    pub fn relative(&self, path: &Path) -> String {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        abs.strip_prefix(&self.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| abs.to_string_lossy().into_owned())
    }
}

/// Take the workspace lock (`.pedigree/locks/workspace.lock`): shared for runs,
/// exclusive for gc. Blocks until it is free; the kernel releases it when the
/// holder exits, however it exits.
pub fn lock_workspace(ws: &Workspace, exclusive: bool) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(ws.store.locks_dir().join("workspace.lock"))?;
    let busy = if exclusive {
        f.try_lock()
    } else {
        f.try_lock_shared()
    };
    match busy {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "waiting for {} to finish",
                if exclusive {
                    "runs in progress"
                } else {
                    "`pedigree gc`"
                }
            );
            if exclusive {
                f.lock()?
            } else {
                f.lock_shared()?
            }
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    Ok(f)
}
