//! The text modality: encoder/decoder chosen by [`TextModel`].

pub mod decoding;
pub mod gru;
pub mod lstm;
pub mod multihot;
pub mod transformer;
pub mod xlstm;

use burn::prelude::*;

use crate::config::TextModel;
use crate::modality::text::decoding::StepDecoder;
use crate::modality::text::gru::{GruTextDecoder, GruTextEncoder};
use crate::modality::text::lstm::{LstmTextDecoder, LstmTextEncoder};
use crate::modality::text::multihot::{MultiHotDecoder, MultiHotEncoder};
use crate::modality::text::transformer::{TransformerTextDecoder, TransformerTextEncoder};
use crate::modality::text::xlstm::{XLstmTextDecoder, XLstmTextEncoder};
use crate::nn::gaussian::Gaussian;

#[derive(Module, Debug)]
// One value per model: the variants' sizes do not matter, and burn's
// Module derive does not box them.
#[allow(clippy::large_enum_variant)]
pub enum TextEncoder {
    Gru(GruTextEncoder),
    Lstm(LstmTextEncoder),
    XLstm(XLstmTextEncoder),
    Transformer(TransformerTextEncoder),
    MultiHot(MultiHotEncoder),
}

#[derive(Module, Debug)]
// One value per model: the variants' sizes do not matter, and burn's
// Module derive does not box them.
#[allow(clippy::large_enum_variant)]
pub enum TextDecoder {
    Gru(GruTextDecoder),
    Lstm(LstmTextDecoder),
    XLstm(XLstmTextDecoder),
    Transformer(TransformerTextDecoder),
    MultiHot(MultiHotDecoder),
}

impl TextModel {
    pub fn init(&self, vocab: usize, latent: usize, device: &Device) -> (TextEncoder, TextDecoder) {
        match *self {
            TextModel::Gru { embed, hidden } => (
                TextEncoder::Gru(GruTextEncoder::new(vocab, embed, hidden, latent, device)),
                TextDecoder::Gru(GruTextDecoder::new(vocab, embed, hidden, latent, device)),
            ),
            TextModel::Lstm {
                embed,
                hidden,
                bidirectional,
            } => (
                TextEncoder::Lstm(LstmTextEncoder::new(
                    vocab,
                    embed,
                    hidden,
                    bidirectional,
                    latent,
                    device,
                )),
                TextDecoder::Lstm(LstmTextDecoder::new(vocab, embed, hidden, latent, device)),
            ),
            TextModel::XLstm { embed, hidden } => (
                TextEncoder::XLstm(XLstmTextEncoder::new(vocab, embed, hidden, latent, device)),
                TextDecoder::XLstm(XLstmTextDecoder::new(vocab, embed, hidden, latent, device)),
            ),
            TextModel::Transformer {
                d_model,
                heads,
                layers,
                ff,
            } => (
                TextEncoder::Transformer(TransformerTextEncoder::new(
                    vocab, d_model, heads, layers, ff, latent, device,
                )),
                TextDecoder::Transformer(TransformerTextDecoder::new(
                    vocab, d_model, heads, layers, ff, latent, device,
                )),
            ),
            TextModel::MultiHot { hidden } => (
                TextEncoder::MultiHot(MultiHotEncoder::new(vocab, hidden, latent, device)),
                TextDecoder::MultiHot(MultiHotDecoder::new(vocab, hidden, latent, device)),
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
            TextEncoder::Lstm(m) => m.forward(tokens, last),
            TextEncoder::XLstm(m) => m.forward(tokens, last),
            TextEncoder::Transformer(m) => m.forward(tokens, last),
            TextEncoder::MultiHot(m) => m.forward(tokens, last),
        }
    }
}

impl TextDecoder {
    /// # Shapes
    /// `z`: `[batch, latent]`, `tokens`: `[batch, time]` → `[batch]`
    pub fn nll(&self, z: Tensor<2>, tokens: Tensor<2, Int>) -> Tensor<1> {
        match self {
            TextDecoder::Gru(m) => m.nll(z, tokens),
            TextDecoder::Lstm(m) => m.nll(z, tokens),
            TextDecoder::XLstm(m) => m.nll(z, tokens),
            TextDecoder::Transformer(m) => m.nll(z, tokens),
            TextDecoder::MultiHot(m) => m.nll(z, tokens),
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
            TextDecoder::Lstm(m) => m.decode(z, max_len, temperature),
            TextDecoder::XLstm(m) => m.decode(z, max_len, temperature),
            TextDecoder::Transformer(m) => m.decode(z, max_len, temperature),
            TextDecoder::MultiHot(m) => m.decode(z, max_len, temperature),
        }
    }

    /// The most probable caption of each z found by beam search.
    pub fn decode_beam(&self, z: Tensor<2>, max_len: usize, width: usize) -> Vec<Vec<usize>> {
        match self {
            TextDecoder::Gru(m) => m.decode_beam(z, max_len, width),
            TextDecoder::Lstm(m) => m.decode_beam(z, max_len, width),
            TextDecoder::XLstm(m) => m.decode_beam(z, max_len, width),
            TextDecoder::Transformer(m) => m.decode_beam(z, max_len, width),
            TextDecoder::MultiHot(m) => m.decode_beam(z, max_len, width),
        }
    }
}
