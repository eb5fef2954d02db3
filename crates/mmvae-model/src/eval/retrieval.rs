//! Cross-modal retrieval in the shared latent space: for every ordered pair
//! of modalities, rank the items of one for each item of the other (every
//! caption for each image, every image for each caption) by how much their
//! posteriors overlap, and report MedR and Recall@1/5/10 as
//! cross-modal retrieval papers do (1,000-item subsets, averaged).

use burn::prelude::*;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::ImageLabelSet;
use serde::Serialize;

use crate::error::{ModelError, Result};
use crate::eval::metrics::{self, Retrieval};
use crate::infer::Loaded;
use crate::io::batch::{CaptionSource, HostBatch};
use crate::io::data::TEST_STREAM;
use crate::nn::gaussian::Gaussian;
use crate::objective::Subset;

/// log ∫ q_a(z) q_b(z) dz for every pair of rows: the Gaussian overlap
/// integral (expected-likelihood kernel),
/// log N(μa − μb; 0, σa² + σb²) summed over dimensions. Computed on the host.
///
/// # Shapes
/// `a`: `[n, latent]`, `b`: `[m, latent]` → `n` rows of `m`
pub fn log_overlap_matrix(a: &Gaussian, b: &Gaussian) -> Vec<Vec<f32>> {
    let host = |t: &Tensor<2>| rows(t.clone());
    let (ma, mb) = (host(&a.mu), host(&b.mu));
    let va: Vec<Vec<f32>> = host(&a.logvar.clone().exp());
    let vb: Vec<Vec<f32>> = host(&b.logvar.clone().exp());
    let ln2pi = (2.0 * std::f32::consts::PI).ln();
    ma.iter()
        .zip(&va)
        .map(|(mi, vi)| {
            mb.iter()
                .zip(&vb)
                .map(|(mj, vj)| {
                    let mut s = 0.0f32;
                    for d in 0..mi.len() {
                        let v = vi[d] + vj[d];
                        let diff = mi[d] - mj[d];
                        s += diff * diff / v + v.ln() + ln2pi;
                    }
                    -0.5 * s
                })
                .collect()
        })
        .collect()
}

/// Retrieval results on the test split: every ordered pair of modalities.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalReport {
    pub similarity: &'static str,
    pub subset_size: usize,
    pub subsets: usize,
    pub pairs: Vec<PairRetrieval>,
}

/// Query items of one modality, rank the items of another; the relevant
/// one is the query's own item.
#[derive(Debug, Clone, Serialize)]
pub struct PairRetrieval {
    pub query: String,
    pub target: String,
    #[serde(flatten)]
    pub ranks: Retrieval,
    /// Fraction of queries whose top-ranked item has the query's class
    /// (captions made from labels repeat across a class, so a paired-item
    /// rank is a strict measure there); absent for data without classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_at_1: Option<f64>,
}

impl RetrievalReport {
    /// The retrieval of `target` items from `query` items, by name.
    pub fn pair(&self, query: &str, target: &str) -> Option<&PairRetrieval> {
        self.pairs
            .iter()
            .find(|p| p.query == query && p.target == target)
    }
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, m] = t.dims();
    crate::host::floats(t)
        .chunks(m)
        .map(|c| c.to_vec())
        .collect()
}

/// Index of the largest value (the first of ties).
fn top(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(c, _)| c)
}

/// Retrieval between every ordered pair of the model's modalities over up
/// to `max_subsets` disjoint subsets of `subset` test items (fewer if the
/// split is smaller; at least one). Each item of a modality is represented
/// by the posterior of the shared latent given it alone.
pub fn retrieval(
    m: &Loaded,
    test: &ImageLabelSet,
    subset: usize,
    max_subsets: usize,
) -> Result<RetrievalReport> {
    let kind = m.checkpoint.config.data.dataset;
    let size = subset.min(test.len());
    if size < 2 {
        return Err(ModelError::Invalid(format!(
            "retrieval needs at least 2 test items, there are {}",
            test.len()
        )));
    }
    let nm = m.model.modalities();
    if nm < 2 {
        return Err(ModelError::Invalid(
            "retrieval needs a model of at least two modalities".into(),
        ));
    }
    let subsets = (test.len() / size).clamp(1, max_subsets.max(1));
    let src = CaptionSource {
        captioner: Captioner::new(kind, m.checkpoint.config.data.caption_seed),
        set: CaptionSet::Train,
        stream: TEST_STREAM,
    };
    let pairs: Vec<(usize, usize)> = (0..nm)
        .flat_map(|a| (0..nm).filter(move |&b| b != a).map(move |b| (a, b)))
        .collect();
    // Disjoint subsets of a seeded shuffle of the split, so that each mixes
    // the classes however the split orders them.
    let order = mmvae_data::dataset::shuffled(test.len(), 0);
    let mut per_pair = vec![(Vec::new(), 0usize); pairs.len()];
    for s in 0..subsets {
        let idx: Vec<usize> = order[s * size..(s + 1) * size].to_vec();
        let hb = HostBatch::gather(&m.model.layout(), test, &idx, src, &m.checkpoint.vocab);
        let labels = hb.labels.clone();
        let b = hb.to_device(&m.device);
        let shared = m.model.encode_shared(&b);
        let q: Vec<Gaussian> = (0..nm)
            .map(|k| m.model.fuse_encoded(&shared, Subset::single(k)))
            .collect();
        for (p, &(a, t)) in pairs.iter().enumerate() {
            let sim = log_overlap_matrix(&q[a], &q[t]); // [queries, targets]
            per_pair[p]
                .0
                .push(metrics::retrieval(&metrics::true_ranks(&sim)));
            per_pair[p].1 += (0..size)
                .filter(|&i| labels[top(&sim[i])] == labels[i])
                .count();
        }
    }
    let total = (size * subsets) as f64;
    let names = &m.model.names;
    Ok(RetrievalReport {
        similarity: "log overlap integral of the posteriors q(z|query) and q(z|target)",
        subset_size: size,
        subsets,
        pairs: pairs
            .iter()
            .zip(per_pair)
            .map(|(&(a, t), (r, class))| PairRetrieval {
                query: names[a].clone(),
                target: names[t].clone(),
                ranks: metrics::mean_retrieval(&r),
                class_at_1: kind.is_labelled().then(|| class as f64 / total),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_matrix_matches_the_rowwise_overlap() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(3);
        let g = |n: usize| {
            Gaussian::new(
                Tensor::<2>::random([n, 4], burn::tensor::Distribution::Normal(0.0, 1.0), &dev),
                Tensor::<2>::random([n, 4], burn::tensor::Distribution::Normal(0.0, 0.5), &dev),
            )
        };
        let (a, b) = (g(3), g(5));
        let ov = log_overlap_matrix(&a, &b);
        for (i, row) in ov.iter().enumerate() {
            for (j, &got) in row.iter().enumerate() {
                let ai = Gaussian::new(
                    a.mu.clone().narrow(0, i, 1),
                    a.logvar.clone().narrow(0, i, 1),
                );
                let bj = Gaussian::new(
                    b.mu.clone().narrow(0, j, 1),
                    b.logvar.clone().narrow(0, j, 1),
                );
                let lo = ai.log_overlap(&bj).into_scalar::<f32>();
                assert!(
                    (got - lo).abs() < 1e-4 * lo.abs().max(1.0),
                    "({i},{j}): {got} vs {lo}"
                );
            }
        }
    }
}
