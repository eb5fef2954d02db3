//! Data in and out of the model: host batches and their device tensors
//! (`batch`), loading a run's splits and weak supervision's pairing
//! (`data`), versioned checkpoints (`checkpoint`), weights files checked against
//! their model before loading (`weights`).

pub mod batch;
pub mod checkpoint;
pub mod data;
pub mod weights;
