//! Multimodal VAEs on burn, for any number of modalities: the experts, their
//! fusion and objective, training, checkpoints, evaluation and inference.
//! `docs/architecture.md` maps the folders and one training step.

pub use burn;

pub mod bench;
pub mod config;
pub mod device;
pub mod error;
pub mod eval;
pub mod fusion;
pub mod host;
pub mod infer;
pub mod io;
pub mod modality;
pub mod mvae;
pub mod nn;
pub mod objective;
pub mod predict;
pub mod prior;
pub mod sweep;
pub mod train;

#[cfg(test)]
pub(crate) mod testutil;

pub use config::TrainConfig;
pub use error::{ModelError, Result};
