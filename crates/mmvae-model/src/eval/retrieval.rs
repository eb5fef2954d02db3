//! Cross-modal retrieval in the shared latent space: rank every caption of a
//! subset for each image (and every image for each caption) by how much
//! their posteriors overlap, and report MedR and Recall@1/5/10 as
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

/// Retrieval results on the test split.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalReport {
    pub similarity: &'static str,
    pub subset_size: usize,
    pub subsets: usize,
    /// Query an image, rank the captions; the relevant one is its own.
    pub image_to_text: Retrieval,
    /// Query a caption, rank the images.
    pub text_to_image: Retrieval,
    /// Fraction of queries whose top-ranked item has the query's class
    /// (captions made from labels repeat across a class, so a paired-item
    /// rank is a strict measure there).
    pub image_to_text_class_at_1: f64,
    pub text_to_image_class_at_1: f64,
}

fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, m] = t.dims();
    t.try_into_vec_as::<f32>()
        .unwrap_or_default()
        .chunks(m)
        .map(|c| c.to_vec())
        .collect()
}

/// Retrieval over up to `max_subsets` disjoint subsets of `subset` test
/// items (fewer if the split is smaller; at least one).
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
    let subsets = (test.len() / size).clamp(1, max_subsets.max(1));
    let src = CaptionSource {
        captioner: Captioner::new(kind, m.checkpoint.config.data.caption_seed),
        set: CaptionSet::Train,
        stream: TEST_STREAM,
    };
    // Disjoint subsets of a seeded shuffle of the split, so that each mixes
    // the classes however the split orders them.
    let order = mmvae_data::dataset::shuffled(test.len(), 0);
    let (mut i2t, mut t2i) = (Vec::new(), Vec::new());
    let (mut i2t_class, mut t2i_class) = (0usize, 0usize);
    for s in 0..subsets {
        let idx: Vec<usize> = order[s * size..(s + 1) * size].to_vec();
        let hb = HostBatch::gather(&m.model.layout(), test, &idx, src, &m.checkpoint.vocab);
        let labels = hb.labels.clone();
        let b = hb.to_device(&m.device);
        let qx = m.model.encode_image(b.images());
        let qy = m.model.encode_caption(&b);
        let sim = log_overlap_matrix(&qx, &qy); // [images, captions]
        let sim_t: Vec<Vec<f32>> = (0..size)
            .map(|j| (0..size).map(|i| sim[i][j]).collect())
            .collect();
        i2t.push(metrics::retrieval(&metrics::true_ranks(&sim)));
        t2i.push(metrics::retrieval(&metrics::true_ranks(&sim_t)));
        let top = |row: &[f32]| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(c, _)| c)
        };
        i2t_class += (0..size)
            .filter(|&q| labels[top(&sim[q])] == labels[q])
            .count();
        t2i_class += (0..size)
            .filter(|&q| labels[top(&sim_t[q])] == labels[q])
            .count();
    }
    let total = (size * subsets) as f64;
    Ok(RetrievalReport {
        similarity: "log overlap integral of q(z|image) and q(z|caption)",
        subset_size: size,
        subsets,
        image_to_text: metrics::mean_retrieval(&i2t),
        text_to_image: metrics::mean_retrieval(&t2i),
        image_to_text_class_at_1: i2t_class as f64 / total,
        text_to_image_class_at_1: t2i_class as f64 / total,
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
