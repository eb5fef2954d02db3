//! Consistency checking between any two modalities of a model: does this
//! item's `first` agree with that item's `second` (an image and a class
//! label, two views of a digit, an image and its caption)?
//!
//! The scores generalise those of [`crate::eval::consistency`] (which keeps
//! the image–caption form and its hard, one-attribute-changed mismatches):
//! - [`PairScore::Overlap`]: log ∫ q(z|a) q(z|b) dz of the two unimodal
//!   posteriors over the shared latent;
//! - [`PairScore::SecondRatio`]: log p(b | z = mean of q(z|a)) − log p(b),
//!   with log p(b) ≈ log mean_k p(b | z_k), z_k ~ N(0, I);
//! - [`PairScore::FirstRatio`]: the same with the roles swapped.
//!
//! Each modality's likelihood is its own decoder's (pixels, tokens or a
//! class), so every pair of kinds is scored the same way. Thresholds are
//! fitted on the validation split against random mismatches (an item's
//! `first` with the `second` of an item of another class) and saved beside
//! the weights as `consistency-<first>-<second>.json`.

use burn::prelude::*;
use burn::tensor::Distribution;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::{fsutil, ImageLabelSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use crate::eval::consistency::{random_mismatch, ScoreOptions, MAX_CALIBRATION_BYTES};
use crate::eval::metrics::{self, Binary};
use crate::host::{floats, index_tensor};
use crate::infer::Loaded;
use crate::io::batch::{CaptionSource, HostBatch, Input};
use crate::modality::expert::Expert;
use crate::mvae::{log_sum_exp_dim, Mvae};
use crate::nn::gaussian::Gaussian;

/// Two distinct modalities of a model, by index, in the model's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModalityPair {
    pub first: usize,
    pub second: usize,
}

impl ModalityPair {
    /// The pair `A,B` of modality names (either order; kept in the model's
    /// order so that one calibration serves both).
    pub fn parse(model: &Mvae, spec: &str) -> Result<ModalityPair> {
        let names = model.names.join(", ");
        let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
        let [a, b] = parts[..] else {
            return Err(ModelError::Invalid(format!(
                "a pair is two modality names joined by a comma, e.g. `{}` (got `{spec}`)",
                model
                    .names
                    .iter()
                    .take(2)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        };
        let index = |n: &str| {
            model.index_of(n).ok_or_else(|| {
                ModelError::Invalid(format!("the model has no modality `{n}` (it has {names})"))
            })
        };
        ModalityPair::new(model, index(a)?, index(b)?)
    }

    /// The pair of modalities `a` and `b` (either order).
    pub fn new(model: &Mvae, a: usize, b: usize) -> Result<ModalityPair> {
        if a == b {
            return Err(ModelError::Invalid(format!(
                "a pair needs two different modalities (got `{}` twice)",
                model.names[a]
            )));
        }
        Ok(ModalityPair {
            first: a.min(b),
            second: a.max(b),
        })
    }

    pub fn first_name<'a>(&self, model: &'a Mvae) -> &'a str {
        &model.names[self.first]
    }

    pub fn second_name<'a>(&self, model: &'a Mvae) -> &'a str {
        &model.names[self.second]
    }

    /// The file its calibration is saved to inside a checkpoint folder.
    pub fn calibration_path(&self, model: &Mvae, checkpoint: &Path) -> PathBuf {
        checkpoint.join(format!(
            "consistency-{}-{}.json",
            self.first_name(model),
            self.second_name(model)
        ))
    }
}

/// A way to score a pair of modalities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairScore {
    Overlap,
    SecondRatio,
    FirstRatio,
}

impl PairScore {
    pub const ALL: [PairScore; 3] = [
        PairScore::Overlap,
        PairScore::SecondRatio,
        PairScore::FirstRatio,
    ];

    /// Its name for this pair: `overlap`, `<second>-ratio`, `<first>-ratio`.
    pub fn name(self, first: &str, second: &str) -> String {
        match self {
            PairScore::Overlap => "overlap".to_string(),
            PairScore::SecondRatio => format!("{second}-ratio"),
            PairScore::FirstRatio => format!("{first}-ratio"),
        }
    }

    pub fn parse(s: &str, first: &str, second: &str) -> Result<PairScore> {
        PairScore::ALL
            .into_iter()
            .find(|k| k.name(first, second) == s)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "unknown score `{s}` (expected overlap, {second}-ratio or {first}-ratio)"
                ))
            })
    }
}

/// The three scores of one (first, second) pair; higher = more likely a
/// match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairScores {
    pub overlap: f32,
    /// log p(second | z of first) − log p(second).
    pub second_ratio: f32,
    /// log p(first | z of second) − log p(first).
    pub first_ratio: f32,
}

impl PairScores {
    pub fn get(&self, s: PairScore) -> f32 {
        match s {
            PairScore::Overlap => self.overlap,
            PairScore::SecondRatio => self.second_ratio,
            PairScore::FirstRatio => self.first_ratio,
        }
    }
}

/// The decoder input of expert `e` for shared latents `z`: its private
/// latent, where it has one, at the prior mean 0.
///
/// # Shapes
/// `z`: `[n, latent]` → `[n, latent + private]`
fn decoder_input(e: &Expert, z: Tensor<2>) -> Tensor<2> {
    match e.private() {
        0 => z,
        p => {
            let [n, _] = z.dims();
            let w = Tensor::zeros([n, p], &z.device());
            Tensor::cat(vec![z, w], 1)
        }
    }
}

/// One modality's posteriors and log marginal likelihoods.
struct Side {
    q: Gaussian,
    log_marginal: Vec<f32>,
}

/// Rows decoded at once when estimating log p(x) (items × prior draws).
const MARGINAL_ROWS: usize = 4096;

/// Posteriors of every row of `input` under expert `m`, and log p(row) ≈
/// log mean_k p(row | z_k) over the prior draws `z_prior` `[k, latent]`.
fn side(model: &Mvae, m: usize, input: &Input, z_prior: &Tensor<2>, bs: usize) -> Side {
    let e = &model.experts[m];
    let [k, _] = z_prior.dims();
    let n = input.rows();
    let mut qs = Vec::new();
    let mut start = 0;
    while start < n {
        let len = bs.min(n - start);
        qs.push(model.encode_modality(m, &input.narrow(start, len)).shared);
        start += len;
    }
    let chunk = (MARGINAL_ROWS / k).max(1);
    let mut log_marginal = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        // [k·len] rows, draw-major: row d·len + i is draw d with item i.
        let z = z_prior
            .clone()
            .unsqueeze_dim::<3>(1)
            .repeat_dim(1, len)
            .reshape([k * len, model.latent]);
        let target = input.narrow(start, len).repeat(k);
        let (nll, _) = e.reconstruct(decoder_input(e, z), &target);
        let ll = nll.neg().reshape([k, len]);
        let lme = log_sum_exp_dim(ll, 0) - (k as f32).ln(); // [1, len]
        log_marginal.extend(floats(lme.squeeze_dim::<1>(0)));
        start += len;
    }
    Side {
        q: Gaussian::cat_rows(&qs),
        log_marginal,
    }
}

/// Score pairs `(i, j)`: row `i` of `first` (modality `pair.first`) with
/// row `j` of `second` (modality `pair.second`). The prior draws come from
/// the device's generator: seed it first for repeatable scores.
pub fn score_modality_pairs(
    model: &Mvae,
    pair: ModalityPair,
    first: &Input,
    second: &Input,
    pairs: &[(usize, usize)],
    opts: ScoreOptions,
) -> Result<Vec<PairScores>> {
    let (na, nb) = (first.rows(), second.rows());
    if let Some(&(i, j)) = pairs.iter().find(|&&(i, j)| i >= na || j >= nb) {
        return Err(ModelError::Invalid(format!(
            "pair ({i}, {j}) is out of range ({na} and {nb} items)"
        )));
    }
    let device = match first {
        Input::Image(x) => x.device(),
        Input::Tokens { ids, .. } => ids.device(),
        Input::Label(l) => l.device(),
    };
    let bs = opts.batch_size.max(1);
    let k = opts.prior_samples.max(1);
    // Prior draws shared by both sides (common random numbers).
    let z_prior = Tensor::<2>::random([k, model.latent], Distribution::Normal(0.0, 1.0), &device);
    let a = side(model, pair.first, first, &z_prior, bs);
    let b = side(model, pair.second, second, &z_prior, bs);
    let (ea, eb) = (&model.experts[pair.first], &model.experts[pair.second]);
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(bs) {
        let ii = index_tensor(chunk.iter().map(|p| p.0), &device);
        let jj = index_tensor(chunk.iter().map(|p| p.1), &device);
        let qa = a.q.select_rows(ii.clone());
        let qb = b.q.select_rows(jj.clone());
        let overlap = floats(qa.log_overlap(&qb));
        let (nll_b, _) = eb.reconstruct(decoder_input(eb, qa.mu.clone()), &second.select(jj));
        let (nll_a, _) = ea.reconstruct(decoder_input(ea, qb.mu.clone()), &first.select(ii));
        let (ll_b, ll_a) = (floats(nll_b.neg()), floats(nll_a.neg()));
        for (r, &(i, j)) in chunk.iter().enumerate() {
            out.push(PairScores {
                overlap: overlap[r],
                second_ratio: ll_b[r] - b.log_marginal[j],
                first_ratio: ll_a[r] - a.log_marginal[i],
            });
        }
    }
    Ok(out)
}

/// Matching pairs and random mismatches of a labelled split, every
/// modality of the first `n` items.
pub struct LabelledPairs {
    pub inputs: Vec<Input>,
    /// `(i, i)`: an item's two modalities.
    pub positives: Vec<(usize, usize)>,
    /// `(i, j)`: item i's `first` with the `second` of an item j of another
    /// class.
    pub random: Vec<(usize, usize)>,
}

/// Build [`LabelledPairs`] from the first `n` items of `data`,
/// deterministically from `seed`.
pub fn labelled_pairs(
    m: &Loaded,
    data: &ImageLabelSet,
    n: usize,
    stream: u64,
    seed: u64,
) -> Result<LabelledPairs> {
    let kind = m.checkpoint.config.data.dataset;
    if !kind.is_labelled() {
        return Err(ModelError::Config(format!(
            "calibration builds mismatched pairs from class labels; the {kind} dataset has none"
        )));
    }
    let n = n.min(data.len());
    if n < 2 {
        return Err(ModelError::Invalid(format!(
            "consistency checking needs at least 2 items, the split has {n}"
        )));
    }
    let src = CaptionSource {
        captioner: Captioner::new(kind, m.checkpoint.config.data.caption_seed),
        set: CaptionSet::Train,
        stream,
    };
    let idx: Vec<usize> = (0..n).collect();
    let hb = HostBatch::gather(&m.model.layout(), data, &idx, src, &m.checkpoint.vocab);
    let mut random = Vec::with_capacity(n);
    for i in 0..n {
        random.push((i, random_mismatch(&hb.labels, i, seed)?.0));
    }
    Ok(LabelledPairs {
        inputs: hb.to_device(&m.device).inputs,
        positives: (0..n).map(|i| (i, i)).collect(),
        random,
    })
}

/// The calibration of one pair's scores.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PairCalibration {
    pub dataset: String,
    pub first: String,
    pub second: String,
    /// The score `mmvae check --given` decides with: the best validation
    /// AUROC.
    pub default_score: PairScore,
    /// Per score: "match" when score ≥ threshold (maximum validation F1).
    pub thresholds: BTreeMap<PairScore, f32>,
    pub options: ScoreOptions,
    pub val_items: usize,
    pub val: BTreeMap<PairScore, Binary>,
    pub test_items: usize,
    pub test: BTreeMap<PairScore, Binary>,
}

/// One score's values on the matching pairs and on the mismatches.
struct Split {
    positives: Vec<f32>,
    mismatches: Vec<f32>,
}

/// Per score, its values on the positives and the random mismatches.
fn suite_scores(
    m: &Loaded,
    pair: ModalityPair,
    s: &LabelledPairs,
    opts: ScoreOptions,
) -> Result<BTreeMap<PairScore, Split>> {
    m.seed(opts.seed);
    let all: Vec<(usize, usize)> = s.positives.iter().chain(&s.random).copied().collect();
    let sc = score_modality_pairs(
        &m.model,
        pair,
        &s.inputs[pair.first],
        &s.inputs[pair.second],
        &all,
        opts,
    )?;
    let n = s.positives.len();
    Ok(PairScore::ALL
        .into_iter()
        .map(|k| {
            let col: Vec<f32> = sc.iter().map(|r| r.get(k)).collect();
            let (positives, mismatches) = (col[..n].to_vec(), col[n..].to_vec());
            (
                k,
                Split {
                    positives,
                    mismatches,
                },
            )
        })
        .collect())
}

/// Fit thresholds on `val` (first `val_n` items) and measure them on
/// `test` (first `test_n` items).
pub fn calibrate_pair(
    m: &Loaded,
    pair: ModalityPair,
    val: &ImageLabelSet,
    val_n: usize,
    test: &ImageLabelSet,
    test_n: usize,
    opts: ScoreOptions,
) -> Result<PairCalibration> {
    let vs = labelled_pairs(m, val, val_n, crate::io::data::VAL_STREAM, opts.seed)?;
    let v = suite_scores(m, pair, &vs, opts)?;
    let mut thresholds = BTreeMap::new();
    let mut val_res = BTreeMap::new();
    for (score, s) in &v {
        let t = metrics::best_f1_threshold(&s.positives, &s.mismatches);
        thresholds.insert(*score, t);
        val_res.insert(*score, metrics::binary(&s.positives, &s.mismatches, t));
    }
    let default_score = val_res
        .iter()
        .max_by(|a, b| a.1.auroc.total_cmp(&b.1.auroc))
        .map_or(PairScore::Overlap, |(s, _)| *s);
    let ts = labelled_pairs(m, test, test_n, crate::io::data::TEST_STREAM, opts.seed)?;
    let t = suite_scores(m, pair, &ts, opts)?;
    let test_res = t
        .iter()
        .map(|(score, s)| {
            let b = metrics::binary(&s.positives, &s.mismatches, thresholds[score]);
            (*score, b)
        })
        .collect();
    Ok(PairCalibration {
        dataset: m.checkpoint.config.data.dataset.to_string(),
        first: pair.first_name(&m.model).to_string(),
        second: pair.second_name(&m.model).to_string(),
        default_score,
        thresholds,
        options: opts,
        val_items: vs.positives.len(),
        val: val_res,
        test_items: ts.positives.len(),
        test: test_res,
    })
}

impl PairCalibration {
    pub fn save(&self, m: &Loaded, pair: ModalityPair) -> Result<PathBuf> {
        let p = pair.calibration_path(&m.model, &m.checkpoint.dir);
        let json = serde_json::to_string_pretty(self).expect("calibration serialises");
        fsutil::write_atomic(&p, json.as_bytes())?;
        Ok(p)
    }

    /// The calibration of `pair` saved with the checkpoint.
    pub fn load(m: &Loaded, pair: ModalityPair) -> Result<PairCalibration> {
        let p = pair.calibration_path(&m.model, &m.checkpoint.dir);
        let (first, second) = (pair.first_name(&m.model), pair.second_name(&m.model));
        if !p.is_file() {
            return Err(ModelError::checkpoint(
                &m.checkpoint.dir,
                format!(
                    "no consistency calibration for {first} and {second}; run `mmvae calibrate --checkpoint DIR --pair {first},{second}` first"
                ),
            ));
        }
        let bytes = fsutil::read_limited(&p, MAX_CALIBRATION_BYTES, "the calibration")?;
        let want = m.checkpoint.config.data.dataset.to_string();
        PairCalibration::from_json(&bytes, &p, &want, (first, second))
    }

    /// The calibration in `bytes` (the file at `path`), refused unless it
    /// was fitted for dataset `want` and the modalities `names`, with a
    /// threshold for every score and settings within bounds.
    pub fn from_json(
        bytes: &[u8],
        path: &Path,
        want: &str,
        names: (&str, &str),
    ) -> Result<PairCalibration> {
        let bad = |msg: String| ModelError::checkpoint(path, msg);
        let c: PairCalibration = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("unreadable calibration: {e}")))?;
        if c.dataset != want {
            return Err(bad(format!(
                "calibrated for {}, the model is for {want}",
                c.dataset
            )));
        }
        if (c.first.as_str(), c.second.as_str()) != names {
            return Err(bad(format!(
                "calibrated for {} and {}, not {} and {}",
                c.first, c.second, names.0, names.1
            )));
        }
        if let Some(s) = PairScore::ALL
            .iter()
            .find(|s| c.thresholds.get(s).is_none_or(|t| t.is_nan()))
        {
            return Err(bad(format!(
                "no threshold for the {} score",
                s.name(&c.first, &c.second)
            )));
        }
        c.options.check().map_err(bad)?;
        Ok(c)
    }

    /// A readable table of validation and test results.
    pub fn table(&self) -> String {
        let mut s = format!(
            "consistency of {} and {} ({}): thresholds fitted on {} validation items, measured on {} test items\n",
            self.first, self.second, self.dataset, self.val_items, self.test_items
        );
        s += &format!(
            "{:<18} {:>10}  {:>9} {:>9}  {:>9} {:>9}\n",
            "score", "threshold", "val F1", "val AUROC", "test F1", "test AUROC"
        );
        for score in PairScore::ALL {
            let name = score.name(&self.first, &self.second);
            // A file may lack a score's results; its threshold was checked
            // on load.
            let f1 = |b: Option<&Binary>| b.map_or("-".into(), |b| format!("{:.4}", b.f1));
            let auroc = |b: Option<&Binary>| b.map_or("-".into(), |b| format!("{:.4}", b.auroc));
            let (v, t) = (self.val.get(&score), self.test.get(&score));
            s += &format!(
                "{:<18} {:>10.3}  {:>9} {:>9}  {:>9} {:>9}{}\n",
                name,
                self.thresholds[&score],
                f1(v),
                auroc(v),
                f1(t),
                auroc(t),
                if score == self.default_score {
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
    use crate::io::batch::HostBatch;
    use crate::modality::ModalityKind;
    use crate::testutil::{self, SHAPE};

    fn tiny() -> (Mvae, HostBatch, Device) {
        let dev = Device::flex();
        let mods = testutil::three_modalities();
        let model = testutil::tiny_model(crate::config::Fusion::Poe, 0).init(&mods, SHAPE, &dev);
        let kinds = [ModalityKind::Image, ModalityKind::Text, ModalityKind::Label];
        (model, testutil::host_batch_of(&kinds, 6), dev)
    }

    #[test]
    fn pairs_parse_by_name_in_the_models_order() {
        let (model, _, _) = tiny();
        let p = ModalityPair::parse(&model, "label, image").unwrap();
        assert_eq!((p.first, p.second), (0, 2));
        assert_eq!(
            p.calibration_path(&model, Path::new("ck")),
            Path::new("ck/consistency-image-label.json")
        );
        for bad in ["image", "image,image", "image,colour", "a,b,c"] {
            assert!(ModalityPair::parse(&model, bad).is_err(), "{bad}");
        }
        for s in PairScore::ALL {
            let name = s.name("image", "label");
            assert_eq!(PairScore::parse(&name, "image", "label").unwrap(), s);
        }
        assert_eq!(PairScore::SecondRatio.name("image", "text"), "text-ratio");
        assert!(PairScore::parse("text-ratio", "image", "label").is_err());
    }

    /// Swapping the roles swaps the two ratios and keeps the overlap (the
    /// same prior draws on both sides).
    #[test]
    fn scores_are_symmetric_under_swapping_the_modalities() {
        let _g = testutil::rng_lock();
        let (model, hb, dev) = tiny();
        let b = hb.to_device(&dev);
        let opts = ScoreOptions {
            prior_samples: 16,
            seed: 3,
            batch_size: 4,
        };
        let pairs = [(0, 0), (1, 4), (5, 2), (3, 3)];
        let swapped: Vec<(usize, usize)> = pairs.iter().map(|&(i, j)| (j, i)).collect();
        let forward = ModalityPair {
            first: 0,
            second: 2,
        };
        let back = ModalityPair {
            first: 2,
            second: 0,
        };
        dev.seed(3);
        let s = score_modality_pairs(&model, forward, &b.inputs[0], &b.inputs[2], &pairs, opts)
            .unwrap();
        dev.seed(3);
        let r =
            score_modality_pairs(&model, back, &b.inputs[2], &b.inputs[0], &swapped, opts).unwrap();
        for (x, y) in s.iter().zip(&r) {
            assert!((x.overlap - y.overlap).abs() < 1e-4, "{x:?} {y:?}");
            assert!((x.second_ratio - y.first_ratio).abs() < 1e-3, "{x:?} {y:?}");
            assert!((x.first_ratio - y.second_ratio).abs() < 1e-3, "{x:?} {y:?}");
            assert!(x.overlap.is_finite() && x.second_ratio.is_finite());
        }
        // A row beyond the inputs is refused.
        assert!(
            score_modality_pairs(&model, forward, &b.inputs[0], &b.inputs[2], &[(6, 0)], opts)
                .is_err()
        );
    }

    /// Found by the `pair_calibration` fuzz target: a file without one
    /// score's validation results loaded, then `table()` indexed them.
    #[test]
    fn a_calibration_missing_results_loads_and_prints_dashes() {
        let b = Binary {
            threshold: 0.5,
            precision: 0.9,
            recall: 0.8,
            f1: 0.85,
            auroc: 0.95,
        };
        let all = |v: Binary| PairScore::ALL.iter().map(|&s| (s, v)).collect();
        let mut c = PairCalibration {
            dataset: "mnist".into(),
            first: "image".into(),
            second: "digit".into(),
            default_score: PairScore::SecondRatio,
            thresholds: PairScore::ALL.iter().map(|&s| (s, -1.5)).collect(),
            options: ScoreOptions::default(),
            val_items: 10,
            val: all(b),
            test_items: 10,
            test: all(b),
        };
        c.val.remove(&PairScore::FirstRatio);
        let json = serde_json::to_vec(&c).unwrap();
        let path = Path::new("ck/consistency-image-digit.json");
        let loaded = PairCalibration::from_json(&json, path, "mnist", ("image", "digit")).unwrap();
        let table = loaded.table();
        let row = table
            .lines()
            .find(|l| l.starts_with("image-ratio"))
            .unwrap();
        assert!(row.contains(" - ") && row.contains("0.8500"), "{table}");
        // A missing threshold, another dataset or other modalities are refused.
        c.thresholds.remove(&PairScore::Overlap);
        let e = PairCalibration::from_json(
            &serde_json::to_vec(&c).unwrap(),
            path,
            "mnist",
            ("image", "digit"),
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("no threshold for the overlap score"));
        assert!(PairCalibration::from_json(&json, path, "shapes-l1", ("image", "digit")).is_err());
        let e = PairCalibration::from_json(&json, path, "mnist", ("image", "text")).unwrap_err();
        assert!(
            e.to_string().contains("calibrated for image and digit"),
            "{e}"
        );
    }

    #[test]
    fn the_log_marginal_of_a_label_is_the_mean_probability_over_draws() {
        let _g = testutil::rng_lock();
        let (model, hb, dev) = tiny();
        let b = hb.to_device(&dev);
        let z = Tensor::<2>::random([8, model.latent], Distribution::Normal(0.0, 1.0), &dev);
        let s = side(&model, 2, &b.inputs[2], &z, 4);
        // Direct: p(c | z_k) for each draw and item, averaged over draws.
        let Expert::Label(l) = &model.experts[2] else {
            panic!("the third modality is a label")
        };
        let probs = l.log_probs(z).exp(); // [8, classes]
        let p: Vec<f32> = probs.mean_dim(0).try_into_vec_as::<f32>().unwrap();
        for (i, &lm) in s.log_marginal.iter().enumerate() {
            let c = hb.labels[i];
            assert!(
                (lm - p[c].ln()).abs() < 1e-4,
                "item {i}: {lm} vs {}",
                p[c].ln()
            );
        }
    }
}
