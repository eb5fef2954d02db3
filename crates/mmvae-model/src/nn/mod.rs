//! Building blocks shared across the model: diagonal Gaussians (the
//! experts' posteriors and their product and mixture) and side-by-side
//! softmax heads.

pub mod gaussian;
pub mod heads;
