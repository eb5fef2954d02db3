//! What an evaluation measured, its settings, and the table `mmvae eval`
//! prints.

use serde::Serialize;
use std::collections::BTreeMap;

use super::coherence::Coherence;
use super::latent::{LatentUse, ModalityLatentUse};
use super::likelihood::LogLikelihood;
use super::matrix::CoherenceMatrix;
use super::retrieval::RetrievalReport;

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
    /// Each modality's use of the shared latent and of its private one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latent_usage: Option<BTreeMap<String, ModalityLatentUse>>,
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

/// `v` as a percentage, 6 wide with 2 decimals.
fn pct(v: f64) -> String {
    format!("{:6.2}%", 100.0 * v)
}

/// One coherence row of the table: strict, and with several attributes
/// (`multi`) features, letters and F1; then the weakest value.
fn coherence_row(name: &str, c: &Coherence, multi: bool) -> String {
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
}

impl EvalReport {
    /// The report as the aligned text table `mmvae eval` prints.
    pub fn table(&self) -> String {
        let mut s = self.coherence_rows();
        self.quality_rows(&mut s);
        if let Some(r) = &self.retrieval {
            retrieval_rows(r, &mut s);
        }
        if let Some(u) = &self.latent_usage {
            latent_rows(u, &mut s);
        }
        if let Some(c) = &self.coherence_matrix {
            s.push_str("conditional coherence (each modality from each subset of the others):\n");
            s.push_str(&c.table());
        }
        s
    }

    /// The heading line and the coherence groups' rows.
    fn coherence_rows(&self) -> String {
        let multi = [&self.text_to_image, &self.image_to_text]
            .into_iter()
            .flatten()
            .any(|c| c.per_slot.len() > 1);
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
                s.push_str(&coherence_row(name, c, multi));
            }
        }
        s
    }

    /// The classifier's accuracy, the loss, BLEU, perplexity, image quality,
    /// FID, probes and log-likelihoods, each where measured.
    fn quality_rows(&self, s: &mut String) {
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
    }
}

/// `KL 12.34 nats, 5/8 active` of one latent.
fn latent_use(u: &LatentUse) -> String {
    format!("KL {:.2} nats, {}/{} active", u.kl, u.active, u.dims)
}

/// One row per modality: its use of the shared latent, then of its
/// private one.
fn latent_rows(usage: &BTreeMap<String, ModalityLatentUse>, s: &mut String) {
    for (name, u) in usage {
        let private = u
            .private
            .as_ref()
            .map_or(String::new(), |p| format!("  private: {}", latent_use(p)));
        s.push_str(&format!(
            "  {:<35}shared: {}{private}\n",
            format!("latent use of {name}"),
            latent_use(&u.shared)
        ));
    }
}

/// The retrieval rows: each direction's ranks, then the subsets.
fn retrieval_rows(r: &RetrievalReport, s: &mut String) {
    for p in &r.pairs {
        let name = format!("retrieval {} -> {}", p.query, p.target);
        let class = p
            .class_at_1
            .map_or(String::new(), |c| format!("  class@1 {}", pct(c)));
        let d = &p.ranks;
        s.push_str(&format!(
            "  {name:<35}MedR {:.1}  R@1 {}  R@5 {}  R@10 {}{class}\n",
            d.median_rank,
            pct(d.recall_at_1),
            pct(d.recall_at_5),
            pct(d.recall_at_10),
        ));
    }
    s.push_str(&format!(
        "  ({} subset(s) of {} items)\n",
        r.subsets, r.subset_size
    ));
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
