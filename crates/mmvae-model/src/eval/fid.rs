//! Fréchet distance between two sets of feature vectors (FID when the
//! features come from an image network):
//! ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½).
//!
//! mmvae computes it on the penultimate layer of the in-repo evaluation
//! classifier of each dataset, so the numbers compare runs on one dataset;
//! they are not Inception-FIDs and not comparable with published FIDs.

use nalgebra::{DMatrix, DVector};

/// Mean and covariance (divided by n − 1) of `n` feature rows of width `dim`.
#[derive(Debug, Clone)]
pub struct FeatureStats {
    pub n: usize,
    mean: DVector<f64>,
    cov: DMatrix<f64>,
}

impl FeatureStats {
    /// `rows`: `n × dim` values, row after row.
    pub fn new(rows: &[f32], dim: usize) -> Self {
        FeatureSums::of(rows, dim).stats()
    }
}

/// The running mean and scatter Σ (x − μ)(x − μ)ᵀ of feature rows added a
/// batch at a time (Chan, Golub and LeVeque's pairwise update), for sets
/// too large to keep: the Fréchet distances of every (inputs → output)
/// pair of a coherence matrix.
#[derive(Debug, Clone)]
pub struct FeatureSums {
    n: usize,
    mean: DVector<f64>,
    scatter: DMatrix<f64>,
}

impl FeatureSums {
    /// No rows yet, of width `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            n: 0,
            mean: DVector::zeros(dim),
            scatter: DMatrix::zeros(dim, dim),
        }
    }

    /// The rows of `rows` (`n × dim` values, row after row).
    fn of(rows: &[f32], dim: usize) -> Self {
        let n = rows.len() / dim.max(1);
        let m = DMatrix::from_row_slice(n, dim, &rows[..n * dim]).map(|v| v as f64);
        let mean = if n == 0 {
            DVector::zeros(dim)
        } else {
            m.row_mean().transpose()
        };
        let mut centred = m;
        for mut r in centred.row_iter_mut() {
            r -= mean.transpose();
        }
        let scatter = centred.transpose() * &centred;
        Self { n, mean, scatter }
    }

    /// Add a batch of rows (`k × dim` values, row after row).
    pub fn add(&mut self, rows: &[f32]) {
        let b = Self::of(rows, self.mean.len());
        if b.n == 0 {
            return;
        }
        let n = self.n + b.n;
        let delta = &b.mean - &self.mean;
        let w = (self.n as f64) * (b.n as f64) / n as f64;
        self.scatter += &b.scatter + &delta * delta.transpose() * w;
        self.mean += &delta * (b.n as f64 / n as f64);
        self.n = n;
    }

    /// Rows added so far.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no row has been added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Their mean and covariance (divided by n − 1).
    pub fn stats(&self) -> FeatureStats {
        FeatureStats {
            n: self.n,
            mean: self.mean.clone(),
            cov: &self.scatter / (self.n.max(2) - 1) as f64,
        }
    }
}

/// Symmetric PSD square root through the eigen-decomposition (negative
/// eigenvalues from rounding are clamped to 0).
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let e = sym
        .clone()
        .try_symmetric_eigen(1e-12, 100_000)
        .unwrap_or_else(|| {
            // Rare non-convergence: a relative jitter on the diagonal.
            let n = sym.nrows();
            let j = 1e-9 * sym.trace().abs().max(1e-30) / n.max(1) as f64;
            (sym + DMatrix::identity(n, n) * j).symmetric_eigen()
        });
    let d = DMatrix::from_diagonal(&e.eigenvalues.map(|v| v.max(0.0).sqrt()));
    &e.eigenvectors * d * e.eigenvectors.transpose()
}

/// The Fréchet distance between two Gaussians fitted to features.
/// Tr((Σ₁Σ₂)^½) is computed as Tr((Σ₁^½ Σ₂ Σ₁^½)^½), which is symmetric.
/// Dimensions constant in both sets (dead ReLU units) add only their mean
/// difference, so they are left out of the matrix square roots, whose
/// eigen-solver can return NaN on exactly zero rows.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> f64 {
    let d = &a.mean - &b.mean;
    let live: Vec<usize> = (0..a.cov.nrows())
        .filter(|&i| a.cov[(i, i)] > 0.0 || b.cov[(i, i)] > 0.0)
        .collect();
    let pick =
        |m: &DMatrix<f64>| DMatrix::from_fn(live.len(), live.len(), |r, c| m[(live[r], live[c])]);
    let (ca, cb) = (pick(&a.cov), pick(&b.cov));
    let s1 = sqrt_psd(&ca);
    let inner = &s1 * &cb * &s1;
    let cross = sqrt_psd(&inner).trace();
    d.dot(&d) + ca.trace() + cb.trace() - 2.0 * cross
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_dimensions_do_not_break_the_square_root() {
        // Every third feature is 0 everywhere (a dead unit).
        let dim = 12;
        let rows = |n: usize, s: usize| -> Vec<f32> {
            (0..n * dim)
                .map(|i| {
                    if (i % dim) % 3 == 0 {
                        0.0
                    } else {
                        ((i * 7919 + s) % 101) as f32 / 10.0
                    }
                })
                .collect()
        };
        let (a, b) = (
            FeatureStats::new(&rows(50, 1), dim),
            FeatureStats::new(&rows(80, 5), dim),
        );
        let fd = frechet_distance(&a, &b);
        assert!(fd.is_finite() && fd >= -1e-6, "{fd}");
        assert!(frechet_distance(&a, &a).abs() < 1e-6);
    }

    #[test]
    fn running_sums_match_the_whole_set_however_it_is_split() {
        let dim = 5;
        let rows: Vec<f32> = (0..(203 * dim))
            .map(|i| (((i * 7919) % 997) as f32 / 50.0) - 3.0 + (i % dim) as f32 * 10.0)
            .collect();
        let whole = FeatureStats::new(&rows, dim);
        for chunk in [1, 7, 64, 203, 500] {
            let mut sums = FeatureSums::new(dim);
            assert!(sums.is_empty());
            for part in rows.chunks(chunk * dim) {
                sums.add(part);
            }
            sums.add(&[]);
            let s = sums.stats();
            assert_eq!((s.n, sums.len()), (203, 203));
            for i in 0..dim {
                assert!((s.mean[i] - whole.mean[i]).abs() < 1e-9, "chunk {chunk}");
                for j in 0..dim {
                    let (a, b) = (s.cov[(i, j)], whole.cov[(i, j)]);
                    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "chunk {chunk}");
                }
            }
            // Zero up to the square root's rounding (traces of several
            // hundred here; the set against itself comes out at ~1e-6).
            let fd = frechet_distance(&s, &whole);
            assert!(fd.abs() < 1e-4, "chunk {chunk}: {fd}");
        }
        // The covariance itself, in one dimension: values 0, 2, 4 (n − 1).
        let mut one = FeatureSums::new(1);
        one.add(&[0.0]);
        one.add(&[2.0, 4.0]);
        let s = one.stats();
        assert!((s.mean[0] - 2.0).abs() < 1e-12 && (s.cov[(0, 0)] - 4.0).abs() < 1e-12);
    }

    #[test]
    fn frechet_distance_closed_forms() {
        // Identical samples: 0.
        let rows: Vec<f32> = (0..200).map(|i| ((i * 37) % 17) as f32 / 3.0).collect();
        let a = FeatureStats::new(&rows, 4);
        assert!(frechet_distance(&a, &a).abs() < 1e-6);
        // A shift by c in every one of the 4 dimensions: ‖c‖² = 4c².
        let shifted: Vec<f32> = rows.iter().map(|v| v + 0.5).collect();
        let b = FeatureStats::new(&shifted, 4);
        assert!((frechet_distance(&a, &b) - 4.0 * 0.25).abs() < 1e-6);
        // Scaling by s (diagonal covariances): Σ (σᵢ − sσᵢ)² in 1-D form:
        // for one dimension with variance v, FD = v (1 − s)².
        let one: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect();
        let s = 2.0f32;
        let scaled: Vec<f32> = one.iter().map(|v| v * s).collect();
        let (x, y) = (FeatureStats::new(&one, 1), FeatureStats::new(&scaled, 1));
        let v = x.cov[(0, 0)];
        let mu_d = (y.mean[0] - x.mean[0]).powi(2);
        let want = mu_d + v * (1.0 - s as f64).powi(2);
        assert!((frechet_distance(&x, &y) - want).abs() < 1e-6 * want);
    }
}
