//! LSTM caption encoder (one direction or both) and autoregressive LSTM
//! caption decoder, from burn's `Lstm`/`BiLstm`.

use crate::modality::text::decoding::{at_positions, caption_nll, shift, with_latent, StepDecoder};
use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;
use burn::nn::lstm::{BiLstm, BiLstmConfig, Lstm, LstmConfig, LstmState};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

#[derive(Module, Debug)]
// One value per model: the variants' sizes do not matter, and burn's
// Module derive does not box them.
#[allow(clippy::large_enum_variant)]
pub enum LstmLayer {
    Forward(Lstm),
    Both(BiLstm),
}

/// Embedding → LSTM. One direction: the output at each caption's `<eos>`
/// gives (mu, logvar). Both directions: the mean of the outputs over the
/// caption's tokens (`<bos>` … `<eos>`), so neither direction's summary
/// depends on the padding after `<eos>` being read last.
#[derive(Module, Debug)]
pub struct LstmTextEncoder {
    embed: Embedding,
    lstm: LstmLayer,
    out: Linear,
}

impl LstmTextEncoder {
    pub fn new(
        vocab: usize,
        embed: usize,
        hidden: usize,
        bidirectional: bool,
        latent: usize,
        device: &Device,
    ) -> Self {
        let (lstm, width) = if bidirectional {
            (
                LstmLayer::Both(BiLstmConfig::new(embed, hidden, true).init(device)),
                2 * hidden,
            )
        } else {
            (
                LstmLayer::Forward(LstmConfig::new(embed, hidden, true).init(device)),
                hidden,
            )
        };
        Self {
            embed: EmbeddingConfig::new(vocab, embed).init(device),
            lstm,
            out: LinearConfig::new(width, 2 * latent).init(device),
        }
    }

    /// # Shapes
    /// `tokens`: `[batch, time]` framed as `<bos> words <eos> <pad>…`;
    /// `last`: `[batch]` index of each `<eos>` → posterior over `[batch, latent]`
    pub fn forward(&self, tokens: Tensor<2, Int>, last: Tensor<1, Int>) -> Gaussian {
        let [b, t] = tokens.dims();
        let device = tokens.device();
        let e = self.embed.forward(tokens); // [b, t, embed]
        let h = match &self.lstm {
            LstmLayer::Forward(l) => at_positions(l.forward(e, None).0, last),
            LstmLayer::Both(l) => {
                let (hs, _) = l.forward(e, None); // [b, t, 2 hidden]
                let width = hs.dims()[2];
                let pos = Tensor::<1, Int>::arange(0..t as i64, &device)
                    .reshape([1, t])
                    .expand([b, t]);
                let mask = pos
                    .lower_equal(last.clone().reshape([b, 1]).expand([b, t]))
                    .float(); // [b, t]
                let count = mask.clone().sum_dim(1); // [b, 1]
                let summed = (hs * mask.unsqueeze_dim::<3>(2).expand([b, t, width]))
                    .sum_dim(1)
                    .reshape([b, width]);
                summed / count.expand([b, width])
            }
        };
        Gaussian::from_concat(linear(&self.out, h))
    }
}

/// (h0, c0) = (tanh(W z), 0); each step reads the previous token's
/// embedding concatenated with z, and predicts the next token.
#[derive(Module, Debug)]
pub struct LstmTextDecoder {
    embed: Embedding,
    init: Linear,
    lstm: Lstm,
    out: Linear,
}

impl LstmTextDecoder {
    pub fn new(vocab: usize, embed: usize, hidden: usize, latent: usize, device: &Device) -> Self {
        Self {
            embed: EmbeddingConfig::new(vocab, embed).init(device),
            init: LinearConfig::new(latent, hidden).init(device),
            lstm: LstmConfig::new(embed + latent, hidden, true).init(device),
            out: LinearConfig::new(hidden, vocab).init(device),
        }
    }

    /// Teacher-forced negative log-likelihood of each caption.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`, `tokens`: `[batch, time]` → `[batch]` (summed over tokens)
    pub fn nll(&self, z: Tensor<2>, tokens: Tensor<2, Int>) -> Tensor<1> {
        let (inputs, targets) = shift(tokens); // [b, t-1] each
        let state = self.start(z.clone());
        let x = with_latent(self.embed.forward(inputs), z); // [b, t-1, embed + latent]
        let (hs, _) = self.lstm.forward(x, Some(state)); // [b, t-1, hidden]
        caption_nll(log_softmax(linear(&self.out, hs), 2), targets)
    }
}

impl StepDecoder for LstmTextDecoder {
    /// (h, c), each `[batch, hidden]`: h0 = tanh(W z), c0 = 0.
    type State = LstmState<2>;

    fn start(&self, z: Tensor<2>) -> LstmState<2> {
        let h = linear(&self.init, z).tanh();
        LstmState::new(h.zeros_like(), h)
    }

    fn step(
        &self,
        z: Tensor<2>,
        state: LstmState<2>,
        tok: Tensor<1, Int>,
    ) -> (Tensor<2>, LstmState<2>) {
        let [b] = tok.dims();
        let e = self.embed.forward(tok.reshape([b, 1])); // [b, 1, embed]
        let x = Tensor::cat(vec![e, z.unsqueeze_dim::<3>(1)], 2);
        let (hs, state) = self.lstm.forward(x, Some(state)); // [b, 1, hidden]
        let hidden = hs.dims()[2];
        let logits = linear(&self.out, hs.reshape([b, hidden]));
        (log_softmax(logits, 1), state)
    }

    fn select(s: LstmState<2>, idx: Tensor<1, Int>) -> LstmState<2> {
        LstmState::new(s.cell.select(0, idx.clone()), s.hidden.select(0, idx))
    }
}
