//! The image decoder's likelihood p(x | z): Bernoulli on logits (the
//! default, as the MVAE literature uses for MNIST), or Gaussian or Laplace
//! around the mean `sigmoid(output)`, with a fixed scale or one learned per
//! colour channel (a calibrated decoder, Rybkin et al. 2021).
//!
//! Every likelihood's mean image is `sigmoid(output)`, so generation,
//! reconstruction and the metrics read a decoder the same way whichever
//! likelihood trained it.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// ½·ln(2π).
const HALF_LN_2PI: f32 = 0.918_938_5;

/// The pixel likelihood of the image decoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ImageLikelihood {
    /// Bernoulli with the decoder's output as logits (pixel values in [0, 1]
    /// as soft targets).
    #[default]
    Bernoulli,
    /// Gaussian N(x; sigmoid(output), σ²) with σ = `scale`, or σ learned per
    /// colour channel starting at `scale` when `learned`.
    Gaussian {
        scale: f32,
        #[serde(default)]
        learned: bool,
    },
    /// Laplace(x; sigmoid(output), b) with b = `scale`, or learned per
    /// colour channel starting at `scale` when `learned`.
    Laplace {
        scale: f32,
        #[serde(default)]
        learned: bool,
    },
}

/// A learned log-scale per colour channel, broadcast over its pixels.
#[derive(Module, Debug)]
pub struct PixelScale {
    /// `[colours]`
    pub log_scale: Param<Tensor<1>>,
    /// Pixels per channel (side × side).
    area: usize,
}

impl PixelScale {
    /// # Shapes
    /// → `[1, colours * area]` (planar)
    pub fn log_scale_row(&self) -> Tensor<2> {
        let c = self.log_scale.dims()[0];
        self.log_scale
            .val()
            .reshape([c, 1])
            .repeat_dim(1, self.area)
            .reshape([1, c * self.area])
    }
}

impl ImageLikelihood {
    /// The learned scale parameters, if this likelihood learns its scale.
    pub fn init_scale(&self, colours: usize, side: usize, device: &Device) -> Option<PixelScale> {
        match *self {
            ImageLikelihood::Gaussian {
                scale,
                learned: true,
            }
            | ImageLikelihood::Laplace {
                scale,
                learned: true,
            } => Some(PixelScale {
                log_scale: Param::from_tensor(Tensor::full([colours], scale.ln(), device)),
                area: side * side,
            }),
            _ => None,
        }
    }

    /// The fixed scale, when there is one.
    pub fn fixed_scale(&self) -> Option<f32> {
        match *self {
            ImageLikelihood::Gaussian { scale, .. } | ImageLikelihood::Laplace { scale, .. } => {
                Some(scale)
            }
            ImageLikelihood::Bernoulli => None,
        }
    }

    /// Elementwise negative log-likelihood of pixels `x` under the decoder
    /// output `logits`; `learned` is the model's [`PixelScale`] when the
    /// likelihood learns its scale.
    ///
    /// # Shapes
    /// `logits`, `x`: `[n, pixels]` → `[n, pixels]`
    pub fn nll(&self, learned: Option<&PixelScale>, logits: Tensor<2>, x: Tensor<2>) -> Tensor<2> {
        let log_scale = |scale: f32, device: &Device| -> Tensor<2> {
            match learned {
                Some(p) => p.log_scale_row(),
                None => Tensor::full([1, 1], scale.ln(), device),
            }
        };
        match *self {
            ImageLikelihood::Bernoulli => crate::nn::bernoulli::nll(logits, x),
            ImageLikelihood::Gaussian { scale, .. } => {
                let ls = log_scale(scale, &logits.device());
                let z = (x - sigmoid(logits)) * ls.clone().neg().exp();
                z.powi_scalar(2) * 0.5 + ls + HALF_LN_2PI
            }
            ImageLikelihood::Laplace { scale, .. } => {
                let ls = log_scale(scale, &logits.device());
                (x - sigmoid(logits)).abs() * ls.clone().neg().exp() + ls + std::f32::consts::LN_2
            }
        }
    }

    /// Reject scales that would make the likelihood meaningless.
    pub fn check(&self) -> std::result::Result<(), String> {
        match self.fixed_scale() {
            Some(s) if !(s.is_finite() && s > 0.0 && s <= 100.0) => {
                Err(format!("scale must be in (0, 100], got {s}"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::floats as vals;

    #[test]
    fn closed_forms() {
        let dev = Device::flex();
        let logits = Tensor::<2>::from_floats([[0.0, 2.0]], &dev);
        let x = Tensor::<2>::from_floats([[1.0, 0.25]], &dev);
        let mu = [0.5f32, 1.0 / (1.0 + (-2.0f32).exp())];
        let xs = [1.0f32, 0.25];

        let b = vals(ImageLikelihood::Bernoulli.nll(None, logits.clone(), x.clone()));
        // −[x ln σ(l) + (1 − x) ln(1 − σ(l))]
        for i in 0..2 {
            let want = -(xs[i] * mu[i].ln() + (1.0 - xs[i]) * (1.0 - mu[i]).ln());
            assert!((b[i] - want).abs() < 1e-5, "{i}: {} vs {want}", b[i]);
        }
        let s = 0.2f32;
        let g = ImageLikelihood::Gaussian {
            scale: s,
            learned: false,
        };
        let v = vals(g.nll(None, logits.clone(), x.clone()));
        for i in 0..2 {
            let d = xs[i] - mu[i];
            let want = 0.5 * (d / s).powi(2) + s.ln() + 0.5 * (2.0 * std::f32::consts::PI).ln();
            assert!((v[i] - want).abs() < 1e-5, "{i}: {} vs {want}", v[i]);
        }
        let l = ImageLikelihood::Laplace {
            scale: s,
            learned: false,
        };
        let v = vals(l.nll(None, logits, x));
        for i in 0..2 {
            let want = (xs[i] - mu[i]).abs() / s + (2.0 * s).ln();
            assert!((v[i] - want).abs() < 1e-5, "{i}: {} vs {want}", v[i]);
        }
    }

    #[test]
    fn densities_integrate_to_one() {
        // Over a fine grid of x on a wide interval, exp(−nll) sums to 1.
        let dev = Device::flex();
        for lk in [
            ImageLikelihood::Gaussian {
                scale: 0.3,
                learned: false,
            },
            ImageLikelihood::Laplace {
                scale: 0.3,
                learned: false,
            },
        ] {
            let n = 20_001;
            let (lo, hi) = (-6.0f32, 7.0f32);
            let dx = (hi - lo) / (n - 1) as f32;
            let xs: Vec<f32> = (0..n).map(|i| lo + i as f32 * dx).collect();
            let x = Tensor::<2>::from_data(TensorData::new(xs, [1, n]), &dev);
            let logits = Tensor::<2>::full([1, n], 0.7, &dev);
            let mass: f32 = vals(lk.nll(None, logits, x))
                .iter()
                .map(|v| (-v).exp() * dx)
                .sum();
            assert!((mass - 1.0).abs() < 1e-3, "{lk:?}: {mass}");
        }
    }

    #[test]
    fn learned_scale_is_per_channel_and_starts_at_the_given_scale() {
        let dev = Device::flex();
        let lk = ImageLikelihood::Gaussian {
            scale: 0.5,
            learned: true,
        };
        let p = lk.init_scale(3, 2, &dev).unwrap();
        assert_eq!(p.log_scale_row().dims(), [1, 12]);
        // Same values as the fixed scale before training.
        let logits = Tensor::<2>::from_floats([[0.3; 12]], &dev);
        let x = Tensor::<2>::from_floats([[0.9; 12]], &dev);
        let a = vals(lk.nll(Some(&p), logits.clone(), x.clone()));
        let b = vals(lk.nll(None, logits, x));
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-5);
        }
        assert!(ImageLikelihood::Bernoulli.init_scale(3, 2, &dev).is_none());
        assert!(ImageLikelihood::Laplace {
            scale: 0.0,
            learned: false
        }
        .check()
        .is_err());
    }
}
