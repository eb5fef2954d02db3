//! How much of the latent space each modality's encoder uses: the KL of
//! its posterior from the prior and its active units (Burda et al. 2016),
//! for the shared latent (the posterior given that modality alone, as
//! inference forms it) and, for an image with one, its private latent.
//! A private latent without active units has collapsed: the encoder says
//! the same of every image, so the decoder cannot read anything from it.

use mmvae_data::ImageLabelSet;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::host::floats;
use crate::infer::Loaded;
use crate::io::batch::{CaptionSource, HostBatch};
use crate::nn::gaussian::Gaussian;
use crate::objective::Subset;

/// A dimension is active when its posterior mean varies over the items
/// with a variance above this (Burda et al. 2016).
pub const ACTIVE_VARIANCE: f64 = 0.01;

/// What a posterior uses of one latent.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatentUse {
    /// Mean KL(q ‖ N(0, I)) over the items, in nats.
    pub kl: f64,
    /// Dimensions whose posterior mean has a variance over the items above
    /// [`ACTIVE_VARIANCE`].
    pub active: usize,
    pub dims: usize,
}

/// One modality's use of the shared latent and of its private latent.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ModalityLatentUse {
    pub shared: LatentUse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private: Option<LatentUse>,
}

/// Running sums over items of one posterior's KL and of its means and
/// squared means per dimension.
#[derive(Debug, Clone)]
struct Sums {
    items: usize,
    kl: f64,
    mean: Vec<f64>,
    square: Vec<f64>,
}

impl Sums {
    fn new(dims: usize) -> Self {
        Self {
            items: 0,
            kl: 0.0,
            mean: vec![0.0; dims],
            square: vec![0.0; dims],
        }
    }

    /// Add a batch: `mu` row-major `[rows, dims]`, `kl` one value per row.
    fn add(&mut self, mu: &[f32], kl: &[f32]) {
        let dims = self.mean.len();
        for row in mu.chunks(dims) {
            for ((m, s), &v) in self.mean.iter_mut().zip(&mut self.square).zip(row) {
                *m += f64::from(v);
                *s += f64::from(v) * f64::from(v);
            }
        }
        self.kl += kl.iter().map(|&v| f64::from(v)).sum::<f64>();
        self.items += kl.len();
    }

    fn add_posterior(&mut self, q: &Gaussian) {
        let mu = floats(q.mu.clone());
        let kl = floats(q.kl_standard());
        self.add(&mu, &kl);
    }

    /// The population variance of each dimension's mean decides whether it
    /// is active.
    fn finish(&self) -> LatentUse {
        let n = self.items.max(1) as f64;
        let active = self
            .mean
            .iter()
            .zip(&self.square)
            .filter(|(&m, &s)| s / n - (m / n) * (m / n) > ACTIVE_VARIANCE)
            .count();
        LatentUse {
            kl: self.kl / n,
            active,
            dims: self.mean.len(),
        }
    }
}

/// Each modality's use of the latents over the first `n` test items, in
/// batches of `bs`, keyed by modality name.
pub fn latent_usage(
    m: &Loaded,
    test: &ImageLabelSet,
    n: usize,
    bs: usize,
    source: CaptionSource,
) -> BTreeMap<String, ModalityLatentUse> {
    let model = &m.model;
    let mut sums: Vec<(Sums, Option<Sums>)> = model
        .experts
        .iter()
        .map(|e| {
            let private = (e.private() > 0).then(|| Sums::new(e.private()));
            (Sums::new(model.latent), private)
        })
        .collect();
    let idx: Vec<usize> = (0..n.min(test.len())).collect();
    for chunk in idx.chunks(bs.max(1)) {
        let hb = HostBatch::gather(&model.layout(), test, chunk, source, &m.checkpoint.vocab);
        let batch = hb.to_device(&m.device);
        let encoded = model.encode_all(&batch);
        let encodings: Vec<Option<Gaussian>> =
            encoded.iter().map(|e| Some(e.shared.clone())).collect();
        for (i, (shared, private)) in sums.iter_mut().enumerate() {
            shared.add_posterior(&model.fuse_encoded(&encodings, Subset::single(i)));
            if let (Some(q), Some(p)) = (&encoded[i].private, private.as_mut()) {
                p.add_posterior(q);
            }
        }
    }
    model
        .names
        .iter()
        .zip(&sums)
        .map(|(name, (shared, private))| {
            let used = ModalityLatentUse {
                shared: shared.finish(),
                private: private.as_ref().map(Sums::finish),
            };
            (name.clone(), used)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    #[test]
    fn active_units_count_the_dimensions_whose_mean_varies_over_the_items() {
        let mut s = Sums::new(3);
        // Dimension 0 constant, 1 varies with variance 1, 2 with variance
        // 0.0025 (below the threshold).
        s.add(&[0.5, 1.0, 0.05, 0.5, -1.0, -0.05], &[2.0, 4.0]);
        s.add(&[0.5, 1.0, 0.05, 0.5, -1.0, -0.05], &[0.0, 6.0]);
        let u = s.finish();
        assert_eq!(u.dims, 3);
        assert_eq!(u.active, 1);
        assert!((u.kl - 3.0).abs() < 1e-12, "{}", u.kl);
    }

    #[test]
    fn the_kl_of_a_posterior_is_its_closed_form() {
        let dev = crate::device::cpu_device();
        // KL(N(mu, e^lv) ‖ N(0, 1)) = (mu² + e^lv − lv − 1) / 2 per dim.
        let q = Gaussian {
            mu: Tensor::from_floats([[1.0, 0.0], [0.0, 2.0]], &dev),
            logvar: Tensor::from_floats([[0.0, 1.0], [0.0, 0.0]], &dev),
        };
        let mut s = Sums::new(2);
        s.add_posterior(&q);
        let want = (0.5 + 0.5 * (1f64.exp() - 2.0) + 2.0) / 2.0;
        let u = s.finish();
        assert!((u.kl - want).abs() < 1e-5, "{} against {want}", u.kl);
        // Means (1, 0) and (0, 2): variances 0.25 and 1, both active.
        assert_eq!(u.active, 2);
    }
}
