//! Baselines the evaluation reports next to GNN-R, on the identical split and
//! with the identical masking: popularity, item-kNN (neighbours found with
//! linfa-nn) and BPR-MF (the GNN-R trainer with no propagation layers, see
//! [`train`](super::train)).

use linfa_nn::distance::L2Dist;
use linfa_nn::{LinearSearch, NearestNeighbour};
use ndarray::Array2;
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
pub struct ItemKnn {
    /// Per item: (neighbour, similarity), most similar first.
    pub neighbours: Vec<Vec<(u32, f32)>>,
}

impl ItemKnn {
    pub fn fit(graph: &Graph, k: usize) -> Result<ItemKnn, String> {
        let (nu, ni) = (graph.n_users(), graph.n_items());
        let mut m = Array2::<f32>::zeros((ni, nu.max(1)));
        let it = &graph.interactions;
        for e in 0..it.len() {
            if it.split[e] == TRAIN {
                m[[it.item[e] as usize, it.user[e] as usize]] = 1.0;
            }
        }
        for mut row in m.rows_mut() {
            let norm = row.dot(&row).sqrt();
            if norm > 0.0 {
                row /= norm;
            }
        }
        // On unit vectors the L2 order is the cosine order (|a−b|² = 2 − 2 cos).
        let index = LinearSearch::new()
            .from_batch(&m, L2Dist)
            .map_err(|e| format!("cannot build the item-kNN index: {e}"))?;
        let neighbours = (0..ni)
            .into_par_iter()
            .map(|i| {
                let row = m.row(i);
                if row.iter().all(|v| *v == 0.0) {
                    return Ok(Vec::new());
                }
                let found = index
                    .k_nearest(row, k + 1)
                    .map_err(|e| format!("item-kNN query failed: {e}"))?;
                Ok(found
                    .into_iter()
                    .filter(|(_, j)| *j != i)
                    .map(|(p, j)| (j as u32, row.dot(&p)))
                    .filter(|(_, s)| *s > 0.0)
                    .take(k)
                    .collect())
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ItemKnn { neighbours })
    }

    /// Scores every item for a user who interacted with `seen` (sorted) in training.
    pub fn score(&self, seen: &[u32], out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.neighbours[i]
                .iter()
                .filter(|(j, _)| seen.binary_search(j).is_ok())
                .map(|(_, s)| s)
                .sum();
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
        let knn = ItemKnn::fit(&g, 5).unwrap();
        // cos(a, b) = 2 / (√3 · √2); c shares no user with either.
        let want = 2.0 / (3f32.sqrt() * 2f32.sqrt());
        assert_eq!(knn.neighbours[0].len(), 1);
        assert!((knn.neighbours[0][0].1 - want).abs() < 1e-6);
        let mut out = vec![0.0; 3];
        knn.score(&[0], &mut out); // a user who took a
        assert!(out[1] > 0.0 && out[2] == 0.0, "{out:?}");
    }
}
