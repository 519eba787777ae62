//! The workspace: the folder whose `.pedigree/` holds the store and the lineage
//! database, and whose `plugins/` holds plugins.
//!
//! Two ways to open it: [`Workspace::open`] for commands that write (it creates
//! `.pedigree/` when asked and migrates the database), [`ReadWorkspace::open`]
//! for commands that only read (it requires both to exist, and creates,
//! migrates and writes nothing).

use std::path::{Path, PathBuf};

use crate::lineage::{Db, LineageError, ReadDb};
use crate::store::{Store, StoreError};

pub const DIR: &str = ".pedigree";

/// The lineage database's file name under `.pedigree/`.
pub const DB_FILE: &str = "lineage.db";

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
        let db = Db::open(&dot.join(DB_FILE), &store.locks_dir()).await?;
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
        relative_to(&self.root, path)
    }
}

/// A workspace opened for reading: its store and a read-only database handle.
#[derive(Debug, Clone)]
pub struct ReadWorkspace {
    pub root: PathBuf,
    pub store: Store,
    pub db: ReadDb,
}

impl ReadWorkspace {
    /// Open the workspace at `root` for reading. Nothing is created, migrated or
    /// written: a workspace without `.pedigree/lineage.db` is
    /// [`WorkspaceError::NotInitialised`].
    pub async fn open(root: &Path) -> Result<ReadWorkspace, WorkspaceError> {
        let dot = root.join(DIR);
        let db_path = dot.join(DB_FILE);
        if !db_path.is_file() {
            return Err(WorkspaceError::NotInitialised(root.to_owned()));
        }
        let store = Store::open_read_only(&dot)?;
        let db = ReadDb::open(&db_path).await?;
        Ok(ReadWorkspace {
            root: root.to_owned(),
            store,
            db,
        })
    }

    /// A path relative to the workspace root when it is inside it.
    pub fn relative(&self, path: &Path) -> String {
        relative_to(&self.root, path)
    }
}

fn relative_to(root: &Path, path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    abs.strip_prefix(root)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| abs.to_string_lossy().into_owned())
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
