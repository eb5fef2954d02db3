//! Building blocks shared across the model: diagonal Gaussians (the
//! experts' posteriors and their product and mixture), side-by-side
//! softmax heads, and the CPU backend's own operations (a GRU's sequence,
//! batched convolutions, fully connected layers, 2 × 2 max pooling,
//! activations over the thread pool) with the vectorised arithmetic and
//! tensor views of their kernels.

pub mod activation;
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
pub mod pool;
mod scratch;
