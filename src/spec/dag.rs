//! Phase three: the step graph derived from `inputs` references, its
//! topological order, cycle detection and the `pedigree dag` drawings.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::validate::{Ref, Workflow};
use crate::diag::{Diagnostic, Part, YamlPath};

/// Steps by index in file order, with edges from producer to consumer.
#[derive(Debug, Clone)]
pub struct Dag {
    pub names: Vec<String>,
    /// `deps[i]`: the steps `i` reads from, sorted, without repeats.
    pub deps: Vec<Vec<usize>>,
    /// `dependents[i]`: the steps that read from `i`.
    pub dependents: Vec<Vec<usize>>,
    /// Every step once, producers before consumers; ties keep file order.
    pub order: Vec<usize>,
}

impl Dag {
    pub fn build(wf: &Workflow) -> Result<Dag, Diagnostic> {
        let names: Vec<String> = wf.steps.keys().cloned().collect();
        let index = |n: &str| wf.steps.get_index_of(n);
        let mut deps = vec![Vec::new(); names.len()];
        let mut dependents = vec![Vec::new(); names.len()];
        for (i, step) in wf.steps.values().enumerate() {
            let set: BTreeSet<usize> = step
                .inputs
                .values()
                .filter_map(|r| match r {
                    Ref::Output { step, .. } => index(step),
                    Ref::Input(_) => None,
                })
                .collect();
            for &d in &set {
                dependents[d].push(i);
            }
            deps[i] = set.into_iter().collect();
        }
        let mut dag = Dag {
            names,
            deps,
            dependents,
            order: Vec::new(),
        };
        dag.order = dag.topo().map_err(|cycle| dag.cycle_error(wf, &cycle))?;
        Ok(dag)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Producers before consumers, ties in file order ([`crate::util::topo`]); on a
    /// cycle, the steps of one cycle in reading order.
    fn topo(&self) -> Result<Vec<usize>, Vec<usize>> {
        let left = match crate::util::topo::order(&self.deps) {
            Ok(order) => return Ok(order),
            Err(left) => left,
        };
        let stuck = |i: usize| left.binary_search(&i).is_ok();
        // Some steps are on or behind a cycle; walk deps from one of them until a step repeats.
        let start = left.first().copied().unwrap_or(0);
        let mut path = vec![start];
        loop {
            let cur = *path.last().unwrap_or(&start);
            let next = self.deps[cur]
                .iter()
                .copied()
                .find(|&d| stuck(d))
                .unwrap_or(start);
            if let Some(pos) = path.iter().position(|&s| s == next) {
                let mut cycle = path[pos..].to_vec();
                cycle.reverse();
                return Err(cycle);
            }
            path.push(next);
        }
    }

    fn cycle_error(&self, wf: &Workflow, cycle: &[usize]) -> Diagnostic {
        let mut names: Vec<&str> = cycle.iter().map(|&i| self.names[i].as_str()).collect();
        // Name the cycle from the step that comes first in the file, so the message is stable.
        let first = (0..names.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
        names.rotate_left(first);
        let circle = format!("{} -> {}", names.join(" -> "), names[0]);
        // Point at the reference that closes the circle: the first step reading the last one.
        let (reader, producer) = (names[0], names[names.len() - 1]);
        let slot = wf.steps[reader]
            .inputs
            .iter()
            .find(|(_, r)| matches!(r, Ref::Output { step, .. } if step == producer))
            .map(|(s, _)| s.clone())
            .unwrap_or_default();
        let path = YamlPath::root()
            .join("steps")
            .join(reader)
            .join("inputs")
            .join(slot);
        Diagnostic::new(format!("the steps form a cycle: {circle}"))
            .at_path(&wf.source, &path, Part::Value)
            .help("a step can only read outputs of steps that do not depend on it; break the cycle")
    }

    /// Every step that `roots` depend on, directly or not, plus the roots.
    pub fn ancestors(&self, roots: &[usize]) -> BTreeSet<usize> {
        self.closure(roots, &self.deps)
    }

    /// Every step that depends on `roots`, directly or not, plus the roots.
    pub fn descendants(&self, roots: &[usize]) -> BTreeSet<usize> {
        self.closure(roots, &self.dependents)
    }

    fn closure(&self, roots: &[usize], edges: &[Vec<usize>]) -> BTreeSet<usize> {
        let mut seen: BTreeSet<usize> = roots.iter().copied().collect();
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(i) = stack.pop() {
            for &j in &edges[i] {
                if seen.insert(j) {
                    stack.push(j);
                }
            }
        }
        seen
    }
}

/// The formats of `pedigree dag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

/// Draw the workflow's graph, inputs included, in `format`.
pub fn render(wf: &Workflow, dag: &Dag, format: DagFormat) -> String {
    let mut out = String::new();
    let label = |i: usize| {
        let s = &wf.steps[i];
        match &s.action {
            super::validate::Action::Builtin(k) => format!("{} ({k})", s.name),
            super::validate::Action::Plugin(p) => format!("{} (plugin {p})", s.name),
        }
    };
    match format {
        DagFormat::Text => {
            let _ = writeln!(out, "{}", wf.name);
            for name in wf.inputs.keys() {
                let _ = writeln!(out, "  input {name}");
            }
            for &i in &dag.order {
                let _ = writeln!(out, "  step {}", label(i));
                for (slot, r) in &wf.steps[i].inputs {
                    let _ = writeln!(out, "    {slot} <- {r}");
                }
            }
        }
        DagFormat::Dot => {
            let _ = writeln!(out, "digraph \"{}\" {{", wf.name);
            let _ = writeln!(out, "  rankdir=LR;");
            for name in wf.inputs.keys() {
                let _ = writeln!(out, "  \"inputs.{name}\" [shape=note, label=\"{name}\"];");
            }
            for &i in &dag.order {
                let _ = writeln!(
                    out,
                    "  \"{}\" [shape=box, label=\"{}\"];",
                    dag.names[i],
                    label(i)
                );
            }
            for &i in &dag.order {
                for (slot, r) in &wf.steps[i].inputs {
                    let from = match r {
                        Ref::Input(n) => format!("inputs.{n}"),
                        Ref::Output { step, .. } => step.clone(),
                    };
                    let edge = match r {
                        Ref::Input(_) => slot.clone(),
                        Ref::Output { output, .. } => format!("{output} -> {slot}"),
                    };
                    let _ = writeln!(
                        out,
                        "  \"{from}\" -> \"{}\" [label=\"{edge}\"];",
                        dag.names[i]
                    );
                }
            }
            let _ = writeln!(out, "}}");
        }
        DagFormat::Mermaid => {
            let _ = writeln!(out, "flowchart LR");
            let id = |s: &str| s.replace('-', "_");
            for name in wf.inputs.keys() {
                let _ = writeln!(out, "  in_{}[/\"{name}\"/]", id(name));
            }
            for &i in &dag.order {
                let _ = writeln!(out, "  s_{}[\"{}\"]", id(&dag.names[i]), label(i));
            }
            for &i in &dag.order {
                for (slot, r) in &wf.steps[i].inputs {
                    let (from, edge) = match r {
                        Ref::Input(n) => (format!("in_{}", id(n)), slot.clone()),
                        Ref::Output { step, output } => {
                            (format!("s_{}", id(step)), format!("{output} → {slot}"))
                        }
                    };
                    let _ = writeln!(out, "  {from} -->|{edge}| s_{}", id(&dag.names[i]));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Source;
    use crate::spec::validate::parse;
    use std::path::PathBuf;

    fn wf(text: &str) -> Result<(Workflow, Dag), Diagnostic> {
        let w = parse(Source::new("w.yaml", text), PathBuf::from("/w"), &[])?;
        let d = Dag::build(&w)?;
        Ok((w, d))
    }

    #[test]
    fn orders_producers_first_and_keeps_file_order_for_ties() {
        let (_, d) = wf("name: x\nsteps:\n  c: { plugin: p, inputs: { a: b.o } }\n  b: { plugin: p }\n  z: { plugin: p }\n").unwrap();
        let names: Vec<&str> = d.order.iter().map(|&i| d.names[i].as_str()).collect();
        assert_eq!(names, ["b", "c", "z"]);
    }

    #[test]
    fn names_the_whole_cycle() {
        let e = wf("name: x\nsteps:\n  a: { plugin: p, inputs: { i: c.o } }\n  b: { plugin: p, inputs: { i: a.o } }\n  c: { plugin: p, inputs: { i: b.o } }\n  d: { plugin: p, inputs: { i: c.o } }\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the steps form a cycle: a -> b -> c -> a"),
            "{e}"
        );
        assert!(e.contains("w.yaml:3:"), "{e}");
    }

    #[test]
    fn closures() {
        let (_, d) = wf("name: x\nsteps:\n  a: { plugin: p }\n  b: { plugin: p, inputs: { i: a.o } }\n  c: { plugin: p, inputs: { i: b.o } }\n  e: { plugin: p }\n").unwrap();
        assert_eq!(d.descendants(&[1]).into_iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(d.ancestors(&[2]).into_iter().collect::<Vec<_>>(), [0, 1, 2]);
    }
}
