//! Alignment terms between the joint and the unimodal posteriors.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::config::{Alignment, LossConfig};
use crate::nn::gaussian::Gaussian;

/// The alignment term `cfg.align` names, per item, from the joint posterior
/// and the unimodal ones (each with the prior expert). `jmvae` sums over
/// every modality; the pairwise terms read `pair` (two positions in
/// `unimodal`: for image + text, the image then the caption). `valid`
/// (`[batch]`, 1 or 0) says which items have every modality: the batch-wide
/// InfoNCE only compares those. The caller weighs the result by `valid`.
///
/// # Shapes
/// returns `[batch]`
pub fn alignment(
    cfg: &LossConfig,
    q_joint: &Gaussian,
    unimodal: &[Gaussian],
    pair: (usize, usize),
    valid: &Tensor<1>,
) -> Tensor<1> {
    let (a, b) = (&unimodal[pair.0], &unimodal[pair.1]);
    match cfg.align {
        // JMVAE-KL: each unimodal posterior covers the joint.
        Alignment::Jmvae => unimodal
            .iter()
            .map(|q| q_joint.kl(q))
            .reduce(|s, k| s + k)
            .expect("at least one modality"),
        Alignment::ImageTextKl => a.kl(b),
        Alignment::Mse => a.moment_mse(b),
        Alignment::InfoNce => info_nce(a.mu.clone(), b.mu.clone(), cfg.temperature, valid),
    }
}

/// Symmetric InfoNCE between paired rows of `a` and `b`: the mean of the
/// cross-entropies of picking row i of `b` for row i of `a` and vice versa,
/// over cosine similarities divided by `temperature`. Rows whose `valid`
/// is 0 are neither candidates nor scored (their value is meaningless and
/// must be weighed out by the caller).
///
/// # Shapes
/// `a`, `b`: `[batch, dim]`, `valid`: `[batch]` → `[batch]`
pub fn info_nce(a: Tensor<2>, b: Tensor<2>, temperature: f32, valid: &Tensor<1>) -> Tensor<1> {
    let unit = |t: Tensor<2>| {
        let norm = t.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-8); // [n, 1]
        t / norm
    };
    let logits = unit(a).matmul(unit(b).transpose()) / temperature; // [n, n]
    let n = logits.dims()[0];
    // Invalid rows and columns are pushed far below every valid logit.
    let off = (valid.clone() - 1.0) * 1.0e9; // [n]
    let logits = logits + off.clone().reshape([1, n]) + off.reshape([n, 1]);
    let diag = |lp: Tensor<2>| {
        let eye = Tensor::<2>::eye(n, &lp.device());
        (lp * eye).sum_dim(1).squeeze_dim::<1>(1) // [n]
    };
    let rows = diag(log_softmax(logits.clone(), 1));
    let cols = diag(log_softmax(logits.transpose(), 1));
    (rows + cols) * -0.5
}
