//! Run configuration, read from TOML and saved beside every checkpoint so
//! `generate`/`eval` rebuild exactly the model that was trained.
//!
//! `TrainConfig { modalities, model, optim, data, loss, seed }` nests the
//! component configs; each component config has an `init(&device)` that
//! builds it. [`model`] holds the shared model settings and the expert
//! architectures, [`loss`] the objective's, [`validate`] the checks and
//! [`legacy`] the reading of the two-modality form.

pub mod legacy;
pub mod loss;
pub mod model;
mod sections;
mod validate;

use mmvae_data::vision::{Copies, Edges};
use mmvae_data::DatasetKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
pub use crate::modality::image::likelihood::ImageLikelihood;
pub use crate::modality::{ExpertConfig, LabelModel, ModalityConfig, ModalityKind};
use crate::objective::TargetWeights;
pub use crate::train::perceptual::{FeatureNetwork, PerceptualConfig};
pub use crate::train::schedule::Anneal;
pub use loss::{Alignment, LossConfig, LossOverride, Objective, UnimodalTarget};
pub use model::{Fusion, ImageModel, Levels, ModelConfig, TextModel};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    pub batch_size: usize,
    pub epochs: usize,
    /// Clip each gradient tensor's norm to this value (none if absent).
    #[serde(default)]
    pub grad_clip: Option<f32>,
    /// How the data-parallel shards of a CPU step share the cores with the
    /// kernels' own threads (speed only: both give the same bits).
    #[serde(default)]
    pub core_sharing: CoreSharing,
    /// Which epoch `best/` keeps: the one with the lowest validation loss
    /// (`"val-loss"`, the default) or the last one (`"last"`, for recipes
    /// whose validation loss stops tracking what they are for, such as
    /// self-training, where wrong filled-in captions raise the caption NLL
    /// while coherence still grows).
    #[serde(default, skip_serializing_if = "BestEpoch::is_default")]
    pub best: BestEpoch,
}

/// Which epoch a run's `best/` checkpoint holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BestEpoch {
    /// The lowest validation loss (within the last phase reached).
    #[default]
    ValLoss,
    /// The last epoch trained.
    Last,
}

impl BestEpoch {
    fn is_default(&self) -> bool {
        *self == BestEpoch::ValLoss
    }
}

/// How the data-parallel shards of a training step share the CPU cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoreSharing {
    /// Each shard runs its kernels whole on its own thread: the shards are
    /// the parallelism and never wait on each other's pieces (faster for
    /// convolutions and layers up to about a thousand units).
    #[default]
    CorePerShard,
    /// The shards share one pool of kernel threads, over which burn-flex
    /// splits each large matrix product (faster for some very wide layers;
    /// docs/performance.md has the measurements).
    SharedKernelPool,
}

impl CoreSharing {
    /// Parse a config's name for it: `core-per-shard` or
    /// `shared-kernel-pool`.
    pub fn parse(s: &str) -> Result<Self> {
        use serde::de::IntoDeserializer;
        let d: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            s.into_deserializer();
        Self::deserialize(d).map_err(|e| ModelError::Invalid(format!("core sharing: {e}")))
    }
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
    /// Vision datasets only: the side of the masked copy's square in
    /// pixels, under the images' side (default 3/8 of it: 24 on 64×64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_side: Option<usize>,
    /// Vision datasets only: the edge map is the Sobel magnitude of the
    /// `"luminance"` (default, MVAE's) or of each `"colour"` channel.
    #[serde(default, skip_serializing_if = "Edges::is_luminance")]
    pub edges: Edges,
    /// Use only the first N training images (all if absent).
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// Images taken from the end of the training split for validation.
    pub val_size: usize,
    /// Seed of the caption templates drawn for each image.
    #[serde(default)]
    pub caption_seed: u64,
    /// Caption tokens: `word` (default) or `char` (characters, the space
    /// included; `model.max_len` must then hold the longest caption's
    /// characters).
    #[serde(default)]
    pub tokenizer: mmvae_data::TokenLevel,
    /// Weak supervision: the seeded fraction of training items that keep
    /// every modality; each of the others keeps one, chosen by `unpaired`.
    /// Validation and test items keep all. 1 (default) = all paired.
    #[serde(default = "one_f64", skip_serializing_if = "is_one")]
    pub paired_fraction: f64,
    /// Which modality an unpaired training item keeps: `"random"` (default,
    /// a seeded hash of the item), `"first"`, `"alternate"` (by item index),
    /// or a modality's name; `"drop"` trains on the paired items alone
    /// (each epoch cycles through them as often as fills the training set,
    /// so the run takes as many steps: the paired-only baseline).
    #[serde(default, skip_serializing_if = "Unpaired::is_default")]
    pub unpaired: Unpaired,
    /// With weak supervision: the share of each epoch's items drawn from
    /// the paired ones (cycled through, so each pair comes several times);
    /// the rest are unpaired items, the next ones each epoch. Absent: every
    /// item once per epoch, so the pairs make up `paired_fraction` of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired_share: Option<f64>,
    /// With weak supervision: the model's own confident captions (labels)
    /// complete the unpaired items that lack one (self-training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_training: Option<SelfTraining>,
}

/// Self-training (pseudo-labelling) for weak supervision: before each epoch
/// from `from_epoch` on, the model generates each missing caption or label
/// of the unpaired training items from the modality they keep (the
/// posterior mean, greedy decoding); the items whose value at least
/// `min_confidence` of `draws` posterior draws decode to as well train as
/// pairs in that epoch. Images are never filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTraining {
    /// The first epoch (counted from 1) that trains on filled-in items.
    pub from_epoch: usize,
    /// The least share of the draws that must agree with the posterior
    /// mean's caption (label) for it to be used.
    pub min_confidence: f64,
    /// Posterior draws decoded per item to measure that agreement.
    #[serde(default = "default_draws")]
    pub draws: usize,
}

fn default_draws() -> usize {
    8
}

fn one_f64() -> f64 {
    1.0
}

fn is_one(f: &f64) -> bool {
    *f == 1.0
}

/// Which modality an unpaired training item keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Unpaired {
    /// Chosen by a seeded hash of the item.
    #[default]
    Random,
    /// The first modality.
    First,
    /// Modality `index mod M`.
    Alternate,
    /// The modality of this name.
    Only(String),
    /// None: unpaired items are left out (the paired-only baseline).
    Drop,
}

impl Unpaired {
    fn is_default(&self) -> bool {
        *self == Unpaired::Random
    }
}

impl From<String> for Unpaired {
    fn from(s: String) -> Self {
        match s.as_str() {
            "random" => Unpaired::Random,
            "first" => Unpaired::First,
            "alternate" => Unpaired::Alternate,
            "drop" => Unpaired::Drop,
            _ => Unpaired::Only(s),
        }
    }
}

impl From<Unpaired> for String {
    fn from(u: Unpaired) -> Self {
        match u {
            Unpaired::Random => "random".into(),
            Unpaired::First => "first".into(),
            Unpaired::Alternate => "alternate".into(),
            Unpaired::Drop => "drop".into(),
            Unpaired::Only(s) => s,
        }
    }
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
    /// [`crate::train::discriminator::r1_penalty`].
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of weight initialisation, shuffling and sampling.
    pub seed: u64,
    /// The modalities, in order (`[[modalities]]`).
    #[serde(default)]
    pub modalities: Vec<ModalityConfig>,
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
    /// training (see [`crate::prior`]); text→image then draws from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_prior: Option<crate::prior::TextPriorConfig>,
}

impl DataConfig {
    /// How a vision dataset's copies are made.
    pub fn copies(&self) -> Copies {
        Copies {
            mask_side: self.mask_side,
            edges: self.edges,
        }
    }

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

/// The longest config file read: 1 MiB (one is a few KB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl TrainConfig {
    pub fn from_toml_str(s: &str, origin: &Path) -> Result<Self> {
        let mut cfg: TrainConfig = toml::from_str(s).map_err(|e| {
            ModelError::Config(format!(
                "{}: {}",
                origin.display(),
                e.to_string().replace('\n', " ")
            ))
        })?;
        cfg.read_legacy()
            .and_then(|()| cfg.validate())
            .map_err(|e| match e {
                ModelError::Config(msg) => {
                    ModelError::Config(format!("{}: {msg}", origin.display()))
                }
                e => ModelError::Config(format!("{}: {e}", origin.display())),
            })?;
        Ok(cfg)
    }

    /// Read a config file, refusing one over [`MAX_CONFIG_BYTES`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = mmvae_data::fsutil::read_limited(path, MAX_CONFIG_BYTES, "the config")?;
        let s = String::from_utf8(bytes)
            .map_err(|e| ModelError::Config(format!("{}: not UTF-8 text: {e}", path.display())))?;
        Self::from_toml_str(&s, path)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises to TOML")
    }

    /// A tiny configuration for tests and smoke runs.
    pub fn tiny(dataset: DatasetKind) -> Self {
        TrainConfig {
            seed: 1,
            modalities: vec![
                ModalityConfig {
                    name: "image".into(),
                    expert: ExpertConfig::Image {
                        model: ImageModel::Mlp { hidden: 32 },
                        likelihood: ImageLikelihood::Bernoulli,
                    },
                    weight: 1.0,
                    cross_weight: 1.0,
                    share_encoder: None,
                },
                ModalityConfig {
                    name: "text".into(),
                    expert: ExpertConfig::Text {
                        model: TextModel::Gru {
                            embed: 8,
                            hidden: 16,
                        },
                    },
                    weight: 10.0,
                    cross_weight: 1.0,
                    share_encoder: None,
                },
            ],
            model: ModelConfig {
                latent: 8,
                private_latent: 0,
                fusion: Fusion::Poe,
                fusion_hidden: 128,
                max_len: 10,
                legacy_image: None,
                legacy_image_likelihood: None,
                legacy_text: None,
            },
            optim: OptimConfig {
                lr: 1e-3,
                batch_size: 16,
                epochs: 1,
                grad_clip: None,
                core_sharing: CoreSharing::default(),
                best: BestEpoch::default(),
            },
            data: DataConfig {
                dataset,
                dir: None,
                image_size: None,
                channels: None,
                bad_items: Default::default(),
                mask_side: None,
                edges: Edges::Luminance,
                train_limit: Some(64),
                val_size: 16,
                caption_seed: 0,
                tokenizer: mmvae_data::TokenLevel::Word,
                paired_fraction: 1.0,
                unpaired: Unpaired::Random,
                paired_share: None,
                self_training: None,
            },
            loss: LossConfig::default(),
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

    /// The modalities' likelihood and cross weights during epoch `epoch`
    /// (0-based): `[[modalities]]` with the phase's overrides.
    pub fn weights_at(&self, epoch: usize) -> TargetWeights {
        let phase = self.phase_at(epoch).map(|(_, p)| &p.loss);
        let pick =
            |name: &str, base: f32, over: Option<&std::collections::BTreeMap<String, f32>>| {
                over.and_then(|o| o.get(name).copied()).unwrap_or(base)
            };
        TargetWeights {
            weight: self
                .modalities
                .iter()
                .map(|m| pick(&m.name, m.weight, phase.map(|p| &p.weights)))
                .collect(),
            cross: self
                .modalities
                .iter()
                .map(|m| pick(&m.name, m.cross_weight, phase.map(|p| &p.cross_weights)))
                .collect(),
        }
    }

    /// What a batch for this config's model holds.
    pub fn layout(&self) -> crate::io::batch::Layout {
        crate::io::batch::Layout {
            names: self.modalities.iter().map(|m| m.name.clone()).collect(),
            kinds: self.modalities.iter().map(ModalityConfig::kind).collect(),
            max_len: self.model.max_len,
        }
    }

    /// The position of the modality named `name`.
    pub fn modality(&self, name: &str) -> Option<usize> {
        self.modalities.iter().position(|m| m.name == name)
    }

    /// The position of the first modality of `kind`.
    pub fn modality_of_kind(&self, kind: ModalityKind) -> Option<usize> {
        self.modalities.iter().position(|m| m.kind() == kind)
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
mod fusion_tests;
#[cfg(test)]
mod shipped_tests;
#[cfg(test)]
mod tests;
