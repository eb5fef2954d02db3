//! Fitting a text prior: the frozen model's posteriors of the training
//! pairs, minibatches by distinct caption, and the maximum-likelihood loop
//! with validation.

use super::*;
use crate::host::floats;
use crate::train::adam::FusedAdamConfig;
use crate::train::parallel::Sharding;

/// Posteriors of a split on the host, row-major `[n, latent]` each.
pub(super) struct Pairs {
    pub(super) x_mu: Vec<f32>,
    pub(super) x_logvar: Vec<f32>,
    pub(super) y_mu: Vec<f32>,
    pub(super) y_logvar: Vec<f32>,
    pub(super) n: usize,
}

/// q(z|x) and q(z|y) of every item of `data`, captions from `source`.
pub(super) fn posteriors(
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
        p.x_mu.extend(floats(qx.mu));
        p.x_logvar.extend(floats(qx.logvar));
        p.y_mu.extend(floats(qy.mu));
        p.y_logvar.extend(floats(qy.logvar));
    }
    p
}

impl Pairs {
    pub(super) fn with_capacity(n: usize, d: usize) -> Self {
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
    pub(super) fn rows(&self, idx: &[usize], d: usize, device: &Device) -> (Gaussian, Gaussian) {
        let take = |v: &[f32]| take_rows(v, idx, d, device);
        (
            self.image_rows(idx, d, device),
            Gaussian::new(take(&self.y_mu), take(&self.y_logvar)),
        )
    }

    /// Rows `idx` of q(z|x) on `device`.
    pub(super) fn image_rows(&self, idx: &[usize], d: usize, device: &Device) -> Gaussian {
        let take = |v: &[f32]| take_rows(v, idx, d, device);
        Gaussian::new(take(&self.x_mu), take(&self.x_logvar))
    }
}

/// Rows `idx` of the row-major `[n, d]` values `v`, as `[idx.len(), d]`.
pub(super) fn take_rows(v: &[f32], idx: &[usize], d: usize, device: &Device) -> Tensor<2> {
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
pub(super) fn distinct_captions(
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
pub(super) struct ValSet {
    /// Per batch: distinct caption posteriors, each row's caption, z.
    pub(super) batches: Vec<(Gaussian, Tensor<1, Int>, Tensor<2>)>,
    pub(super) n: usize,
    pub(super) nll_caption_posterior: f64,
}

impl ValSet {
    /// Batches of `bs` rows of `pairs` on `device`, noise from its RNG.
    pub(super) fn draw(pairs: &Pairs, d: usize, bs: usize, device: &Device) -> Self {
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
    pub(super) fn nll(&self, prior: &TextPrior) -> f64 {
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
pub(super) fn step_gradients(
    prior: &TextPrior,
    pairs: &Pairs,
    idx: &[usize],
    d: usize,
    sharding: &Sharding,
    device: &Device,
) -> GradientsParams {
    let n = idx.len();
    let eps = floats(Tensor::<2>::random(
        [n, d],
        Distribution::Normal(0.0, 1.0),
        device,
    ));
    let per = n.div_ceil(sharding.shards().min(n.max(1)));
    let shards: Vec<(&[usize], &[f32])> = idx.chunks(per).zip(eps.chunks(per * d)).collect();
    let (grads, _, _) = crate::train::parallel::parallel_gradients(
        prior,
        shards,
        device,
        sharding,
        |m, (rows, e)| {
            let qx = pairs.image_rows(rows, d, device);
            let (captions, index) = distinct_captions(pairs, rows, d, device);
            let e = Tensor::<2>::from_data(TensorData::new(e.to_vec(), [rows.len(), d]), device);
            let mix = m.forward(&captions).select(index);
            let nll = mix.log_prob(qx.rsample_with(e)).sum().neg() / n as f32;
            (nll, Vec::new(), ())
        },
    );
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
    let mut optim = FusedAdamConfig::default().init();
    let mut best: Option<(TextPrior, usize, f64, f64)> = None;
    let sharding = Sharding::new(
        crate::train::parallel::default_threads(),
        crate::config::CoreSharing::default(),
    );
    for epoch in 0..cfg.epochs {
        let order = shuffled(tr.n, seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9));
        for chunk in order.chunks(bs) {
            let grads = step_gradients(&prior, &tr, chunk, d, &sharding, &ad);
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
