//! The one language in which commands name a run and an artifact, and its
//! resolution against the database. `show`, `log`, `diff`, `lineage RUN/…`, the
//! TUI's `--run`/`--compare` take a [`RunRef`]; `lineage REF` and
//! `tui --artifact REF` take an [`ArtifactRef`], so they accept the same forms:
//!
//! - a run: `7`, `latest` (the newest run) or `latest:WORKFLOW` (the newest run of
//!   the workflow with that `name:`);
//! - an artifact: `RUN/STEP.OUTPUT` (with any run form), a workspace path (the
//!   content it has now, or the newest version a run read there), a hash or a
//!   unique prefix of at least 4 hex digits, or a release `NAME` (its newest
//!   version) or `NAME@VERSION`.
//!
//! Hashing a path's content needs the stat cache, which lives above this layer,
//! so the caller hashes an existing path and passes the result in
//! [`PathContent`]; everything else is answered here.

use std::str::FromStr;

use super::{LineageError, ReadDb};

/// A run as a command names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRef {
    Id(i64),
    /// The newest run.
    Latest,
    /// The newest run of a workflow (by its `name:`).
    LatestOf(String),
}

/// An artifact as a command names it, parsed (not yet looked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactRef {
    /// `RUN/STEP.OUTPUT`.
    Output {
        run: RunRef,
        step: String,
        slot: String,
    },
    /// Anything else: tried as a path, a hash prefix, then a release.
    Text(String),
}

/// What the caller knows about a REF as a workspace path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathContent {
    /// The path relative to the workspace root, as runs record their inputs.
    pub relative: String,
    /// The content hash of the file or folder there now, if it exists.
    pub hash: Option<String>,
}

/// How a REF was resolved, for the notes a command prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Output,
    /// The path's current content, which the database knows.
    Content,
    /// The newest version a run read at the path. `changed` when the path
    /// exists now with other content.
    RecordedPath {
        changed: bool,
    },
    Hash,
    Release {
        name: String,
        version: i64,
    },
}

/// A resolved artifact reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub hash: String,
    pub via: Via,
}

#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("`{0}` is not a run")]
    NotARun(String),
    #[error("there are no runs yet")]
    NoRuns,
    #[error("there is no run {0}")]
    NoRun(i64),
    #[error("workflow `{0}` has no runs")]
    NoRunsOf(String),
    #[error("run {run} recorded no output `{slot}` of step `{step}`")]
    NoOutput {
        run: i64,
        step: String,
        slot: String,
    },
    #[error("`{path}` (content {}) is not in the lineage database", short(.hash))]
    NotRecorded { path: String, hash: String },
    #[error("`{text}` is ambiguous: {}", .candidates.iter().map(|h| short(h)).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        text: String,
        candidates: Vec<String>,
    },
    #[error("no artifact matches `{0}`")]
    NoMatch(String),
    #[error(transparent)]
    Lineage(#[from] LineageError),
}

impl RefError {
    /// What to do about it, for the `= help:` line.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            RefError::NotARun(_) => {
                "a run is a number (`pedigree runs` lists them), `latest`, or `latest:WORKFLOW`"
                    .into()
            }
            RefError::NoRuns => "`pedigree run WORKFLOW` records one".into(),
            RefError::NoRun(_) | RefError::NoRunsOf(_) => "`pedigree runs` lists the runs".into(),
            RefError::NoOutput { run, .. } => {
                format!("`pedigree show {run}` lists its steps and outputs")
            }
            RefError::NotRecorded { .. } => {
                "it has not been used or produced by any run in this workspace".into()
            }
            RefError::Ambiguous { .. } => "give more digits, or the whole path".into(),
            RefError::NoMatch(_) => "give a hash prefix (4+ hex digits), `RUN/STEP.OUTPUT`, a path a run read, or a release `NAME[@VERSION]`".into(),
            RefError::Lineage(_) => return None,
        })
    }

    /// Whether the database failed (rather than the reference being wrong).
    pub fn is_database(&self) -> bool {
        matches!(self, RefError::Lineage(_))
    }
}

use crate::util::fmt::short;

impl FromStr for RunRef {
    type Err = RefError;

    fn from_str(text: &str) -> Result<RunRef, RefError> {
        if text == "latest" {
            return Ok(RunRef::Latest);
        }
        if let Some(wf) = text.strip_prefix("latest:")
            && !wf.is_empty()
        {
            return Ok(RunRef::LatestOf(wf.to_owned()));
        }
        match text.parse::<i64>() {
            Ok(id) if id > 0 => Ok(RunRef::Id(id)),
            _ => Err(RefError::NotARun(text.to_owned())),
        }
    }
}

impl ArtifactRef {
    /// Parse a REF. Never fails: text that is not `RUN/STEP.OUTPUT` is looked up
    /// as a path, a hash prefix or a release.
    pub fn parse(text: &str) -> ArtifactRef {
        let text = text.trim();
        if let Some((run, rest)) = text.split_once('/')
            && let Ok(run) = run.parse::<RunRef>()
            && let Some((step, slot)) = rest.rsplit_once('.')
            && !step.is_empty()
            && !slot.is_empty()
            && !step.contains('/')
        {
            return ArtifactRef::Output {
                run,
                step: step.to_owned(),
                slot: slot.to_owned(),
            };
        }
        ArtifactRef::Text(text.to_owned())
    }
}

impl ReadDb {
    /// The id of the run `r` names, checked to exist.
    pub async fn resolve_run(&self, r: &RunRef) -> Result<i64, RefError> {
        match r {
            RunRef::Latest => self.latest_run_id().await?.ok_or(RefError::NoRuns),
            RunRef::LatestOf(wf) => self
                .latest_run_of(wf)
                .await?
                .ok_or_else(|| RefError::NoRunsOf(wf.clone())),
            RunRef::Id(id) => match self.run(*id).await? {
                Some(_) => Ok(*id),
                None => Err(RefError::NoRun(*id)),
            },
        }
    }

    /// Parse and resolve a run as a command names it.
    pub async fn run_ref(&self, text: &str) -> Result<i64, RefError> {
        self.resolve_run(&text.parse()?).await
    }

    /// Resolve an artifact REF (see the module doc). `path` says what the caller
    /// found at the REF as a workspace path; `None` when it did not look.
    pub async fn resolve_ref(
        &self,
        r: &ArtifactRef,
        path: Option<&PathContent>,
    ) -> Result<Resolved, RefError> {
        let text = match r {
            ArtifactRef::Output { run, step, slot } => {
                let run = self.resolve_run(run).await?;
                return match self.output_of_run(run, step, slot).await? {
                    Some(hash) => Ok(Resolved {
                        hash,
                        via: Via::Output,
                    }),
                    None => Err(RefError::NoOutput {
                        run,
                        step: step.clone(),
                        slot: slot.clone(),
                    }),
                };
            }
            ArtifactRef::Text(t) => t.as_str(),
        };
        if text.is_empty() {
            return Err(RefError::NoMatch(text.to_owned()));
        }
        // A path: what is there now, else what a run last read there.
        if let Some(p) = path {
            if let Some(h) = &p.hash
                && self.artifact(h).await?.is_some()
            {
                return Ok(Resolved {
                    hash: h.clone(),
                    via: Via::Content,
                });
            }
            if let Some(hash) = self.input_at_path(&p.relative).await? {
                return Ok(Resolved {
                    hash,
                    via: Via::RecordedPath {
                        changed: p.hash.is_some(),
                    },
                });
            }
            if let Some(h) = &p.hash {
                return Err(RefError::NotRecorded {
                    path: text.to_owned(),
                    hash: h.clone(),
                });
            }
        }
        // A hash or a unique prefix.
        let lower = text.to_ascii_lowercase();
        if lower.len() >= 4 && lower.chars().all(|c| c.is_ascii_hexdigit()) {
            let found = self.artifacts_with_prefix(&lower, 10).await?;
            match found.len() {
                0 => {}
                1 => {
                    return Ok(Resolved {
                        hash: found.into_iter().next().unwrap_or_default(),
                        via: Via::Hash,
                    });
                }
                _ => {
                    return Err(RefError::Ambiguous {
                        text: text.to_owned(),
                        candidates: found,
                    });
                }
            }
        }
        // A release.
        let (name, version) = match text.rsplit_once('@') {
            Some((n, v)) => match v.parse::<i64>() {
                Ok(v) => (n, Some(v)),
                Err(_) => return Err(RefError::NoMatch(text.to_owned())),
            },
            None => (text, None),
        };
        if let Some(rel) = self.release(name, version).await? {
            return Ok(Resolved {
                hash: rel.artifact_hash,
                via: Via::Release {
                    name: rel.name,
                    version: rel.version,
                },
            });
        }
        Err(RefError::NoMatch(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_forms_parse() {
        assert_eq!("7".parse::<RunRef>().unwrap(), RunRef::Id(7));
        assert_eq!("latest".parse::<RunRef>().unwrap(), RunRef::Latest);
        assert_eq!(
            "latest:ecommerce-gnnr".parse::<RunRef>().unwrap(),
            RunRef::LatestOf("ecommerce-gnnr".into())
        );
        for bad in ["", "0", "-1", "latest:", "newest", "7a"] {
            assert!(
                matches!(bad.parse::<RunRef>(), Err(RefError::NotARun(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn artifact_forms_parse() {
        let out = |run, step: &str, slot: &str| ArtifactRef::Output {
            run,
            step: step.into(),
            slot: slot.into(),
        };
        assert_eq!(
            ArtifactRef::parse("1/train.model"),
            out(RunRef::Id(1), "train", "model")
        );
        assert_eq!(
            ArtifactRef::parse("latest/train.model"),
            out(RunRef::Latest, "train", "model")
        );
        assert_eq!(
            ArtifactRef::parse("latest:wf/impute.table"),
            out(RunRef::LatestOf("wf".into()), "impute", "table")
        );
        // Paths, prefixes and releases are looked up, not parsed.
        for text in [
            "data/items.csv",
            "workflows/data/text.txt",
            "ab12",
            "gnnr@2",
        ] {
            assert_eq!(ArtifactRef::parse(text), ArtifactRef::Text(text.into()));
        }
    }
}
