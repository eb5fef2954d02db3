//! The subset ELBO: every term of a [`Plan`] encodes its subset, draws z,
//! reconstructs its targets and pays its KL, item by item only where the
//! item has the modalities the term needs.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::Distribution;

use super::align::alignment;
use super::plan::{Combine, Plan, PlanSpec, Subset, TargetWeights, Term, TermKl};
use super::{masked_mean, LossOutput, Terms};
use crate::config::{Fusion, LossConfig, Objective};
use crate::io::batch::{Batch, Input};
use crate::modality::expert::Encoded;
use crate::modality::ModalityKind;
use crate::mvae::Mvae;
use crate::nn::gaussian::Gaussian;

/// Each modality's NLL for the terms its decoder read.
pub(crate) struct DecodedNll {
    /// Per modality, per term: its row in `nll` (None: not decoded).
    rows: Vec<Vec<Option<usize>>>,
    /// Per modality `[terms read, batch]`; None where none was read.
    nll: Vec<Option<Tensor<2>>>,
}

impl DecodedNll {
    /// Modality `m`'s NLL from term `t`'s draw, `[batch]`, if decoded.
    fn get(&self, m: usize, t: usize) -> Option<Tensor<1>> {
        let r = self.rows[m][t]?;
        let n = self.nll[m].as_ref()?;
        let b = n.dims()[1];
        Some(n.clone().narrow(0, r, 1).reshape([b]))
    }
}

/// The first image modality's logits, decoded from every term's draw.
struct ImageLogits {
    modality: usize,
    /// `[terms · batch, pixels]`, in plan order.
    logits: Tensor<2>,
}

impl ImageLogits {
    /// Term `t`'s block, `[batch, pixels]`.
    fn term(&self, t: usize, b: usize) -> Tensor<2> {
        self.logits.clone().narrow(0, t * b, b)
    }

    /// The blocks of the terms that encode the image (`given`) or do not,
    /// stacked; None when there are none.
    fn rows(&self, plan: &Plan, b: usize, given: bool) -> Option<Tensor<2>> {
        let rows: Vec<Tensor<2>> = plan
            .terms
            .iter()
            .enumerate()
            .filter(|(_, t)| t.given.contains(self.modality) == given)
            .map(|(t, _)| self.term(t, b))
            .collect();
        (!rows.is_empty()).then(|| Tensor::cat(rows, 0))
    }
}

/// The posteriors of the subsets one loss needs, each computed once.
pub(crate) struct Posteriors<'a> {
    model: &'a Mvae,
    experts: Vec<Gaussian>,
    /// Per modality `[batch, 1]`: where it is present.
    present: Vec<Tensor<2>>,
    /// The masks of the joint term (the present ones, after any modality
    /// dropout).
    joint_masks: Vec<Tensor<2>>,
    cache: Vec<(Subset, Gaussian)>,
}

impl<'a> Posteriors<'a> {
    pub(crate) fn new(
        model: &'a Mvae,
        experts: Vec<Gaussian>,
        present: Vec<Tensor<2>>,
        joint_masks: Vec<Tensor<2>>,
    ) -> Self {
        Posteriors {
            model,
            experts,
            present,
            joint_masks,
            cache: Vec::new(),
        }
    }

    /// q(z | the members of `s` each item has), with the prior expert.
    pub(crate) fn get(&mut self, s: Subset) -> Gaussian {
        if let Some((_, q)) = self.cache.iter().find(|(c, _)| *c == s) {
            return q.clone();
        }
        let masks = if s == Subset::full(self.experts.len()) {
            &self.joint_masks
        } else {
            &self.present
        };
        let q = self.model.fuse(&self.experts, s, masks);
        self.cache.push((s, q.clone()));
        q
    }

    /// 1 where the item has every member of `s`: `[batch]`.
    pub(crate) fn valid(&self, s: Subset) -> Tensor<1> {
        let b = self.present[0].dims()[0];
        let mut v = Tensor::<1>::ones([b], &self.present[0].device());
        for m in s.members() {
            v = v * self.present[m].clone().reshape([b]);
        }
        v
    }

    /// 1 where `term` counts for the item: it has every member of the
    /// term's subset, or with a partial term any of them. `[batch]`
    pub(crate) fn valid_for(&self, term: &Term) -> Tensor<1> {
        if !term.partial {
            return self.valid(term.given);
        }
        let b = self.present[0].dims()[0];
        let mut none = Tensor::<1>::ones([b], &self.present[0].device());
        for m in term.given.members() {
            none = none * self.present[m].clone().reshape([b]).neg().add_scalar(1.0);
        }
        none.neg().add_scalar(1.0)
    }

    pub(crate) fn present(&self, m: usize) -> Tensor<1> {
        let b = self.present[m].dims()[0];
        self.present[m].clone().reshape([b])
    }
}

impl Mvae {
    /// The terms of this model's objective for one step under `cfg`, with
    /// the modalities' likelihood `weights`; `stream` seeds any sampled
    /// subsets.
    pub fn plan(&self, cfg: &LossConfig, weights: &TargetWeights, stream: u64) -> Plan {
        let image = self.index_of_kind(ModalityKind::Image);
        let text = self.index_of_kind(ModalityKind::Text);
        PlanSpec {
            fusion: self.fusion,
            target: cfg.unimodal_target,
            weights: weights.clone(),
            sampled_subsets: cfg.sampled_subsets,
            mvtcae_alpha: cfg.mvtcae_alpha(),
            conditional_pair: image.zip(text),
        }
        .plan(stream)
    }

    /// Whether the joint term draws a modality-dropout decision per item.
    fn uses_dropout(&self, cfg: &LossConfig) -> bool {
        self.fusion.is_learned() && cfg.modality_dropout > 0.0
    }

    /// Rows of reparameterisation noise one loss draws for a batch of `b`:
    /// one block of `b` per plan term (and one more for the modality
    /// dropout decisions), or K per modality per item for the
    /// importance-weighted MoE bounds.
    pub fn noise_rows(&self, plan: &Plan, cfg: &LossConfig, b: usize) -> usize {
        match (self.fusion, cfg.objective) {
            (Fusion::Moe, Objective::Iwae | Objective::Dreg) => self.modalities() * cfg.k * b,
            _ => (plan.len() + usize::from(self.uses_dropout(cfg))) * b,
        }
    }

    /// The negative bound of one batch, with fresh noise.
    pub fn loss(&self, batch: &Batch, cfg: &LossConfig, plan: &Plan, beta: f32) -> LossOutput {
        let b = batch.size();
        let eps = Tensor::random(
            [self.noise_rows(plan, cfg, b), self.noise_dim()],
            Distribution::Normal(0.0, 1.0),
            &batch.present.device(),
        );
        self.loss_with_noise(batch, cfg, plan, beta, eps)
    }

    /// Per modality, where the joint term sees it: present, and with
    /// modality dropout not dropped. The dropout block's first column is
    /// turned uniform (u); modality j < M − 1 is dropped where u falls in
    /// [j·p/M, (j + 1)·p/M), the last one where u > 1 − p/M, so one
    /// modality at most is dropped, each with probability p/M.
    fn joint_masks(
        &self,
        cfg: &LossConfig,
        present: &[Tensor<2>],
        eps: &Tensor<2>,
        row: usize,
    ) -> Vec<Tensor<2>> {
        if !self.uses_dropout(cfg) {
            return present.to_vec();
        }
        let b = present[0].dims()[0];
        let u = (eps.clone().narrow(0, row, b).narrow(1, 0, 1) / std::f32::consts::SQRT_2)
            .erf()
            .add_scalar(1.0)
            .mul_scalar(0.5); // [b, 1]
        let n = present.len();
        let share = cfg.modality_dropout / n as f32;
        present
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let keep = if j + 1 == n {
                    u.clone().lower_equal_elem(1.0 - share).float()
                } else {
                    let lo = share * j as f32;
                    let hi = share * (j + 1) as f32;
                    let dropped =
                        u.clone().greater_equal_elem(lo).float() * u.clone().lower_elem(hi).float();
                    dropped.neg().add_scalar(1.0)
                };
                p.clone() * keep
            })
            .collect()
    }

    /// [`Mvae::loss`] with the reparameterisation noise given:
    /// `eps`: `[noise_rows, noise_dim]`, one block of batch rows per term
    /// in plan order (then the modality-dropout block); columns are the
    /// shared latent, then each image modality's private latent.
    pub fn loss_with_noise(
        &self,
        batch: &Batch,
        cfg: &LossConfig,
        plan: &Plan,
        beta: f32,
        eps: Tensor<2>,
    ) -> LossOutput {
        if self.fusion == Fusion::Moe && cfg.objective != Objective::Elbo {
            return self.moe_iwae_loss(batch, cfg, plan, beta, eps);
        }
        let b = batch.size();
        let nm = self.modalities();
        let nt = plan.len();
        let encoded = self.encode_all(batch);
        let present: Vec<Tensor<2>> = (0..nm).map(|m| batch.present_col(m)).collect();
        let joint_masks = self.joint_masks(cfg, &present, &eps, nt * b);
        let shared = encoded.iter().map(|e| e.shared.clone()).collect();
        let mut post = Posteriors::new(self, shared, present, joint_masks);

        let (z_blocks, mut kls) = self.draw_terms(plan, &mut post, &eps, b);
        let private = self.draw_private(plan, &encoded, &eps, b, &mut kls);
        let logits = plan.image_logits || cfg.cycle_weight > 0.0;
        let (nll, image_logits) = self.decode_terms(batch, plan, &z_blocks, &private, logits);

        let per_item = Self::sum_terms(plan, &post, &kls, &nll, beta);
        let mut total = per_item.sum() / b as f32;
        let mut named = Vec::new();

        if cfg.align_weight > 0.0 {
            let full = Subset::full(nm);
            let q_joint = post.get(full);
            let unimodal: Vec<Gaussian> = (0..nm).map(|m| post.get(Subset::single(m))).collect();
            let valid = post.valid(full);
            let a = alignment(cfg, &q_joint, &unimodal, self.pair(), &valid) * valid.clone();
            total = total + a.clone().sum() * (cfg.align_weight / b as f32);
            named.push(("align".to_string(), masked_mean(a, valid)));
        }
        if let (true, Some(image)) = (cfg.cycle_weight > 0.0, &image_logits) {
            let text = self
                .index_of_kind(ModalityKind::Text)
                .expect("validated: the caption cycle needs a text modality");
            let t_y = plan
                .terms
                .iter()
                .position(|t| t.given == Subset::single(text))
                .expect("validated: the caption cycle needs the caption-only term");
            let generated = image.term(t_y, b);
            let c = self.caption_cycle(generated, &batch.inputs[text], post.present(text));
            total = total + c * cfg.cycle_weight;
        }
        let terms = self.report(plan, &mut post, &nll, &kls, total.clone(), named);
        let (reconstructed, generated) = match image_logits {
            Some(image) => (image.rows(plan, b, true), image.rows(plan, b, false)),
            None => (None, None),
        };
        LossOutput {
            total,
            terms,
            reconstructed,
            generated,
        }
    }

    /// Draws z for every term of `plan` from its posterior (noise block t
    /// of `eps`) and measures the term's KL: `[batch, latent]` and `[batch]`
    /// per term.
    fn draw_terms(
        &self,
        plan: &Plan,
        post: &mut Posteriors,
        eps: &Tensor<2>,
        b: usize,
    ) -> (Vec<Tensor<2>>, Vec<Tensor<1>>) {
        let nm = self.modalities();
        let mut z_blocks = Vec::with_capacity(plan.len());
        let mut kls = Vec::with_capacity(plan.len());
        for (t, term) in plan.terms.iter().enumerate() {
            let q = post.get(term.given);
            let z = q.rsample_with(eps.clone().narrow(0, t * b, b).narrow(1, 0, self.latent));
            let kl = match term.kl {
                TermKl::Prior => q.kl_standard(),
                TermKl::Against(other) => q.kl(&post.get(other)),
                TermKl::Mixture => {
                    let unimodal: Vec<Gaussian> =
                        (0..nm).map(|m| post.get(Subset::single(m))).collect();
                    Gaussian::mixture_log_prob(&unimodal, &post.present, z.clone())
                        - Gaussian::standard_log_prob(z.clone())
                }
                TermKl::TotalCorrelation { alpha } => {
                    let mut tc = q.kl_standard() * (1.0 - alpha);
                    for m in 0..nm {
                        let to_m = q.kl(&post.get(Subset::single(m))) * post.present(m);
                        tc = tc + to_m * (alpha / nm as f32);
                    }
                    tc
                }
            };
            z_blocks.push(z);
            kls.push(kl);
        }
        (z_blocks, kls)
    }

    /// Private latents, per image modality that has one, `[terms · batch,
    /// width]`: drawn from q(w|x) where the term encodes the image (its KL
    /// added to the term's), from the prior N(0, I) where it does not.
    fn draw_private(
        &self,
        plan: &Plan,
        encoded: &[Encoded],
        eps: &Tensor<2>,
        b: usize,
        kls: &mut [Tensor<1>],
    ) -> Vec<Option<Tensor<2>>> {
        let mut private: Vec<Option<Tensor<2>>> = vec![None; self.modalities()];
        for (m, e) in encoded.iter().enumerate() {
            let Some(qw) = &e.private else { continue };
            let off = self.private_offset(m);
            let width = self.experts[m].private();
            let mut rows = Vec::with_capacity(plan.len());
            for (t, term) in plan.terms.iter().enumerate() {
                let eps_w = eps.clone().narrow(0, t * b, b).narrow(1, off, width);
                if term.given.contains(m) {
                    rows.push(qw.rsample_with(eps_w));
                    kls[t] = kls[t].clone() + qw.kl_standard();
                } else {
                    rows.push(eps_w);
                }
            }
            private[m] = Some(Tensor::cat(rows, 0));
        }
        private
    }

    /// Each item's objective, `[batch]`: its counted terms where it has
    /// every member of the term's subset (β·KL plus the weighed NLL of the
    /// targets it has), summed or averaged as the plan combines them.
    fn sum_terms(
        plan: &Plan,
        post: &Posteriors,
        kls: &[Tensor<1>],
        nll: &DecodedNll,
        beta: f32,
    ) -> Tensor<1> {
        let mut sum: Option<Tensor<1>> = None;
        let mut count: Option<Tensor<1>> = None;
        for (t, term) in plan.terms.iter().enumerate().filter(|(_, t)| t.counts) {
            let valid = post.valid_for(term);
            let mut per = kls[t].clone() * beta;
            for (m, &w) in term.targets.iter().enumerate() {
                if w != 0.0 {
                    let n = nll.get(m, t).expect("a weighed target is decoded");
                    per = per + n * post.present(m) * w;
                }
            }
            let per = per * valid.clone();
            sum = Some(sum.map_or(per.clone(), |s| s + per));
            count = Some(count.map_or(valid.clone(), |c| c + valid));
        }
        let sum = sum.expect("a plan counts at least one term");
        match plan.combine {
            Combine::Sum => sum,
            Combine::Mean => sum / count.expect("counted").clamp_min(1.0),
        }
    }

    /// Each decoder reads, as one batch, the draws of the terms the plan
    /// has it decode; with `image_logits_wanted` (see
    /// [`Plan::image_logits`]), the first image modality every term's.
    fn decode_terms(
        &self,
        batch: &Batch,
        plan: &Plan,
        z_blocks: &[Tensor<2>],
        private: &[Option<Tensor<2>>],
        image_logits_wanted: bool,
    ) -> (DecodedNll, Option<ImageLogits>) {
        let b = batch.size();
        let first_image = self
            .index_of_kind(ModalityKind::Image)
            .filter(|_| image_logits_wanted);
        let mut decoded = DecodedNll {
            rows: Vec::with_capacity(self.modalities()),
            nll: Vec::with_capacity(self.modalities()),
        };
        let mut image_logits = None;
        for (m, expert) in self.experts.iter().enumerate() {
            let read: Vec<usize> = (0..plan.len())
                .filter(|&t| first_image == Some(m) || plan.terms[t].decoded[m])
                .collect();
            let mut rows = vec![None; plan.len()];
            for (r, &t) in read.iter().enumerate() {
                rows[t] = Some(r);
            }
            decoded.rows.push(rows);
            if read.is_empty() {
                decoded.nll.push(None);
                continue;
            }
            let z = Tensor::cat(read.iter().map(|&t| z_blocks[t].clone()).collect(), 0);
            let z_in = match &private[m] {
                Some(w) => {
                    let w = read
                        .iter()
                        .map(|&t| w.clone().narrow(0, t * b, b))
                        .collect();
                    Tensor::cat(vec![z, Tensor::cat(w, 0)], 1)
                }
                None => z,
            };
            let (n, logits) = expert.reconstruct(z_in, &batch.inputs[m].repeat(read.len()));
            if first_image == Some(m) {
                image_logits = logits.map(|logits| ImageLogits {
                    modality: m,
                    logits,
                });
            }
            decoded.nll.push(Some(n.reshape([read.len(), b])));
        }
        (decoded, image_logits)
    }

    /// The modalities the pairwise alignment terms compare: the image and
    /// the caption when the model has both, else the first two.
    pub fn pair(&self) -> (usize, usize) {
        match (
            self.index_of_kind(ModalityKind::Image),
            self.index_of_kind(ModalityKind::Text),
        ) {
            (Some(i), Some(t)) => (i, t),
            _ => (0, 1.min(self.modalities() - 1)),
        }
    }

    /// The named terms: the joint term's KL and reconstructions, and each
    /// modality read from each single one.
    fn report(
        &self,
        plan: &Plan,
        post: &mut Posteriors,
        nll: &DecodedNll,
        kls: &[Tensor<1>],
        total: Tensor<1>,
        extra: Vec<(String, Tensor<1>)>,
    ) -> Terms {
        let nm = self.modalities();
        let mut out = vec![("loss".to_string(), total)];
        let full = Subset::full(nm);
        if let Some(j) = plan.terms.iter().position(|t| t.given == full) {
            let valid = post.valid_for(&plan.terms[j]);
            out.push(("kl".into(), masked_mean(kls[j].clone(), valid.clone())));
            for (m, name) in self.names.iter().enumerate() {
                if let Some(n) = nll.get(m, j) {
                    out.push((
                        format!("nll/{name}"),
                        masked_mean(n, valid.clone() * post.present(m)),
                    ));
                }
            }
        }
        for (t, term) in plan.terms.iter().enumerate() {
            if term.given.len() != 1 || nm < 2 {
                continue;
            }
            let from = term.given.members().next().expect("one member");
            for to in (0..nm).filter(|&to| to != from) {
                if let Some(n) = nll.get(to, t) {
                    out.push((
                        format!("cross/{}->{}", self.names[from], self.names[to]),
                        masked_mean(n, post.present(from) * post.present(to)),
                    ));
                }
            }
        }
        out.extend(extra);
        Terms::new(out)
    }

    /// The caption cycle, text → image → q(z|image) → the same caption: the
    /// batch mean of the caption's NLL from the posterior mean of the image
    /// generated from it (unweighted), over the items that have a caption.
    ///
    /// # Shapes
    /// `generated_logits`: `[batch, pixels]`, decoded from q(z|text) → `[1]`
    pub(crate) fn caption_cycle(
        &self,
        generated_logits: Tensor<2>,
        caption: &Input,
        present: Tensor<1>,
    ) -> Tensor<1> {
        let [b, _] = generated_logits.dims();
        let z = self.encode_image(sigmoid(generated_logits)).mu;
        let text = self
            .experts
            .iter()
            .find(|e| e.kind() == ModalityKind::Text)
            .expect("a text modality");
        let (nll, _) = text.reconstruct(z, caption);
        (nll * present).sum() / b as f32
    }
}
