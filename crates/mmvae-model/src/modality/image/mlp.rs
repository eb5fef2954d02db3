//! Fully connected image encoder and decoder.

use crate::nn::activation::relu;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;

/// pixels → hidden → hidden → (mu, logvar).
#[derive(Module, Debug)]
pub struct MlpImageEncoder {
    l1: Linear,
    l2: Linear,
    out: Linear,
}

impl MlpImageEncoder {
    pub fn new(pixels: usize, hidden: usize, latent: usize, device: &Device) -> Self {
        Self {
            l1: LinearConfig::new(pixels, hidden).init(device),
            l2: LinearConfig::new(hidden, hidden).init(device),
            out: LinearConfig::new(hidden, 2 * latent).init(device),
        }
    }

    /// # Shapes
    /// `x`: `[batch, pixels]` in `[0, 1]` → posterior over `[batch, latent]`
    pub fn forward(&self, x: Tensor<2>) -> Gaussian {
        let h = relu(linear(&self.l1, x));
        let h = relu(linear(&self.l2, h));
        let o = linear(&self.out, h); // [batch, 2 * latent]
        Gaussian::from_concat(o)
    }
}

/// latent → hidden → hidden → pixel logits.
#[derive(Module, Debug)]
pub struct MlpImageDecoder {
    l1: Linear,
    l2: Linear,
    out: Linear,
}

impl MlpImageDecoder {
    pub fn new(pixels: usize, hidden: usize, latent: usize, device: &Device) -> Self {
        Self {
            l1: LinearConfig::new(latent, hidden).init(device),
            l2: LinearConfig::new(hidden, hidden).init(device),
            out: LinearConfig::new(hidden, pixels).init(device),
        }
    }

    /// # Shapes
    /// `z`: `[batch, latent]` → Bernoulli logits `[batch, pixels]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        let h = relu(linear(&self.l1, z));
        let h = relu(linear(&self.l2, h));
        linear(&self.out, h)
    }
}
