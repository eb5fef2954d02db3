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
use burn::optim::GradientsParams;
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

mod config;
mod fit;

use crate::nn::linear::linear;
pub use config::*;
pub use fit::fit;

/// Weights and description of a fitted prior inside a checkpoint folder.
pub const WEIGHTS: &str = "text-prior.bpk";
pub const INFO: &str = "text-prior.json";

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
        let h = relu(linear(&self.hidden1, x));
        let h = relu(linear(&self.hidden2, h)); // [b, hidden]
        let mu = q.mu.clone().unsqueeze_dim::<3>(1)
            + linear(&self.offsets, h.clone()).reshape([b, k, latent]);
        // Bounded log-variances keep the likelihood finite early in fitting.
        let logvar = linear(&self.logvars, h.clone())
            .reshape([b, k, latent])
            .clamp(-14.0, 4.0);
        Mixture {
            log_weights: log_softmax(linear(&self.logits, h), 1),
            mu,
            logvar,
        }
    }
}

/// Rows `index` of a `[rows, a, b]` tensor, selected as rows of
/// `[rows, a * b]`: the same values and gradients, through the backend's
/// row-copy kernels rather than its per-element N-d ones (its backward, a
/// scatter-add, was a sixth of a prior fit's time).
///
/// # Shapes
/// `t`: `[rows, a, b]`, `index`: `[n]` → `[n, a, b]`
fn select_rows_3d(t: Tensor<3>, index: Tensor<1, Int>) -> Tensor<3> {
    let [rows, a, b] = t.dims();
    let n = index.dims()[0];
    t.reshape([rows, a * b]).select(0, index).reshape([n, a, b])
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
            mu: select_rows_3d(self.mu.clone(), index.clone()),
            logvar: select_rows_3d(self.logvar.clone(), index),
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
    use super::fit::*;
    use super::*;
    use crate::host::floats as host;

    fn t2(v: Vec<f32>, shape: [usize; 2], d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, shape), d)
    }

    fn t3(v: Vec<f32>, shape: [usize; 3], d: &Device) -> Tensor<3> {
        Tensor::from_data(TensorData::new(v, shape), d)
    }

    #[test]
    fn rows_of_a_3d_tensor_select_as_plain_select_does_values_and_gradients() {
        let d = Device::flex().autodiff();
        let v: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let idx = || Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0, 2, 3], [4]), &d);
        let weights = t3((0..24).map(|i| (i % 5) as f32).collect(), [4, 3, 2], &d);
        let run = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
            let x = t3(v.clone(), [4, 2, 3], &d).require_grad();
            let y = f(x.clone());
            let loss = (y.clone().reshape([4, 3, 2]) * weights.clone()).sum();
            let g = loss.backward();
            (y.into_data(), x.grad(&g).unwrap().into_data())
        };
        let (fast, fast_grad) = run(&|x| select_rows_3d(x, idx()));
        let (plain, plain_grad) = run(&|x| x.select(0, idx()));
        assert_eq!(fast, plain);
        assert_eq!(fast_grad, plain_grad);
        // Row 1 is not picked; row 2 is picked twice.
        let g = plain_grad.try_to_vec::<f32>().unwrap();
        assert!(g[6..12].iter().all(|&x| x == 0.0), "{g:?}");
        assert!(g[12..18].iter().any(|&x| x != 0.0), "{g:?}");
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
        let mut optim = crate::train::adam::FusedAdamConfig::default().init();
        let sharding = crate::train::parallel::Sharding::new(2, Default::default());
        for epoch in 0..cfg.epochs {
            for chunk in shuffled(tr.n, epoch as u64).chunks(cfg.batch_size) {
                let grads = step_gradients(&prior, &tr, chunk, 2, &sharding, &ad);
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
            let g = step_gradients(
                &prior,
                &p,
                &idx,
                3,
                &crate::train::parallel::Sharding::new(threads, Default::default()),
                &ad,
            );
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
