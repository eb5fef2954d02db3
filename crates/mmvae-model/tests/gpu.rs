//! The GPU backend (burn's wgpu) against the CPU backend: the same weights,
//! batch and noise give the same loss and the same gradients, and training
//! steps on the GPU lower the loss. Runs where a graphics adapter exists
//! (a GPU, or a software Vulkan device such as lavapipe); elsewhere it says
//! so and passes, unless `MMVAE_REQUIRE_GPU=1`. `MMVAE_TEST_DEVICE` picks
//! the adapter (a `--device` value, default `wgpu`).
#![cfg(feature = "wgpu")]

use mmvae_model::burn::module::{Module, ModuleVisitor, Param};
use mmvae_model::burn::optim::{AdamConfig, GradientsParams};
use mmvae_model::burn::prelude::*;
use mmvae_model::burn::tensor::Gradients;
use mmvae_model::config::{
    Fusion, ImageModel, Levels, LossConfig, ModalityConfig, ModelConfig, TextModel,
};
use mmvae_model::device::{adapters, Compute};
use mmvae_model::mvae::{DataShape, Mvae};
use mmvae_model::objective::{Plan, TargetWeights};

mod common;

use common::{image_text_batch, LEN};

const VOCAB: usize = 9;

/// The GPU to test on, or `None` (with a note) where the machine has none.
fn gpu() -> Option<Device> {
    let found = adapters().unwrap_or_default();
    if found.is_empty() {
        assert!(
            std::env::var("MMVAE_REQUIRE_GPU").as_deref() != Ok("1"),
            "MMVAE_REQUIRE_GPU=1 but no graphics adapter was found"
        );
        eprintln!("no graphics adapter: the GPU test is skipped");
        return None;
    }
    let spec = std::env::var("MMVAE_TEST_DEVICE").unwrap_or_else(|_| "wgpu".into());
    let compute = Compute::parse(&spec).expect("MMVAE_TEST_DEVICE");
    eprintln!("testing on {}", compute.label());
    Some(compute.device().expect("the adapter comes up"))
}

/// Every float parameter's gradient, flattened, in visiting order.
struct Grads<'a>(&'a Gradients, Vec<Vec<f32>>);
impl ModuleVisitor for Grads<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let n = p.val().shape().num_elements();
        let g = p.val().grad(self.0).map_or(vec![0.0; n], |g| {
            g.try_into_vec_as::<f32>().expect("gradient values")
        });
        self.1.push(g);
    }
}

/// Loss and gradients of `m` on `device` with the given noise.
fn loss_and_grads(
    m: &Mvae,
    side: usize,
    cfg: &LossConfig,
    plan: &Plan,
    eps: &TensorData,
    device: &Device,
) -> (f32, Vec<Vec<f32>>) {
    let out = m.loss_with_noise(
        &image_text_batch(side, device),
        cfg,
        plan,
        1.0,
        Tensor::from_data(eps.clone(), device),
    );
    let loss = out.total.clone().try_into_vec_as::<f32>().unwrap()[0];
    let grads = out.total.backward();
    let mut v = Grads(&grads, Vec::new());
    m.visit(&mut v);
    (loss, v.1)
}

fn matches_cpu(image: ImageModel, side: usize) {
    let Some(gpu) = gpu() else { return };
    let cfg = ModelConfig {
        latent: 3,
        private_latent: 0,
        fusion: Fusion::Poe,
        fusion_hidden: 16,
        max_len: LEN,
        legacy_image: None,
        legacy_image_likelihood: None,
        legacy_text: None,
    };
    let modalities = [
        ModalityConfig::image("image", image),
        ModalityConfig::text(
            "text",
            TextModel::Gru {
                embed: 4,
                hidden: 5,
            },
        ),
    ];
    let loss_cfg = LossConfig::default();
    let cpu = Device::flex().autodiff();
    cpu.seed(5);
    let gpu = gpu.autodiff();
    let shape = DataShape {
        side,
        colours: 1,
        vocab: VOCAB,
    };
    let m_cpu = cfg.init(&modalities, shape, &cpu);
    let weights = TargetWeights {
        weight: vec![1.0, 1.0],
        cross: vec![1.0, 1.0],
    };
    let plan = m_cpu.plan(&loss_cfg, &weights, 0);
    // `fork`: the same values as new leaves on the GPU (`to_device` would
    // keep them children of the CPU parameters in the autodiff graph).
    let m_gpu = m_cpu.clone().fork(&gpu);
    let rows = m_cpu.noise_rows(&plan, &loss_cfg, 4);
    let eps: Vec<f32> = (0..rows * m_cpu.noise_dim())
        .map(|i| ((i * 29 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let eps = TensorData::new(eps, [rows, m_cpu.noise_dim()]);

    let (l_cpu, g_cpu) = loss_and_grads(&m_cpu, side, &loss_cfg, &plan, &eps, &cpu);
    let (l_gpu, g_gpu) = loss_and_grads(&m_gpu, side, &loss_cfg, &plan, &eps, &gpu);
    assert!(l_cpu.is_finite() && l_cpu > 0.0, "{l_cpu}");
    assert!(
        (l_cpu - l_gpu).abs() <= 1e-4 * l_cpu.abs(),
        "loss: cpu {l_cpu} gpu {l_gpu}"
    );
    assert_eq!(g_cpu.len(), g_gpu.len());
    for (i, (a, b)) in g_cpu.iter().zip(&g_gpu).enumerate() {
        let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst <= 1e-3 * scale,
            "parameter {i}: gradients differ by {worst} (largest {scale})"
        );
    }

    // Training on the GPU lowers the loss.
    let mut optim = AdamConfig::new().init();
    let mut m = m_gpu;
    let first = l_gpu;
    let mut last = first;
    for _ in 0..30 {
        let out = m.loss_with_noise(
            &image_text_batch(side, &gpu),
            &loss_cfg,
            &plan,
            1.0,
            Tensor::from_data(eps.clone(), &gpu),
        );
        last = out.total.clone().try_into_vec_as::<f32>().unwrap()[0];
        let g = GradientsParams::from_grads(out.total.backward(), &m);
        m = optim.step(1e-2, m, g);
    }
    assert!(
        last < 0.9 * first,
        "loss {first} → {last} after 30 GPU steps"
    );
}

#[test]
fn mlp_image_and_gru_text_match_the_cpu() {
    matches_cpu(ImageModel::Mlp { hidden: 6 }, 4);
}

#[test]
fn conv_image_matches_the_cpu() {
    matches_cpu(
        ImageModel::Conv {
            channels: 4,
            hidden: 8,
            max_channels: None,
            refine: false,
            levels: Levels::Off,
            holes: None,
        },
        16,
    );
}
