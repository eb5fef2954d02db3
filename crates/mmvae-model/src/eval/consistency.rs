//! Consistency checking: does this caption match this image?
//!
//! Three scores of an image–caption pair, each "higher = more likely a
//! match":
//! - [`Score::Overlap`]: log ∫ q(z|x) q(z|y) dz, the overlap integral of the
//!   two unimodal posteriors (on MNIST its AUROC is 0.95 where the symmetric
//!   KL's, dominated by the variance-ratio terms, was 0.78);
//! - [`Score::TextRatio`]: log p(y | z = mean of q(z|x)) − log p(y), the
//!   caption's likelihood given the image against its prior likelihood
//!   log p(y) ≈ log mean_k p(y | z_k), z_k ~ N(0, I);
//! - [`Score::ImageRatio`]: the image-side counterpart,
//!   log p(x | z = mean of q(z|y)) − log p(x).
//!
//! The decision threshold of each score is fitted on the validation split
//! only (maximising F1 against random mismatches) and saved beside the
//! weights as `consistency.json`; the test split is then only scored.

use burn::prelude::*;
use burn::tensor::activation::softplus;
use burn::tensor::Distribution;
use mmvae_data::captions::{splitmix64, CaptionSet, Captioner};
use mmvae_data::{fsutil, DatasetKind, ImageLabelSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use crate::eval::metrics::{self, Binary};
use crate::host::{floats, index_tensor};
use crate::infer::Loaded;
use crate::io::batch::{CaptionSource, HostBatch};
use crate::mvae::Mvae;
use crate::nn::gaussian::Gaussian;

/// A way to score an image–caption pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Score {
    Overlap,
    TextRatio,
    ImageRatio,
}

impl Score {
    pub const ALL: [Score; 3] = [Score::Overlap, Score::TextRatio, Score::ImageRatio];

    pub fn name(self) -> &'static str {
        match self {
            Score::Overlap => "overlap",
            Score::TextRatio => "text-ratio",
            Score::ImageRatio => "image-ratio",
        }
    }

    pub fn parse(s: &str) -> Result<Score> {
        Score::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "unknown score `{s}` (expected overlap, text-ratio or image-ratio)"
                ))
            })
    }
}

/// Settings of the scores.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ScoreOptions {
    /// Prior samples in the estimates of log p(x) and log p(y).
    pub prior_samples: usize,
    /// Seed of those samples (the same draws serve every pair).
    pub seed: u64,
    pub batch_size: usize,
}

impl ScoreOptions {
    /// Refuse settings outside 1..=[`MAX_SCORE_SETTING`] (a calibration
    /// file read from disk), naming the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        for (v, field) in [
            (self.prior_samples, "options.prior_samples"),
            (self.batch_size, "options.batch_size"),
        ] {
            if !(1..=MAX_SCORE_SETTING).contains(&v) {
                return Err(format!("`{field}` is {v}, outside 1..={MAX_SCORE_SETTING}"));
            }
        }
        Ok(())
    }
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            prior_samples: 64,
            seed: 0,
            batch_size: 256,
        }
    }
}

/// The three scores of each pair, indexed like [`Score::ALL`].
pub type PairScores = [f32; 3];

/// log mean_k exp(v[k, i]) over the rows: `[k, n]` → `[n]`.
fn log_mean_exp_rows(v: Tensor<2>) -> Tensor<1> {
    let [k, _] = v.dims();
    let s = crate::mvae::log_sum_exp_dim(v, 0); // [1, n]
    (s - (k as f32).ln()).squeeze_dim::<1>(0)
}

/// Score pairs `(image i, caption j)`.
///
/// # Shapes
/// `images`: `[n_images, pixels]` in `[0, 1]`; `captions`: any number.
pub fn score_pairs(
    m: &Loaded,
    images: Tensor<2>,
    captions: &[String],
    pairs: &[(usize, usize)],
    opts: ScoreOptions,
) -> Result<Vec<PairScores>> {
    let model = &m.model;
    let bs = opts.batch_size.max(1);
    let [n_img, _] = images.dims();
    if let Some(&(i, j)) = pairs
        .iter()
        .find(|&&(i, j)| i >= n_img || j >= captions.len())
    {
        return Err(ModelError::Invalid(format!(
            "pair ({i}, {j}) is out of range ({n_img} images, {} captions)",
            captions.len()
        )));
    }
    m.seed(opts.seed);
    let k = opts.prior_samples.max(1);
    // Prior draws shared by every estimate (common random numbers).
    let z_prior = Tensor::<2>::random(
        [k, model.latent + model.private()],
        Distribution::Normal(0.0, 1.0),
        &m.device,
    );
    let z_prior_shared = model.shared_part(z_prior.clone()); // [k, latent]
    let images_side = image_side(model, images.clone(), z_prior, bs);
    let (tokens, last) = m.text_batch(captions, false)?;
    let captions_side = caption_side(model, tokens.clone(), last, z_prior_shared, bs);
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(bs) {
        let (ii, jj) = (
            index_tensor(chunk.iter().map(|p| p.0), &m.device),
            index_tensor(chunk.iter().map(|p| p.1), &m.device),
        );
        let a = images_side.q.select_rows(ii.clone());
        let b = captions_side.q.select_rows(jj.clone());
        let overlap = floats(a.log_overlap(&b));
        let text_ll = floats(
            model
                .text_expert()
                .decoder
                .nll(a.mu.clone(), tokens.clone().select(0, jj))
                .neg(),
        );
        let x = images.clone().select(0, ii);
        let logits = model
            .image_expert()
            .decoder
            .forward(model.with_private(b.mu.clone(), false));
        let img_ll = floats(
            (x * logits.clone() - softplus(logits, 1.0))
                .sum_dim(1)
                .squeeze_dim::<1>(1),
        );
        for (r, &(i, j)) in chunk.iter().enumerate() {
            out.push([
                overlap[r],
                text_ll[r] - captions_side.log_p[j],
                img_ll[r] - images_side.log_p[i],
            ]);
        }
    }
    Ok(out)
}

/// One modality's side of the pairs: the posterior of each of its items
/// and its marginal log-likelihood log p(·) ≈ log mean_k p(· | z_k).
struct Side {
    q: Gaussian,
    log_p: Vec<f32>,
}

/// The images' posteriors and log p(x) under the `k` prior draws
/// `z_prior`. With logits l, −log p(x|l) = Σ softplus(l) − x·l, so all
/// images meet all k decodes in one matrix product.
///
/// # Shapes
/// `images`: `[n, pixels]`, `z_prior`: `[k, latent + private]`
fn image_side(model: &Mvae, images: Tensor<2>, z_prior: Tensor<2>, bs: usize) -> Side {
    let [n_img, _] = images.dims();
    let [k, _] = z_prior.dims();
    let prior_logits = model.image_expert().decoder.forward(z_prior); // [k, pixels]
    let sp = softplus(prior_logits.clone(), 1.0)
        .sum_dim(1)
        .reshape([1, k]); // [1, k]
    let mut q: Vec<Gaussian> = Vec::new();
    let mut log_p: Vec<f32> = Vec::with_capacity(n_img);
    let mut start = 0;
    while start < n_img {
        let len = bs.min(n_img - start);
        let x = images.clone().narrow(0, start, len);
        q.push(model.encode_image(x.clone()));
        let ll = x.matmul(prior_logits.clone().transpose()) - sp.clone(); // [len, k]
        log_p.extend(floats(log_mean_exp_rows(ll.transpose())));
        start += len;
    }
    Side {
        q: Gaussian::cat_rows(&q),
        log_p,
    }
}

/// The captions' posteriors and log p(y) under the `k` prior draws
/// `z_shared` (the shared part).
///
/// # Shapes
/// `tokens`: `[n, steps]`, `last`: `[n]`, `z_shared`: `[k, latent]`
fn caption_side(
    model: &Mvae,
    tokens: Tensor<2, Int>,
    last: Tensor<1, Int>,
    z_shared: Tensor<2>,
    bs: usize,
) -> Side {
    let [n_cap, t] = tokens.dims();
    let [k, _] = z_shared.dims();
    let mut q: Vec<Gaussian> = Vec::new();
    let mut log_p: Vec<f32> = Vec::with_capacity(n_cap);
    let mut start = 0;
    while start < n_cap {
        let len = bs.min(n_cap - start);
        let tok = tokens.clone().narrow(0, start, len);
        q.push(model.encode_text(tok.clone(), last.clone().narrow(0, start, len)));
        // [k·len] rows: draw-major, caption-minor.
        let z = z_shared
            .clone()
            .unsqueeze_dim::<3>(1)
            .repeat_dim(1, len)
            .reshape([k * len, model.latent]);
        let toks = tok
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, k)
            .reshape([k * len, t]);
        let ll = model
            .text_expert()
            .decoder
            .nll(z, toks)
            .neg()
            .reshape([k, len]);
        log_p.extend(floats(log_mean_exp_rows(ll)));
        start += len;
    }
    Side {
        q: Gaussian::cat_rows(&q),
        log_p,
    }
}

/// Matching pairs and two kinds of mismatches built from a labelled split.
pub struct PairSuite {
    /// `[n, pixels]` images in `[0, 1]`.
    pub images: Tensor<2>,
    /// The first `n` are the items' own captions, the next `n` their hard
    /// negatives (one attribute or word changed).
    pub captions: Vec<String>,
    pub positives: Vec<(usize, usize)>,
    /// Image i with the caption of a random item of another class.
    pub random: Vec<(usize, usize)>,
    /// Image i with its caption with exactly one attribute changed (datasets
    /// with one slot: the class word changed, the phrasing kept).
    pub hard: Vec<(usize, usize)>,
}

/// The class whose attributes are `attrs`.
fn class_with(kind: DatasetKind, attrs: &[usize]) -> Option<usize> {
    (0..kind.num_classes()).find(|&c| kind.attributes(c) == attrs)
}

/// Item `i`'s random mismatch: another item of `labels` whose class
/// differs, drawn from `seed`; with the generator's state after the draw,
/// for any further draws of that item.
pub(crate) fn random_mismatch(labels: &[usize], i: usize, seed: u64) -> Result<(usize, u64)> {
    let n = labels.len();
    let mut h = splitmix64(seed ^ splitmix64(i as u64 ^ 0xC0FFEE));
    let mut j = (h % n as u64) as usize;
    let mut tries = 0;
    while labels[j] == labels[i] && tries < 4 * n {
        h = splitmix64(h);
        j = (h % n as u64) as usize;
        tries += 1;
    }
    if labels[j] == labels[i] {
        return Err(ModelError::Invalid(
            "every item has the same class: no mismatched pairs to score".into(),
        ));
    }
    Ok((j, h))
}

/// Build the pairs of `n` items of `data` (the first `n`), deterministically
/// from `seed`. Captions come from the training phrasings of `stream`.
pub fn pair_suite(
    m: &Loaded,
    data: &ImageLabelSet,
    n: usize,
    stream: u64,
    seed: u64,
) -> Result<PairSuite> {
    let kind = m.checkpoint.config.data.dataset;
    let n = n.min(data.len());
    if n < 2 {
        return Err(ModelError::Invalid(format!(
            "consistency checking needs at least 2 items, the split has {n}"
        )));
    }
    let captioner = Captioner::new(kind, m.checkpoint.config.data.caption_seed);
    let src = CaptionSource {
        captioner,
        set: CaptionSet::Train,
        stream,
    };
    let idx: Vec<usize> = (0..n).collect();
    let hb = HostBatch::gather(&m.model.layout(), data, &idx, src, &m.checkpoint.vocab);
    let images = hb.to_device(&m.device).images();
    let slots = kind.slots();
    let mut captions = hb.captions.clone();
    let mut random = Vec::with_capacity(n);
    let mut hard = Vec::with_capacity(n);
    for i in 0..n {
        let label = hb.labels[i];
        let (j, mut h) = random_mismatch(&hb.labels, i, seed)?;
        random.push((i, j));
        // Hard mismatch: one slot changed to another value, same phrasing.
        h = splitmix64(h);
        let mut attrs = kind.attributes(label);
        let s = (h % slots.len() as u64) as usize;
        h = splitmix64(h);
        let values = slots[s].1;
        let shift = 1 + (h % (values as u64 - 1).max(1)) as usize;
        attrs[s] = (attrs[s] + shift) % values;
        let other = class_with(kind, &attrs)
            .ok_or_else(|| ModelError::Invalid(format!("no class has attributes {attrs:?}")))?;
        captions.push(src.captioner.caption(src.set, stream, i, other));
        hard.push((i, n + i));
    }
    Ok(PairSuite {
        images,
        captions,
        positives: (0..n).map(|i| (i, i)).collect(),
        random,
        hard,
    })
}

/// One score's results against both kinds of mismatch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoreResult {
    pub random: Binary,
    pub hard: Binary,
}

/// Calibration and measurement of the consistency scores.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    pub dataset: String,
    /// The score `mmvae check` decides with: the best mean validation AUROC
    /// over both kinds of mismatch.
    pub default_score: Score,
    /// Per score: "match" when score ≥ threshold, fitted on validation
    /// positives against random mismatches (maximum F1).
    pub thresholds: BTreeMap<Score, f32>,
    pub options: ScoreOptions,
    pub val_items: usize,
    pub val: BTreeMap<Score, ScoreResult>,
    /// Test-split results at the validation thresholds (absent if not run).
    #[serde(default)]
    pub test_items: usize,
    #[serde(default)]
    pub test: BTreeMap<Score, ScoreResult>,
}

/// The longest `consistency.json` read: 1 MiB (one is a few KB).
pub const MAX_CALIBRATION_BYTES: u64 = 1 << 20;

/// The most prior samples, and the largest batch, a calibration may ask
/// for.
pub const MAX_SCORE_SETTING: usize = 1 << 16;

/// The file a calibration is saved to inside a checkpoint folder.
pub fn calibration_path(checkpoint: &Path) -> PathBuf {
    checkpoint.join("consistency.json")
}

/// One score's values on (positives, random mismatches, hard mismatches).
type SuiteScores = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Score a suite: per score, (positives, random, hard) score lists.
fn suite_scores(m: &Loaded, s: &PairSuite, opts: ScoreOptions) -> Result<Vec<SuiteScores>> {
    let all: Vec<(usize, usize)> = s
        .positives
        .iter()
        .chain(&s.random)
        .chain(&s.hard)
        .copied()
        .collect();
    let sc = score_pairs(m, s.images.clone(), &s.captions, &all, opts)?;
    let n = s.positives.len();
    Ok((0..Score::ALL.len())
        .map(|k| {
            let col: Vec<f32> = sc.iter().map(|r| r[k]).collect();
            (
                col[..n].to_vec(),
                col[n..2 * n].to_vec(),
                col[2 * n..].to_vec(),
            )
        })
        .collect())
}

/// Fit thresholds on `val` (first `val_n` items) and measure on `test`
/// (first `test_n` items).
pub fn calibrate(
    m: &Loaded,
    val: &ImageLabelSet,
    val_n: usize,
    test: &ImageLabelSet,
    test_n: usize,
    opts: ScoreOptions,
) -> Result<Calibration> {
    if !val.kind.is_labelled() {
        return Err(crate::error::ModelError::Config(format!(
            "calibration builds mismatched pairs from class labels; the {} dataset has none",
            val.kind
        )));
    }
    let vs = pair_suite(m, val, val_n, crate::io::data::VAL_STREAM, opts.seed)?;
    let v = suite_scores(m, &vs, opts)?;
    let mut thresholds = BTreeMap::new();
    let mut val_res = BTreeMap::new();
    for (k, score) in Score::ALL.into_iter().enumerate() {
        let (pos, rnd, hard) = &v[k];
        let t = metrics::best_f1_threshold(pos, rnd);
        thresholds.insert(score, t);
        val_res.insert(
            score,
            ScoreResult {
                random: metrics::binary(pos, rnd, t),
                hard: metrics::binary(pos, hard, t),
            },
        );
    }
    let default_score = *val_res
        .iter()
        .max_by(|a, b| {
            let f = |r: &ScoreResult| r.random.auroc + r.hard.auroc;
            f(a.1).total_cmp(&f(b.1))
        })
        .map(|(s, _)| s)
        .unwrap_or(&Score::Overlap);
    let ts = pair_suite(m, test, test_n, crate::io::data::TEST_STREAM, opts.seed)?;
    let tv = suite_scores(m, &ts, opts)?;
    let mut test_res = BTreeMap::new();
    for (k, score) in Score::ALL.into_iter().enumerate() {
        let (pos, rnd, hard) = &tv[k];
        let t = thresholds[&score];
        test_res.insert(
            score,
            ScoreResult {
                random: metrics::binary(pos, rnd, t),
                hard: metrics::binary(pos, hard, t),
            },
        );
    }
    Ok(Calibration {
        dataset: m.checkpoint.config.data.dataset.to_string(),
        default_score,
        thresholds,
        options: opts,
        val_items: vs.positives.len(),
        val: val_res,
        test_items: ts.positives.len(),
        test: test_res,
    })
}

impl Calibration {
    pub fn save(&self, checkpoint: &Path) -> Result<PathBuf> {
        let p = calibration_path(checkpoint);
        let json = serde_json::to_string_pretty(self).expect("calibration serialises");
        fsutil::write_atomic(&p, json.as_bytes())?;
        Ok(p)
    }

    /// The calibration saved with a checkpoint; refuses one fitted for
    /// another dataset.
    pub fn load(m: &Loaded) -> Result<Calibration> {
        let p = calibration_path(&m.checkpoint.dir);
        if !p.is_file() {
            return Err(ModelError::checkpoint(
                &m.checkpoint.dir,
                "no consistency calibration; run `mmvae calibrate --checkpoint DIR` first",
            ));
        }
        let bytes = fsutil::read_limited(&p, MAX_CALIBRATION_BYTES, "the calibration")?;
        Calibration::from_json(&bytes, &p, &m.checkpoint.config.data.dataset.to_string())
    }

    /// The calibration in the bytes of the `consistency.json` at `path`,
    /// refused unless fitted for the dataset named `want`, with a threshold
    /// for every score and settings within [`MAX_SCORE_SETTING`].
    pub fn from_json(bytes: &[u8], path: &Path, want: &str) -> Result<Calibration> {
        let bad = |msg: String| ModelError::checkpoint(path, msg);
        let c: Calibration = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("unreadable calibration: {e}")))?;
        if c.dataset != want {
            return Err(bad(format!(
                "calibrated for {}, the model is for {want}",
                c.dataset
            )));
        }
        if let Some(s) = Score::ALL
            .iter()
            .find(|s| c.thresholds.get(s).is_none_or(|t| t.is_nan()))
        {
            return Err(bad(format!("no threshold for the {} score", s.name())));
        }
        c.options.check().map_err(bad)?;
        Ok(c)
    }

    /// A readable table of validation and test results.
    pub fn table(&self) -> String {
        let mut s = format!(
            "consistency on {} (thresholds fitted on {} validation items; test {} items)\n",
            self.dataset, self.val_items, self.test_items
        );
        s += &format!(
            "  {:<12} {:>10}  {:>9} {:>9} {:>7} {:>7}  {:>10} {:>7}\n",
            "score", "threshold", "precision", "recall", "F1", "AUROC", "hard F1", "AUROC"
        );
        for (score, r) in &self.test {
            s += &format!(
                "  {:<12} {:>10.3}  {:>9.4} {:>9.4} {:>7.4} {:>7.4}  {:>10.4} {:>7.4}{}\n",
                score.name(),
                self.thresholds[score],
                r.random.precision,
                r.random.recall,
                r.random.f1,
                r.random.auroc,
                r.hard.f1,
                r.hard.auroc,
                if *score == self.default_score {
                    "  (default)"
                } else {
                    ""
                }
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_mean_exp_is_stable_and_exact() {
        let dev = Device::flex();
        let v = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, -1000.0, (3.0f32).ln(), -1000.0], [2, 2]),
            &dev,
        );
        let r = floats(log_mean_exp_rows(v));
        assert!((r[0] - (2.0f32).ln()).abs() < 1e-5, "{r:?}");
        assert!((r[1] + 1000.0).abs() < 1e-3, "{r:?}");
    }

    #[test]
    fn score_names_round_trip() {
        for s in Score::ALL {
            assert_eq!(Score::parse(s.name()).unwrap(), s);
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.name()));
        }
        assert!(Score::parse("cosine").is_err());
    }

    /// A calibration of every score, for the dataset `mnist`.
    pub(crate) fn sample_calibration() -> Calibration {
        let b = Binary {
            threshold: 0.5,
            precision: 0.9,
            recall: 0.8,
            f1: 0.85,
            auroc: 0.95,
        };
        let r = ScoreResult { random: b, hard: b };
        Calibration {
            dataset: "mnist".into(),
            default_score: Score::Overlap,
            thresholds: Score::ALL.iter().map(|&s| (s, 0.5)).collect(),
            options: ScoreOptions::default(),
            val_items: 10,
            val: Score::ALL.iter().map(|&s| (s, r.clone())).collect(),
            test_items: 10,
            test: Score::ALL.iter().map(|&s| (s, r.clone())).collect(),
        }
    }

    /// A file without a score's threshold was read, and `table` (and
    /// `mmvae check`) then indexed the missing threshold and panicked;
    /// prior samples were taken as given, however many.
    #[test]
    fn calibrations_need_every_threshold_and_bounded_settings() {
        let p = Path::new("ck/consistency.json");
        let good = sample_calibration();
        let json = serde_json::to_vec(&good).unwrap();
        let back = Calibration::from_json(&json, p, "mnist").unwrap();
        assert_eq!(back, good);
        assert!(back.table().contains("(default)"));
        let e = Calibration::from_json(&json, p, "fashion-mnist")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("consistency.json") && e.contains("calibrated for mnist"),
            "{e}"
        );
        let mut c = good.clone();
        c.thresholds.remove(&Score::TextRatio);
        let e = Calibration::from_json(&serde_json::to_vec(&c).unwrap(), p, "mnist")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("consistency.json") && e.contains("text-ratio"),
            "{e}"
        );
        for (samples, batch) in [(0, 1), (MAX_SCORE_SETTING + 1, 1), (64, usize::MAX)] {
            let mut c = good.clone();
            c.options.prior_samples = samples;
            c.options.batch_size = batch;
            let e = Calibration::from_json(&serde_json::to_vec(&c).unwrap(), p, "mnist")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("consistency.json") && e.contains("options."),
                "{e}"
            );
        }
        // Found by fuzzing: the JSON parser's message quotes an unknown
        // score name, line break and all.
        let e = Calibration::from_json(b"{\"default_score\":\"\\n\"", p, "mnist")
            .unwrap_err()
            .to_string();
        assert!(e.contains("consistency.json") && !e.contains('\n'), "{e}");
    }
}
