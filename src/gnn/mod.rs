//! The recommender: the graph artifact ([`graph`]), reading input tables
//! ([`input`]), the GNN-R model and its artifact ([`model`]), the sparse
//! propagation with its own backward pass ([`propagate`]), training ([`train`]),
//! ranking metrics ([`metrics`]), baselines ([`baselines`]) and recommendations
//! with their reasons ([`explain`]).

pub mod baselines;
pub mod explain;
pub mod graph;
pub mod input;
pub(crate) mod kernels;
pub mod metrics;
pub mod model;
pub mod propagate;
pub mod rng;
pub mod train;
