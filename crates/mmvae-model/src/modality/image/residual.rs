//! Residual convolutional image encoder and decoder with
//! Squeeze-and-Excitation (Hu et al. 2018) in every residual block and,
//! optionally, one self-attention block (SAGAN-style, Zhang et al. 2019) at
//! the lowest resolution.
//!
//! The resolutions follow the DCGAN model ([`crate::modality::image::conv::down_sides`]):
//! stride-2 4×4 convolutions halve the side (28 → 14 → 7; 64 → 32 → 16 → 8
//! → 4) and double the channels; each resolution has one residual block.

use crate::nn::activation::{relu, sigmoid};
use crate::nn::conv::{conv2d, conv_transpose2d};
use burn::module::Param;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::modality::image::conv::{conv3, down, down_sides, up};
use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;

/// Squeeze-and-Excitation: channel weights from the spatial mean,
/// `sigmoid(W2 relu(W1 mean(h)))`, reduction 4.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    squeeze: Linear,
    excite: Linear,
}

impl SqueezeExcite {
    pub fn new(channels: usize, device: &Device) -> Self {
        let mid = (channels / 4).max(1);
        Self {
            squeeze: LinearConfig::new(channels, mid).init(device),
            excite: LinearConfig::new(mid, channels).init(device),
        }
    }

    /// # Shapes
    /// `h`: `[batch, channels, height, width]` → the same, rescaled per channel
    pub fn forward(&self, h: Tensor<4>) -> Tensor<4> {
        let [b, c, _, _] = h.dims();
        let pooled = h.clone().mean_dim(3).mean_dim(2).reshape([b, c]); // [b, c]
        let w = sigmoid(linear(&self.excite, relu(linear(&self.squeeze, pooled))));
        h * w.reshape([b, c, 1, 1])
    }
}

/// `x + SE(conv3(relu(conv3(relu(x)))))`.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    conv1: Conv2d,
    conv2: Conv2d,
    se: SqueezeExcite,
}

impl ResidualBlock {
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            conv1: conv3(channels, channels, device),
            conv2: conv3(channels, channels, device),
            se: SqueezeExcite::new(channels, device),
        }
    }

    /// # Shapes
    /// `x`: `[batch, channels, height, width]` → the same
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = conv2d(&self.conv1, relu(x.clone()));
        let h = conv2d(&self.conv2, relu(h));
        x + self.se.forward(h)
    }
}

/// Self-attention over the positions of a feature map, added back with a
/// learned gate γ that starts at 0 (so the block starts as the identity).
#[derive(Module, Debug)]
pub struct SpatialAttention {
    attention: MultiHeadAttention,
    gamma: Param<Tensor<1>>,
}

impl SpatialAttention {
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            attention: MultiHeadAttentionConfig::new(channels, 1)
                .with_dropout(0.0)
                .init(device),
            gamma: Param::from_tensor(Tensor::zeros([1], device)),
        }
    }

    /// # Shapes
    /// `x`: `[batch, channels, height, width]` → the same
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let seq = x.clone().reshape([b, c, h * w]).swap_dims(1, 2); // [b, hw, c]
        let ctx = self.attention.forward(MhaInput::self_attn(seq)).context; // [b, hw, c]
        let ctx = ctx.swap_dims(1, 2).reshape([b, c, h, w]);
        x + ctx * self.gamma.val().reshape([1, 1, 1, 1])
    }
}

/// conv3(colours→c) → [res, down]… → (attention) → linear → hidden → (mu, logvar).
#[derive(Module, Debug)]
pub struct ResidualImageEncoder {
    stem: Conv2d,
    blocks: Vec<ResidualBlock>,
    downs: Vec<Conv2d>,
    attention: Option<SpatialAttention>,
    fc: Linear,
    out: Linear,
    side: usize,
    colours: usize,
}

impl ResidualImageEncoder {
    pub fn new(
        side: usize,
        colours: usize,
        channels: usize,
        hidden: usize,
        latent: usize,
        attention: bool,
        device: &Device,
    ) -> Self {
        let sides = down_sides(side);
        let mut c = channels;
        let (mut blocks, mut downs) = (Vec::new(), Vec::new());
        for _ in &sides {
            blocks.push(ResidualBlock::new(c, device));
            downs.push(down(c, 2 * c, device));
            c *= 2;
        }
        let last = sides.last().copied().unwrap_or(side);
        Self {
            stem: conv3(colours, channels, device),
            blocks,
            downs,
            attention: attention.then(|| SpatialAttention::new(c, device)),
            fc: LinearConfig::new(c * last * last, hidden).init(device),
            out: LinearConfig::new(hidden, 2 * latent).init(device),
            side,
            colours,
        }
    }

    /// # Shapes
    /// `x`: `[batch, colours * side * side]` (planar) → posterior over `[batch, latent]`
    pub fn forward(&self, x: Tensor<2>) -> Gaussian {
        let [b, _] = x.dims();
        let mut h = conv2d(
            &self.stem,
            x.reshape([b, self.colours, self.side, self.side]),
        );
        for (block, down) in self.blocks.iter().zip(&self.downs) {
            h = conv2d(down, relu(block.forward(h))); // side halves, channels double
        }
        if let Some(a) = &self.attention {
            h = a.forward(h);
        }
        let h = relu(linear(&self.fc, relu(h).flatten::<2>(1, 3)));
        Gaussian::from_concat(linear(&self.out, h))
    }
}

/// latent → hidden → c0 × s0 × s0 → (attention) → [res, up]… → conv3(→colours).
#[derive(Module, Debug)]
pub struct ResidualImageDecoder {
    fc1: Linear,
    fc2: Linear,
    attention: Option<SpatialAttention>,
    blocks: Vec<ResidualBlock>,
    ups: Vec<ConvTranspose2d>,
    head: Conv2d,
    side: usize,
    colours: usize,
    c0: usize,
    s0: usize,
}

impl ResidualImageDecoder {
    pub fn new(
        side: usize,
        colours: usize,
        channels: usize,
        hidden: usize,
        latent: usize,
        attention: bool,
        device: &Device,
    ) -> Self {
        let sides = down_sides(side);
        let k = sides.len();
        let c0 = channels << k;
        let s0 = sides.last().copied().unwrap_or(side);
        let (mut blocks, mut ups) = (Vec::new(), Vec::new());
        let mut c = c0;
        for _ in 0..k {
            blocks.push(ResidualBlock::new(c, device));
            ups.push(up(c, c / 2, device));
            c /= 2;
        }
        Self {
            fc1: LinearConfig::new(latent, hidden).init(device),
            fc2: LinearConfig::new(hidden, c0 * s0 * s0).init(device),
            attention: attention.then(|| SpatialAttention::new(c0, device)),
            blocks,
            ups,
            head: conv3(c, colours, device),
            side,
            colours,
            c0,
            s0,
        }
    }

    /// # Shapes
    /// `z`: `[batch, latent]` → logits `[batch, colours * side * side]` (planar)
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        let [b, _] = z.dims();
        let h = relu(linear(&self.fc1, z));
        let mut h = linear(&self.fc2, h).reshape([b, self.c0, self.s0, self.s0]);
        if let Some(a) = &self.attention {
            h = a.forward(h);
        }
        for (block, up) in self.blocks.iter().zip(&self.ups) {
            h = conv_transpose2d(up, relu(block.forward(h))); // side doubles, channels halve
        }
        conv2d(&self.head, relu(h)).reshape([b, self.colours * self.side * self.side])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{GradsOf, Perturb};
    use burn::module::ModuleMapper;

    #[test]
    fn shapes_for_28_and_64_with_and_without_attention() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        for (side, colours, attention) in [(28, 1, false), (28, 1, true), (64, 3, true)] {
            let e = ResidualImageEncoder::new(side, colours, 4, 16, 3, attention, &dev);
            let d = ResidualImageDecoder::new(side, colours, 4, 16, 3, attention, &dev);
            let x = Tensor::<2>::zeros([2, colours * side * side], &dev);
            let q = e.forward(x);
            assert_eq!(q.mu.dims(), [2, 3]);
            assert_eq!(d.forward(q.mu).dims(), [2, colours * side * side]);
        }
    }

    #[test]
    fn squeeze_excite_rescales_each_channel_by_a_gate_in_0_1() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(4);
        let se = SqueezeExcite::new(8, &dev);
        let h = Tensor::<4>::random([2, 8, 3, 3], burn::tensor::Distribution::Default, &dev) + 0.5;
        let out = se.forward(h.clone());
        // out / h is constant over each channel's positions and in (0, 1).
        let ratio = (out / h).try_into_vec_as::<f32>().unwrap();
        for ch in ratio.chunks(9) {
            assert!(ch.iter().all(|r| *r > 0.0 && *r < 1.0), "{ch:?}");
            assert!(ch.iter().all(|r| (r - ch[0]).abs() < 1e-5), "{ch:?}");
        }
    }

    /// Sets every 1-element parameter (the attention gate) to `v`.
    struct OpenGate(f32);
    impl ModuleMapper for OpenGate {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if p.val().shape().num_elements() == 1 {
                let v = self.0;
                p.map(|t| t.zeros_like() + v)
            } else {
                p
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences_through_blocks_and_attention() {
        let _rng = crate::testutil::rng_lock();
        let ad = Device::flex().autodiff();
        ad.seed(8);
        // A gate of 0 would hide the attention weights from the check.
        let enc = ResidualImageEncoder::new(8, 1, 2, 5, 2, true, &ad).map(&mut OpenGate(0.7));
        let x0: Vec<f32> = (0..64).map(|i| ((i * 13) % 11) as f32 / 11.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x0.clone(), [1, 64]), &ad);
        let loss = |e: &ResidualImageEncoder, x: Tensor<2>| {
            let q = e.forward(x);
            (q.mu.powi_scalar(2).sum() + q.logvar.sum()).reshape([1])
        };
        let grads = loss(&enc, x).backward();
        let mut c = GradsOf(&grads, Vec::new());
        enc.visit(&mut c);
        let plain = Device::flex();
        let base = enc.valid();
        let xp = Tensor::<2>::from_data(TensorData::new(x0, [1, 64]), &plain);
        let f = |e: &ResidualImageEncoder| -> f64 {
            loss(e, xp.clone()).try_into_vec_as::<f32>().unwrap()[0] as f64
        };
        let h = 1e-2f32;
        let (mut checked, mut bad) = (0, Vec::new());
        for (target, g) in c.1.iter().enumerate() {
            for index in [0, g.len() / 2, g.len() - 1] {
                let nudge = |h| {
                    base.clone().map(&mut Perturb {
                        target,
                        index,
                        h,
                        seen: 0,
                    })
                };
                let fd = (f(&nudge(h)) - f(&nudge(-h))) / (2.0 * h as f64);
                let an = g[index] as f64;
                checked += 1;
                if (fd - an).abs() > 0.05 * fd.abs().max(an.abs()) + 1e-2 {
                    bad.push((target, index, an, fd));
                }
            }
        }
        assert!(checked > 50, "{checked}");
        assert!(
            bad.len() * 25 <= checked,
            "{} of {checked} disagree: {bad:?}",
            bad.len()
        );
    }
}
