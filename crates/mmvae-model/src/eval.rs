//! Coherence metrics on the test split, scored by the in-repo classifier.

use burn::prelude::*;
use burn::tensor::Distribution;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::ImageLabelSet;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::batch::{CaptionSource, HostBatch};
use crate::classifier::{Classifier, ClassifierInfo};
use crate::data::TEST_STREAM;
use crate::infer::{Draw, Loaded};
use crate::mvae::REPORT_NAMES;
use crate::train::evaluate_loss;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Score only the first N test items.
    pub limit: Option<usize>,
    pub seed: u64,
    pub batch_size: usize,
    /// Prior samples for joint coherence.
    pub joint_samples: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            limit: None,
            seed: 0,
            batch_size: 500,
            joint_samples: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub dataset: String,
    pub checkpoint: String,
    pub test_items: usize,
    pub seed: u64,
    pub latent_draw: &'static str,
    pub caption_decoding: &'static str,
    pub classifier_test_accuracy: f64,
    /// Classifier accuracy on images generated from training-template captions.
    pub text_to_image: f64,
    /// The same, with captions from held-out templates never seen in training.
    pub text_to_image_heldout: f64,
    /// Fraction of generated captions naming the image's class.
    pub image_to_text: f64,
    /// Prior samples whose image class equals the class named by their caption.
    pub joint: f64,
    /// Mean negative ELBO terms on the test split (training templates).
    pub test_loss: BTreeMap<String, f64>,
}

impl EvalReport {
    pub fn table(&self) -> String {
        let pct = |v: f64| format!("{:6.2}%", 100.0 * v);
        let mut s = String::new();
        s.push_str(&format!(
            "dataset {}  test items {}  seed {}\n",
            self.dataset, self.test_items, self.seed
        ));
        s.push_str(&format!(
            "  text -> image coherence            {}\n",
            pct(self.text_to_image)
        ));
        s.push_str(&format!(
            "  text -> image (held-out templates) {}\n",
            pct(self.text_to_image_heldout)
        ));
        s.push_str(&format!(
            "  image -> text coherence            {}\n",
            pct(self.image_to_text)
        ));
        s.push_str(&format!(
            "  joint coherence (prior samples)    {}\n",
            pct(self.joint)
        ));
        s.push_str(&format!(
            "  classifier test accuracy           {}\n",
            pct(self.classifier_test_accuracy)
        ));
        s.push_str(&format!(
            "  test negative ELBO objective       {:.2}\n",
            self.test_loss.get("loss").copied().unwrap_or(f64::NAN)
        ));
        s
    }
}

fn t2i_accuracy(
    m: &Loaded,
    clf: &Classifier,
    test: &ImageLabelSet,
    n: usize,
    source: CaptionSource,
    bs: usize,
) -> f64 {
    let max_len = m.model.max_len;
    let idx: Vec<usize> = (0..n).collect();
    let mut right = 0;
    for chunk in idx.chunks(bs) {
        let hb = HostBatch::gather(test, chunk, source, &m.checkpoint.vocab, max_len);
        let b = hb.to_device(&m.device);
        let probs = m.text_to_image_probs(b.tokens, b.last, Draw::Sample);
        right += clf
            .predict(probs)
            .iter()
            .zip(&hb.labels)
            .filter(|(p, l)| p == l)
            .count();
    }
    right as f64 / n.max(1) as f64
}

/// Score a checkpoint on the test split.
pub fn evaluate(
    m: &Loaded,
    clf: &Classifier,
    clf_info: &ClassifierInfo,
    test: &ImageLabelSet,
    opts: &EvalOptions,
) -> EvalReport {
    let cfg = &m.checkpoint.config;
    let captioner: Captioner = m.captioner();
    let n = opts.limit.unwrap_or(test.len()).min(test.len());
    let bs = opts.batch_size.max(1);
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
    let t2i = t2i_accuracy(m, clf, test, n, train_src, bs);
    let t2i_held = t2i_accuracy(m, clf, test, n, held_src, bs);

    let idx: Vec<usize> = (0..n).collect();
    let mut right = 0;
    for chunk in idx.chunks(bs) {
        let hb = HostBatch::gather(test, chunk, train_src, &m.checkpoint.vocab, m.model.max_len);
        let caps = m.caption_tensor(hb.to_device(&m.device).images, Draw::Sample, None);
        right += caps
            .iter()
            .zip(&hb.labels)
            .filter(|(c, &l)| captioner.class_of(c) == Some(l))
            .count();
    }
    let i2t = right as f64 / n.max(1) as f64;

    let mut joint_right = 0;
    let mut done = 0;
    while done < opts.joint_samples {
        let k = bs.min(opts.joint_samples - done);
        let z = Tensor::<2>::random(
            [k, m.model.latent],
            Distribution::Normal(0.0, 1.0),
            &m.device,
        );
        let caps = m.model.decode_text(z.clone(), None);
        let preds = clf.predict(m.model.decode_image(z));
        for (c, p) in caps.iter().zip(preds) {
            if captioner.class_of(&m.checkpoint.vocab.decode(c)) == Some(p) {
                joint_right += 1;
            }
        }
        done += k;
    }

    let mut sub = test.clone();
    sub.truncate(n);
    let loss = evaluate_loss(
        &m.model,
        cfg,
        &sub,
        train_src,
        &m.checkpoint.vocab,
        &m.device,
    );
    EvalReport {
        dataset: cfg.data.dataset.to_string(),
        checkpoint: m.checkpoint.dir.display().to_string(),
        test_items: n,
        seed: opts.seed,
        latent_draw: "z ~ q(z|input) (one sample per item)",
        caption_decoding: "greedy",
        classifier_test_accuracy: clf_info.test_accuracy,
        text_to_image: t2i,
        text_to_image_heldout: t2i_held,
        image_to_text: i2t,
        joint: joint_right as f64 / opts.joint_samples.max(1) as f64,
        test_loss: REPORT_NAMES
            .iter()
            .map(|s| s.to_string())
            .zip(loss)
            .collect(),
    }
}
