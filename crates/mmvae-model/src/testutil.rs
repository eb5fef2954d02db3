//! Test helpers.

use std::sync::{Mutex, MutexGuard};

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;

static RNG: Mutex<()> = Mutex::new(());

/// burn's CPU backend has one process-wide random generator; tests that seed
/// it and expect a given sequence hold this lock so that tests running on
/// other threads do not draw from it in between.
pub fn rng_lock() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Collects every float parameter's gradient (zeros where it has none), in
/// visiting order, flattened.
pub struct GradsOf<'a>(pub &'a Gradients, pub Vec<Vec<f32>>);
impl ModuleVisitor for GradsOf<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let n = p.val().shape().num_elements();
        let g = p
            .val()
            .grad(self.0)
            .map(|g| g.try_into_vec_as::<f32>().unwrap())
            .unwrap_or(vec![0.0; n]);
        self.1.push(g);
    }
}

/// Adds `h` to element `index` of the `target`-th float parameter (in
/// visiting order); `seen` starts at 0.
pub struct Perturb {
    pub target: usize,
    pub index: usize,
    pub h: f32,
    pub seen: usize,
}
impl ModuleMapper for Perturb {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let k = self.seen;
        self.seen += 1;
        if k != self.target {
            return p;
        }
        let (index, h) = (self.index, self.h);
        p.map(move |t| {
            let shape = t.shape();
            let mut d = vec![0f32; shape.num_elements()];
            d[index] = h;
            let dev = t.device();
            t + Tensor::from_data(TensorData::new(d, shape), &dev)
        })
    }
}

use crate::config::{Fusion, ImageModel, ModelConfig, TextModel};
use crate::io::batch::{HostBatch, HostInput};
use crate::modality::{ExpertConfig, LabelModel, ModalityConfig, ModalityKind};
use crate::mvae::DataShape;
use crate::objective::TargetWeights;

/// 4×4 grey images and a 9-word vocabulary.
pub const SHAPE: DataShape = DataShape {
    side: 4,
    colours: 1,
    vocab: 9,
};

/// Caption length of the tiny models.
pub const MAX_LEN: usize = 6;

/// A tiny model config: latent 4 (even, for the attention fusion).
pub fn tiny_model(fusion: Fusion, private_latent: usize) -> ModelConfig {
    ModelConfig {
        latent: 4,
        private_latent,
        fusion,
        fusion_hidden: 8,
        max_len: MAX_LEN,
        legacy_image: None,
        legacy_image_likelihood: None,
        legacy_text: None,
    }
}

/// A tiny image (MLP) + caption (GRU) model config.
pub fn tiny_image_text(private_latent: usize) -> (ModelConfig, Vec<ModalityConfig>) {
    (
        tiny_model(Fusion::Poe, private_latent),
        vec![
            ModalityConfig::image("image", ImageModel::Mlp { hidden: 6 }).with_weight(1.5),
            ModalityConfig::text(
                "text",
                TextModel::Gru {
                    embed: 4,
                    hidden: 5,
                },
            )
            .with_weight(3.0),
        ],
    )
}

/// Image, caption and class label (3 classes).
pub fn three_modalities() -> Vec<ModalityConfig> {
    let (_, mut m) = tiny_image_text(0);
    m.push(
        ModalityConfig::new(
            "label",
            ExpertConfig::Label {
                model: LabelModel {
                    classes: 3,
                    hidden: 5,
                },
            },
        )
        .with_weight(2.0),
    );
    m
}

/// The modalities' likelihood and cross weights.
pub fn weights(modalities: &[ModalityConfig]) -> TargetWeights {
    TargetWeights {
        weight: modalities.iter().map(|m| m.weight).collect(),
        cross: modalities.iter().map(|m| m.cross_weight).collect(),
    }
}

/// `n` items of every kind in `kinds`, all present: 4×4 images, captions
/// `<bos> w w <eos>` of varying words, labels `i mod 3`.
pub fn host_batch_of(kinds: &[ModalityKind], n: usize) -> HostBatch {
    let inputs = kinds
        .iter()
        .map(|k| match k {
            ModalityKind::Image => HostInput::Image {
                pixels: 16,
                values: (0..n * 16).map(|i| ((i * 37) % 11) as f32 / 10.0).collect(),
            },
            ModalityKind::Text => HostInput::Tokens {
                max_len: MAX_LEN,
                ids: (0..n)
                    .flat_map(|i| [1, 4 + (i % 4) as i64, 5 + (i % 3) as i64, 2, 0, 0])
                    .collect(),
                last: vec![3; n],
            },
            ModalityKind::Label => HostInput::Label((0..n).map(|i| (i % 3) as i64).collect()),
        })
        .collect();
    HostBatch {
        size: n,
        inputs,
        present: vec![1.0; n * kinds.len()],
        labels: (0..n).map(|i| i % 3).collect(),
        captions: vec![String::new(); n],
    }
}

/// `n` image + caption items.
pub fn host_batch(n: usize) -> HostBatch {
    host_batch_of(&[ModalityKind::Image, ModalityKind::Text], n)
}
