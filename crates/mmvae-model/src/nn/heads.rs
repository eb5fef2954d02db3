//! Several softmax heads side by side in one logits tensor, one per
//! attribute slot: their summed cross-entropy and their argmaxes. Shared by
//! the evaluation classifier and the latent linear probes.

use crate::host::indices;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Summed cross-entropy of all heads, mean over the batch.
///
/// # Shapes
/// `logits`: `[batch, sum(heads)]`, `targets`: `[batch, heads.len()]` → `[1]`
pub fn multi_head_nll(logits: Tensor<2>, targets: Tensor<2, Int>, heads: &[usize]) -> Tensor<1> {
    let [b, _] = logits.dims();
    let mut off = 0;
    let mut total: Option<Tensor<1>> = None;
    for (k, &n) in heads.iter().enumerate() {
        let logp = log_softmax(logits.clone().narrow(1, off, n), 1);
        let t = targets.clone().narrow(1, k, 1); // [b, 1]
        let nll = logp.gather(1, t).sum().neg() / b as f32;
        total = Some(match total {
            Some(s) => s + nll,
            None => nll,
        });
        off += n;
    }
    total.expect("at least one head")
}

/// Most likely value of each head for each row: `[batch][heads.len()]`.
///
/// # Shapes
/// `logits`: `[batch, sum(heads)]`
pub fn multi_head_argmax(logits: Tensor<2>, heads: &[usize]) -> Vec<Vec<usize>> {
    let [b, _] = logits.dims();
    let mut out = vec![Vec::with_capacity(heads.len()); b];
    let mut off = 0;
    for &n in heads {
        let ids = indices(logits.clone().narrow(1, off, n).argmax(1).reshape([b]));
        for (o, i) in out.iter_mut().zip(ids) {
            o.push(i);
        }
        off += n;
    }
    out
}
