//! The plan of a run, before anything executes: which steps take part and how
//! ([`Selection`], built from `--only`, `--from` and `--force` before the engine
//! starts), and the scheduler's board ([`Board`]): what each finished step
//! produced, which steps are ready, and the artifacts that fill a ready step's
//! input slots.
//!
//! Everything here is pure (no I/O, no database), so the scheduling rules are unit
//! tested below. `run`, `status`, `why` and `run --dry-run` all plan through this
//! module, so they cannot disagree about what feeds a step.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use indexmap::IndexMap;

use super::events::{StepResult, StepStatus};
use crate::lineage::CachedRecord;
use crate::spec::{Dag, Ref};

/// Which steps take part in a run and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not part of this run (outside `--only`/`--from`).
    Out,
    /// Needed only for its outputs: must come from the cache.
    CacheOnly,
    /// Selected: runs if its key is not cached (or it is forced).
    Run,
}

/// A step named on the command line that the workflow does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("`{flag} {name}`: the workflow has no step `{name}`; {help}")]
    UnknownStep {
        flag: &'static str,
        name: String,
        /// The closest names, from [`crate::diag::suggest`].
        help: String,
    },
}

/// The steps of one run: each one's [`Role`] and which are forced to rerun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// By step index (file order).
    pub roles: Vec<Role>,
    /// Steps that rerun even when their key is cached.
    pub forced: BTreeSet<usize>,
}

impl Selection {
    /// Every step runs if it is not cached; none is forced (`status`, `--dry-run`).
    pub fn all(steps: usize) -> Selection {
        Selection {
            roles: vec![Role::Run; steps],
            forced: BTreeSet::new(),
        }
    }

    /// The selection of `--only` (these steps and what they need), `--from` (this
    /// step and everything downstream; with `--only`, the intersection), `--force`
    /// and `--force-all`. Steps outside it that a selected step reads from are
    /// [`Role::CacheOnly`].
    pub fn new(
        dag: &Dag,
        only: &[String],
        from: Option<&str>,
        force: &[String],
        force_all: bool,
    ) -> Result<Selection, SelectionError> {
        let n = dag.names.len();
        let roles = roles(dag, only, from)?;
        let forced = if force_all {
            (0..n).collect()
        } else {
            force
                .iter()
                .map(|s| step_index(dag, s, "--force"))
                .collect::<Result<_, _>>()?
        };
        Ok(Selection { roles, forced })
    }

    /// How many steps take part (are not [`Role::Out`]).
    pub fn taking_part(&self) -> usize {
        self.roles.iter().filter(|r| **r != Role::Out).count()
    }
}

fn step_index(dag: &Dag, name: &str, flag: &'static str) -> Result<usize, SelectionError> {
    dag.index(name).ok_or_else(|| SelectionError::UnknownStep {
        flag,
        name: name.to_owned(),
        help: crate::diag::suggest(name, "step", dag.names.iter().map(String::as_str)),
    })
}

fn roles(dag: &Dag, only: &[String], from: Option<&str>) -> Result<Vec<Role>, SelectionError> {
    let n = dag.names.len();
    if only.is_empty() && from.is_none() {
        return Ok(vec![Role::Run; n]);
    }
    let mut selected: BTreeSet<usize> = BTreeSet::new();
    if !only.is_empty() {
        let idx: Vec<usize> = only
            .iter()
            .map(|s| step_index(dag, s, "--only"))
            .collect::<Result<_, _>>()?;
        selected.extend(dag.ancestors(&idx));
    }
    if let Some(from) = from {
        let i = step_index(dag, from, "--from")?;
        let down = dag.descendants(&[i]);
        if only.is_empty() {
            selected = down;
        } else {
            selected.retain(|s| down.contains(s));
        }
    }
    let needed = dag.ancestors(&selected.iter().copied().collect::<Vec<_>>());
    Ok((0..n)
        .map(|i| {
            if selected.contains(&i) {
                Role::Run
            } else if needed.contains(&i) {
                Role::CacheOnly
            } else {
                Role::Out
            }
        })
        .collect())
}

/// An artifact known to the scheduler: what fills an input slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub hash: String,
    /// File name to show it under when materialised.
    pub name: String,
    pub is_tree: bool,
}

/// A finished step's outputs by slot (none when it failed or has not finished).
pub type Outputs = Option<BTreeMap<String, Artifact>>;

/// Where one input slot's artifact comes from, with the producing step's index
/// looked up once (not once per ready step).
#[derive(Debug, Clone)]
enum Source {
    Raw(String),
    Output { step: usize, output: String },
}

/// The artifacts bound to a step's input slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bound {
    /// Slot → artifact, for every slot whose artifact is known.
    pub inputs: BTreeMap<String, Artifact>,
    /// The first upstream step (in slot order) whose output is not known yet.
    pub waiting_on: Option<usize>,
}

/// The scheduler's view of the run: what each step produced, what is ready, and
/// cached-step records not yet written.
pub struct Board<'a> {
    dag: &'a Dag,
    roles: &'a [Role],
    sources: Vec<Vec<(String, Source)>>,
    pub outputs: Vec<Outputs>,
    pub results: Vec<Option<StepResult>>,
    /// Unfinished dependencies per step.
    missing: Vec<usize>,
    /// Steps whose dependencies are all done, in file order.
    pub ready: BTreeSet<usize>,
    /// Cache hits whose lineage records are not written yet.
    pub pending: Vec<(usize, CachedRecord)>,
}

impl<'a> Board<'a> {
    /// `inputs[i]`: the input slots of step `i` (file order, the same as `dag`).
    pub fn new<'s>(
        dag: &'a Dag,
        roles: &'a [Role],
        inputs: impl IntoIterator<Item = &'s IndexMap<String, Ref>>,
    ) -> Self {
        let n = dag.names.len();
        let index: HashMap<&str, usize> = dag
            .names
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        let sources = inputs
            .into_iter()
            .map(|slots| {
                slots
                    .iter()
                    .filter_map(|(slot, r)| {
                        let src = match r {
                            Ref::Input(name) => Source::Raw(name.clone()),
                            Ref::Output { step, output } => Source::Output {
                                step: *index.get(step.as_str())?,
                                output: output.clone(),
                            },
                        };
                        Some((slot.clone(), src))
                    })
                    .collect()
            })
            .collect();
        let missing: Vec<usize> = dag.deps.iter().map(Vec::len).collect();
        let ready = (0..n)
            .filter(|&i| missing[i] == 0 && roles[i] != Role::Out)
            .collect();
        Board {
            dag,
            roles,
            sources,
            outputs: vec![None; n],
            results: vec![None; n],
            missing,
            ready,
            pending: Vec::new(),
        }
    }

    /// The artifacts filling step `i`'s input slots: raw inputs from `raw`, step
    /// outputs from what has finished.
    pub fn bind(&self, i: usize, raw: impl Fn(&str) -> Option<Artifact>) -> Bound {
        let mut bound = Bound::default();
        for (slot, src) in &self.sources[i] {
            let art = match src {
                Source::Raw(name) => raw(name),
                Source::Output { step, output } => {
                    let art = self.outputs[*step]
                        .as_ref()
                        .and_then(|o| o.get(output))
                        .cloned();
                    if art.is_none() && bound.waiting_on.is_none() {
                        bound.waiting_on = Some(*step);
                    }
                    art
                }
            };
            if let Some(art) = art {
                bound.inputs.insert(slot.clone(), art);
            }
        }
        bound
    }

    /// Record a step's result; on success its dependants may become ready.
    pub fn finish(&mut self, i: usize, r: StepResult, outs: Outputs) {
        let ok = matches!(r.status, StepStatus::Succeeded | StepStatus::Cached);
        self.results[i] = Some(r);
        if ok {
            self.outputs[i] = outs;
            for &d in &self.dag.dependents[i] {
                self.missing[d] -= 1;
                if self.missing[d] == 0 && self.roles[d] != Role::Out {
                    self.ready.insert(d);
                }
            }
        }
    }

    /// The ready steps, in file order, leaving none ready.
    pub fn take_ready(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.ready).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// a → b → c, and d alone; `c` also reads the raw input `x`.
    fn dag() -> (Dag, Vec<IndexMap<String, Ref>>) {
        let names = ["a", "b", "c", "d"].map(String::from).to_vec();
        let out = |s: &str| Ref::Output {
            step: s.into(),
            output: "out".into(),
        };
        let inputs = vec![
            IndexMap::new(),
            IndexMap::from([("src".to_owned(), out("a"))]),
            IndexMap::from([
                ("src".to_owned(), out("b")),
                ("raw".to_owned(), Ref::Input("x".into())),
            ]),
            IndexMap::new(),
        ];
        let dag = Dag {
            names,
            deps: vec![vec![], vec![0], vec![1], vec![]],
            dependents: vec![vec![1], vec![2], vec![], vec![]],
            order: vec![0, 1, 2, 3],
        };
        (dag, inputs)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    use Role::*;

    #[test]
    fn no_flags_run_everything() {
        let (dag, _) = dag();
        let s = Selection::new(&dag, &[], None, &[], false).unwrap();
        assert_eq!(s, Selection::all(4));
        assert_eq!(s.taking_part(), 4);
    }

    #[test]
    fn only_runs_the_step_and_what_it_needs() {
        let (dag, _) = dag();
        let s = Selection::new(&dag, &names(&["b"]), None, &[], false).unwrap();
        assert_eq!(s.roles, [Run, Run, Out, Out]);
    }

    #[test]
    fn from_runs_downstream_and_needs_upstream_from_the_cache() {
        let (dag, _) = dag();
        let s = Selection::new(&dag, &[], Some("b"), &[], false).unwrap();
        assert_eq!(s.roles, [CacheOnly, Run, Run, Out]);
        // With --only as well: the intersection.
        let s = Selection::new(&dag, &names(&["b"]), Some("b"), &[], false).unwrap();
        assert_eq!(s.roles, [CacheOnly, Run, Out, Out]);
    }

    #[test]
    fn force_names_steps_and_force_all_takes_every_step() {
        let (dag, _) = dag();
        let s = Selection::new(&dag, &[], None, &names(&["c", "a"]), false).unwrap();
        assert_eq!(s.forced, BTreeSet::from([0, 2]));
        let s = Selection::new(&dag, &[], None, &[], true).unwrap();
        assert_eq!(s.forced, BTreeSet::from([0, 1, 2, 3]));
    }

    #[test]
    fn an_unknown_step_names_the_flag_and_a_suggestion() {
        let (dag, _) = dag();
        for (only, from, force) in [
            (names(&["bb"]), None, vec![]),
            (vec![], Some("bb"), vec![]),
            (vec![], None, names(&["bb"])),
        ] {
            let e = Selection::new(&dag, &only, from, &force, false).unwrap_err();
            let SelectionError::UnknownStep { flag, name, help } = &e;
            assert_eq!(name, "bb");
            assert!(help.contains("`b`"), "{help}");
            assert!(e.to_string().starts_with(&format!("`{flag} bb`: ")), "{e}");
        }
    }

    fn result(name: &str, status: StepStatus) -> StepResult {
        StepResult {
            name: name.into(),
            status,
            key: None,
            reason: String::new(),
            outputs: BTreeMap::new(),
            error: None,
            step_run_id: None,
            duration: Duration::ZERO,
        }
    }

    fn art(h: &str) -> Artifact {
        Artifact {
            hash: h.into(),
            name: format!("{h}.txt"),
            is_tree: false,
        }
    }

    #[test]
    fn the_board_readies_dependants_and_binds_their_inputs() {
        let (dag, inputs) = dag();
        let roles = vec![Run; 4];
        let mut board = Board::new(&dag, &roles, &inputs);
        assert_eq!(board.take_ready(), [0, 3], "roots, in file order");
        let raw = |n: &str| (n == "x").then(|| art("x"));
        assert_eq!(board.bind(1, raw).waiting_on, Some(0));

        let outs = BTreeMap::from([("out".to_owned(), art("a1"))]);
        board.finish(0, result("a", StepStatus::Cached), Some(outs));
        assert_eq!(board.take_ready(), [1]);
        let b = board.bind(1, raw);
        assert_eq!(b.waiting_on, None);
        assert_eq!(b.inputs["src"], art("a1"));

        // A failure makes nothing ready and leaves the dependant waiting.
        board.finish(1, result("b", StepStatus::Failed), None);
        assert!(board.take_ready().is_empty());
        let c = board.bind(2, raw);
        assert_eq!(c.waiting_on, Some(1));
        assert_eq!(c.inputs.keys().collect::<Vec<_>>(), ["raw"]);
    }

    #[test]
    fn steps_outside_the_selection_never_become_ready() {
        let (dag, inputs) = dag();
        let roles = [CacheOnly, Run, Out, Out];
        let mut board = Board::new(&dag, &roles, &inputs);
        assert_eq!(board.take_ready(), [0]);
        board.finish(0, result("a", StepStatus::Cached), Some(BTreeMap::new()));
        board.finish(1, result("b", StepStatus::Succeeded), Some(BTreeMap::new()));
        assert_eq!(board.take_ready(), [1], "c is out of the run");
    }
}
