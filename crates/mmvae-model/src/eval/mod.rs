//! Measuring a trained model on the test split: coherence (scored by the
//! in-repo classifier), the conditional coherence matrix, BLEU,
//! perplexity, reconstruction quality, FID, probes, retrieval and
//! log-likelihood.

pub mod classifier;
pub mod classifiers;
pub mod coherence;
pub mod completion;
pub mod consistency;
pub mod fid;
pub mod inception;
pub mod latent;
pub mod likelihood;
pub mod matrix;
pub mod matrix_fid;
pub mod metrics;
pub mod pair_check;
mod passes;
pub mod probe;
pub mod report;
pub mod retrieval;
pub mod text_to_image;

use mmvae_data::ImageLabelSet;
use std::collections::BTreeSet;

use crate::error::{ModelError, Result};
use crate::eval::classifiers::Classifiers;
use crate::eval::matrix::{coherence_matrix, MatrixOptions};
use crate::infer::{Draw, Loaded};
pub use coherence::Coherence;
use inception::InceptionV3;
use passes::Ctx;
pub use report::{EvalReport, EvalSettings, FidReport, Perplexity};
pub use text_to_image::{choose_prior_temperature, pick_temperature, prior_temperature_sweep};

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
    /// Each modality's KL from the prior and active units, shared and
    /// private latent.
    Latent,
}

impl Metric {
    /// The groups scored with class labels (an evaluation classifier or
    /// label probes): not available for a dataset without labels.
    pub const NEED_LABELS: [Metric; 3] = [Metric::Coherence, Metric::Fid, Metric::Probe];

    pub const ALL: [Metric; 10] = [
        Metric::Coherence,
        Metric::Loss,
        Metric::Bleu,
        Metric::Perplexity,
        Metric::Reconstruction,
        Metric::Fid,
        Metric::Probe,
        Metric::Retrieval,
        Metric::Loglik,
        Metric::Latent,
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
            Metric::Latent => "latent",
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

/// Score a checkpoint on the test split: the metric groups in
/// `opts.metrics`, each computed only if selected. Without an evaluation
/// classifier (a dataset without labels) the classifier-scored groups,
/// coherence and FID, are left out. A model without an image and a caption
/// gets the coherence matrix and the test loss.
pub fn evaluate(
    m: &Loaded,
    classifier: Option<&Classifiers>,
    test: &ImageLabelSet,
    opts: &EvalOptions,
) -> EvalReport {
    // The image–caption groups read the model's image modality.
    let image_clf = classifier.and_then(|c| c.of_image(&m.model));
    let ctx = Ctx::new(m, image_clf, test, opts);
    let (n, on) = (ctx.n, |metric| ctx.on(metric));
    let drawn = ctx.drawn();
    let mut sub = test.clone();
    sub.truncate(n);
    let split = ctx.split_groups(&sub);
    let (fid, fid_inception) = ctx.fids(&drawn);
    let caption_perplexity =
        on(Metric::Perplexity).then(|| ctx.perplexity(&drawn.pass.generated, &drawn.pass.real));
    let linear_probe = on(Metric::Probe)
        .then_some(opts.probe_train.as_ref())
        .flatten()
        .map(|tr| crate::eval::probe::probe_latents(m, tr, 5000, &sub, n));
    let latent_usage =
        on(Metric::Latent).then(|| latent::latent_usage(m, test, n, ctx.bs, ctx.train_src));
    let settings = ctx.settings(&drawn, &split, linear_probe.as_ref());
    let pass = drawn.pass;
    let reconstruction = on(Metric::Reconstruction);
    let nn = n.max(1) as f64;
    EvalReport {
        settings,
        linear_probe,
        latent_usage,
        caption_perplexity,
        fid,
        fid_inception,
        retrieval: split.retrieval,
        log_likelihood: split.log_likelihood,
        caption_bleu: on(Metric::Bleu).then(|| metrics::corpus_bleu(&pass.cands, &pass.refs)),
        reconstruction_psnr_db: reconstruction.then_some(pass.psnr_sum / nn),
        reconstruction_ssim: reconstruction.then_some(pass.ssim_sum / nn),
        dataset: m.checkpoint.config.data.dataset.to_string(),
        checkpoint: m.checkpoint.dir.display().to_string(),
        test_items: n,
        seed: opts.seed,
        latent_draw: draw_label(opts.draw),
        text_to_image_latent: m.text_to_image_source(),
        caption_decoding: decoding_label(opts.beam),
        classifier_test_accuracy: classifier.map(|c| c.info.test_accuracy),
        text_to_image: drawn.text_to_image.filter(|_| ctx.coherence),
        text_to_image_heldout: drawn.text_to_image_heldout,
        image_to_text: ctx.coherence.then(|| pass.i2t.finish()),
        joint: ctx.coherence.then(|| drawn.joint.finish()),
        image_reconstruction: ctx.coherence.then(|| pass.recon.finish()),
        test_loss: split.test_loss,
        coherence_matrix: ctx.matrix_on().then(|| {
            // Its own stream, after every other group's draws.
            m.seed(opts.seed ^ 0x4D41_5452_4958);
            // Its joint coherence draws its own prior samples whatever the
            // image–caption groups measure.
            let mopts = MatrixOptions {
                items: n,
                source: ctx.train_src,
                batch_size: ctx.bs,
                joint_samples: opts.joint_samples,
                fid: opts.metrics.contains(&Metric::Fid),
                draw: opts.draw,
            };
            coherence_matrix(m, classifier, test, &mopts)
        }),
    }
}

/// How cross-generation drew its latents, in words for the JSON.
fn draw_label(draw: Draw) -> String {
    match draw {
        Draw::Sample => "z ~ q(z|input) (one sample per item)".into(),
        Draw::Mean => "z = mean of q(z|input)".into(),
    }
}

/// How captions were decoded, in words for the JSON.
fn decoding_label(beam: Option<usize>) -> String {
    match beam {
        Some(w) => format!("beam search, width {w}"),
        None => "greedy".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::coherence::Tally;
    use mmvae_data::DatasetKind;

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
