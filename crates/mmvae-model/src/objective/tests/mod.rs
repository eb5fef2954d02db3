//! The objective's behaviour: gradients against finite differences for
//! every fusion, model family and term (with two and three modalities, and
//! with items that lack some), the masks of weak supervision, and the
//! closed forms the terms must equal.
//!
//! `gradients`: every gradient against central differences; `masks`: the
//! products, subsets and masks of items that lack modalities; `terms`: the
//! objectives' terms against closed forms and each other; `behaviour`: train
//! and eval steps, checkpoints, decoding and sharding.

mod behaviour;
mod gradients;
mod masks;
mod terms;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::align::info_nce;
use super::*;
use crate::config::{
    Alignment, ExpertConfig, Fusion, ImageLikelihood, ImageModel, Levels, LossConfig,
    ModalityConfig, ModelConfig, Objective, TextModel, UnimodalTarget,
};
use crate::io::batch::{Batch, HostBatch};
use crate::modality::ModalityKind;
use crate::mvae::Mvae;
use crate::nn::gaussian::Gaussian;
use crate::testutil::{self, GradsOf, Perturb, SHAPE};

/// The fusions the mask tests cover: every fixed fusion and one learned.
const MASKED_FUSIONS: [Fusion; 5] = [
    Fusion::Poe,
    Fusion::MoPoe,
    Fusion::Moe,
    Fusion::Mvtcae,
    Fusion::Concat,
];

/// A model to test: its config, modalities and loss settings.
#[derive(Clone)]
struct Setup {
    cfg: ModelConfig,
    modalities: Vec<ModalityConfig>,
    loss: LossConfig,
}

impl Setup {
    /// Image (MLP) + caption (GRU), the alignment, cross weight and caption
    /// cycle on, so that the gradient checks cover them.
    fn image_text() -> Self {
        let (cfg, mut modalities) = testutil::tiny_image_text(0);
        modalities[0].cross_weight = 0.7;
        Setup {
            cfg,
            modalities,
            loss: LossConfig {
                align_weight: 0.5,
                cycle_weight: 0.3,
                ..LossConfig::default()
            },
        }
    }

    /// Image + caption + label, plain ELBO terms.
    fn three(fusion: Fusion) -> Self {
        Setup {
            cfg: testutil::tiny_model(fusion, 0),
            modalities: testutil::three_modalities(),
            loss: LossConfig::default(),
        }
    }

    fn fusion(mut self, f: Fusion) -> Self {
        self.cfg.fusion = f;
        self
    }

    fn image(mut self, model: ImageModel) -> Self {
        self.modalities[0].expert = ExpertConfig::Image {
            model,
            likelihood: ImageLikelihood::Bernoulli,
        };
        self
    }

    fn text(mut self, model: TextModel) -> Self {
        self.modalities[1].expert = ExpertConfig::Text { model };
        self
    }

    fn init(&self, device: &Device) -> Mvae {
        self.cfg.init(&self.modalities, SHAPE, device)
    }

    fn plan(&self, m: &Mvae) -> Plan {
        m.plan(&self.loss, &testutil::weights(&self.modalities), 0)
    }

    fn kinds(&self) -> Vec<ModalityKind> {
        self.modalities.iter().map(ModalityConfig::kind).collect()
    }

    /// Four items, every modality present.
    fn host(&self) -> HostBatch {
        testutil::host_batch_of(&self.kinds(), 4)
    }
}

fn scalar(t: Tensor<1>) -> f64 {
    t.try_into_vec_as::<f32>().unwrap()[0] as f64
}

/// All parameter values, flattened, in visiting order.
struct Values(Vec<Vec<f32>>);
impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.push(p.val().try_into_vec_as::<f32>().unwrap());
    }
}
fn values<M: Module>(m: &M) -> Vec<Vec<f32>> {
    let mut v = Values(Vec::new());
    m.visit(&mut v);
    v.0
}

/// The loss of `m` on `hb` with fixed noise, and the gradient of every
/// parameter of `part`.
fn loss_and_part_grads(
    m: &Mvae,
    s: &Setup,
    hb: &HostBatch,
    part: usize,
    device: &Device,
) -> (f64, Vec<f32>) {
    let plan = s.plan(m);
    let eps = Tensor::<2>::random(
        [m.noise_rows(&plan, &s.loss, hb.size), m.noise_dim()],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let out = m.loss_with_noise(&hb.to_device(device), &s.loss, &plan, 1.0, eps);
    let v = scalar(out.total.clone());
    let g = out.total.backward();
    let mut gv = GradsOf(&g, Vec::new());
    m.experts[part].visit(&mut gv);
    (v, gv.1.concat())
}
