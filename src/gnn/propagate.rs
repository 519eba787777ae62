//! Graph propagation with its own backward pass: the custom differentiable
//! operation at the heart of GNN-R.
//!
//! burn 0.22 has no sparse tensors, and the edge-list form through its dense ops
//! (`select` + `select_assign`) is a single-threaded scatter on the ndarray
//! backend; a dense adjacency (N² floats, N² · d multiply-adds per layer) is worse
//! still at MovieLens scale. So one layer is written here over a CSR adjacency,
//! forward and backward, parallel over output rows with rayon. Every output row
//! is computed by one task in a fixed order, so the results are bit-identical for
//! any number of threads.
//!
//! One layer, for node i with neighbours N(i):
//!
//! ```text
//! s_ij = θ · ⟨h_i, h_j⟩                       attention logits (`attention: dot`)
//! a_ij = exp(s_ij) / Σ_k∈N(i) exp(s_ik)         softmax over the neighbourhood
//! α_ij = c_ij · |N(i)| · a_ij                   c_ij = w_ij / √(d_i d_j), weighted degrees
//! h'_i = σ(Σ_j α_ij h_j + b)
//! ```
//!
//! With θ = 0 (or `attention: none`) the softmax is uniform, α_ij = c_ij, and the
//! layer is LightGCN's symmetric-normalised propagation. Attention therefore
//! re-weights neighbours around the degree normalisation instead of replacing it.
//!
//! The backward pass, for g = ∂L/∂h' and z the pre-activation:
//!
//! ```text
//! gz_i   = g_i ⊙ σ'(z_i)                  ∂L/∂b = Σ_i gz_i
//! q_ij   = c_ij |N(i)| ⟨gz_i, h_j⟩        ∂L/∂a_ij
//! ds_ij  = a_ij (q_ij − Σ_k a_ik q_ik)     softmax backward
//! ∂L/∂θ  = Σ_ij ds_ij ⟨h_i, h_j⟩
//! ∂L/∂h_j = Σ_{i: j∈N(i)} (α_ij gz_i + θ ds_ij h_i)   (as value and as key)
//!         + θ Σ_{k∈N(j)} ds_jk h_k                      (as query)
//! ```
//!
//! The first sum runs over the edges into j; the adjacency is symmetric in
//! structure, so it is row j read through `rev` (the index of the reverse edge).

use rayon::prelude::*;

/// Rows handed to one rayon task; large enough to amortise scheduling.
const ROWS_PER_TASK: usize = 64;

/// A symmetric-structured sparse adjacency in CSR form with degree normalisation.
#[derive(Debug, Clone)]
pub struct Adjacency {
    pub n: usize,
    pub ptr: Vec<usize>,
    pub col: Vec<u32>,
    /// c_e = w_ij / √(d_i d_j) with weighted degrees d.
    pub norm: Vec<f32>,
    /// For edge e = (i, j): the index of (j, i).
    pub rev: Vec<u32>,
}

impl Adjacency {
    /// From undirected weighted edges (each given once; both directions are added).
    /// Duplicate edges are merged by adding their weights.
    pub fn from_edges(n: usize, edges: &[(u32, u32, f32)]) -> Adjacency {
        let mut directed: Vec<(u32, u32, f32)> = Vec::with_capacity(edges.len() * 2);
        for &(a, b, w) in edges {
            if a != b && w > 0.0 {
                directed.push((a, b, w));
                directed.push((b, a, w));
            }
        }
        directed.sort_unstable_by_key(|&(a, b, _)| (a, b));
        let mut merged: Vec<(u32, u32, f32)> = Vec::with_capacity(directed.len());
        for (a, b, w) in directed {
            match merged.last_mut() {
                Some(last) if last.0 == a && last.1 == b => last.2 += w,
                _ => merged.push((a, b, w)),
            }
        }
        let mut deg = vec![0f64; n];
        let mut ptr = vec![0usize; n + 1];
        for &(a, _, w) in &merged {
            deg[a as usize] += w as f64;
            ptr[a as usize + 1] += 1;
        }
        for i in 0..n {
            ptr[i + 1] += ptr[i];
        }
        let col: Vec<u32> = merged.iter().map(|e| e.1).collect();
        let norm: Vec<f32> = merged
            .iter()
            .map(|&(a, b, w)| (w as f64 / (deg[a as usize] * deg[b as usize]).sqrt()) as f32)
            .collect();
        let mut rev = vec![0u32; merged.len()];
        for i in 0..n {
            for e in ptr[i]..ptr[i + 1] {
                let j = col[e] as usize;
                let row = &col[ptr[j]..ptr[j + 1]];
                let k = row
                    .binary_search(&(i as u32))
                    .expect("the adjacency is symmetric by construction");
                rev[e] = (ptr[j] + k) as u32;
            }
        }
        Adjacency {
            n,
            ptr,
            col,
            norm,
            rev,
        }
    }

    pub fn edges(&self) -> usize {
        self.col.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    Tanh,
}

/// What a layer keeps for its backward pass.
pub struct LayerCache {
    input: Vec<f32>,
    output: Vec<f32>,
    /// α per edge.
    alpha: Vec<f32>,
    /// Softmax weights a per edge and ⟨h_i, h_j⟩ per edge (attention only).
    att: Vec<f32>,
    dots: Vec<f32>,
    theta: Option<f32>,
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators: vectorises, and the order is fixed.
    let mut acc = [0f32; 8];
    let (ca, ra) = a.split_at(a.len() - a.len() % 8);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(8).zip(cb.chunks_exact(8)) {
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline]
fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// One layer forward. `theta: None` is plain normalised propagation.
pub fn layer_forward(
    adj: &Adjacency,
    h: Vec<f32>,
    d: usize,
    theta: Option<f32>,
    bias: Option<&[f32]>,
    act: Activation,
) -> (Vec<f32>, LayerCache) {
    let n = adj.n;
    let mut out = vec![0f32; n * d];
    let mut alpha = vec![0f32; adj.edges()];
    let (mut att, mut dots) = match theta {
        Some(_) => (vec![0f32; adj.edges()], vec![0f32; adj.edges()]),
        None => (Vec::new(), Vec::new()),
    };
    // Per-edge weights first (parallel over rows, each row's edges by one task)...
    match theta {
        None => alpha.copy_from_slice(&adj.norm),
        Some(t) => {
            let ptr = &adj.ptr;
            // Split the edge arrays at row boundaries of ROWS_PER_TASK-row blocks.
            let blocks = row_blocks(ptr);
            let mut a_parts = split_by(&mut alpha, &blocks);
            let mut s_parts = split_by(&mut att, &blocks);
            let mut d_parts = split_by(&mut dots, &blocks);
            a_parts
                .par_iter_mut()
                .zip(s_parts.par_iter_mut())
                .zip(d_parts.par_iter_mut())
                .enumerate()
                .for_each(|(b, ((al, at), dt))| {
                    let rows = b * ROWS_PER_TASK..((b + 1) * ROWS_PER_TASK).min(n);
                    let base = ptr[rows.start];
                    for i in rows {
                        let (lo, hi) = (ptr[i] - base, ptr[i + 1] - base);
                        if lo == hi {
                            continue;
                        }
                        let hi_row = &h[i * d..(i + 1) * d];
                        let mut max = f32::NEG_INFINITY;
                        for e in lo..hi {
                            let j = adj.col[base + e] as usize;
                            let s = dot(hi_row, &h[j * d..(j + 1) * d]);
                            dt[e] = s;
                            at[e] = t * s;
                            max = max.max(t * s);
                        }
                        let mut z = 0f32;
                        for e in lo..hi {
                            at[e] = (at[e] - max).exp();
                            z += at[e];
                        }
                        let deg = (hi - lo) as f32;
                        for e in lo..hi {
                            at[e] /= z;
                            al[e] = adj.norm[base + e] * deg * at[e];
                        }
                    }
                });
        }
    }
    // ...then the weighted sums.
    out.par_chunks_mut(d * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(b, chunk)| {
            for (r, o) in chunk.chunks_exact_mut(d).enumerate() {
                let i = b * ROWS_PER_TASK + r;
                let edges = adj.ptr[i]..adj.ptr[i + 1];
                for (&j, &a) in adj.col[edges.clone()].iter().zip(&alpha[edges]) {
                    let j = j as usize;
                    axpy(o, a, &h[j * d..(j + 1) * d]);
                }
                if let Some(bias) = bias {
                    axpy(o, 1.0, bias);
                }
                if act == Activation::Tanh {
                    o.iter_mut().for_each(|v| *v = v.tanh());
                }
            }
        });
    let cache = LayerCache {
        input: h,
        output: if act == Activation::Tanh {
            out.clone()
        } else {
            Vec::new()
        },
        alpha,
        att,
        dots,
        theta,
    };
    (out, cache)
}

/// The propagation weights α_ij of one row i (its neighbours j and their weight in
/// h'_i), as [`layer_forward`] computes them from the layer input `h`. This is what
/// `pedigree recommend` reads as "how much each past interaction counts" for a user.
pub fn row_weights(
    adj: &Adjacency,
    h: &[f32],
    d: usize,
    theta: Option<f32>,
    i: usize,
) -> Vec<(u32, f32)> {
    let edges = adj.ptr[i]..adj.ptr[i + 1];
    let cols = &adj.col[edges.clone()];
    let norm = &adj.norm[edges];
    let Some(t) = theta else {
        return cols.iter().copied().zip(norm.iter().copied()).collect();
    };
    let hi = &h[i * d..(i + 1) * d];
    let logits: Vec<f32> = cols
        .iter()
        .map(|&j| t * dot(hi, &h[j as usize * d..(j as usize + 1) * d]))
        .collect();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|s| (s - max).exp()).collect();
    let z: f32 = exps.iter().sum();
    let deg = cols.len() as f32;
    cols.iter()
        .zip(norm)
        .zip(&exps)
        .map(|((&j, &c), &a)| (j, c * deg * (a / z)))
        .collect()
}

/// Gradients of one layer.
pub struct LayerGrads {
    pub input: Vec<f32>,
    pub theta: f32,
    pub bias: Vec<f32>,
}

/// One layer backward, from ∂L/∂output.
pub fn layer_backward(
    adj: &Adjacency,
    cache: &LayerCache,
    mut g: Vec<f32>,
    d: usize,
    act: Activation,
) -> LayerGrads {
    let n = adj.n;
    let h = &cache.input;
    if act == Activation::Tanh {
        g.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(cache.output.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(gc, yc)| {
                for (gv, y) in gc.iter_mut().zip(yc) {
                    *gv *= 1.0 - y * y;
                }
            });
    }
    // ∂L/∂b: column sums in row order (sequential, so the order is fixed).
    let mut bias = vec![0f32; d];
    for row in g.chunks_exact(d) {
        axpy(&mut bias, 1.0, row);
    }
    // Softmax backward per edge (attention only).
    let mut ds = Vec::new();
    let mut theta_grad = 0f32;
    if cache.theta.is_some() {
        ds = vec![0f32; adj.edges()];
        let blocks = row_blocks(&adj.ptr);
        let mut parts = split_by(&mut ds, &blocks);
        let partial: Vec<f32> = parts
            .par_iter_mut()
            .enumerate()
            .map(|(b, dsp)| {
                let rows = b * ROWS_PER_TASK..((b + 1) * ROWS_PER_TASK).min(n);
                let base = adj.ptr[rows.start];
                let mut tg = 0f32;
                for i in rows {
                    let (lo, hi) = (adj.ptr[i], adj.ptr[i + 1]);
                    if lo == hi {
                        continue;
                    }
                    let gi = &g[i * d..(i + 1) * d];
                    let deg = (hi - lo) as f32;
                    let mut mean = 0f32;
                    for e in lo..hi {
                        let j = adj.col[e] as usize;
                        let q = adj.norm[e] * deg * dot(gi, &h[j * d..(j + 1) * d]);
                        dsp[e - base] = q;
                        mean += cache.att[e] * q;
                    }
                    for e in lo..hi {
                        let v = cache.att[e] * (dsp[e - base] - mean);
                        dsp[e - base] = v;
                        tg += v * cache.dots[e];
                    }
                }
                tg
            })
            .collect();
        // Block partial sums in block order: fixed regardless of threads.
        theta_grad = partial.iter().sum();
    }
    let mut input = vec![0f32; n * d];
    input
        .par_chunks_mut(d * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(b, chunk)| {
            for (r, o) in chunk.chunks_exact_mut(d).enumerate() {
                let j = b * ROWS_PER_TASK + r;
                for e in adj.ptr[j]..adj.ptr[j + 1] {
                    // Edge e = (j, i); its reverse (i, j) carries α_ij and ds_ij.
                    let i = adj.col[e] as usize;
                    let er = adj.rev[e] as usize;
                    axpy(o, cache.alpha[er], &g[i * d..(i + 1) * d]);
                    if let Some(t) = cache.theta {
                        let hi = &h[i * d..(i + 1) * d];
                        axpy(o, t * ds[er], hi);
                        // As the query: ds_jk h_k with k = i here.
                        axpy(o, t * ds[e], hi);
                    }
                }
            }
        });
    LayerGrads {
        input,
        theta: theta_grad,
        bias,
    }
}

/// Edge offsets of each ROWS_PER_TASK-row block.
fn row_blocks(ptr: &[usize]) -> Vec<usize> {
    let n = ptr.len() - 1;
    (0..n.div_ceil(ROWS_PER_TASK))
        .map(|b| ptr[((b + 1) * ROWS_PER_TASK).min(n)] - ptr[b * ROWS_PER_TASK])
        .collect()
}

fn split_by<'a>(mut v: &'a mut [f32], sizes: &[usize]) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(sizes.len());
    for &s in sizes {
        let (a, b) = v.split_at_mut(s);
        out.push(a);
        v = b;
    }
    out
}

/// The layer stack's per-layer settings.
#[derive(Debug, Clone)]
pub struct StackParams {
    /// θ per layer; `None`: no attention.
    pub theta: Option<Vec<f32>>,
    /// Bias per layer (d values each); `None`: no bias.
    pub bias: Option<Vec<Vec<f32>>>,
    pub activation: Activation,
    pub layers: usize,
}

pub struct StackCache {
    layers: Vec<LayerCache>,
}

/// Runs L layers and returns the layer combination (mean of layers 0..=L).
pub fn stack_forward(
    adj: &Adjacency,
    e0: &[f32],
    d: usize,
    p: &StackParams,
) -> (Vec<f32>, StackCache) {
    let mut acc = e0.to_vec();
    let mut h = e0.to_vec();
    let mut caches = Vec::with_capacity(p.layers);
    for l in 0..p.layers {
        let theta = p.theta.as_ref().map(|t| t[l]);
        let bias = p.bias.as_ref().map(|b| b[l].as_slice());
        let (out, cache) = layer_forward(adj, h, d, theta, bias, p.activation);
        acc.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(out.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(a, o)| axpy(a, 1.0, o));
        h = out;
        caches.push(cache);
    }
    let scale = 1.0 / (p.layers as f32 + 1.0);
    if p.layers > 0 {
        acc.par_chunks_mut(d * ROWS_PER_TASK)
            .for_each(|a| a.iter_mut().for_each(|v| *v *= scale));
    }
    (acc, StackCache { layers: caches })
}

pub struct StackGrads {
    pub e0: Vec<f32>,
    pub theta: Vec<f32>,
    pub bias: Vec<Vec<f32>>,
}

/// ∂L/∂(e0, θ, b) from ∂L/∂(layer combination).
pub fn stack_backward(
    adj: &Adjacency,
    cache: StackCache,
    d_final: &[f32],
    d: usize,
    p: &StackParams,
) -> StackGrads {
    let scale = 1.0 / (p.layers as f32 + 1.0);
    let scaled: Vec<f32> = if p.layers > 0 {
        d_final.par_iter().map(|v| v * scale).collect()
    } else {
        d_final.to_vec()
    };
    let mut theta = vec![0f32; p.layers];
    let mut bias = vec![Vec::new(); p.layers];
    let mut g = scaled.clone();
    for (l, c) in cache.layers.iter().enumerate().rev() {
        let lg = layer_backward(adj, c, g, d, p.activation);
        theta[l] = lg.theta;
        bias[l] = lg.bias;
        g = lg.input;
        g.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(scaled.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(a, s)| axpy(a, 1.0, s));
    }
    StackGrads { e0: g, theta, bias }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gnn::rng::Rng;

    fn graph() -> Adjacency {
        // A small bipartite graph plus one weighted edge and an isolated node (6).
        let edges = [
            (0, 3, 1.0),
            (0, 4, 2.0),
            (1, 3, 1.0),
            (1, 5, 1.0),
            (2, 4, 1.0),
            (2, 5, 3.0),
            (0, 5, 1.0),
        ];
        Adjacency::from_edges(7, &edges)
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| r.normal() as f32 * 0.5).collect()
    }

    #[test]
    fn row_weights_are_the_layers_alpha() {
        let adj = graph();
        let d = 3;
        let h = random(7 * d, 4);
        for theta in [None, Some(0.7)] {
            let (_, cache) = layer_forward(&adj, h.clone(), d, theta, None, Activation::None);
            for i in 0..adj.n {
                let row = row_weights(&adj, &h, d, theta, i);
                let want: Vec<(u32, f32)> = (adj.ptr[i]..adj.ptr[i + 1])
                    .map(|e| (adj.col[e], cache.alpha[e]))
                    .collect();
                assert_eq!(row.len(), want.len());
                for ((j, a), (wj, wa)) in row.iter().zip(&want) {
                    assert_eq!(j, wj);
                    assert!((a - wa).abs() < 1e-6, "row {i}: {a} vs {wa}");
                }
            }
        }
    }

    #[test]
    fn uniform_attention_is_symmetric_normalisation() {
        let adj = graph();
        let d = 3;
        let h = random(7 * d, 1);
        let plain = layer_forward(&adj, h.clone(), d, None, None, Activation::None).0;
        let zero_theta = layer_forward(&adj, h.clone(), d, Some(0.0), None, Activation::None).0;
        for (a, b) in plain.iter().zip(&zero_theta) {
            assert!((a - b).abs() < 1e-6);
        }
        // Node 0: neighbours 3 (w1), 4 (w2), 5 (w1); weighted degrees d0=4, d3=2, d4=3, d5=5.
        let want: Vec<f32> = (0..d)
            .map(|k| {
                h[3 * d + k] / (4f32 * 2.0).sqrt()
                    + 2.0 * h[4 * d + k] / (4f32 * 3.0).sqrt()
                    + h[5 * d + k] / (4f32 * 5.0).sqrt()
            })
            .collect();
        for k in 0..d {
            assert!((plain[k] - want[k]).abs() < 1e-6, "{plain:?} {want:?}");
        }
        assert!(plain[6 * d..].iter().all(|v| *v == 0.0));
    }

    /// The analytic gradients against central finite differences of a scalar loss.
    #[test]
    fn backward_matches_finite_differences() {
        let adj = graph();
        let d = 4;
        let n = adj.n;
        let e0 = random(n * d, 2);
        let w = random(n * d, 3); // loss = Σ w ⊙ final
        for (attention, act, bias) in [
            (false, Activation::None, false),
            (true, Activation::None, false),
            (true, Activation::Tanh, true),
        ] {
            let p = StackParams {
                theta: attention.then(|| vec![0.7, -0.4]),
                bias: bias.then(|| vec![vec![0.1, -0.2, 0.05, 0.0], vec![0.0; 4]]),
                activation: act,
                layers: 2,
            };
            let loss = |e: &[f32], p: &StackParams| -> f64 {
                let (f, _) = stack_forward(&adj, e, d, p);
                f.iter()
                    .zip(&w)
                    .map(|(a, b)| (*a as f64) * (*b as f64))
                    .sum()
            };
            let (_, cache) = stack_forward(&adj, &e0, d, &p);
            let grads = stack_backward(&adj, cache, &w, d, &p);
            let eps = 1e-2f32;
            for idx in [0, 5, 13, 22] {
                let mut plus = e0.clone();
                plus[idx] += eps;
                let mut minus = e0.clone();
                minus[idx] -= eps;
                let num = (loss(&plus, &p) - loss(&minus, &p)) / (2.0 * eps as f64);
                let got = grads.e0[idx] as f64;
                assert!(
                    (num - got).abs() < 2e-3,
                    "{attention} {act:?} e0[{idx}]: {num} vs {got}"
                );
            }
            if attention {
                for l in 0..2 {
                    let mut pp = p.clone();
                    pp.theta.as_mut().unwrap()[l] += eps;
                    let mut pm = p.clone();
                    pm.theta.as_mut().unwrap()[l] -= eps;
                    let num = (loss(&e0, &pp) - loss(&e0, &pm)) / (2.0 * eps as f64);
                    let got = grads.theta[l] as f64;
                    assert!((num - got).abs() < 2e-3, "theta[{l}]: {num} vs {got}");
                }
            }
            if bias {
                let mut pp = p.clone();
                pp.bias.as_mut().unwrap()[0][1] += eps;
                let mut pm = p.clone();
                pm.bias.as_mut().unwrap()[0][1] -= eps;
                let num = (loss(&e0, &pp) - loss(&e0, &pm)) / (2.0 * eps as f64);
                assert!((num - grads.bias[0][1] as f64).abs() < 2e-3);
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let adj = graph();
        let d = 8;
        let e0 = random(adj.n * d, 4);
        let p = StackParams {
            theta: Some(vec![1.0, 1.0]),
            bias: None,
            activation: Activation::None,
            layers: 2,
        };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (f, c) = stack_forward(&adj, &e0, d, &p);
                let g = stack_backward(&adj, c, &f, d, &p);
                (f, g.e0, g.theta)
            })
        };
        assert_eq!(run(1), run(3));
    }
}
