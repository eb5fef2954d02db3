//! GRU caption encoder and autoregressive GRU caption decoder.

use crate::modality::text::decoding::{at_positions, caption_nll, shift, with_latent, StepDecoder};
use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;
use burn::nn::gru::{Gru, GruConfig};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Embedding → GRU; the hidden state at each caption's `<eos>` gives
/// (mu, logvar).
#[derive(Module, Debug)]
pub struct GruTextEncoder {
    embed: Embedding,
    gru: Gru,
    out: Linear,
}

impl GruTextEncoder {
    pub fn new(vocab: usize, embed: usize, hidden: usize, latent: usize, device: &Device) -> Self {
        Self {
            embed: EmbeddingConfig::new(vocab, embed).init(device),
            gru: GruConfig::new(embed, hidden, true).init(device),
            out: LinearConfig::new(hidden, 2 * latent).init(device),
        }
    }

    /// # Shapes
    /// `tokens`: `[batch, time]` framed as `<bos> words <eos> <pad>…`;
    /// `last`: `[batch]` index of each `<eos>` → posterior over `[batch, latent]`
    pub fn forward(&self, tokens: Tensor<2, Int>, last: Tensor<1, Int>) -> Gaussian {
        let e = self.embed.forward(tokens); // [b, t, embed]
        let hs = crate::nn::gru::forward(&self.gru, e, None); // [b, t, hidden]
        Gaussian::from_concat(linear(&self.out, at_positions(hs, last)))
    }
}

/// h0 = tanh(W z); each step reads the previous token's embedding
/// concatenated with z, and predicts the next token.
#[derive(Module, Debug)]
pub struct GruTextDecoder {
    embed: Embedding,
    init: Linear,
    gru: Gru,
    out: Linear,
}

impl GruTextDecoder {
    pub fn new(vocab: usize, embed: usize, hidden: usize, latent: usize, device: &Device) -> Self {
        Self {
            embed: EmbeddingConfig::new(vocab, embed).init(device),
            init: LinearConfig::new(latent, hidden).init(device),
            gru: GruConfig::new(embed + latent, hidden, true).init(device),
            out: LinearConfig::new(hidden, vocab).init(device),
        }
    }

    /// Teacher-forced negative log-likelihood of each caption.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`, `tokens`: `[batch, time]` → `[batch]` (summed over tokens)
    pub fn nll(&self, z: Tensor<2>, tokens: Tensor<2, Int>) -> Tensor<1> {
        let (inputs, targets) = shift(tokens); // [b, t-1] each
        let h0 = self.start(z.clone());
        let x = with_latent(self.embed.forward(inputs), z); // [b, t-1, embed + latent]
        let hs = crate::nn::gru::forward(&self.gru, x, Some(h0)); // [b, t-1, hidden]
        caption_nll(log_softmax(linear(&self.out, hs), 2), targets)
    }
}

impl StepDecoder for GruTextDecoder {
    /// The hidden state `[batch, hidden]`.
    type State = Tensor<2>;

    fn start(&self, z: Tensor<2>) -> Tensor<2> {
        linear(&self.init, z).tanh()
    }

    fn step(&self, z: Tensor<2>, h: Tensor<2>, tok: Tensor<1, Int>) -> (Tensor<2>, Tensor<2>) {
        let [b] = tok.dims();
        let hidden = h.dims()[1];
        let e = self.embed.forward(tok.reshape([b, 1])); // [b, 1, embed]
        let x = Tensor::cat(vec![e, z.unsqueeze_dim::<3>(1)], 2);
        let h = crate::nn::gru::forward(&self.gru, x, Some(h)).reshape([b, hidden]); // [b, hidden]
        (log_softmax(linear(&self.out, h.clone()), 1), h)
    }

    fn select(h: Tensor<2>, idx: Tensor<1, Int>) -> Tensor<2> {
        h.select(0, idx)
    }
}
