//! The text modality: encoder/decoder chosen by [`TextModel`].

use burn::prelude::*;

use crate::config::TextModel;
use crate::gaussian::Gaussian;
use crate::text_gru::{GruTextDecoder, GruTextEncoder};

#[derive(Module, Debug)]
pub enum TextEncoder {
    Gru(GruTextEncoder),
}

#[derive(Module, Debug)]
pub enum TextDecoder {
    Gru(GruTextDecoder),
}

impl TextModel {
    pub fn init(&self, vocab: usize, latent: usize, device: &Device) -> (TextEncoder, TextDecoder) {
        match *self {
            TextModel::Gru { embed, hidden } => (
                TextEncoder::Gru(GruTextEncoder::new(vocab, embed, hidden, latent, device)),
                TextDecoder::Gru(GruTextDecoder::new(vocab, embed, hidden, latent, device)),
            ),
        }
    }
}

impl TextEncoder {
    /// # Shapes
    /// `tokens`: `[batch, time]`, `last`: `[batch]` → posterior over `[batch, latent]`
    pub fn forward(&self, tokens: Tensor<2, Int>, last: Tensor<1, Int>) -> Gaussian {
        match self {
            TextEncoder::Gru(m) => m.forward(tokens, last),
        }
    }
}

impl TextDecoder {
    /// # Shapes
    /// `z`: `[batch, latent]`, `tokens`: `[batch, time]` → `[batch]`
    pub fn nll(&self, z: Tensor<2>, tokens: Tensor<2, Int>) -> Tensor<1> {
        match self {
            TextDecoder::Gru(m) => m.nll(z, tokens),
        }
    }

    pub fn decode(
        &self,
        z: Tensor<2>,
        max_len: usize,
        temperature: Option<f32>,
    ) -> Vec<Vec<usize>> {
        match self {
            TextDecoder::Gru(m) => m.decode(z, max_len, temperature),
        }
    }
}
