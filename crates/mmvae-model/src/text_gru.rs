//! GRU caption encoder and autoregressive GRU caption decoder.

use crate::decoding::{at_positions, beam_search, caption_nll, collect_tokens, shift, with_latent};
use crate::gaussian::Gaussian;
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
        let hs = self.gru.forward(e, None); // [b, t, hidden]
        Gaussian::from_concat(self.out.forward(at_positions(hs, last)))
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
        let h0 = self.init.forward(z.clone()).tanh();
        let x = with_latent(self.embed.forward(inputs), z); // [b, t-1, embed + latent]
        let hs = self.gru.forward(x, Some(h0)); // [b, t-1, hidden]
        caption_nll(log_softmax(self.out.forward(hs), 2), targets)
    }

    /// One decoding step: log-probabilities of the next token and the new
    /// hidden state.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`, `h`: `[batch, hidden]`, `tok`: `[batch]` →
    /// (`[batch, vocab]`, `[batch, hidden]`)
    pub fn step(&self, z: Tensor<2>, h: Tensor<2>, tok: Tensor<1, Int>) -> (Tensor<2>, Tensor<2>) {
        let [b] = tok.dims();
        let hidden = h.dims()[1];
        let e = self.embed.forward(tok.reshape([b, 1])); // [b, 1, embed]
        let x = Tensor::cat(vec![e, z.unsqueeze_dim::<3>(1)], 2);
        let h = self.gru.forward(x, Some(h)).reshape([b, hidden]); // [b, hidden]
        (log_softmax(self.out.forward(h.clone()), 1), h)
    }

    /// Decode up to `max_len - 1` tokens from each z: greedily when
    /// `temperature` is `None`, otherwise by sampling from softmax(logits / T).
    ///
    /// # Shapes
    /// `z`: `[batch, latent]` → `batch` token lists (without `<bos>`/`<eos>`)
    pub fn decode(
        &self,
        z: Tensor<2>,
        max_len: usize,
        temperature: Option<f32>,
    ) -> Vec<Vec<usize>> {
        let mut h = self.init.forward(z.clone()).tanh(); // [b, hidden]
        collect_tokens(z.clone(), max_len, temperature, |tok| {
            let (logp, next) = self.step(z.clone(), h.clone(), tok);
            h = next;
            logp
        })
    }

    /// Beam search of width `width` (see [`beam_search`]).
    pub fn decode_beam(&self, z: Tensor<2>, max_len: usize, width: usize) -> Vec<Vec<usize>> {
        let [b, _] = z.dims();
        let device = z.device();
        let z = repeat_rows(z, width); // [b * width, latent]
        let mut h = self.init.forward(z.clone()).tanh();
        beam_search(b, width, max_len, &device, |rows, tok| {
            let h_in = h.clone().select(0, row_index(rows, &device));
            let (logp, next) = self.step(z.clone(), h_in, tok);
            h = next;
            logp
        })
    }
}

/// Each row `width` times in a row: `[b, d]` → `[b * width, d]`.
pub(crate) fn repeat_rows(z: Tensor<2>, width: usize) -> Tensor<2> {
    let [b, d] = z.dims();
    z.unsqueeze_dim::<3>(1)
        .expand([b, width, d])
        .reshape([b * width, d])
}

pub(crate) fn row_index(rows: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Tensor::from_data(TensorData::new(v, [rows.len()]), device)
}
