//! Training GNN-R (and BPR-MF, the same trainer with no layers): BPR loss with
//! one sampled negative per training pair, L2 on the batch's ego embeddings,
//! Adam, per-epoch validation with full ranking and early stopping.
//!
//! How the work is split between burn and [`propagate`](super::propagate):
//! burn holds the parameters (a [`GnnR`] module on the ndarray backend), computes
//! the loss and its gradient with respect to the propagated embeddings and the
//! L2 term on the autodiff device, and runs Adam. The propagation is a custom
//! operation outside burn's tape: its forward gives the propagated embeddings
//! (entered into the tape as a leaf), and after `backward` its own backward
//! pass maps the leaf's gradient to the ego embeddings, θ and the biases, which
//! join the L2 gradient in the `GradientsParams` handed to Adam. This is the
//! chain rule of a custom autodiff op, joined at the boundary, without burn's
//! backend-extension machinery (its custom backward needs a proc-macro backend
//! extension with a hand-written `Autodiff<B, C>` implementation).
//!
//! With `attention_refresh: epoch` (the default) each epoch starts with one full
//! attention forward pass whose per-layer weights ([`Frozen`]) the epoch's
//! batches then propagate with, forward and backward, as fixed weights; with
//! `batch` every batch runs the attention layers and their backward.
//!
//! Determinism: the random streams are [`Rng`] streams of the seed; the
//! propagation is thread-count independent; burn's ndarray ops are deterministic
//! for a given thread count. Same seed, data and threads: bit-identical weights.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::softplus;
use burn::tensor::{Device, Tensor, TensorData};

use super::graph::{Graph, TRAIN, VALID};
use super::metrics::{self, Metrics};
use super::model::{self, Attention, GnnR, ModelMeta, TrainConfig};
use super::propagate::{Adjacency, Frozen, Keys, StackParams, stack_forward};
use super::rng::Rng;

/// The random stream of epoch shuffles and negative samples.
const TRAIN_STREAM: u64 = 3;
/// The users early stopping validates on, when they are sampled.
const VALID_STREAM: u64 = 4;

/// One epoch as the progress line and the metrics series see it.
#[derive(Debug, Clone)]
pub struct EpochReport {
    pub epoch: usize,
    pub loss: f64,
    pub valid: Metrics,
    pub seconds: f64,
    /// The batch size the epoch trained with ([`TrainConfig::batch_for`]).
    pub batch: usize,
    /// The learning rate it trained with ([`TrainConfig::lr_for`]).
    pub lr: f64,
    pub best_epoch: usize,
    pub best: f64,
    /// θ of each layer after the epoch (empty without attention).
    pub theta: Vec<f32>,
}

pub struct Trained {
    pub module: GnnR,
    pub meta: ModelMeta,
    pub history: Vec<EpochReport>,
}

/// The propagation graph: training user–item edges and item–category edges over
/// all nodes (users, then items, then categories).
pub fn adjacency(graph: &Graph, config: &TrainConfig) -> Adjacency {
    let nu = graph.n_users() as u32;
    let ni = graph.n_items() as u32;
    let it = &graph.interactions;
    let mut edges: Vec<(u32, u32, f32)> = (0..it.len())
        .filter(|&k| it.split[k] == TRAIN)
        .map(|k| {
            let w = if config.edge_weights {
                it.weight[k]
            } else {
                1.0
            };
            (it.user[k], nu + it.item[k], w)
        })
        .collect();
    if config.category_weight > 0.0 {
        edges.extend(
            graph
                .item_categories
                .iter()
                .map(|[i, c]| (nu + i, nu + ni + c, config.category_weight)),
        );
    }
    Adjacency::from_edges(graph.n_nodes(), &edges)
}

fn stack_params(module: &GnnR, config: &TrainConfig) -> StackParams {
    let d = config.dim;
    StackParams {
        theta: (config.attention != Attention::None).then(|| model::values(module.theta.val())),
        keys: config.attention.keys().unwrap_or(Keys::Dot),
        bias: config.bias.then(|| {
            model::values(module.bias.val())
                .chunks(d)
                .map(<[f32]>::to_vec)
                .collect()
        }),
        activation: config.activation.into(),
        layers: config.layers,
        frozen: None,
    }
}

/// The final user and item embeddings ((users + items) × dim) of a module.
pub fn propagate_output(
    module: &GnnR,
    adj: &Adjacency,
    config: &TrainConfig,
    scored: usize,
) -> Vec<f32> {
    let e0 = model::values(module.embedding.val());
    let (mut out, _) = stack_forward(adj, &e0, config.dim, &stack_params(module, config));
    out.truncate(scored * config.dim);
    out
}

/// What early stopping validates on: per user, the training items (masked) and
/// the validation items, the latter only for the sampled users (see
/// [`TrainConfig::valid_users`]); the other users' lists are empty, so ranking
/// skips them.
pub struct Validation<'a> {
    exclude: &'a [Vec<u32>],
    target: Vec<Vec<u32>>,
}

impl<'a> Validation<'a> {
    /// `train_items`: each user's training items, as `graph.items_by_user(TRAIN)`.
    pub fn of(graph: &Graph, train_items: &'a [Vec<u32>], config: &TrainConfig) -> Self {
        let mut all = graph.items_by_user(VALID);
        let mut users: Vec<usize> = (0..all.len()).filter(|&u| !all[u].is_empty()).collect();
        if config.valid_users == 0 || users.len() <= config.valid_users {
            return Validation {
                exclude: train_items,
                target: all,
            };
        }
        Rng::derive(config.seed, VALID_STREAM).shuffle(&mut users);
        let mut target = vec![Vec::new(); all.len()];
        for &u in &users[..config.valid_users] {
            target[u] = std::mem::take(&mut all[u]);
        }
        Validation {
            exclude: train_items,
            target,
        }
    }
}

/// Validation metrics of propagated embeddings (`users` is how many were ranked).
pub fn validate(graph: &Graph, on: &Validation, output: &[f32], d: usize, ks: &[usize]) -> Metrics {
    let nu = graph.n_users();
    let items = &output[nu * d..];
    metrics::evaluate(
        nu,
        graph.n_items(),
        |u, out| metrics::dot_scores(&output[u * d..(u + 1) * d], items, d, out),
        on.exclude,
        &on.target,
        ks,
    )
}

/// Parses `ndcg@20` into the K it needs.
fn metric_k(metric: &str) -> Result<usize, String> {
    metric
        .split_once('@')
        .and_then(|(name, k)| {
            ["recall", "ndcg", "hit", "mrr", "precision"]
                .contains(&name)
                .then(|| k.parse().ok())
                .flatten()
        })
        .filter(|k| *k > 0)
        .ok_or_else(|| {
            format!("`metric: {metric}` is not a ranking metric like `ndcg@20` or `recall@10`")
        })
}

/// Keeps freed buffers in the process instead of handing them back to the kernel.
///
/// Every batch allocates and frees the same few buffers of a few hundred KiB (the
/// propagation's n × d and per-edge arrays, burn's batch tensors). glibc serves
/// those above its mmap threshold with fresh mappings, unmaps them on free and
/// faults every page back in on the next batch; it raises the threshold by itself
/// only after seeing such a buffer freed, which some runs never trigger. Measured
/// on MovieLens-100k, `attention: none`, 8 epochs: 492,863 page faults and 0.25 s
/// per epoch; with fixed thresholds 6,883 faults and 0.16 s. On a large graph the
/// buffers outgrow glibc's highest threshold (32 MiB): at 10M sample events a
/// batch's are 38 MB and more, so mmap is turned off altogether and the heap is
/// trimmed only past 1 GiB of free memory at its top. Measured there (2 epochs
/// of the flagship's `train`): 4,505,604 page faults and 14.0 / 12.8 s an epoch
/// before, 491,522 and 8.9 / 8.0 s after, peak RSS 1.6 GiB.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, and glibc serialises it
    // against allocations on other threads. The settings are process-wide and
    // stay after training; `pedigree __builtin` runs one step per process.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

pub fn train(
    graph: &Graph,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Trained, String> {
    keep_freed_buffers();
    let k = metric_k(&config.metric)?;
    if config.learns_theta_without_gradient() {
        return Err(
            "`learn_theta` needs `attention_refresh: batch` (θ gets no gradient from attention held fixed for an epoch)"
                .into(),
        );
    }
    let ks: Vec<usize> = if k == 20 { vec![20] } else { vec![k, 20] };
    let d = config.dim;
    let (nu, ni) = (graph.n_users(), graph.n_items());
    let n = graph.n_nodes();
    let it = &graph.interactions;
    let pairs: Vec<(u32, u32)> = (0..it.len())
        .filter(|&k| it.split[k] == TRAIN)
        .map(|k| (it.user[k], it.item[k]))
        .collect();
    if pairs.is_empty() || ni < 2 {
        return Err(
            "the graph has no training interactions (or fewer than two items); nothing to learn"
                .into(),
        );
    }
    let train_items = graph.items_by_user(TRAIN);
    let adj = adjacency(graph, config);
    let device = model::cpu().autodiff();
    let inner = device.clone().inner();
    let mut module = GnnR::init(n, nu + ni, config, &device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut rng = Rng::derive(config.seed, TRAIN_STREAM);

    let mut history = Vec::new();
    let mut best: Option<(f64, usize, GnnR)> = None;
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    let batch = config.batch_for(pairs.len());
    let lr = config.lr_for(pairs.len());
    let validation = Validation::of(graph, &train_items, config);
    for epoch in 0..config.epochs {
        let start = Instant::now();
        rng.shuffle(&mut order);
        let negs: Vec<u32> = order
            .iter()
            .map(|&p| {
                let seen = &train_items[pairs[p].0 as usize];
                loop {
                    let j = rng.below(ni) as u32;
                    if seen.binary_search(&j).is_err() || seen.len() >= ni {
                        break j;
                    }
                }
            })
            .collect();
        // With `attention_refresh: epoch`, the epoch's attention weights, from
        // the embeddings at its start.
        let frozen = config.refreshes_per_epoch().then(|| {
            let e0 = model::values(module.embedding.val());
            std::sync::Arc::new(Frozen::of(&adj, &e0, d, &stack_params(&module, config)))
        });
        let mut total = 0.0f64;
        for (b, chunk) in order.chunks(batch).enumerate() {
            let neg = &negs[b * batch..b * batch + chunk.len()];
            let (m, loss) = step(
                module,
                &mut optim,
                &adj,
                config,
                &device,
                &inner,
                lr,
                &pairs,
                chunk,
                neg,
                nu,
                n,
                frozen.clone(),
            );
            module = m;
            total += loss * chunk.len() as f64;
        }
        let seconds = start.elapsed().as_secs_f64();
        let output = propagate_output(&module, &adj, config, nu + ni);
        let valid = validate(graph, &validation, &output, d, &ks);
        let value = valid.get(&config.metric).copied().unwrap_or(0.0);
        let improved = best.as_ref().is_none_or(|(b, _, _)| value > *b);
        if improved {
            best = Some((value, epoch, module.clone()));
        }
        let (best_value, best_epoch) = best.as_ref().map(|(v, e, _)| (*v, *e)).unwrap_or_default();
        let report = EpochReport {
            epoch,
            loss: total / pairs.len() as f64,
            valid,
            seconds,
            batch,
            lr,
            best_epoch,
            best: best_value,
            theta: stack_params(&module, config).theta.unwrap_or_default(),
        };
        on_epoch(&report);
        history.push(report);
        if config.patience > 0 && epoch - best_epoch >= config.patience {
            break;
        }
    }
    let (best_value, best_epoch, mut module) = match best {
        Some(b) => b,
        None => (0.0, 0, module),
    };
    let output = propagate_output(&module, &adj, config, nu + ni);
    module.output = module
        .output
        .map(|_| Tensor::from_data(TensorData::new(output, [nu + ni, d]), &device));
    let meta = ModelMeta {
        format: model::FORMAT.into(),
        version: model::VERSION,
        config: config.clone(),
        users: graph.users.clone(),
        items: graph.items.clone(),
        categories: graph.categories.clone(),
        best_epoch,
        epochs_run: history.len(),
        best_valid: best_value,
    };
    Ok(Trained {
        module,
        meta,
        history,
    })
}

/// One optimisation step on one batch; returns the updated module and the batch loss.
///
/// The loss needs the propagated rows of the batch's users, positives and
/// negatives, and the ego rows of the same nodes for L2. Those rows are gathered
/// here into batch × dim leaves, so burn's tape holds the loss alone (no n × dim
/// `select` and its scatter backward per batch); their gradients are
/// scatter-added back in batch order, which keeps the result deterministic.
#[allow(clippy::too_many_arguments)]
fn step(
    module: GnnR,
    optim: &mut ModuleOptimizer,
    adj: &Adjacency,
    config: &TrainConfig,
    device: &Device,
    inner: &Device,
    lr: f64,
    pairs: &[(u32, u32)],
    batch: &[usize],
    neg: &[u32],
    nu: usize,
    n: usize,
    frozen: Option<std::sync::Arc<Frozen>>,
) -> (GnnR, f64) {
    let d = config.dim;
    let sp = StackParams {
        frozen,
        ..stack_params(&module, config)
    };
    let e0 = model::values(module.embedding.val().detach());
    let (fin, cache) = stack_forward(adj, &e0, d, &sp);

    let users: Vec<usize> = batch.iter().map(|&p| pairs[p].0 as usize).collect();
    let pos: Vec<usize> = batch.iter().map(|&p| nu + pairs[p].1 as usize).collect();
    let negs: Vec<usize> = neg.iter().map(|&j| nu + j as usize).collect();
    let rows = [&users, &pos, &negs];
    let leaf = |src: &[f32], rows: &[usize]| {
        let mut v: Vec<f32> = Vec::with_capacity(rows.len() * d);
        for &r in rows {
            v.extend_from_slice(&src[r * d..(r + 1) * d]);
        }
        Tensor::<2>::from_data(TensorData::new(v, [rows.len(), d]), device).require_grad()
    };
    let [fu, fi, fj] = rows.map(|r| leaf(&fin, r));
    let [eu, ei, ej] = rows.map(|r| leaf(&e0, r));

    let pos_score = (fu.clone() * fi.clone()).sum_dim(1);
    let neg_score = (fu.clone() * fj.clone()).sum_dim(1);
    let bpr = softplus(neg_score - pos_score, 1.0).mean();
    let sq = |t: &Tensor<2>| (t.clone() * t.clone()).sum();
    let l2 = (sq(&eu) + sq(&ei) + sq(&ej)).mul_scalar(config.reg * 0.5 / batch.len() as f64);
    let loss = bpr + l2;
    let loss_value = model::values(loss.clone().detach())[0] as f64;
    let mut grads = loss.backward();

    let mut grad_of = |t: &Tensor<2>| t.grad_remove(&mut grads).map(model::values);
    let mut d_final = vec![0f32; n * d];
    for (t, r) in [&fu, &fi, &fj].into_iter().zip(rows) {
        scatter_add(&mut d_final, r, grad_of(t), d);
    }
    let ego: Vec<_> = [&eu, &ei, &ej].into_iter().map(&mut grad_of).collect();
    let sg = super::propagate::stack_backward(adj, cache, &d_final, d, &sp);
    let mut g_e0 = sg.e0;
    for (g, r) in ego.into_iter().zip(rows) {
        scatter_add(&mut g_e0, r, g, d);
    }

    let mut gp = GradientsParams::new();
    gp.register(
        module.embedding.id,
        Tensor::<2>::from_data(TensorData::new(g_e0, [n, d]), inner),
    );
    if config.layers > 0
        && config.attention != Attention::None
        && config.learn_theta
        && sp.frozen.is_none()
    {
        let l = sg.theta.len();
        gp.register(
            module.theta.id,
            Tensor::<1>::from_data(TensorData::new(sg.theta, [l]), inner),
        );
    }
    if config.layers > 0 && config.bias {
        let b: Vec<f32> = sg.bias.concat();
        gp.register(
            module.bias.id,
            Tensor::<2>::from_data(TensorData::new(b, [config.layers, d]), inner),
        );
    }
    (optim.step(lr, module, gp), loss_value)
}

/// `dst[rows[k]] += grad[k]` for each row of a batch × dim gradient, in batch order.
fn scatter_add(dst: &mut [f32], rows: &[usize], grad: Option<Vec<f32>>, d: usize) {
    let Some(grad) = grad else { return };
    for (&r, g) in rows.iter().zip(grad.chunks_exact(d)) {
        for (o, v) in dst[r * d..(r + 1) * d].iter_mut().zip(g) {
            *o += v;
        }
    }
}

/// Trains, then writes the model folder.
pub fn train_and_save(
    graph: &Graph,
    config: &TrainConfig,
    dir: &std::path::Path,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Vec<EpochReport>, String> {
    let trained = train(graph, config, on_epoch)?;
    model::save(dir, trained.module, &trained.meta).map_err(|e| e.to_string())?;
    Ok(trained.history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gnn::graph::{BuildConfig, TEST};
    use crate::gnn::input::Columns;
    use crate::gnn::model::Refresh;

    /// 48 users in 3 taste groups, 24 items in 3 matching groups (with a category
    /// each); every user takes 5 items of their group and the one blockbuster
    /// item 0, so popularity ranks the blockbuster and group 0 first for everyone.
    fn planted() -> Graph {
        let mut rng = Rng::new(9);
        let (mut us, mut is) = (Vec::new(), Vec::new());
        for u in 0..48usize {
            let g = u % 3;
            let mut items: Vec<usize> = (0..8).map(|k| g * 8 + k).collect();
            rng.shuffle(&mut items);
            for i in items.into_iter().take(6).chain([0]) {
                us.push(Some(format!("u{u:02}")));
                is.push(Some(format!("i{i:02}")));
            }
        }
        let mut c = Columns {
            names: vec!["user_id".into(), "item_id".into()],
            rows: us.len(),
            ..Columns::default()
        };
        c.data.insert("user_id".into(), us);
        c.data.insert("item_id".into(), is);
        let config = BuildConfig {
            valid: 0.15,
            test: 0.15,
            seed: 5,
            ..BuildConfig::default()
        };
        Graph::build(&c, None, &config).unwrap().0
    }

    fn small(attention: Attention) -> TrainConfig {
        TrainConfig {
            dim: 8,
            layers: 2,
            attention,
            epochs: 25,
            batch: 32,
            lr: 0.02,
            patience: 0,
            metric: "ndcg@5".into(),
            ..TrainConfig::default()
        }
    }

    fn test_ndcg(g: &Graph, out: &[f32], d: usize) -> f64 {
        let nu = g.n_users();
        metrics::evaluate(
            nu,
            g.n_items(),
            |u, o| metrics::dot_scores(&out[u * d..(u + 1) * d], &out[nu * d..], d, o),
            &metrics::union(&g.items_by_user(TRAIN), &g.items_by_user(VALID)),
            &g.items_by_user(TEST),
            &[5],
        )["ndcg@5"]
    }

    #[test]
    fn learns_planted_preferences_above_popularity() {
        let g = planted();
        let pop = crate::gnn::baselines::popularity(&g);
        let pop_ndcg = metrics::evaluate(
            g.n_users(),
            g.n_items(),
            |_, o| o.copy_from_slice(&pop),
            &metrics::union(&g.items_by_user(TRAIN), &g.items_by_user(VALID)),
            &g.items_by_user(TEST),
            &[5],
        )["ndcg@5"];
        let batch = |a| TrainConfig {
            attention_refresh: Refresh::Batch,
            ..small(a)
        };
        for cfg in [
            small(Attention::Cosine),
            batch(Attention::Cosine),
            small(Attention::Dot),
            small(Attention::None),
        ] {
            let attention = (cfg.attention, cfg.attention_refresh);
            let t = train(&g, &cfg, &mut |_| {}).unwrap();
            let first = t.history.first().unwrap().loss;
            let last = t.history.last().unwrap().loss;
            assert!(last < first * 0.7, "{attention:?}: loss {first} → {last}");
            let out = model::values(t.module.output.val());
            let ndcg = test_ndcg(&g, &out, cfg.dim);
            assert!(
                ndcg > pop_ndcg + 0.15,
                "{attention:?}: ndcg@5 {ndcg} vs popularity {pop_ndcg}"
            );
        }
    }

    /// Past `batch × max_batches` training pairs the batch grows with the
    /// graph, so an epoch never has more than `max_batches` batches.
    #[test]
    fn max_batches_bounds_the_batches_of_an_epoch() {
        let c = |batch, max_batches| TrainConfig {
            batch,
            max_batches,
            ..TrainConfig::default()
        };
        assert_eq!(c(32, 0).batch_for(10_000), 32);
        assert_eq!(c(32, 4).batch_for(100), 32);
        assert_eq!(c(32, 4).batch_for(1000), 250);
        assert_eq!(c(32, 3).batch_for(1000), 334);
        let g = planted();
        let pairs = g.interactions.split.iter().filter(|s| **s == TRAIN).count();
        assert!(pairs > 64, "{pairs} training pairs");
        let mut cfg = small(Attention::Cosine);
        cfg.epochs = 1;
        for (max_batches, want) in [(2, pairs.div_ceil(2)), (0, 32)] {
            cfg.max_batches = max_batches;
            let t = train(&g, &cfg, &mut |_| {}).unwrap();
            assert_eq!(t.history[0].batch, want, "max_batches {max_batches}");
            let lr = cfg.lr * (want as f64 / 32.0).sqrt();
            assert_eq!(t.history[0].lr, lr, "max_batches {max_batches}");
        }
        // Not grown: exactly the configured rate, so such models keep their bits.
        assert_eq!(c(32, 4).lr_for(100), TrainConfig::default().lr);
    }

    /// Early stopping ranks a fixed, seeded sample of the users with validation
    /// items, each with all of their own validation items.
    #[test]
    fn validation_ranks_a_fixed_sample_of_users() {
        let g = planted();
        let train_items = g.items_by_user(TRAIN);
        let full = g.items_by_user(VALID);
        let with_valid = full.iter().filter(|v| !v.is_empty()).count();
        assert!(with_valid > 20, "{with_valid} users with validation items");
        let cfg = |valid_users, seed| TrainConfig {
            valid_users,
            seed,
            ..small(Attention::Cosine)
        };
        let picked = |c: &TrainConfig| -> Vec<usize> {
            let v = Validation::of(&g, &train_items, c);
            (0..v.target.len())
                .filter(|&u| !v.target[u].is_empty())
                .collect()
        };
        assert_eq!(picked(&cfg(0, 1)).len(), with_valid);
        assert_eq!(picked(&cfg(with_valid + 5, 1)).len(), with_valid);
        let a = picked(&cfg(10, 1));
        assert_eq!(a.len(), 10);
        assert_eq!(a, picked(&cfg(10, 1)));
        assert_ne!(a, picked(&cfg(10, 2)));
        let v = Validation::of(&g, &train_items, &cfg(10, 1));
        for &u in &a {
            assert_eq!(v.target[u], full[u]);
        }
        let d = 4;
        let out = vec![0.5f32; (g.n_users() + g.n_items()) * d];
        assert_eq!(validate(&g, &v, &out, d, &[5])["users"], 10.0);
    }

    #[test]
    fn same_seed_gives_a_bit_identical_model_that_loads_back() {
        let g = planted();
        let mut cfg = small(Attention::Cosine);
        cfg.epochs = 3;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let read = |p: &std::path::Path, f| std::fs::read(p.join(f)).unwrap();
        // Attention recomputed every batch: bit-identical too, and another model.
        let per_batch = TrainConfig {
            attention_refresh: Refresh::Batch,
            ..cfg.clone()
        };
        let (pa, pb) = (dir.path().join("pa"), dir.path().join("pb"));
        train_and_save(&g, &per_batch, &pa, &mut |_| {}).unwrap();
        train_and_save(&g, &per_batch, &pb, &mut |_| {}).unwrap();
        train_and_save(&g, &cfg, &a, &mut |_| {}).unwrap();
        train_and_save(&g, &cfg, &b, &mut |_| {}).unwrap();
        for f in ["weights.bpk", "model.json"] {
            assert_eq!(read(&a, f), read(&b, f), "{f}");
            assert_eq!(read(&pa, f), read(&pb, f), "{f}, per batch");
        }
        assert_ne!(read(&a, "weights.bpk"), read(&pa, "weights.bpk"));
        let loaded = model::load(&a, &model::cpu()).unwrap();
        assert_eq!(loaded.meta.users, g.users);
        let adj = adjacency(&g, &cfg);
        let again = propagate_output(&loaded.module, &adj, &cfg, g.n_users() + g.n_items());
        assert_eq!(loaded.output, again);
        cfg.seed += 1;
        let c = dir.path().join("c");
        train_and_save(&g, &cfg, &c, &mut |_| {}).unwrap();
        assert_ne!(
            std::fs::read(a.join("weights.bpk")).unwrap(),
            std::fs::read(c.join("weights.bpk")).unwrap()
        );
    }

    #[test]
    fn theta_stays_fixed_unless_learn_theta() {
        let g = planted();
        let mut cfg = small(Attention::Cosine);
        cfg.epochs = 3;
        let theta = |cfg: &TrainConfig| {
            let t = train(&g, cfg, &mut |_| {}).unwrap();
            let per_epoch: Vec<Vec<f32>> = t.history.iter().map(|r| r.theta.clone()).collect();
            let best = per_epoch[t.meta.best_epoch].clone();
            (model::values(t.module.theta.val()), per_epoch, best)
        };
        let (fixed, history, _) = theta(&cfg);
        assert_eq!(fixed, vec![cfg.theta; cfg.layers]);
        assert!(history.iter().all(|t| *t == fixed), "{history:?}");
        cfg.learn_theta = true;
        cfg.attention_refresh = Refresh::Batch;
        let (learnt, history, at_best) = theta(&cfg);
        assert!(
            history.iter().flatten().all(|t| *t != cfg.theta),
            "θ did not move: {history:?}"
        );
        // The model keeps the best epoch's weights, θ included.
        assert_eq!(learnt, at_best);
    }

    #[test]
    fn recommendations_are_unseen_items_explained_by_the_users_own_past() {
        let g = planted();
        let cfg = small(Attention::Cosine);
        let dir = tempfile::tempdir().unwrap();
        train_and_save(&g, &cfg, dir.path(), &mut |_| {}).unwrap();
        let m = model::load(dir.path(), &model::cpu()).unwrap();
        let train_items = g.items_by_user(TRAIN);
        for u in [0usize, 1, 2] {
            let recs = crate::gnn::explain::recommend(&m, &g, u, 4, 3).unwrap();
            assert_eq!(recs.len(), 4);
            let seen: Vec<u32> = (0..g.interactions.len())
                .filter(|&x| g.interactions.user[x] as usize == u)
                .map(|x| g.interactions.item[x])
                .collect();
            // The planted group of user u is items 8·(u%3)..8·(u%3)+8 (item ids are i00..i23).
            let group = |i: u32| g.items[i as usize][1..].parse::<usize>().unwrap() / 8;
            assert_eq!(group(recs[0].item), u % 3, "user {u}: {recs:?}");
            for r in &recs {
                assert!(!seen.contains(&r.item), "user {u} already has {}", r.item);
                assert!(!r.reasons.is_empty() && r.reasons.len() <= 3);
                assert!(
                    r.reasons
                        .windows(2)
                        .all(|w| w[0].contribution >= w[1].contribution)
                );
                for why in &r.reasons {
                    assert!(train_items[u].contains(&why.item), "{why:?}");
                    assert!(why.attention > 0.0);
                }
            }
        }
        // Without attention the weights are the degree normalisation, still positive.
        let cfg = small(Attention::None);
        let dir = tempfile::tempdir().unwrap();
        train_and_save(&g, &cfg, dir.path(), &mut |_| {}).unwrap();
        let m = model::load(dir.path(), &model::cpu()).unwrap();
        let recs = crate::gnn::explain::recommend(&m, &g, 0, 2, 2).unwrap();
        assert!(
            recs.iter()
                .all(|r| r.reasons.iter().all(|w| w.attention > 0.0))
        );
    }
}
