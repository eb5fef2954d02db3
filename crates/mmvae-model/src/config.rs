//! Run configuration, read from TOML and saved beside every checkpoint so
//! `generate`/`eval` rebuild exactly the model that was trained.
//!
//! `TrainConfig { model, optim, data, loss, seed }` nests the component
//! configs; each component config has an `init(&device)` that builds it.

use mmvae_data::DatasetKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
pub use crate::image_likelihood::ImageLikelihood;
pub use crate::perceptual::{FeatureNetwork, PerceptualConfig};
pub use crate::schedule::Anneal;

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
    /// al. 2021): {image}, {text} and {image, text}, one stratified draw each,
    /// every draw reconstructing both modalities; the mixture's KL is taken
    /// as the mean of its components' KLs, as in the authors' code.
    #[serde(rename = "mopoe")]
    MoPoe,
    /// Learned fusion baseline: a network reads the concatenated expert
    /// outputs [μ, log σ²] (absent modalities masked) and returns the
    /// posterior; `model.fusion_hidden` wide. Trained on the same terms as
    /// `poe`, with optional `loss.modality_dropout` on the joint term.
    Concat,
    /// Learned fusion baseline: bidirectional cross-attention between the
    /// image and text experts' outputs, each cut into four tokens,
    /// `model.fusion_hidden` wide (four heads); otherwise as `concat`.
    Attention,
}

impl Fusion {
    /// Whether a learned network fuses the experts (`concat`, `attention`).
    pub fn is_learned(self) -> bool {
        matches!(self, Fusion::Concat | Fusion::Attention)
    }

    /// Whether the objective is the PoE-style sum of the joint and the
    /// single-modality ELBOs (`poe` and the learned fusions).
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
    Conv {
        channels: usize,
        hidden: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_channels: Option<usize>,
        #[serde(default, skip_serializing_if = "is_false")]
        refine: bool,
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
    /// (modality-specific subspace, as in MMVAE+, Palumbo et al. 2023). The
    /// image decoder reads [z, w]; text sees only z. w holds what a caption
    /// does not say (pose, position, texture), so z can carry the shared
    /// content alone and text→image samples w from its prior. 0 = none.
    #[serde(default)]
    pub private_latent: usize,
    #[serde(default)]
    pub fusion: Fusion,
    /// Width of the learned fusion network (`concat`, `attention`).
    #[serde(default = "default_fusion_hidden")]
    pub fusion_hidden: usize,
    pub image: ImageModel,
    /// The image decoder's pixel likelihood: `{ kind = "bernoulli" }`
    /// (default), `{ kind = "gaussian", scale = 0.1 }` or `{ kind =
    /// "laplace", scale = 0.1, learned = true }`.
    #[serde(default)]
    pub image_likelihood: ImageLikelihood,
    pub text: TextModel,
    /// Longest caption in tokens, counting `<bos>` and `<eos>`.
    pub max_len: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    pub batch_size: usize,
    pub epochs: usize,
    /// Clip each gradient tensor's norm to this value (none if absent).
    #[serde(default)]
    pub grad_clip: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: DatasetKind,
    /// Folder with the dataset's files (for `pairs`: the captions file, or
    /// a folder holding captions.csv / captions.jsonl); if absent,
    /// `--data-dir`, `$MMVAE_DATA`, then system folders are searched.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `pairs` only: images are centre-cropped to a square and resized to
    /// this side (default 64).
    #[serde(default)]
    pub image_size: Option<usize>,
    /// `pairs` only: 1 (grey) or 3 (RGB, default); images with other
    /// channel counts are converted and counted.
    #[serde(default)]
    pub channels: Option<usize>,
    /// `pairs` only: `"stop"` (default) at the first bad line or image,
    /// naming it, or `"skip"` bad items and count them at the end.
    #[serde(default)]
    pub bad_items: mmvae_data::pairs::BadItems,
    /// Use only the first N training images (all if absent).
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// Images taken from the end of the training split for validation.
    pub val_size: usize,
    /// Seed of the caption templates drawn for each image.
    pub caption_seed: u64,
    /// Caption tokens: `word` (default) or `char` (characters, the space
    /// included; `model.max_len` must then hold the longest caption's
    /// characters).
    #[serde(default)]
    pub tokenizer: mmvae_data::TokenLevel,
}

/// Which modalities a single-modality ELBO term reconstructs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UnimodalTarget {
    /// Only the observed modality (the original MVAE sub-sampled ELBO).
    Observed,
    /// Both modalities from the one observed (E_q(z|x)[log p(x,y|z)] − KL):
    /// still a lower bound on log p(x,y), and it trains cross-generation.
    #[default]
    All,
    /// No single-modality ELBO terms: only the joint ELBO (with
    /// `align_weight`, the JMVAE-KL objective of Suzuki et al. 2016).
    None,
    /// The caption as the image's prior (a conditional VAE, Sohn et al.
    /// 2015): the image-only term is E_q(z|x)[log p(x|z) + log p(y|z)] −
    /// KL(q(z|x) ‖ q(z|y)) instead of a KL to N(0, I), and the text-only
    /// term is the text ELBO. q(z|y) learns to cover the posteriors of all
    /// the images its caption describes, and the image decoder only ever
    /// decodes draws of image posteriors, never a draw from q(z|y): no term
    /// asks it to reconstruct an image from its caption alone, which is
    /// what makes text→image samples class-average blurs under `"all"`.
    Conditional,
}

/// Which alignment term `loss.align_weight` weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Alignment {
    /// JMVAE-KL posterior matching: KL(q(z|x,y) ‖ q(z|x)) + KL(q(z|x,y) ‖ q(z|y)).
    #[default]
    Jmvae,
    /// KL(q(z|image) ‖ q(z|text)) between the unimodal posteriors.
    ImageTextKl,
    /// ‖μ_image − μ_text‖² + ‖σ_image − σ_text‖² between the unimodal
    /// posteriors, summed over latent dimensions.
    Mse,
    /// Symmetric InfoNCE (CLIP-style) on the posterior means: each image's
    /// mean must pick its own caption's mean out of the batch, and each
    /// caption's its image's, by cosine similarity / `loss.temperature`.
    InfoNce,
}

/// The bound a mixture-of-experts model (`fusion = "moe"`) optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The stratified ELBO, one draw from each unimodal posterior.
    #[default]
    Elbo,
    /// The stratified importance-weighted bound (IWAE): K draws from each
    /// unimodal posterior, log mean exp of their weights
    /// log p(z) p(x|z) p(y|z) / q_mix(z) (Shi et al. 2019).
    Iwae,
    /// The same bound with doubly reparameterised gradients (DReG, Tucker
    /// et al. 2019): the posterior's parameters are held fixed inside
    /// q_mix(z), and the path through z is weighted by the squared
    /// normalised weights; lower-variance encoder gradients.
    Dreg,
}

/// The loss of a GAN discriminator and of the generator against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AdversarialLoss {
    /// D: relu(1 − D(real)) + relu(1 + D(fake)); G: −D(fake).
    #[default]
    Hinge,
    /// D: softplus(−D(real)) + softplus(D(fake)); G: softplus(−D(fake)).
    NonSaturating,
}

/// The patch discriminator of adversarial refinement and its optimizer.
/// Its loss enters the model's objective with `loss.adversarial_weight`
/// (usually set only in a late phase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdversarialConfig {
    #[serde(default)]
    pub loss: AdversarialLoss,
    /// Channels of the discriminator's first convolution (doubling after).
    #[serde(default = "default_disc_channels")]
    pub channels: usize,
    /// The discriminator's Adam learning rate.
    #[serde(default = "default_disc_lr")]
    pub lr: f64,
    /// The discriminator's Adam β1 (0.5 is the usual GAN choice).
    #[serde(default = "default_disc_beta1")]
    pub beta1: f32,
    /// Weight γ of the R1 gradient penalty on real images, γ/2 ·
    /// E‖∇ₓ D(x)‖² (Mescheder et al. 2018), added to the discriminator's
    /// loss; 0 (default) = none. burn's autodiff has no second-order
    /// gradients, so ‖∇ₓ D(x)‖² is estimated by central differences along
    /// a random Gaussian direction per image (E_u[(∇D·u)²] = ‖∇D‖²); see
    /// [`crate::discriminator::r1_penalty`].
    #[serde(default)]
    pub r1: f32,
}

fn default_disc_channels() -> usize {
    32
}
fn default_disc_lr() -> f64 {
    2e-4
}
fn default_disc_beta1() -> f32 {
    0.5
}

impl Default for AdversarialConfig {
    fn default() -> Self {
        Self {
            loss: AdversarialLoss::Hinge,
            channels: default_disc_channels(),
            lr: default_disc_lr(),
            beta1: default_disc_beta1(),
            r1: 0.0,
        }
    }
}

/// One phase of phased training: the epochs it lasts and the loss weights
/// (and learning rate) that replace the base `[loss]`/`[optim]` values
/// while it runs, e.g. unimodal reconstruction → cross-modal alignment →
/// adversarial refinement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub name: String,
    pub epochs: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default)]
    pub loss: LossOverride,
}

/// Loss weights a [`Phase`] replaces; absent ones keep the `[loss]` value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub align_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perceptual_weight: Option<f32>,
}

impl LossOverride {
    /// `base` with these values put in.
    pub fn apply(&self, base: &LossConfig) -> LossConfig {
        let mut l = base.clone();
        let set = |dst: &mut f32, v: Option<f32>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut l.beta, self.beta);
        set(&mut l.image_weight, self.image_weight);
        set(&mut l.text_weight, self.text_weight);
        set(&mut l.cross_weight, self.cross_weight);
        set(&mut l.cycle_weight, self.cycle_weight);
        set(&mut l.align_weight, self.align_weight);
        set(&mut l.adversarial_weight, self.adversarial_weight);
        set(&mut l.perceptual_weight, self.perceptual_weight);
        l
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Weight of the KL term after annealing.
    pub beta: f32,
    /// Steps over which β warms up from 0 (0 = no annealing); with
    /// `kl_anneal = "cyclical"`, the length of one cycle.
    pub kl_anneal_steps: usize,
    /// Shape of β's warm-up: `linear` (default), `sigmoid` or `cyclical`.
    #[serde(default)]
    pub kl_anneal: Anneal,
    /// With `fusion = "moe"`: `elbo` (default), `iwae` or `dreg`.
    #[serde(default)]
    pub objective: Objective,
    /// Importance samples per modality for `iwae` and `dreg`.
    #[serde(default = "one_sample")]
    pub k: usize,
    /// Likelihood weight of the image (sum of per-pixel Bernoulli terms).
    pub image_weight: f32,
    /// Likelihood weight of the caption (sum of per-token terms).
    pub text_weight: f32,
    #[serde(default)]
    pub unimodal_target: UnimodalTarget,
    /// Weight α of the posterior-matching term
    /// α·[KL(q(z|x,y) ‖ q(z|x)) + KL(q(z|x,y) ‖ q(z|y))] (JMVAE-KL). It makes
    /// each unimodal posterior cover the joint posteriors of its inputs, so
    /// cross-generation samples land where the decoders were trained.
    #[serde(default)]
    pub align_weight: f32,
    /// The alignment term `align_weight` weighs: `jmvae` (default),
    /// `image-text-kl` or `mse`.
    #[serde(default)]
    pub align: Alignment,
    /// With a learned fusion: the probability that the joint term of an
    /// item sees only one modality (image or text, equally likely).
    #[serde(default)]
    pub modality_dropout: f32,
    /// Temperature of `align = "info-nce"`.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Steps over which the alignment weight warms up (0 = none).
    #[serde(default)]
    pub align_anneal_steps: usize,
    /// Shape of the alignment weight's warm-up.
    #[serde(default)]
    pub align_anneal: Anneal,
    /// Scale of the image reconstruction from q(z|text) inside the text-only
    /// term when `unimodal_target = "all"` with `poe`. A caption leaves pose
    /// and position open, so a pixel likelihood pulls every image drawn from
    /// q(z|text) towards one class-average blur; below 1 this pull eases
    /// (the caption from q(z|image) keeps its full weight).
    #[serde(default = "one")]
    pub cross_weight: f32,
    /// Weight of a caption cycle on text→image: the image decoded from
    /// [z ~ q(z|text), w ~ prior] is encoded again and must be captioned as
    /// the text (the caption's NLL from that image's posterior mean). It asks
    /// generated images to show what the caption says without asking them to
    /// match one particular image's pixels. 0 = off.
    #[serde(default)]
    pub cycle_weight: f32,
    /// Weight of the generator's adversarial loss against the patch
    /// discriminator of `[adversarial]`, on the joint reconstructions and
    /// on the images drawn from q(z|text) (per image: the sum over its
    /// patches). 0 = off, and no discriminator is trained.
    #[serde(default)]
    pub adversarial_weight: f32,
    /// Weight of the perceptual loss: the distance between the activations
    /// of the `[perceptual]` network on each reconstruction (joint and
    /// image-only rows) and on its image, summed over activations.
    /// 0 = off.
    #[serde(default)]
    pub perceptual_weight: f32,
}

fn one() -> f32 {
    1.0
}

fn default_fusion_hidden() -> usize {
    128
}

fn default_temperature() -> f32 {
    0.1
}

fn one_sample() -> usize {
    1
}

impl Default for LossConfig {
    /// β = 1 without annealing, unit likelihood weights, `"all"`, no
    /// alignment, cycle or adversarial term.
    fn default() -> Self {
        Self {
            beta: 1.0,
            kl_anneal_steps: 0,
            kl_anneal: Anneal::Linear,
            objective: Objective::Elbo,
            k: 1,
            image_weight: 1.0,
            text_weight: 1.0,
            unimodal_target: UnimodalTarget::All,
            align_weight: 0.0,
            align: Alignment::Jmvae,
            temperature: default_temperature(),
            modality_dropout: 0.0,
            align_anneal_steps: 0,
            align_anneal: Anneal::Linear,
            cross_weight: 1.0,
            cycle_weight: 0.0,
            adversarial_weight: 0.0,
            perceptual_weight: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of weight initialisation, shuffling and sampling.
    pub seed: u64,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub data: DataConfig,
    pub loss: LossConfig,
    /// The patch discriminator, for `adversarial_weight > 0` in `[loss]` or
    /// in a phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<AdversarialConfig>,
    /// The feature network of the perceptual loss, for `perceptual_weight
    /// > 0` in `[loss]` or in a phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perceptual: Option<PerceptualConfig>,
    /// Phased training: when given, the phases run in order and their epochs
    /// must add up to `optim.epochs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    /// Fit a text-conditional mixture prior to the best checkpoint after
    /// training (see [`crate::text_prior`]); text→image then draws from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_prior: Option<crate::text_prior::TextPriorConfig>,
}

fn check(ok: bool, field: &str, msg: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(ModelError::Config(format!("`{field}` {msg}")))
    }
}

/// The checks of one loss configuration; `at` names it in messages.
fn check_loss(l: &LossConfig, m: &ModelConfig, at: &str) -> Result<()> {
    check(
        m.fusion.sums_subset_elbos() || l.unimodal_target == UnimodalTarget::All,
        &format!("{at}.unimodal_target"),
        "must be \"all\" (the default) with mixture fusion (moe, mopoe): their terms always reconstruct both modalities",
    )?;
    check(
        l.beta.is_finite() && l.beta >= 0.0,
        &format!("{at}.beta"),
        "must be >= 0",
    )?;
    check(
        l.image_weight.is_finite() && l.image_weight > 0.0,
        &format!("{at}.image_weight"),
        "must be > 0",
    )?;
    check(
        l.text_weight.is_finite() && l.text_weight > 0.0,
        &format!("{at}.text_weight"),
        "must be > 0",
    )?;
    check(
        l.cycle_weight.is_finite() && l.cycle_weight >= 0.0,
        &format!("{at}.cycle_weight"),
        "must be >= 0",
    )?;
    check(
        l.cross_weight.is_finite() && l.cross_weight >= 0.0,
        &format!("{at}.cross_weight"),
        "must be >= 0",
    )?;
    check(
        l.cross_weight == 1.0
            || (m.fusion.sums_subset_elbos() && l.unimodal_target == UnimodalTarget::All),
        &format!("{at}.cross_weight"),
        "applies only with fusion \"poe\", \"concat\" or \"attention\" and unimodal_target \"all\" (leave it at 1 otherwise)",
    )?;
    check(
        l.align_weight.is_finite() && l.align_weight >= 0.0,
        &format!("{at}.align_weight"),
        "must be >= 0",
    )?;
    check(
        l.modality_dropout.is_finite() && (0.0..1.0).contains(&l.modality_dropout),
        &format!("{at}.modality_dropout"),
        "must be in [0, 1)",
    )?;
    check(
        l.modality_dropout == 0.0 || m.fusion.is_learned(),
        &format!("{at}.modality_dropout"),
        "applies only to the learned fusions (\"concat\", \"attention\")",
    )?;
    check(
        l.temperature.is_finite() && l.temperature > 0.0,
        &format!("{at}.temperature"),
        "must be > 0",
    )?;
    check(
        l.objective == Objective::Elbo || m.fusion == Fusion::Moe,
        &format!("{at}.objective"),
        "\"iwae\" and \"dreg\" need fusion \"moe\"",
    )?;
    check(
        l.objective == Objective::Elbo || m.private_latent == 0,
        &format!("{at}.objective"),
        "\"iwae\" and \"dreg\" do not support model.private_latent yet",
    )?;
    check(
        (1..=1000).contains(&l.k),
        &format!("{at}.k"),
        "must be in 1..=1000",
    )?;
    check(
        l.perceptual_weight.is_finite() && l.perceptual_weight >= 0.0,
        &format!("{at}.perceptual_weight"),
        "must be >= 0",
    )?;
    check(
        l.adversarial_weight.is_finite() && l.adversarial_weight >= 0.0,
        &format!("{at}.adversarial_weight"),
        "must be >= 0",
    )?;
    Ok(())
}

impl DataConfig {
    /// How a `pairs` dataset is read (defaults where the config is silent).
    pub fn pairs_options(&self) -> mmvae_data::pairs::PairsOptions {
        let d = mmvae_data::pairs::PairsOptions::default();
        mmvae_data::pairs::PairsOptions {
            side: self.image_size.unwrap_or(d.side),
            channels: self.channels.unwrap_or(d.channels),
            bad: self.bad_items,
        }
    }
}

impl TrainConfig {
    pub fn from_toml_str(s: &str, origin: &Path) -> Result<Self> {
        let cfg: TrainConfig = toml::from_str(s).map_err(|e| {
            ModelError::Config(format!(
                "{}: {}",
                origin.display(),
                e.to_string().replace('\n', " ")
            ))
        })?;
        cfg.validate()
            .map_err(|e| ModelError::Config(format!("{}: {e}", origin.display())))?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path).map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_toml_str(&s, path)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises to TOML")
    }

    /// Reject values that would crash or silently do nothing.
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = &self.text_prior {
            p.validate()?;
        }
        let m = &self.model;
        check(
            (1..=4096).contains(&m.latent),
            "model.latent",
            "must be in 1..=4096",
        )?;
        check(
            (1..=16384).contains(&m.fusion_hidden),
            "model.fusion_hidden",
            "must be in 1..=16384",
        )?;
        if m.fusion == Fusion::Attention {
            check(
                m.fusion_hidden % 4 == 0,
                "model.fusion_hidden",
                "must be divisible by the 4 attention heads",
            )?;
            check(
                (2 * m.latent) % crate::fusion::TOKENS == 0,
                "model.latent",
                "must be even with fusion \"attention\" (each expert's output is cut into 4 tokens)",
            )?;
        }
        check(
            m.private_latent <= 4096,
            "model.private_latent",
            "must be in 0..=4096",
        )?;
        check(
            (3..=256).contains(&m.max_len),
            "model.max_len",
            "must be in 3..=256",
        )?;
        match m.image {
            ImageModel::Mlp { hidden } => check(
                (1..=16384).contains(&hidden),
                "model.image.hidden",
                "must be in 1..=16384",
            )?,
            ImageModel::Conv {
                channels, hidden, ..
            }
            | ImageModel::Residual {
                channels, hidden, ..
            } => {
                check(
                    (1..=1024).contains(&channels),
                    "model.image.channels",
                    "must be in 1..=1024",
                )?;
                check(
                    (1..=16384).contains(&hidden),
                    "model.image.hidden",
                    "must be in 1..=16384",
                )?;
            }
        }
        if let ImageModel::Conv {
            channels,
            max_channels: Some(max),
            ..
        } = m.image
        {
            check(
                (channels..=1024).contains(&max),
                "model.image.max_channels",
                "must be in model.image.channels..=1024",
            )?;
        }
        match m.text {
            TextModel::Gru { embed, hidden }
            | TextModel::Lstm { embed, hidden, .. }
            | TextModel::XLstm { embed, hidden } => {
                check(
                    (1..=4096).contains(&embed),
                    "model.text.embed",
                    "must be in 1..=4096",
                )?;
                check(
                    (1..=4096).contains(&hidden),
                    "model.text.hidden",
                    "must be in 1..=4096",
                )?;
            }
            TextModel::MultiHot { hidden } => {
                check(
                    (1..=16384).contains(&hidden),
                    "model.text.hidden",
                    "must be in 1..=16384",
                )?;
            }
            TextModel::Transformer {
                d_model,
                heads,
                layers,
                ff,
            } => {
                check(
                    (1..=4096).contains(&d_model),
                    "model.text.d_model",
                    "must be in 1..=4096",
                )?;
                check(
                    heads >= 1 && d_model % heads == 0,
                    "model.text.heads",
                    "must be at least 1 and divide d_model",
                )?;
                check(
                    (1..=24).contains(&layers),
                    "model.text.layers",
                    "must be in 1..=24",
                )?;
                check(
                    (1..=16384).contains(&ff),
                    "model.text.ff",
                    "must be in 1..=16384",
                )?;
                check(
                    m.max_len <= crate::text_transformer::MAX_POSITIONS,
                    "model.max_len",
                    "must be at most 64 with the transformer text model",
                )?;
            }
        }
        m.image_likelihood
            .check()
            .map_err(|e| ModelError::Config(format!("`model.image_likelihood.scale` {e}")))?;
        let o = &self.optim;
        check(
            o.lr.is_finite() && o.lr > 0.0 && o.lr < 1.0,
            "optim.lr",
            "must be in (0, 1)",
        )?;
        check(
            (1..=100_000).contains(&o.batch_size),
            "optim.batch_size",
            "must be in 1..=100000",
        )?;
        check(
            (1..=100_000).contains(&o.epochs),
            "optim.epochs",
            "must be in 1..=100000",
        )?;
        if let Some(c) = o.grad_clip {
            check(
                c.is_finite() && c > 0.0,
                "optim.grad_clip",
                "must be positive",
            )?;
        }
        let d = &self.data;
        check(d.val_size >= 1, "data.val_size", "must be at least 1")?;
        check(
            d.dataset != DatasetKind::MultiMnist || d.tokenizer == mmvae_data::TokenLevel::Char,
            "data.tokenizer",
            "must be \"char\" for multimnist (its captions are digit strings)",
        )?;
        if let Some(n) = d.train_limit {
            check(n >= 1, "data.train_limit", "must be at least 1")?;
        }
        let pairs = d.dataset == DatasetKind::Pairs;
        for (set, field) in [
            (d.image_size.is_some(), "data.image_size"),
            (d.channels.is_some(), "data.channels"),
            (d.bad_items != Default::default(), "data.bad_items"),
        ] {
            check(
                pairs || !set,
                field,
                "applies to the pairs dataset only (the others have fixed images)",
            )?;
        }
        if let Some(side) = d.image_size {
            check(
                (8..=512).contains(&side),
                "data.image_size",
                "must be in 8..=512",
            )?;
        }
        if let Some(c) = d.channels {
            check(c == 1 || c == 3, "data.channels", "must be 1 or 3")?;
        }
        check_loss(&self.loss, m, "loss")?;
        let mut total = 0usize;
        for (i, p) in self.phases.iter().enumerate() {
            let at = format!("phases[{i}]");
            check(
                !p.name.trim().is_empty(),
                &format!("{at}.name"),
                "must not be empty",
            )?;
            check(
                (1..=100_000).contains(&p.epochs),
                &format!("{at}.epochs"),
                "must be in 1..=100000",
            )?;
            if let Some(lr) = p.lr {
                check(
                    lr.is_finite() && lr > 0.0 && lr < 1.0,
                    &format!("{at}.lr"),
                    "must be in (0, 1)",
                )?;
            }
            check_loss(&p.loss.apply(&self.loss), m, &format!("{at}.loss"))?;
            total += p.epochs;
        }
        if !self.phases.is_empty() {
            check(
                total == o.epochs,
                "optim.epochs",
                &format!("must equal the sum of the phases' epochs ({total})"),
            )?;
        }
        let adversarial = self.loss.adversarial_weight > 0.0
            || self
                .phases
                .iter()
                .any(|p| p.loss.adversarial_weight.is_some_and(|w| w > 0.0));
        check(
            !adversarial || self.adversarial.is_some(),
            "adversarial",
            "section is needed when an adversarial_weight is above 0 (add `[adversarial]`; every field has a default)",
        )?;
        check(
            !self.uses_perceptual() || self.perceptual.is_some(),
            "perceptual",
            "section is needed when a perceptual_weight is above 0 (add `[perceptual]` with `network = { kind = \"classifier\" }` or `{ kind = \"vgg16\", weights = \"vgg16.safetensors\" }`)",
        )?;
        if let Some(a) = &self.adversarial {
            check(
                (1..=1024).contains(&a.channels),
                "adversarial.channels",
                "must be in 1..=1024",
            )?;
            check(
                a.lr.is_finite() && a.lr > 0.0 && a.lr < 1.0,
                "adversarial.lr",
                "must be in (0, 1)",
            )?;
            check(
                a.r1.is_finite() && (0.0..=1e4).contains(&a.r1),
                "adversarial.r1",
                "must be in 0..=10000",
            )?;
            check(
                a.beta1.is_finite() && (0.0..1.0).contains(&a.beta1),
                "adversarial.beta1",
                "must be in [0, 1)",
            )?;
        }
        Ok(())
    }

    /// A tiny configuration for tests and smoke runs.
    pub fn tiny(dataset: DatasetKind) -> Self {
        TrainConfig {
            seed: 1,
            model: ModelConfig {
                image_likelihood: Default::default(),
                latent: 8,
                private_latent: 0,
                fusion: Fusion::Poe,
                fusion_hidden: 128,
                image: ImageModel::Mlp { hidden: 32 },
                text: TextModel::Gru {
                    embed: 8,
                    hidden: 16,
                },
                max_len: 10,
            },
            optim: OptimConfig {
                lr: 1e-3,
                batch_size: 16,
                epochs: 1,
                grad_clip: None,
            },
            data: DataConfig {
                dataset,
                dir: None,
                image_size: None,
                channels: None,
                bad_items: Default::default(),
                train_limit: Some(64),
                val_size: 16,
                caption_seed: 0,
                tokenizer: mmvae_data::TokenLevel::Word,
            },
            loss: LossConfig {
                text_weight: 10.0,
                ..LossConfig::default()
            },
            adversarial: None,
            perceptual: None,
            phases: Vec::new(),
            text_prior: None,
        }
    }

    /// Train for `epochs` epochs in all (what `--epochs` sets). The phases,
    /// if any, still run in order: they are cut off at `epochs`, and when
    /// `epochs` is longer than their sum the last phase runs on.
    pub fn set_epochs(&mut self, epochs: usize) {
        self.optim.epochs = epochs;
        if self.phases.is_empty() {
            return;
        }
        let mut left = epochs;
        let mut kept = Vec::with_capacity(self.phases.len());
        for mut p in std::mem::take(&mut self.phases) {
            if left == 0 {
                break;
            }
            p.epochs = p.epochs.min(left);
            left -= p.epochs;
            kept.push(p);
        }
        if let Some(last) = kept.last_mut() {
            last.epochs += left;
        }
        self.phases = kept;
    }

    /// The phase that epoch `epoch` (0-based) belongs to, with its index.
    pub fn phase_at(&self, epoch: usize) -> Option<(usize, &Phase)> {
        let mut end = 0;
        for (i, p) in self.phases.iter().enumerate() {
            end += p.epochs;
            if epoch < end {
                return Some((i, p));
            }
        }
        None
    }

    /// The loss configuration in force during epoch `epoch` (0-based).
    pub fn loss_at(&self, epoch: usize) -> LossConfig {
        match self.phase_at(epoch) {
            Some((_, p)) => p.loss.apply(&self.loss),
            None => self.loss.clone(),
        }
    }

    /// The learning rate in force during epoch `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.phase_at(epoch)
            .and_then(|(_, p)| p.lr)
            .unwrap_or(self.optim.lr)
    }

    /// Whether any epoch has a perceptual loss.
    pub fn uses_perceptual(&self) -> bool {
        self.any_epoch(|l| l.perceptual_weight > 0.0)
    }

    /// Whether any epoch trains against a discriminator.
    pub fn uses_adversary(&self) -> bool {
        self.any_epoch(|l| l.adversarial_weight > 0.0)
    }

    /// Whether `pred` holds for the loss of some epoch: of `[loss]` without
    /// phases, else of some phase (the phases cover every epoch).
    fn any_epoch(&self, pred: impl Fn(&LossConfig) -> bool) -> bool {
        if self.phases.is_empty() {
            pred(&self.loss)
        } else {
            self.phases.iter().any(|p| pred(&p.loss.apply(&self.loss)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip() {
        let c = TrainConfig::tiny(DatasetKind::Mnist);
        let s = c.to_toml();
        assert_eq!(
            TrainConfig::from_toml_str(&s, Path::new("x.toml")).unwrap(),
            c
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut c = TrainConfig::tiny(DatasetKind::Mnist);
        c.optim.lr = -1.0;
        let e = TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("optim.lr") && e.contains("c.toml"), "{e}");
        let e = TrainConfig::from_toml_str("seed = 1\n[model\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml") && !e.contains('\n'), "{e}");
        let bad = c.to_toml().replace("epochs = 1", "epochs = 1\nepochz = 3");
        let e = TrainConfig::from_toml_str(&bad, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochz"), "{e}");
        // Text models: every kind round-trips; a transformer's heads must
        // divide its width.
        for text in [
            TextModel::Lstm {
                embed: 8,
                hidden: 16,
                bidirectional: true,
            },
            TextModel::XLstm {
                embed: 8,
                hidden: 16,
            },
            TextModel::Transformer {
                d_model: 16,
                heads: 4,
                layers: 2,
                ff: 32,
            },
            TextModel::MultiHot { hidden: 32 },
        ] {
            let mut t = TrainConfig::tiny(DatasetKind::Mnist);
            t.model.text = text;
            let back = TrainConfig::from_toml_str(&t.to_toml(), Path::new("t.toml")).unwrap();
            assert_eq!(back.model.text, text);
        }
        let mut t = TrainConfig::tiny(DatasetKind::Mnist);
        t.model.text = TextModel::Transformer {
            d_model: 10,
            heads: 4,
            layers: 1,
            ff: 8,
        };
        let e = TrainConfig::from_toml_str(&t.to_toml(), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.text.heads"), "{e}");
        // A conv model's width cap round-trips, and may not be below its
        // first layer's width; configs without it still read.
        let conv = |max_channels| ImageModel::Conv {
            channels: 8,
            hidden: 16,
            max_channels,
            refine: false,
        };
        let mut t = TrainConfig::tiny(DatasetKind::Mnist);
        t.model.image = conv(Some(16));
        let back = TrainConfig::from_toml_str(&t.to_toml(), Path::new("t.toml")).unwrap();
        assert_eq!(back.model.image, conv(Some(16)));
        t.model.image = conv(None);
        assert!(!t.to_toml().contains("max_channels"));
        t.model.image = conv(Some(4));
        let e = TrainConfig::from_toml_str(&t.to_toml(), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.image.max_channels"), "{e}");
        // `refine` round-trips and is left out when off, so configs saved
        // before it existed read (and write) as they did.
        t.model.image = ImageModel::Conv {
            channels: 8,
            hidden: 16,
            max_channels: None,
            refine: true,
        };
        assert!(t.to_toml().contains("refine = true"));
        let back = TrainConfig::from_toml_str(&t.to_toml(), Path::new("t.toml")).unwrap();
        assert_eq!(back.model.image, t.model.image);
        t.model.image = conv(None);
        assert!(!t.to_toml().contains("refine"));
    }

    #[test]
    fn fusion_names_and_their_constraints() {
        let mut c = TrainConfig::tiny(DatasetKind::Mnist);
        for (f, name) in [
            (Fusion::Poe, "poe"),
            (Fusion::Moe, "moe"),
            (Fusion::MoPoe, "mopoe"),
            (Fusion::Concat, "concat"),
            (Fusion::Attention, "attention"),
        ] {
            c.model.fusion = f;
            let s = c.to_toml();
            assert!(s.contains(&format!("fusion = \"{name}\"")), "{s}");
            assert_eq!(
                TrainConfig::from_toml_str(&s, Path::new("c.toml")).unwrap(),
                c
            );
        }
        // The mixtures' terms always reconstruct both modalities.
        c.model.fusion = Fusion::MoPoe;
        c.loss.unimodal_target = UnimodalTarget::Observed;
        let e = TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss.unimodal_target"), "{e}");
        // cross_weight only has a meaning for poe with "all".
        c.loss.unimodal_target = UnimodalTarget::All;
        c.loss.cross_weight = 0.5;
        let e = TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss.cross_weight"), "{e}");
        c.model.fusion = Fusion::Poe;
        assert!(TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml")).is_ok());
        // Modality dropout is for the learned fusions; attention cuts each
        // expert's output into four tokens.
        c.loss.modality_dropout = 0.3;
        let e = TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss.modality_dropout"), "{e}");
        c.model.fusion = Fusion::Attention;
        assert!(TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml")).is_ok());
        c.model.latent = 3;
        let e = TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.latent"), "{e}");
        c.model.latent = 8;
        c.loss.modality_dropout = 0.0;
        c.model.fusion = Fusion::Poe;
        // Importance-weighted bounds are for the mixture of experts.
        c.loss.cross_weight = 1.0;
        c.loss.objective = Objective::Dreg;
        let e = TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss.objective"), "{e}");
        c.model.fusion = Fusion::Moe;
        c.loss.k = 0;
        let e = TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss.k"), "{e}");
        c.loss.k = 8;
        assert!(TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml")).is_ok());
    }

    #[test]
    fn phases_schedule_the_loss_and_are_checked() {
        let base = TrainConfig::tiny(DatasetKind::Mnist);
        let text = format!(
            "{}\n[adversarial]\nloss = \"non-saturating\"\n\n[[phases]]\nname = \"vae\"\nepochs = 2\n\n[[phases]]\nname = \"refine\"\nepochs = 1\nlr = 0.0005\nloss = {{ adversarial_weight = 0.5, beta = 2.0 }}\n",
            base.to_toml().replace("epochs = 1", "epochs = 3")
        );
        let c = TrainConfig::from_toml_str(&text, Path::new("p.toml")).unwrap();
        assert_eq!(c.phases.len(), 2);
        assert_eq!(
            c.adversarial.as_ref().unwrap().loss,
            AdversarialLoss::NonSaturating
        );
        assert_eq!(c.phase_at(1).unwrap().1.name, "vae");
        assert_eq!(c.phase_at(2).unwrap().1.name, "refine");
        assert!(c.phase_at(3).is_none());
        // `--epochs` cuts the phases off, or lets the last one run on.
        let epochs = |n: usize| {
            let mut d = c.clone();
            d.set_epochs(n);
            d.validate().unwrap();
            let e: Vec<_> = d
                .phases
                .iter()
                .map(|p| (p.name.clone(), p.epochs))
                .collect();
            (d.optim.epochs, e)
        };
        let (vae, refine) = (String::from("vae"), String::from("refine"));
        assert_eq!(epochs(1), (1, vec![(vae.clone(), 1)]));
        assert_eq!(epochs(2), (2, vec![(vae.clone(), 2)]));
        assert_eq!(epochs(3), (3, vec![(vae.clone(), 2), (refine.clone(), 1)]));
        assert_eq!(epochs(5), (5, vec![(vae, 2), (refine, 3)]));
        assert_eq!(c.loss_at(0), c.loss);
        let l = c.loss_at(2);
        assert_eq!((l.adversarial_weight, l.beta), (0.5, 2.0));
        assert_eq!(l.text_weight, c.loss.text_weight);
        assert_eq!((c.lr_at(0), c.lr_at(2)), (c.optim.lr, 0.0005));
        assert!(c.uses_adversary());
        // Round trip through TOML (as saved beside the weights).
        assert_eq!(
            TrainConfig::from_toml_str(&c.to_toml(), Path::new("x")).unwrap(),
            c
        );

        let bad = |edit: &dyn Fn(&mut TrainConfig), field: &str| {
            let mut b = c.clone();
            edit(&mut b);
            let e = TrainConfig::from_toml_str(&b.to_toml(), Path::new("p.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field) && e.contains("p.toml"), "{field}: {e}");
        };
        bad(&|b| b.optim.epochs = 4, "optim.epochs");
        bad(&|b| b.adversarial = None, "adversarial");
        bad(
            &|b| b.phases[1].loss.perceptual_weight = Some(1.0),
            "perceptual",
        );
        bad(
            &|b| b.phases[1].loss.beta = Some(-1.0),
            "phases[1].loss.beta",
        );
        bad(&|b| b.phases[0].epochs = 0, "phases[0].epochs");
        bad(&|b| b.phases[1].lr = Some(2.0), "phases[1].lr");
        bad(&|b| b.phases[0].name = " ".into(), "phases[0].name");
        let e = TrainConfig::from_toml_str(
            &text.replace("beta = 2.0", "betta = 2.0"),
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("betta"), "{e}");
    }

    #[test]
    fn schedules_and_alignments_by_name() {
        let base = TrainConfig::tiny(DatasetKind::Mnist).to_toml();
        let text = base
            .replace("kl_anneal = \"linear\"", "kl_anneal = \"cyclical\"")
            .replace("align = \"jmvae\"", "align = \"image-text-kl\"")
            .replace("align_anneal = \"linear\"", "align_anneal = \"sigmoid\"")
            .replace("align_anneal_steps = 0", "align_anneal_steps = 7");
        let c = TrainConfig::from_toml_str(&text, Path::new("s.toml")).unwrap();
        assert_eq!(c.loss.kl_anneal, Anneal::Cyclical);
        assert_eq!(c.loss.align, Alignment::ImageTextKl);
        assert_eq!(c.loss.align_anneal, Anneal::Sigmoid);
        assert_eq!(c.loss.align_anneal_steps, 7);
        let e = TrainConfig::from_toml_str(
            &text.replace("\"cyclical\"", "\"cosine\""),
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cosine") && e.contains("s.toml"), "{e}");
    }

    #[test]
    fn shipped_configs_parse() {
        // Model init draws from the shared device RNG.
        let _rng = crate::testutil::rng_lock();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                let c = TrainConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
                // And each builds its model for its dataset.
                let kind = c.data.dataset;
                let captioner = mmvae_data::Captioner::new(kind, c.data.caption_seed);
                let vocab = crate::data::build_vocab(&captioner, c.data.tokenizer);
                crate::data::check_max_len(&c, &captioner, None, &vocab)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                let m = c.model.init(
                    kind.image_size().0,
                    kind.channels(),
                    vocab.len(),
                    &burn::prelude::Device::flex(),
                );
                assert_eq!(m.latent, c.model.latent, "{}", p.display());
                n += 1;
            }
        }
        assert!(n >= 2, "expected the shipped configs in {}", dir.display());
    }
}

/// serde's `skip_serializing_if` for flags that default to off, so that
/// configs saved before the flag existed stay byte-for-byte the same.
fn is_false(b: &bool) -> bool {
    !*b
}
