//! How the experts' posteriors become one: the product of experts and the
//! mixtures are closed forms in [`crate::nn::gaussian::Gaussian`] (with presence
//! masks); the learned networks are in [`learned`].

pub mod learned;

pub use learned::{FusionHead, TOKENS};
