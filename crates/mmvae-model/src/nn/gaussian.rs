//! Diagonal Gaussians: product of experts, KL to the standard normal, and
//! reparameterised sampling.

use burn::prelude::*;
use burn::tensor::Distribution;

/// A batch of diagonal Gaussians.
///
/// # Shapes
/// `mu`, `logvar`: `[batch, latent]`
#[derive(Debug, Clone)]
pub struct Gaussian {
    pub mu: Tensor<2>,
    pub logvar: Tensor<2>,
}

impl Gaussian {
    pub fn new(mu: Tensor<2>, logvar: Tensor<2>) -> Self {
        Self { mu, logvar }
    }

    /// Split an encoder output `[batch, 2 * latent]` into mu and logvar.
    pub fn from_concat(o: Tensor<2>) -> Self {
        let latent = o.dims()[1] / 2;
        Self {
            mu: o.clone().narrow(1, 0, latent),
            logvar: o.narrow(1, latent, latent),
        }
    }

    /// Dimensions `start..start + len` of every Gaussian in the batch.
    pub fn narrow(&self, start: usize, len: usize) -> Gaussian {
        Gaussian {
            mu: self.mu.clone().narrow(1, start, len),
            logvar: self.logvar.clone().narrow(1, start, len),
        }
    }

    /// The rows at `rows` (`[k]` indices), in that order.
    pub fn select_rows(&self, rows: Tensor<1, Int>) -> Gaussian {
        Gaussian::new(
            self.mu.clone().select(0, rows.clone()),
            self.logvar.clone().select(0, rows),
        )
    }

    /// The batch tiled `n` times: `[b, latent]` → `[n·b, latent]`.
    pub fn repeat_rows(&self, n: usize) -> Gaussian {
        Gaussian {
            mu: self.mu.clone().repeat_dim(0, n),
            logvar: self.logvar.clone().repeat_dim(0, n),
        }
    }

    /// The same distribution cut from the autodiff graph.
    pub fn detach(&self) -> Gaussian {
        Gaussian {
            mu: self.mu.clone().detach(),
            logvar: self.logvar.clone().detach(),
        }
    }

    /// Stack batches of Gaussians: `[b1, l] ++ [b2, l] ++ …` → `[Σb, l]`.
    pub fn cat_rows(parts: &[Gaussian]) -> Gaussian {
        Gaussian {
            mu: Tensor::cat(parts.iter().map(|g| g.mu.clone()).collect(), 0),
            logvar: Tensor::cat(parts.iter().map(|g| g.logvar.clone()).collect(), 0),
        }
    }

    /// Concatenate along the latent dimension: `[b, n] ++ [b, m]` → `[b, n + m]`.
    pub fn concat(&self, other: &Gaussian) -> Gaussian {
        Gaussian {
            mu: Tensor::cat(vec![self.mu.clone(), other.mu.clone()], 1),
            logvar: Tensor::cat(vec![self.logvar.clone(), other.logvar.clone()], 1),
        }
    }

    /// Product of Gaussian experts together with a standard-normal prior
    /// expert (Wu & Goodman 2018): precisions add, and the mean is the
    /// precision-weighted mean of the experts' means.
    pub fn product_with_prior(experts: &[Gaussian]) -> Gaussian {
        let first = experts.first().expect("at least one expert");
        let dims = first.mu.dims();
        let device = first.mu.device();
        // The prior expert: mu 0, precision 1.
        let mut precision = Tensor::<2>::ones(dims, &device);
        let mut weighted = Tensor::<2>::zeros(dims, &device);
        for e in experts {
            // Clamp for numerical safety: precisions in [e^-10, e^10].
            let p = e.logvar.clone().clamp(-10.0, 10.0).neg().exp();
            weighted = weighted + e.mu.clone() * p.clone();
            precision = precision + p;
        }
        let var = precision.recip();
        Gaussian {
            mu: weighted * var.clone(),
            logvar: var.log(),
        }
    }

    /// Product of the experts with the standard-normal prior expert, each
    /// expert's precision multiplied by its presence mask row by row: where
    /// an expert is absent (mask 0) the product is that of the others.
    ///
    /// # Shapes
    /// `experts`: `[n, latent]` each, `masks`: `[n, 1]` each → `[n, latent]`
    pub fn masked_product_with_prior(experts: &[Gaussian], masks: &[Tensor<2>]) -> Gaussian {
        let first = experts.first().expect("at least one expert");
        let dims = first.mu.dims();
        let device = first.mu.device();
        let mut precision = Tensor::<2>::ones(dims, &device);
        let mut weighted = Tensor::<2>::zeros(dims, &device);
        for (e, m) in experts.iter().zip(masks) {
            let p = e.logvar.clone().clamp(-10.0, 10.0).neg().exp() * m.clone();
            weighted = weighted + e.mu.clone() * p.clone();
            precision = precision + p;
        }
        let var = precision.recip();
        Gaussian {
            mu: weighted * var.clone(),
            logvar: var.log(),
        }
    }

    /// The unimodal posterior used at inference: one expert with the prior.
    pub fn with_prior(self) -> Gaussian {
        Gaussian::product_with_prior(&[self])
    }

    /// KL(q ‖ N(0, I)) summed over the latent dimensions.
    ///
    /// # Shapes
    /// returns `[batch]`
    pub fn kl_standard(&self) -> Tensor<1> {
        let kl = (self.mu.clone().powf_scalar(2.0) + self.logvar.clone().exp()
            - self.logvar.clone()
            - 1.0)
            * 0.5;
        kl.sum_dim(1).squeeze_dim::<1>(1)
    }

    /// KL(self ‖ other) between diagonal Gaussians, summed over the latent
    /// dimensions: ½ Σ [log σ₂² − log σ₁² + (σ₁² + (μ₁ − μ₂)²) / σ₂² − 1].
    ///
    /// # Shapes
    /// returns `[batch]`
    pub fn kl(&self, other: &Gaussian) -> Tensor<1> {
        let d = self.mu.clone() - other.mu.clone();
        let inv2 = other.logvar.clone().neg().exp();
        let kl = (other.logvar.clone() - self.logvar.clone()
            + (self.logvar.clone().exp() + d.powf_scalar(2.0)) * inv2
            - 1.0)
            * 0.5;
        kl.sum_dim(1).squeeze_dim::<1>(1)
    }

    /// ‖μ_a − μ_b‖² + ‖σ_a − σ_b‖² per row: `[batch]`.
    pub fn moment_mse(&self, other: &Gaussian) -> Tensor<1> {
        let d_mu = self.mu.clone() - other.mu.clone();
        let d_sd = (self.logvar.clone() * 0.5).exp() - (other.logvar.clone() * 0.5).exp();
        (d_mu.powi_scalar(2) + d_sd.powi_scalar(2))
            .sum_dim(1)
            .squeeze_dim::<1>(1)
    }

    /// log q(z), summed over the latent dimensions.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]` → `[batch]`
    pub fn log_prob(&self, z: Tensor<2>) -> Tensor<1> {
        let d = z - self.mu.clone();
        let lp = (d.powf_scalar(2.0) * self.logvar.clone().neg().exp()
            + self.logvar.clone()
            + (2.0 * std::f32::consts::PI).ln())
            * (-0.5);
        lp.sum_dim(1).squeeze_dim::<1>(1)
    }

    /// log ∫ self(z) other(z) dz row by row, the overlap integral of two
    /// Gaussians: log N(μ₁ − μ₂; 0, σ₁² + σ₂²), summed over dimensions.
    ///
    /// # Shapes
    /// returns `[batch]`
    pub fn log_overlap(&self, other: &Gaussian) -> Tensor<1> {
        let diff = Gaussian::new(
            self.mu.clone() - other.mu.clone(),
            (self.logvar.clone().exp() + other.logvar.clone().exp()).log(),
        );
        let zero = Tensor::zeros(diff.mu.dims(), &diff.mu.device());
        diff.log_prob(zero)
    }

    /// log N(z; 0, I), summed over the latent dimensions: `[batch, latent]` → `[batch]`.
    pub fn standard_log_prob(z: Tensor<2>) -> Tensor<1> {
        let lp = (z.powf_scalar(2.0) + (2.0 * std::f32::consts::PI).ln()) * (-0.5);
        lp.sum_dim(1).squeeze_dim::<1>(1)
    }

    /// log of the equal-weight mixture of the present experts' densities at
    /// `z`, row by row: log (Σ_m mask_m q_m(z) / Σ_m mask_m), computed
    /// stably. Each row needs at least one present expert.
    ///
    /// # Shapes
    /// `experts`: `[n, latent]` each, `masks`: `[n, 1]` each (1 or 0),
    /// `z`: `[n, latent]` → `[n]`
    pub fn mixture_log_prob(experts: &[Gaussian], masks: &[Tensor<2>], z: Tensor<2>) -> Tensor<1> {
        let n = z.dims()[0];
        // An absent expert's log-density is pushed far below the others'.
        let lp: Vec<Tensor<2>> = experts
            .iter()
            .zip(masks)
            .map(|(e, m)| e.log_prob(z.clone()).reshape([n, 1]) + (m.clone() - 1.0) * 1.0e9)
            .collect();
        let lp = Tensor::cat(lp, 1); // [n, M]
        let count = Tensor::cat(masks.to_vec(), 1).sum_dim(1).reshape([n]); // [n]
        let top = lp.clone().max_dim(1); // [n, 1]
        let s = (lp - top.clone()).exp().sum_dim(1); // [n, 1]
        (top + s.log()).reshape([n]) - count.log()
    }

    /// z = mu + sigma * eps, eps ~ N(0, I), differentiable in mu and logvar.
    pub fn rsample(&self) -> Tensor<2> {
        self.rsample_with(self.mu.random_like(Distribution::Normal(0.0, 1.0)))
    }

    /// z = mu + sigma * eps for given standard-normal noise `eps` (same shape).
    pub fn rsample_with(&self, eps: Tensor<2>) -> Tensor<2> {
        self.mu.clone() + (self.logvar.clone() * 0.5).exp() * eps
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn moment_mse_is_the_squared_distance_of_means_and_deviations() {
        let dev = Device::flex();
        let a = Gaussian::new(
            Tensor::from_floats([[0.0, 1.0]], &dev),
            Tensor::from_floats([[0.0, (4.0f32).ln()]], &dev),
        );
        let b = Gaussian::new(
            Tensor::from_floats([[3.0, 1.0]], &dev),
            Tensor::from_floats([[(9.0f32).ln(), 0.0]], &dev),
        );
        // (0-3)² + (1-1)² + (1-3)² + (2-1)² = 9 + 0 + 4 + 1.
        let v = a.moment_mse(&b).try_into_vec_as::<f32>().unwrap()[0];
        assert!((v - 14.0).abs() < 1e-5, "{v}");
    }
    use super::*;

    fn t(v: &[f32], dev: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [1, v.len()]), dev)
    }
    fn vals(x: Tensor<2>) -> Vec<f32> {
        x.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn product_of_two_gaussians_matches_closed_form() {
        let dev = Device::flex();
        // N(1, 0.5) × N(-2, 2) × N(0, 1).
        let (m1, v1, m2, v2) = (1.0f32, 0.5f32, -2.0f32, 2.0f32);
        let a = Gaussian::new(t(&[m1], &dev), t(&[v1.ln()], &dev));
        let b = Gaussian::new(t(&[m2], &dev), t(&[v2.ln()], &dev));
        let p = Gaussian::product_with_prior(&[a, b]);
        let prec = 1.0 / v1 + 1.0 / v2 + 1.0;
        let mu = (m1 / v1 + m2 / v2) / prec;
        assert!((vals(p.mu)[0] - mu).abs() < 1e-5);
        assert!((vals(p.logvar)[0] - (1.0 / prec).ln()).abs() < 1e-5);
    }

    #[test]
    fn kl_matches_numeric_integral() {
        let dev = Device::flex();
        let (mu, var) = (0.7f64, 0.3f64);
        let g = Gaussian::new(
            t(&[mu as f32, 0.0], &dev),
            t(&[(var as f32).ln(), 0.0], &dev),
        );
        let kl = g.kl_standard().into_data().try_into_vec::<f32>().unwrap()[0] as f64;
        // ∫ q log(q/p) dz by the trapezoidal rule on [-12, 12].
        let (n, lo, hi) = (200_000, -12.0f64, 12.0f64);
        let h = (hi - lo) / n as f64;
        let mut acc = 0.0;
        for i in 0..=n {
            let z = lo + i as f64 * h;
            let lq = -0.5 * ((z - mu).powi(2) / var + var.ln() + (2.0 * std::f64::consts::PI).ln());
            let lp = -0.5 * (z * z + (2.0 * std::f64::consts::PI).ln());
            let w = if i == 0 || i == n { 0.5 } else { 1.0 };
            acc += w * lq.exp() * (lq - lp) * h;
        }
        assert!(
            (kl - acc).abs() < 1e-4,
            "closed form {kl} vs integral {acc}"
        );
    }

    #[test]
    fn kl_between_gaussians_matches_numeric_integral() {
        let dev = Device::flex();
        let (m1, v1, m2, v2) = (0.4f64, 0.3f64, -0.5f64, 1.7f64);
        let a = Gaussian::new(t(&[m1 as f32], &dev), t(&[(v1 as f32).ln()], &dev));
        let b = Gaussian::new(t(&[m2 as f32], &dev), t(&[(v2 as f32).ln()], &dev));
        let kl = a.kl(&b).into_data().try_into_vec::<f32>().unwrap()[0] as f64;
        let logn = |z: f64, m: f64, v: f64| {
            -0.5 * ((z - m).powi(2) / v + v.ln() + (2.0 * std::f64::consts::PI).ln())
        };
        let (n, lo, hi) = (200_000, -12.0f64, 12.0f64);
        let h = (hi - lo) / n as f64;
        let mut acc = 0.0;
        for i in 0..=n {
            let z = lo + i as f64 * h;
            let (la, lb) = (logn(z, m1, v1), logn(z, m2, v2));
            let w = if i == 0 || i == n { 0.5 } else { 1.0 };
            acc += w * la.exp() * (la - lb) * h;
        }
        assert!(
            (kl - acc).abs() < 1e-4,
            "closed form {kl} vs integral {acc}"
        );
        // Against N(0, 1) it equals kl_standard.
        let std = Gaussian::new(t(&[0.0], &dev), t(&[0.0], &dev));
        let k1 = a.kl(&std).into_data().try_into_vec::<f32>().unwrap()[0];
        let k2 = a.kl_standard().into_data().try_into_vec::<f32>().unwrap()[0];
        assert!((k1 - k2).abs() < 1e-6);
    }

    #[test]
    fn log_densities_match_closed_forms() {
        let dev = Device::flex();
        let (m, v, z) = (0.3f64, 0.6f64, -0.4f64);
        let ln = |z: f64, m: f64, v: f64| {
            -0.5 * ((z - m).powi(2) / v + v.ln() + (2.0 * std::f64::consts::PI).ln())
        };
        let g = Gaussian::new(t(&[m as f32], &dev), t(&[(v as f32).ln()], &dev));
        let lp = g
            .log_prob(t(&[z as f32], &dev))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()[0];
        assert!((lp as f64 - ln(z, m, v)).abs() < 1e-5);
        let sp = Gaussian::standard_log_prob(t(&[z as f32], &dev))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()[0];
        assert!((sp as f64 - ln(z, 0.0, 1.0)).abs() < 1e-5);
        // Mixture: log ½(N(z; m, v) + N(z; 2, 0.1)), even far in one tail.
        let h = Gaussian::new(t(&[2.0], &dev), t(&[(0.1f32).ln()], &dev));
        for z in [-0.4f64, 2.1, 40.0] {
            let one = || Tensor::<2>::ones([1, 1], &dev);
            let mx = Gaussian::mixture_log_prob(
                &[g.clone(), h.clone()],
                &[one(), one()],
                t(&[z as f32], &dev),
            )
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()[0] as f64;
            let (a, b) = (ln(z, m, v), ln(z, 2.0, 0.1));
            let hi = a.max(b);
            let want = hi + (0.5 * ((a - hi).exp() + (b - hi).exp())).ln();
            assert!(
                (mx - want).abs() < 1e-3 * want.abs().max(1.0),
                "{z}: {mx} vs {want}"
            );
            // An absent component does not count: the mixture is the other.
            let only_g = Gaussian::mixture_log_prob(
                &[g.clone(), h.clone()],
                &[one(), Tensor::<2>::zeros([1, 1], &dev)],
                t(&[z as f32], &dev),
            )
            .into_scalar::<f32>() as f64;
            assert!(
                (only_g - a).abs() < 1e-3 * a.abs().max(1.0),
                "{z}: {only_g} vs {a}"
            );
        }
    }

    #[test]
    fn overlap_integral_matches_numeric_integral() {
        let dev = Device::flex();
        let (m1, v1, m2, v2) = (0.3f64, 0.5f64, -0.8f64, 1.4f64);
        let a = Gaussian::new(t(&[m1 as f32], &dev), t(&[(v1 as f32).ln()], &dev));
        let b = Gaussian::new(t(&[m2 as f32], &dev), t(&[(v2 as f32).ln()], &dev));
        let got = a.log_overlap(&b).into_data().try_into_vec::<f32>().unwrap()[0] as f64;
        let pdf = |z: f64, m: f64, v: f64| {
            (-(z - m).powi(2) / (2.0 * v)).exp() / (2.0 * std::f64::consts::PI * v).sqrt()
        };
        let (n, lo, hi) = (200_000, -12.0f64, 12.0f64);
        let h = (hi - lo) / n as f64;
        let acc: f64 = (0..=n)
            .map(|i| {
                let z = lo + i as f64 * h;
                let w = if i == 0 || i == n { 0.5 } else { 1.0 };
                w * pdf(z, m1, v1) * pdf(z, m2, v2) * h
            })
            .sum();
        assert!((got - acc.ln()).abs() < 1e-4, "{got} vs {}", acc.ln());
    }

    #[test]
    fn rsample_has_the_right_moments() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(3);
        let n = 20_000;
        let g = Gaussian::new(
            Tensor::full([n, 1], 2.0, &dev),
            Tensor::full([n, 1], (0.25f32).ln(), &dev),
        );
        let z = vals(g.rsample());
        let mean = z.iter().sum::<f32>() / n as f32;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n as f32;
        assert!(
            (mean - 2.0).abs() < 0.02 && (var - 0.25).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
