//! The subset plan: which terms an objective has, for any number of
//! modalities. Each term encodes a subset of the modalities (fused by the
//! model's fusion), draws z from that posterior, reconstructs some
//! modalities from it and pays a KL. A term counts for an item only when
//! every modality of its subset is present in that item; a target counts
//! only when it is present. The loss then needs no knowledge of which
//! fusion or objective made the plan.

use crate::config::{Fusion, UnimodalTarget};

/// The most modalities a model may have (a subset is a bit mask; CelebA-19
/// has nineteen).
pub const MAX_MODALITIES: usize = 20;

/// A set of modalities, as bits over the model's modality order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subset(pub u32);

impl Subset {
    /// Every one of `m` modalities.
    pub fn full(m: usize) -> Self {
        Subset(((1u64 << m) - 1) as u32)
    }

    /// Modality `i` alone.
    pub fn single(i: usize) -> Self {
        Subset(1 << i)
    }

    /// This set with modality `i` added.
    pub fn with(self, i: usize) -> Self {
        Subset(self.0 | (1 << i))
    }

    pub fn contains(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The one member of a set of one modality (`None` for any other set).
    pub fn only(self) -> Option<usize> {
        (self.len() == 1).then(|| self.0.trailing_zeros() as usize)
    }

    /// The members, in modality order.
    pub fn members(self) -> impl Iterator<Item = usize> {
        (0..32).filter(move |&i| self.contains(i))
    }

    /// Every non-empty subset of `m` modalities: the full set first, then
    /// the single modalities in order, then the rest by size and bits (for
    /// two modalities: {0, 1}, {0}, {1}).
    pub fn all_nonempty(m: usize) -> Vec<Subset> {
        let full = Subset::full(m);
        let mut rest: Vec<Subset> = (1..(1u32 << m))
            .map(Subset)
            .filter(|s| *s != full && s.len() > 1)
            .collect();
        rest.sort_by_key(|s| (s.len(), s.0));
        let mut out = vec![full];
        out.extend((0..m).map(Subset::single).filter(|s| *s != full));
        out.extend(rest);
        out
    }
}

/// What a term's KL is measured against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TermKl {
    /// KL(q(z|subset) ‖ N(0, I)).
    Prior,
    /// KL(q(z|subset) ‖ q(z|other)): the conditional objective's
    /// image-only term, with the caption's posterior as its prior.
    Against(Subset),
    /// log q_mix(z) − log p(z) at the term's draw, q_mix the mixture of the
    /// present unimodal posteriors (MMVAE's estimate).
    Mixture,
    /// MVTCAE's total-correlation form, (1 − α)·KL(q(z|subset) ‖ N(0, I))
    /// plus (α/M)·Σ_m KL(q(z|subset) ‖ q(z|x_m)) over the M modalities,
    /// each where the item has it.
    TotalCorrelation { alpha: f32 },
}

/// One term of the objective.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The modalities encoded (and fused) for this term.
    pub given: Subset,
    /// Per modality, the weight of its reconstruction from this term's
    /// draw (0 = not reconstructed); the modality's likelihood weight and,
    /// for modalities outside `given`, its cross weight, are included.
    pub targets: Vec<f32>,
    /// Per modality, whether its decoder reads this term's draw: where it
    /// is reconstructed, and wherever its weight and cross weight are not 0
    /// (for the metrics). A modality with cross weight 0 is decoded only
    /// from the subsets that weigh it; one with weight 0 is an input only,
    /// never decoded.
    pub decoded: Vec<bool>,
    pub kl: TermKl,
    /// Whether the term enters the objective; a report-only term is
    /// computed for the metrics alone (MoE's joint term).
    pub counts: bool,
    /// Whether the term also counts for an item that has only some members
    /// of `given`, fused from those it has (MVTCAE's joint term); otherwise
    /// only an item that has all of them.
    pub partial: bool,
}

/// How the valid terms of one item are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Summed (MVAE's sum of ELBOs).
    Sum,
    /// Averaged over the item's valid terms (the mixtures' stratified ELBO).
    Mean,
}

/// The modalities' likelihood settings a plan needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetWeights {
    /// Likelihood weight of each modality.
    pub weight: Vec<f32>,
    /// Scale of each modality's reconstruction from a subset without it.
    pub cross: Vec<f32>,
}

/// Everything that decides the terms.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSpec {
    pub fusion: Fusion,
    pub target: UnimodalTarget,
    pub weights: TargetWeights,
    /// Extra random subsets per step (PoE and the learned fusions: beyond
    /// the joint and unimodal terms, MVAE's sub-sampled objective), or the
    /// number of subsets per step (MoPoE, when fewer than all); 0 = none /
    /// all.
    pub sampled_subsets: usize,
    /// MVTCAE's α (used by `mvtcae` only).
    pub mvtcae_alpha: f32,
    /// For the conditional objective: (the image modality, the caption
    /// modality).
    pub conditional_pair: Option<(usize, usize)>,
}

/// The terms of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub terms: Vec<Term>,
    pub combine: Combine,
    /// Whether the first image modality is decoded from every term, where
    /// no term weighs it too, and its logits returned (for the critics and
    /// the caption cycle, and the metrics of validation). A training step
    /// without critics turns it off.
    pub image_logits: bool,
}

impl Plan {
    /// The number of terms (each takes one block of `batch` noise rows).
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

impl PlanSpec {
    fn modalities(&self) -> usize {
        self.weights.weight.len()
    }

    /// Targets: every modality, those outside `given` scaled by their cross
    /// weight (`cross` = true), or only the members of `given`.
    fn targets(&self, given: Subset, all: bool, cross: bool) -> Vec<f32> {
        (0..self.modalities())
            .map(|m| {
                let w = self.weights.weight[m];
                match (given.contains(m), all) {
                    (true, _) => w,
                    (false, true) if cross => w * self.weights.cross[m],
                    (false, true) => w,
                    (false, false) => 0.0,
                }
            })
            .collect()
    }

    fn term(&self, given: Subset, all: bool, cross: bool) -> Term {
        let targets = self.targets(given, all, cross);
        let decoded = (0..self.modalities())
            .map(|m| {
                let (w, c) = (self.weights.weight[m], self.weights.cross[m]);
                targets[m] != 0.0 || (w != 0.0 && c != 0.0)
            })
            .collect();
        Term {
            targets,
            decoded,
            given,
            kl: TermKl::Prior,
            counts: true,
            partial: false,
        }
    }

    /// The plan of one step; `stream` seeds the sampled subsets (the same
    /// stream gives the same plan, so a resumed run repeats itself).
    pub fn plan(&self, stream: u64) -> Plan {
        let m = self.modalities();
        let full = Subset::full(m);
        match self.fusion {
            Fusion::Poe | Fusion::Concat | Fusion::Attention => Plan {
                terms: self.product_terms(stream),
                combine: Combine::Sum,
                image_logits: true,
            },
            Fusion::MoPoe => {
                let all = Subset::all_nonempty(m);
                let chosen = if self.sampled_subsets == 0 || self.sampled_subsets >= all.len() {
                    all
                } else {
                    sample(&all, self.sampled_subsets, stream)
                };
                Plan {
                    terms: chosen
                        .into_iter()
                        .map(|s| self.term(s, true, false))
                        .collect(),
                    combine: Combine::Mean,
                    image_logits: true,
                }
            }
            Fusion::Mvtcae => Plan {
                terms: vec![self.total_correlation_term()],
                combine: Combine::Sum,
                image_logits: true,
            },
            Fusion::Moe => {
                let mut terms = vec![Term {
                    counts: false,
                    ..self.term(full, true, false)
                }];
                terms.extend((0..m).map(Subset::single).map(|s| Term {
                    kl: TermKl::Mixture,
                    ..self.term(s, true, false)
                }));
                Plan {
                    terms,
                    combine: Combine::Mean,
                    image_logits: true,
                }
            }
        }
    }

    /// MVTCAE's one term: the joint posterior of the modalities an item has
    /// reconstructs each of them with its weight times (M − α)/M and pays
    /// the total-correlation KL.
    /// No single-modality term is drawn: the modalities' posteriors learn
    /// only through that KL.
    fn total_correlation_term(&self) -> Term {
        let m = self.modalities() as f32;
        let alpha = self.mvtcae_alpha;
        let joint = self.term(Subset::full(self.modalities()), true, false);
        Term {
            targets: joint.targets.iter().map(|w| w * (m - alpha) / m).collect(),
            kl: TermKl::TotalCorrelation { alpha },
            partial: true,
            ..joint
        }
    }

    /// The terms of a product of experts (and of the fusions planned like
    /// it): the joint term, then by the unimodal target each modality
    /// alone (and sampled subsets between), or the conditional pair.
    fn product_terms(&self, stream: u64) -> Vec<Term> {
        let m = self.modalities();
        let full = Subset::full(m);
        let singles = || (0..m).map(Subset::single).filter(move |s| *s != full);
        match self.target {
            // The single-modality terms are computed for the metrics (and
            // the caption cycle) but do not count.
            UnimodalTarget::None => {
                let mut t = vec![self.term(full, true, false)];
                t.extend(singles().map(|s| Term {
                    counts: false,
                    ..self.term(s, true, true)
                }));
                t
            }
            UnimodalTarget::All | UnimodalTarget::Observed => {
                let all = self.target == UnimodalTarget::All;
                let mut t = vec![self.term(full, true, false)];
                t.extend(singles().map(|s| self.term(s, all, true)));
                let middle: Vec<Subset> = Subset::all_nonempty(m)
                    .into_iter()
                    .filter(|s| s.len() > 1 && *s != full)
                    .collect();
                t.extend(
                    sample(&middle, self.sampled_subsets, stream)
                        .into_iter()
                        .map(|s| self.term(s, all, true)),
                );
                t
            }
            UnimodalTarget::Conditional => {
                let (image, text) = self
                    .conditional_pair
                    .expect("the conditional objective names its image and caption");
                let (x, y) = (Subset::single(image), Subset::single(text));
                vec![
                    self.term(full, true, false),
                    Term {
                        kl: TermKl::Against(y),
                        ..self.term(x, true, false)
                    },
                    self.term(y, false, false),
                ]
            }
        }
    }
}

/// `n` distinct members of `from`, drawn by a seeded stream, in the order
/// of `from` (all of them when `n` covers it).
fn sample(from: &[Subset], n: usize, stream: u64) -> Vec<Subset> {
    if n >= from.len() {
        return from.to_vec();
    }
    let mut idx: Vec<usize> = (0..from.len()).collect();
    let mut s = stream ^ 0x5EED_5B5E_7000_0001;
    // Partial Fisher–Yates: the first n positions are the draw.
    for i in 0..n {
        s = mmvae_data::captions::splitmix64(s);
        let j = i + (s % (idx.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut chosen: Vec<usize> = idx[..n].to_vec();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| from[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fusion: Fusion, target: UnimodalTarget, m: usize) -> PlanSpec {
        PlanSpec {
            fusion,
            target,
            weights: TargetWeights {
                weight: (0..m).map(|i| 1.0 + i as f32).collect(),
                cross: (0..m).map(|i| if i == 0 { 0.5 } else { 1.0 }).collect(),
            },
            sampled_subsets: 0,
            mvtcae_alpha: 0.1,
            conditional_pair: None,
        }
    }

    #[test]
    fn subsets_enumerate_full_then_singles_then_the_rest() {
        let s = Subset::all_nonempty(3);
        assert_eq!(s.len(), 7);
        assert_eq!(s[0], Subset(0b111));
        assert_eq!(&s[1..4], &[Subset(1), Subset(2), Subset(4)]);
        assert!(s[4..].iter().all(|x| x.len() == 2));
        assert_eq!(
            Subset::all_nonempty(2),
            vec![Subset(3), Subset(1), Subset(2)]
        );
        assert_eq!(Subset::all_nonempty(1), vec![Subset(1)]);
        assert_eq!(Subset(0b101).members().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(Subset::single(4).only(), Some(4));
        assert_eq!(Subset(0b101).only(), None);
        assert_eq!(Subset(0).only(), None);
    }

    #[test]
    fn two_modality_poe_is_joint_then_each_modality_with_cross_weights() {
        let p = spec(Fusion::Poe, UnimodalTarget::All, 2).plan(0);
        assert_eq!(p.combine, Combine::Sum);
        let rows: Vec<(u32, Vec<f32>)> = p
            .terms
            .iter()
            .map(|t| (t.given.0, t.targets.clone()))
            .collect();
        // The image (0) read from the caption alone is scaled by its cross weight.
        assert_eq!(
            rows,
            vec![
                (3, vec![1.0, 2.0]),
                (1, vec![1.0, 2.0]),
                (2, vec![0.5, 2.0])
            ]
        );
        let obs = spec(Fusion::Poe, UnimodalTarget::Observed, 2).plan(0);
        assert_eq!(obs.terms[1].targets, vec![1.0, 0.0]);
        assert_eq!(obs.terms[2].targets, vec![0.0, 2.0]);
        let none = spec(Fusion::Poe, UnimodalTarget::None, 2).plan(0);
        assert_eq!(none.len(), 3);
        assert!(none.terms[0].counts && !none.terms[1].counts && !none.terms[2].counts);
    }

    #[test]
    fn a_modality_with_cross_weight_zero_is_decoded_only_where_weighed() {
        let mut s = spec(Fusion::Poe, UnimodalTarget::All, 3);
        s.weights.cross[2] = 0.0;
        s.sampled_subsets = 1;
        let p = s.plan(3);
        for t in &p.terms {
            assert_eq!(t.decoded[2], t.given.contains(2), "{t:?}");
            assert!(t.decoded[0] && t.decoded[1], "{t:?}");
            for (d, w) in t.decoded.iter().zip(&t.targets) {
                assert!(*d || *w == 0.0, "a weighed target is decoded: {t:?}");
            }
        }
        // Under the original MVAE objective the unweighed cross targets of
        // the other modalities are still decoded, for the metrics.
        let mut o = spec(Fusion::Poe, UnimodalTarget::Observed, 3);
        o.weights.cross[2] = 0.0;
        let p = o.plan(0);
        assert_eq!(p.terms[1].targets, vec![1.0, 0.0, 0.0]);
        assert_eq!(p.terms[1].decoded, vec![true, true, false]);
        // Weight 0: an input only, decoded from no term.
        let mut i = spec(Fusion::Poe, UnimodalTarget::All, 3);
        i.weights.weight[1] = 0.0;
        assert!(i
            .plan(0)
            .terms
            .iter()
            .all(|t| !t.decoded[1] && t.targets[1] == 0.0));
    }

    #[test]
    fn mixtures_average_and_moe_keeps_a_report_only_joint_term() {
        let mopoe = spec(Fusion::MoPoe, UnimodalTarget::All, 3).plan(0);
        assert_eq!(mopoe.len(), 7);
        assert_eq!(mopoe.combine, Combine::Mean);
        assert!(mopoe.terms.iter().all(|t| t.targets == vec![1.0, 2.0, 3.0]));
        let moe = spec(Fusion::Moe, UnimodalTarget::All, 3).plan(0);
        assert_eq!(moe.len(), 4);
        assert!(!moe.terms[0].counts);
        assert!(moe.terms[1..]
            .iter()
            .all(|t| t.counts && t.kl == TermKl::Mixture));
    }

    #[test]
    fn mvtcae_is_one_joint_term_with_scaled_targets_and_the_total_correlation() {
        let mut s = spec(Fusion::Mvtcae, UnimodalTarget::All, 4);
        s.mvtcae_alpha = 0.4;
        let p = s.plan(0);
        assert_eq!(p.len(), 1);
        assert_eq!(p.combine, Combine::Sum);
        let t = &p.terms[0];
        assert_eq!(t.given, Subset::full(4));
        assert_eq!(t.kl, TermKl::TotalCorrelation { alpha: 0.4 });
        // Each weight times (4 − 0.4)/4 = 0.9.
        for (got, want) in t.targets.iter().zip([0.9, 1.8, 2.7, 3.6]) {
            assert!((got - want).abs() < 1e-6, "{:?}", t.targets);
        }
        assert!(t.counts && t.partial && t.decoded.iter().all(|&d| d));
    }

    #[test]
    fn sampled_subsets_are_seeded_distinct_and_exclude_joint_and_singles() {
        let mut s = spec(Fusion::Poe, UnimodalTarget::Observed, 5);
        s.sampled_subsets = 3;
        let a = s.plan(7);
        assert_eq!(a, s.plan(7));
        // joint + 5 singles + 3 sampled
        assert_eq!(a.len(), 9);
        let extra: Vec<Subset> = a.terms[6..].iter().map(|t| t.given).collect();
        assert!(
            extra.iter().all(|x| x.len() >= 2 && x.len() <= 4),
            "{extra:?}"
        );
        let mut d = extra.clone();
        d.dedup();
        assert_eq!(d.len(), 3);
        // Another stream gives another draw (for some stream).
        assert!((0..20).any(|k| s.plan(k) != a));
        // MoPoE draws its subsets from all of them.
        let mut m = spec(Fusion::MoPoe, UnimodalTarget::All, 5);
        m.sampled_subsets = 4;
        assert_eq!(m.plan(1).len(), 4);
    }

    #[test]
    fn the_conditional_objective_measures_the_image_term_against_the_caption() {
        let mut s = spec(Fusion::Poe, UnimodalTarget::Conditional, 2);
        s.conditional_pair = Some((0, 1));
        let p = s.plan(0);
        assert_eq!(p.terms[1].kl, TermKl::Against(Subset(2)));
        assert_eq!(p.terms[1].targets, vec![1.0, 2.0]);
        assert_eq!(p.terms[2].targets, vec![0.0, 2.0]);
    }
}
