//! Where a run happened, recorded with it: the host name and the git commit of the
//! workspace (and whether tracked files differ from it).

use std::path::PathBuf;

pub use crate::lineage::hostname;

/// The commit checked out in the workspace and whether tracked files differ from it.
pub async fn git_state(root: PathBuf) -> (Option<String>, Option<bool>) {
    let out = |args: &'static [&'static str]| {
        let root = root.clone();
        async move {
            tokio::process::Command::new("git")
                .args(args)
                .current_dir(&root)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .await
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        }
    };
    let commit = out(&["rev-parse", "HEAD"]).await;
    if commit.is_none() {
        return (None, None);
    }
    let dirty = out(&["status", "--porcelain", "--untracked-files=no"])
        .await
        .map(|s| !s.is_empty());
    (commit, dirty)
}
