//! Measuring a trained model on the test split: coherence (scored by the
//! in-repo classifier), the conditional coherence matrix, BLEU,
//! perplexity, reconstruction quality, FID, probes, retrieval and
//! log-likelihood.

pub mod classifier;
pub mod coherence;
pub mod consistency;
pub mod fid;
pub mod inception;
pub mod likelihood;
pub mod matrix;
pub mod metrics;
pub mod pair_check;
pub mod probe;
pub mod report;
pub mod retrieval;
pub mod text_to_image;

use burn::prelude::*;
use burn::tensor::Distribution;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::lm::BigramLm;
use mmvae_data::ImageLabelSet;
use std::collections::BTreeSet;

use crate::error::{ModelError, Result};
use crate::eval::classifier::{Classifier, ClassifierInfo};
use crate::eval::fid::{frechet_distance, FeatureStats};
use crate::eval::likelihood::marginal_log_likelihood;
use crate::eval::matrix::coherence_matrix;
use crate::eval::retrieval::retrieval;
use crate::infer::{Draw, Loaded};
use crate::io::batch::{CaptionSource, HostBatch};
use crate::io::data::TEST_STREAM;
use crate::modality::ModalityKind;
use crate::train::evaluate_loss;
pub use coherence::Coherence;
use coherence::{some, Tally};
use inception::InceptionV3;
pub use report::{EvalReport, EvalSettings, FidReport, Perplexity};
pub use text_to_image::{choose_prior_temperature, pick_temperature, prior_temperature_sweep};
use text_to_image::{host, inception_features, t2i, Feats};

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

/// What every step of an evaluation reads.
struct Ctx<'a> {
    m: &'a Loaded,
    clf: Option<&'a Classifier>,
    net: Option<&'a InceptionV3>,
    opts: &'a EvalOptions,
    test: &'a ImageLabelSet,
    captioner: Captioner,
    /// Test items scored, and their batch size.
    n: usize,
    bs: usize,
    /// The image–caption coherence and FID groups are on (they need the
    /// classifier).
    coherence: bool,
    fid_on: bool,
    train_src: CaptionSource,
}

/// What the pass over the test images collects.
struct ImagePass {
    i2t: Tally,
    recon: Tally,
    /// Generated captions and their references, in tokens, for BLEU.
    cands: Vec<Vec<String>>,
    refs: Vec<Vec<Vec<String>>>,
    /// Generated and real captions, for perplexity.
    generated: Vec<String>,
    real: Vec<String>,
    psnr_sum: f64,
    ssim_sum: f64,
    real_features: Feats,
    recon_features: Feats,
}

impl Ctx<'_> {
    /// One pass over the test images serves image→text coherence, BLEU,
    /// perplexity, reconstruction quality and FID.
    fn image_pass(&self, captions_needed: bool, recon_needed: bool) -> ImagePass {
        let (m, kind, captioner) = (self.m, self.test.kind, &self.captioner);
        let mut p = ImagePass {
            i2t: Tally::new(kind),
            recon: Tally::new(kind),
            cands: Vec::with_capacity(self.n),
            refs: Vec::with_capacity(self.n),
            generated: Vec::with_capacity(self.n),
            real: Vec::with_capacity(self.n),
            psnr_sum: 0.0,
            ssim_sum: 0.0,
            real_features: Feats::default(),
            recon_features: Feats::default(),
        };
        if !(captions_needed || recon_needed) {
            return p;
        }
        // BLEU references: every training phrasing of the item's class, in
        // the vocabulary's tokens (words, or characters for `data.tokenizer
        // = "char"`).
        let level = m.checkpoint.vocab.level();
        let words = |s: &str| level.tokens(s);
        let refs_of: Vec<Vec<Vec<String>>> = (0..kind.num_classes())
            .map(|c| {
                (0..captioner.templates(CaptionSet::Train).len())
                    .map(|t| words(&captioner.render(CaptionSet::Train, t, c)))
                    .collect()
            })
            .collect();
        let (side, colours) = (m.side(), m.colours());
        let idx: Vec<usize> = (0..self.n).collect();
        for chunk in idx.chunks(self.bs) {
            let hb = HostBatch::gather(
                &m.model.layout(),
                self.test,
                chunk,
                self.train_src,
                &m.checkpoint.vocab,
            );
            let images = hb.to_device(&m.device).images();
            // Captions only for the metrics that read them.
            let caps = match self.opts.beam {
                _ if !captions_needed => Vec::new(),
                Some(w) => m.caption_tensor_beam(images.clone(), self.opts.draw, w),
                None => m.caption_tensor(images.clone(), self.opts.draw, None),
            };
            for ((c, &l), own) in caps.iter().zip(&hb.labels).zip(&hb.captions) {
                p.i2t.add(&kind.attributes(l), &captioner.slots_of(c));
                if let Some(r) = captioner.reference(l) {
                    p.i2t.add_letters(&r, c);
                }
                p.cands.push(words(c));
                // An item with its own caption is its own reference.
                p.refs.push(match self.test.captions {
                    Some(_) => vec![words(own)],
                    None => refs_of[l].clone(),
                });
            }
            p.generated.extend(caps.iter().cloned());
            p.real.extend(hb.captions.iter().cloned());
            if let Some(clf) = self.clf.filter(|_| self.fid_on) {
                p.real_features
                    .add(clf.features(images.clone()), self.net, m, images.clone());
            }
            if !recon_needed {
                continue;
            }
            let probs = m.image_to_image_probs(images, self.opts.draw);
            let recon_preds = match self.clf.filter(|_| self.coherence || self.fid_on) {
                Some(clf) => {
                    let (preds, f) = clf.predict_with_features(probs.clone());
                    if self.fid_on {
                        p.recon_features.add(f, self.net, m, probs.clone());
                    }
                    preds
                }
                None => Vec::new(),
            };
            let got = probs.try_into_vec_as::<f32>().unwrap_or_default();
            let px = colours * side * side;
            let pixels = hb.images().unwrap_or_default();
            for (k, g) in got.chunks(px).enumerate() {
                let want = &pixels[k * px..(k + 1) * px];
                p.psnr_sum += metrics::psnr(want, g).min(100.0);
                p.ssim_sum += metrics::ssim(want, g, colours, side);
            }
            for (pred, &l) in recon_preds.into_iter().zip(&hb.labels) {
                p.recon.add(&kind.attributes(l), &some(pred));
            }
        }
        p
    }

    /// Prior samples: the image's classifier attributes against the
    /// caption's, and the images' features for FID.
    fn joint_pass(&self, samples: usize) -> (Tally, Feats) {
        let m = self.m;
        let mut joint = Tally::new(self.test.kind);
        let mut features = Feats::default();
        let mut done = 0;
        while let Some(clf) = self.clf.filter(|_| done < samples) {
            let k = self.bs.min(samples - done);
            let z = Tensor::<2>::random(
                [k, m.model.latent],
                Distribution::Normal(0.0, 1.0),
                &m.device,
            );
            let caps = m.model.decode_text(z.clone(), None);
            let imgs = m.model.decode_image(z);
            let (preds, f) = clf.predict_with_features(imgs.clone());
            // Inception features of as many prior samples as test items.
            let want = self.n.saturating_sub(done).min(k);
            let net_imgs = (want > 0).then(|| imgs.clone().narrow(0, 0, want));
            features.clf.extend(host(f));
            if let (Some(net), Some(x)) = (self.net, net_imgs) {
                features.inception.extend(inception_features(net, m, x));
            }
            for (c, p) in caps.iter().zip(preds) {
                joint.add(&p, &self.captioner.slots_of(&m.checkpoint.vocab.decode(c)));
            }
            done += k;
        }
        (joint, features)
    }

    /// Fréchet distances of the three generated sets to the test images, in
    /// the features `pick` reads.
    fn fid(
        &self,
        features: &'static str,
        dim: usize,
        pick: fn(&Feats) -> &[f32],
        sets: [&Feats; 4],
    ) -> FidReport {
        let [real, t2i, recon, joint] = sets;
        let real = FeatureStats::new(pick(real), dim);
        let fd = |f: &Feats| frechet_distance(&real, &FeatureStats::new(pick(f), dim));
        FidReport {
            features,
            items: self.n,
            text_to_image: fd(t2i),
            reconstruction: fd(recon),
            joint: fd(joint),
        }
    }

    /// Perplexity of generated and real captions under a bigram model of
    /// the training captions.
    fn perplexity(&self, generated: &[String], real: &[String]) -> Perplexity {
        let corpus = self
            .opts
            .train_captions
            .clone()
            .unwrap_or_else(|| self.captioner.all_captions(CaptionSet::Train));
        let lm = BigramLm::train(corpus.iter().map(|c| c.as_str()).collect::<Vec<_>>(), 0.9);
        Perplexity {
            reference_model: "interpolated bigram (λ = 0.9) trained on the training captions",
            generated: lm.perplexity(generated.iter().map(|c| c.as_str())),
            real: lm.perplexity(real.iter().map(|c| c.as_str())),
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
    classifier: Option<(&Classifier, &ClassifierInfo)>,
    test: &ImageLabelSet,
    opts: &EvalOptions,
) -> EvalReport {
    let cfg = &m.checkpoint.config;
    let captioner: Captioner = m.captioner();
    let n = opts.limit.unwrap_or(test.len()).min(test.len());
    let bs = opts.batch_size.max(1);
    let image_text = m.model.index_of_kind(ModalityKind::Image).is_some()
        && m.model.index_of_kind(ModalityKind::Text).is_some();
    // The image–caption metrics need both; the loss and retrieval (between
    // every pair of modalities) apply to any model.
    let on = |metric: Metric| {
        opts.metrics.contains(&metric)
            && (image_text || matches!(metric, Metric::Loss | Metric::Retrieval))
    };
    let clf = classifier.map(|c| c.0);
    let fid_on = on(Metric::Fid) && clf.is_some();
    let source = |set| CaptionSource {
        captioner,
        set,
        stream: TEST_STREAM,
    };
    let ctx = Ctx {
        m,
        clf,
        net: opts.inception.as_ref().filter(|_| fid_on),
        opts,
        test,
        captioner,
        n,
        bs,
        coherence: on(Metric::Coherence) && clf.is_some(),
        fid_on,
        train_src: source(CaptionSet::Train),
    };
    m.seed(opts.seed);
    let (text_to_image, t2i_features) = match clf {
        Some(c) if ctx.coherence || fid_on => {
            let (coh, f) = t2i(m, c, test, n, ctx.train_src, bs, opts.draw, ctx.net);
            (Some(coh), f)
        }
        _ => (None, Feats::default()),
    };
    let text_to_image_heldout = clf
        .filter(|_| ctx.coherence && captioner.has(CaptionSet::HeldOut))
        .map(|c| {
            t2i(
                m,
                c,
                test,
                n,
                source(CaptionSet::HeldOut),
                bs,
                opts.draw,
                None,
            )
            .0
        });
    let pass = ctx.image_pass(
        ctx.coherence || on(Metric::Bleu) || on(Metric::Perplexity),
        ctx.coherence || fid_on || on(Metric::Reconstruction),
    );
    let joint_samples = if ctx.coherence || fid_on {
        opts.joint_samples
    } else {
        0
    };
    let (joint, joint_features) = ctx.joint_pass(joint_samples);

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
            ctx.train_src,
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
    let sets = [
        &pass.real_features,
        &t2i_features,
        &pass.recon_features,
        &joint_features,
    ];
    let fid = fid_on.then(|| {
        ctx.fid(
            "penultimate layer (128) of the in-repo evaluation classifier; not Inception",
            Classifier::FEATURES,
            |f| &f.clf,
            sets,
        )
    });
    let fid_inception = ctx.net.map(|_| {
        ctx.fid(
            "Inception-v3 pool3 (2048), pytorch-fid network, user-supplied weights",
            inception::FEATURES,
            |f| &f.inception,
            sets,
        )
    });
    let caption_perplexity =
        on(Metric::Perplexity).then(|| ctx.perplexity(&pass.generated, &pass.real));
    let linear_probe = on(Metric::Probe)
        .then_some(opts.probe_train.as_ref())
        .flatten()
        .map(|tr| crate::eval::probe::probe_latents(m, tr, 5000, &sub, n));
    let reconstruction = on(Metric::Reconstruction);
    let nn = n.max(1) as f64;
    let with_loglik = |v: usize| {
        if log_likelihood.is_some() {
            v.max(1)
        } else {
            0
        }
    };
    EvalReport {
        settings: EvalSettings {
            metrics: opts.metrics.iter().map(|m| m.name()).collect(),
            limit: opts.limit,
            batch_size: bs,
            joint_samples,
            retrieval_subset_size: subset_size.min(n),
            retrieval_subsets: subsets,
            probe_train_items: linear_probe.as_ref().map_or(0, |p| p.train_items),
            loglik_items: with_loglik(loglik_items),
            loglik_samples: with_loglik(loglik_samples),
        },
        linear_probe,
        caption_perplexity,
        fid,
        fid_inception,
        retrieval,
        log_likelihood,
        caption_bleu: on(Metric::Bleu).then(|| metrics::corpus_bleu(&pass.cands, &pass.refs)),
        reconstruction_psnr_db: reconstruction.then_some(pass.psnr_sum / nn),
        reconstruction_ssim: reconstruction.then_some(pass.ssim_sum / nn),
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
        text_to_image: text_to_image.filter(|_| ctx.coherence),
        text_to_image_heldout,
        image_to_text: ctx.coherence.then(|| pass.i2t.finish()),
        joint: ctx.coherence.then(|| joint.finish()),
        image_reconstruction: ctx.coherence.then(|| pass.recon.finish()),
        test_loss,
        coherence_matrix: opts.metrics.contains(&Metric::Coherence).then(|| {
            // Its own stream, after every other group's draws.
            m.seed(opts.seed ^ 0x4D41_5452_4958);
            let clf = classifier.map(|(c, info)| (c, info.reads.as_slice()));
            // Its joint coherence draws its own prior samples whatever the
            // image–caption groups measure.
            coherence_matrix(m, clf, test, n, ctx.train_src, bs, opts.joint_samples)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
