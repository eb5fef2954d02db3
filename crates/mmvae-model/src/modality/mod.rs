//! The modalities: their configuration ([`config`]), and one expert per
//! modality kind ([`expert`]; images and captions use the model families
//! in `image*` and `text*`, labels [`label`]).

pub mod config;
pub mod expert;
pub mod label;

pub use config::{ExpertConfig, LabelModel, ModalityConfig, ModalityKind};
pub use expert::Expert;
