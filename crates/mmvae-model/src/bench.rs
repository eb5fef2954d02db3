//! Training-step benchmarks of the reference models on synthetic data:
//! throughput (samples/s) and the process's peak resident memory. The
//! PyTorch twin of each model is `bench/torch_bench.py`.

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::Serialize;
use std::time::{Duration, Instant};

use crate::config::{
    Fusion, ImageModel, Levels, LossConfig, ModalityConfig, ModelConfig, TextModel,
};
use crate::device::Compute;
use crate::error::{ModelError, Result};
use crate::io::batch::{HostBatch, HostInput};
use crate::modality::image::{ImageDecoder, ImageEncoder};
use crate::mvae::DataShape;
use crate::mvae::Mvae;
use crate::nn::bernoulli::nll as bernoulli_nll;
use crate::nn::gaussian::Gaussian;
use crate::objective::TargetWeights;
use crate::train::adam::FusedAdamConfig;
use crate::train::parallel::{
    parallel_gradients, sharded_gradients, CoreSharing, Critics, Sharding,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchModel {
    /// MNIST MVAE: 784-512-512-64 MLP image expert, GRU caption expert
    /// (embed 64, hidden 128, 10 tokens, 32 words), joint + unimodal ELBOs.
    MvaeMlp,
    /// 64×64 single-channel conv VAE: 4 stride-2 convs (32-64-128-256
    /// channels), 256-wide hidden layer, latent 64, mirrored decoder.
    ConvVae,
}

impl BenchModel {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mvae-mlp" => Ok(BenchModel::MvaeMlp),
            "conv-vae" => Ok(BenchModel::ConvVae),
            o => Err(ModelError::Invalid(format!(
                "unknown bench model `{o}` (expected mvae-mlp or conv-vae)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub framework: &'static str,
    pub model: BenchModel,
    pub batch_size: usize,
    pub steps: usize,
    pub seconds: f64,
    pub samples_per_s: f64,
    pub peak_rss_mib: f64,
    /// Data-parallel shards per step.
    pub threads: usize,
    /// How the shards shared the cores; absent with one shard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core_sharing: Option<CoreSharing>,
    /// Where the steps ran: `cpu`, or `wgpu: ` and the adapter's name.
    pub device: String,
}

/// Peak resident set size of this process (Linux), MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[derive(Module, Debug)]
struct ConvVae {
    enc: ImageEncoder,
    dec: ImageDecoder,
}

/// Untimed steps before the timed ones.
const WARMUP: usize = 3;

/// Runs `step` on the model `m` [`WARMUP`] + `steps` times; the time the
/// last `steps` took.
fn timed<M>(steps: usize, mut m: M, mut step: impl FnMut(M) -> M) -> Duration {
    let mut start = Instant::now();
    for s in 0..WARMUP + steps {
        if s == WARMUP {
            start = Instant::now();
        }
        m = step(m);
    }
    start.elapsed()
}

/// Times `steps` training steps of `model` on batches of `batch_size`
/// synthetic items split over `threads` shards.
pub fn run(
    model: BenchModel,
    batch_size: usize,
    steps: usize,
    threads: usize,
    sharing: CoreSharing,
    compute: Compute,
) -> Result<BenchReport> {
    if batch_size == 0 || steps == 0 {
        return Err(ModelError::Invalid(
            "batch size and steps must be at least 1".into(),
        ));
    }
    let device = compute.device()?.autodiff();
    // One shard on a GPU: the data-parallel split is for CPU cores.
    let threads = if compute.is_gpu() { 1 } else { threads };
    let sharding = Sharding::new(threads.clamp(1, batch_size), sharing);
    device.seed(0);
    let t = match model {
        BenchModel::MvaeMlp => mvae_mlp_steps(batch_size, steps, &sharding, &device),
        BenchModel::ConvVae => conv_vae_steps(batch_size, steps, &sharding, &device),
    };
    let seconds = t.as_secs_f64();
    Ok(BenchReport {
        framework: if compute.is_gpu() {
            "burn-wgpu"
        } else {
            "burn-flex"
        },
        model,
        batch_size,
        steps,
        seconds,
        samples_per_s: (steps * batch_size) as f64 / seconds,
        peak_rss_mib: peak_rss_mib(),
        threads,
        core_sharing: (sharding.shards() > 1).then_some(sharing),
        device: compute.label(),
    })
}

/// Adam as the training loop configures it.
fn adam() -> ModuleOptimizer {
    FusedAdamConfig::default().with_epsilon(1e-8).init()
}

/// Words in the MVAE benchmark's vocabulary.
const MLP_VOCAB: usize = 32;

/// The MVAE benchmark's model (see [`BenchModel::MvaeMlp`]) and its
/// modalities' weights.
fn mvae_mlp(device: &Device) -> (Mvae, TargetWeights) {
    let modalities = [
        ModalityConfig::image("image", ImageModel::Mlp { hidden: 512 }),
        ModalityConfig::text(
            "text",
            TextModel::Gru {
                embed: 64,
                hidden: 128,
            },
        )
        .with_weight(50.0),
    ];
    let cfg = ModelConfig {
        latent: 64,
        private_latent: 0,
        fusion: Fusion::Poe,
        fusion_hidden: 128,
        max_len: 10,
        legacy_image: None,
        legacy_image_likelihood: None,
        legacy_text: None,
    };
    let shape = DataShape {
        side: 28,
        colours: 1,
        vocab: MLP_VOCAB,
    };
    let weights = TargetWeights {
        weight: modalities.iter().map(|m| m.weight).collect(),
        cross: vec![1.0; 2],
    };
    (cfg.init(&modalities, shape, device), weights)
}

/// A batch of `batch_size` synthetic 28 × 28 images, each with a caption
/// of seven words between its start and end tokens.
fn mvae_mlp_batch(batch_size: usize) -> HostBatch {
    let mut toks = Vec::new();
    for i in 0..batch_size {
        toks.push(1i64);
        for j in 0..7 {
            toks.push(4 + ((i * 7 + j) % (MLP_VOCAB - 4)) as i64);
        }
        toks.extend([2, 0]);
    }
    HostBatch {
        size: batch_size,
        inputs: vec![
            HostInput::Image {
                pixels: 784,
                values: (0..batch_size * 784)
                    .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
                    .collect(),
            },
            HostInput::Tokens {
                max_len: 10,
                ids: toks,
                last: vec![8i64; batch_size],
            },
        ],
        present: vec![1.0; 2 * batch_size],
        labels: vec![0; batch_size],
        captions: vec![String::new(); batch_size],
    }
}

/// The MVAE benchmark's steps: the joint and unimodal ELBOs.
fn mvae_mlp_steps(
    batch_size: usize,
    steps: usize,
    sharding: &Sharding,
    device: &Device,
) -> Duration {
    let (m, weights) = mvae_mlp(device);
    let loss_cfg = LossConfig::default();
    let plan = m.plan(&loss_cfg, &weights, 0);
    let hb = mvae_mlp_batch(batch_size);
    let mut optim = adam();
    timed(steps, m, |m| {
        let step = sharded_gradients(
            &m,
            &hb,
            sharding,
            &loss_cfg,
            &plan,
            1.0,
            &Critics::default(),
            device,
        );
        optim.step(1e-3, m, step.grads)
    })
}

/// The conv VAE benchmark's steps: see [`BenchModel::ConvVae`].
fn conv_vae_steps(
    batch_size: usize,
    steps: usize,
    sharding: &Sharding,
    device: &Device,
) -> Duration {
    let (enc, dec) = ImageModel::Conv {
        channels: 32,
        hidden: 256,
        max_channels: None,
        refine: false,
        levels: Levels::Off,
        holes: None,
    }
    .init(64, 1, 64, device);
    let pixels: Vec<f32> = (0..batch_size * 4096)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let total = batch_size as f32;
    let mut optim = adam();
    timed(steps, ConvVae { enc, dec }, |m| {
        // Shards of the batch with their noise, drawn on this thread.
        let n = sharding.shards();
        let work: Vec<(Tensor<2>, Tensor<2>)> = (0..n)
            .map(|i| {
                let (a, b) = (i * batch_size / n, (i + 1) * batch_size / n);
                let x = Tensor::from_data(
                    TensorData::new(pixels[a * 4096..b * 4096].to_vec(), [b - a, 4096]),
                    device,
                );
                let eps = Tensor::random([b - a, 64], Distribution::Normal(0.0, 1.0), device);
                (x, eps)
            })
            .collect();
        let (g, _, _) = parallel_gradients(&m, work, device, sharding, |m: &ConvVae, (x, eps)| {
            let q: Gaussian = m.enc.forward(x.clone());
            let z = q.rsample_with(eps);
            let nll = bernoulli_nll(m.dec.forward(z), x)
                .sum_dim(1)
                .squeeze_dim::<1>(1);
            let loss = (nll + q.kl_standard()).sum() / total;
            let v = crate::host::floats(loss.clone());
            (loss, v, ())
        });
        optim.step(1e-3, m, g)
    })
}
