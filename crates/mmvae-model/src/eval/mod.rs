//! Measuring a trained model on the test split: coherence (scored by the
//! in-repo classifier), the conditional coherence matrix, BLEU,
//! perplexity, reconstruction quality, FID, probes, retrieval and
//! log-likelihood.

pub mod classifier;
pub mod consistency;
pub mod fid;
pub mod inception;
pub mod likelihood;
pub mod matrix;
pub mod metrics;
pub mod probe;
pub mod retrieval;

use burn::prelude::*;
use burn::tensor::Distribution;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::lm::BigramLm;
use mmvae_data::{DatasetKind, ImageLabelSet};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::error::{ModelError, Result};
use crate::eval::classifier::{Classifier, ClassifierInfo};
use crate::eval::fid::{frechet_distance, FeatureStats};
use crate::eval::likelihood::{marginal_log_likelihood, LogLikelihood};
use crate::eval::matrix::{coherence_matrix, CoherenceMatrix};
use crate::eval::retrieval::{retrieval, RetrievalReport};
use crate::infer::{Draw, Loaded};
use crate::io::batch::{CaptionSource, HostBatch};
use crate::io::data::TEST_STREAM;
use crate::modality::ModalityKind;
use crate::train::evaluate_loss;
use inception::InceptionV3;

/// A group of metrics `evaluate` can compute (`mmvae eval --metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Text → image, image → text, joint and reconstruction coherence.
    Coherence,
    /// Negative ELBO terms on the test split.
    Loss,
    /// BLEU-1..4 of generated captions.
    Bleu,
    /// Perplexity of generated and real captions under a reference LM.
    Perplexity,
    /// PSNR and SSIM of image reconstructions.
    Reconstruction,
    /// Fréchet distances in the evaluation classifier's feature space.
    Fid,
    /// Linear probes of the unimodal posterior means.
    Probe,
    /// Cross-modal retrieval (MedR, Recall@K).
    Retrieval,
    /// Importance-sampled marginal log-likelihoods (slow; not a default).
    Loglik,
}

impl Metric {
    /// The groups scored with class labels (an evaluation classifier or
    /// label probes): not available for a dataset without labels.
    pub const NEED_LABELS: [Metric; 3] = [Metric::Coherence, Metric::Fid, Metric::Probe];

    pub const ALL: [Metric; 9] = [
        Metric::Coherence,
        Metric::Loss,
        Metric::Bleu,
        Metric::Perplexity,
        Metric::Reconstruction,
        Metric::Fid,
        Metric::Probe,
        Metric::Retrieval,
        Metric::Loglik,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Coherence => "coherence",
            Metric::Loss => "loss",
            Metric::Bleu => "bleu",
            Metric::Perplexity => "perplexity",
            Metric::Reconstruction => "reconstruction",
            Metric::Fid => "fid",
            Metric::Probe => "probe",
            Metric::Retrieval => "retrieval",
            Metric::Loglik => "loglik",
        }
    }

    pub fn parse(s: &str) -> Result<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "unknown metric '{s}' (expected one of: {}, or all)",
                    Metric::ALL.map(Metric::name).join(", ")
                ))
            })
    }

    /// Parse a comma-separated list; `all` selects every metric.
    pub fn parse_list(s: &str) -> Result<BTreeSet<Metric>> {
        let mut set = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                set.extend(Metric::ALL);
            } else {
                set.insert(Metric::parse(part)?);
            }
        }
        if set.is_empty() {
            return Err(ModelError::Invalid("--metrics selects nothing".into()));
        }
        Ok(set)
    }

    /// Everything but the slow log-likelihoods.
    pub fn defaults() -> BTreeSet<Metric> {
        Metric::ALL
            .into_iter()
            .filter(|m| *m != Metric::Loglik)
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Which metrics to compute.
    pub metrics: BTreeSet<Metric>,
    /// Score only the first N test items.
    pub limit: Option<usize>,
    pub seed: u64,
    pub batch_size: usize,
    /// Prior samples for joint coherence.
    pub joint_samples: usize,
    /// How the latent is drawn from q(z|input) for cross-generation.
    pub draw: Draw,
    /// Importance-sampled log-likelihoods (if selected) on (items,
    /// samples per item).
    pub loglik: (usize, usize),
    /// Training items for the linear probes (their first 5,000 are used).
    pub probe_train: Option<ImageLabelSet>,
    /// The training captions of a dataset with its own captions, for the
    /// perplexity metric's reference model (the templates otherwise).
    pub train_captions: Option<Vec<String>>,
    /// Caption by beam search of this width instead of greedily.
    pub beam: Option<usize>,
    /// With `Metric::Fid`: also Fréchet distances in the pool3 features of
    /// this Inception-v3 (user-supplied FID weights).
    pub inception: Option<InceptionV3>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            metrics: Metric::defaults(),
            limit: None,
            seed: 0,
            batch_size: 500,
            joint_samples: 10_000,
            draw: Draw::Sample,
            loglik: (100, 1000),
            probe_train: None,
            train_captions: None,
            inception: None,
            beam: None,
        }
    }
}

/// Agreement between the attributes something should have and those it has.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coherence {
    /// Fraction of items with every attribute slot right.
    pub strict: f64,
    /// Mean fraction of slots right per item.
    pub features: f64,
    /// Fraction right of each slot.
    pub per_slot: BTreeMap<String, f64>,
    /// Strict score of the items that should have a slot's value, per
    /// value (`"shape=heart"`: the fraction of items meant to show a heart
    /// with every slot right), to see which classes a model misses.
    pub strict_by_value: BTreeMap<String, f64>,
    /// Character accuracy of generated captions against the reference
    /// caption (position by position, over the longer of the two), where the
    /// dataset has one caption per class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub letters: Option<f64>,
    /// Micro-averaged F1 of the present attributes (value 1), where every
    /// slot is binary (CelebA): the score for imbalanced attribute sets,
    /// where per-slot accuracy rewards predicting "absent".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_f1: Option<f64>,
}

/// Running counts behind a [`Coherence`].
struct Tally {
    names: Vec<&'static str>,
    /// Each slot's value names (caption words, or the value's index).
    values: Vec<Vec<String>>,
    n: usize,
    strict: usize,
    /// Per slot and wanted value: (items, items with every slot right).
    by_value: Vec<Vec<(usize, usize)>>,
    features: f64,
    per: Vec<usize>,
    letters: Option<f64>,
    /// True/false positives and false negatives of present attributes,
    /// counted where every slot is binary.
    binary: Option<[usize; 3]>,
}

impl Tally {
    fn new(kind: DatasetKind) -> Self {
        let slots = kind.slots();
        let names: Vec<&'static str> = slots.iter().map(|s| s.0).collect();
        let per = vec![0; names.len()];
        let binary = slots.len() > 1 && slots.iter().all(|s| s.1 == 2);
        let values = kind.slot_values();
        let by_value = values.iter().map(|v| vec![(0, 0); v.len()]).collect();
        Self {
            names,
            values,
            n: 0,
            strict: 0,
            by_value,
            features: 0.0,
            per,
            letters: None,
            binary: binary.then_some([0; 3]),
        }
    }

    /// Score one item: `got[k]` against `want[k]` per slot (None = not recognised).
    fn add(&mut self, want: &[usize], got: &[Option<usize>]) {
        let mut right = 0;
        for (k, w) in want.iter().enumerate() {
            let g = got.get(k).copied().flatten();
            if g == Some(*w) {
                self.per[k] += 1;
                right += 1;
            }
            if let Some(c) = &mut self.binary {
                match (*w == 1, g == Some(1)) {
                    (true, true) => c[0] += 1,
                    (false, true) => c[1] += 1,
                    (true, false) => c[2] += 1,
                    (false, false) => {}
                }
            }
        }
        let all_right = right == want.len();
        for (k, &w) in want.iter().enumerate() {
            if let Some(c) = self.by_value.get_mut(k).and_then(|s| s.get_mut(w)) {
                c.0 += 1;
                c.1 += all_right as usize;
            }
        }
        self.n += 1;
        self.strict += all_right as usize;
        self.features += right as f64 / want.len().max(1) as f64;
    }

    fn add_letters(&mut self, reference: &str, got: &str) {
        let (a, b): (Vec<char>, Vec<char>) = (reference.chars().collect(), got.chars().collect());
        let len = a.len().max(b.len()).max(1);
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        *self.letters.get_or_insert(0.0) += same as f64 / len as f64;
    }

    fn finish(self) -> Coherence {
        let n = self.n.max(1) as f64;
        Coherence {
            strict: self.strict as f64 / n,
            features: self.features / n,
            per_slot: self
                .names
                .iter()
                .map(|s| s.to_string())
                .zip(self.per.iter().map(|&c| c as f64 / n))
                .collect(),
            strict_by_value: self
                .names
                .iter()
                .zip(self.values.iter().zip(&self.by_value))
                .flat_map(|(slot, (names, counts))| {
                    names
                        .iter()
                        .zip(counts)
                        .filter(|(_, c)| c.0 > 0)
                        .map(move |(v, c)| (format!("{slot}={v}"), c.1 as f64 / c.0 as f64))
                })
                .collect(),
            letters: self.letters.map(|l| l / n),
            attribute_f1: self
                .binary
                .map(|[tp, fp, fn_]| 2.0 * tp as f64 / (2 * tp + fp + fn_).max(1) as f64),
        }
    }
}

fn some(v: Vec<usize>) -> Vec<Option<usize>> {
    v.into_iter().map(Some).collect()
}

/// The exact settings an evaluation ran with, saved in its JSON.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSettings {
    pub metrics: Vec<&'static str>,
    pub limit: Option<usize>,
    pub batch_size: usize,
    pub joint_samples: usize,
    pub retrieval_subset_size: usize,
    pub retrieval_subsets: usize,
    pub probe_train_items: usize,
    pub loglik_items: usize,
    pub loglik_samples: usize,
}

/// What `evaluate` measured; a metric group that was not selected is absent
/// (`None`, left out of the JSON).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub dataset: String,
    pub checkpoint: String,
    pub test_items: usize,
    pub seed: u64,
    pub latent_draw: String,
    /// Where text→image latents come from: the caption's posterior or a
    /// fitted text prior.
    pub text_to_image_latent: String,
    pub caption_decoding: String,
    pub settings: EvalSettings,
    /// The evaluation classifier's own test accuracy (every attribute right).
    /// None for a dataset without labels (no classifier scores it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier_test_accuracy: Option<f64>,
    /// Classifier attributes of images generated from training-template
    /// captions, against the caption's attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_to_image: Option<Coherence>,
    /// The same, with captions from held-out templates never seen in
    /// training (datasets that have them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_to_image_heldout: Option<Coherence>,
    /// Attributes named by generated captions, against the image's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_to_text: Option<Coherence>,
    /// Prior samples: attributes of the image (classifier) against those
    /// named by the caption decoded from the same latent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joint: Option<Coherence>,
    /// Classifier attributes of image reconstructions (image → z → image):
    /// the ceiling the decoder puts on text → image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_reconstruction: Option<Coherence>,
    /// Mean negative ELBO terms on the test split (training templates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<BTreeMap<String, f64>>,
    /// Corpus BLEU-1..4 of the generated captions, the references being every
    /// training phrasing of the image's class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption_bleu: Option<[f64; 4]>,
    /// Mean PSNR (dB, capped at 100) and SSIM of image reconstructions
    /// (pixel probabilities against the input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconstruction_psnr_db: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconstruction_ssim: Option<f64>,
    /// Perplexity of generated and of real test captions under a reference
    /// language model trained on the training captions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption_perplexity: Option<Perplexity>,
    /// Fréchet distances of generated images to the test images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fid: Option<FidReport>,
    /// The same in Inception-v3 features (if weights were supplied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fid_inception: Option<FidReport>,
    /// Linear probes of the unimodal posterior means (if training items
    /// were given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_probe: Option<crate::eval::probe::ProbeReport>,
    /// Cross-modal retrieval in the latent space (1,000-item subsets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<RetrievalReport>,
    /// Importance-sampled log p(x), log p(y), log p(x, y).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_likelihood: Option<LogLikelihood>,
    /// Conditional coherence of every modality from every subset of the
    /// others, and of joint prior samples (with the coherence group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coherence_matrix: Option<CoherenceMatrix>,
}

impl EvalReport {
    pub fn table(&self) -> String {
        let pct = |v: f64| format!("{:6.2}%", 100.0 * v);
        let multi = [&self.text_to_image, &self.image_to_text]
            .into_iter()
            .flatten()
            .any(|c| c.per_slot.len() > 1);
        let row = |name: &str, c: &Coherence| {
            let mut s = format!("  {name:<35}{}", pct(c.strict));
            if multi {
                s.push_str(&format!("  features {}", pct(c.features)));
                if let Some(l) = c.letters {
                    s.push_str(&format!("  letters {}", pct(l)));
                }
                if let Some(f) = c.attribute_f1 {
                    s.push_str(&format!("  attribute F1 {f:.4}"));
                }
            }
            // The value whose items score lowest (the first of ties).
            let weakest =
                c.strict_by_value
                    .iter()
                    .fold(None, |w: Option<(&String, f64)>, (k, &v)| match w {
                        Some((_, wv)) if wv <= v => w,
                        _ => Some((k, v)),
                    });
            if let Some((k, v)) = weakest {
                s.push_str(&format!("  weakest {k} {}", pct(v).trim_start()));
            }
            s.push('\n');
            s
        };
        let mut s = String::new();
        s.push_str(&format!(
            "dataset {}  test items {}  seed {}{}\n",
            self.dataset,
            self.test_items,
            self.seed,
            if multi {
                "  (strict: all attributes right)"
            } else {
                ""
            }
        ));
        if self.text_to_image.is_some() {
            s.push_str(&format!(
                "text -> image latents: {}\n",
                self.text_to_image_latent
            ));
        }
        for (name, c) in [
            ("text -> image coherence", &self.text_to_image),
            (
                "text -> image (held-out templates)",
                &self.text_to_image_heldout,
            ),
            ("image -> text coherence", &self.image_to_text),
            ("joint coherence (prior samples)", &self.joint),
            (
                "image reconstruction (classifier)",
                &self.image_reconstruction,
            ),
        ] {
            if let Some(c) = c {
                s.push_str(&row(name, c));
            }
        }
        if let Some(a) = self.classifier_test_accuracy {
            s.push_str(&format!("  {:<35}{}\n", "classifier test accuracy", pct(a)));
        }
        if let Some(l) = &self.test_loss {
            s.push_str(&format!(
                "  {:<34}{:.2}\n",
                "test negative ELBO objective",
                l.get("loss").copied().unwrap_or(f64::NAN)
            ));
        }
        if let Some(b) = self.caption_bleu {
            s.push_str(&format!(
                "  {:<35}{:.3} / {:.3} / {:.3} / {:.3}\n",
                "caption BLEU-1/2/3/4", b[0], b[1], b[2], b[3]
            ));
        }
        if let Some(p) = &self.caption_perplexity {
            s.push_str(&format!(
                "  {:<35}generated {:.3}  real {:.3}\n",
                "caption perplexity (bigram LM)", p.generated, p.real
            ));
        }
        if let (Some(p), Some(q)) = (self.reconstruction_psnr_db, self.reconstruction_ssim) {
            s.push_str(&format!(
                "  {:<35}PSNR {p:.2} dB  SSIM {q:.4}\n",
                "image reconstruction quality"
            ));
        }
        for (name, f) in [
            ("FID (classifier features)", &self.fid),
            ("FID (Inception-v3 pool3)", &self.fid_inception),
        ] {
            if let Some(f) = f {
                s.push_str(&format!(
                    "  {name:<35}text->image {:.3}  reconstruction {:.3}  joint {:.3}\n",
                    f.text_to_image, f.reconstruction, f.joint
                ));
            }
        }
        if let Some(p) = &self.linear_probe {
            s.push_str(&format!(
                "  {:<35}from q(z|image) {}  from q(z|text) {}  ({} train items)\n",
                "linear probe accuracy",
                pct(p.image.strict),
                pct(p.text.strict),
                p.train_items
            ));
        }
        if let Some(l) = &self.log_likelihood {
            s.push_str(&format!(
                "  {:<35}log p(x) {:.2}  log p(y) {:.3}  log p(x,y) {:.2}  (K={}, {} items)\n",
                "marginal log-likelihood (nats)",
                l.log_p_image,
                l.log_p_text,
                l.log_p_joint,
                l.samples,
                l.items
            ));
        }
        if let Some(r) = &self.retrieval {
            for (name, d, class) in [
                (
                    "retrieval image -> text",
                    &r.image_to_text,
                    r.image_to_text_class_at_1,
                ),
                (
                    "retrieval text -> image",
                    &r.text_to_image,
                    r.text_to_image_class_at_1,
                ),
            ] {
                s.push_str(&format!(
                    "  {name:<35}MedR {:.1}  R@1 {}  R@5 {}  R@10 {}  class@1 {}\n",
                    d.median_rank,
                    pct(d.recall_at_1),
                    pct(d.recall_at_5),
                    pct(d.recall_at_10),
                    pct(class)
                ));
            }
            s.push_str(&format!(
                "  ({} subset(s) of {} items)\n",
                r.subsets, r.subset_size
            ));
        }
        if let Some(c) = &self.coherence_matrix {
            s.push_str("conditional coherence (each modality from each subset of the others):\n");
            s.push_str(&c.table());
        }
        s
    }
}

/// Pool3 features of `[n, pixels]` images, 32 at a time (299×299 inputs).
fn inception_features(net: &InceptionV3, m: &Loaded, images: Tensor<2>) -> Vec<f32> {
    let [n, _] = images.dims();
    let mut out = Vec::with_capacity(n * inception::FEATURES);
    let mut start = 0;
    while start < n {
        let k = 32.min(n - start);
        let chunk = images.clone().narrow(0, start, k);
        out.extend(host(net.features(chunk, m.colours(), m.side())));
        start += k;
    }
    out
}

/// Optional Inception features alongside the classifier's.
#[derive(Default)]
struct Feats {
    clf: Vec<f32>,
    inception: Vec<f32>,
}

impl Feats {
    fn add(&mut self, clf: Tensor<2>, net: Option<&InceptionV3>, m: &Loaded, images: Tensor<2>) {
        self.clf.extend(host(clf));
        if let Some(net) = net {
            self.inception.extend(inception_features(net, m, images));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn t2i(
    m: &Loaded,
    clf: &Classifier,
    test: &ImageLabelSet,
    n: usize,
    source: CaptionSource,
    bs: usize,
    draw: Draw,
    net: Option<&InceptionV3>,
) -> (Coherence, Feats) {
    let kind = test.kind;
    let mut tally = Tally::new(kind);
    let mut features = Feats::default();
    let idx: Vec<usize> = (0..n).collect();
    for chunk in idx.chunks(bs) {
        let hb = HostBatch::gather(&m.model.layout(), test, chunk, source, &m.checkpoint.vocab);
        let b = hb.to_device(&m.device);
        let probs = {
            let (t, l) = b.tokens();
            m.text_to_image_probs(t, l, draw)
        };
        let (preds, f) = clf.predict_with_features(probs.clone());
        features.add(f, net, m, probs);
        for (p, &l) in preds.into_iter().zip(&hb.labels) {
            tally.add(&kind.attributes(l), &some(p));
        }
    }
    (tally.finish(), features)
}

/// Strict text→image coherence of `m` on the validation split `val` (its
/// captions phrased as the validation stream, as in training) at each text
/// prior temperature of `temperatures`, every temperature from the same
/// `seed`, with `m.rerank` candidates per caption. What [`pick_temperature`]
/// chooses from, so the temperature is never chosen on the test split.
pub fn prior_temperature_sweep(
    m: &mut Loaded,
    clf: &Classifier,
    val: &ImageLabelSet,
    temperatures: &[f32],
    seed: u64,
    batch_size: usize,
) -> Result<Vec<(f32, f64)>> {
    m.fitted_prior()?;
    if let Some(t) = temperatures
        .iter()
        .find(|&&t| !crate::prior::is_sampling_temperature(t))
    {
        return Err(ModelError::Invalid(format!(
            "prior temperatures must be positive (got {t})"
        )));
    }
    let source = CaptionSource {
        captioner: m.captioner(),
        set: CaptionSet::Train,
        stream: crate::io::data::VAL_STREAM,
    };
    let saved = m.prior_temperature;
    let mut out = Vec::with_capacity(temperatures.len());
    for &t in temperatures {
        m.prior_temperature = t;
        m.seed(seed);
        let (c, _) = t2i(
            m,
            clf,
            val,
            val.len(),
            source,
            batch_size.max(1),
            Draw::Sample,
            None,
        );
        out.push((t, c.strict));
    }
    m.prior_temperature = saved;
    Ok(out)
}

/// The temperature with the highest coherence; among equal scores the
/// highest temperature (the most varied draws). `None` for no scores.
pub fn pick_temperature(scores: &[(f32, f64)]) -> Option<f32> {
    scores
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.0.total_cmp(&b.0)))
        .map(|(t, _)| t)
}

/// Choose the temperature of `m`'s fitted text prior from `temperatures`
/// by [`prior_temperature_sweep`] on its run's validation split (loaded
/// from the checkpoint's config, `data_dir` as in training), save the choice
/// and every score in the checkpoint's `text-prior.json`, and use it in `m`
/// from now on. Returns the scores and the chosen temperature.
pub fn choose_prior_temperature(
    m: &mut Loaded,
    clf: &Classifier,
    temperatures: &[f32],
    data_dir: Option<&std::path::Path>,
) -> Result<(Vec<(f32, f64)>, f32)> {
    let mut info = m.fitted_prior()?.1.clone();
    let val = crate::io::data::load_train_data(&m.checkpoint.config, data_dir)?.val;
    let seed = m.checkpoint.config.seed;
    let scores = prior_temperature_sweep(m, clf, &val, temperatures, seed, 250)?;
    let chosen = pick_temperature(&scores)
        .ok_or_else(|| ModelError::Invalid("no prior temperatures to choose from".into()))?;
    info.config.temperature = chosen;
    // The temperature was chosen under this many candidates per caption.
    info.config.rerank = m.rerank.max(1);
    info.temperature_choice = scores.clone();
    crate::prior::save_info(&m.checkpoint.dir, &info)?;
    m.prior_temperature = chosen;
    if let Some(p) = m.text_prior.as_mut() {
        p.1 = info;
    }
    Ok((scores, chosen))
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap_or_default()
}

#[derive(Debug, Clone, Serialize)]
pub struct Perplexity {
    pub reference_model: &'static str,
    pub generated: f64,
    pub real: f64,
}

/// Fréchet distances to the test images in the evaluation classifier's
/// feature space (see [`crate::eval::fid`]).
#[derive(Debug, Clone, Serialize)]
pub struct FidReport {
    pub features: &'static str,
    pub items: usize,
    pub text_to_image: f64,
    pub reconstruction: f64,
    pub joint: f64,
}

/// Score a checkpoint on the test split: the metric groups in
/// `opts.metrics`, each computed only if selected. Without an evaluation
/// classifier (a dataset without labels) the classifier-scored groups,
/// coherence and FID, are left out.
pub fn evaluate(
    m: &Loaded,
    classifier: Option<(&Classifier, &ClassifierInfo)>,
    test: &ImageLabelSet,
    opts: &EvalOptions,
) -> EvalReport {
    let cfg = &m.checkpoint.config;
    let kind = test.kind;
    let captioner: Captioner = m.captioner();
    let n = opts.limit.unwrap_or(test.len()).min(test.len());
    let bs = opts.batch_size.max(1);
    // The image–caption groups need both; the coherence matrix and the
    // test loss take any modalities.
    let image_text = m.model.index_of_kind(ModalityKind::Image).is_some()
        && m.model.index_of_kind(ModalityKind::Text).is_some();
    let on =
        |metric: Metric| opts.metrics.contains(&metric) && (image_text || metric == Metric::Loss);
    let clf_opt = classifier.map(|c| c.0);
    let coherence = on(Metric::Coherence) && clf_opt.is_some();
    let fid_on = on(Metric::Fid) && clf_opt.is_some();
    let net = opts.inception.as_ref().filter(|_| fid_on);
    m.seed(opts.seed);

    let train_src = CaptionSource {
        captioner,
        set: CaptionSet::Train,
        stream: TEST_STREAM,
    };
    let held_src = CaptionSource {
        captioner,
        set: CaptionSet::HeldOut,
        stream: TEST_STREAM,
    };
    let (text_to_image, t2i_features) = match clf_opt {
        Some(clf) if coherence || fid_on => {
            let (c, f) = t2i(m, clf, test, n, train_src, bs, opts.draw, net);
            (Some(c), f)
        }
        _ => (None, Feats::default()),
    };
    let text_to_image_heldout = clf_opt
        .filter(|_| coherence && captioner.has(CaptionSet::HeldOut))
        .map(|clf| t2i(m, clf, test, n, held_src, bs, opts.draw, None).0);
    let (mut real_features, mut recon_features, mut joint_features) =
        (Feats::default(), Feats::default(), Feats::default());

    // One pass over the test images serves coherence, BLEU, perplexity,
    // reconstruction quality and FID.
    let captions_needed = coherence || on(Metric::Bleu) || on(Metric::Perplexity);
    let recon_needed = coherence || fid_on || on(Metric::Reconstruction);
    let idx: Vec<usize> = if captions_needed || recon_needed {
        (0..n).collect()
    } else {
        Vec::new()
    };
    let mut i2t = Tally::new(kind);
    let mut recon = Tally::new(kind);
    // BLEU references: every training phrasing of the item's class, in the
    // vocabulary's tokens (words, or characters for `data.tokenizer = "char"`).
    let level = m.checkpoint.vocab.level();
    let words = |s: &str| level.tokens(s);
    let refs_of: Vec<Vec<Vec<String>>> = (0..kind.num_classes())
        .map(|c| {
            (0..captioner.templates(CaptionSet::Train).len())
                .map(|t| words(&captioner.render(CaptionSet::Train, t, c)))
                .collect()
        })
        .collect();
    let (mut cands, mut refs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut generated, mut real_caps) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut psnr_sum, mut ssim_sum) = (0.0f64, 0.0f64);
    let (side, colours) = (m.side(), m.colours());
    for chunk in idx.chunks(bs) {
        let hb = HostBatch::gather(
            &m.model.layout(),
            test,
            chunk,
            train_src,
            &m.checkpoint.vocab,
        );
        let images = hb.to_device(&m.device).images();
        // Captions only for the metrics that read them.
        let caps = match opts.beam {
            _ if !captions_needed => Vec::new(),
            Some(w) => m.caption_tensor_beam(images.clone(), opts.draw, w),
            None => m.caption_tensor(images.clone(), opts.draw, None),
        };
        for ((c, &l), own) in caps.iter().zip(&hb.labels).zip(&hb.captions) {
            i2t.add(&kind.attributes(l), &captioner.slots_of(c));
            if let Some(r) = captioner.reference(l) {
                i2t.add_letters(&r, c);
            }
            cands.push(words(c));
            // An item with its own caption is its own reference.
            refs.push(match test.captions {
                Some(_) => vec![words(own)],
                None => refs_of[l].clone(),
            });
        }
        generated.extend(caps.iter().cloned());
        real_caps.extend(hb.captions.iter().cloned());
        if let Some(clf) = clf_opt.filter(|_| fid_on) {
            real_features.add(clf.features(images.clone()), net, m, images.clone());
        }
        if !recon_needed {
            continue;
        }
        let probs = m.image_to_image_probs(images, opts.draw);
        let recon_preds = match clf_opt.filter(|_| coherence || fid_on) {
            Some(clf) => {
                let (p, f) = clf.predict_with_features(probs.clone());
                if fid_on {
                    recon_features.add(f, net, m, probs.clone());
                }
                p
            }
            None => Vec::new(),
        };
        let got = probs.try_into_vec_as::<f32>().unwrap_or_default();
        let px = colours * side * side;
        for (k, g) in got.chunks(px).enumerate() {
            let want = &hb.images().unwrap_or_default()[k * px..(k + 1) * px];
            psnr_sum += metrics::psnr(want, g).min(100.0);
            ssim_sum += metrics::ssim(want, g, colours, side);
        }
        for (p, &l) in recon_preds.into_iter().zip(&hb.labels) {
            recon.add(&kind.attributes(l), &some(p));
        }
    }

    let mut joint = Tally::new(kind);
    let mut done = 0;
    let joint_samples = if coherence || fid_on {
        opts.joint_samples
    } else {
        0
    };
    while let Some(clf) = clf_opt.filter(|_| done < joint_samples) {
        let k = bs.min(joint_samples - done);
        let z = Tensor::<2>::random(
            [k, m.model.latent],
            Distribution::Normal(0.0, 1.0),
            &m.device,
        );
        let caps = m.model.decode_text(z.clone(), None);
        let imgs = m.model.decode_image(z);
        let (preds, f) = clf.predict_with_features(imgs.clone());
        // Inception features of as many prior samples as test items.
        let want = n.saturating_sub(done).min(k);
        let net_imgs = (want > 0).then(|| imgs.clone().narrow(0, 0, want));
        joint_features.clf.extend(host(f));
        if let (Some(net), Some(x)) = (net, net_imgs) {
            joint_features
                .inception
                .extend(inception_features(net, m, x));
        }
        for (c, p) in caps.iter().zip(preds) {
            joint.add(&p, &captioner.slots_of(&m.checkpoint.vocab.decode(c)));
        }
        done += k;
    }

    let mut sub = test.clone();
    sub.truncate(n);
    let test_loss = on(Metric::Loss).then(|| {
        // The objective of the last epoch (the final phase's weights).
        let last = cfg.optim.epochs.saturating_sub(1);
        evaluate_loss(
            &m.model,
            cfg,
            &cfg.loss_at(last),
            &cfg.weights_at(last),
            &sub,
            train_src,
            &m.checkpoint.vocab,
            &m.device,
        )
    });
    let (subset_size, subsets) = (1000, 10);
    let retrieval = on(Metric::Retrieval)
        .then(|| retrieval(m, &sub, subset_size, subsets).ok())
        .flatten();
    let (loglik_items, loglik_samples) = opts.loglik;
    let log_likelihood = on(Metric::Loglik).then(|| {
        m.seed(opts.seed);
        marginal_log_likelihood(m, &sub, loglik_items.max(1), loglik_samples.max(1))
    });
    let nn = n.max(1) as f64;
    let fid_in = |features: &'static str, dim: usize, pick: fn(&Feats) -> &[f32]| {
        let real = FeatureStats::new(pick(&real_features), dim);
        let fd = |f: &Feats| frechet_distance(&real, &FeatureStats::new(pick(f), dim));
        FidReport {
            features,
            items: n,
            text_to_image: fd(&t2i_features),
            reconstruction: fd(&recon_features),
            joint: fd(&joint_features),
        }
    };
    let fid = fid_on.then(|| {
        fid_in(
            "penultimate layer (128) of the in-repo evaluation classifier; not Inception",
            Classifier::FEATURES,
            |f| &f.clf,
        )
    });
    let fid_inception = net.map(|_| {
        fid_in(
            "Inception-v3 pool3 (2048), pytorch-fid network, user-supplied weights",
            inception::FEATURES,
            |f| &f.inception,
        )
    });
    let caption_perplexity = on(Metric::Perplexity).then(|| {
        let corpus = opts
            .train_captions
            .clone()
            .unwrap_or_else(|| captioner.all_captions(CaptionSet::Train));
        let lm = BigramLm::train(corpus.iter().map(|c| c.as_str()).collect::<Vec<_>>(), 0.9);
        Perplexity {
            reference_model: "interpolated bigram (λ = 0.9) trained on the training captions",
            generated: lm.perplexity(generated.iter().map(|c| c.as_str())),
            real: lm.perplexity(real_caps.iter().map(|c| c.as_str())),
        }
    });
    let probe_items = 5000;
    let linear_probe = on(Metric::Probe)
        .then_some(opts.probe_train.as_ref())
        .flatten()
        .map(|tr| crate::eval::probe::probe_latents(m, tr, probe_items, &sub, n));
    let reconstruction = on(Metric::Reconstruction);
    EvalReport {
        settings: EvalSettings {
            metrics: opts.metrics.iter().map(|m| m.name()).collect(),
            limit: opts.limit,
            batch_size: bs,
            joint_samples,
            retrieval_subset_size: subset_size.min(n),
            retrieval_subsets: subsets,
            probe_train_items: linear_probe.as_ref().map_or(0, |p| p.train_items),
            loglik_items: if log_likelihood.is_some() {
                loglik_items.max(1)
            } else {
                0
            },
            loglik_samples: if log_likelihood.is_some() {
                loglik_samples.max(1)
            } else {
                0
            },
        },
        linear_probe,
        caption_perplexity,
        fid,
        fid_inception,
        retrieval,
        log_likelihood,
        caption_bleu: on(Metric::Bleu).then(|| metrics::corpus_bleu(&cands, &refs)),
        reconstruction_psnr_db: reconstruction.then_some(psnr_sum / nn),
        reconstruction_ssim: reconstruction.then_some(ssim_sum / nn),
        dataset: cfg.data.dataset.to_string(),
        checkpoint: m.checkpoint.dir.display().to_string(),
        test_items: n,
        seed: opts.seed,
        latent_draw: match opts.draw {
            Draw::Sample => "z ~ q(z|input) (one sample per item)".into(),
            Draw::Mean => "z = mean of q(z|input)".into(),
        },
        text_to_image_latent: m.text_to_image_source(),
        caption_decoding: match opts.beam {
            Some(w) => format!("beam search, width {w}"),
            None => "greedy".into(),
        },
        classifier_test_accuracy: classifier.map(|c| c.1.test_accuracy),
        text_to_image: text_to_image.filter(|_| coherence),
        text_to_image_heldout,
        image_to_text: coherence.then(|| i2t.finish()),
        joint: coherence.then(|| joint.finish()),
        image_reconstruction: coherence.then(|| recon.finish()),
        test_loss,
        coherence_matrix: opts.metrics.contains(&Metric::Coherence).then(|| {
            // Its own stream, after every other group's draws.
            m.seed(opts.seed ^ 0x4D41_5452_4958);
            coherence_matrix(m, clf_opt, test, n, train_src, bs, joint_samples)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_scoring_temperature_is_picked_ties_to_the_higher() {
        assert_eq!(pick_temperature(&[]), None);
        assert_eq!(
            pick_temperature(&[(1.0, 0.7), (0.25, 0.9), (0.5, 0.8)]),
            Some(0.25)
        );
        assert_eq!(
            pick_temperature(&[(0.1, 0.9), (0.5, 0.9), (0.25, 0.9), (1.0, 0.6)]),
            Some(0.5)
        );
    }

    #[test]
    fn tally_scores_strict_features_and_letters() {
        let mut t = Tally::new(DatasetKind::Shapes(mmvae_data::shapes::Level::L3));
        t.add(&[0, 1, 2], &[Some(0), Some(1), Some(2)]); // all right
        t.add(&[0, 1, 2], &[Some(0), None, Some(1)]); // 1 of 3
        t.add_letters("big red square", "big red square");
        t.add_letters("abcd", "abxd"); // 3 of 4
        let c = t.finish();
        assert!((c.strict - 0.5).abs() < 1e-12);
        assert!((c.features - (1.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(c.per_slot["size"], 1.0);
        assert_eq!(c.per_slot["colour"], 0.5);
        assert_eq!(c.per_slot["shape"], 0.5);
        // Both items want a big green heart; one of the two is all right.
        assert_eq!(c.strict_by_value["size=big"], 0.5);
        assert_eq!(c.strict_by_value["colour=green"], 0.5);
        assert_eq!(c.strict_by_value["shape=heart"], 0.5);
        assert_eq!(
            c.strict_by_value.len(),
            3,
            "values never wanted are left out"
        );
        assert!((c.letters.unwrap() - (1.0 + 0.75) / 2.0).abs() < 1e-12);
        assert_eq!(c.attribute_f1, None, "shapes slots are not binary");
        // CelebA: nine binary slots; F1 counts the present attributes.
        let mut t = Tally::new(DatasetKind::CelebA(mmvae_data::AttrSet::DEFAULT));
        let want = [1, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut got: Vec<Option<usize>> = want.iter().map(|&w| Some(w)).collect();
        got[1] = Some(1); // false positive
        got[8] = None; // false negative
        t.add(&want, &got);
        t.add(&[0; 9], &[Some(0); 9]); // no positives: counts nothing
        let c = t.finish();
        // tp 1, fp 1, fn 1 → 2 / 4.
        assert!((c.attribute_f1.unwrap() - 0.5).abs() < 1e-12);
        assert!((c.strict - 0.5).abs() < 1e-12);
    }

    #[test]
    fn metric_lists_parse_and_refuse_unknown_names() {
        let s = Metric::parse_list("fid, coherence").unwrap();
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec![Metric::Coherence, Metric::Fid]
        );
        assert_eq!(Metric::parse_list("all").unwrap().len(), Metric::ALL.len());
        assert!(!Metric::defaults().contains(&Metric::Loglik));
        let e = Metric::parse_list("coherence,fdi").unwrap_err().to_string();
        assert!(e.contains("unknown metric 'fdi'"), "{e}");
        assert!(Metric::parse_list(" , ").is_err());
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()).unwrap(), m);
        }
    }
}
