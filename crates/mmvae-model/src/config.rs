//! Run configuration, read from TOML and saved beside every checkpoint so
//! `generate`/`eval` rebuild exactly the model that was trained.
//!
//! `TrainConfig { model, optim, data, loss, seed }` nests the component
//! configs; each component config has an `init(&device)` that builds it.

use mmvae_data::DatasetKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

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
}

/// Image encoder/decoder architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ImageModel {
    /// Fully connected: pixels → hidden → hidden → latent, and back.
    Mlp { hidden: usize },
    /// DCGAN-style: two stride-2 convolutions (28→14→7), then a linear layer.
    Conv { channels: usize, hidden: usize },
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
    pub image: ImageModel,
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
    /// Folder with the IDX files; if absent, `--data-dir`, `$MMVAE_DATA`, then
    /// system folders are searched.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Use only the first N training images (all if absent).
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// Images taken from the end of the training split for validation.
    pub val_size: usize,
    /// Seed of the caption templates drawn for each image.
    pub caption_seed: u64,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Weight of the KL term after annealing.
    pub beta: f32,
    /// Steps over which β rises linearly from 0 (0 = no annealing).
    pub kl_anneal_steps: usize,
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
}

fn one() -> f32 {
    1.0
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
}

fn check(ok: bool, field: &str, msg: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(ModelError::Config(format!("`{field}` {msg}")))
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
        let m = &self.model;
        check(
            (1..=4096).contains(&m.latent),
            "model.latent",
            "must be in 1..=4096",
        )?;
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
            ImageModel::Conv { channels, hidden } => {
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
        if let Some(n) = d.train_limit {
            check(n >= 1, "data.train_limit", "must be at least 1")?;
        }
        let l = &self.loss;
        check(
            m.fusion == Fusion::Poe || l.unimodal_target == UnimodalTarget::All,
            "loss.unimodal_target",
            "must be \"all\" (the default) with mixture fusion (moe, mopoe): their terms always reconstruct both modalities",
        )?;
        check(
            l.beta.is_finite() && l.beta >= 0.0,
            "loss.beta",
            "must be >= 0",
        )?;
        check(
            l.image_weight.is_finite() && l.image_weight > 0.0,
            "loss.image_weight",
            "must be > 0",
        )?;
        check(
            l.text_weight.is_finite() && l.text_weight > 0.0,
            "loss.text_weight",
            "must be > 0",
        )?;
        check(
            l.cycle_weight.is_finite() && l.cycle_weight >= 0.0,
            "loss.cycle_weight",
            "must be >= 0",
        )?;
        check(
            l.cross_weight.is_finite() && l.cross_weight >= 0.0,
            "loss.cross_weight",
            "must be >= 0",
        )?;
        check(
            l.cross_weight == 1.0
                || (m.fusion == Fusion::Poe && l.unimodal_target == UnimodalTarget::All),
            "loss.cross_weight",
            "applies only with fusion \"poe\" and unimodal_target \"all\" (leave it at 1 otherwise)",
        )?;
        check(
            l.align_weight.is_finite() && l.align_weight >= 0.0,
            "loss.align_weight",
            "must be >= 0",
        )?;
        Ok(())
    }

    /// A tiny configuration for tests and smoke runs.
    pub fn tiny(dataset: DatasetKind) -> Self {
        TrainConfig {
            seed: 1,
            model: ModelConfig {
                latent: 8,
                private_latent: 0,
                fusion: Fusion::Poe,
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
                train_limit: Some(64),
                val_size: 16,
                caption_seed: 0,
            },
            loss: LossConfig {
                beta: 1.0,
                kl_anneal_steps: 0,
                image_weight: 1.0,
                text_weight: 10.0,
                unimodal_target: UnimodalTarget::All,
                align_weight: 0.0,
                cross_weight: 1.0,
                cycle_weight: 0.0,
            },
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
    }

    #[test]
    fn fusion_names_and_their_constraints() {
        let mut c = TrainConfig::tiny(DatasetKind::Mnist);
        for (f, name) in [
            (Fusion::Poe, "poe"),
            (Fusion::Moe, "moe"),
            (Fusion::MoPoe, "mopoe"),
        ] {
            c.model.fusion = f;
            let s = c.to_toml();
            assert!(s.contains(&format!("fusion = \"{name}\"")), "{s}");
            assert_eq!(
                TrainConfig::from_toml_str(&s, Path::new("c.toml")).unwrap(),
                c
            );
        }
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
                let vocab = crate::data::build_vocab(&mmvae_data::Captioner::new(
                    kind,
                    c.data.caption_seed,
                ));
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
