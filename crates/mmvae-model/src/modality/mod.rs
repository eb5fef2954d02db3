//! The modalities: their configuration ([`config`]), and one expert per
//! modality kind ([`expert`]): images with the model families and pixel
//! likelihoods of [`image`], captions with the sequence models of
//! [`text`], class labels ([`label`]).

pub mod config;
pub mod expert;
pub mod image;
pub mod label;
pub mod text;

pub use config::{ExpertConfig, LabelModel, ModalityConfig, ModalityKind};
pub use expert::Expert;
