//! The model's shared settings (latent, fusion) and the architectures of
//! the image and caption experts. The modalities themselves are
//! `[[modalities]]` ([`crate::modality::ModalityConfig`]).

use serde::{Deserialize, Serialize};

use super::ImageLikelihood;
pub use crate::modality::image::levels::Levels;

/// How the modality posteriors are fused into the joint posterior.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Fusion {
    /// Product of Gaussian experts with a standard-normal prior expert (MVAE,
    /// Wu & Goodman 2018): the joint ELBO plus the single-modality terms that
    /// `loss.unimodal_target` selects.
    #[default]
    Poe,
    /// Mixture of the unimodal experts (MMVAE, Shi et al. 2019): stratified,
    /// one draw from each expert reconstructs both modalities, and the KL is
    /// the one-sample estimate log q_mix(z) − log p(z) of the mixture.
    Moe,
    /// Mixture of the products of every modality subset (MoPoE, Sutter et
    /// al. 2021): for image + text {image}, {text} and {image, text}, one
    /// stratified draw each, every draw reconstructing every modality; the
    /// mixture's KL is taken as the mean of its components' KLs, as in the
    /// authors' code. With many modalities `loss.sampled_subsets` draws
    /// that many subsets per step instead of all 2^M − 1.
    #[serde(rename = "mopoe")]
    MoPoe,
    /// Product of experts trained on the total-correlation objective
    /// (MVTCAE, Hwang et al. 2021): one draw from the joint posterior
    /// reconstructs every modality, weighted (M − α)/M, and pays
    /// β·[(1 − α)·KL(q(z|X) ‖ p(z)) + (α/M)·Σ_m KL(q(z|X) ‖ q(z|x_m))], so
    /// each modality's posterior learns to cover the joint one without
    /// terms of its own; α is `loss.mvtcae_alpha` (0.1 by default).
    Mvtcae,
    /// Learned fusion baseline: a network reads the concatenated expert
    /// outputs [μ, log σ²] (absent modalities masked) and returns the
    /// posterior; `model.fusion_hidden` wide. Trained on the same terms as
    /// `poe`, with optional `loss.modality_dropout` on the joint term.
    Concat,
    /// Learned fusion baseline: cross-attention between the experts'
    /// outputs, each cut into four tokens that attend to the other
    /// modalities' tokens, `model.fusion_hidden` wide (four heads);
    /// otherwise as `concat`.
    Attention,
}

impl Fusion {
    /// Whether a learned network fuses the experts (`concat`, `attention`).
    pub fn is_learned(self) -> bool {
        matches!(self, Fusion::Concat | Fusion::Attention)
    }

    /// Whether the objective is the PoE-style sum of the joint and the
    /// single-modality ELBOs (`poe` and the learned fusions); the others'
    /// terms are fixed by the fusion.
    pub fn sums_subset_elbos(self) -> bool {
        matches!(self, Fusion::Poe | Fusion::Concat | Fusion::Attention)
    }
}

/// Image encoder/decoder architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ImageModel {
    /// Fully connected: pixels → hidden → hidden → latent, and back.
    Mlp { hidden: usize },
    /// DCGAN-style: stride-2 convolutions (28→14→7, 64→…→4), then a linear
    /// layer. The first layer has `channels` channels, doubled at each
    /// halving of the side up to `max_channels` (e.g. `channels = 32,
    /// max_channels = 32`: 32 at every resolution, more width where the
    /// image is large for the same cost). With `refine`, the decoder adds
    /// a 3×3 convolution at half and at full side, the last one drawing
    /// the colours (sharper outlines, about twice the decoder's compute).
    /// With `levels = "counts"` (or `"presence"`), the encoder also reads
    /// how many pixels take each of the 256 intensity levels of each
    /// channel (or only which levels occur), through a linear layer into
    /// its hidden layer: a cue held in a few exact levels (a colour's
    /// luminance in a greyscale copy) is then one weight away, where
    /// convolutions trained from the usual initialisation miss it. The
    /// levels are a step function of the image: no gradient flows back
    /// through them (to a generated image the caption cycle re-encodes).
    /// With `holes = 128`, a pixel whose every channel is at level 128 is a
    /// hole (the `masked` copy's square): the first convolution reads one
    /// more channel, 1 at holes and 0 elsewhere, so that the encoder tells
    /// the hole from the picture, as inpainting networks take their mask.
    Conv {
        channels: usize,
        hidden: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_channels: Option<usize>,
        #[serde(default, skip_serializing_if = "is_false")]
        refine: bool,
        #[serde(default, skip_serializing_if = "Levels::is_off")]
        levels: Levels,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "hole_level"
        )]
        holes: Option<u8>,
    },
    /// Residual: the DCGAN resolutions with a residual block with
    /// Squeeze-and-Excitation at each, and with `attention` one
    /// self-attention block at the lowest resolution.
    Residual {
        channels: usize,
        hidden: usize,
        #[serde(default)]
        attention: bool,
    },
}

/// Caption encoder/decoder architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum TextModel {
    /// GRU encoder (last hidden state) and autoregressive GRU decoder
    /// conditioned on z at every step.
    Gru { embed: usize, hidden: usize },
    /// LSTM encoder (last output, or with `bidirectional` the mean of both
    /// directions' outputs over the caption) and autoregressive LSTM decoder
    /// conditioned on z at every step.
    Lstm {
        embed: usize,
        hidden: usize,
        #[serde(default)]
        bidirectional: bool,
    },
    /// xLSTM (Beck et al. 2024): an mLSTM block then an sLSTM block, each
    /// pre-LayerNorm and residual, `hidden` wide; the encoder reads the
    /// output at `<eos>`, the decoder is conditioned on z at every step.
    #[serde(rename = "xlstm")]
    XLstm { embed: usize, hidden: usize },
    /// Transformer encoder (output at `<eos>`) and causal transformer
    /// decoder with W z added to every input position; pre-LayerNorm,
    /// `heads` must divide `d_model`.
    Transformer {
        d_model: usize,
        heads: usize,
        layers: usize,
        ff: usize,
    },
    /// The multi-hot attribute modality: the caption as the set of its
    /// words (a multi-hot vector over the vocabulary), MLP encoder and
    /// decoder with `hidden` units, each word an independent Bernoulli.
    /// Word order is not modelled; decoded words come out in vocabulary
    /// order, so use it where each attribute has its own word (CelebA,
    /// shapes levels 1–3).
    MultiHot { hidden: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Latent dimensionality.
    pub latent: usize,
    /// Dimensionality of an image-only latent w beside the shared z
    /// (modality-specific subspace, as in MMVAE+, Palumbo et al. 2023), for
    /// each image modality. The image decoder reads [z, w]; the other
    /// modalities see only z. w holds what a caption
    /// does not say (pose, position, texture), so z can carry the shared
    /// content alone and text→image samples w from its prior. 0 = none.
    #[serde(default)]
    pub private_latent: usize,
    #[serde(default)]
    pub fusion: Fusion,
    /// Width of the learned fusion network (`concat`, `attention`).
    #[serde(default = "default_fusion_hidden")]
    pub fusion_hidden: usize,
    /// Longest caption in tokens, counting `<bos>` and `<eos>` (unused by a
    /// model without a text modality).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// The two-modality form (`model.image`, `model.image_likelihood`,
    /// `model.text` with `loss.image_weight`/`text_weight`): read and moved
    /// into `[[modalities]]` as `image` and `text` when a config is loaded;
    /// never written.
    #[serde(default, rename = "image", skip_serializing)]
    pub legacy_image: Option<ImageModel>,
    #[serde(default, rename = "image_likelihood", skip_serializing)]
    pub legacy_image_likelihood: Option<ImageLikelihood>,
    #[serde(default, rename = "text", skip_serializing)]
    pub legacy_text: Option<TextModel>,
}

fn default_max_len() -> usize {
    24
}

pub(super) fn default_fusion_hidden() -> usize {
    128
}

/// A conv model's `holes`: a level of 0..=255, refused by name otherwise.
fn hole_level<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let v = i64::deserialize(d)?;
    u8::try_from(v)
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("holes = {v}: must be a level in 0..=255")))
}

fn is_false(b: &bool) -> bool {
    !*b
}
