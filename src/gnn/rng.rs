//! The model code's random streams: [`crate::util::rng::Rng`] (xoshiro256** seeded
//! through SplitMix64) with [`Rng::below`] as the range map. Every split, initial
//! weight and sampled negative comes from it, so a model is a pure function of its
//! inputs, params and thread count.

pub use crate::util::rng::Rng;
