//! The multimodal VAE: image and text experts fused by a product of experts,
//! trained on the joint ELBO plus one ELBO per single modality.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, sigmoid, softplus};

use crate::batch::Batch;
use crate::config::{Alignment, Fusion, LossConfig, ModelConfig, Objective, UnimodalTarget};
use crate::fusion::{FusionHead, Presence};
use crate::gaussian::Gaussian;
use crate::image::{ImageDecoder, ImageEncoder};
use crate::image_likelihood::{ImageLikelihood, PixelScale};
use crate::text::{TextDecoder, TextEncoder};

#[derive(Module, Debug)]
pub struct Mvae {
    pub image_encoder: ImageEncoder,
    pub image_decoder: ImageDecoder,
    pub text_encoder: TextEncoder,
    pub text_decoder: TextDecoder,
    /// Shared latent dimensionality (z).
    pub latent: usize,
    /// Image-only latent dimensionality (w); 0 = none.
    pub private: usize,
    pub max_len: usize,
    /// The image decoder's pixel likelihood.
    #[module(skip)]
    pub likelihood: ImageLikelihood,
    /// Its learned per-channel scale, when it learns one.
    pub pixel_scale: Option<PixelScale>,
    /// The learned fusion network (`concat`, `attention`); none for the
    /// product and mixtures of experts.
    pub fusion_head: Option<FusionHead>,
}

/// burn initialises parameters lazily, on first use, drawing from the same
/// random generator as the model's noise. Materialising them all at build
/// time makes the initial weights depend only on the seed.
struct ForceInit;
impl burn::module::ModuleVisitor for ForceInit {
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
        let _ = p.val();
    }
}

/// Materialise every parameter of `m` now (see [`ForceInit`]).
pub fn force_init<M: Module>(m: &M) {
    m.visit(&mut ForceInit);
}

impl ModelConfig {
    /// Build the model for `colours`×`side`×`side` images and a vocabulary of
    /// `vocab` words, with every parameter initialised now.
    pub fn init(&self, side: usize, colours: usize, vocab: usize, device: &Device) -> Mvae {
        let image_latent = self.latent + self.private_latent;
        let (image_encoder, image_decoder) = self.image.init(side, colours, image_latent, device);
        let (text_encoder, text_decoder) = self.text.init(vocab, self.latent, device);
        let m = Mvae {
            image_encoder,
            image_decoder,
            text_encoder,
            text_decoder,
            latent: self.latent,
            private: self.private_latent,
            max_len: self.max_len,
            likelihood: self.image_likelihood,
            pixel_scale: self.image_likelihood.init_scale(colours, side, device),
            fusion_head: match self.fusion {
                Fusion::Concat => Some(FusionHead::concat(self.latent, self.fusion_hidden, device)),
                Fusion::Attention => Some(FusionHead::attention(
                    self.latent,
                    self.fusion_hidden,
                    device,
                )),
                Fusion::Poe | Fusion::Moe | Fusion::MoPoe => None,
            },
        };
        force_init(&m);
        m
    }
}

/// Names of the values in [`LossOutput::report`], in order.
pub const REPORT_NAMES: [&str; 7] = [
    "loss",
    "img_nll",
    "txt_nll",
    "kl",
    "img2txt_nll",
    "txt2img_nll",
    "align_kl",
];

/// The objective and the terms worth logging.
pub struct LossOutput {
    /// Mean over the batch of the summed negative ELBO terms: `[1]`.
    pub total: Tensor<1>,
    /// Detached per-term batch means, named by [`REPORT_NAMES`]: `[7]`.
    pub report: Tensor<1>,
    /// Image-decoder logits of the three rows (joint, image-only,
    /// text-only), still attached to the graph, for losses that judge the
    /// generated images (adversarial refinement): `[3 * batch, pixels]`.
    pub image_logits: Tensor<2>,
}

/// Rows of reparameterisation noise one loss draws for a batch of `b`:
/// three per item (joint, image-only, text-only) for the ELBOs, and K per
/// modality per item for the importance-weighted MoE bounds.
pub fn noise_rows(cfg: &LossConfig, fusion: Fusion, b: usize) -> usize {
    match (fusion, cfg.objective) {
        (Fusion::Moe, Objective::Iwae | Objective::Dreg) => 2 * cfg.k * b,
        // One more row per item draws its modality-dropout decision.
        (Fusion::Concat | Fusion::Attention, _) if cfg.modality_dropout > 0.0 => 4 * b,
        _ => 3 * b,
    }
}

/// The alignment term `cfg.align` names, per item, from the joint and the
/// unimodal posteriors (each with the prior expert): `[batch]`.
pub fn alignment(
    cfg: &LossConfig,
    q_joint: &Gaussian,
    q_x: &Gaussian,
    q_y: &Gaussian,
) -> Tensor<1> {
    match cfg.align {
        // JMVAE-KL: each unimodal posterior covers the joint.
        Alignment::Jmvae => q_joint.kl(q_x) + q_joint.kl(q_y),
        Alignment::ImageTextKl => q_x.kl(q_y),
        Alignment::Mse => q_x.moment_mse(q_y),
        Alignment::InfoNce => info_nce(q_x.mu.clone(), q_y.mu.clone(), cfg.temperature),
    }
}

/// Symmetric InfoNCE between paired rows of `a` and `b`: the mean of the
/// cross-entropies of picking row i of `b` for row i of `a` and vice versa,
/// over cosine similarities divided by `temperature`.
///
/// # Shapes
/// `a`, `b`: `[batch, dim]` → `[batch]`
pub fn info_nce(a: Tensor<2>, b: Tensor<2>, temperature: f32) -> Tensor<1> {
    let unit = |t: Tensor<2>| {
        let norm = t.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-8); // [n, 1]
        t / norm
    };
    let logits = unit(a).matmul(unit(b).transpose()) / temperature; // [n, n]
    let n = logits.dims()[0];
    let diag = |lp: Tensor<2>| {
        let eye = Tensor::<2>::eye(n, &lp.device());
        (lp * eye).sum_dim(1).squeeze_dim::<1>(1) // [n]
    };
    let rows = diag(log_softmax(logits.clone(), 1));
    let cols = diag(log_softmax(logits.transpose(), 1));
    (rows + cols) * -0.5
}

/// log Σ exp along `dim`, kept as a size-1 dimension (stable: the maximum
/// is taken out first).
pub fn log_sum_exp_dim<const D: usize>(t: Tensor<D>, dim: usize) -> Tensor<D> {
    let m = t.clone().max_dim(dim).detach();
    (t - m.clone()).exp().sum_dim(dim).log() + m
}

/// Elementwise Bernoulli negative log-likelihood from logits (stable).
pub fn bernoulli_nll(logits: Tensor<2>, target: Tensor<2>) -> Tensor<2> {
    softplus(logits.clone(), 1.0) - logits * target
}

impl Mvae {
    /// The negative ELBO objective of one batch.
    ///
    /// Three terms, each `w_x · NLL(x) + w_y · NLL(y) + β · KL`: the joint
    /// posterior q(z|x,y), and the unimodal posteriors q(z|x), q(z|y) (each a
    /// product with the prior expert). Each encoder runs once; the three
    /// latent draws go through each decoder as one `3·batch` batch.
    ///
    /// With an image-only latent w, the image decoder reads [z, w]: the joint
    /// and image-only terms draw w ~ q(w|x) (and pay its KL); the text-only
    /// term, which has no image to encode, draws w from the prior N(0, I), as
    /// MMVAE+ does for cross-reconstruction. So z alone must say what the
    /// caption says about the image.
    pub fn loss(&self, batch: &Batch, cfg: &LossConfig, fusion: Fusion, beta: f32) -> LossOutput {
        let [b, _] = batch.images.dims();
        let eps = Tensor::random(
            [noise_rows(cfg, fusion, b), self.noise_dim()],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &batch.images.device(),
        );
        self.loss_with_noise(batch, cfg, fusion, beta, eps)
    }

    /// Columns of the noise one loss row needs: `latent + private`.
    pub fn noise_dim(&self) -> usize {
        self.latent + self.private
    }

    /// q(z|x) as the image expert (no prior) and, with an image-only latent,
    /// q(w|x).
    ///
    /// # Shapes
    /// `images`: `[batch, pixels]` → `[batch, latent]`, `[batch, private]`
    pub fn image_experts(&self, images: Tensor<2>) -> (Gaussian, Option<Gaussian>) {
        let q = self.image_encoder.forward(images);
        if self.private == 0 {
            (q, None)
        } else {
            (
                q.narrow(0, self.latent),
                Some(q.narrow(self.latent, self.private)),
            )
        }
    }

    /// [`Mvae::loss`] with the reparameterisation noise given:
    /// `eps`: `[3 * batch, latent + private]` (joint, image-only, text-only rows).
    pub fn loss_with_noise(
        &self,
        batch: &Batch,
        cfg: &LossConfig,
        fusion: Fusion,
        beta: f32,
        eps: Tensor<2>,
    ) -> LossOutput {
        if fusion == Fusion::Moe && cfg.objective != Objective::Elbo {
            return self.moe_iwae_loss(batch, cfg, beta, eps);
        }
        let [b, _] = batch.images.dims();
        let (qx, qw) = self.image_experts(batch.images.clone());
        let eps_full = eps.clone();
        let eps = eps.narrow(1, 0, self.latent);
        let qy = self
            .text_encoder
            .forward(batch.tokens.clone(), batch.last.clone());
        let (q_joint, q_x, q_y) = match &self.fusion_head {
            None => (
                Gaussian::product_with_prior(&[qx.clone(), qy.clone()]),
                qx.clone().with_prior(),
                qy.clone().with_prior(),
            ),
            Some(head) => {
                let device = qx.mu.device();
                // Modality dropout: a standard-normal draw per item, turned
                // uniform; the lowest p/2 drop the image, the highest p/2
                // the text.
                let joint = if cfg.modality_dropout > 0.0 && eps.dims()[0] >= 4 * b {
                    let u = (eps.clone().narrow(0, 3 * b, b).narrow(1, 0, 1)
                        / std::f32::consts::SQRT_2)
                        .erf()
                        .add_scalar(1.0)
                        .mul_scalar(0.5); // [b, 1]
                    let half = cfg.modality_dropout / 2.0;
                    Presence {
                        image: u.clone().greater_equal_elem(half).float(),
                        text: u.lower_equal_elem(1.0 - half).float(),
                    }
                } else {
                    Presence::all(b, true, true, &device)
                };
                (
                    head.fuse(&qx, &qy, &joint),
                    head.fuse(&qx, &qy, &Presence::all(b, true, false, &device)),
                    head.fuse(&qx, &qy, &Presence::all(b, false, true, &device)),
                )
            }
        };
        let z = Tensor::cat(
            vec![
                q_joint.rsample_with(eps.clone().narrow(0, 0, b)),
                q_x.rsample_with(eps.clone().narrow(0, b, b)),
                q_y.rsample_with(eps.narrow(0, 2 * b, b)),
            ],
            0,
        ); // [3b, latent]
        let mut kl = match fusion {
            // The conditional objective's image-only term has q(z|y) as its prior.
            Fusion::Poe | Fusion::MoPoe | Fusion::Concat | Fusion::Attention => {
                let kl_x = match cfg.unimodal_target {
                    UnimodalTarget::Conditional => q_x.kl(&q_y),
                    UnimodalTarget::All | UnimodalTarget::Observed | UnimodalTarget::None => {
                        q_x.kl_standard()
                    }
                };
                Tensor::cat(vec![q_joint.kl_standard(), kl_x, q_y.kl_standard()], 0)
            }
            // log q_mix(z) − log p(z) at each expert's own draw; the joint
            // row is unused (weight 0) and keeps its PoE KL for the report.
            Fusion::Moe => {
                let zm = z.clone().narrow(0, b, 2 * b); // [2b, latent]
                let mix = Gaussian::mixture_log_prob(
                    &q_x.repeat_rows(2),
                    &q_y.repeat_rows(2),
                    zm.clone(),
                ) - Gaussian::standard_log_prob(zm);
                Tensor::cat(vec![q_joint.kl_standard(), mix], 0)
            }
        }; // [3b]

        // The image decoder's input: [z, w] with w ~ q(w|x) on the joint and
        // image-only rows and w ~ N(0, I) on the text-only row.
        let z_img = match &qw {
            None => z.clone(),
            Some(qw) => {
                let eps_w = eps_full.narrow(1, self.latent, self.private);
                let w = Tensor::cat(
                    vec![
                        qw.rsample_with(eps_w.clone().narrow(0, 0, b)),
                        qw.rsample_with(eps_w.clone().narrow(0, b, b)),
                        eps_w.narrow(0, 2 * b, b),
                    ],
                    0,
                ); // [3b, private]
                let kl_w = qw.kl_standard(); // [b]
                let zero = Tensor::<1>::zeros([b], &kl_w.device());
                kl = kl + Tensor::cat(vec![kl_w.clone(), kl_w, zero], 0);
                Tensor::cat(vec![z.clone(), w], 1) // [3b, latent + private]
            }
        };

        let x3 = batch.images.clone().repeat_dim(0, 3); // [3b, pixels]
        let logits = self.image_decoder.forward(z_img); // [3b, pixels]
        let image_logits = logits.clone();

        let cycle = (cfg.cycle_weight > 0.0).then(|| {
            self.caption_cycle(logits.clone().narrow(0, 2 * b, b), batch) * cfg.cycle_weight
        });
        let img_nll = self.image_nll(logits, x3); // [3b]
        let txt_nll = self
            .text_decoder
            .nll(z, batch.tokens.clone().repeat_dim(0, 3)); // [3b]

        let img_nll = img_nll.reshape([3, b]);
        let txt_nll = txt_nll.reshape([3, b]);
        let kl = kl.reshape([3, b]);
        // Which terms reconstruct which modality: rows are joint, x-only, y-only.
        let (wx, wy, wk) = match (fusion, cfg.unimodal_target) {
            (Fusion::Poe | Fusion::Concat | Fusion::Attention, UnimodalTarget::All) => {
                let c = cfg.cross_weight;
                ([1.0, 1.0, c], [1.0f32; 3], [1.0f32; 3])
            }
            (Fusion::Poe | Fusion::Concat | Fusion::Attention, UnimodalTarget::Observed) => {
                ([1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0])
            }
            (Fusion::Poe | Fusion::Concat | Fusion::Attention, UnimodalTarget::None) => {
                ([1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0])
            }
            (Fusion::Poe | Fusion::Concat | Fusion::Attention, UnimodalTarget::Conditional) => {
                ([1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
            }
            // The mixtures' stratified ELBOs average their components.
            (Fusion::MoPoe, _) => ([1.0 / 3.0; 3], [1.0 / 3.0; 3], [1.0 / 3.0; 3]),
            (Fusion::Moe, _) => ([0.0, 0.5, 0.5], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5]),
        };
        let device = img_nll.device();
        let wx = Tensor::<1>::from_floats(wx, &device).reshape([3, 1]) * cfg.image_weight;
        let wy = Tensor::<1>::from_floats(wy, &device).reshape([3, 1]) * cfg.text_weight;
        let wk = Tensor::<1>::from_floats(wk, &device).reshape([3, 1]) * beta;
        let per = img_nll.clone() * wx + txt_nll.clone() * wy + kl.clone() * wk; // [3, b]

        let align = alignment(cfg, &q_joint, &q_x, &q_y); // [b]
        let mut total = (per.sum() + align.clone().sum() * cfg.align_weight) / b as f32;
        if let Some(c) = cycle {
            total = total + c;
        }

        let m = |t: Tensor<2>, row: usize| t.narrow(0, row, 1).mean();
        let report = Tensor::cat(
            vec![
                total.clone(),
                m(img_nll.clone(), 0),
                m(txt_nll.clone(), 0),
                m(kl, 0),
                m(txt_nll, 1),
                m(img_nll, 2),
                align.mean(),
            ],
            0,
        )
        .detach();
        LossOutput {
            total,
            report,
            image_logits,
        }
    }

    /// The caption cycle, text → image → q(z|image) → the same caption: the
    /// batch mean of the caption's NLL from the posterior mean of the image
    /// generated from it (unweighted).
    ///
    /// # Shapes
    /// `generated_logits`: `[batch, pixels]`, decoded from q(z|text) → `[1]`
    fn caption_cycle(&self, generated_logits: Tensor<2>, batch: &Batch) -> Tensor<1> {
        let [b, _] = generated_logits.dims();
        let (qg, _) = self.image_experts(sigmoid(generated_logits));
        self.text_decoder
            .nll(self.posterior(Some(&qg), None).mu, batch.tokens.clone())
            .sum()
            / b as f32
    }

    /// The stratified importance-weighted MoE bound (IWAE) of one batch, or
    /// its DReG surrogate, as [`LossConfig::objective`] says.
    ///
    /// For each modality m and item, K draws z_k ~ q(z|m) (with the prior
    /// expert) are weighted by
    /// log w_k = −w_x·NLL(x|z_k) − w_y·NLL(y|z_k) − β·[log q_mix(z_k) − log p(z_k)],
    /// and the bound is the mean over modalities of log mean_k w_k. With
    /// DReG the parameters inside q_mix are held fixed and the gradient
    /// through z_k is scaled by the normalised weight w̃_k (found by a first,
    /// gradient-free pass), so the encoder sees Σ w̃_k² ∂log w_k and the
    /// decoders Σ w̃_k ∂log w_k; the returned value is still the bound.
    ///
    /// # Shapes
    /// `eps`: `[2 * k * batch, latent]`, image-drawn rows then text-drawn,
    /// each sample-major (row = k·batch + item).
    fn moe_iwae_loss(
        &self,
        batch: &Batch,
        cfg: &LossConfig,
        beta: f32,
        eps: Tensor<2>,
    ) -> LossOutput {
        let [b, _] = batch.images.dims();
        let k = cfg.k;
        let n = k * b;
        let dreg = cfg.objective == Objective::Dreg;
        let (qx, _) = self.image_experts(batch.images.clone());
        let qy = self
            .text_encoder
            .forward(batch.tokens.clone(), batch.last.clone());
        let q_joint = Gaussian::product_with_prior(&[qx.clone(), qy.clone()]);
        let (q_x, q_y) = (qx.with_prior(), qy.with_prior());
        let eps = eps.narrow(1, 0, self.latent);
        let z = Tensor::cat(
            vec![
                q_x.repeat_rows(k).rsample_with(eps.clone().narrow(0, 0, n)),
                q_y.repeat_rows(k).rsample_with(eps.narrow(0, n, n)),
            ],
            0,
        ); // [2n, latent]
        let (mx, my) = if dreg {
            (q_x.detach(), q_y.detach())
        } else {
            (q_x.clone(), q_y.clone())
        };
        let (mx, my) = (mx.repeat_rows(2 * k), my.repeat_rows(2 * k));
        let images = batch.images.clone().repeat_dim(0, 2 * k);
        let tokens = batch.tokens.clone().repeat_dim(0, 2 * k);
        // log w of every draw, with its parts: [2n] each.
        let weigh = |m: &Mvae, z: Tensor<2>| {
            let logits = m.image_decoder.forward(z.clone());
            let img = m.image_nll(logits.clone(), images.clone());
            let txt = m.text_decoder.nll(z.clone(), tokens.clone());
            let ratio =
                Gaussian::mixture_log_prob(&mx, &my, z.clone()) - Gaussian::standard_log_prob(z);
            let lw = (img.clone() * cfg.image_weight
                + txt.clone() * cfg.text_weight
                + ratio.clone() * beta)
                .neg();
            (lw, logits, img, txt, ratio)
        };
        // [2n] → [2, k, b] → log mean over k → [2, b]
        let log_mean = |lw: Tensor<1>| {
            log_sum_exp_dim(lw.reshape([2, k, b]), 1).reshape([2, b]) - (k as f32).ln()
        };
        let (total, logits, img, txt, ratio) = if dreg {
            let frozen = self.clone().no_grad();
            let (lw0, ..) = weigh(&frozen, z.clone().detach());
            let lw0 = lw0.detach().reshape([2, k, b]);
            let wt = (lw0.clone() - log_sum_exp_dim(lw0, 1))
                .exp()
                .reshape([2 * n, 1]); // w̃
            let zs = z.clone().detach() + (z.clone() - z.detach()) * wt.clone();
            let (lw, logits, img, txt, ratio) = weigh(self, zs);
            let bound = log_mean(lw.clone()).mean_dim(0).sum() / b as f32; // [1]
            let surrogate = (lw * wt.reshape([2 * n]))
                .reshape([2, k * b])
                .mean_dim(0)
                .sum()
                / b as f32;
            let total = surrogate.clone().neg() + (surrogate - bound).detach();
            (total, logits, img, txt, ratio)
        } else {
            let (lw, logits, img, txt, ratio) = weigh(self, z);
            let bound = log_mean(lw).mean_dim(0).sum() / b as f32;
            (bound.neg(), logits, img, txt, ratio)
        };
        let align = alignment(cfg, &q_joint, &q_x, &q_y); // [b]
        let mut total = total + align.clone().sum() * (cfg.align_weight / b as f32);
        // The first draw of each modality stands for the batch's images.
        let first_x = logits.clone().narrow(0, 0, b);
        let first_y = logits.narrow(0, n, b);
        if cfg.cycle_weight > 0.0 {
            total = total + self.caption_cycle(first_y.clone(), batch) * cfg.cycle_weight;
        }
        let rows = |t: Tensor<1>, m: usize| t.narrow(0, m * n, n).mean();
        let report = Tensor::cat(
            vec![
                total.clone(),
                rows(img.clone(), 0),
                rows(txt.clone(), 1),
                ratio.mean(),
                rows(txt, 0),
                rows(img, 1),
                align.mean(),
            ],
            0,
        )
        .detach();
        LossOutput {
            total,
            report,
            image_logits: Tensor::cat(vec![first_x.clone(), first_x, first_y], 0),
        }
    }

    /// The image's negative log-likelihood under the decoder output, summed
    /// over pixels.
    ///
    /// # Shapes
    /// `logits`, `images`: `[n, pixels]` → `[n]`
    pub fn image_nll(&self, logits: Tensor<2>, images: Tensor<2>) -> Tensor<1> {
        self.likelihood
            .nll(self.pixel_scale.as_ref(), logits, images)
            .sum_dim(1)
            .squeeze_dim::<1>(1)
    }

    /// The posterior of the shared latent from the raw experts of the
    /// modalities present (at least one): the product with the prior expert,
    /// or the learned fusion network.
    pub fn posterior(&self, image: Option<&Gaussian>, text: Option<&Gaussian>) -> Gaussian {
        match (&self.fusion_head, image, text) {
            (None, Some(x), Some(y)) => Gaussian::product_with_prior(&[x.clone(), y.clone()]),
            (None, Some(q), None) | (None, None, Some(q)) => q.clone().with_prior(),
            (Some(head), _, _) => {
                let some = image.or(text).expect("at least one modality");
                let rows = some.mu.dims()[0];
                let device = some.mu.device();
                let zero = || Gaussian::new(some.mu.zeros_like(), some.logvar.zeros_like());
                let (x, y) = (
                    image.cloned().unwrap_or_else(zero),
                    text.cloned().unwrap_or_else(zero),
                );
                let present = Presence::all(rows, image.is_some(), text.is_some(), &device);
                head.fuse(&x, &y, &present)
            }
            (None, None, None) => panic!("posterior needs at least one modality"),
        }
    }

    /// q(z|x): the image's posterior of the shared latent.
    pub fn encode_image(&self, images: Tensor<2>) -> Gaussian {
        self.posterior(Some(&self.image_experts(images).0), None)
    }

    /// q(z|x) with the prior expert, followed by q(w|x) when the model has an
    /// image-only latent: `[batch, latent + private]`. Decoding a draw from it
    /// reconstructs the image with its own pose and style.
    pub fn encode_image_full(&self, images: Tensor<2>) -> Gaussian {
        match self.image_experts(images) {
            (qz, None) => self.posterior(Some(&qz), None),
            (qz, Some(qw)) => self.posterior(Some(&qz), None).concat(&qw),
        }
    }

    /// q(z|y): the caption's posterior of the shared latent.
    pub fn encode_text(&self, tokens: Tensor<2, Int>, last: Tensor<1, Int>) -> Gaussian {
        self.posterior(None, Some(&self.text_encoder.forward(tokens, last)))
    }

    /// Complete a shared latent with the image-only part: w drawn from its
    /// prior N(0, I) when `sample`, else its mean 0. Returns `z` unchanged
    /// when it already has `latent + private` columns.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]` → `[batch, latent + private]`
    pub fn with_private(&self, z: Tensor<2>, sample: bool) -> Tensor<2> {
        let [n, d] = z.dims();
        if self.private == 0 || d == self.latent + self.private {
            return z;
        }
        let device = z.device();
        let w = if sample {
            Tensor::random(
                [n, self.private],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            )
        } else {
            Tensor::zeros([n, self.private], &device)
        };
        Tensor::cat(vec![z, w], 1)
    }

    /// Of every `k` consecutive candidate images of one caption, the row
    /// of the one whose caption the model reads back most surely: the
    /// lowest −log p(y | z = mean of q(z|x̂)), each image encoded and its
    /// caption scored by the text decoder. A cycle-consistency rerank of
    /// text→image draws that uses only the model.
    ///
    /// # Shapes
    /// `images`: `[n·k, pixels]` in `[0, 1]`, `tokens`: `[n·k, max_len]`
    /// (caption i in rows i·k .. i·k + k) → `[n]`, row indices into `images`
    pub fn best_read_back(
        &self,
        images: Tensor<2>,
        tokens: Tensor<2, Int>,
        k: usize,
    ) -> Tensor<1, Int> {
        let k = k.max(1);
        let [rows, _] = images.dims();
        let n = rows / k;
        let device = images.device();
        let z = self.encode_image(images).mu; // [n·k, latent]
        let nll = self.text_decoder.nll(z, tokens).reshape([n, k]);
        let best = nll.argmin(1).reshape([n]); // [n], in 0..k
        Tensor::<1, Int>::arange(0..n as i64, &device).mul_scalar(k as i64) + best
    }

    /// Pixel probabilities: `[batch, latent]` (w then drawn from its prior)
    /// or `[batch, latent + private]` → `[batch, pixels]`.
    pub fn decode_image(&self, z: Tensor<2>) -> Tensor<2> {
        sigmoid(self.image_decoder.forward(self.with_private(z, true)))
    }

    /// Text needs only the shared part of a `[batch, latent + private]` draw.
    pub fn shared_part(&self, z: Tensor<2>) -> Tensor<2> {
        z.narrow(1, 0, self.latent)
    }

    /// Token ids of captions decoded from `[batch, latent]`.
    pub fn decode_text(&self, z: Tensor<2>, temperature: Option<f32>) -> Vec<Vec<usize>> {
        self.text_decoder.decode(z, self.max_len, temperature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ImageModel, TextModel};
    use crate::fusion::Presence;
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::{AdamConfig, GradientsParams};

    const SIDE: usize = 4;
    const VOCAB: usize = 9;

    fn tiny_cfg(image: ImageModel) -> (ModelConfig, LossConfig) {
        tiny_cfg_private(image, 0)
    }

    fn tiny_cfg_private(image: ImageModel, private_latent: usize) -> (ModelConfig, LossConfig) {
        (
            ModelConfig {
                image_likelihood: Default::default(),
                latent: 3,
                private_latent,
                fusion: Fusion::Poe,
                fusion_hidden: 128,
                image,
                text: TextModel::Gru {
                    embed: 4,
                    hidden: 5,
                },
                max_len: 6,
            },
            LossConfig {
                // Non-zero so the gradient checks cover the alignment term.
                align_weight: 0.5,
                cross_weight: 0.7,
                // Non-zero so the gradient checks cover the caption cycle.
                cycle_weight: 0.3,
                ..LossConfig::default()
            },
        )
    }

    fn tiny_batch(device: &Device) -> Batch {
        let b = 4;
        let px: Vec<f32> = (0..b * SIDE * SIDE)
            .map(|i| ((i * 37) % 11) as f32 / 10.0)
            .collect();
        // <bos> w w (w) <eos> <pad>
        let toks: Vec<i64> = vec![
            1, 4, 5, 2, 0, 0, 1, 6, 7, 8, 2, 0, 1, 4, 8, 2, 0, 0, 1, 5, 5, 6, 2, 0,
        ];
        Batch {
            images: Tensor::from_data(TensorData::new(px, [b, SIDE * SIDE]), device),
            tokens: Tensor::from_data(TensorData::new(toks, [b, 6]), device),
            last: Tensor::from_data(TensorData::new(vec![3i64, 4, 3, 4], [b]), device),
        }
    }

    #[test]
    fn best_read_back_keeps_the_candidate_with_the_lowest_caption_nll() {
        let _g = crate::testutil::rng_lock();
        let device = Device::flex();
        device.seed(3);
        let (cfg, _) = tiny_cfg(ImageModel::Mlp { hidden: 6 });
        let m = cfg.init(SIDE, 1, VOCAB, &device);
        // 2 captions × 3 candidates: every candidate a different image,
        // each caption repeated over its 3 rows.
        let (n, k) = (2, 3);
        let px: Vec<f32> = (0..n * k * SIDE * SIDE)
            .map(|i| ((i * 53 + i / 7) % 17) as f32 / 16.0)
            .collect();
        let images = Tensor::<2>::from_data(TensorData::new(px, [n * k, SIDE * SIDE]), &device);
        let caps: [[i64; 6]; 2] = [[1, 4, 5, 2, 0, 0], [1, 6, 7, 8, 2, 0]];
        let toks: Vec<i64> = (0..n * k).flat_map(|r| caps[r / k]).collect();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(toks, [n * k, 6]), &device);
        let best: Vec<i64> = m
            .best_read_back(images.clone(), tokens.clone(), k)
            .try_into_vec_as::<i64>()
            .unwrap();
        // The reference: each candidate scored alone.
        let nll: Vec<f32> = (0..n * k)
            .map(|r| {
                let z = m.encode_image(images.clone().narrow(0, r, 1)).mu;
                scalar(m.text_decoder.nll(z, tokens.clone().narrow(0, r, 1))) as f32
            })
            .collect();
        for i in 0..n {
            let row = &nll[i * k..(i + 1) * k];
            let want = (0..k).min_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            assert_eq!(best[i], (i * k + want) as i64, "{nll:?} {best:?}");
        }
        // The scores differ, so the choice is not a tie broken by position.
        assert!(nll.windows(2).all(|w| w[0] != w[1]), "{nll:?}");
        // One candidate per caption keeps every row.
        let all: Vec<i64> = m
            .best_read_back(images, tokens, 1)
            .try_into_vec_as::<i64>()
            .unwrap();
        assert_eq!(all, (0..(n * k) as i64).collect::<Vec<_>>());
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.try_into_vec_as::<f32>().unwrap()[0] as f64
    }

    /// All parameter values, flattened, in visiting order.
    struct Values(Vec<Vec<f32>>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.val().try_into_vec_as::<f32>().unwrap());
        }
    }
    fn values(m: &Mvae) -> Vec<Vec<f32>> {
        let mut v = Values(Vec::new());
        m.visit(&mut v);
        v.0
    }

    use crate::testutil::{GradsOf, Perturb};

    fn gradient_check(image: ImageModel, private: usize) {
        gradient_check_fusion(image, private, Fusion::Poe);
    }

    fn gradient_check_fusion(image: ImageModel, private: usize, fusion: Fusion) {
        let (cfg, loss_cfg) = tiny_cfg_private(image, private);
        gradient_check_cfg(cfg, loss_cfg, fusion);
    }

    fn gradient_check_text(text: TextModel) {
        let (mut cfg, loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 6 });
        cfg.text = text;
        gradient_check_cfg(cfg, loss_cfg, Fusion::Poe);
    }

    #[test]
    fn loss_gradients_match_finite_differences_lstm() {
        gradient_check_text(TextModel::Lstm {
            embed: 4,
            hidden: 5,
            bidirectional: false,
        });
    }

    #[test]
    fn loss_gradients_match_finite_differences_bilstm() {
        gradient_check_text(TextModel::Lstm {
            embed: 4,
            hidden: 5,
            bidirectional: true,
        });
    }

    #[test]
    fn loss_gradients_match_finite_differences_xlstm() {
        gradient_check_text(TextModel::XLstm {
            embed: 4,
            hidden: 5,
        });
    }

    #[test]
    fn loss_gradients_match_finite_differences_multi_hot() {
        gradient_check_text(TextModel::MultiHot { hidden: 6 });
    }

    #[test]
    fn loss_gradients_match_finite_differences_transformer() {
        gradient_check_text(TextModel::Transformer {
            d_model: 4,
            heads: 2,
            layers: 1,
            ff: 6,
        });
    }

    fn gradient_check_cfg(cfg: ModelConfig, loss_cfg: LossConfig, fusion: Fusion) {
        let _rng = crate::testutil::rng_lock();
        let ad = Device::flex().autodiff();
        ad.seed(11);
        let model = cfg.init(SIDE, 1, VOCAB, &ad);
        let batch_ad = tiny_batch(&ad);
        ad.seed(5);
        let out = model.loss(&batch_ad, &loss_cfg, fusion, 0.7);
        let ad_value = scalar(out.total.clone());
        let grads = out.total.backward();
        let mut gv = GradsOf(&grads, Vec::new());
        model.visit(&mut gv);
        let analytic = gv.1;

        let plain = Device::flex();
        let base = model.valid();
        let batch = tiny_batch(&plain);
        let loss_of = |m: &Mvae| {
            plain.seed(5);
            scalar(m.loss(&batch, &loss_cfg, fusion, 0.7).total)
        };
        assert!(
            (loss_of(&base) - ad_value).abs() < 1e-4,
            "{} vs {ad_value}",
            loss_of(&base)
        );
        assert_eq!(loss_of(&base), loss_of(&base));
        let h = 1e-2f32;
        let (mut checked, mut bad) = (0, Vec::new());
        for (target, g) in analytic.iter().enumerate() {
            // Three elements spread over each parameter tensor.
            for index in [0, g.len() / 2, g.len() - 1] {
                let plus = base.clone().map(&mut Perturb {
                    target,
                    index,
                    h,
                    seen: 0,
                });
                let minus = base.clone().map(&mut Perturb {
                    target,
                    index,
                    h: -h,
                    seen: 0,
                });
                let fd = (loss_of(&plus) - loss_of(&minus)) / (2.0 * h as f64);
                let an = g[index] as f64;
                checked += 1;
                if (fd - an).abs() > 0.05 * fd.abs().max(an.abs()) + 1e-2 {
                    bad.push((target, index, an, fd));
                }
            }
        }
        assert!(checked >= 60, "only {checked} elements checked");
        // ReLU kinks can make an isolated central difference disagree.
        assert!(
            bad.len() * 50 <= checked,
            "{} of {checked} gradients disagree with finite differences: {bad:?}",
            bad.len()
        );
    }

    #[test]
    fn loss_gradients_match_finite_differences_mlp() {
        gradient_check(ImageModel::Mlp { hidden: 6 }, 0);
    }

    #[test]
    fn loss_gradients_match_finite_differences_with_image_only_latent() {
        gradient_check(ImageModel::Mlp { hidden: 6 }, 2);
    }

    #[test]
    fn loss_gradients_match_finite_differences_for_each_alignment() {
        for align in [Alignment::ImageTextKl, Alignment::Mse, Alignment::InfoNce] {
            let (cfg, mut loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 6 });
            loss_cfg.align = align;
            loss_cfg.align_weight = 2.0;
            gradient_check_cfg(cfg, loss_cfg, Fusion::Poe);
        }
    }

    #[test]
    fn loss_gradients_match_finite_differences_with_learned_pixel_scales() {
        for lk in [
            ImageLikelihood::Gaussian {
                scale: 0.3,
                learned: true,
            },
            ImageLikelihood::Laplace {
                scale: 0.3,
                learned: true,
            },
            ImageLikelihood::Gaussian {
                scale: 0.5,
                learned: false,
            },
        ] {
            let (mut cfg, loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 6 });
            cfg.image_likelihood = lk;
            gradient_check_cfg(cfg, loss_cfg, Fusion::Poe);
        }
    }

    fn iwae_cfg(objective: Objective, k: usize) -> (ModelConfig, LossConfig) {
        let (cfg, mut loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 6 });
        loss_cfg.objective = objective;
        loss_cfg.k = k;
        loss_cfg.cross_weight = 1.0;
        (cfg, loss_cfg)
    }

    #[test]
    fn iwae_with_one_sample_is_the_moe_elbo() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(6);
        let (cfg, iwae) = iwae_cfg(Objective::Iwae, 1);
        let elbo = LossConfig {
            objective: Objective::Elbo,
            ..iwae.clone()
        };
        let m = cfg.init(SIDE, 1, VOCAB, &dev);
        let batch = tiny_batch(&dev);
        let b = 4;
        let e = Tensor::<2>::random(
            [3 * b, 3],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &dev,
        );
        let a = m.loss_with_noise(&batch, &elbo, Fusion::Moe, 0.8, e.clone());
        let c = m.loss_with_noise(&batch, &iwae, Fusion::Moe, 0.8, e.narrow(0, b, 2 * b));
        let (a, c) = (
            a.report.try_into_vec_as::<f32>().unwrap(),
            c.report.try_into_vec_as::<f32>().unwrap(),
        );
        // The objective, the cross terms and the alignment agree (the ELBO
        // reports the joint PoE row's terms in 1..=3, which IWAE has not).
        for i in [0, 4, 5, 6] {
            assert!(
                (a[i] - c[i]).abs() < 1e-3 * a[i].abs().max(1.0),
                "{i}: {a:?} vs {c:?}"
            );
        }
    }

    #[test]
    fn iwae_gradients_match_finite_differences() {
        let (cfg, loss_cfg) = iwae_cfg(Objective::Iwae, 3);
        gradient_check_cfg(cfg, loss_cfg, Fusion::Moe);
    }

    #[test]
    fn dreg_keeps_the_bound_and_the_decoder_gradients_and_changes_the_encoders() {
        let _rng = crate::testutil::rng_lock();
        let ad = Device::flex().autodiff();
        ad.seed(12);
        let (cfg, iwae) = iwae_cfg(Objective::Iwae, 4);
        let dreg = LossConfig {
            objective: Objective::Dreg,
            ..iwae.clone()
        };
        let m = cfg.init(SIDE, 1, VOCAB, &ad);
        let batch = tiny_batch(&ad);
        let eps = Tensor::<2>::random(
            [2 * 4 * 4, 3],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &ad,
        );
        let run = |l: &LossConfig| {
            let out = m.loss_with_noise(&batch, l, Fusion::Moe, 1.0, eps.clone());
            let v = scalar(out.total.clone());
            let g = out.total.backward();
            let of = |part: &dyn Fn(&mut GradsOf)| {
                let mut gv = GradsOf(&g, Vec::new());
                part(&mut gv);
                gv.1.concat()
            };
            let dec = of(&|gv| {
                m.image_decoder.visit(gv);
                m.text_decoder.visit(gv);
            });
            let enc = of(&|gv| {
                m.image_encoder.visit(gv);
                m.text_encoder.visit(gv);
            });
            (v, dec, enc)
        };
        let (vi, di, ei) = run(&iwae);
        let (vd, dd, ed) = run(&dreg);
        assert!((vi - vd).abs() < 1e-4 * vi.abs(), "{vi} vs {vd}");
        assert_eq!(di.len(), dd.len());
        for (x, y) in di.iter().zip(&dd) {
            assert!(
                (x - y).abs() <= 1e-4 + 1e-3 * x.abs().max(y.abs()),
                "decoder {x} vs {y}"
            );
        }
        let differ = ei
            .iter()
            .zip(&ed)
            .filter(|(x, y)| (*x - *y).abs() > 1e-3 * x.abs().max(y.abs()).max(1e-3))
            .count();
        assert!(
            differ * 2 > ei.len(),
            "only {differ} of {} encoder gradients differ",
            ei.len()
        );
    }

    #[test]
    fn loss_gradients_match_finite_differences_with_learned_fusion() {
        for (fusion, dropout) in [(Fusion::Concat, 0.0), (Fusion::Attention, 0.5)] {
            let (mut cfg, mut loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 6 });
            cfg.fusion = fusion;
            cfg.latent = 4;
            cfg.fusion_hidden = 8;
            loss_cfg.modality_dropout = dropout;
            gradient_check_cfg(cfg, loss_cfg, fusion);
        }
    }

    #[test]
    fn learned_fusion_posteriors_serve_inference_and_dropout_masks_the_joint() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(4);
        let (mut cfg, mut loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 6 });
        cfg.fusion = Fusion::Concat;
        cfg.fusion_hidden = 8;
        let m = cfg.init(SIDE, 1, VOCAB, &dev);
        let batch = tiny_batch(&dev);
        let v = |g: Gaussian| g.mu.try_into_vec_as::<f32>().unwrap();
        // encode_image is the fusion network with the text masked out, not
        // the expert with the prior.
        let (qx, _) = m.image_experts(batch.images.clone());
        let head = m.fusion_head.as_ref().unwrap();
        let any = Gaussian::new(qx.mu.zeros_like(), qx.logvar.zeros_like());
        let want = head.fuse(&qx, &any, &Presence::all(4, true, false, &dev));
        assert_eq!(v(m.encode_image(batch.images.clone())), v(want));
        assert_ne!(v(m.encode_image(batch.images.clone())), v(qx.with_prior()));
        // With dropout the joint term changes (some items lose a modality),
        // the single-modality terms do not.
        let eps = Tensor::<2>::random([16, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let plain = m
            .loss_with_noise(
                &batch,
                &loss_cfg,
                Fusion::Concat,
                1.0,
                eps.clone().narrow(0, 0, 12),
            )
            .report
            .try_into_vec_as::<f32>()
            .unwrap();
        loss_cfg.modality_dropout = 0.99;
        let dropped = m
            .loss_with_noise(&batch, &loss_cfg, Fusion::Concat, 1.0, eps)
            .report
            .try_into_vec_as::<f32>()
            .unwrap();
        // [loss, img_nll, txt_nll, kl, img2txt_nll, txt2img_nll, align]
        assert_ne!(plain[3], dropped[3], "joint KL unchanged under dropout");
        assert_eq!(plain[4], dropped[4]);
        assert_eq!(plain[5], dropped[5]);
    }

    #[test]
    fn info_nce_matches_a_hand_computed_case() {
        let dev = Device::flex();
        // Unit vectors at 0°, 90° and 180°; b = a, temperature 0.5.
        let a = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]], &dev);
        let v = info_nce(a.clone(), a, 0.5)
            .try_into_vec_as::<f32>()
            .unwrap();
        // Row 0 similarities [1, 0, −1] / 0.5 = [2, 0, −2]; symmetric, so
        // both directions give the same cross-entropy.
        let ce = |own: f32, all: [f32; 3]| -(own - all.iter().map(|x| x.exp()).sum::<f32>().ln());
        let want = [
            ce(2.0, [2.0, 0.0, -2.0]),
            ce(2.0, [0.0, 2.0, 0.0]),
            ce(2.0, [-2.0, 0.0, 2.0]),
        ];
        for (g, w) in v.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{v:?} vs {want:?}");
        }
    }

    #[test]
    fn alignment_terms_are_the_named_divergences() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(2);
        let (cfg, mut loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 6 });
        let m = cfg.init(SIDE, 1, VOCAB, &dev);
        let batch = tiny_batch(&dev);
        let qx = m.encode_image(batch.images.clone());
        let qy = m.encode_text(batch.tokens.clone(), batch.last.clone());
        let qj = Gaussian::product_with_prior(&[
            m.image_experts(batch.images.clone()).0,
            m.text_encoder
                .forward(batch.tokens.clone(), batch.last.clone()),
        ]);
        let mean = |t: Tensor<1>| scalar(t.mean());
        for (align, want) in [
            (Alignment::Jmvae, mean(qj.kl(&qx) + qj.kl(&qy))),
            (Alignment::ImageTextKl, mean(qx.kl(&qy))),
            (Alignment::Mse, mean(qx.moment_mse(&qy))),
            (
                Alignment::InfoNce,
                mean(info_nce(qx.mu.clone(), qy.mu.clone(), loss_cfg.temperature)),
            ),
        ] {
            loss_cfg.align = align;
            let r = m.loss(&batch, &loss_cfg, Fusion::Poe, 1.0).report;
            let got = r.try_into_vec_as::<f32>().unwrap()[6] as f64;
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1.0),
                "{align:?}: {got} vs {want}"
            );
            assert!(want > 0.0, "{align:?}");
        }
    }

    #[test]
    fn loss_gradients_match_finite_differences_conv() {
        for refine in [false, true] {
            gradient_check(
                ImageModel::Conv {
                    channels: 2,
                    hidden: 6,
                    max_channels: None,
                    refine,
                },
                0,
            );
        }
    }

    #[test]
    fn train_step_changes_weights_and_eval_does_not() {
        let _rng = crate::testutil::rng_lock();
        let (cfg, loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 8 });
        let ad = Device::flex().autodiff();
        ad.seed(1);
        let model = cfg.init(SIDE, 1, VOCAB, &ad);
        let before = values(&model);
        // Inference leaves weights alone.
        let valid = model.valid();
        let _ = valid.loss(&tiny_batch(&Device::flex()), &loss_cfg, Fusion::Poe, 1.0);
        let _ = valid.decode_text(Tensor::zeros([2, 3], &Device::flex()), None);
        assert_eq!(values(&model), before);
        // One optimizer step moves every parameter that the loss touches.
        let mut optim = AdamConfig::new().init();
        let out = model.loss(&tiny_batch(&ad), &loss_cfg, Fusion::Poe, 1.0);
        let grads = GradientsParams::from_grads(out.total.backward(), &model);
        let stepped = optim.step(1e-2, model, grads);
        let after = values(&stepped);
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(changed, before.len(), "every parameter should move");
    }

    #[test]
    fn save_load_round_trip_gives_identical_outputs() {
        let _rng = crate::testutil::rng_lock();
        let (cfg, loss_cfg) = tiny_cfg(ImageModel::Conv {
            channels: 2,
            hidden: 6,
            max_channels: None,
            refine: false,
        });
        let dev = Device::flex();
        dev.seed(4);
        let model = cfg.init(SIDE, 1, VOCAB, &dev);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.bpk");
        model.clone().save_file(&p).unwrap();
        let loaded = cfg.init(SIDE, 1, VOCAB, &dev).try_load_file(&p).unwrap();
        assert_eq!(values(&model), values(&loaded));
        let batch = tiny_batch(&dev);
        dev.seed(9);
        let a = scalar(model.loss(&batch, &loss_cfg, Fusion::Poe, 1.0).total);
        dev.seed(9);
        let b = scalar(loaded.loss(&batch, &loss_cfg, Fusion::Poe, 1.0).total);
        assert_eq!(a, b);
        // A model of another shape refuses these weights.
        let (other, _) = tiny_cfg(ImageModel::Conv {
            channels: 2,
            hidden: 7,
            max_channels: None,
            refine: false,
        });
        let e = crate::checkpoint::load_weights(other.init(SIDE, 1, VOCAB, &dev), &p).unwrap_err();
        assert!(e.contains("shape"), "{e}");
    }

    #[test]
    fn loss_gradients_match_finite_differences_moe() {
        gradient_check_fusion(ImageModel::Mlp { hidden: 6 }, 0, Fusion::Moe);
    }

    #[test]
    fn loss_gradients_match_finite_differences_mopoe_with_image_only_latent() {
        gradient_check_fusion(ImageModel::Mlp { hidden: 6 }, 2, Fusion::MoPoe);
    }

    #[test]
    fn mixture_objectives_relate_to_the_poe_terms() {
        let _rng = crate::testutil::rng_lock();
        let (cfg, mut loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 8 });
        loss_cfg.align_weight = 0.0;
        loss_cfg.cross_weight = 1.0;
        loss_cfg.cycle_weight = 0.0;
        let dev = Device::flex();
        dev.seed(8);
        let model = cfg.init(SIDE, 1, VOCAB, &dev);
        let batch = tiny_batch(&dev);
        let eps = Tensor::<2>::random([12, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let total = |f: Fusion| {
            scalar(
                model
                    .loss_with_noise(&batch, &loss_cfg, f, 0.9, eps.clone())
                    .total,
            )
        };
        // MoPoE's stratified ELBO is the mean of the three subset ELBOs,
        // which PoE with every term reconstructing both modalities sums.
        let (poe, mopoe, moe) = (total(Fusion::Poe), total(Fusion::MoPoe), total(Fusion::Moe));
        assert!(
            (mopoe - poe / 3.0).abs() < 1e-4 * poe.abs(),
            "{mopoe} vs {poe}/3"
        );
        // MoE drops the joint term and swaps the unimodal KLs for the
        // mixture estimate; its reconstructions match the PoE rows 1 and 2.
        assert!(
            moe.is_finite() && (moe - mopoe).abs() > 1e-3,
            "{moe} {mopoe}"
        );
    }

    #[test]
    fn conditional_objective_puts_the_caption_posterior_under_the_image() {
        let _rng = crate::testutil::rng_lock();
        let (cfg, mut loss_cfg) = tiny_cfg(ImageModel::Mlp { hidden: 8 });
        loss_cfg.align_weight = 0.0;
        loss_cfg.cycle_weight = 0.0;
        let dev = Device::flex();
        dev.seed(9);
        let model = cfg.init(SIDE, 1, VOCAB, &dev);
        let batch = tiny_batch(&dev);
        let eps = Tensor::<2>::random([12, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let beta = 0.7f32;
        let total = |target: UnimodalTarget, cross: f32| {
            let mut l = loss_cfg.clone();
            l.unimodal_target = target;
            l.cross_weight = cross;
            scalar(
                model
                    .loss_with_noise(&batch, &l, Fusion::Poe, beta, eps.clone())
                    .total,
            )
        };
        // The same reconstructions as "all" without the image-from-caption
        // term; only the image-only KL changes: KL(q(z|x) ‖ q(z|y)) for
        // KL(q(z|x) ‖ N(0, I)), batch mean, times β.
        let cond = total(UnimodalTarget::Conditional, 1.0);
        let all = total(UnimodalTarget::All, 0.0);
        let (qx, _) = model.image_experts(batch.images.clone());
        let qy = model
            .text_encoder
            .forward(batch.tokens.clone(), batch.last.clone());
        let (q_x, q_y) = (qx.with_prior(), qy.with_prior());
        let shift = scalar((q_x.kl(&q_y) - q_x.kl_standard()).mean()) * beta as f64;
        assert!(shift.abs() > 1e-3, "{shift}");
        assert!(
            (cond - all - shift).abs() < 1e-4 * cond.abs().max(1.0),
            "{cond} - {all} vs {shift}"
        );
    }

    #[test]
    fn loss_gradients_match_finite_differences_conditional() {
        let (cfg, mut l) = tiny_cfg(ImageModel::Mlp { hidden: 6 });
        l.unimodal_target = UnimodalTarget::Conditional;
        l.cross_weight = 1.0;
        gradient_check_cfg(cfg, l, Fusion::Poe);
    }

    #[test]
    fn image_only_latent_feeds_the_image_decoder_alone() {
        let _rng = crate::testutil::rng_lock();
        let (cfg, loss_cfg) = tiny_cfg_private(ImageModel::Mlp { hidden: 8 }, 2);
        let dev = Device::flex();
        dev.seed(6);
        let model = cfg.init(SIDE, 1, VOCAB, &dev);
        let batch = tiny_batch(&dev);
        assert_eq!(model.encode_image(batch.images.clone()).mu.dims(), [4, 3]);
        let full = model.encode_image_full(batch.images.clone());
        assert_eq!(full.mu.dims(), [4, 5]);
        // The shared part of the full posterior is q(z|x) itself.
        let a = model.encode_image(batch.images.clone()).mu;
        let b = model.shared_part(full.mu.clone());
        assert_eq!(
            a.try_into_vec_as::<f32>().unwrap(),
            b.try_into_vec_as::<f32>().unwrap()
        );
        // A shared latent is completed with w = 0 (mean) or w ~ N(0, I).
        let z = Tensor::<2>::ones([4, 3], &dev);
        let mean = model.with_private(z.clone(), false);
        assert_eq!(mean.dims(), [4, 5]);
        let w: Vec<f32> = mean.narrow(1, 3, 2).try_into_vec_as().unwrap();
        assert!(w.iter().all(|&v| v == 0.0));
        let s1 = model
            .decode_image(z.clone())
            .try_into_vec_as::<f32>()
            .unwrap();
        let s2 = model.decode_image(z).try_into_vec_as::<f32>().unwrap();
        assert_ne!(s1, s2, "prior draws of w should change the image");
        // The loss's text-only row sees w only through its noise columns:
        // changing them moves the text→image term and nothing else's text.
        let eps = Tensor::<2>::random([12, 5], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let r = |eps: Tensor<2>| {
            model
                .loss_with_noise(&batch, &loss_cfg, Fusion::Poe, 1.0, eps)
                .report
                .try_into_vec_as::<f32>()
                .unwrap()
        };
        let base = r(eps.clone());
        let mut d = eps.try_into_vec_as::<f32>().unwrap();
        for row in 8..12 {
            d[row * 5 + 3] += 1.0;
        }
        let moved = r(Tensor::from_data(TensorData::new(d, [12, 5]), &dev));
        // [loss, img_nll, txt_nll, kl, img2txt_nll, txt2img_nll, align_kl]
        assert_ne!(base[5], moved[5]);
        for i in [1, 2, 3, 4, 6] {
            assert_eq!(base[i], moved[i], "term {i}");
        }
    }

    #[test]
    fn decoding_is_greedy_and_bounded() {
        let _rng = crate::testutil::rng_lock();
        for text in [
            TextModel::Gru {
                embed: 4,
                hidden: 5,
            },
            TextModel::Lstm {
                embed: 4,
                hidden: 5,
                bidirectional: true,
            },
            TextModel::XLstm {
                embed: 4,
                hidden: 5,
            },
            TextModel::Transformer {
                d_model: 4,
                heads: 2,
                layers: 1,
                ff: 6,
            },
            TextModel::MultiHot { hidden: 6 },
        ] {
            let (mut cfg, _) = tiny_cfg(ImageModel::Mlp { hidden: 8 });
            cfg.text = text;
            let dev = Device::flex();
            dev.seed(2);
            let model = cfg.init(SIDE, 1, VOCAB, &dev);
            let z = Tensor::<2>::random([5, 3], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
            let a = model.decode_text(z.clone(), None);
            let b = model.decode_text(z.clone(), None);
            assert_eq!(a, b, "{text:?}");
            assert!(a
                .iter()
                .all(|t| t.len() <= cfg.max_len - 1 && t.iter().all(|&id| id < VOCAB)));
            // Beam search of width 1 is greedy decoding; wider beams find
            // captions at least as probable as greedy ones.
            let one = model.text_decoder.decode_beam(z.clone(), cfg.max_len, 1);

            assert_eq!(one, a, "{text:?}");
            let wide = model.text_decoder.decode_beam(z.clone(), cfg.max_len, 3);
            let vocab = mmvae_data::Vocab::build(["a b c d e"]);
            let logp = |caps: &[Vec<usize>]| -> Vec<f32> {
                // <bos> caption <eos>, padded: max_len - 1 tokens fit.
                let len = cfg.max_len + 1;
                let ids: Vec<i64> = caps
                    .iter()
                    .flat_map(|c| vocab.frame(c, len).into_iter().map(|t| t as i64))
                    .collect();
                let toks =
                    Tensor::<2, Int>::from_data(TensorData::new(ids, [caps.len(), len]), &dev);
                model
                    .text_decoder
                    .nll(z.clone(), toks)
                    .neg()
                    .try_into_vec_as::<f32>()
                    .unwrap()
            };
            for (w, g) in logp(&wide).iter().zip(logp(&a)) {
                assert!(*w >= g - 1e-4, "{text:?}: beam {w} < greedy {g}");
            }
        }
    }
}
