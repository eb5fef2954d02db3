//! Building blocks shared across the model: diagonal Gaussians (the
//! experts' posteriors and their product and mixture), side-by-side
//! softmax heads, a GRU's sequence forward pass, batched convolutions and
//! fused fully connected layers for the CPU backend, and the vectorised
//! arithmetic and tensor views of the hand-written CPU kernels.

pub mod bernoulli;
pub mod conv;
pub(crate) mod dense;
pub mod fastmath;
pub mod gaussian;
mod grads;
pub mod gru;
pub mod heads;
pub mod linear;
mod matmul;
mod scratch;
