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
//! s_ij = θ · ⟨k_i, k_j⟩                       attention logits; keys k = h (`attention: dot`)
//!                                             or k = h / |h| (`attention: cosine`)
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
//! ∂L/∂θ  = Σ_ij ds_ij ⟨k_i, k_j⟩
//! ∂L/∂k_j = θ Σ_{i: j∈N(i)} ds_ij k_i + θ Σ_{k∈N(j)} ds_jk k_k   (as key, as query)
//! ∂L/∂h_j = Σ_{i: j∈N(i)} α_ij gz_i  +  J_jᵀ ∂L/∂k_j             (as value, through the key)
//! ```
//!
//! with J = I for `dot` and, for `cosine`, J_jᵀ g = (g − ⟨g, k_j⟩ k_j) / |h_j|.
//! The sums over i run over the edges into j; the adjacency is symmetric in
//! structure, so they are row j read through `rev` (the index of the reverse edge).
//!
//! Why `cosine` exists: with raw dot products the logits grow with the embedding
//! norms, which BPR keeps growing, so the softmax sharpens onto one neighbour
//! whatever θ starts at (measured on MovieLens: validation peaks, then falls).
//! Unit keys bound the logits to [−|θ|, |θ|]: θ alone sets how far attention may
//! move a weight away from the degree normalisation (a factor of at most e^{2|θ|}).

use rayon::prelude::*;

use super::kernels::{axpy, dot, dots, exp_nonpositive, sum, weighted_sum};

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
        // Stable, so duplicates of (a, b) and of (b, a) are added in the same order
        // and c is symmetric to the bit (the backward without attention relies on it).
        directed.sort_by_key(|&(a, b, _)| (a, b));
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

/// What the attention logits compare: the layer inputs themselves or their directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    Dot,
    Cosine,
}

/// One layer's attention: its θ and its keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attend {
    pub theta: f32,
    pub keys: Keys,
}

/// What a layer keeps for its backward pass.
pub struct LayerCache {
    input: Vec<f32>,
    output: Vec<f32>,
    /// α per edge (attention only: without it α is the normalisation c).
    alpha: Vec<f32>,
    /// Softmax weights a per edge and ⟨k_i, k_j⟩ per edge (attention only).
    att: Vec<f32>,
    dots: Vec<f32>,
    /// 1 / |h_i| per node, the keys' scale (`cosine` only).
    inv: Vec<f32>,
    attend: Option<Attend>,
    /// Whether the layer adds a bias (its gradient is wanted).
    bias: bool,
}

/// Below this norm a row has no direction; its unit key is zero (no attention signal).
const MIN_NORM: f32 = 1e-12;

/// 1 / |h_i| for each row of h (0 for a row with no direction): the cosine keys
/// are k_i = h_i · inv_i, never materialised, so a layer reads each neighbour row
/// once for both its logit and its weighted sum.
pub(crate) fn inverse_norms(h: &[f32], d: usize) -> Vec<f32> {
    let mut inv = vec![0f32; h.len() / d];
    inv.par_chunks_mut(ROWS_PER_TASK)
        .zip(h.par_chunks(d * ROWS_PER_TASK))
        .for_each(|(n, rows)| {
            for (v, row) in n.iter_mut().zip(rows.chunks_exact(d)) {
                let norm = dot(row, row).sqrt();
                *v = if norm > MIN_NORM { 1.0 / norm } else { 0.0 };
            }
        });
    inv
}

/// One layer forward. `attend: None` propagates with `fixed` weights (row order,
/// one per edge), or with the plain normalisation c when `fixed` is `None`.
///
/// Each row is done whole by one task: its neighbours' logits, the softmax and
/// the weighted sum, so the neighbour rows the logits load are still in L1 when
/// the sum reads them again.
pub fn layer_forward(
    adj: &Adjacency,
    h: Vec<f32>,
    d: usize,
    attend: Option<Attend>,
    fixed: Option<&[f32]>,
    bias: Option<&[f32]>,
    act: Activation,
) -> (Vec<f32>, LayerCache) {
    let fixed = fixed.unwrap_or(&adj.norm);
    let n = adj.n;
    let mut out = vec![0f32; n * d];
    let per_edge = || match attend {
        Some(_) => vec![0f32; adj.edges()],
        None => Vec::new(),
    };
    let (mut alpha, mut att, mut dots) = (per_edge(), per_edge(), per_edge());
    let inv = match attend {
        Some(Attend {
            keys: Keys::Cosine, ..
        }) => inverse_norms(&h, d),
        _ => Vec::new(),
    };
    let blocks = row_blocks(&adj.ptr);
    let mut parts: Vec<_> = split_by(&mut alpha, &blocks)
        .into_iter()
        .zip(split_by(&mut att, &blocks))
        .zip(split_by(&mut dots, &blocks))
        .collect();
    out.par_chunks_mut(d * ROWS_PER_TASK)
        .zip(parts.par_iter_mut())
        .enumerate()
        .for_each(|(b, (chunk, ((al, at), dt)))| {
            let base = adj.ptr[b * ROWS_PER_TASK];
            for (r, o) in chunk.chunks_exact_mut(d).enumerate() {
                let i = b * ROWS_PER_TASK + r;
                let edges = adj.ptr[i]..adj.ptr[i + 1];
                let cols = &adj.col[edges.clone()];
                let local = edges.start - base..edges.end - base;
                match attend {
                    None => weighted_sum(o, cols, &fixed[edges], &h),
                    Some(a) => {
                        let al = &mut al[local.clone()];
                        softmax_row(
                            cols,
                            &adj.norm[edges],
                            &h,
                            (a.keys == Keys::Cosine).then_some(&inv[..]),
                            d,
                            i,
                            a.theta,
                            &mut dt[local.clone()],
                            &mut at[local],
                            al,
                        );
                        weighted_sum(o, cols, al, &h);
                    }
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
        inv,
        attend,
        bias: bias.is_some(),
    };
    (out, cache)
}

/// One row's attention: the key products, the softmax and α = c · |N(i)| · a.
/// `inv`: the keys are h scaled by these inverse norms (`cosine`); `None`: h itself.
#[allow(clippy::too_many_arguments)]
#[inline]
fn softmax_row(
    cols: &[u32],
    norm: &[f32],
    h: &[f32],
    inv: Option<&[f32]>,
    d: usize,
    i: usize,
    theta: f32,
    dots: &mut [f32],
    att: &mut [f32],
    alpha: &mut [f32],
) {
    if cols.is_empty() {
        return;
    }
    super::kernels::dots(&h[i * d..(i + 1) * d], cols, h, dots);
    if let Some(inv) = inv {
        for (dt, &j) in dots.iter_mut().zip(cols) {
            *dt = *dt * inv[i] * inv[j as usize];
        }
    }
    let mut max = f32::NEG_INFINITY;
    for (dt, at) in dots.iter().zip(att.iter_mut()) {
        *at = theta * *dt;
        if *at > max {
            max = *at;
        }
    }
    for at in att.iter_mut() {
        *at = exp_nonpositive(*at - max);
    }
    let z = sum(att);
    let deg = cols.len() as f32;
    for ((at, al), c) in att.iter_mut().zip(alpha.iter_mut()).zip(norm) {
        *at /= z;
        *al = c * deg * *at;
    }
}

/// The propagation weights α_ij of one row i (its neighbours j and their weight in
/// h'_i), as [`layer_forward`] computes them from the layer input `h`. This is what
/// `pedigree recommend` reads as "how much each past interaction counts" for a user.
pub fn row_weights(
    adj: &Adjacency,
    h: &[f32],
    d: usize,
    attend: Option<Attend>,
    i: usize,
) -> Vec<(u32, f32)> {
    let edges = adj.ptr[i]..adj.ptr[i + 1];
    let cols = &adj.col[edges.clone()];
    let norm = &adj.norm[edges];
    let Some(a) = attend else {
        return cols.iter().copied().zip(norm.iter().copied()).collect();
    };
    let inv = (a.keys == Keys::Cosine).then(|| inverse_norms(h, d));
    let m = cols.len();
    let (mut dots, mut att, mut alpha) = (vec![0f32; m], vec![0f32; m], vec![0f32; m]);
    softmax_row(
        cols,
        norm,
        h,
        inv.as_deref(),
        d,
        i,
        a.theta,
        &mut dots,
        &mut att,
        &mut alpha,
    );
    cols.iter().copied().zip(alpha).collect()
}

/// Gradients of one layer.
pub struct LayerGrads {
    pub input: Vec<f32>,
    pub theta: f32,
    /// Empty when the layer has no bias.
    pub bias: Vec<f32>,
}

/// One layer backward, from ∂L/∂output. Without attention, `fixed_t` holds the
/// forward's fixed weights transposed (entry e = (j, i) holds the weight of
/// (i, j)); `None` for the plain normalisation, which is symmetric.
///
/// Two passes over the edges into each row j when there is attention, one
/// without: the first reads the neighbours' gradient rows g_i once for both the
/// value term Σ α_ij g_i and the products ⟨g_i, h_j⟩ the softmax backward needs
/// (they are q_ij up to c_ij |N(i)|); the second reads the neighbours' inputs for
/// the key term.
pub fn layer_backward(
    adj: &Adjacency,
    cache: &LayerCache,
    mut g: Vec<f32>,
    d: usize,
    act: Activation,
    fixed_t: Option<&[f32]>,
) -> LayerGrads {
    let fixed_t = fixed_t.unwrap_or(&adj.norm);
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
    let mut bias = Vec::new();
    if cache.bias {
        bias = vec![0f32; d];
        for row in g.chunks_exact(d) {
            axpy(&mut bias, 1.0, row);
        }
    }
    let blocks = row_blocks(&adj.ptr);
    let mut input = vec![0f32; n * d];
    // Pass 1: the value term, and qt[e] = ⟨g_i, h_j⟩ for e = (j, i).
    let mut qt = match cache.attend {
        Some(_) => vec![0f32; adj.edges()],
        None => Vec::new(),
    };
    let mut qt_parts = split_by(&mut qt, &blocks);
    input
        .par_chunks_mut(d * ROWS_PER_TASK)
        .zip(qt_parts.par_iter_mut())
        .enumerate()
        .for_each(|(b, (chunk, qt))| {
            let base = adj.ptr[b * ROWS_PER_TASK];
            let mut w = Vec::new();
            for (r, o) in chunk.chunks_exact_mut(d).enumerate() {
                let j = b * ROWS_PER_TASK + r;
                let edges = adj.ptr[j]..adj.ptr[j + 1];
                let cols = &adj.col[edges.clone()];
                match cache.attend {
                    None => weighted_sum(o, cols, &fixed_t[edges], &g),
                    Some(_) => {
                        if cols.is_empty() {
                            continue;
                        }
                        let local = edges.start - base..edges.end - base;
                        dots(&h[j * d..(j + 1) * d], cols, &g, &mut qt[local]);
                        // Edge e = (j, i); its reverse (i, j) carries α_ij.
                        w.clear();
                        w.extend(edges.map(|e| cache.alpha[adj.rev[e] as usize]));
                        weighted_sum(o, cols, &w, &g);
                    }
                }
            }
        });
    let Some(attend) = cache.attend else {
        return LayerGrads {
            input,
            theta: 0.0,
            bias,
        };
    };
    // The softmax backward per row i: q_ik = c_ik |N(i)| ⟨g_i, h_k⟩, from qt of (k, i).
    let mut ds = vec![0f32; adj.edges()];
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
                let deg = (hi - lo) as f32;
                let mut mean = 0f32;
                for e in lo..hi {
                    let q = qt[adj.rev[e] as usize] * adj.norm[e] * deg;
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
    let theta_grad = partial.iter().sum();
    // Pass 2: the key term, as the key of (i, j) and as the query of (j, i).
    let inv = &cache.inv;
    let cosine = attend.keys == Keys::Cosine;
    let theta = attend.theta;
    input
        .par_chunks_mut(d * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(b, chunk)| {
            let mut gk = vec![0f32; d];
            let mut w = Vec::new();
            for (r, o) in chunk.chunks_exact_mut(d).enumerate() {
                let j = b * ROWS_PER_TASK + r;
                let edges = adj.ptr[j]..adj.ptr[j + 1];
                let cols = &adj.col[edges.clone()];
                w.clear();
                w.extend(edges.map(|e| {
                    let s = ds[adj.rev[e] as usize] + ds[e];
                    if cosine {
                        s * inv[adj.col[e] as usize]
                    } else {
                        s
                    }
                }));
                gk.iter_mut().for_each(|v| *v = 0.0);
                weighted_sum(&mut gk, cols, &w, h);
                let hj = &h[j * d..(j + 1) * d];
                if !cosine {
                    axpy(o, theta, &gk);
                } else if inv[j] > 0.0 {
                    // Through the normalisation k_j = h_j / |h_j|:
                    // (g − ⟨g, k_j⟩ k_j) / |h_j|.
                    let along = dot(&gk, hj) * inv[j];
                    for ((o, g), x) in o.iter_mut().zip(&gk).zip(hj) {
                        *o += theta * (g - along * (x * inv[j])) * inv[j];
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

/// `v` cut into consecutive parts of the given sizes; an empty `v` (a per-edge
/// array the layer does not need) gives empty parts.
fn split_by<'a>(mut v: &'a mut [f32], sizes: &[usize]) -> Vec<&'a mut [f32]> {
    if v.is_empty() {
        return sizes.iter().map(|_| Default::default()).collect();
    }
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
    /// What the attention logits compare (with `theta`).
    pub keys: Keys,
    /// Bias per layer (d values each); `None`: no bias.
    pub bias: Option<Vec<Vec<f32>>>,
    pub activation: Activation,
    pub layers: usize,
    /// Propagation weights held fixed in place of attention (`theta` is then
    /// ignored): see [`Frozen`].
    pub frozen: Option<std::sync::Arc<Frozen>>,
}

/// Each layer's propagation weights α, computed once by a full attention
/// forward pass and then held fixed: `attention_refresh: epoch` trains a whole
/// epoch on the weights of its start. Propagating with them gives the bits the
/// attention layers gave; their backward pass is the plain one through the
/// transposed weights, with no gradient through the attention logits.
pub struct Frozen {
    /// Per layer: α in row order, and transposed (entry e holds α of e's reverse).
    layers: Vec<(Vec<f32>, Vec<f32>)>,
}

impl std::fmt::Debug for Frozen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frozen")
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl Frozen {
    pub fn of(adj: &Adjacency, e0: &[f32], d: usize, p: &StackParams) -> Frozen {
        let p = StackParams {
            frozen: None,
            ..p.clone()
        };
        let (_, cache) = stack_forward(adj, e0, d, &p);
        let layers = cache
            .layers
            .into_iter()
            .map(|c| {
                let w = if c.attend.is_some() {
                    c.alpha
                } else {
                    adj.norm.clone()
                };
                let mut wt = vec![0f32; w.len()];
                wt.par_chunks_mut(1 << 12)
                    .enumerate()
                    .for_each(|(b, chunk)| {
                        for (k, v) in chunk.iter_mut().enumerate() {
                            *v = w[adj.rev[(b << 12) + k] as usize];
                        }
                    });
                (w, wt)
            })
            .collect();
        Frozen { layers }
    }
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
        let fixed = p.frozen.as_ref().map(|f| f.layers[l].0.as_slice());
        let attend = match fixed {
            Some(_) => None,
            None => p.theta.as_ref().map(|t| Attend {
                theta: t[l],
                keys: p.keys,
            }),
        };
        let bias = p.bias.as_ref().map(|b| b[l].as_slice());
        let (out, cache) = layer_forward(adj, h, d, attend, fixed, bias, p.activation);
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
        let fixed_t = p.frozen.as_ref().map(|f| f.layers[l].1.as_slice());
        let lg = layer_backward(adj, c, g, d, p.activation, fixed_t);
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

    const EPS: f32 = 1e-2;

    /// Σ w ⊙ (the layer combination of e): the loss the gradient checks differentiate.
    fn loss(adj: &Adjacency, e: &[f32], w: &[f32], d: usize, p: &StackParams) -> f64 {
        let (f, _) = stack_forward(adj, e, d, p);
        f.iter()
            .zip(w)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum()
    }

    /// The backward pass's ∂loss/∂e0 against central differences at `at`.
    fn assert_e0_gradient(
        adj: &Adjacency,
        e0: &[f32],
        w: &[f32],
        d: usize,
        p: &StackParams,
        at: &[usize],
        what: &str,
    ) -> StackGrads {
        let grads = stack_backward(adj, stack_forward(adj, e0, d, p).1, w, d, p);
        for &idx in at {
            let (mut plus, mut minus) = (e0.to_vec(), e0.to_vec());
            plus[idx] += EPS;
            minus[idx] -= EPS;
            let num = (loss(adj, &plus, w, d, p) - loss(adj, &minus, w, d, p)) / (2.0 * EPS as f64);
            let got = grads.e0[idx] as f64;
            assert!((num - got).abs() < 2e-3, "{what} e0[{idx}]: {num} vs {got}");
        }
        grads
    }

    /// `p` with its attention frozen at `e0`.
    fn frozen_at(adj: &Adjacency, e0: &[f32], d: usize, p: &StackParams) -> StackParams {
        StackParams {
            frozen: Some(std::sync::Arc::new(Frozen::of(adj, e0, d, p))),
            ..p.clone()
        }
    }

    #[test]
    fn row_weights_are_the_layers_alpha() {
        let adj = graph();
        let d = 3;
        let h = random(7 * d, 4);
        let attend = |theta, keys| Some(Attend { theta, keys });
        for attend in [None, attend(0.7, Keys::Dot), attend(2.0, Keys::Cosine)] {
            let (_, cache) =
                layer_forward(&adj, h.clone(), d, attend, None, None, Activation::None);
            for i in 0..adj.n {
                let row = row_weights(&adj, &h, d, attend, i);
                let want: Vec<(u32, f32)> = (adj.ptr[i]..adj.ptr[i + 1])
                    .map(|e| match attend {
                        None => (adj.col[e], adj.norm[e]),
                        Some(_) => (adj.col[e], cache.alpha[e]),
                    })
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
        let plain = layer_forward(&adj, h.clone(), d, None, None, None, Activation::None).0;
        for keys in [Keys::Dot, Keys::Cosine] {
            let attend = Some(Attend { theta: 0.0, keys });
            let zero_theta =
                layer_forward(&adj, h.clone(), d, attend, None, None, Activation::None).0;
            for (a, b) in plain.iter().zip(&zero_theta) {
                assert!((a - b).abs() < 1e-6);
            }
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
        for (attention, keys, act, bias) in [
            (false, Keys::Dot, Activation::None, false),
            (true, Keys::Dot, Activation::None, false),
            (true, Keys::Dot, Activation::Tanh, true),
            (true, Keys::Cosine, Activation::None, false),
            (true, Keys::Cosine, Activation::Tanh, true),
        ] {
            let p = StackParams {
                theta: attention.then(|| match keys {
                    Keys::Dot => vec![0.7, -0.4],
                    Keys::Cosine => vec![2.5, -1.5],
                }),
                keys,
                bias: bias.then(|| vec![vec![0.1, -0.2, 0.05, 0.0], vec![0.0; 4]]),
                activation: act,
                layers: 2,
                frozen: None,
            };
            let what = format!("{attention} {keys:?} {act:?}");
            let grads = assert_e0_gradient(&adj, &e0, &w, d, &p, &[0, 5, 13, 22], &what);
            let loss = |p: &StackParams| loss(&adj, &e0, &w, d, p);
            let eps = EPS;
            if attention {
                for l in 0..2 {
                    let mut pp = p.clone();
                    pp.theta.as_mut().unwrap()[l] += eps;
                    let mut pm = p.clone();
                    pm.theta.as_mut().unwrap()[l] -= eps;
                    let num = (loss(&pp) - loss(&pm)) / (2.0 * eps as f64);
                    let got = grads.theta[l] as f64;
                    assert!(
                        (num - got).abs() < 2e-3,
                        "{keys:?} theta[{l}]: {num} vs {got}"
                    );
                }
            }
            if bias {
                let mut pp = p.clone();
                pp.bias.as_mut().unwrap()[0][1] += eps;
                let mut pm = p.clone();
                pm.bias.as_mut().unwrap()[0][1] -= eps;
                let num = (loss(&pp) - loss(&pm)) / (2.0 * eps as f64);
                assert!((num - grads.bias[0][1] as f64).abs() < 2e-3);
            }
        }
    }

    /// Frozen weights propagate to the attention layers' bits, and their backward
    /// pass is the gradient of propagation with those weights held fixed.
    #[test]
    fn frozen_weights_reproduce_the_layers_and_their_gradient() {
        let adj = graph();
        let d = 4;
        let e0 = random(adj.n * d, 2);
        let w = random(adj.n * d, 3);
        for (keys, act, bias) in [
            (Keys::Cosine, Activation::None, false),
            (Keys::Dot, Activation::Tanh, true),
        ] {
            let p = StackParams {
                theta: Some(vec![2.5, -1.5]),
                keys,
                bias: bias.then(|| vec![vec![0.1, -0.2, 0.05, 0.0], vec![0.0; 4]]),
                activation: act,
                layers: 2,
                frozen: None,
            };
            let pf = frozen_at(&adj, &e0, d, &p);
            assert_eq!(
                stack_forward(&adj, &e0, d, &p).0,
                stack_forward(&adj, &e0, d, &pf).0
            );
            let what = format!("frozen {keys:?}");
            let frozen = assert_e0_gradient(&adj, &e0, &w, d, &pf, &[0, 5, 13, 22], &what);
            assert_eq!(frozen.theta, vec![0.0; 2]);
            // The attention's own gradient is what the frozen pass leaves out.
            let full = stack_backward(&adj, stack_forward(&adj, &e0, d, &p).1, &w, d, &p);
            assert_ne!(full.e0, frozen.e0);
        }
    }

    /// The gradients against finite differences on a graph of many ROWS_PER_TASK
    /// blocks, at nodes in the first and the last ones, so the per-block edge
    /// offsets are checked too (the small graph above is one block).
    #[test]
    fn backward_matches_finite_differences_across_blocks() {
        let mut r = Rng::new(8);
        let edges: Vec<(u32, u32, f32)> = (0..900)
            .map(|_| (r.below(120) as u32, 120 + r.below(180) as u32, 1.0))
            .collect();
        let adj = Adjacency::from_edges(300, &edges);
        let d = 3;
        let e0 = random(adj.n * d, 5);
        let w = random(adj.n * d, 6);
        let p = StackParams {
            theta: Some(vec![2.0, -1.0]),
            keys: Keys::Cosine,
            bias: None,
            activation: Activation::None,
            layers: 2,
            frozen: None,
        };
        let pf = frozen_at(&adj, &e0, d, &p);
        // Nodes in the first, middle and last blocks.
        let at: Vec<usize> = [3, 70, 150, 230, 299].map(|node| node * d + 1).to_vec();
        for p in [&p, &pf] {
            let what = format!("frozen {}", p.frozen.is_some());
            assert_e0_gradient(&adj, &e0, &w, d, p, &at, &what);
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // Enough rows for many ROWS_PER_TASK blocks, so threads really split the work.
        let mut r = Rng::new(7);
        let edges: Vec<(u32, u32, f32)> = (0..3000)
            .map(|_| (r.below(300) as u32, 300 + r.below(400) as u32, 1.0))
            .collect();
        let adj = Adjacency::from_edges(700, &edges);
        let d = 8;
        let e0 = random(adj.n * d, 4);
        // `frozen`: weights built by Frozen::of and used, under the same thread count.
        let run = |threads, keys, frozen: bool| {
            let p = StackParams {
                theta: Some(vec![1.0, 1.0]),
                keys,
                bias: None,
                activation: Activation::None,
                layers: 2,
                frozen: None,
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let p = if frozen {
                    frozen_at(&adj, &e0, d, &p)
                } else {
                    p.clone()
                };
                let (f, c) = stack_forward(&adj, &e0, d, &p);
                let g = stack_backward(&adj, c, &f, d, &p);
                (f, g.e0, g.theta)
            })
        };
        for keys in [Keys::Dot, Keys::Cosine] {
            for frozen in [false, true] {
                assert_eq!(
                    run(1, keys, frozen),
                    run(3, keys, frozen),
                    "{keys:?}, frozen {frozen}"
                );
            }
        }
    }
}
