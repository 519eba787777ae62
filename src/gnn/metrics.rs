//! Full-ranking evaluation: every user is scored against every item, the items
//! the user interacted with in training (and, for test, validation) are masked,
//! and the top K are compared with the held-out items.
//!
//! Per user with at least one held-out item, then averaged over those users:
//!
//! - Recall@K = hits in the top K / held-out items
//! - Precision@K = hits in the top K / K
//! - Hit@K = 1 if any held-out item is in the top K
//! - NDCG@K = Σ_{hit at rank r} 1/log2(r+1) / Σ_{r ≤ min(K, held-out)} 1/log2(r+1)
//! - MRR@K = 1 / rank of the first hit in the top K (0 without one)
//!
//! Coverage@K is the share of the catalogue that appears in at least one user's
//! top K. Ties in scores are broken by the lower item index, so rankings (and
//! metrics) are deterministic.

use std::collections::BTreeMap;

use rayon::prelude::*;

/// Metric name (`ndcg@20`, `coverage@10`, …) → value.
pub type Metrics = BTreeMap<String, f64>;

/// The `k` highest-scoring items not in `exclude` (sorted), best first.
pub fn top_k(scores: &[f32], exclude: &[u32], k: usize) -> Vec<u32> {
    let mut cand: Vec<u32> = Vec::with_capacity(k + 1);
    // A bounded insertion list beats a heap for K ≤ 100 and keeps ties ordered.
    let better = |a: u32, b: u32| {
        let (sa, sb) = (scores[a as usize], scores[b as usize]);
        sa > sb || (sa == sb && a < b)
    };
    let mut ex = exclude.iter().peekable();
    for i in 0..scores.len() as u32 {
        while ex.peek().is_some_and(|&&e| e < i) {
            ex.next();
        }
        if ex.peek() == Some(&&i) || scores[i as usize].is_nan() {
            continue;
        }
        if cand.len() == k && !better(i, cand[k - 1]) {
            continue;
        }
        let pos = cand.partition_point(|&c| better(c, i));
        cand.insert(pos, i);
        cand.truncate(k);
    }
    cand
}

/// Ranks every user and computes the metrics at each K.
///
/// `score(u, out)` writes user u's score for every item into `out`; `exclude[u]`
/// and `target[u]` are sorted item lists.
pub fn evaluate<F>(
    n_users: usize,
    n_items: usize,
    score: F,
    exclude: &[Vec<u32>],
    target: &[Vec<u32>],
    ks: &[usize],
) -> Metrics
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let kmax = ks.iter().copied().max().unwrap_or(0).min(n_items);
    let tops: Vec<Option<Vec<u32>>> = (0..n_users)
        .into_par_iter()
        .map_init(
            || vec![0f32; n_items],
            |buf, u| {
                if target[u].is_empty() {
                    return None;
                }
                score(u, buf);
                Some(top_k(buf, &exclude[u], kmax))
            },
        )
        .collect();
    let mut out = Metrics::new();
    let evaluated = tops.iter().filter(|t| t.is_some()).count();
    out.insert("users".into(), evaluated as f64);
    for &k in ks {
        let (mut recall, mut precision, mut hit, mut ndcg, mut mrr) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut covered = vec![false; n_items];
        for (u, top) in tops.iter().enumerate() {
            let Some(top) = top else { continue };
            let top = &top[..k.min(top.len())];
            let t = &target[u];
            let (mut hits, mut dcg, mut first) = (0usize, 0.0f64, None);
            for (r, item) in top.iter().enumerate() {
                covered[*item as usize] = true;
                if t.binary_search(item).is_ok() {
                    hits += 1;
                    dcg += 1.0 / ((r + 2) as f64).log2();
                    first.get_or_insert(r + 1);
                }
            }
            let idcg: f64 = (0..t.len().min(k))
                .map(|r| 1.0 / ((r + 2) as f64).log2())
                .sum();
            recall += hits as f64 / t.len() as f64;
            precision += hits as f64 / k as f64;
            hit += f64::from(u8::from(hits > 0));
            ndcg += dcg / idcg;
            mrr += first.map_or(0.0, |r| 1.0 / r as f64);
        }
        let n = evaluated.max(1) as f64;
        out.insert(format!("recall@{k}"), recall / n);
        out.insert(format!("precision@{k}"), precision / n);
        out.insert(format!("hit@{k}"), hit / n);
        out.insert(format!("ndcg@{k}"), ndcg / n);
        out.insert(format!("mrr@{k}"), mrr / n);
        let cov = covered.iter().filter(|c| **c).count();
        out.insert(format!("coverage@{k}"), cov as f64 / n_items.max(1) as f64);
    }
    out
}

/// Scores from embeddings: ⟨user u, item i⟩ for every i (items row-major, `d` wide).
pub fn dot_scores(user: &[f32], items: &[f32], d: usize, out: &mut [f32]) {
    for (o, item) in out.iter_mut().zip(items.chunks_exact(d)) {
        *o = super::kernels::dot(user, item);
    }
}

/// Merges sorted lists (masks of train + valid).
pub fn union(a: &[Vec<u32>], b: &[Vec<u32>]) -> Vec<Vec<u32>> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let mut v: Vec<u32> = x.iter().chain(y).copied().collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_masks_and_breaks_ties_by_index() {
        let s = [0.5, 0.9, 0.9, 0.1, 0.7];
        assert_eq!(top_k(&s, &[], 3), [1, 2, 4]);
        assert_eq!(top_k(&s, &[1, 4], 3), [2, 0, 3]);
        assert_eq!(top_k(&s, &[], 10), [1, 2, 4, 0, 3]);
    }

    #[test]
    fn metrics_match_hand_computed_values() {
        // 2 users, 5 items. Fixed scores: user 0 ranks 0>1>2>3>4, user 1 ranks 4>3>2>1>0.
        let score = |u: usize, out: &mut [f32]| {
            for (i, o) in out.iter_mut().enumerate() {
                *o = if u == 0 { -(i as f32) } else { i as f32 };
            }
        };
        // User 0: item 0 masked (train) → ranking 1,2,3,4; targets {2, 4}.
        // User 1: nothing masked → ranking 4,3,2,1,0; target {0}.
        let exclude = vec![vec![0], vec![]];
        let target = vec![vec![2, 4], vec![0]];
        let m = evaluate(2, 5, score, &exclude, &target, &[2, 4]);
        let l2 = |r: f64| 1.0 / (r + 1.0).log2();
        // @2: user 0 top [1,2]: hit at rank 2. user 1 top [4,3]: none.
        assert!((m["recall@2"] - (0.5 + 0.0) / 2.0).abs() < 1e-12);
        assert!((m["precision@2"] - (0.5 + 0.0) / 2.0).abs() < 1e-12);
        assert!((m["hit@2"] - 0.5).abs() < 1e-12);
        assert!((m["ndcg@2"] - (l2(2.0) / (l2(1.0) + l2(2.0))) / 2.0).abs() < 1e-12);
        assert!((m["mrr@2"] - (0.5 + 0.0) / 2.0).abs() < 1e-12);
        // @4: user 0 top [1,2,3,4]: hits at 2 and 4. user 1 top [4,3,2,1]: none.
        let ndcg0 = (l2(2.0) + l2(4.0)) / (l2(1.0) + l2(2.0));
        assert!((m["ndcg@4"] - ndcg0 / 2.0).abs() < 1e-12);
        assert!((m["recall@4"] - 0.5).abs() < 1e-12);
        assert!((m["coverage@2"] - 4.0 / 5.0).abs() < 1e-12); // items 1,2,4,3
        // Item 0 is in no top 4 (masked for user 0, ranked last by user 1).
        assert!((m["coverage@4"] - 4.0 / 5.0).abs() < 1e-12);
        assert_eq!(m["users"], 2.0);
    }
}
