//! The stratified importance-weighted bound of the mixture of experts
//! (MMVAE's IWAE) and its doubly reparameterised surrogate (DReG).

use burn::prelude::*;

use super::align::alignment;
use super::elbo::Posteriors;
use super::plan::{Plan, Subset};
use super::{masked_mean, LossOutput, Terms};
use crate::config::{LossConfig, Objective};
use crate::io::batch::Batch;
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
        let b = batch.size();
        let nm = self.modalities();
        let k = cfg.k;
        let n = k * b;
        let dreg = cfg.objective == Objective::Dreg;
        let weights = plan.terms[0].targets.clone();
        let present: Vec<Tensor<2>> = (0..nm).map(|m| batch.present_col(m)).collect();
        let shared = self
            .encode_all(batch)
            .into_iter()
            .map(|e| e.shared)
            .collect();
        let mut post = Posteriors::new(self, shared, present.clone(), present.clone());
        let unimodal: Vec<Gaussian> = (0..nm).map(|m| post.get(Subset::single(m))).collect();
        let eps = eps.narrow(1, 0, self.latent);
        let z = Tensor::cat(
            unimodal
                .iter()
                .enumerate()
                .map(|(m, q)| {
                    q.repeat_rows(k)
                        .rsample_with(eps.clone().narrow(0, m * n, n))
                })
                .collect(),
            0,
        ); // [M·n, latent]
        let mix: Vec<Gaussian> = unimodal
            .iter()
            .map(|q| if dreg { q.detach() } else { q.clone() }.repeat_rows(nm * k))
            .collect();
        let mix_masks: Vec<Tensor<2>> = present
            .iter()
            .map(|p| p.clone().repeat_dim(0, nm * k))
            .collect();
        let targets: Vec<_> = batch.inputs.iter().map(|i| i.repeat(nm * k)).collect();
        let present_rows: Vec<Tensor<1>> = mix_masks
            .iter()
            .map(|p| p.clone().reshape([nm * n]))
            .collect();
        let weigh = |m: &Mvae, z: Tensor<2>| {
            let ratio = Gaussian::mixture_log_prob(&mix, &mix_masks, z.clone())
                - Gaussian::standard_log_prob(z.clone());
            let mut lw = ratio.clone() * beta;
            let mut nll = Vec::with_capacity(nm);
            let mut image_logits = None;
            for (j, e) in m.experts.iter().enumerate() {
                if weights[j] == 0.0 {
                    nll.push(None);
                    continue;
                }
                let (l, logits) = e.reconstruct(z.clone(), &targets[j]);
                lw = lw + l.clone() * present_rows[j].clone() * weights[j];
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
        };
        // Per item, the mean over its present modalities of `per[m]`.
        let count = Tensor::cat(present.clone(), 1).sum_dim(1).reshape([b]); // [b]
        let over_modalities = |per: Tensor<2>| {
            // per: [M, b]
            let mask = Tensor::cat(
                present.iter().map(|p| p.clone().reshape([1, b])).collect(),
                0,
            );
            (per * mask).sum_dim(0).reshape([b]) / count.clone().clamp_min(1.0)
        };
        // [M·n] → [M, k, b] → log mean over k → [M, b]
        let log_mean = |lw: Tensor<1>| {
            log_sum_exp_dim(lw.reshape([nm, k, b]), 1).reshape([nm, b]) - (k as f32).ln()
        };
        let (total, w) = if dreg {
            let frozen = self.clone().no_grad();
            let lw0 = weigh(&frozen, z.clone().detach())
                .lw
                .detach()
                .reshape([nm, k, b]);
            let wt = (lw0.clone() - log_sum_exp_dim(lw0, 1))
                .exp()
                .reshape([nm * n, 1]); // w̃
            let zs = z.clone().detach() + (z.clone() - z.detach()) * wt.clone();
            let w = weigh(self, zs);
            let bound = over_modalities(log_mean(w.lw.clone())).sum() / b as f32; // [1]
            let surrogate = over_modalities(
                (w.lw.clone() * wt.reshape([nm * n]))
                    .reshape([nm, k, b])
                    .sum_dim(1)
                    .reshape([nm, b]),
            )
            .sum()
                / b as f32;
            (surrogate.clone().neg() + (surrogate - bound).detach(), w)
        } else {
            let w = weigh(self, z);
            let bound = over_modalities(log_mean(w.lw.clone())).sum() / b as f32;
            (bound.neg(), w)
        };
        let mut total = total;
        let mut named = Vec::new();
        let full = Subset::full(nm);
        if cfg.align_weight > 0.0 {
            let q_joint = post.get(full);
            let valid = post.valid(full);
            let a = alignment(cfg, &q_joint, &unimodal, self.pair(), &valid) * valid.clone();
            total = total + a.clone().sum() * (cfg.align_weight / b as f32);
            named.push(("align".to_string(), masked_mean(a, valid)));
        }
        // The draws of modality m's block, and where they count.
        let block = |t: &Tensor<1>, m: usize| t.clone().narrow(0, m * n, n);
        let block_mask = |m: usize| post.present(m).repeat_dim(0, k);
        let image = self.index_of_kind(ModalityKind::Image);
        let text = self.index_of_kind(ModalityKind::Text);
        // The first draw of each modality stands for the batch's images.
        let first_logits = |m: usize| {
            w.image_logits
                .as_ref()
                .map(|l| l.clone().narrow(0, m * n, b))
        };
        // Only where the image is decoded, as in the ELBO.
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
        for m in 0..nm {
            if let Some(l) = &w.nll[m] {
                entries.push((
                    format!("nll/{}", self.names[m]),
                    masked_mean(block(l, m), block_mask(m)),
                ));
            }
        }
        for from in 0..nm {
            for to in (0..nm).filter(|&to| to != from) {
                if let Some(l) = &w.nll[to] {
                    entries.push((
                        format!("cross/{}->{}", self.names[from], self.names[to]),
                        masked_mean(block(l, from), block_mask(from) * block_mask(to)),
                    ));
                }
            }
        }
        entries.extend(named);
        let (reconstructed, generated) = match image {
            Some(i) => {
                let x = first_logits(i);
                let others: Vec<Tensor<2>> = (0..nm)
                    .filter(|&m| m != i)
                    .filter_map(first_logits)
                    .collect();
                (
                    x.map(|x| Tensor::cat(vec![x.clone(), x], 0)),
                    (!others.is_empty()).then(|| Tensor::cat(others, 0)),
                )
            }
            None => (None, None),
        };
        LossOutput {
            total,
            terms: Terms::new(entries),
            reconstructed,
            generated,
        }
    }
}
