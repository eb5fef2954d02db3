//! Multimodal VAEs over images and text on burn: model components, the
//! training loop, checkpoints, the evaluation classifier and metrics.

pub use burn;

pub mod batch;
pub mod bench;
pub mod checkpoint;
pub mod classifier;
pub mod coherence_matrix;
pub mod config;
pub mod consistency;
pub mod data;
pub mod decoding;
pub mod device;
pub mod discriminator;
pub mod error;
pub mod eval;
pub mod fid;
pub mod fusion;
pub mod gaussian;
pub mod heads;
pub mod image;
pub mod image_conv;
pub mod image_likelihood;
pub mod image_mlp;
pub mod image_residual;
pub mod inception;
pub mod infer;
pub mod likelihood;
pub mod metrics;
pub mod modality;
pub mod mvae;
pub mod objective;
pub mod parallel;
pub mod perceptual;
pub mod predict;
pub mod probe;
pub mod retrieval;
pub mod schedule;
pub mod text;
pub mod text_gru;
pub mod text_lstm;
pub mod text_multihot;
pub mod text_prior;
pub mod text_transformer;
pub mod text_xlstm;
pub mod train;

#[cfg(test)]
pub(crate) mod testutil;

pub use config::TrainConfig;
pub use error::{ModelError, Result};
