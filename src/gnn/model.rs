//! The GNN-R model: its burn module (the trainable parameters), its config, and
//! the model artifact that `train-gnnr` writes and `evaluate`/`publish` read.
//!
//! # Model artifact (`pedigree-gnnr-model`, version 3)
//!
//! A folder with two files:
//!
//! - `weights.bpk`: the [`GnnR`] module saved with burn's `save_file` (burnpack):
//!   the ego embeddings, the attention θ and the biases per layer, and `output`,
//!   the propagated user and item embeddings that scoring uses, so the artifact
//!   scores users without the graph it was trained on.
//! - `model.json`: `format`, `version`, the [`TrainConfig`], the node index
//!   (`users`, `items`, `categories` ids in node order, as in the graph), the
//!   shapes, and the training summary (epochs run, best epoch, the validation
//!   metric at the best epoch).

use std::path::Path;

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::propagate::{Activation, Keys};
use super::rng::Rng;

pub const FORMAT: &str = "pedigree-gnnr-model";
/// 2 added `attention: cosine` and `learn_theta`; 3 added `attention_refresh`.
/// Older models still load (as `attention_refresh: batch`, how they were trained).
pub const VERSION: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attention {
    /// Plain degree-normalised propagation (LightGCN-like ablation).
    None,
    /// α_ij ∝ exp(θ·⟨h_i, h_j⟩), softmax over the neighbourhood, θ learnt per layer.
    Dot,
    /// As `Dot` on unit vectors, α_ij ∝ exp(θ·cos(h_i, h_j)): logits bounded by |θ|.
    Cosine,
}

impl Attention {
    /// The propagation's keys, or `None` without attention.
    pub fn keys(self) -> Option<Keys> {
        match self {
            Attention::None => None,
            Attention::Dot => Some(Keys::Dot),
            Attention::Cosine => Some(Keys::Cosine),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Attention::None => "none",
            Attention::Dot => "dot",
            Attention::Cosine => "cosine",
        }
    }
}

/// How often training recomputes the attention weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Refresh {
    /// Every batch, with the gradient through the attention logits (to the
    /// embeddings as keys, and to θ when learnt).
    Batch,
    /// Once an epoch, from the embeddings at its start; within the epoch they are
    /// fixed propagation weights and get no gradient. As good on validation and
    /// 2.3× faster per epoch on MovieLens-100k (ARCHITECTURE.md, "Attention
    /// refreshed once an epoch").
    Epoch,
}

impl Refresh {
    pub fn name(self) -> &'static str {
        match self {
            Refresh::Batch => "batch",
            Refresh::Epoch => "epoch",
        }
    }

    /// What a model written before `attention_refresh` existed was trained with.
    fn before_version_3() -> Refresh {
        Refresh::Batch
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationName {
    None,
    Tanh,
}

impl From<ActivationName> for Activation {
    fn from(a: ActivationName) -> Self {
        match a {
            ActivationName::None => Activation::None,
            ActivationName::Tanh => Activation::Tanh,
        }
    }
}

/// Everything that determines training (besides the graph), stored in the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub dim: usize,
    /// Propagation layers; 0 is matrix factorisation (BPR-MF).
    pub layers: usize,
    pub attention: Attention,
    /// θ of every layer (with attention): fixed, or the start when `learn_theta`.
    pub theta: f32,
    /// Learn θ with the embeddings. Off by default: a learnt θ drifts towards
    /// sharper attention that fits the training edges it propagates over (a user
    /// attends to the very item it is scored against) and generalises worse; see
    /// ARCHITECTURE.md, "Attention".
    #[serde(default)]
    pub learn_theta: bool,
    /// When the attention weights are recomputed during training. Scoring and
    /// validation always compute them from the current embeddings.
    #[serde(default = "Refresh::before_version_3")]
    pub attention_refresh: Refresh,
    pub activation: ActivationName,
    pub bias: bool,
    pub epochs: usize,
    pub batch: usize,
    /// At most this many batches an epoch (0: no limit; the step's default is
    /// [`TrainConfig::default`]'s, the 0 here is only for model files and
    /// requests that predate the field). Every batch propagates
    /// the whole graph, so with a fixed batch an epoch costs edges² / batch; past
    /// `batch × max_batches` training pairs the batch grows with the graph
    /// instead ([`TrainConfig::batch_for`]), and the learning rate with the
    /// square root of its growth ([`TrainConfig::lr_for`]), so an epoch stays
    /// linear in the edges.
    /// 0 when read from a model that predates it (trained with no limit).
    #[serde(default)]
    pub max_batches: usize,
    /// Early stopping validates on a fixed sample of this many of the users with
    /// validation items, drawn from `seed` (0: all of them), so the ranking part
    /// of an epoch's validation is bounded in users (the propagation before it
    /// stays linear in the graph). 0 when read from a model that predates it.
    #[serde(default)]
    pub valid_users: usize,
    pub lr: f64,
    /// L2 on the ego embeddings of each batch: reg/2 · (|e_u|² + |e_i|² + |e_j|²) / batch.
    pub reg: f64,
    pub seed: u64,
    /// Stop after this many epochs without a better validation metric (0: never).
    pub patience: usize,
    /// The validation metric early stopping follows, e.g. `ndcg@20`.
    pub metric: String,
    /// Use the graph's event-type weights in the normalisation (else every edge weighs 1).
    pub edge_weights: bool,
    /// Weight of item–category edges relative to an interaction of weight 1 (0: none).
    pub category_weight: f32,
}

impl TrainConfig {
    /// Whether training holds each layer's attention fixed for an epoch at a time.
    pub fn refreshes_per_epoch(&self) -> bool {
        self.layers > 0
            && self.attention != Attention::None
            && self.attention_refresh == Refresh::Epoch
    }

    /// The batch size training uses on `pairs` training pairs: `batch`, or more
    /// where `max_batches` batches of it would not cover them.
    pub fn batch_for(&self, pairs: usize) -> usize {
        match self.max_batches {
            0 => self.batch,
            m => self.batch.max(pairs.div_ceil(m)),
        }
    }

    /// The learning rate for training on `pairs` training pairs: `lr`, times the
    /// square root of the factor by which [`TrainConfig::batch_for`] grew the
    /// batch (Adam's square-root scaling rule). Without it a grown batch takes
    /// as many steps per epoch as the limit allows, each no longer: on the
    /// 1M-event sample with 16 batches, validation never improved on its first
    /// epoch (ARCHITECTURE.md, "GNN-R at a shop's scale"). Exactly `lr` when the
    /// batch did not grow.
    pub fn lr_for(&self, pairs: usize) -> f64 {
        let grown = self.batch_for(pairs) as f64 / self.batch as f64;
        self.lr * grown.sqrt()
    }

    /// `learn_theta` where θ would get no gradient: refused by the step's params
    /// and by training.
    pub fn learns_theta_without_gradient(&self) -> bool {
        self.learn_theta && self.refreshes_per_epoch()
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dim: 64,
            layers: 3,
            attention: Attention::Cosine,
            theta: -0.25,
            learn_theta: false,
            attention_refresh: Refresh::Epoch,
            activation: ActivationName::None,
            bias: false,
            epochs: 300,
            batch: 2048,
            max_batches: 64,
            valid_users: 5000,
            lr: 0.01,
            reg: 1e-3,
            seed: 2020,
            patience: 30,
            metric: "ndcg@20".into(),
            edge_weights: true,
            category_weight: 1.0,
        }
    }
}

/// The trainable parameters (and the propagated output used for scoring).
#[derive(Module, Debug)]
pub struct GnnR {
    /// Ego embeddings, nodes × dim (users, items, categories).
    pub embedding: Param<Tensor<2>>,
    /// θ per layer (one entry when there are no layers).
    pub theta: Param<Tensor<1>>,
    /// Bias per layer, layers × dim (one row when there are no layers).
    pub bias: Param<Tensor<2>>,
    /// Final user and item embeddings, (users + items) × dim, after training.
    pub output: Param<Tensor<2>>,
}

impl GnnR {
    /// Xavier-normal embeddings (as torch's `xavier_normal_` on a nodes × dim
    /// tensor), θ at `config.theta`, zero biases, all from `seed`.
    pub fn init(nodes: usize, scored: usize, config: &TrainConfig, device: &Device) -> GnnR {
        let d = config.dim;
        let std = (2.0 / (nodes + d) as f64).sqrt();
        let mut rng = Rng::derive(config.seed, INIT_STREAM);
        let emb: Vec<f32> = (0..nodes * d)
            .map(|_| (rng.normal() * std) as f32)
            .collect();
        let l = config.layers.max(1);
        let mut theta = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![config.theta; l], [l]),
            device,
        ));
        theta.id = ParamId::from(2);
        GnnR {
            embedding: param(1, emb, [nodes, d], device),
            theta,
            bias: param(3, vec![0.0; l * d], [l, d], device),
            output: param(4, vec![0.0; scored * d], [scored, d], device),
        }
    }
}

/// The random stream of the initial weights.
const INIT_STREAM: u64 = 2;

/// A parameter with a fixed id: burn draws ids at random, and the id is written
/// into the weights file, which must be a function of the training alone.
fn param(id: u64, v: Vec<f32>, shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    let mut p = Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), device));
    p.id = ParamId::from(id);
    p
}

/// A tensor's values as f32.
///
/// The `mul_scalar(1.0)` is for speed and changes no value: a parameter's tensor
/// shares its buffer with the module, and burn-ndarray's `into_data` copies a
/// shared buffer element by element through a dynamic-rank iterator (16% of a
/// training epoch, measured); the SIMD multiply gives an unshared buffer, which
/// `into_data` hands over without copying. `detach` first, so that reading a
/// tracked parameter adds no node to the autodiff graph: such nodes are never
/// consumed by a backward pass, and burn rescans every orphan at each one (an
/// epoch went from 0.4 s to 0.9 s over 130 epochs before this).
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.detach()
        .mul_scalar(1.0)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("a float tensor converts to f32")
}

/// What `model.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format: String,
    pub version: u32,
    pub config: TrainConfig,
    pub users: Vec<String>,
    pub items: Vec<String>,
    pub categories: Vec<String>,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub best_valid: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot write the model to `{path}`: {reason}")]
    Write { path: String, reason: String },
    #[error("cannot read the model `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "`{path}` is not a GNN-R model of a version this build reads (format `{format}`, version {version}; expected `{FORMAT}` version 1 to {VERSION})"
    )]
    Version {
        path: String,
        format: String,
        version: u32,
    },
}

/// A trained model loaded back: its metadata and its scoring embeddings.
pub struct LoadedModel {
    pub meta: ModelMeta,
    pub module: GnnR,
    /// (users + items) × dim, row-major.
    pub output: Vec<f32>,
}

impl LoadedModel {
    pub fn user(&self, u: usize) -> &[f32] {
        let d = self.meta.config.dim;
        &self.output[u * d..(u + 1) * d]
    }

    /// Item embeddings, items × dim, row-major.
    pub fn items(&self) -> &[f32] {
        let d = self.meta.config.dim;
        &self.output[self.meta.users.len() * d..]
    }
}

pub fn save(dir: &Path, module: GnnR, meta: &ModelMeta) -> Result<(), ModelError> {
    let err = |e: &dyn std::fmt::Display| ModelError::Write {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    module
        .save_file(dir.join("weights.bpk"))
        .map_err(|e| err(&e))?;
    let json = serde_json::to_value(meta).map_err(|e| err(&e))?;
    std::fs::write(dir.join("model.json"), format!("{json:#}\n")).map_err(|e| err(&e))
}

pub fn load(dir: &Path, device: &Device) -> Result<LoadedModel, ModelError> {
    let err = |e: &dyn std::fmt::Display| ModelError::Read {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    let text = std::fs::read(dir.join("model.json")).map_err(|e| err(&e))?;
    let head: serde_json::Value = serde_json::from_slice(&text).map_err(|e| err(&e))?;
    let format = head["format"].as_str().unwrap_or_default();
    let version = head["version"].as_u64().unwrap_or_default() as u32;
    if format != FORMAT || !(1..=VERSION).contains(&version) {
        return Err(ModelError::Version {
            path: dir.display().to_string(),
            format: format.to_owned(),
            version,
        });
    }
    let meta: ModelMeta = serde_json::from_value(head).map_err(|e| err(&e))?;
    let nodes = meta.users.len() + meta.items.len() + meta.categories.len();
    let scored = meta.users.len() + meta.items.len();
    let module = GnnR::init(nodes, scored, &meta.config, device)
        .try_load_file(dir.join("weights.bpk"))
        .map_err(|e| err(&e))?;
    let output = values(module.output.val());
    if output.len() != scored * meta.config.dim {
        return Err(err(
            &"the weights do not match the node index in model.json",
        ));
    }
    Ok(LoadedModel {
        meta,
        module,
        output,
    })
}

/// The CPU device models train and score on: burn's ndarray backend. burn 0.22 marks
/// it deprecated in favour of `flex`; it is the backend this project measured and
/// pins, so the choice is made here, once.
#[allow(deprecated)]
pub fn cpu() -> Device {
    Device::ndarray()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config written before `attention_refresh` existed reads as what trained
    /// it (every batch); today's default is once an epoch.
    #[test]
    fn older_configs_read_as_attention_every_batch() {
        let mut json = serde_json::to_value(TrainConfig::default()).unwrap();
        json.as_object_mut().unwrap().remove("attention_refresh");
        let old: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old.attention_refresh, Refresh::Batch);
        assert_eq!(TrainConfig::default().attention_refresh, Refresh::Epoch);
    }
}
