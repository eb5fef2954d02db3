//! Linear probes of the latent space: a multinomial logistic regression per
//! attribute slot, trained on the posterior means of training items and
//! tested on test items. Probing q(z|image) measures how much of the class
//! an image's latent carries, i.e. classification with the text missing;
//! probing q(z|caption) the same with the image missing.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use serde::Serialize;

use crate::host::floats;
use crate::nn::heads::{multi_head_argmax, multi_head_nll};
use crate::nn::linear::linear;

/// One linear softmax head per attribute slot over `[batch, latent]` inputs.
#[derive(Module, Debug)]
pub struct LinearProbe {
    linear: Linear,
    heads: Vec<usize>,
}

impl LinearProbe {
    pub fn new(latent: usize, heads: &[usize], device: &Device) -> Self {
        Self {
            linear: LinearConfig::new(latent, heads.iter().sum()).init(device),
            heads: heads.to_vec(),
        }
    }

    /// Summed per-head cross-entropy, mean over the batch.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`, `targets`: `[batch, heads]`
    fn loss(&self, z: Tensor<2>, targets: Tensor<2, Int>) -> Tensor<1> {
        multi_head_nll(linear(&self.linear, z), targets, &self.heads)
    }

    /// Predicted value of every head: `[batch][heads]`.
    fn predict(&self, z: Tensor<2>) -> Vec<Vec<usize>> {
        multi_head_argmax(linear(&self.linear, z), &self.heads)
    }
}

/// Accuracy of a probe: every slot right, and per slot on average.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ProbeAccuracy {
    pub strict: f64,
    pub features: f64,
}

/// Train a probe on (`train_z`, `train_y`) and score it on the test pairs.
/// Full-batch Adam, `steps` steps, seeded by the caller through the device.
///
/// # Shapes
/// `train_z`: `n × latent` row-major, `train_y`: `n × heads.len()`
pub fn fit_and_score(
    latent: usize,
    heads: &[usize],
    train_z: &[f32],
    train_y: &[Vec<usize>],
    test_z: &[f32],
    test_y: &[Vec<usize>],
    steps: usize,
) -> ProbeAccuracy {
    let device = crate::device::cpu_device().autodiff();
    let n = train_y.len();
    let z = Tensor::<2>::from_data(TensorData::new(train_z.to_vec(), [n, latent]), &device);
    // Standardise with the training statistics.
    let mean = z.clone().mean_dim(0);
    let std = (z.clone() - mean.clone())
        .powf_scalar(2.0)
        .mean_dim(0)
        .sqrt()
        + 1e-6;
    let z = (z - mean.clone()) / std.clone();
    let y: Vec<i64> = train_y.iter().flatten().map(|&v| v as i64).collect();
    let y = Tensor::<2, Int>::from_data(TensorData::new(y, [n, heads.len()]), &device);
    let mut probe = LinearProbe::new(latent, heads, &device);
    let mut optim = AdamConfig::new().init();
    for _ in 0..steps {
        let loss = probe.loss(z.clone(), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &probe);
        probe = optim.step(0.05, probe, grads);
    }
    let plain = device.clone().without_autodiff();
    let t = test_y.len();
    let tz = Tensor::<2>::from_data(TensorData::new(test_z.to_vec(), [t, latent]), &plain);
    let (mean, std) = (mean.inner(), std.inner());
    let pred = probe.valid().predict((tz - mean) / std);
    let (mut strict, mut features) = (0usize, 0.0f64);
    for (p, want) in pred.iter().zip(test_y) {
        let right = p.iter().zip(want).filter(|(a, b)| a == b).count();
        strict += (right == want.len()) as usize;
        features += right as f64 / want.len().max(1) as f64;
    }
    ProbeAccuracy {
        strict: strict as f64 / t.max(1) as f64,
        features: features / t.max(1) as f64,
    }
}

/// Probe accuracies of both unimodal posteriors.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub train_items: usize,
    pub test_items: usize,
    /// From the mean of q(z|image): classification with the caption missing.
    pub image: ProbeAccuracy,
    /// From the mean of q(z|caption): classification with the image missing.
    pub text: ProbeAccuracy,
}

/// Posterior means of the first `n` items of `data` and their attributes.
fn means(
    m: &crate::infer::Loaded,
    data: &mmvae_data::ImageLabelSet,
    n: usize,
    stream: u64,
) -> (Vec<f32>, Vec<f32>, Vec<Vec<usize>>) {
    let kind = m.checkpoint.config.data.dataset;
    let src = crate::io::batch::CaptionSource {
        captioner: m.captioner(),
        set: mmvae_data::CaptionSet::Train,
        stream,
    };
    let (mut zi, mut zt, mut y) = (Vec::new(), Vec::new(), Vec::new());
    let idx: Vec<usize> = (0..n.min(data.len())).collect();
    for chunk in idx.chunks(500) {
        let hb = crate::io::batch::HostBatch::gather(
            &m.model.layout(),
            data,
            chunk,
            src,
            &m.checkpoint.vocab,
        );
        y.extend(hb.labels.iter().map(|&l| kind.attributes(l)));
        let b = hb.to_device(&m.device);
        zi.extend(floats(m.model.encode_image(b.images()).mu));
        zt.extend(floats(m.model.encode_caption(&b).mu));
    }
    (zi, zt, y)
}

/// Linear probes from both unimodal posterior means: trained on the first
/// `n_train` items of `train`, tested on the first `n_test` of `test`.
pub fn probe_latents(
    m: &crate::infer::Loaded,
    train: &mmvae_data::ImageLabelSet,
    n_train: usize,
    test: &mmvae_data::ImageLabelSet,
    n_test: usize,
) -> ProbeReport {
    let heads: Vec<usize> = m
        .checkpoint
        .config
        .data
        .dataset
        .slots()
        .iter()
        .map(|s| s.1)
        .collect();
    let latent = m.model.latent;
    let (ti, tt, ty) = means(m, train, n_train, crate::io::data::VAL_STREAM);
    let (si, st, sy) = means(m, test, n_test, crate::io::data::TEST_STREAM);
    ProbeReport {
        train_items: ty.len(),
        test_items: sy.len(),
        image: fit_and_score(latent, &heads, &ti, &ty, &si, &sy, 300),
        text: fit_and_score(latent, &heads, &tt, &ty, &st, &sy, 300),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_learns_a_linearly_separable_labelling() {
        let _rng = crate::testutil::rng_lock();
        Device::flex().autodiff().seed(1);
        // Two slots: the sign of dimension 0, and which of dims 1/2 is larger.
        let pts = |n: usize, off: usize| {
            let mut z = Vec::new();
            let mut y = Vec::new();
            for i in 0..n {
                let a = (((i + off) * 7919) % 101) as f32 / 50.0 - 1.0;
                let b = (((i + off) * 104729) % 97) as f32 / 97.0;
                let c = (((i + off) * 1299709) % 89) as f32 / 89.0;
                z.extend([a, b, c]);
                y.push(vec![(a > 0.0) as usize, (b > c) as usize]);
            }
            (z, y)
        };
        let (z, y) = pts(400, 0);
        let (tz, ty) = pts(200, 1000);
        let acc = fit_and_score(3, &[2, 2], &z, &y, &tz, &ty, 300);
        assert!(acc.strict > 0.9, "{acc:?}");
        // Labels unrelated to the inputs stay near chance.
        let noise: Vec<Vec<usize>> = (0..400)
            .map(|i| vec![(i * 31 % 7) % 2, (i * 17 % 5) % 2])
            .collect();
        let tnoise: Vec<Vec<usize>> = (0..200)
            .map(|i| vec![(i * 13 % 11) % 2, (i * 7 % 3) % 2])
            .collect();
        let acc = fit_and_score(3, &[2, 2], &z, &noise, &tz, &tnoise, 300);
        assert!(acc.strict < 0.5, "{acc:?}");
    }
}
