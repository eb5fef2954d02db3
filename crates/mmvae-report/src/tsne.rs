//! Exact t-SNE (van der Maaten & Hinton 2008) for a few thousand points:
//! Gaussian affinities calibrated to a perplexity, Student-t affinities in
//! the plane, gradient descent with momentum, per-parameter gains and early
//! exaggeration. O(n²) per iteration, which is fine for the ≤ 2,000 latent
//! means a plot shows.

use crate::error::{ReportError, Result};

/// Settings of an embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TsneConfig {
    /// Effective number of neighbours of each point.
    pub perplexity: f64,
    pub iterations: usize,
    /// Affinities are multiplied by this during the first `exaggeration_iters`.
    pub early_exaggeration: f64,
    pub exaggeration_iters: usize,
    /// Step size; `None`: max(n / early_exaggeration / 4, 50), as scikit-learn's "auto".
    pub learning_rate: Option<f64>,
    /// Seed of the initial layout.
    pub seed: u64,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 1000,
            early_exaggeration: 12.0,
            exaggeration_iters: 250,
            learning_rate: None,
            seed: 0,
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Standard normal draws (Box–Muller) from a counter-based generator.
fn normals(seed: u64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| {
            let a = splitmix64(seed ^ splitmix64(2 * k as u64));
            let b = splitmix64(seed ^ splitmix64(2 * k as u64 + 1));
            let u1 = ((a >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let u2 = (b >> 11) as f64 / (1u64 << 53) as f64;
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}

/// Conditional affinities p(j|i) for row `i` of squared distances, with the
/// Gaussian precision found by bisection so that the row's perplexity
/// (2^entropy in bits, e^entropy in nats) is `perplexity`.
fn conditional_row(d: &[f64], i: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let (mut beta, mut lo, mut hi) = (1.0f64, 0.0f64, f64::INFINITY);
    let mut p = vec![0.0; d.len()];
    // Shift by the nearest distance so that exp() cannot underflow to 0.
    let dmin = d
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, &v)| v)
        .fold(f64::INFINITY, f64::min);
    for _ in 0..200 {
        let mut sum = 0.0;
        for (j, (pj, &dj)) in p.iter_mut().zip(d).enumerate() {
            *pj = if j == i {
                0.0
            } else {
                (-(dj - dmin) * beta).exp()
            };
            sum += *pj;
        }
        // H = log sum + beta * E[d - dmin]
        let mut ed = 0.0;
        for (pj, &dj) in p.iter().zip(d) {
            ed += pj * (dj - dmin);
        }
        let h = sum.ln() + beta * ed / sum;
        for pj in p.iter_mut() {
            *pj /= sum;
        }
        let diff = h - target;
        if diff.abs() < 1e-5 {
            break;
        }
        if diff > 0.0 {
            // Too flat: raise the precision.
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = (beta + lo) / 2.0;
        }
    }
    p
}

/// Symmetric joint affinities P (row-major `[n, n]`, sums to 1).
pub fn joint_affinities(points: &[Vec<f32>], perplexity: f64) -> Vec<f64> {
    let n = points.len();
    let mut d = vec![0.0f64; n * n];
    for i in 0..n {
        for j in (i + 1)..n {
            let s: f64 = points[i]
                .iter()
                .zip(&points[j])
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum();
            d[i * n + j] = s;
            d[j * n + i] = s;
        }
    }
    let mut p = vec![0.0f64; n * n];
    for i in 0..n {
        let row = conditional_row(&d[i * n..(i + 1) * n], i, perplexity);
        p[i * n..(i + 1) * n].copy_from_slice(&row);
    }
    let mut joint = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            joint[i * n + j] = ((p[i * n + j] + p[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
        joint[i * n + i] = 0.0;
    }
    joint
}

/// KL(P ‖ Q) of a layout `y` and its gradient, P scaled by `exaggeration`.
pub fn kl_and_gradient(p: &[f64], y: &[[f64; 2]], exaggeration: f64) -> (f64, Vec<[f64; 2]>) {
    let n = y.len();
    let mut num = vec![0.0f64; n * n];
    let mut sum = 0.0;
    for i in 0..n {
        for j in (i + 1)..n {
            let dx = y[i][0] - y[j][0];
            let dy = y[i][1] - y[j][1];
            let v = 1.0 / (1.0 + dx * dx + dy * dy);
            num[i * n + j] = v;
            num[j * n + i] = v;
            sum += 2.0 * v;
        }
    }
    let mut grad = vec![[0.0f64; 2]; n];
    let mut kl = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let q = (num[i * n + j] / sum).max(1e-300);
            let pij = p[i * n + j];
            if pij > 0.0 {
                kl += pij * (pij / q).ln();
            }
            let mult = 4.0 * (exaggeration * pij - q) * num[i * n + j];
            grad[i][0] += mult * (y[i][0] - y[j][0]);
            grad[i][1] += mult * (y[i][1] - y[j][1]);
        }
    }
    (kl, grad)
}

/// Embed `points` (all of one dimension) in the plane.
pub fn embed(points: &[Vec<f32>], cfg: &TsneConfig) -> Result<Vec<[f64; 2]>> {
    let n = points.len();
    if n < 3 {
        return Err(ReportError::Invalid(format!(
            "t-SNE needs at least 3 points, got {n}"
        )));
    }
    let dim = points[0].len();
    if points.iter().any(|p| p.len() != dim) {
        return Err(ReportError::Invalid(
            "t-SNE points must all have one dimension".into(),
        ));
    }
    if points.iter().flatten().any(|v| !v.is_finite()) {
        return Err(ReportError::Invalid("t-SNE points must be finite".into()));
    }
    // A perplexity of at least the point count has no solution.
    let perplexity = cfg.perplexity.clamp(1.0, (n as f64 - 1.0) / 3.0);
    let p = joint_affinities(points, perplexity);
    let lr = cfg
        .learning_rate
        .unwrap_or((n as f64 / cfg.early_exaggeration / 4.0).max(50.0));
    let init = normals(cfg.seed, 2 * n);
    let mut y: Vec<[f64; 2]> = (0..n)
        .map(|i| [1e-4 * init[2 * i], 1e-4 * init[2 * i + 1]])
        .collect();
    let mut update = vec![[0.0f64; 2]; n];
    let mut gains = vec![[1.0f64; 2]; n];
    for it in 0..cfg.iterations {
        let early = it < cfg.exaggeration_iters;
        let exaggeration = if early { cfg.early_exaggeration } else { 1.0 };
        let momentum = if early { 0.5 } else { 0.8 };
        let (_, grad) = kl_and_gradient(&p, &y, exaggeration);
        for i in 0..n {
            for k in 0..2 {
                let g = grad[i][k];
                gains[i][k] = if (g > 0.0) != (update[i][k] > 0.0) {
                    gains[i][k] + 0.2
                } else {
                    (gains[i][k] * 0.8).max(0.01)
                };
                update[i][k] = momentum * update[i][k] - lr * gains[i][k] * g;
                y[i][k] += update[i][k];
            }
        }
        for k in 0..2 {
            let mean = y.iter().map(|v| v[k]).sum::<f64>() / n as f64;
            y.iter_mut().for_each(|v| v[k] -= mean);
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tight clusters far apart in 8 dimensions.
    fn clusters(per: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
        let noise = normals(7, 3 * per * 8);
        let mut pts = Vec::new();
        let mut labels = Vec::new();
        for c in 0..3 {
            for k in 0..per {
                let v: Vec<f32> = (0..8)
                    .map(|d| {
                        let centre = if d == c { 10.0 } else { 0.0 };
                        centre + 0.3 * noise[(c * per + k) * 8 + d] as f32
                    })
                    .collect();
                pts.push(v);
                labels.push(c);
            }
        }
        (pts, labels)
    }

    #[test]
    fn rows_reach_the_target_perplexity() {
        let (pts, _) = clusters(20);
        let n = pts.len();
        let d: Vec<f64> = (0..n)
            .map(|j| {
                pts[0]
                    .iter()
                    .zip(&pts[j])
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum()
            })
            .collect();
        for perp in [5.0, 15.0] {
            let p = conditional_row(&d, 0, perp);
            assert_eq!(p[0], 0.0);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let h: f64 = -p
                .iter()
                .filter(|&&v| v > 0.0)
                .map(|v| v * v.ln())
                .sum::<f64>();
            assert!(
                (h.exp() - perp).abs() < 1e-3 * perp,
                "{} vs {perp}",
                h.exp()
            );
        }
        let joint = joint_affinities(&pts, 10.0);
        assert!((joint.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        assert!((joint[n + 2] - joint[2 * n + 1]).abs() < 1e-15, "symmetric");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (pts, _) = clusters(4);
        let p = joint_affinities(&pts, 3.0);
        let noise = normals(3, 2 * pts.len());
        let y: Vec<[f64; 2]> = (0..pts.len())
            .map(|i| [noise[2 * i], noise[2 * i + 1]])
            .collect();
        // With exaggeration 1 the gradient is that of the KL itself.
        let (_, g) = kl_and_gradient(&p, &y, 1.0);
        let h = 1e-6;
        for i in [0, 5, 11] {
            for k in 0..2 {
                let mut a = y.clone();
                a[i][k] += h;
                let mut b = y.clone();
                b[i][k] -= h;
                let fd =
                    (kl_and_gradient(&p, &a, 1.0).0 - kl_and_gradient(&p, &b, 1.0).0) / (2.0 * h);
                assert!(
                    (fd - g[i][k]).abs() < 1e-6 + 1e-4 * fd.abs(),
                    "{fd} vs {}",
                    g[i][k]
                );
            }
        }
    }

    #[test]
    fn clusters_stay_apart_and_runs_repeat() {
        let (pts, labels) = clusters(25);
        let cfg = TsneConfig {
            perplexity: 10.0,
            iterations: 400,
            ..TsneConfig::default()
        };
        let y = embed(&pts, &cfg).unwrap();
        // Every point's nearest neighbour in the plane is of its cluster.
        for i in 0..y.len() {
            let nn = (0..y.len())
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let da = (y[a][0] - y[i][0]).powi(2) + (y[a][1] - y[i][1]).powi(2);
                    let db = (y[b][0] - y[i][0]).powi(2) + (y[b][1] - y[i][1]).powi(2);
                    da.total_cmp(&db)
                })
                .unwrap();
            assert_eq!(labels[nn], labels[i], "point {i}");
        }
        assert_eq!(y, embed(&pts, &cfg).unwrap());
        let other = embed(&pts, &TsneConfig { seed: 1, ..cfg }).unwrap();
        assert_ne!(y, other);
        assert!(embed(&pts[..2], &cfg).is_err());
        let mut bad = pts.clone();
        bad[3][1] = f32::NAN;
        assert!(embed(&bad, &cfg).is_err());
    }
}
