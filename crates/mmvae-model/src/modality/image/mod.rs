//! The image modality: encoder/decoder chosen by [`ImageModel`].

pub mod conv;
pub mod levels;
pub mod likelihood;
pub mod mlp;
pub mod residual;

use burn::prelude::*;

use crate::config::ImageModel;
use crate::modality::image::conv::{ConvImageDecoder, ConvImageEncoder, ConvSpec};
use crate::modality::image::mlp::{MlpImageDecoder, MlpImageEncoder};
use crate::modality::image::residual::{ResidualImageDecoder, ResidualImageEncoder};
use crate::nn::gaussian::Gaussian;

#[derive(Module, Debug)]
// One value per model: the variants' sizes do not matter, and burn's
// Module derive does not box them.
#[allow(clippy::large_enum_variant)]
pub enum ImageEncoder {
    Mlp(MlpImageEncoder),
    Conv(ConvImageEncoder),
    Residual(ResidualImageEncoder),
}

#[derive(Module, Debug)]
// One value per model: the variants' sizes do not matter, and burn's
// Module derive does not box them.
#[allow(clippy::large_enum_variant)]
pub enum ImageDecoder {
    Mlp(MlpImageDecoder),
    Conv(ConvImageDecoder),
    Residual(ResidualImageDecoder),
}

impl ImageModel {
    /// Build the encoder and decoder for `colours`×`side`×`side` images.
    pub fn init(
        &self,
        side: usize,
        colours: usize,
        latent: usize,
        device: &Device,
    ) -> (ImageEncoder, ImageDecoder) {
        let pixels = colours * side * side;
        match *self {
            ImageModel::Mlp { hidden } => (
                ImageEncoder::Mlp(MlpImageEncoder::new(pixels, hidden, latent, device)),
                ImageDecoder::Mlp(MlpImageDecoder::new(pixels, hidden, latent, device)),
            ),
            ImageModel::Conv {
                channels,
                hidden,
                max_channels,
                refine,
                levels,
                holes,
            } => {
                let spec = ConvSpec {
                    side,
                    colours,
                    channels,
                    max_channels,
                    hidden,
                    latent,
                };
                (
                    ImageEncoder::Conv(ConvImageEncoder::new(spec, levels, holes, device)),
                    ImageDecoder::Conv(ConvImageDecoder::new(spec, refine, device)),
                )
            }
            ImageModel::Residual {
                channels,
                hidden,
                attention,
            } => (
                ImageEncoder::Residual(ResidualImageEncoder::new(
                    side, colours, channels, hidden, latent, attention, device,
                )),
                ImageDecoder::Residual(ResidualImageDecoder::new(
                    side, colours, channels, hidden, latent, attention, device,
                )),
            ),
        }
    }
}

impl ImageEncoder {
    /// # Shapes
    /// `x`: `[batch, pixels]` → posterior over `[batch, latent]`
    pub fn forward(&self, x: Tensor<2>) -> Gaussian {
        match self {
            ImageEncoder::Mlp(m) => m.forward(x),
            ImageEncoder::Conv(m) => m.forward(x),
            ImageEncoder::Residual(m) => m.forward(x),
        }
    }
}

impl ImageDecoder {
    /// # Shapes
    /// `z`: `[batch, latent]` → logits `[batch, pixels]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        match self {
            ImageDecoder::Mlp(m) => m.forward(z),
            ImageDecoder::Conv(m) => m.forward(z),
            ImageDecoder::Residual(m) => m.forward(z),
        }
    }
}
