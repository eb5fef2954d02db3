//! Marginal log-likelihoods log p(x), log p(y) and log p(x, y) by importance
//! sampling with K draws from the model's own posteriors:
//! log p(·) ≈ log mean_k p(·, z_k) / q(z_k | ·), z_k ~ q(z | ·).
//!
//! Images are scored with the model's own pixel likelihood (Bernoulli of
//! their `[0, 1]` pixel values by default, as the MVAE literature reports
//! it for MNIST; a density for Gaussian or Laplace decoders), captions with the
//! decoder's token probabilities; likelihood weights of the training
//! objective play no part. Any proposal gives a consistent estimate; the
//! PoE joint posterior (with q(w|x) for an image-only latent) serves for
//! every fusion.

use burn::prelude::*;
use burn::tensor::Distribution;
use mmvae_data::captions::CaptionSet;
use mmvae_data::ImageLabelSet;
use serde::Serialize;

use crate::host::floats;
use crate::infer::Loaded;
use crate::io::batch::{Batch, CaptionSource, HostBatch};
use crate::io::data::TEST_STREAM;
use crate::mvae::Mvae;
use crate::nn::gaussian::Gaussian;
use crate::objective::Subset;

/// Mean estimates over the scored items, in nats.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogLikelihood {
    pub samples: usize,
    pub items: usize,
    pub log_p_image: f64,
    pub log_p_text: f64,
    pub log_p_joint: f64,
}

/// log mean exp over `[k]`.
fn log_mean_exp(v: &[f32]) -> f64 {
    let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let s: f64 = v.iter().map(|&x| (x as f64 - m).exp()).sum();
    m + (s / v.len() as f64).ln()
}

/// log p(x), log p(y) and log p(x, y) of the one item of `b`, each from
/// `k` draws of its posterior (in that order, from the device's stream).
fn item_log_likelihoods(model: &Mvae, b: &Batch, k: usize) -> [f64; 3] {
    let x = b.images().repeat_dim(0, k); // [k, pixels]
    let tok = b.tokens().0.repeat_dim(0, k); // [k, time]
    let (image, text) = model.pair();
    // Each modality encoded once; the three posteriors fuse those encodings.
    let encoded = model.encode_all(b);
    let qw = encoded[image].private.clone();
    let shared: Vec<Option<Gaussian>> = encoded.into_iter().map(|e| Some(e.shared)).collect();
    let post_x = model.fuse_encoded(&shared, Subset::single(image));
    let post_y = model.fuse_encoded(&shared, Subset::single(text));
    let post_xy = model.fuse_encoded(&shared, Subset::single(image).with(text));
    let draw = |g: &Gaussian| {
        let g = g.repeat_rows(k);
        let z = g.rsample_with(g.mu.random_like(Distribution::Normal(0.0, 1.0)));
        let log_q = g.log_prob(z.clone());
        (z, log_q)
    };
    // The image-only latent: drawn from q(w|x) wherever the image is
    // scored, with its own prior and proposal terms.
    let private = |z: Tensor<2>| match &qw {
        None => (z, None),
        Some(qw) => {
            let (w, log_qw) = draw(qw);
            let extra = Gaussian::standard_log_prob(w.clone()) - log_qw;
            (Tensor::cat(vec![z, w], 1), Some(extra))
        }
    };

    // log p(x)
    let (z, log_q) = draw(&post_x);
    let prior = Gaussian::standard_log_prob(z.clone());
    let (zw, extra) = private(z);
    let img = model.image_expert();
    let mut lw = img.nll(img.decoder.forward(zw), x.clone()).neg() + prior - log_q;
    if let Some(e) = extra {
        lw = lw + e;
    }
    let lx = log_mean_exp(&floats(lw));

    // log p(y)
    let (z, log_q) = draw(&post_y);
    let lw = model
        .text_expert()
        .decoder
        .nll(z.clone(), tok.clone())
        .neg()
        + Gaussian::standard_log_prob(z)
        - log_q;
    let ly = log_mean_exp(&floats(lw));

    // log p(x, y)
    let (z, log_q) = draw(&post_xy);
    let prior = Gaussian::standard_log_prob(z.clone());
    let txt = model.text_expert().decoder.nll(z.clone(), tok).neg();
    let (zw, extra) = private(z);
    let mut lw = img.nll(img.decoder.forward(zw), x).neg() + txt + prior - log_q;
    if let Some(e) = extra {
        lw = lw + e;
    }
    [lx, ly, log_mean_exp(&floats(lw))]
}

/// Estimate the three log-likelihoods on the first `items` test items with
/// `k` samples each (seeded by the caller through the device).
pub fn marginal_log_likelihood(
    m: &Loaded,
    test: &ImageLabelSet,
    items: usize,
    k: usize,
) -> LogLikelihood {
    let model = &m.model;
    let k = k.max(1);
    let n = items.min(test.len());
    let src = CaptionSource {
        captioner: m.captioner(),
        set: CaptionSet::Train,
        stream: TEST_STREAM,
    };
    let (mut sx, mut sy, mut sxy) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let hb = HostBatch::gather(&model.layout(), test, &[i], src, &m.checkpoint.vocab);
        let [lx, ly, lxy] = item_log_likelihoods(model, &hb.to_device(&m.device), k);
        sx += lx;
        sy += ly;
        sxy += lxy;
    }
    let d = n.max(1) as f64;
    LogLikelihood {
        samples: k,
        items: n,
        log_p_image: sx / d,
        log_p_text: sy / d,
        log_p_joint: sxy / d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_mean_exp_is_exact_and_stable() {
        assert!((log_mean_exp(&[0.0, (3.0f32).ln()]) - (2.0f64).ln()).abs() < 1e-6);
        let v = log_mean_exp(&[-5000.0, -5000.0]);
        assert!((v + 5000.0).abs() < 1e-3, "{v}");
    }
}
