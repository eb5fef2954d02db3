//! The passes of an evaluation over the test split and the prior, in the
//! order their seeded draws are taken.

use burn::prelude::*;
use burn::tensor::Distribution;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::lm::BigramLm;
use mmvae_data::ImageLabelSet;
use std::collections::BTreeMap;

use super::classifier::Classifier;
use super::coherence::{some, Coherence, Tally};
use super::fid::{frechet_distance, FeatureStats};
use super::inception::InceptionV3;
use super::likelihood::{marginal_log_likelihood, LogLikelihood};
use super::probe::ProbeReport;
use super::report::{EvalSettings, FidReport, Perplexity};
use super::retrieval::{retrieval, RetrievalReport};
use super::text_to_image::{inception_features, t2i, Feats};
use super::{metrics, EvalOptions, Metric};
use crate::host::floats;
use crate::infer::Loaded;
use crate::io::batch::{CaptionSource, HostBatch};
use crate::io::data::TEST_STREAM;
use crate::modality::ModalityKind;
use crate::train::evaluate_loss;

/// The groups that draw from the evaluation's seeded stream, in the order
/// they draw.
pub(super) struct Drawn {
    /// Text → image coherence (training phrasings) and the generated
    /// images' features.
    pub(super) text_to_image: Option<Coherence>,
    pub(super) t2i_features: Feats,
    /// Text → image coherence from held-out phrasings.
    pub(super) text_to_image_heldout: Option<Coherence>,
    pub(super) pass: ImagePass,
    /// Prior samples' image against caption, and the images' features.
    pub(super) joint: Tally,
    pub(super) joint_features: Feats,
    joint_samples: usize,
}

/// The groups measured on the scored items of the test split itself.
pub(super) struct SplitGroups {
    pub(super) test_loss: Option<BTreeMap<String, f64>>,
    pub(super) retrieval: Option<RetrievalReport>,
    pub(super) log_likelihood: Option<LogLikelihood>,
}

/// Retrieval ranks among subsets of this many items, this many subsets.
const RETRIEVAL: (usize, usize) = (1000, 10);

/// What every step of an evaluation reads.
pub(super) struct Ctx<'a> {
    m: &'a Loaded,
    clf: Option<&'a Classifier>,
    pub(super) net: Option<&'a InceptionV3>,
    opts: &'a EvalOptions,
    test: &'a ImageLabelSet,
    captioner: Captioner,
    /// Test items scored, and their batch size.
    pub(super) n: usize,
    pub(super) bs: usize,
    /// The image–caption coherence and FID groups are on (they need the
    /// classifier).
    pub(super) coherence: bool,
    pub(super) fid_on: bool,
    pub(super) train_src: CaptionSource,
    /// The model has an image and a caption modality.
    image_text: bool,
}

/// What the pass over the test images collects.
pub(super) struct ImagePass {
    pub(super) i2t: Tally,
    pub(super) recon: Tally,
    /// Generated captions and their references, in tokens, for BLEU.
    pub(super) cands: Vec<Vec<String>>,
    pub(super) refs: Vec<Vec<Vec<String>>>,
    /// Generated and real captions, for perplexity.
    pub(super) generated: Vec<String>,
    pub(super) real: Vec<String>,
    pub(super) psnr_sum: f64,
    pub(super) ssim_sum: f64,
    pub(super) real_features: Feats,
    pub(super) recon_features: Feats,
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
            if captions_needed {
                self.caption_batch(&mut p, &hb, images.clone(), &refs_of);
            }
            if let Some(clf) = self.clf.filter(|_| self.fid_on) {
                p.real_features
                    .add(clf.features(images.clone()), self.net, m, images.clone());
            }
            if recon_needed {
                self.reconstruct_batch(&mut p, &hb, images);
            }
        }
        p
    }

    /// Captions the batch's images: image → text coherence, and the
    /// candidates and references of BLEU and perplexity.
    fn caption_batch(
        &self,
        p: &mut ImagePass,
        hb: &HostBatch,
        images: Tensor<2>,
        refs_of: &[Vec<Vec<String>>],
    ) {
        let (m, kind, captioner) = (self.m, self.test.kind, &self.captioner);
        let level = m.checkpoint.vocab.level();
        let words = |s: &str| level.tokens(s);
        let caps = match self.opts.beam {
            Some(w) => m.caption_tensor_beam(images, self.opts.draw, w),
            None => m.caption_tensor(images, self.opts.draw, None),
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
    }

    /// Reconstructs the batch's images: their PSNR and SSIM, the
    /// classifier's reading of them and their features.
    fn reconstruct_batch(&self, p: &mut ImagePass, hb: &HostBatch, images: Tensor<2>) {
        let (m, kind) = (self.m, self.test.kind);
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
        let got = floats(probs);
        let (side, colours) = (m.side(), m.colours());
        let px = colours * side * side;
        let pixels = hb
            .images()
            .expect("an image pass reads batches with images");
        for (k, g) in got.chunks(px).enumerate() {
            let want = &pixels[k * px..(k + 1) * px];
            p.psnr_sum += metrics::psnr(want, g).min(100.0);
            p.ssim_sum += metrics::ssim(want, g, colours, side);
        }
        for (pred, &l) in recon_preds.into_iter().zip(&hb.labels) {
            p.recon.add(&kind.attributes(l), &some(pred));
        }
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
            features.clf.extend(floats(f));
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

    /// The Fréchet distances: in the evaluation classifier's features when
    /// FID is on, and in Inception's when its weights were given.
    pub(super) fn fids(&self, drawn: &Drawn) -> (Option<FidReport>, Option<FidReport>) {
        let sets = [
            &drawn.pass.real_features,
            &drawn.t2i_features,
            &drawn.pass.recon_features,
            &drawn.joint_features,
        ];
        let fid = self.fid_on.then(|| {
            self.fid(
                "penultimate layer (128) of the in-repo evaluation classifier; not Inception",
                Classifier::FEATURES,
                |f| &f.clf,
                sets,
            )
        });
        let fid_inception = self.net.map(|_| {
            self.fid(
                "Inception-v3 pool3 (2048), pytorch-fid network, user-supplied weights",
                super::inception::FEATURES,
                |f| &f.inception,
                sets,
            )
        });
        (fid, fid_inception)
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
    pub(super) fn perplexity(&self, generated: &[String], real: &[String]) -> Perplexity {
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

impl<'a> Ctx<'a> {
    pub(super) fn new(
        m: &'a Loaded,
        clf: Option<&'a Classifier>,
        test: &'a ImageLabelSet,
        opts: &'a EvalOptions,
    ) -> Self {
        let captioner: Captioner = m.captioner();
        let image_text = m.model.index_of_kind(ModalityKind::Image).is_some()
            && m.model.index_of_kind(ModalityKind::Text).is_some();
        let mut ctx = Ctx {
            m,
            clf,
            net: None,
            opts,
            test,
            captioner,
            n: opts.limit.unwrap_or(test.len()).min(test.len()),
            bs: opts.batch_size.max(1),
            coherence: false,
            fid_on: false,
            train_src: CaptionSource {
                captioner,
                set: CaptionSet::Train,
                stream: TEST_STREAM,
            },
            image_text,
        };
        ctx.fid_on = ctx.on(Metric::Fid) && clf.is_some();
        ctx.coherence = ctx.on(Metric::Coherence) && clf.is_some();
        ctx.net = opts.inception.as_ref().filter(|_| ctx.fid_on);
        ctx
    }

    /// Whether `metric` is selected and applies: the image–caption metrics
    /// need both; the loss and retrieval (between every pair of
    /// modalities) apply to any model.
    pub(super) fn on(&self, metric: Metric) -> bool {
        self.opts.metrics.contains(&metric)
            && (self.image_text
                || matches!(metric, Metric::Loss | Metric::Retrieval | Metric::Latent))
    }

    /// Whether the coherence matrix is measured: with coherence, and with
    /// FID on a model that is not an image–caption pair (whose images'
    /// distances come with the matrix).
    pub(super) fn matrix_on(&self) -> bool {
        let on = |metric| self.opts.metrics.contains(&metric);
        on(Metric::Coherence) || (on(Metric::Fid) && !self.image_text)
    }

    /// Seeds the stream, then takes the text → image, image and prior
    /// passes in turn.
    pub(super) fn drawn(&self) -> Drawn {
        let (m, opts) = (self.m, self.opts);
        m.seed(opts.seed);
        let (text_to_image, t2i_features) = match self.clf {
            Some(c) if self.coherence || self.fid_on => {
                let (coh, f) = t2i(
                    m,
                    c,
                    self.test,
                    self.n,
                    self.train_src,
                    self.bs,
                    opts.draw,
                    self.net,
                );
                (Some(coh), f)
            }
            _ => (None, Feats::default()),
        };
        let held_out = CaptionSource {
            set: CaptionSet::HeldOut,
            ..self.train_src
        };
        let text_to_image_heldout = self
            .clf
            .filter(|_| self.coherence && self.captioner.has(CaptionSet::HeldOut))
            .map(|c| t2i(m, c, self.test, self.n, held_out, self.bs, opts.draw, None).0);
        let pass = self.image_pass(
            self.coherence || self.on(Metric::Bleu) || self.on(Metric::Perplexity),
            self.coherence || self.fid_on || self.on(Metric::Reconstruction),
        );
        let joint_samples = if self.coherence || self.fid_on {
            opts.joint_samples
        } else {
            0
        };
        let (joint, joint_features) = self.joint_pass(joint_samples);
        Drawn {
            text_to_image,
            t2i_features,
            text_to_image_heldout,
            pass,
            joint,
            joint_features,
            joint_samples,
        }
    }

    /// The test loss, retrieval and log-likelihoods of the items `sub`, in
    /// that order (the log-likelihoods reseed the stream).
    pub(super) fn split_groups(&self, sub: &ImageLabelSet) -> SplitGroups {
        let (m, opts) = (self.m, self.opts);
        let cfg = &m.checkpoint.config;
        let test_loss = self.on(Metric::Loss).then(|| {
            // The objective of the last epoch (the final phase's weights).
            let last = cfg.optim.epochs.saturating_sub(1);
            evaluate_loss(
                &m.model,
                cfg,
                &cfg.loss_at(last),
                &cfg.weights_at(last),
                sub,
                self.train_src,
                &m.checkpoint.vocab,
                &m.device,
            )
        });
        let retrieval = self
            .on(Metric::Retrieval)
            .then(|| retrieval(m, sub, RETRIEVAL.0, RETRIEVAL.1).ok())
            .flatten();
        let (items, samples) = opts.loglik;
        let log_likelihood = self.on(Metric::Loglik).then(|| {
            m.seed(opts.seed);
            marginal_log_likelihood(m, sub, items.max(1), samples.max(1))
        });
        SplitGroups {
            test_loss,
            retrieval,
            log_likelihood,
        }
    }

    /// The settings the evaluation ran with.
    pub(super) fn settings(
        &self,
        drawn: &Drawn,
        split: &SplitGroups,
        probe: Option<&ProbeReport>,
    ) -> EvalSettings {
        let (items, samples) = self.opts.loglik;
        let with_loglik = |v: usize| {
            if split.log_likelihood.is_some() {
                v.max(1)
            } else {
                0
            }
        };
        EvalSettings {
            metrics: self.opts.metrics.iter().map(|m| m.name()).collect(),
            limit: self.opts.limit,
            batch_size: self.bs,
            joint_samples: drawn.joint_samples,
            retrieval_subset_size: RETRIEVAL.0.min(self.n),
            retrieval_subsets: RETRIEVAL.1,
            probe_train_items: probe.map_or(0, |p| p.train_items),
            loglik_items: with_loglik(items),
            loglik_samples: with_loglik(samples),
        }
    }
}
