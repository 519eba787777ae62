//! The artifact tree's model: the visible rows of an artifact's ancestry and
//! descendants ([`tree_rows`]), built from the edges the reader loaded
//! ([`ArtifactDetail`]) and the nodes the user folded or unfolded. Pure and
//! independent of the screen state, so the view draws the same rows the
//! key handlers in `app.rs` move over.

use std::collections::{HashMap, HashSet};

use super::data::{ArtifactDetail, TREE_DEPTH, TREE_EDGES};
use crate::lineage::Edge;

/// What a row of the artifact tree shows.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKind {
    /// "ancestry" (up) or "descendants" (down), with how many edges each has.
    Section { up: bool },
    /// A step run: "made by" (up) or "read by" (down).
    Step {
        step_run_id: i64,
        run_id: i64,
        step: String,
        up: bool,
        /// The slot of the row above it: the output it made (up) or the input it read (down).
        slot: String,
    },
    /// An artifact, reached through `slot` of the step above.
    Artifact {
        hash: String,
        slot: Option<String>,
        up: bool,
    },
    /// The tree was cut here (too many rows, or the depth limit).
    More(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TreeRow {
    /// Stable identity of this row: the path from the root.
    pub key: String,
    pub depth: usize,
    pub kind: RowKind,
    pub has_children: bool,
    pub expanded: bool,
    /// This node already appears above; collapsed by default to keep the tree finite.
    pub repeat: bool,
}

/// How many rows the tree shows at most; a collapsed node hides its rows.
pub const TREE_ROWS: usize = 20_000;

struct Index<'a> {
    up: HashMap<&'a str, Vec<&'a Edge>>,
    down: HashMap<&'a str, Vec<&'a Edge>>,
}

impl<'a> Index<'a> {
    fn new(d: &'a ArtifactDetail) -> Index<'a> {
        let mut up: HashMap<&str, Vec<_>> = HashMap::new();
        for e in &d.up {
            up.entry(e.near.as_str()).or_default().push(e);
        }
        let mut down: HashMap<&str, Vec<_>> = HashMap::new();
        for e in &d.down {
            down.entry(e.near.as_str()).or_default().push(e);
        }
        Index { up, down }
    }

    /// The step runs adjacent to `hash`, each with its edges, in edge order.
    fn steps(&self, hash: &str, up: bool) -> Vec<Vec<&'a Edge>> {
        let edges = if up { &self.up } else { &self.down };
        let mut out: Vec<Vec<&Edge>> = Vec::new();
        for e in edges.get(hash).into_iter().flatten() {
            match out.last_mut() {
                Some(g) if g[0].step_run_id == e.step_run_id && g[0].near_slot == e.near_slot => {
                    g.push(e)
                }
                _ => out.push(vec![e]),
            }
        }
        out
    }
}

/// The visible rows of the tree: every node is expanded by default, except one
/// already shown above (a shared ancestor), and `toggled` flips the default.
pub fn tree_rows(d: &ArtifactDetail, toggled: &HashSet<String>) -> Vec<TreeRow> {
    let ix = Index::new(d);
    let mut rows = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for up in [true, false] {
        let key = if up { "up" } else { "down" }.to_owned();
        let children = !ix.steps(&d.hash, up).is_empty();
        let expanded = children && !toggled.contains(&key);
        rows.push(TreeRow {
            key: key.clone(),
            depth: 0,
            kind: RowKind::Section { up },
            has_children: children,
            expanded,
            repeat: false,
        });
        if expanded {
            artifact_children(&ix, &d.hash, up, &key, 1, toggled, &mut seen, &mut rows);
        }
        let cut = if up { d.up_truncated } else { d.down_truncated };
        if cut {
            rows.push(TreeRow {
                key: format!("{key}/more"),
                depth: 1,
                kind: RowKind::More(format!(
                    "(cut at {} levels or {TREE_EDGES} edges)",
                    TREE_DEPTH
                )),
                has_children: false,
                expanded: false,
                repeat: false,
            });
        }
    }
    rows
}

#[allow(clippy::too_many_arguments)]
fn artifact_children(
    ix: &Index,
    hash: &str,
    up: bool,
    path: &str,
    depth: usize,
    toggled: &HashSet<String>,
    seen: &mut HashSet<String>,
    rows: &mut Vec<TreeRow>,
) {
    for group in ix.steps(hash, up) {
        if rows.len() >= TREE_ROWS {
            rows.push(TreeRow {
                key: format!("{path}/more"),
                depth,
                kind: RowKind::More("(more rows not shown)".into()),
                has_children: false,
                expanded: false,
                repeat: false,
            });
            return;
        }
        let e = group[0];
        let key = format!("{path}/s{}", e.step_run_id);
        let ident = format!("{}s{}", if up { "u" } else { "d" }, e.step_run_id);
        let repeat = !seen.insert(ident);
        let kids: Vec<_> = group.iter().filter(|e| e.far.is_some()).collect();
        let has_children = !kids.is_empty();
        let expanded = has_children && (repeat == toggled.contains(&key));
        rows.push(TreeRow {
            key: key.clone(),
            depth,
            kind: RowKind::Step {
                step_run_id: e.step_run_id,
                run_id: e.run_id,
                step: e.step.clone(),
                up,
                slot: e.near_slot.clone(),
            },
            has_children,
            expanded,
            repeat,
        });
        if !expanded {
            continue;
        }
        for e in kids {
            let far = e.far.as_deref().expect("filtered");
            let akey = format!("{key}/{}", e.far_slot.as_deref().unwrap_or(""));
            let aident = format!("{}a{far}", if up { "u" } else { "d" });
            let arepeat = !seen.insert(aident);
            let has = !ix.steps(far, up).is_empty();
            let aexp = has && (arepeat == toggled.contains(&akey));
            rows.push(TreeRow {
                key: akey.clone(),
                depth: depth + 1,
                kind: RowKind::Artifact {
                    hash: far.to_owned(),
                    slot: e.far_slot.clone(),
                    up,
                },
                has_children: has,
                expanded: aexp,
                repeat: arepeat,
            });
            if aexp {
                artifact_children(ix, far, up, &akey, depth + 2, toggled, seen, rows);
            }
        }
    }
}

/// The newest step run (and its run) that made `hash`, among the loaded edges.
pub fn producer(d: &ArtifactDetail, hash: &str) -> Option<(i64, i64)> {
    d.up.iter()
        .filter(|e| e.near == hash)
        .max_by_key(|e| e.step_run_id)
        .map(|e| (e.run_id, e.step_run_id))
}
