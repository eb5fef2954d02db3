//! The objective's settings: which terms, their weights and schedules.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::Anneal;

/// Which modalities a single-modality ELBO term reconstructs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UnimodalTarget {
    /// Only the observed modality (the original MVAE sub-sampled ELBO).
    Observed,
    /// Every modality from the ones observed (E_q(z|x)[log p(x,y|z)] − KL):
    /// still a lower bound on log p(x,y), and it trains cross-generation.
    #[default]
    All,
    /// No single-modality ELBO terms: only the joint ELBO (with
    /// `align_weight`, the JMVAE-KL objective of Suzuki et al. 2016). The
    /// single-modality terms are still computed for the metrics.
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
    /// KL(q(z|image) ‖ q(z|text)) between the unimodal posteriors (two
    /// modalities only; without an image and a caption, the first and the
    /// second).
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
    #[serde(default)]
    pub unimodal_target: UnimodalTarget,
    /// With `poe` and the learned fusions: this many random subsets of two
    /// or more modalities (not all) join the joint and single-modality
    /// terms each step (MVAE's sub-sampled ELBO). With `mopoe`: the number
    /// of subsets per step, drawn from all 2^M − 1 (0 = all of them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sampled_subsets: usize,
    /// With `fusion = "mvtcae"`: the share α of the KL paid to the
    /// modalities' own posteriors rather than to the prior (the
    /// total-correlation weight), in [0, 1]; unset = 0.1, the published
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mvtcae_alpha: Option<f32>,
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
    /// The two-modality form's weights (`image_weight`, `text_weight`,
    /// `cross_weight`): read and moved into `[[modalities]]` when a config
    /// is loaded; never written.
    #[serde(default, rename = "image_weight", skip_serializing)]
    pub legacy_image_weight: Option<f32>,
    #[serde(default, rename = "text_weight", skip_serializing)]
    pub legacy_text_weight: Option<f32>,
    #[serde(default, rename = "cross_weight", skip_serializing)]
    pub legacy_cross_weight: Option<f32>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_temperature() -> f32 {
    0.1
}

fn one_sample() -> usize {
    1
}

impl LossConfig {
    /// The published default of [`LossConfig::mvtcae_alpha`].
    pub const MVTCAE_ALPHA: f32 = 0.1;

    /// MVTCAE's α: the configured value, else the published default.
    pub fn mvtcae_alpha(&self) -> f32 {
        self.mvtcae_alpha.unwrap_or(Self::MVTCAE_ALPHA)
    }
}

impl Default for LossConfig {
    /// β = 1 without annealing, `"all"`, no alignment, cycle or
    /// adversarial term.
    fn default() -> Self {
        Self {
            beta: 1.0,
            kl_anneal_steps: 0,
            kl_anneal: Anneal::Linear,
            objective: Objective::Elbo,
            k: 1,
            unimodal_target: UnimodalTarget::All,
            sampled_subsets: 0,
            mvtcae_alpha: None,
            align_weight: 0.0,
            align: Alignment::Jmvae,
            temperature: default_temperature(),
            modality_dropout: 0.0,
            align_anneal_steps: 0,
            align_anneal: Anneal::Linear,
            cycle_weight: 0.0,
            adversarial_weight: 0.0,
            perceptual_weight: 0.0,
            legacy_image_weight: None,
            legacy_text_weight: None,
            legacy_cross_weight: None,
        }
    }
}

/// Loss weights a [`Phase`] replaces; absent ones keep the `[loss]` value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub align_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adversarial_weight: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perceptual_weight: Option<f32>,
    /// Likelihood weights of modalities, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, f32>,
    /// Cross weights of modalities, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cross_weights: BTreeMap<String, f32>,
    /// The two-modality form's `image_weight`, `text_weight` and
    /// `cross_weight` (of the modalities named `image` and `text`): moved
    /// into `weights`/`cross_weights` when a config is loaded.
    #[serde(default, rename = "image_weight", skip_serializing)]
    pub legacy_image_weight: Option<f32>,
    #[serde(default, rename = "text_weight", skip_serializing)]
    pub legacy_text_weight: Option<f32>,
    #[serde(default, rename = "cross_weight", skip_serializing)]
    pub legacy_cross_weight: Option<f32>,
}

impl LossOverride {
    /// `base` with these values put in (the modality weights are applied by
    /// [`super::TrainConfig::weights_at`]).
    pub fn apply(&self, base: &LossConfig) -> LossConfig {
        let mut l = base.clone();
        let set = |dst: &mut f32, v: Option<f32>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut l.beta, self.beta);
        set(&mut l.cycle_weight, self.cycle_weight);
        set(&mut l.align_weight, self.align_weight);
        set(&mut l.adversarial_weight, self.adversarial_weight);
        set(&mut l.perceptual_weight, self.perceptual_weight);
        l
    }
}
