//! The stratified importance-weighted bound of the mixture of experts
//! (MMVAE's IWAE) and its doubly reparameterised surrogate (DReG).

use burn::prelude::*;

use super::align::alignment;
use super::elbo::Posteriors;
use super::plan::{Plan, Subset};
use super::{masked_mean, LossOutput, Terms};
use crate::config::{LossConfig, Objective};
use crate::io::batch::{Batch, Input};
use crate::modality::ModalityKind;
use crate::mvae::{log_sum_exp_dim, Mvae};
use crate::nn::gaussian::Gaussian;

/// The draws of one evaluation of the weights.
struct Weighed {
    /// log w of every draw: `[M·n]`.
    lw: Tensor<1>,
    /// Per modality, its NLL at every draw: `[M·n]` each; `None` for a
    /// modality that weighs nothing (its decoder does not run).
    nll: Vec<Option<Tensor<1>>>,
    /// log q_mix(z) − log p(z) at every draw: `[M·n]`.
    ratio: Tensor<1>,
    /// The (first) image modality's logits at every draw.
    image_logits: Option<Tensor<2>>,
}

/// What the weight of a draw is computed from: the batch's targets and
/// masks repeated for every draw, and the mixture q_mix of each item's
/// present unimodal posteriors.
struct Weigher {
    /// The unimodal posteriors of q_mix, each repeated for every draw (held
    /// fixed under DReG).
    mix: Vec<Gaussian>,
    /// Per modality `[M·n, 1]`: where it is present, at every draw.
    mix_masks: Vec<Tensor<2>>,
    /// Per modality `[M·n]`: the same masks as rows.
    present_rows: Vec<Tensor<1>>,
    /// Per modality its targets, repeated for every draw.
    targets: Vec<Input>,
    /// Per modality the weight of its NLL.
    weights: Vec<f32>,
    beta: f32,
}

impl Weigher {
    /// The [`Weigher`] of a batch: its targets and masks repeated for every
    /// draw, the mixture's posteriors held fixed under DReG.
    fn new(
        batch: &Batch,
        plan: &Plan,
        beta: f32,
        unimodal: &[Gaussian],
        present: &[Tensor<2>],
        blocks: Blocks,
        dreg: bool,
    ) -> Weigher {
        let (nm, k) = (blocks.nm, blocks.k);
        let mix = unimodal
            .iter()
            .map(|q| if dreg { q.detach() } else { q.clone() }.repeat_rows(nm * k))
            .collect();
        let mix_masks: Vec<Tensor<2>> = present
            .iter()
            .map(|p| p.clone().repeat_dim(0, nm * k))
            .collect();
        let present_rows = mix_masks
            .iter()
            .map(|p| p.clone().reshape([nm * blocks.n()]))
            .collect();
        Weigher {
            mix,
            mix_masks,
            present_rows,
            targets: batch.inputs.iter().map(|i| i.repeat(nm * k)).collect(),
            weights: plan.terms[0].targets.clone(),
            beta,
        }
    }

    /// log w of every draw `z` (`[M·n, latent]`) under the model `m`.
    fn weigh(&self, m: &Mvae, z: Tensor<2>) -> Weighed {
        let ratio = Gaussian::mixture_log_prob(&self.mix, &self.mix_masks, z.clone())
            - Gaussian::standard_log_prob(z.clone());
        let mut lw = ratio.clone() * self.beta;
        let mut nll = Vec::with_capacity(m.experts.len());
        let mut image_logits = None;
        for (j, e) in m.experts.iter().enumerate() {
            if self.weights[j] == 0.0 {
                nll.push(None);
                continue;
            }
            let (l, logits) = e.reconstruct(z.clone(), &self.targets[j]);
            lw = lw + l.clone() * self.present_rows[j].clone() * self.weights[j];
            if image_logits.is_none() {
                image_logits = logits;
            }
            nll.push(Some(l));
        }
        Weighed {
            lw: lw.neg(),
            nll,
            ratio,
            image_logits,
        }
    }
}

/// The shape of the draws: `nm` blocks (one per modality) of `k` draws of
/// each of `b` items.
#[derive(Clone, Copy)]
struct Blocks {
    nm: usize,
    k: usize,
    b: usize,
}

impl Blocks {
    /// Draws per block.
    fn n(self) -> usize {
        self.k * self.b
    }

    /// log mean over k of `[M·n]` log weights → `[M, b]`.
    fn log_mean(self, lw: Tensor<1>) -> Tensor<2> {
        let Blocks { nm, k, b } = self;
        log_sum_exp_dim(lw.reshape([nm, k, b]), 1).reshape([nm, b]) - (k as f32).ln()
    }

    /// Per item, the mean over its present modalities of `per` (`[M, b]`),
    /// summed over the batch and divided by its size.
    fn over_modalities(self, per: Tensor<2>, present: &[Tensor<2>]) -> Tensor<1> {
        let b = self.b;
        let count = Tensor::cat(present.to_vec(), 1).sum_dim(1).reshape([b]); // [b]
        let mask = Tensor::cat(
            present.iter().map(|p| p.clone().reshape([1, b])).collect(),
            0,
        );
        let mean = (per * mask).sum_dim(0).reshape([b]) / count.clamp_min(1.0);
        mean.sum() / b as f32
    }
}

impl Mvae {
    /// For each present modality m and item, K draws z_k ~ q(z|m) (with the
    /// prior expert) are weighted by
    /// log w_k = −Σ_j w_j·NLL(x_j|z_k) − β·[log q_mix(z_k) − log p(z_k)]
    /// (the item's present modalities j, q_mix the mixture of its present
    /// unimodal posteriors), and the bound is the mean over the present
    /// modalities of log mean_k w_k. With DReG the parameters inside q_mix
    /// are held fixed and the gradient through z_k is scaled by the
    /// normalised weight w̃_k (found by a first, gradient-free pass), so the
    /// encoder sees Σ w̃_k² ∂log w_k and the decoders Σ w̃_k ∂log w_k; the
    /// returned value is still the bound.
    ///
    /// # Shapes
    /// `eps`: `[M · k · batch, latent]`, one block per modality in order,
    /// each sample-major (row = k·batch + item).
    pub(crate) fn moe_iwae_loss(
        &self,
        batch: &Batch,
        cfg: &LossConfig,
        plan: &Plan,
        beta: f32,
        eps: Tensor<2>,
    ) -> LossOutput {
        let nm = self.modalities();
        let blocks = Blocks {
            nm,
            k: cfg.k,
            b: batch.size(),
        };
        let dreg = cfg.objective == Objective::Dreg;
        let present: Vec<Tensor<2>> = (0..nm).map(|m| batch.present_col(m)).collect();
        let shared = self
            .encode_all(batch)
            .into_iter()
            .map(|e| e.shared)
            .collect();
        let mut post = Posteriors::new(self, shared, present.clone(), present.clone());
        let unimodal: Vec<Gaussian> = (0..nm).map(|m| post.get(Subset::single(m))).collect();
        let z = draws(&unimodal, eps.narrow(1, 0, self.latent), blocks); // [M·n, latent]
        let weigher = Weigher::new(batch, plan, beta, &unimodal, &present, blocks, dreg);
        let (mut total, w) = if dreg {
            self.dreg_bound(&weigher, z, &present, blocks)
        } else {
            let w = weigher.weigh(self, z);
            let bound = blocks.over_modalities(blocks.log_mean(w.lw.clone()), &present);
            (bound.neg(), w)
        };
        let mut named = Vec::new();
        let full = Subset::full(nm);
        let b = blocks.b;
        if cfg.align_weight > 0.0 {
            let q_joint = post.get(full);
            let valid = post.valid(full);
            let a = alignment(cfg, &q_joint, &unimodal, self.pair(), &valid) * valid.clone();
            total = total + a.clone().sum() * (cfg.align_weight / b as f32);
            named.push(("align".to_string(), masked_mean(a, valid)));
        }
        // The first draw of each modality stands for the batch's images.
        let first_logits = |m: usize| {
            w.image_logits
                .as_ref()
                .map(|l| l.clone().narrow(0, m * blocks.n(), b))
        };
        // Only where the image is decoded, as in the ELBO.
        let text = self.index_of_kind(ModalityKind::Text);
        let cycled = text.filter(|_| cfg.cycle_weight > 0.0);
        if let Some((t, generated)) = cycled.and_then(|t| first_logits(t).map(|g| (t, g))) {
            total = total
                + self.caption_cycle(generated, &batch.inputs[t], post.present(t))
                    * cfg.cycle_weight;
        }
        let mut entries = vec![
            ("loss".to_string(), total.clone()),
            ("kl".to_string(), w.ratio.clone().mean()),
        ];
        entries.extend(self.iwae_nll_terms(&w, &post, blocks));
        entries.extend(named);
        let (reconstructed, generated) = self.first_draw_images(first_logits);
        LossOutput {
            total,
            terms: Terms::new(entries),
            reconstructed,
            generated,
        }
    }

    /// The image decoded from the first draw of the image's own block
    /// (twice, as the ELBO's joint and unimodal reconstructions) and from
    /// that of every other modality's block, side by side; `first_logits`
    /// gives a block's.
    fn first_draw_images(
        &self,
        first_logits: impl Fn(usize) -> Option<Tensor<2>>,
    ) -> (Option<Tensor<2>>, Option<Tensor<2>>) {
        let Some(i) = self.index_of_kind(ModalityKind::Image) else {
            return (None, None);
        };
        let x = first_logits(i);
        let others: Vec<Tensor<2>> = (0..self.modalities())
            .filter(|&m| m != i)
            .filter_map(first_logits)
            .collect();
        (
            x.map(|x| Tensor::cat(vec![x.clone(), x], 0)),
            (!others.is_empty()).then(|| Tensor::cat(others, 0)),
        )
    }

    /// DReG: the weights normalised over each item's draws (a first,
    /// gradient-free pass) scale the gradient through each draw; the value
    /// returned is the negated bound, the gradient the surrogate's.
    fn dreg_bound(
        &self,
        weigher: &Weigher,
        z: Tensor<2>,
        present: &[Tensor<2>],
        blocks: Blocks,
    ) -> (Tensor<1>, Weighed) {
        let Blocks { nm, k, b } = blocks;
        let n = blocks.n();
        let frozen = self.clone().no_grad();
        let lw0 = weigher
            .weigh(&frozen, z.clone().detach())
            .lw
            .detach()
            .reshape([nm, k, b]);
        let wt = (lw0.clone() - log_sum_exp_dim(lw0, 1))
            .exp()
            .reshape([nm * n, 1]); // w̃
        let zs = z.clone().detach() + (z.clone() - z.detach()) * wt.clone();
        let w = weigher.weigh(self, zs);
        let bound = blocks.over_modalities(blocks.log_mean(w.lw.clone()), present); // [1]
        let surrogate = blocks.over_modalities(
            (w.lw.clone() * wt.reshape([nm * n]))
                .reshape([nm, k, b])
                .sum_dim(1)
                .reshape([nm, b]),
            present,
        );
        (surrogate.clone().neg() + (surrogate - bound).detach(), w)
    }

    /// Each weighed modality's NLL over the draws of its own block
    /// (`nll/<m>`) and over those of every other present modality's block
    /// (`cross/<from>-><to>`).
    fn iwae_nll_terms(
        &self,
        w: &Weighed,
        post: &Posteriors,
        blocks: Blocks,
    ) -> Vec<(String, Tensor<1>)> {
        let n = blocks.n();
        let block = |t: &Tensor<1>, m: usize| t.clone().narrow(0, m * n, n);
        let block_mask = |m: usize| post.present(m).repeat_dim(0, blocks.k);
        let mut entries = Vec::new();
        for m in 0..blocks.nm {
            if let Some(l) = &w.nll[m] {
                entries.push((
                    format!("nll/{}", self.names[m]),
                    masked_mean(block(l, m), block_mask(m)),
                ));
            }
        }
        for from in 0..blocks.nm {
            for to in (0..blocks.nm).filter(|&to| to != from) {
                if let Some(l) = &w.nll[to] {
                    entries.push((
                        format!("cross/{}->{}", self.names[from], self.names[to]),
                        masked_mean(block(l, from), block_mask(from) * block_mask(to)),
                    ));
                }
            }
        }
        entries
    }
}

/// K draws from each modality's unimodal posterior, block by block.
///
/// # Shapes
/// `eps`: `[M·n, latent]` → `[M·n, latent]`
fn draws(unimodal: &[Gaussian], eps: Tensor<2>, blocks: Blocks) -> Tensor<2> {
    let n = blocks.n();
    Tensor::cat(
        unimodal
            .iter()
            .enumerate()
            .map(|(m, q)| {
                q.repeat_rows(blocks.k)
                    .rsample_with(eps.clone().narrow(0, m * n, n))
            })
            .collect(),
        0,
    )
}
