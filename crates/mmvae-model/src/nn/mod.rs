//! Building blocks shared across the model: diagonal Gaussians (the
//! experts' posteriors and their product and mixture), side-by-side
//! softmax heads and a GRU's sequence forward pass.

pub mod conv;
pub mod gaussian;
pub mod gru;
pub mod heads;
