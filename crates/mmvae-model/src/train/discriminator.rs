//! Adversarial refinement: a patch discriminator (PatchGAN, Isola et al.
//! 2017) that scores overlapping patches of an image as real or generated,
//! and the hinge and non-saturating GAN losses.
//!
//! The discriminator trains with its own optimizer, alternating with the
//! model: the model's step adds the generator loss of its decoded images
//! (the discriminator held fixed), then the discriminator steps on the real
//! batch against those images, detached.

use crate::nn::conv::conv2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu, softplus};

use crate::config::{AdversarialConfig, AdversarialLoss};
use crate::modality::image::conv::{conv3, down};

/// Stride-2 4×4 convolutions (LeakyReLU 0.2) halve the side while it stays
/// even and at least 8, at most three times (64 → 32 → 16 → 8; 28 → 14 → 7),
/// doubling the channels; a 3×3 convolution then gives one logit per patch.
#[derive(Module, Debug)]
pub struct PatchDiscriminator {
    convs: Vec<Conv2d>,
    head: Conv2d,
    side: usize,
    colours: usize,
}

impl AdversarialConfig {
    /// The discriminator for `colours`×`side`×`side` images.
    pub fn init(&self, side: usize, colours: usize, device: &Device) -> PatchDiscriminator {
        let mut convs = Vec::new();
        let (mut c_in, mut c_out, mut s) = (colours, self.channels, side);
        while s % 2 == 0 && s / 2 >= 7 && convs.len() < 3 {
            convs.push(down(c_in, c_out, device));
            c_in = c_out;
            c_out *= 2;
            s /= 2;
        }
        let head = conv3(c_in, 1, device);
        let d = PatchDiscriminator {
            convs,
            head,
            side,
            colours,
        };
        crate::mvae::force_init(&d);
        d
    }
}

impl PatchDiscriminator {
    /// Patch logits (positive = real) of images with pixel values in [0, 1].
    ///
    /// # Shapes
    /// `images`: `[batch, colours * side * side]` (planar) → `[batch, patches]`
    pub fn forward(&self, images: Tensor<2>) -> Tensor<2> {
        let [b, _] = images.dims();
        let mut h = images.reshape([b, self.colours, self.side, self.side]) * 2.0 - 1.0;
        for c in &self.convs {
            h = leaky_relu(conv2d(c, h), 0.2);
        }
        conv2d(&self.head, h).flatten::<2>(1, 3)
    }

    /// Patches per image.
    pub fn patches(&self) -> usize {
        let mut s = self.side;
        for _ in &self.convs {
            s /= 2;
        }
        s * s
    }
}

/// The discriminator's loss, a mean over images and patches: `[1]`.
///
/// # Shapes
/// `real`, `fake`: patch logits `[n, patches]`
pub fn discriminator_loss(kind: AdversarialLoss, real: Tensor<2>, fake: Tensor<2>) -> Tensor<1> {
    match kind {
        AdversarialLoss::Hinge => relu(real.neg() + 1.0).mean() + relu(fake + 1.0).mean(),
        AdversarialLoss::NonSaturating => {
            softplus(real.neg(), 1.0).mean() + softplus(fake, 1.0).mean()
        }
    }
}

/// The generator's loss per image, summed over its patches: `[n]`.
///
/// # Shapes
/// `fake`: patch logits `[n, patches]` → `[n]`
pub fn generator_loss(kind: AdversarialLoss, fake: Tensor<2>) -> Tensor<1> {
    let per_patch = match kind {
        AdversarialLoss::Hinge => fake.neg(),
        AdversarialLoss::NonSaturating => softplus(fake.neg(), 1.0),
    };
    per_patch.sum_dim(1).squeeze_dim::<1>(1)
}

/// Step of the central differences in [`r1_penalty`], in pixel units
/// (pixels are in [0, 1]).
pub const R1_STEP: f32 = 1e-2;

/// The squared directional derivative of each image's mean patch logit,
/// ((f(x + εu) − f(x − εu)) / 2ε)², along the direction `u` of its row.
///
/// # Shapes
/// `images`, `directions`: `[batch, pixels]` → `[batch]`
pub fn directional_sq(
    d: &PatchDiscriminator,
    images: Tensor<2>,
    directions: Tensor<2>,
    step: f32,
) -> Tensor<1> {
    let f = |x: Tensor<2>| d.forward(x).mean_dim(1).squeeze_dim::<1>(1); // [b]
    let du = directions * step;
    let g = (f(images.clone() + du.clone()) - f(images - du)) / (2.0 * step);
    g.powi_scalar(2)
}

/// The R1 penalty's E‖∇ₓ f(x)‖² over real images, f the mean patch logit:
/// one standard Gaussian direction u per image, since E_u[(∇f·u)²] =
/// ‖∇f‖², with the directional derivative by central differences (exact
/// up to O(ε²)). First-order autodiff through it gives the penalty's
/// gradient with respect to the discriminator's weights, which is all the
/// discriminator's step needs. `[1]`.
///
/// # Shapes
/// `images`: `[batch, pixels]`
pub fn r1_penalty(d: &PatchDiscriminator, images: Tensor<2>) -> Tensor<1> {
    let u = Tensor::<2>::random(
        images.dims(),
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &images.device(),
    );
    directional_sq(d, images, u, R1_STEP).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::floats as vals;
    use burn::optim::{AdamConfig, GradientsParams};

    /// A small fixed discriminator for 8×8 grey images on an autodiff
    /// device, seeded.
    fn tiny_disc(dev: &Device, seed: u64) -> PatchDiscriminator {
        dev.seed(seed);
        let cfg = AdversarialConfig {
            channels: 3,
            ..AdversarialConfig::default()
        };
        cfg.init(8, 1, dev).no_grad()
    }

    /// ∇ₓ of the summed mean patch logits, by autodiff: `[batch * pixels]`.
    fn mean_logit_grad(d: &PatchDiscriminator, x: Tensor<2>) -> Vec<f32> {
        let x = x.detach().require_grad();
        let f = d.forward(x.clone()).mean_dim(1).sum();
        vals(x.grad(&f.backward()).unwrap())
    }

    #[test]
    fn patch_map_sizes() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        for (side, colours, patches) in [(64, 3, 64), (28, 1, 49), (16, 1, 64), (8, 1, 64)] {
            let d = AdversarialConfig::default().init(side, colours, &dev);
            let x = Tensor::<2>::zeros([2, colours * side * side], &dev);
            assert_eq!(d.forward(x).dims(), [2, patches], "side {side}");
            assert_eq!(d.patches(), patches);
        }
    }

    #[test]
    fn losses_match_their_definitions() {
        let dev = Device::flex();
        let real = Tensor::<2>::from_floats([[2.0, 0.5], [-1.0, 0.0]], &dev);
        let fake = Tensor::<2>::from_floats([[-2.0, 0.5], [1.0, -0.25]], &dev);
        // Hinge: mean relu(1 − r) = (0 + .5 + 2 + 1) / 4; mean relu(1 + f) = (0 + 1.5 + 2 + .75) / 4.
        let d = vals(discriminator_loss(
            AdversarialLoss::Hinge,
            real.clone(),
            fake.clone(),
        ))[0];
        assert!((d - (3.5 / 4.0 + 4.25 / 4.0)).abs() < 1e-6, "{d}");
        let g = vals(generator_loss(AdversarialLoss::Hinge, fake.clone()));
        assert!(
            (g[0] - 1.5).abs() < 1e-6 && (g[1] + 0.75).abs() < 1e-6,
            "{g:?}"
        );
        let sp = |x: f32| (1.0 + x.exp()).ln();
        let d = vals(discriminator_loss(
            AdversarialLoss::NonSaturating,
            real,
            fake.clone(),
        ))[0];
        let want = [-2.0f32, -0.5, 1.0, 0.0]
            .iter()
            .map(|&x| sp(x))
            .sum::<f32>()
            / 4.0
            + [-2.0f32, 0.5, 1.0, -0.25]
                .iter()
                .map(|&x| sp(x))
                .sum::<f32>()
                / 4.0;
        assert!((d - want).abs() < 1e-5, "{d} vs {want}");
        let g = vals(generator_loss(AdversarialLoss::NonSaturating, fake));
        assert!((g[0] - (sp(2.0) + sp(-0.5))).abs() < 1e-5, "{g:?}");
    }

    #[test]
    fn generator_gradient_through_the_discriminator_matches_finite_differences() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex().autodiff();
        let d = tiny_disc(&dev, 3);
        let x0: Vec<f32> = (0..64).map(|i| ((i * 29) % 17) as f32 / 17.0).collect();
        let loss =
            |x: Tensor<2>| generator_loss(AdversarialLoss::NonSaturating, d.forward(x)).sum();
        let x = Tensor::<2>::from_data(TensorData::new(x0.clone(), [1, 64]), &dev).require_grad();
        let g = vals(x.grad(&loss(x.clone()).backward()).unwrap());
        let plain = Device::flex();
        let dv = d.valid();
        let f = |v: &[f32]| -> f64 {
            let t = Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, 64]), &plain);
            vals(generator_loss(AdversarialLoss::NonSaturating, dv.forward(t)).sum())[0] as f64
        };
        let h = 1e-2f32;
        let mut checked = 0;
        for i in (0..64).step_by(7) {
            let mut p = x0.clone();
            p[i] += h;
            let mut m = x0.clone();
            m[i] -= h;
            let num = (f(&p) - f(&m)) / (2.0 * h as f64);
            assert!(
                (num - g[i] as f64).abs() < 2e-3 + 2e-2 * num.abs(),
                "pixel {i}: numeric {num} vs autodiff {}",
                g[i]
            );
            checked += 1;
        }
        assert!(checked >= 9);
    }

    #[test]
    fn r1_estimate_matches_the_exact_input_gradient_norm() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex().autodiff();
        let d = tiny_disc(&dev, 9);
        let x0: Vec<f32> = (0..128).map(|i| ((i * 37) % 23) as f32 / 23.0).collect();
        // Exact ‖∇ₓ f‖² per image by autodiff.
        let g = mean_logit_grad(
            &d,
            Tensor::<2>::from_data(TensorData::new(x0.clone(), [2, 64]), &dev),
        );
        let exact: Vec<f64> = g
            .chunks(64)
            .map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum())
            .collect();
        let plain = Device::flex();
        plain.seed(4);
        let dv = d.valid();
        let x = Tensor::<2>::from_data(TensorData::new(x0, [2, 64]), &plain);
        // Along the 64 basis directions the squares add up to the norm.
        let mut basis = [0.0f64; 2];
        for j in 0..64 {
            let mut e = vec![0.0f32; 128];
            e[j] = 1.0;
            e[64 + j] = 1.0;
            let dir = Tensor::<2>::from_data(TensorData::new(e, [2, 64]), &plain);
            let s = vals(directional_sq(&dv, x.clone(), dir, R1_STEP));
            basis[0] += s[0] as f64;
            basis[1] += s[1] as f64;
        }
        for i in 0..2 {
            assert!(exact[i] > 1e-6, "a flat discriminator tests nothing");
            assert!(
                (basis[i] - exact[i]).abs() < 0.02 * exact[i],
                "image {i}: basis {} vs exact {}",
                basis[i],
                exact[i]
            );
        }
        // Random Gaussian directions: unbiased, within 10% over 3000 draws.
        let draws = 3000;
        let xs = x.clone().repeat_dim(0, draws / 2); // [draws, 64], rows alternate images
        let u = Tensor::<2>::random(
            [draws, 64],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &plain,
        );
        let s = vals(directional_sq(&dv, xs, u, R1_STEP));
        for (i, &want) in exact.iter().enumerate().take(2) {
            let mean: f64 =
                s.iter().skip(i).step_by(2).map(|&v| v as f64).sum::<f64>() / (draws / 2) as f64;
            assert!(
                (mean - want).abs() < 0.1 * want,
                "image {i}: random-direction mean {mean} vs exact {want}"
            );
        }
        // And the penalty is the batch mean of one such draw per image.
        assert_eq!(r1_penalty(&dv, x).dims(), [1]);
    }

    #[test]
    fn the_r1_penalty_flattens_the_discriminator_around_real_images() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex().autodiff();
        dev.seed(5);
        let cfg = AdversarialConfig {
            channels: 4,
            lr: 5e-3,
            ..AdversarialConfig::default()
        };
        let real = Tensor::<2>::random(
            [8, 256],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &dev,
        );
        let fake = Tensor::<2>::full([8, 256], 0.25, &dev);
        let norm_after = |gamma: f32| -> f64 {
            dev.seed(6);
            let mut d = cfg.init(16, 1, &dev);
            let mut optim = AdamConfig::new().with_beta_1(cfg.beta1).init();
            for _ in 0..40 {
                let mut l = discriminator_loss(
                    AdversarialLoss::Hinge,
                    d.forward(real.clone()),
                    d.forward(fake.clone()),
                );
                if gamma > 0.0 {
                    l = l + r1_penalty(&d, real.clone()) * (gamma / 2.0);
                }
                let grads = GradientsParams::from_grads(l.backward(), &d);
                d = optim.step(cfg.lr, d, grads);
            }
            let g = mean_logit_grad(&d.no_grad(), real.clone());
            g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 8.0
        };
        let (without, with) = (norm_after(0.0), norm_after(10.0));
        assert!(
            with < 0.5 * without,
            "R1 should shrink ‖∇D‖² on real images: {with} with, {without} without"
        );
    }

    #[test]
    fn the_discriminator_learns_to_tell_real_from_fake() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex().autodiff();
        dev.seed(5);
        let cfg = AdversarialConfig {
            channels: 4,
            lr: 5e-3,
            ..AdversarialConfig::default()
        };
        let mut d = cfg.init(16, 1, &dev);
        let mut optim = AdamConfig::new().with_beta_1(cfg.beta1).init();
        // "Real": a bright square on black; "fake": flat grey.
        let real: Vec<f32> = (0..8 * 256)
            .map(|i| {
                let (r, c) = ((i % 256) / 16, i % 16);
                if (4..12).contains(&r) && (4..12).contains(&c) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let real = Tensor::<2>::from_data(TensorData::new(real, [8, 256]), &dev);
        let fake = Tensor::<2>::full([8, 256], 0.25, &dev);
        let first = vals(discriminator_loss(
            AdversarialLoss::Hinge,
            d.forward(real.clone()),
            d.forward(fake.clone()),
        ))[0];
        for _ in 0..60 {
            let l = discriminator_loss(
                AdversarialLoss::Hinge,
                d.forward(real.clone()),
                d.forward(fake.clone()),
            );
            let grads = GradientsParams::from_grads(l.backward(), &d);
            d = optim.step(cfg.lr, d, grads);
        }
        let dv = d.valid();
        let r = vals(dv.forward(real.inner()).mean())[0];
        let f = vals(dv.forward(fake.inner()).mean())[0];
        assert!(
            r > 0.5 && f < -0.5,
            "real {r}, fake {f} (loss at start {first})"
        );
    }
}
