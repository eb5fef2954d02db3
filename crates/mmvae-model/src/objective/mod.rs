//! The training objective, written once for any set of modalities: a
//! [`plan::Plan`] lists the subset terms, [`elbo`] evaluates them with
//! masks for the modalities each item lacks, [`iwae`] is the
//! importance-weighted mixture bound, [`align`] the alignment terms, and
//! [`Terms`] the named values it reports.

pub mod align;
pub mod elbo;
pub mod iwae;
pub mod plan;

use burn::prelude::*;
use std::collections::BTreeMap;

pub use plan::{Plan, PlanSpec, Subset, TargetWeights, Term, TermKl};

/// The objective's value and the terms worth logging.
pub struct LossOutput {
    /// Mean over the batch of the negative bound: `[1]`.
    pub total: Tensor<1>,
    /// Detached batch means of its parts, by name.
    pub terms: Terms,
    /// Image-decoder logits of the (first) image modality where the image
    /// was given, still attached to the graph, for losses that judge the
    /// generated images: the joint and the image-only terms, `[2·batch,
    /// pixels]` for image + text.
    pub reconstructed: Option<Tensor<2>>,
    /// The same for the terms without the image (read from the other
    /// modalities): `[batch, pixels]` for image + text.
    pub generated: Option<Tensor<2>>,
}

/// Named batch means of the objective's parts: `loss`, `kl` (the joint
/// term's), `nll/NAME` (each modality's reconstruction from the joint
/// term), `cross/FROM->TO` (modality TO read from FROM alone), `align`.
/// Each is a mean over the items that have the term.
pub struct Terms {
    pub names: Vec<String>,
    /// `[names.len()]`, detached.
    pub values: Tensor<1>,
}

impl Terms {
    pub fn new(entries: Vec<(String, Tensor<1>)>) -> Terms {
        let (names, values): (Vec<String>, Vec<Tensor<1>>) = entries.into_iter().unzip();
        Terms {
            names,
            values: Tensor::cat(values, 0).detach(),
        }
    }

    /// The values on the host, by name.
    pub fn to_host(&self) -> BTreeMap<String, f32> {
        let v = crate::host::floats(self.values.clone());
        self.names.iter().cloned().zip(v).collect()
    }
}

/// The mean of `x` over the rows where `mask` is 1 (0 where there are none).
///
/// # Shapes
/// `x`, `mask`: `[n]` → `[1]`
pub fn masked_mean(x: Tensor<1>, mask: Tensor<1>) -> Tensor<1> {
    (x * mask.clone()).sum() / mask.sum().clamp_min(1.0)
}

#[cfg(test)]
mod tests;
