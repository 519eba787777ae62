//! Baselines the evaluation reports next to GNN-R, on the identical split and
//! with the identical masking: popularity, item-kNN (cosine neighbours from
//! sparse co-occurrence counts) and BPR-MF (the GNN-R trainer with no propagation layers, see
//! [`train`](super::train)).

use rayon::prelude::*;

use super::graph::{Graph, TRAIN};

/// Training interactions per item (the popularity score).
pub fn popularity(graph: &Graph) -> Vec<f32> {
    let mut pop = vec![0f32; graph.n_items()];
    let it = &graph.interactions;
    for k in 0..it.len() {
        if it.split[k] == TRAIN {
            pop[it.item[k] as usize] += 1.0;
        }
    }
    pop
}

/// Item-based collaborative filtering: each item's `k` most similar items by
/// cosine similarity of their (binary) training user vectors; a user's score for
/// item i is the summed similarity of i's neighbours the user interacted with.
///
/// The similarities come from sparse co-occurrence counts, never from an
/// items × users matrix: for binary vectors cos(i, j) = |U_i ∩ U_j| / √(|U_i| |U_j|),
/// and the counts |U_i ∩ U_j| for one item i are a walk over its users' item
/// lists. Fitting costs Σ_u |I_u|² (each user's training items, squared) and
/// memory of the order of the edges; scoring a user walks only the neighbour
/// lists of the items they took.
pub struct ItemKnn {
    /// Per item: (neighbour, similarity), most similar first, ties by the lower index.
    pub neighbours: Vec<Vec<(u32, f32)>>,
    /// Per item j: (i, similarity) for every item i that has j as a neighbour,
    /// by increasing i (the neighbour lists read the other way round).
    by_neighbour: Vec<Vec<(u32, f32)>>,
}

impl ItemKnn {
    pub fn fit(graph: &Graph, k: usize) -> ItemKnn {
        let ni = graph.n_items();
        // One interaction per (user, item) pair (the graph aggregates repeated
        // events), so these lists are the binary vectors.
        let items_of = graph.items_by_user(TRAIN);
        let mut users_of: Vec<Vec<u32>> = vec![Vec::new(); ni];
        for (u, items) in items_of.iter().enumerate() {
            for &i in items {
                users_of[i as usize].push(u as u32);
            }
        }
        let neighbours: Vec<Vec<(u32, f32)>> = (0..ni)
            .into_par_iter()
            .map_init(
                || (vec![0u32; ni], Vec::new()),
                |(counts, touched), i| {
                    for &u in &users_of[i] {
                        for &j in &items_of[u as usize] {
                            if j as usize != i {
                                if counts[j as usize] == 0 {
                                    touched.push(j);
                                }
                                counts[j as usize] += 1;
                            }
                        }
                    }
                    let n_i = users_of[i].len() as f64;
                    let mut found: Vec<(u32, f32)> = touched
                        .drain(..)
                        .map(|j| {
                            let c = std::mem::take(&mut counts[j as usize]);
                            let n_j = users_of[j as usize].len() as f64;
                            (j, (f64::from(c) / (n_i * n_j).sqrt()) as f32)
                        })
                        .collect();
                    let order =
                        |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
                    if found.len() > k {
                        found.select_nth_unstable_by(k, order);
                        found.truncate(k);
                    }
                    found.sort_unstable_by(order);
                    // Kept for the whole evaluation: without this each list would
                    // hold room for every co-occurring item (items² in all).
                    found.shrink_to_fit();
                    found
                },
            )
            .collect();
        let mut by_neighbour: Vec<Vec<(u32, f32)>> = vec![Vec::new(); ni];
        for (i, list) in neighbours.iter().enumerate() {
            for &(j, s) in list {
                by_neighbour[j as usize].push((i as u32, s));
            }
        }
        ItemKnn {
            neighbours,
            by_neighbour,
        }
    }

    /// Scores every item for a user who interacted with `seen` (sorted) in training.
    pub fn score(&self, seen: &[u32], out: &mut [f32]) {
        out.fill(0.0);
        for &j in seen {
            for &(i, s) in &self.by_neighbour[j as usize] {
                out[i as usize] += s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gnn::graph::{BuildConfig, Graph};
    use crate::gnn::input::Columns;

    fn graph(rows: &[(&str, &str)]) -> Graph {
        let mut c = Columns {
            names: vec!["user_id".into(), "item_id".into()],
            rows: rows.len(),
            ..Columns::default()
        };
        c.data.insert(
            "user_id".into(),
            rows.iter().map(|r| Some(r.0.to_owned())).collect(),
        );
        c.data.insert(
            "item_id".into(),
            rows.iter().map(|r| Some(r.1.to_owned())).collect(),
        );
        let config = BuildConfig {
            valid: 0.0,
            test: 0.0,
            ..BuildConfig::default()
        };
        Graph::build(&c, None, &config).unwrap().0
    }

    #[test]
    fn item_knn_scores_co_consumed_items() {
        // a and b are always bought together; c by someone else.
        let g = graph(&[
            ("u1", "a"),
            ("u1", "b"),
            ("u2", "a"),
            ("u2", "b"),
            ("u3", "c"),
            ("u4", "a"),
        ]);
        assert_eq!(popularity(&g), [3.0, 2.0, 1.0]);
        let knn = ItemKnn::fit(&g, 5);
        // cos(a, b) = 2 / (√3 · √2); c shares no user with either.
        let want = 2.0 / (3f32.sqrt() * 2f32.sqrt());
        assert_eq!(knn.neighbours[0].len(), 1);
        assert!((knn.neighbours[0][0].1 - want).abs() < 1e-6);
        let mut out = vec![0.0; 3];
        knn.score(&[0], &mut out); // a user who took a
        assert!(out[1] > 0.0 && out[2] == 0.0, "{out:?}");
    }

    /// The sparse counts give the cosine neighbours a dense computation gives,
    /// in the same order, and the score of every item is the sum over its own
    /// neighbours the user took (what the reverse lists compute).
    #[test]
    fn item_knn_matches_dense_cosine_neighbours() {
        let mut rng = crate::util::rng::Rng::derive(11, 0);
        let names: Vec<(String, String)> = (0..400)
            .map(|_| (format!("u{}", rng.below(40)), format!("i{}", rng.below(25))))
            .collect();
        let rows: Vec<(&str, &str)> = names
            .iter()
            .map(|(u, i)| (u.as_str(), i.as_str()))
            .collect();
        let g = graph(&rows);
        let (nu, ni) = (g.n_users(), g.n_items());
        let mut m = vec![vec![0f64; nu]; ni];
        let it = &g.interactions;
        for e in 0..it.len() {
            m[it.item[e] as usize][it.user[e] as usize] = 1.0;
        }
        let k = 4;
        let knn = ItemKnn::fit(&g, k);
        for i in 0..ni {
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let mut want: Vec<(u32, f64)> = (0..ni)
                .filter(|&j| j != i)
                .map(|j| {
                    let dot: f64 = m[i].iter().zip(&m[j]).map(|(a, b)| a * b).sum();
                    (j as u32, dot / (norm(&m[i]) * norm(&m[j])))
                })
                .filter(|(_, s)| *s > 0.0)
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(k);
            let got = &knn.neighbours[i];
            assert_eq!(got.len(), want.len(), "item {i}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0, "item {i}: {got:?} against {want:?}");
                assert!((f64::from(g.1) - w.1).abs() < 1e-6, "item {i}");
            }
        }
        let train = g.items_by_user(TRAIN);
        let mut out = vec![0f32; ni];
        for seen in &train {
            knn.score(seen, &mut out);
            for (i, o) in out.iter().enumerate() {
                let want: f32 = knn.neighbours[i]
                    .iter()
                    .filter(|(j, _)| seen.binary_search(j).is_ok())
                    .map(|(_, s)| s)
                    .sum();
                assert!((o - want).abs() < 1e-5, "item {i}: {o} against {want}");
            }
        }
    }
}
