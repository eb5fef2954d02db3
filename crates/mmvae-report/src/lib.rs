//! Seeing what a multimodal VAE learned: t-SNE of its latent space, charts,
//! and a self-contained HTML report of a checkpoint.

pub mod error;
pub mod html;
mod image_text;
pub mod modalities;
pub mod plot;
pub mod report;
pub mod tsne;

pub use error::{ReportError, Result};
