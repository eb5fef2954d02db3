//! A fitted text prior: a mixture of Gaussians over the shared latent,
//! conditioned on the caption, fitted after training to the frozen model's
//! image posteriors (a second stage, as in two-stage VAEs and ex-post
//! density estimation).
//!
//! Why: the caption's own posterior q(z|y) is one diagonal Gaussian. The
//! images a caption describes (every pose and position of a "square") sit
//! on a curved, many-piece region of the latent space, and one Gaussian
//! covering it also covers the gaps between the pieces, where the decoder
//! draws something in between (or a blur). The fitted prior
//!
//! p(z | y) = Σ_k π_k(y) N(z; μ_k(y), diag σ²_k(y))
//!
//! is trained by maximum likelihood on z ~ q(z|x) of training pairs (x, y),
//! so its samples land where real images of that caption are encoded. It
//! reads the caption through the frozen text encoder (the mean and
//! log-variance of q(z|y)), so it serves any text model and any caption the
//! encoder accepts; the mixture means are offsets from the caption's
//! posterior mean.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::Distribution;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::{fsutil, ImageLabelSet};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::error::{ModelError, Result};
use crate::io::batch::{shuffled, CaptionSource, HostBatch};
use crate::mvae::{log_sum_exp_dim, Mvae};
use crate::nn::gaussian::Gaussian;

/// Weights and description of a fitted prior inside a checkpoint folder.
pub const WEIGHTS: &str = "text-prior.bpk";
pub const INFO: &str = "text-prior.json";

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

/// The caption → mixture network.
#[derive(Module, Debug)]
pub struct TextPrior {
    hidden1: Linear,
    hidden2: Linear,
    offsets: Linear,
    logvars: Linear,
    logits: Linear,
    components: usize,
    latent: usize,
}

/// A batch of Gaussian mixtures over the latent.
///
/// # Shapes
/// `log_weights`: `[batch, k]` (normalised), `mu`, `logvar`: `[batch, k, latent]`
#[derive(Debug, Clone)]
pub struct Mixture {
    pub log_weights: Tensor<2>,
    pub mu: Tensor<3>,
    pub logvar: Tensor<3>,
}

impl TextPrior {
    pub fn components(&self) -> usize {
        self.components
    }

    /// The mixture for captions whose posteriors are `q`.
    ///
    /// # Shapes
    /// `q`: `[batch, latent]` → mixture of `k` components per row
    pub fn forward(&self, q: &Gaussian) -> Mixture {
        let [b, d] = q.mu.dims();
        let (k, latent) = (self.components, self.latent);
        assert_eq!(
            d, latent,
            "text prior fitted for {latent} latent dimensions"
        );
        let x = Tensor::cat(vec![q.mu.clone(), q.logvar.clone()], 1); // [b, 2d]
        let h = relu(self.hidden1.forward(x));
        let h = relu(self.hidden2.forward(h)); // [b, hidden]
        let mu = q.mu.clone().unsqueeze_dim::<3>(1)
            + self.offsets.forward(h.clone()).reshape([b, k, latent]);
        // Bounded log-variances keep the likelihood finite early in fitting.
        let logvar = self
            .logvars
            .forward(h.clone())
            .reshape([b, k, latent])
            .clamp(-14.0, 4.0);
        Mixture {
            log_weights: log_softmax(self.logits.forward(h), 1),
            mu,
            logvar,
        }
    }
}

impl Mixture {
    /// log p(z) per row.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]` → `[batch]`
    pub fn log_prob(&self, z: Tensor<2>) -> Tensor<1> {
        let [b, k, _] = self.mu.dims();
        let z = z.unsqueeze_dim::<3>(1); // [b, 1, d]
        let diff = z - self.mu.clone();
        let per_dim = diff.clone() * diff * self.logvar.clone().neg().exp()
            + self.logvar.clone()
            + (2.0 * std::f32::consts::PI).ln();
        let comp = per_dim.sum_dim(2).reshape([b, k]) * (-0.5); // [b, k]
        log_sum_exp_dim(comp + self.log_weights.clone(), 1).reshape([b])
    }

    /// One draw per row: a component by its weight, then its Gaussian with
    /// the standard deviations scaled by `temperature` (1: the fitted
    /// mixture; below 1, draws closer to the component means).
    pub fn sample(&self, temperature: f32) -> Tensor<2> {
        let device = self.mu.device();
        let [b, k, _] = self.mu.dims();
        let u = Tensor::<2>::random([b, k], Distribution::Uniform(1e-7, 1.0 - 1e-7), &device);
        let gumbel = u.log().neg().log().neg();
        let pick = (self.log_weights.clone() + gumbel).argmax(1); // [b, 1]
        let (mu, logvar) = self.component(pick);
        let eps = Tensor::random(mu.dims(), Distribution::Normal(0.0, 1.0), &device);
        mu + (logvar * 0.5).exp() * eps * temperature
    }

    /// The mean of each row's heaviest component.
    pub fn mode_mean(&self) -> Tensor<2> {
        self.component(self.log_weights.clone().argmax(1)).0
    }

    /// The mixtures of rows `index`: row `i` of the result is row
    /// `index[i]` of `self`.
    ///
    /// # Shapes
    /// `index`: `[n]` → a mixture of `n` rows
    pub fn select(&self, index: Tensor<1, Int>) -> Mixture {
        Mixture {
            log_weights: self.log_weights.clone().select(0, index.clone()),
            mu: self.mu.clone().select(0, index.clone()),
            logvar: self.logvar.clone().select(0, index),
        }
    }

    /// Mean and log-variance of component `pick` (`[batch, 1]`) of each row.
    fn component(&self, pick: Tensor<2, Int>) -> (Tensor<2>, Tensor<2>) {
        let [b, _, d] = self.mu.dims();
        let idx = pick.unsqueeze_dim::<3>(2).repeat_dim(2, d); // [b, 1, d]
        (
            self.mu.clone().gather(1, idx.clone()).reshape([b, d]),
            self.logvar.clone().gather(1, idx).reshape([b, d]),
        )
    }
}

/// What fitting measured, saved as `text-prior.json` with the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPriorInfo {
    pub config: TextPriorConfig,
    /// Dimensions of the shared latent.
    pub latent: usize,
    pub train_items: usize,
    pub val_items: usize,
    /// The epoch whose weights were kept (lowest validation NLL).
    pub best_epoch: usize,
    /// Mean −log p(z|y) of z ~ q(z|x) on the validation pairs, nats per
    /// item: under the fitted mixture, and under the caption's own
    /// posterior q(z|y) (what text→image draws from without it).
    pub val_nll_mixture: f64,
    pub val_nll_caption_posterior: f64,
    pub seconds: f64,
    /// Strict text→image coherence on the validation split at each tried
    /// temperature, when `config.temperature` was chosen from them
    /// (`fit-prior --temperatures`); empty when it was set by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub temperature_choice: Vec<(f32, f64)>,
}

/// The longest `text-prior.json` read: 1 MiB (one is a few hundred bytes).
pub const MAX_INFO_BYTES: u64 = 1 << 20;

impl TextPriorInfo {
    /// The description in the bytes of the `text-prior.json` of the
    /// checkpoint `dir`, its configuration validated (so the network it
    /// describes has bounded sizes).
    pub fn from_json(bytes: &[u8], dir: &Path) -> Result<TextPriorInfo> {
        let info: TextPriorInfo = serde_json::from_slice(bytes)
            .map_err(|e| ModelError::checkpoint(dir, format!("{INFO} is unreadable: {e}")))?;
        info.config
            .validate()
            .map_err(|e| ModelError::checkpoint(dir, format!("{INFO}: {e}")))?;
        if !(1..=4096).contains(&info.latent) {
            return Err(ModelError::checkpoint(
                dir,
                format!("{INFO} gives a latent of {}, outside 1..=4096", info.latent),
            ));
        }
        Ok(info)
    }
}

/// Posteriors of a split on the host, row-major `[n, latent]` each.
struct Pairs {
    x_mu: Vec<f32>,
    x_logvar: Vec<f32>,
    y_mu: Vec<f32>,
    y_logvar: Vec<f32>,
    n: usize,
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap_or_default()
}

/// q(z|x) and q(z|y) of every item of `data`, captions from `source`.
fn posteriors(
    model: &Mvae,
    vocab: &mmvae_data::Vocab,
    data: &ImageLabelSet,
    source: CaptionSource,
    device: &Device,
) -> Pairs {
    let mut p = Pairs::with_capacity(data.len(), model.latent);
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(256) {
        let b = HostBatch::gather(&model.layout(), data, chunk, source, vocab).to_device(device);
        let qx = model.encode_image(b.images());
        let qy = model.encode_caption(&b);
        p.x_mu.extend(host(qx.mu));
        p.x_logvar.extend(host(qx.logvar));
        p.y_mu.extend(host(qy.mu));
        p.y_logvar.extend(host(qy.logvar));
    }
    p
}

impl Pairs {
    fn with_capacity(n: usize, d: usize) -> Self {
        let v = || Vec::with_capacity(n * d);
        Pairs {
            x_mu: v(),
            x_logvar: v(),
            y_mu: v(),
            y_logvar: v(),
            n,
        }
    }

    /// Rows `idx` as (q(z|x), q(z|y)) on `device`.
    fn rows(&self, idx: &[usize], d: usize, device: &Device) -> (Gaussian, Gaussian) {
        let take = |v: &[f32]| take_rows(v, idx, d, device);
        (
            self.image_rows(idx, d, device),
            Gaussian::new(take(&self.y_mu), take(&self.y_logvar)),
        )
    }

    /// Rows `idx` of q(z|x) on `device`.
    fn image_rows(&self, idx: &[usize], d: usize, device: &Device) -> Gaussian {
        let take = |v: &[f32]| take_rows(v, idx, d, device);
        Gaussian::new(take(&self.x_mu), take(&self.x_logvar))
    }
}

/// Rows `idx` of the row-major `[n, d]` values `v`, as `[idx.len(), d]`.
fn take_rows(v: &[f32], idx: &[usize], d: usize, device: &Device) -> Tensor<2> {
    let mut out = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        out.extend_from_slice(&v[i * d..(i + 1) * d]);
    }
    Tensor::<2>::from_data(TensorData::new(out, [idx.len(), d]), device)
}

/// The distinct caption posteriors among rows `idx` of `pairs`, and for
/// each row the position of its own among them. Pairs that share a
/// caption share q(z|y) bit for bit, so the prior's network runs once per
/// distinct caption of a batch (a handful on shapes) instead of once per
/// pair; rows whose posteriors differ in any bit stay apart, so the result
/// is the same mixture per row either way.
///
/// # Shapes
/// → (`[distinct, latent]`, `[idx.len()]`)
fn distinct_captions(
    pairs: &Pairs,
    idx: &[usize],
    d: usize,
    device: &Device,
) -> (Gaussian, Tensor<1, Int>) {
    let mut seen: std::collections::HashMap<Vec<u32>, i64> = Default::default();
    let (mut mu, mut logvar, mut index) = (Vec::new(), Vec::new(), Vec::with_capacity(idx.len()));
    for &i in idx {
        let (m, l) = (
            &pairs.y_mu[i * d..(i + 1) * d],
            &pairs.y_logvar[i * d..(i + 1) * d],
        );
        let key: Vec<u32> = m.iter().chain(l).map(|v| v.to_bits()).collect();
        let next = seen.len() as i64;
        let at = *seen.entry(key).or_insert_with(|| {
            mu.extend_from_slice(m);
            logvar.extend_from_slice(l);
            next
        });
        index.push(at);
    }
    let u = seen.len();
    (
        Gaussian::new(
            Tensor::<2>::from_data(TensorData::new(mu, [u, d]), device),
            Tensor::<2>::from_data(TensorData::new(logvar, [u, d]), device),
        ),
        Tensor::<1, Int>::from_data(TensorData::new(index, [idx.len()]), device),
    )
}

/// The validation pairs as fixed batches of (q(z|y), z ~ q(z|x)), z drawn
/// once so every epoch is scored on the same draws, with the caption
/// posterior's own mean −log q(z|y), which does not change while fitting.
struct ValSet {
    /// Per batch: distinct caption posteriors, each row's caption, z.
    batches: Vec<(Gaussian, Tensor<1, Int>, Tensor<2>)>,
    n: usize,
    nll_caption_posterior: f64,
}

impl ValSet {
    /// Batches of `bs` rows of `pairs` on `device`, noise from its RNG.
    fn draw(pairs: &Pairs, d: usize, bs: usize, device: &Device) -> Self {
        let idx: Vec<usize> = (0..pairs.n).collect();
        let mut post = 0.0f64;
        let batches = idx
            .chunks(bs)
            .map(|chunk| {
                let e = Tensor::random([chunk.len(), d], Distribution::Normal(0.0, 1.0), device);
                let (qx, qy) = pairs.rows(chunk, d, device);
                let z = qx.rsample_with(e);
                post -= qy.log_prob(z.clone()).sum().into_scalar::<f32>() as f64;
                let (captions, index) = distinct_captions(pairs, chunk, d, device);
                (captions, index, z)
            })
            .collect();
        let n = pairs.n;
        ValSet {
            batches,
            n,
            nll_caption_posterior: post / n.max(1) as f64,
        }
    }

    /// Mean −log p(z|y) under `prior`.
    fn nll(&self, prior: &TextPrior) -> f64 {
        let mut mix = 0.0f64;
        for (captions, index, z) in &self.batches {
            mix -= prior
                .forward(captions)
                .select(index.clone())
                .log_prob(z.clone())
                .sum()
                .into_scalar::<f32>() as f64;
        }
        mix / self.n.max(1) as f64
    }
}

/// Gradients of the batch mean of −log p(z|y), z ~ q(z|x), over the rows
/// `idx` of `pairs`: the noise drawn here, then one shard per thread (see
/// [`crate::train::parallel`]), so a fit is repeatable for a given thread count.
fn step_gradients(
    prior: &TextPrior,
    pairs: &Pairs,
    idx: &[usize],
    d: usize,
    threads: usize,
    device: &Device,
) -> GradientsParams {
    let n = idx.len();
    let eps = host(Tensor::<2>::random(
        [n, d],
        Distribution::Normal(0.0, 1.0),
        device,
    ));
    let per = n.div_ceil(threads.clamp(1, n.max(1)));
    let shards: Vec<(&[usize], &[f32])> = idx.chunks(per).zip(eps.chunks(per * d)).collect();
    let (grads, _, _) =
        crate::train::parallel::parallel_gradients(prior, shards, device, |m, (rows, e)| {
            let qx = pairs.image_rows(rows, d, device);
            let (captions, index) = distinct_captions(pairs, rows, d, device);
            let e = Tensor::<2>::from_data(TensorData::new(e.to_vec(), [rows.len(), d]), device);
            let mix = m.forward(&captions).select(index);
            let nll = mix.log_prob(qx.rsample_with(e)).sum().neg() / n as f32;
            (nll, Vec::new(), ())
        });
    grads
}

/// Fit a text prior to `model` on (`train`, `val`): maximum likelihood of
/// z ~ q(z|x) under p(z|y), Adam, the weights of the best validation epoch
/// kept. Seeded through `seed`; returns the prior on `device`.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    model: &Mvae,
    vocab: &mmvae_data::Vocab,
    captioner: Captioner,
    train: &ImageLabelSet,
    val: &ImageLabelSet,
    cfg: &TextPriorConfig,
    seed: u64,
    device: &Device,
) -> Result<(TextPrior, TextPriorInfo)> {
    cfg.validate()?;
    if train.is_empty() || val.is_empty() {
        return Err(ModelError::Invalid(
            "fitting a text prior needs training and validation items".into(),
        ));
    }
    let start = std::time::Instant::now();
    let d = model.latent;
    let src = |set, stream| CaptionSource {
        captioner,
        set,
        stream,
    };
    let tr = posteriors(model, vocab, train, src(CaptionSet::Train, 1), device);
    let va = posteriors(
        model,
        vocab,
        val,
        src(CaptionSet::Train, crate::io::data::VAL_STREAM),
        device,
    );
    let ad = device.clone().autodiff();
    ad.seed(seed);
    let bs = cfg.batch_size;
    let va = ValSet::draw(&va, d, bs, device);
    let post = va.nll_caption_posterior;
    let mut prior = cfg.init(d, &ad);
    let mut optim = AdamConfig::new().init();
    let mut best: Option<(TextPrior, usize, f64, f64)> = None;
    let threads = crate::train::parallel::default_threads();
    for epoch in 0..cfg.epochs {
        let order = shuffled(tr.n, seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9));
        for chunk in order.chunks(bs) {
            let grads = step_gradients(&prior, &tr, chunk, d, threads, &ad);
            prior = optim.step(cfg.lr, prior, grads);
        }
        let valid = prior.valid();
        let mix = va.nll(&valid);
        if !mix.is_finite() {
            return Err(ModelError::Diverged(format!(
                "text prior: validation NLL is {mix} after epoch {}",
                epoch + 1
            )));
        }
        if best.as_ref().is_none_or(|b| mix < b.2) {
            best = Some((valid, epoch + 1, mix, post));
        }
    }
    let (prior, best_epoch, mix, post) = best.expect("at least one epoch");
    Ok((
        prior,
        TextPriorInfo {
            config: cfg.clone(),
            latent: d,
            train_items: tr.n,
            val_items: va.n,
            best_epoch,
            val_nll_mixture: mix,
            val_nll_caption_posterior: post,
            seconds: start.elapsed().as_secs_f64(),
            temperature_choice: Vec::new(),
        },
    ))
}

/// Save a fitted prior into a checkpoint folder: weights to a temporary
/// file renamed into place, then its description (written last, so a
/// description always has its weights).
pub fn save(dir: &Path, prior: &TextPrior, info: &TextPriorInfo) -> Result<()> {
    let tmp = dir.join(format!(".text-prior.tmp-{}.bpk", std::process::id()));
    prior
        .clone()
        .save_file(&tmp)
        .map_err(|e| ModelError::checkpoint(dir, format!("cannot write {WEIGHTS}: {e}")))?;
    std::fs::rename(&tmp, dir.join(WEIGHTS)).map_err(|e| ModelError::Io {
        path: dir.join(WEIGHTS),
        source: e,
    })?;
    save_info(dir, info)
}

/// Rewrite only the description of the prior saved in `dir` (e.g. a newly
/// chosen temperature), atomically.
pub fn save_info(dir: &Path, info: &TextPriorInfo) -> Result<()> {
    fsutil::write_atomic(
        &dir.join(INFO),
        serde_json::to_string_pretty(info)
            .expect("info serialises")
            .as_bytes(),
    )?;
    Ok(())
}

/// Fit a prior to the checkpoint in `dir` on its run's training split
/// (validation items held out as in training; with weak supervision, the
/// paired items only) and save it there.
pub fn fit_checkpoint(
    dir: &Path,
    data_dir: Option<&Path>,
    cfg: &TextPriorConfig,
    compute: crate::device::Compute,
) -> Result<TextPriorInfo> {
    cfg.validate()?;
    let m = crate::infer::load(dir, compute)?;
    let config = &m.checkpoint.config;
    let data = crate::io::data::load_train_data(config, data_dir)?;
    // Weakly supervised runs fit the prior to their paired items alone.
    let paired = (config.data.paired_fraction < 1.0).then(|| {
        let keep = crate::io::data::Pairing::new(config, data.train.len()).paired();
        data.train.select(&keep)
    });
    let (prior, info) = fit(
        &m.model,
        &m.checkpoint.vocab,
        m.captioner(),
        paired.as_ref().unwrap_or(&data.train),
        &data.val,
        cfg,
        m.checkpoint.config.seed,
        &m.device,
    )?;
    save(dir, &prior, &info)?;
    Ok(info)
}

/// The prior fitted in a checkpoint folder, if there is one.
pub fn load(
    dir: &Path,
    latent: usize,
    device: &Device,
) -> Result<Option<(TextPrior, TextPriorInfo)>> {
    let ip = dir.join(INFO);
    if !ip.is_file() {
        return Ok(None);
    }
    let raw = fsutil::read_limited(&ip, MAX_INFO_BYTES, INFO)?;
    let info = TextPriorInfo::from_json(&raw, dir)?;
    if info.latent != latent {
        return Err(ModelError::checkpoint(
            dir,
            format!(
                "{INFO} was fitted for a {}-dimensional latent, the model has {latent}; fit it again with `mmvae fit-prior`",
                info.latent
            ),
        ));
    }
    let prior = info.config.init(latent, device);
    let prior = crate::io::checkpoint::load_weights(prior, &dir.join(WEIGHTS))
        .map_err(|e| ModelError::checkpoint(dir, format!("{WEIGHTS}: {e}")))?;
    Ok(Some((prior, info)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: Vec<f32>, shape: [usize; 2], d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, shape), d)
    }
    fn t3(v: Vec<f32>, shape: [usize; 3], d: &Device) -> Tensor<3> {
        Tensor::from_data(TensorData::new(v, shape), d)
    }

    #[test]
    fn mixture_log_prob_matches_the_closed_form() {
        let d = Device::flex();
        // One row, two components in 2-D.
        let (w, m1, m2, v1, v2) = (0.3f64, [0.0, 1.0], [2.0, -1.0], [1.0, 0.5], [0.25, 2.0]);
        let mix = Mixture {
            log_weights: t2(vec![w.ln() as f32, (1.0 - w).ln() as f32], [1, 2], &d),
            mu: t3(vec![0.0, 1.0, 2.0, -1.0], [1, 2, 2], &d),
            logvar: t3(
                [v1, v2]
                    .iter()
                    .flatten()
                    .map(|v: &f64| v.ln() as f32)
                    .collect(),
                [1, 2, 2],
                &d,
            ),
        };
        let z = [0.5f64, 0.2];
        let normal = |m: [f64; 2], v: [f64; 2]| {
            (0..2)
                .map(|i| {
                    (-(z[i] - m[i]).powi(2) / (2.0 * v[i])).exp()
                        / (2.0 * std::f64::consts::PI * v[i]).sqrt()
                })
                .product::<f64>()
        };
        let want = (w * normal(m1, v1) + (1.0 - w) * normal(m2, v2)).ln();
        let got = mix
            .log_prob(t2(vec![0.5, 0.2], [1, 2], &d))
            .into_scalar::<f32>() as f64;
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    #[test]
    fn mixture_samples_follow_the_weights_and_components() {
        let _rng = crate::testutil::rng_lock();
        let d = Device::flex();
        d.seed(3);
        let n = 4000;
        // Every row: 25% at (-5, 0) sd 0.1, 75% at (5, 1) sd 0.1.
        let mut mu = Vec::new();
        let mut lv = Vec::new();
        let mut lw = Vec::new();
        for _ in 0..n {
            mu.extend([-5.0f32, 0.0, 5.0, 1.0]);
            lv.extend([(0.01f32).ln(); 4]);
            lw.extend([0.25f32.ln(), 0.75f32.ln()]);
        }
        let mix = Mixture {
            log_weights: t2(lw, [n, 2], &d),
            mu: t3(mu, [n, 2, 2], &d),
            logvar: t3(lv, [n, 2, 2], &d),
        };
        let s = host(mix.sample(1.0));
        let right = s.chunks(2).filter(|p| p[0] > 0.0).count() as f64 / n as f64;
        assert!((right - 0.75).abs() < 0.03, "{right}");
        for p in s.chunks(2) {
            let (cx, cy) = if p[0] > 0.0 { (5.0, 1.0) } else { (-5.0, 0.0) };
            assert!((p[0] - cx).abs() < 0.6 && (p[1] - cy).abs() < 0.6, "{p:?}");
        }
        let m = host(mix.mode_mean());
        assert_eq!(&m[..2], &[5.0, 1.0]);
    }

    #[test]
    fn fitting_finds_the_two_clusters_a_caption_posterior_blurs() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        // Two "captions" with posteriors centred at (±3, 0) in a 2-D latent;
        // the images of each sit in two tight clusters, at (±3, −2) and
        // (±3, +2). One Gaussian must cover the gap between them; the
        // mixture need not.
        let make = |n: usize, salt: usize| {
            let mut p = Pairs::with_capacity(n, 2);
            for i in 0..n {
                let cap = ((i + salt) % 2) as f32 * 2.0 - 1.0;
                let side = (((i + salt) / 2) % 2) as f32 * 2.0 - 1.0;
                p.x_mu.extend([cap * 3.0, side * 2.0]);
                p.x_logvar.extend([(0.01f32).ln(); 2]);
                p.y_mu.extend([cap * 3.0, 0.0]);
                p.y_logvar.extend([(0.05f32).ln(), (4.0f32).ln()]);
            }
            p
        };
        let (tr, va) = (make(512, 0), make(128, 1));
        let cfg = TextPriorConfig {
            components: 4,
            hidden: 32,
            epochs: 60,
            batch_size: 64,
            lr: 3e-3,
            temperature: 1.0,
            choose_temperature: Vec::new(),
            rerank: 1,
        };
        let ad = dev.clone().autodiff();
        ad.seed(7);
        let mut prior = cfg.init(2, &ad);
        let mut optim = AdamConfig::new().init();
        for epoch in 0..cfg.epochs {
            for chunk in shuffled(tr.n, epoch as u64).chunks(cfg.batch_size) {
                let grads = step_gradients(&prior, &tr, chunk, 2, 2, &ad);
                prior = optim.step(cfg.lr, prior, grads);
            }
        }
        let prior = prior.valid();
        let val = ValSet::draw(&va, 2, 64, &dev);
        let (mix, post) = (val.nll(&prior), val.nll_caption_posterior);
        // The caption posterior's NLL per item, in closed form:
        // dim 0 0.5·ln(2π·0.05) + 0.01/0.1 ≈ −0.48, dim 1 0.5·ln(2π·4) +
        // 4.01/8 ≈ 2.11, total ≈ 1.63. The best single Gaussian per caption
        // ≈ −0.88 + 2.11 = 1.23; two tight clusters ≈ −0.88 − 0.88 + ln 2 ≈ −1.07.
        assert!((post - 1.63).abs() < 0.15, "{post}");
        assert!(mix < 0.0, "mixture {mix} vs caption posterior {post}");
        // Draws for caption +1 land in its clusters, on both sides.
        let (_, qy) = va.rows(&[0; 400], 2, &dev); // caption +1
        let s = host(prior.forward(&qy).sample(1.0));
        let near = s
            .chunks(2)
            .filter(|p| (p[0] - 3.0).abs() < 0.5 && ((p[1].abs() - 2.0).abs() < 0.5))
            .count();
        assert!(near > 360, "{near} of 400 draws in the caption's clusters");
        let up = s.chunks(2).filter(|p| p[1] > 0.0).count();
        assert!((100..300).contains(&up), "{up} of 400 draws above the axis");
    }

    #[test]
    fn sharded_steps_match_a_single_thread() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        let ad = dev.clone().autodiff();
        ad.seed(11);
        let n = 37;
        let mut p = Pairs::with_capacity(n, 3);
        for i in 0..n {
            let f = i as f32 / n as f32;
            p.x_mu.extend([f, 1.0 - f, f * f]);
            p.x_logvar.extend([-1.0, -2.0, -0.5]);
            p.y_mu.extend([f.round(), 0.0, 0.5]);
            p.y_logvar.extend([-0.5, 0.0, -1.0]);
        }
        let cfg = TextPriorConfig {
            components: 3,
            hidden: 8,
            ..TextPriorConfig::default()
        };
        let prior = cfg.init(3, &ad);
        let idx: Vec<usize> = (0..n).collect();
        let after = |threads: usize| {
            ad.seed(5);
            let g = step_gradients(&prior, &p, &idx, 3, threads, &ad);
            let mut optim = burn::optim::SgdConfig::new().init();
            let m = optim.step(0.1, prior.clone(), g).valid();
            let (_, qy) = p.rows(&idx, 3, &dev);
            let mix = m.forward(&qy);
            host(mix.mu.reshape([n, 9]))
                .into_iter()
                .chain(host(mix.log_weights))
                .collect::<Vec<f32>>()
        };
        let (one, two, three) = (after(1), after(2), after(3));
        let before = {
            let (_, qy) = p.rows(&idx, 3, &dev);
            host(prior.valid().forward(&qy).mu.reshape([n, 9]))
        };
        assert!(
            one.iter().zip(&before).any(|(a, b)| (a - b).abs() > 1e-4),
            "the step moved the prior"
        );
        for other in [&two, &three] {
            for (a, b) in one.iter().zip(other) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn one_pass_per_distinct_caption_gives_every_row_its_own_mixture() {
        let dev = Device::flex();
        let (n, d) = (10, 2);
        let mut p = Pairs::with_capacity(n, d);
        for i in 0..n {
            p.x_mu.extend([0.0, 0.0]);
            p.x_logvar.extend([0.0, 0.0]);
            // Three captions, the third differing from the first in one bit
            // of one log-variance.
            let (m, l) = match i % 3 {
                0 => ([1.0, -1.0], [-0.5, 0.25]),
                1 => ([0.5, 2.0], [0.0, -1.0]),
                _ => ([1.0, -1.0], [-0.5, f32::from_bits(0.25f32.to_bits() + 1)]),
            };
            p.y_mu.extend(m);
            p.y_logvar.extend(l);
        }
        let idx: Vec<usize> = (0..n).rev().collect();
        let (captions, index) = distinct_captions(&p, &idx, d, &dev);
        assert_eq!(captions.mu.dims(), [3, d]);
        let at: Vec<i64> = index.clone().try_into_vec_as::<i64>().unwrap();
        assert_eq!(at, vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
        let prior = TextPriorConfig {
            components: 4,
            hidden: 8,
            ..TextPriorConfig::default()
        }
        .init(d, &dev);
        let (_, qy) = p.rows(&idx, d, &dev);
        let (full, once) = (prior.forward(&qy), prior.forward(&captions).select(index));
        for (a, b) in [
            (full.mu.reshape([n, 8]), once.mu.reshape([n, 8])),
            (full.logvar.reshape([n, 8]), once.logvar.reshape([n, 8])),
            (full.log_weights, once.log_weights),
        ] {
            for (x, y) in host(a).iter().zip(host(b)) {
                assert!((x - y).abs() < 1e-6, "{x} vs {y}");
            }
        }
    }

    /// Found by fuzzing: the JSON parser's message quotes an unknown field
    /// name, line break and all.
    #[test]
    fn an_unreadable_description_is_one_line() {
        let e = TextPriorInfo::from_json(b"{\"config\":{\"\\n\"", Path::new("ck"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(INFO) && !e.contains('\n'), "{e}");
    }

    #[test]
    fn config_validation_names_the_field() {
        let mut c = TextPriorConfig::default();
        assert!(c.validate().is_ok());
        c.components = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("text_prior.components"), "{e}");
        let mut c = TextPriorConfig {
            choose_temperature: vec![0.1, 1.0],
            ..TextPriorConfig::default()
        };
        assert!(c.validate().is_ok());
        c.choose_temperature.push(0.0);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("text_prior.choose_temperature"), "{e}");
        for bad in [0, MAX_RERANK + 1] {
            let c = TextPriorConfig {
                rerank: bad,
                ..TextPriorConfig::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("text_prior.rerank"), "{e}");
        }
        // The network's width is bounded, so a saved description cannot
        // ask for an arbitrarily large one.
        for bad in [0, 16385, usize::MAX] {
            let c = TextPriorConfig {
                hidden: bad,
                ..TextPriorConfig::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("text_prior.hidden"), "{e}");
        }
    }

    #[test]
    fn rerank_is_left_out_of_saved_configs_when_off_and_read_back_when_on() {
        let off = toml::to_string(&TextPriorConfig::default()).unwrap();
        assert!(!off.contains("rerank"), "{off}");
        let on = TextPriorConfig {
            rerank: 8,
            ..TextPriorConfig::default()
        };
        let text = toml::to_string(&on).unwrap();
        let back: TextPriorConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, on);
        let old: TextPriorConfig = toml::from_str(&off).unwrap();
        assert_eq!(old.rerank, 1);
    }
}
