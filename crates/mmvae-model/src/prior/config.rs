//! `[text_prior]`: how a text prior is fitted and used, with its bounds.

use super::*;

/// `[text_prior]`: fit a text-conditional mixture prior after training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextPriorConfig {
    /// Mixture components per caption.
    #[serde(default = "default_components")]
    pub components: usize,
    /// Width of the two hidden layers.
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    /// Passes over the training pairs.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Adam learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Text→image draws scale the components' standard deviations by this
    /// (1: the fitted mixture; lower keeps draws nearer the component
    /// means, trading variety for fidelity). `--prior-temperature`
    /// overrides it at use.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// After fitting, `train` replaces `temperature` with the one of these
    /// that scores best text→image coherence on the validation split, by
    /// the dataset's evaluation classifier where one has been trained
    /// (`mmvae fit-prior --keep-fit --temperatures …` does it later).
    /// Empty: keep `temperature`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choose_temperature: Vec<f32>,
    /// Text→image candidates per caption: draw this many images and keep
    /// the one the model reads back as the caption most likely
    /// ([`crate::infer::Loaded::rerank`]). 1: no reranking. The temperature
    /// is chosen with it in effect. `--rerank` overrides it at use.
    #[serde(default = "default_rerank", skip_serializing_if = "is_one")]
    pub rerank: usize,
}

/// The most text→image candidates per caption.
pub const MAX_RERANK: usize = 64;

fn default_rerank() -> usize {
    1
}
fn is_one(n: &usize) -> bool {
    *n == 1
}

fn default_components() -> usize {
    16
}
fn default_hidden() -> usize {
    256
}
fn default_epochs() -> usize {
    30
}
fn default_batch_size() -> usize {
    256
}
fn default_lr() -> f64 {
    1e-3
}
fn default_temperature() -> f32 {
    1.0
}

/// Whether `t` can scale the components' spreads when choosing a
/// temperature: finite and above zero (zero draws only the means).
pub fn is_sampling_temperature(t: f32) -> bool {
    t.is_finite() && t > 0.0
}

impl Default for TextPriorConfig {
    fn default() -> Self {
        Self {
            components: default_components(),
            hidden: default_hidden(),
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            lr: default_lr(),
            temperature: default_temperature(),
            choose_temperature: Vec::new(),
            rerank: default_rerank(),
        }
    }
}

impl TextPriorConfig {
    pub fn validate(&self) -> Result<()> {
        let bad =
            |field: &str, msg: &str| Err(ModelError::Config(format!("`text_prior.{field}` {msg}")));
        if !(1..=256).contains(&self.components) {
            return bad("components", "must be in 1..=256");
        }
        if !(1..=16384).contains(&self.hidden) {
            return bad("hidden", "must be in 1..=16384");
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "must be > 0");
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature", "must be >= 0");
        }
        if !self
            .choose_temperature
            .iter()
            .all(|&t| is_sampling_temperature(t))
        {
            return bad("choose_temperature", "must hold temperatures > 0");
        }
        if !(1..=MAX_RERANK).contains(&self.rerank) {
            return bad("rerank", &format!("must be in 1..={MAX_RERANK}"));
        }
        Ok(())
    }

    /// The network for a shared latent of `latent` dimensions.
    pub fn init(&self, latent: usize, device: &Device) -> TextPrior {
        let (h, k) = (self.hidden, self.components);
        TextPrior {
            hidden1: LinearConfig::new(2 * latent, h).init(device),
            hidden2: LinearConfig::new(h, h).init(device),
            offsets: LinearConfig::new(h, k * latent).init(device),
            logvars: LinearConfig::new(h, k * latent).init(device),
            logits: LinearConfig::new(h, k).init(device),
            components: k,
            latent,
        }
    }
}
