//! The one topological sort: Kahn's algorithm that always takes the ready node with
//! the lowest index, so ties keep the caller's order (file order for workflow steps,
//! alphabetical for impute's columns, recorded order for the dashboard).

use std::collections::BTreeSet;

/// Order `0..deps.len()` so that every node comes after the nodes it depends on
/// (`deps[i]`: the nodes `i` needs; repeats and out-of-range indices are ignored).
/// On a cycle, `Err` holds every node that could not be placed (the nodes on a cycle
/// and behind one), in index order.
pub fn order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    let mut dependents = vec![Vec::new(); n];
    let mut missing = vec![0usize; n];
    for (i, ds) in deps.iter().enumerate() {
        let unique: BTreeSet<usize> = ds.iter().copied().filter(|&d| d < n).collect();
        missing[i] = unique.len();
        for d in unique {
            dependents[d].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| missing[i] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for &d in &dependents[i] {
            missing[d] -= 1;
            if missing[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if out.len() == n {
        Ok(out)
    } else {
        Err((0..n).filter(|&i| missing[i] > 0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_first_ties_by_index() {
        // 0 <- 2, 1 <- 0, 3 free: 2 and 3 are ready first, 2 wins the tie.
        let deps = vec![vec![2], vec![0, 0], vec![], vec![]];
        assert_eq!(order(&deps), Ok(vec![2, 0, 1, 3]));
    }

    #[test]
    fn a_cycle_returns_what_is_left() {
        // 0 <-> 1, and 2 behind the cycle; 3 is fine.
        let deps = vec![vec![1], vec![0], vec![1], vec![]];
        assert_eq!(order(&deps), Err(vec![0, 1, 2]));
    }
}
