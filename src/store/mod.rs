//! The object store: immutable blobs under `.pedigree/objects/`, each named by the
//! blake3 hash of its bytes. A folder is stored as a *tree*: a canonical JSON
//! manifest (itself an object) listing the objects of its files.
//!
//! Architecture invariant: an object is only ever created by writing a temp file in
//! `.pedigree/tmp/`, fsyncing it, making it read-only and renaming it into place,
//! so a crash never leaves a partial object under a real name.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Layout version of `.pedigree/`, written to `.pedigree/STORE_VERSION`.
pub const STORE_VERSION: u32 = 1;

const TREE_FORMAT: &str = "pedigree-tree/1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{0}` is a symbolic link; outputs must be regular files or folders")]
    Symlink(PathBuf),
    #[error("`{0}` is neither a file nor a folder")]
    NotFileOrDir(PathBuf),
    #[error(
        "the store at `{path}` has layout version {found}, this pedigree reads version {STORE_VERSION}"
    )]
    Version { path: PathBuf, found: String },
    #[error("object {0} is not a valid tree manifest")]
    BadTree(String),
    #[error("the bytes received for object {expected} hash to {found} ({size} bytes)")]
    Mismatch {
        expected: String,
        found: String,
        size: u64,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// An object just written (or found identical) in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub hash: String,
    /// Bytes of the object itself (for a tree: of its manifest).
    pub size: u64,
    /// Total bytes of the files of a tree; equal to `size` for a file.
    pub content_size: u64,
    pub is_tree: bool,
}

/// Identity of an object file on disk when it was last verified, to skip re-hashing
/// an object nobody touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub ino: u64,
    pub ctime_ns: i64,
}

/// The result of checking an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok(Fingerprint),
    Missing,
    Corrupt(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tree {
    pub format: String,
    pub entries: Vec<TreeEntry>,
}

impl Tree {
    /// Parse the manifest bytes of the tree object `hash`: the format, safe
    /// relative paths, and member names that are object hashes.
    pub fn parse(hash: &str, bytes: &[u8]) -> Result<Tree, StoreError> {
        let tree: Tree =
            serde_json::from_slice(bytes).map_err(|_| StoreError::BadTree(hash.to_owned()))?;
        if tree.format != TREE_FORMAT
            || tree
                .entries
                .iter()
                .any(|e| !is_safe_relative(&e.path) || !is_object_hash(&e.hash))
        {
            return Err(StoreError::BadTree(hash.to_owned()));
        }
        Ok(tree)
    }
}

/// Is `s` an object name: 64 lower-case hex digits (a blake3 hash)?
pub fn is_object_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub hash: String,
    pub size: u64,
    pub exec: bool,
}

/// An object being received: see [`Store::incoming`]. Dropped without a commit, its
/// temp file is removed.
pub struct Incoming {
    store: Store,
    path: PathBuf,
    file: Option<File>,
    hasher: blake3::Hasher,
    size: u64,
}

impl Incoming {
    pub fn write(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        match self.file.as_mut() {
            Some(f) => f.write_all(buf).map_err(io_err("write", &self.path)),
            None => Ok(()),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Make the bytes the object `expected` if they hash to it; otherwise remove
    /// them and say what they hashed to.
    pub fn commit(mut self, expected: &str) -> Result<Stored, StoreError> {
        let found = self.hasher.finalize().to_hex().to_string();
        if found != expected {
            return Err(StoreError::Mismatch {
                expected: expected.to_owned(),
                found,
                size: self.size,
            });
        }
        let Some(file) = self.file.take() else {
            return Err(StoreError::BadTree(expected.to_owned()));
        };
        if let Err(e) = self.store.commit_temp(file, &self.path, expected) {
            let _ = fs::remove_file(&self.path);
            return Err(e);
        }
        Ok(Stored {
            hash: found,
            size: self.size,
            content_size: self.size,
            is_tree: false,
        })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The store under a workspace's `.pedigree/`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open the store at `root` (`.pedigree/`), creating its layout if absent.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for sub in ["objects", "tmp", "locks"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err("create", &p))?;
        }
        let vpath = root.join("STORE_VERSION");
        match fs::read_to_string(&vpath) {
            Ok(s) if s.trim() == STORE_VERSION.to_string() => {}
            Ok(s) => {
                return Err(StoreError::Version {
                    path: root.to_owned(),
                    found: s.trim().to_owned(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_atomic(root, &vpath, format!("{STORE_VERSION}\n").as_bytes())?;
            }
            Err(e) => return Err(io_err("read", &vpath)(e)),
        }
        let ignore = root.join(".gitignore");
        if !ignore.exists() {
            let _ = fs::write(&ignore, "*\n");
        }
        Ok(Store {
            root: root.to_owned(),
        })
    }

    /// Open an existing store for reading: nothing is created or written. Fails
    /// when `root` has no store of this version.
    pub fn open_read_only(root: &Path) -> Result<Store, StoreError> {
        let vpath = root.join("STORE_VERSION");
        let found = fs::read_to_string(&vpath).map_err(io_err("read", &vpath))?;
        if found.trim() != STORE_VERSION.to_string() {
            return Err(StoreError::Version {
                path: root.to_owned(),
                found: found.trim().to_owned(),
            });
        }
        Ok(Store {
            root: root.to_owned(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// Where the object `hash` lives (whether or not it exists).
    pub fn object_path(&self, hash: &str) -> PathBuf {
        let (a, b) = hash.split_at(2.min(hash.len()));
        self.root.join("objects").join(a).join(b)
    }

    /// Every object hash in the store.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let objects = self.root.join("objects");
        let mut out = Vec::new();
        for d in fs::read_dir(&objects).map_err(io_err("list", &objects))? {
            let d = d.map_err(io_err("list", &objects))?;
            let prefix = d.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !d.path().is_dir() {
                continue;
            }
            for f in fs::read_dir(d.path()).map_err(io_err("list", &d.path()))? {
                let f = f.map_err(io_err("list", &d.path()))?;
                out.push(format!("{prefix}{}", f.file_name().to_string_lossy()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Copy a file into the store, hashing it on the way.
    pub fn put_file(&self, src: &Path) -> Result<Stored, StoreError> {
        let meta = fs::symlink_metadata(src).map_err(io_err("read", src))?;
        if meta.file_type().is_symlink() {
            return Err(StoreError::Symlink(src.to_owned()));
        }
        let mut input = File::open(src).map_err(io_err("open", src))?;
        self.put_reader(&mut input, src)
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Stored, StoreError> {
        self.put_reader(&mut io::Cursor::new(bytes), Path::new("<memory>"))
    }

    fn put_reader(&self, input: &mut dyn Read, what: &Path) -> Result<Stored, StoreError> {
        let (tmp_path, mut tmp) = self.temp_file()?;
        let result = (|| {
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut size = 0u64;
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err("read", what)(e)),
                };
                hasher.update(&buf[..n]);
                tmp.write_all(&buf[..n])
                    .map_err(io_err("write", &tmp_path))?;
                size += n as u64;
            }
            let hash = hasher.finalize().to_hex().to_string();
            self.commit_temp(tmp, &tmp_path, &hash)?;
            Ok(Stored {
                hash,
                size,
                content_size: size,
                is_tree: false,
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp_path);
        }
        result
    }

    fn temp_file(&self) -> Result<(PathBuf, File), StoreError> {
        let tmp = self.tmp_dir();
        for attempt in 0..100u32 {
            let name = format!("obj-{}-{}-{attempt}", std::process::id(), unique());
            let p = tmp.join(name);
            match File::options().write(true).create_new(true).open(&p) {
                Ok(f) => return Ok((p, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &p)(e)),
            }
        }
        Err(StoreError::Io {
            action: "create a temp file in",
            path: tmp,
            source: io::Error::other("too many collisions"),
        })
    }

    /// fsync the data, make read-only, rename into place.
    ///
    /// The folder is not fsynced after the rename: if a power cut loses the rename,
    /// the object is missing, which every reader detects (a cache hit turns into a
    /// rerun, `verify` names it). The data fsync before the rename is what matters:
    /// without it a power cut could leave a file of the right size and wrong bytes
    /// under a real name.
    fn commit_temp(&self, tmp: File, tmp_path: &Path, hash: &str) -> Result<(), StoreError> {
        crate::failpoint::hit("object-temp-written");
        tmp.sync_data().map_err(io_err("sync", tmp_path))?;
        fs::set_permissions(tmp_path, fs::Permissions::from_mode(0o444))
            .map_err(io_err("protect", tmp_path))?;
        drop(tmp);
        let dest = self.object_path(hash);
        let dir = dest.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        // Renaming over an existing object replaces it with identical bytes: harmless
        // for readers (they keep the old inode) and it repairs a damaged copy.
        fs::rename(tmp_path, &dest).map_err(io_err("rename into", &dest))?;
        crate::failpoint::hit("object-renamed");
        Ok(())
    }

    /// Store a folder: every regular file as an object, then the tree manifest.
    pub fn put_tree(&self, src: &Path) -> Result<Stored, StoreError> {
        let mut entries = Vec::new();
        walk(src, src, &mut |rel, path, meta| {
            let stored = self.put_file(path)?;
            entries.push(TreeEntry {
                path: rel.to_owned(),
                hash: stored.hash,
                size: stored.size,
                exec: meta.permissions().mode() & 0o111 != 0,
            });
            Ok(())
        })?;
        let content_size = entries.iter().map(|e| e.size).sum();
        let mut stored = self.put_bytes(&tree_bytes(entries))?;
        stored.is_tree = true;
        stored.content_size = content_size;
        Ok(stored)
    }

    /// Store a file or a folder.
    pub fn put_path(&self, src: &Path) -> Result<Stored, StoreError> {
        let meta = fs::symlink_metadata(src).map_err(io_err("read", src))?;
        if meta.file_type().is_symlink() {
            Err(StoreError::Symlink(src.to_owned()))
        } else if meta.is_dir() {
            self.put_tree(src)
        } else if meta.is_file() {
            self.put_file(src)
        } else {
            Err(StoreError::NotFileOrDir(src.to_owned()))
        }
    }

    pub fn read_tree(&self, hash: &str) -> Result<Tree, StoreError> {
        let p = self.object_path(hash);
        let bytes = fs::read(&p).map_err(io_err("read", &p))?;
        Tree::parse(hash, &bytes)
    }

    /// A writer for an object whose hash is known before its bytes arrive (a
    /// download): the bytes go to a temp file in `.pedigree/tmp/` and become the
    /// object only if they hash to what was expected ([`Incoming::commit`]).
    pub fn incoming(&self) -> Result<Incoming, StoreError> {
        let (path, file) = self.temp_file()?;
        Ok(Incoming {
            store: self.clone(),
            path,
            file: Some(file),
            hasher: blake3::Hasher::new(),
            size: 0,
        })
    }

    /// Cheap check: the object exists as a read-only regular file of `size` bytes
    /// and is the same inode, unchanged since `known` was taken. Anything else is
    /// re-hashed by [`Store::verify`].
    pub fn check(&self, hash: &str, size: u64, known: Option<Fingerprint>) -> Check {
        let p = self.object_path(hash);
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Check::Missing,
            Err(e) => return Check::Corrupt(format!("cannot read it: {e}")),
        };
        if !meta.file_type().is_file() {
            return Check::Corrupt("it is not a regular file".into());
        }
        if meta.len() != size {
            return Check::Corrupt(format!("it has {} bytes, not {size}", meta.len()));
        }
        let fp = fingerprint(&meta);
        if known == Some(fp) && meta.permissions().mode() & 0o222 == 0 {
            return Check::Ok(fp);
        }
        self.verify(hash)
    }

    /// Full check: re-hash the object's bytes.
    pub fn verify(&self, hash: &str) -> Check {
        let p = self.object_path(hash);
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Check::Missing,
            Err(e) => return Check::Corrupt(format!("cannot read it: {e}")),
        };
        if !meta.file_type().is_file() {
            return Check::Corrupt("it is not a regular file".into());
        }
        match hash_file(&p) {
            Ok(h) if h == hash => Check::Ok(fingerprint(&meta)),
            Ok(h) => Check::Corrupt(format!("its content hashes to {}", &h[..12])),
            Err(e) => Check::Corrupt(format!("cannot read it: {e}")),
        }
    }

    /// Move a damaged object aside (into `.pedigree/corrupt/`) so it is never served
    /// again and a rerun can write a good copy under its name.
    pub fn quarantine(&self, hash: &str) -> Result<PathBuf, StoreError> {
        let dir = self.root.join("corrupt");
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let dest = dir.join(format!("{hash}-{}", unique()));
        let src = self.object_path(hash);
        fs::rename(&src, &dest).map_err(io_err("move aside", &src))?;
        Ok(dest)
    }

    /// Make the object `hash` appear at `dest`: a symlink to the read-only object for
    /// a file, a folder of such links for a tree (executables are copied, since a
    /// link to a read-only object cannot carry the executable bit).
    pub fn materialize(&self, hash: &str, is_tree: bool, dest: &Path) -> Result<(), StoreError> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        if !is_tree {
            return std::os::unix::fs::symlink(self.object_path(hash), dest)
                .map_err(io_err("link", dest));
        }
        let tree = self.read_tree(hash)?;
        fs::create_dir_all(dest).map_err(io_err("create", dest))?;
        for e in &tree.entries {
            let target = dest.join(&e.path);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(io_err("create", parent))?;
            }
            if e.exec {
                fs::copy(self.object_path(&e.hash), &target).map_err(io_err("copy", &target))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(0o555))
                    .map_err(io_err("protect", &target))?;
            } else {
                std::os::unix::fs::symlink(self.object_path(&e.hash), &target)
                    .map_err(io_err("link", &target))?;
            }
        }
        Ok(())
    }

    /// Remove an object (gc only).
    pub fn remove(&self, hash: &str) -> Result<(), StoreError> {
        let p = self.object_path(hash);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &p)(e)),
        }
    }
}

pub fn fingerprint(meta: &fs::Metadata) -> Fingerprint {
    Fingerprint {
        ino: meta.ino(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    }
}

/// blake3 of a file's bytes, streamed.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Visit every regular file under `root` in sorted order with its `/`-separated
/// relative path. Symlinks are refused: a folder artifact is what it contains.
pub fn walk(
    root: &Path,
    dir: &Path,
    f: &mut dyn FnMut(&str, &Path, &fs::Metadata) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err("list", dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_err("list", dir))?;
    names.sort();
    for path in names {
        let meta = fs::symlink_metadata(&path).map_err(io_err("read", &path))?;
        if meta.file_type().is_symlink() {
            return Err(StoreError::Symlink(path));
        } else if meta.is_dir() {
            walk(root, &path, f)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            f(&rel, &path, &meta)?;
        } else {
            return Err(StoreError::NotFileOrDir(path));
        }
    }
    Ok(())
}

/// The canonical manifest bytes of a tree with `entries` (its object content).
pub fn tree_bytes(mut entries: Vec<TreeEntry>) -> Vec<u8> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let tree = Tree {
        format: TREE_FORMAT.into(),
        entries,
    };
    crate::util::canonical::canonical_json(&serde_json::to_value(&tree).expect("plain data"))
        .into_bytes()
}

fn is_safe_relative(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Remove a scratch folder under `tmp/`, even one a step left read-only.
pub fn remove_scratch(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(p).is_ok() {
        return Ok(());
    }
    // A plugin may leave read-only folders behind; make them writable so removal works.
    fn fix(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    fix(&e.path());
                }
            }
        }
    }
    fix(p);
    std::fs::remove_dir_all(p)
}

/// Write `bytes` to `dest` through a temp file in `dir` and a rename.
pub fn write_atomic(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        unique()
    ));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, dest).map_err(io_err("rename into", dest))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A process-unique counter mixed with the time, for temp names.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}{:x}", N.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_bytes_become_an_object_only_when_they_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".pedigree")).unwrap();
        let want = blake3::hash(b"remote bytes").to_hex().to_string();
        let tmp_count = || fs::read_dir(store.tmp_dir()).unwrap().count();

        let mut bad = store.incoming().unwrap();
        bad.write(b"remote bytez").unwrap();
        assert!(matches!(
            bad.commit(&want),
            Err(StoreError::Mismatch { .. })
        ));
        assert!(!store.object_path(&want).exists());
        assert_eq!(tmp_count(), 0, "a rejected download leaves nothing");

        let dropped = store.incoming().unwrap();
        drop(dropped);
        assert_eq!(tmp_count(), 0);

        let mut good = store.incoming().unwrap();
        good.write(b"remote ").unwrap();
        good.write(b"bytes").unwrap();
        let s = good.commit(&want).unwrap();
        assert_eq!((s.hash.as_str(), s.size), (want.as_str(), 12));
        assert!(matches!(store.verify(&want), Check::Ok(_)));
        assert_eq!(tmp_count(), 0);
    }

    #[test]
    fn a_tree_manifest_names_only_object_hashes() {
        let good = format!(
            "{{\"format\":\"{TREE_FORMAT}\",\"entries\":[{{\"path\":\"a\",\"hash\":\"{}\",\"size\":1,\"exec\":false}}]}}",
            "ab".repeat(32)
        );
        assert!(Tree::parse("x", good.as_bytes()).is_ok());
        let traversal = good.replace(&"ab".repeat(32), "../../etc/passwd");
        assert!(Tree::parse("x", traversal.as_bytes()).is_err());
    }

    #[test]
    fn put_is_content_addressed_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".pedigree")).unwrap();
        let src = dir.path().join("a.txt");
        fs::write(&src, b"hello").unwrap();
        let s = store.put_file(&src).unwrap();
        assert_eq!(s.hash, blake3::hash(b"hello").to_hex().to_string());
        let meta = fs::metadata(store.object_path(&s.hash)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o444);
        assert!(matches!(store.check(&s.hash, 5, None), Check::Ok(_)));
        assert!(
            fs::read_dir(store.tmp_dir()).unwrap().next().is_none(),
            "no temp file left"
        );
    }

    #[test]
    fn detects_missing_truncated_and_flipped_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".pedigree")).unwrap();
        let s = store.put_bytes(b"some bytes").unwrap();
        let p = store.object_path(&s.hash);
        let Check::Ok(fp) = store.check(&s.hash, s.size, None) else {
            panic!()
        };
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"some bytez").unwrap();
        assert!(matches!(
            store.check(&s.hash, s.size, Some(fp)),
            Check::Corrupt(_)
        ));
        fs::write(&p, b"some").unwrap();
        assert!(matches!(
            store.check(&s.hash, s.size, Some(fp)),
            Check::Corrupt(_)
        ));
        store.quarantine(&s.hash).unwrap();
        assert_eq!(store.check(&s.hash, s.size, Some(fp)), Check::Missing);
        // Writing the same bytes again repairs the object.
        store.put_bytes(b"some bytes").unwrap();
        assert!(matches!(store.check(&s.hash, s.size, None), Check::Ok(_)));
    }

    #[test]
    fn trees_round_trip_and_refuse_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(".pedigree")).unwrap();
        let src = dir.path().join("out");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("b.txt"), b"b").unwrap();
        fs::write(src.join("sub/a.txt"), b"a").unwrap();
        let t = store.put_tree(&src).unwrap();
        let tree = store.read_tree(&t.hash).unwrap();
        let paths: Vec<&str> = tree.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["b.txt", "sub/a.txt"]);
        assert_eq!(t.content_size, 2);
        let dest = dir.path().join("m");
        store.materialize(&t.hash, true, &dest).unwrap();
        assert_eq!(fs::read(dest.join("sub/a.txt")).unwrap(), b"a");
        // Same content elsewhere: same tree hash.
        let again = store.put_tree(&dest.canonicalize().unwrap());
        assert!(
            matches!(again, Err(StoreError::Symlink(_))),
            "materialized links are not content"
        );
        std::os::unix::fs::symlink("/etc/passwd", src.join("evil")).unwrap();
        assert!(matches!(store.put_tree(&src), Err(StoreError::Symlink(_))));
    }
}
