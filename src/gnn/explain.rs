//! Recommendations with their reasons: the top items for a user and, for each,
//! the user's past interactions that contributed most.
//!
//! A user's final embedding is the mean of its layers, and its first layer is
//! Σ_j α_uj h_j over the items it interacted with in training, where α_uj is the
//! propagation weight (degree normalisation × the neighbourhood softmax of
//! θ·cos(h_u, h_j) with `attention: cosine`, of θ·⟨h_u, h_j⟩ with `attention:
//! dot`; the degree normalisation alone with `attention: none`). The contribution of past item j to recommended item i is
//! α_uj · ⟨z_j, z_i⟩, with z the final item embeddings: how much the user
//! attends to j, times how close j is to i. Only training interactions are
//! edges of the graph, so only they can be reasons; every item the user has
//! interacted with (in any split) is excluded from the recommendations.

use super::graph::{Graph, TRAIN};
use super::kernels::dot;
use super::metrics::{dot_scores, top_k};
use super::model::{self, LoadedModel};
use super::propagate::{Attend, row_weights};
use super::train::adjacency;

/// One past interaction behind a recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// Item index of the past interaction.
    pub item: u32,
    /// The propagation weight α of the user's edge to it.
    pub attention: f32,
    /// α · ⟨z_past, z_recommended⟩.
    pub contribution: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub item: u32,
    pub score: f32,
    /// Best first.
    pub reasons: Vec<Reason>,
}

/// Top `k` items for user index `u` with up to `reasons` reasons each.
pub fn recommend(
    model: &LoadedModel,
    graph: &Graph,
    u: usize,
    k: usize,
    reasons: usize,
) -> Result<Vec<Recommendation>, String> {
    let meta = &model.meta;
    if meta.users != graph.users || meta.items != graph.items {
        return Err("the model's node index does not match the graph it names".into());
    }
    let d = meta.config.dim;
    let nu = graph.n_users();
    let items = model.items();
    let mut scores = vec![0f32; graph.n_items()];
    dot_scores(model.user(u), items, d, &mut scores);
    let mut seen: Vec<u32> = (0..graph.interactions.len())
        .filter(|&x| graph.interactions.user[x] as usize == u)
        .map(|x| graph.interactions.item[x])
        .collect();
    seen.sort_unstable();
    seen.dedup();
    let top = top_k(&scores, &seen, k);

    // The user's training edges and their first-layer weights.
    let train: Vec<u32> = {
        let mut t: Vec<u32> = (0..graph.interactions.len())
            .filter(|&x| {
                graph.interactions.user[x] as usize == u && graph.interactions.split[x] == TRAIN
            })
            .map(|x| graph.interactions.item[x])
            .collect();
        t.sort_unstable();
        t
    };
    let weights: Vec<(u32, f32)> = if meta.config.layers == 0 {
        // BPR-MF has no propagation: every past item counts the same.
        train.iter().map(|&j| (j, 1.0)).collect()
    } else {
        let adj = adjacency(graph, &meta.config);
        let e0 = model::values(model.module.embedding.val());
        let attend = meta.config.attention.keys().map(|keys| Attend {
            theta: model::values(model.module.theta.val())[0],
            keys,
        });
        row_weights(&adj, &e0, d, attend, u)
            .into_iter()
            .filter(|&(j, _)| (j as usize) >= nu && (j as usize) < nu + graph.n_items())
            .map(|(j, a)| (j - nu as u32, a))
            .collect()
    };
    let item = |i: u32| &items[i as usize * d..(i as usize + 1) * d];
    Ok(top
        .into_iter()
        .map(|i| {
            let mut rs: Vec<Reason> = weights
                .iter()
                .map(|&(j, a)| Reason {
                    item: j,
                    attention: a,
                    contribution: a * dot(item(j), item(i)),
                })
                .collect();
            rs.sort_by(|a, b| {
                b.contribution
                    .total_cmp(&a.contribution)
                    .then(a.item.cmp(&b.item))
            });
            rs.truncate(reasons);
            Recommendation {
                item: i,
                score: scores[i as usize],
                reasons: rs,
            }
        })
        .collect())
}
