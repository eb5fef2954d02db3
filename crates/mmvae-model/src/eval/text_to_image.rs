//! Text→image scoring: images generated from captions read by the
//! classifier (with Inception features for FID), and the choice of the
//! text prior's temperature on the validation split.

use burn::prelude::*;
use mmvae_data::captions::CaptionSet;
use mmvae_data::ImageLabelSet;

use super::classifier::Classifier;
use super::coherence::{some, Coherence, Tally};
use super::inception::{self, InceptionV3};
use crate::error::{ModelError, Result};
use crate::host::floats;
use crate::infer::{Draw, Loaded};
use crate::io::batch::{CaptionSource, HostBatch};

/// Pool3 features of `[n, pixels]` images, 32 at a time (299×299 inputs).
pub(crate) fn inception_features(net: &InceptionV3, m: &Loaded, images: Tensor<2>) -> Vec<f32> {
    let [n, _] = images.dims();
    let mut out = Vec::with_capacity(n * inception::FEATURES);
    let mut start = 0;
    while start < n {
        let k = 32.min(n - start);
        let chunk = images.clone().narrow(0, start, k);
        out.extend(floats(net.features(chunk, m.colours(), m.side())));
        start += k;
    }
    out
}

/// Optional Inception features alongside the classifier's.
#[derive(Default)]
pub(crate) struct Feats {
    pub(crate) clf: Vec<f32>,
    pub(crate) inception: Vec<f32>,
}

impl Feats {
    pub(crate) fn add(
        &mut self,
        clf: Tensor<2>,
        net: Option<&InceptionV3>,
        m: &Loaded,
        images: Tensor<2>,
    ) {
        self.clf.extend(floats(clf));
        if let Some(net) = net {
            self.inception.extend(inception_features(net, m, images));
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn t2i(
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
