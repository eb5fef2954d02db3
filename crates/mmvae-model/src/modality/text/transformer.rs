//! Transformer caption encoder and decoder (pre-LayerNorm, GELU, no
//! dropout), from burn's `TransformerEncoder`. The decoder is a causal
//! (decoder-only) transformer whose every input position gets W z added to
//! its token and position embeddings; decoding re-runs the prefix each step
//! (captions are short).

use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use mmvae_data::tokenizer::PAD;

use crate::modality::text::decoding::{at_positions, caption_nll, shift, StepDecoder};
use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;

/// Longest caption (in tokens, `<bos>` and `<eos>` included) the position
/// embeddings cover.
pub const MAX_POSITIONS: usize = 64;

fn stack(
    d_model: usize,
    heads: usize,
    layers: usize,
    ff: usize,
    device: &Device,
) -> TransformerEncoder {
    TransformerEncoderConfig::new(d_model, ff, heads, layers)
        .with_dropout(0.0)
        .with_norm_first(true)
        .init(device)
}

/// Token + position embeddings `[batch, time, d_model]`.
fn embed(tok: &Embedding, pos: &Embedding, tokens: Tensor<2, Int>) -> Tensor<3> {
    let [b, t] = tokens.dims();
    let device = tokens.device();
    let positions = Tensor::<1, Int>::arange(0..t as i64, &device)
        .reshape([1, t])
        .expand([b, t]);
    tok.forward(tokens) + pos.forward(positions)
}

/// Embeddings → transformer (padding masked); the output at each caption's
/// `<eos>` gives (mu, logvar).
#[derive(Module, Debug)]
pub struct TransformerTextEncoder {
    tok: Embedding,
    pos: Embedding,
    body: TransformerEncoder,
    out: Linear,
}

impl TransformerTextEncoder {
    pub fn new(
        vocab: usize,
        d_model: usize,
        heads: usize,
        layers: usize,
        ff: usize,
        latent: usize,
        device: &Device,
    ) -> Self {
        Self {
            tok: EmbeddingConfig::new(vocab, d_model).init(device),
            pos: EmbeddingConfig::new(MAX_POSITIONS, d_model).init(device),
            body: stack(d_model, heads, layers, ff, device),
            out: LinearConfig::new(d_model, 2 * latent).init(device),
        }
    }

    /// # Shapes
    /// `tokens`: `[batch, time]`, `last`: `[batch]` → posterior over `[batch, latent]`
    pub fn forward(&self, tokens: Tensor<2, Int>, last: Tensor<1, Int>) -> Gaussian {
        let pad = tokens.clone().equal_elem(PAD as i64); // [b, t], true = masked
        let x = embed(&self.tok, &self.pos, tokens);
        let hs = self
            .body
            .forward(TransformerEncoderInput::new(x).mask_pad(pad)); // [b, t, d]
        Gaussian::from_concat(linear(&self.out, at_positions(hs, last)))
    }
}

#[derive(Module, Debug)]
pub struct TransformerTextDecoder {
    tok: Embedding,
    pos: Embedding,
    latent: Linear,
    body: TransformerEncoder,
    out: Linear,
}

impl TransformerTextDecoder {
    pub fn new(
        vocab: usize,
        d_model: usize,
        heads: usize,
        layers: usize,
        ff: usize,
        latent: usize,
        device: &Device,
    ) -> Self {
        Self {
            tok: EmbeddingConfig::new(vocab, d_model).init(device),
            pos: EmbeddingConfig::new(MAX_POSITIONS, d_model).init(device),
            latent: LinearConfig::new(latent, d_model).init(device),
            body: stack(d_model, heads, layers, ff, device),
            out: LinearConfig::new(d_model, vocab).init(device),
        }
    }

    /// Next-token log-probabilities at every position of `inputs`.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`, `inputs`: `[batch, time]` → `[batch, time, vocab]`
    fn logp(&self, z: Tensor<2>, inputs: Tensor<2, Int>) -> Tensor<3> {
        let [b, t] = inputs.dims();
        let device = inputs.device();
        let d = self.latent.weight.dims()[1];
        let zc = self
            .latent
            .forward(z)
            .unsqueeze_dim::<3>(1)
            .expand([b, t, d]);
        let x = embed(&self.tok, &self.pos, inputs) + zc;
        let mask = generate_autoregressive_mask(b, t, &device);
        let hs = self
            .body
            .forward(TransformerEncoderInput::new(x).mask_attn(mask));
        log_softmax(linear(&self.out, hs), 2)
    }

    /// Teacher-forced negative log-likelihood of each caption.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`, `tokens`: `[batch, time]` → `[batch]`
    pub fn nll(&self, z: Tensor<2>, tokens: Tensor<2, Int>) -> Tensor<1> {
        let (inputs, targets) = shift(tokens); // [b, t-1] each
        caption_nll(self.logp(z, inputs), targets)
    }
}

impl StepDecoder for TransformerTextDecoder {
    /// The tokens read so far `[batch, time]` (none before the first step):
    /// each step re-runs the prefix, which is cheap for short captions.
    type State = Option<Tensor<2, Int>>;
    const MAX_LEN: usize = MAX_POSITIONS;

    fn start(&self, _z: Tensor<2>) -> Self::State {
        None
    }

    fn step(
        &self,
        z: Tensor<2>,
        prefix: Self::State,
        tok: Tensor<1, Int>,
    ) -> (Tensor<2>, Self::State) {
        let [b] = tok.dims();
        let prefix = match prefix {
            None => tok.reshape([b, 1]),
            Some(p) => Tensor::cat(vec![p, tok.reshape([b, 1])], 1),
        };
        let t = prefix.dims()[1];
        let lp = self.logp(z, prefix.clone()); // [b, t, vocab]
        let vocab = lp.dims()[2];
        (lp.narrow(1, t - 1, 1).reshape([b, vocab]), Some(prefix))
    }

    fn select(prefix: Self::State, idx: Tensor<1, Int>) -> Self::State {
        prefix.map(|p| p.select(0, idx))
    }
}
