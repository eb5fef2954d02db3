//! DCGAN-style convolutional image encoder and decoder for square
//! images with `colours` channels (1 grey, 3 RGB): stride-2 4×4 convolutions halve the side while it
//! stays even and at least 4 (28 → 14 → 7; 64 → 32 → 16 → 8 → 4), doubling
//! the channels each time.

use crate::nn::activation::relu;
use crate::nn::conv::{conv2d, conv_transpose2d};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

use crate::modality::image::levels::{Levels, LEVELS};
use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;

/// 3×3 convolution that keeps the side (padding 1).
pub(crate) fn conv3(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// 4×4 stride-2 convolution that halves the side.
pub(crate) fn down(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [4, 4])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// 4×4 stride-2 transposed convolution that doubles the side.
pub(crate) fn up(c_in: usize, c_out: usize, device: &Device) -> ConvTranspose2d {
    // (H - 1) * 2 - 2 + 4 = 2H
    ConvTranspose2dConfig::new([c_in, c_out], [4, 4])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .init(device)
}

/// The channels after each stride-2 layer: `channels`, doubled at each
/// halving of the side, capped at `max_channels` (uncapped when `None`).
/// e.g. 16 → `[16, 32, 64, 128]` for 64×64, or `[32, 32, 32, 32]` with
/// `channels` 32 capped at 32.
pub fn channel_widths(channels: usize, max_channels: Option<usize>, layers: usize) -> Vec<usize> {
    let cap = max_channels.unwrap_or(usize::MAX).max(1);
    (0..layers)
        .map(|i| {
            channels
                .checked_shl(i as u32)
                .unwrap_or(usize::MAX)
                .min(cap)
        })
        .collect()
}

/// The side lengths after each stride-2 layer, e.g. `[14, 7]` for 28.
pub fn down_sides(side: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut s = side;
    while s.is_multiple_of(2) && s / 2 >= 4 && v.len() < 4 {
        s /= 2;
        v.push(s);
    }
    v
}

/// What a conv encoder and its decoder share: the image (`side`×`side`,
/// `colours` channels), the widths ([`channel_widths`] of `channels` and
/// `max_channels`), the hidden layer and the latent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvSpec {
    pub side: usize,
    pub colours: usize,
    pub channels: usize,
    pub max_channels: Option<usize>,
    pub hidden: usize,
    pub latent: usize,
}

impl ConvSpec {
    /// The sides after each stride-2 layer ([`down_sides`]) and the
    /// channels there ([`channel_widths`]).
    fn sides_and_widths(&self) -> (Vec<usize>, Vec<usize>) {
        let sides = down_sides(self.side);
        let widths = channel_widths(self.channels, self.max_channels, sides.len());
        (sides, widths)
    }
}

/// conv(colours→c, /2) → conv(c→2c, /2) → … → linear → hidden → (mu, logvar),
/// with the widths of [`channel_widths`]. With `levels` on, a second linear
/// layer from the image's level features ([`Levels::features`]) adds into
/// the hidden layer. With `holes`, the first convolution reads one more
/// channel, the image's [`hole_map`] at that level.
#[derive(Module, Debug)]
pub struct ConvImageEncoder {
    convs: Vec<Conv2d>,
    fc: Linear,
    /// The levels layer: `Some` exactly when `reads` is not `Off`.
    levels: Option<Linear>,
    #[module(skip)]
    reads: Levels,
    /// The level that marks a hole, where the encoder reads a hole map.
    #[module(skip)]
    holes: Option<u8>,
    out: Linear,
    side: usize,
    colours: usize,
}

impl ConvImageEncoder {
    pub fn new(spec: ConvSpec, levels: Levels, holes: Option<u8>, device: &Device) -> Self {
        let (sides, widths) = spec.sides_and_widths();
        let mut c_in = spec.colours + usize::from(holes.is_some());
        let mut convs = Vec::new();
        for &c_out in &widths {
            convs.push(down(c_in, c_out, device));
            c_in = c_out;
        }
        let last = sides.last().copied().unwrap_or(spec.side);
        Self {
            convs,
            fc: LinearConfig::new(c_in * last * last, spec.hidden).init(device),
            levels: (!levels.is_off())
                .then(|| LinearConfig::new(spec.colours * LEVELS, spec.hidden).init(device)),
            reads: levels,
            holes,
            out: LinearConfig::new(spec.hidden, 2 * spec.latent).init(device),
            side: spec.side,
            colours: spec.colours,
        }
    }

    /// # Shapes
    /// `x`: `[batch, colours * side * side]` (planar) → posterior over `[batch, latent]`
    pub fn forward(&self, x: Tensor<2>) -> Gaussian {
        let [b, _] = x.dims();
        let seen = self
            .levels
            .as_ref()
            .zip(self.reads.features(x.clone(), self.colours))
            .map(|(l, f)| linear(l, f));
        let mut h = x.reshape([b, self.colours, self.side, self.side]);
        if let Some(level) = self.holes {
            let map = hole_map(h.clone(), level);
            h = Tensor::cat(vec![h, map], 1);
        }
        for c in &self.convs {
            h = relu(conv2d(c, h)); // [b, c_k, side / 2^k, side / 2^k]
        }
        let h = linear(&self.fc, h.flatten::<2>(1, 3));
        let h = relu(match seen {
            Some(s) => h + s,
            None => h,
        });
        let o = linear(&self.out, h);
        Gaussian::from_concat(o)
    }
}

/// 1 at each pixel whose every channel is at `level` (`round(255 v)` for a
/// value `v` in [0, 1]), 0 elsewhere: where a masked copy's square is. A
/// constant of the input: no gradient flows through it.
///
/// # Shapes
/// `x`: `[batch, colours, side, side]` → `[batch, 1, side, side]`
pub fn hole_map(x: Tensor<4>, level: u8) -> Tensor<4> {
    x.detach()
        .mul_scalar(255.0)
        .round()
        .equal_elem(f32::from(level))
        .float()
        .min_dim(1)
}

/// latent → hidden → (c·2^(k-1)) × s × s → deconv(×2) … → colours × side × side,
/// the encoder's widths in reverse.
///
/// With `refine`, a 3×3 convolution follows each of the last two transposed
/// convolutions (at half and full side): the last transposed convolution
/// then keeps `channels` channels and the full-side 3×3 convolution maps
/// them to the colours, so the outline is drawn by a layer that sees each
/// output pixel's neighbours, not by one linear 4×4 transposed filter.
#[derive(Module, Debug)]
pub struct ConvImageDecoder {
    fc1: Linear,
    fc2: Linear,
    deconvs: Vec<ConvTranspose2d>,
    /// The 3×3 convolutions after the last `refines.len()` transposed
    /// convolutions (empty without `refine`).
    refines: Vec<Conv2d>,
    side: usize,
    colours: usize,
    /// Channels and side of the lowest resolution.
    c0: usize,
    s0: usize,
}

impl ConvImageDecoder {
    pub fn new(spec: ConvSpec, refine: bool, device: &Device) -> Self {
        let (sides, widths) = spec.sides_and_widths();
        let k = sides.len();
        let c0 = widths.last().copied().unwrap_or(spec.colours);
        let s0 = sides.last().copied().unwrap_or(spec.side);
        // The last transposed convolution's output: the colours, or with
        // `refine` the first width, mapped to the colours by a 3×3 conv.
        let last_out = if refine && k > 0 {
            widths[0]
        } else {
            spec.colours
        };
        let deconvs = (0..k)
            .rev()
            .map(|i| {
                let c_out = if i == 0 { last_out } else { widths[i - 1] };
                up(widths[i], c_out, device)
            })
            .collect();
        // [after the half-side deconv (widths[0] → widths[0])], the full-side
        // one (widths[0] → colours); only the second when there is one deconv.
        let refines = if refine && k > 0 {
            let mut r = Vec::new();
            if k > 1 {
                r.push(conv3(widths[0], widths[0], device));
            }
            r.push(conv3(widths[0], spec.colours, device));
            r
        } else {
            Vec::new()
        };
        Self {
            fc1: LinearConfig::new(spec.latent, spec.hidden).init(device),
            fc2: LinearConfig::new(spec.hidden, c0 * s0 * s0).init(device),
            deconvs,
            refines,
            side: spec.side,
            colours: spec.colours,
            c0,
            s0,
        }
    }

    /// # Shapes
    /// `z`: `[batch, latent]` → Bernoulli logits `[batch, colours * side * side]` (planar)
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        let [b, _] = z.dims();
        let h = relu(linear(&self.fc1, z));
        let mut h = linear(&self.fc2, h).reshape([b, self.c0, self.s0, self.s0]);
        let (n, r) = (self.deconvs.len(), self.refines.len());
        for (i, d) in self.deconvs.iter().enumerate() {
            h = conv_transpose2d(d, relu(h)); // side doubles
            if i + r >= n {
                h = conv2d(&self.refines[i + r - n], relu(h)); // same side
            }
        }
        h.reshape([b, self.colours * self.side * self.side])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;

    fn spec(side: usize, colours: usize, channels: usize, max_channels: Option<usize>) -> ConvSpec {
        ConvSpec {
            side,
            colours,
            channels,
            max_channels,
            hidden: 16,
            latent: 3,
        }
    }

    #[test]
    fn shapes_for_28_and_64() {
        let _rng = crate::testutil::rng_lock();
        assert_eq!(down_sides(28), vec![14, 7]);
        assert_eq!(down_sides(64), vec![32, 16, 8, 4]);
        let dev = Device::flex();
        for (side, colours) in [(28, 1), (64, 1), (64, 3)] {
            let e = ConvImageEncoder::new(spec(side, colours, 4, None), Levels::Off, None, &dev);
            let q = e.forward(Tensor::zeros([2, colours * side * side], &dev));
            assert_eq!(q.mu.dims(), [2, 3]);
            for refine in [false, true] {
                let d = ConvImageDecoder::new(spec(side, colours, 4, None), refine, &dev);
                assert_eq!(d.forward(q.mu.clone()).dims(), [2, colours * side * side]);
            }
        }
    }

    #[test]
    fn the_hole_map_marks_pixels_at_the_level_on_every_channel() {
        let dev = Device::flex();
        // Two channels of 2×2: both at 128; one only; 127 and 129; both
        // within rounding of 128.
        let planes = [128.0, 128.0, 127.0, 128.4, 128.0, 0.0, 129.0, 127.8f32];
        let data: Vec<f32> = planes.iter().map(|l| l / 255.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data, [1, 2, 2, 2]), &dev);
        let map = hole_map(x, 128);
        assert_eq!(map.dims(), [1, 1, 2, 2]);
        let got = map.into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(got, [1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn the_encoder_reads_the_hole_map_as_one_more_channel() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        let e = ConvImageEncoder::new(spec(28, 3, 4, None), Levels::Off, Some(128), &dev);
        assert_eq!(e.convs[0].weight.dims(), [4, 4, 4, 4], "3 colours + holes");
        let mut plain = ConvImageEncoder::new(spec(28, 3, 4, None), Levels::Off, None, &dev);
        assert_eq!(plain.convs[0].weight.dims(), [4, 3, 4, 4]);
        // The same weights on the colours: only the hole channel differs.
        let w = e.convs[0].weight.val().slice([0..4, 0..3, 0..4, 0..4]);
        plain.convs[0].weight = Param::from_tensor(w);
        plain.convs[0].bias = e.convs[0].bias.clone();
        plain.convs[1..].clone_from_slice(&e.convs[1..]);
        plain.fc = e.fc.clone();
        plain.out = e.out.clone();
        // Every pixel a hole at 128, none at 129 (0.6 of a level higher).
        let at = |l: f32| Tensor::<2>::full([1, 3 * 28 * 28], l / 255.0, &dev);
        let total = |t: Tensor<2>| t.abs().sum().into_data().try_into_vec::<f32>().unwrap()[0];
        let moved = |m: &ConvImageEncoder| total(m.forward(at(128.0)).mu - m.forward(at(128.6)).mu);
        let (with, without) = (moved(&e), moved(&plain));
        assert!(
            with > 10.0 * without && with > 1e-3,
            "{with} against {without}"
        );
    }

    #[test]
    fn the_levels_pathway_adds_into_the_hidden_layer() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        let e = ConvImageEncoder::new(spec(28, 1, 4, None), Levels::Counts, None, &dev);
        let levels = e.levels.as_ref().expect("levels layer");
        assert_eq!(levels.weight.dims(), [256, 16]);
        let x = Tensor::<2>::full([1, 28 * 28], 0.5, &dev);
        let mu = |m: &ConvImageEncoder| m.forward(x.clone()).mu;
        let mut plain = e.clone();
        plain.levels = None;
        let total = |t: Tensor<2>| t.abs().sum().into_data().try_into_vec::<f32>().unwrap()[0];
        let gap = total(mu(&e) - mu(&plain));
        assert!(gap > 1e-4, "{gap}");
        // With the levels layer at zero, it is the plain encoder.
        let mut zeroed = e.clone();
        let mut off = levels.clone();
        off.weight = Param::from_tensor(levels.weight.val().zeros_like());
        off.bias = levels
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(b.val().zeros_like()));
        zeroed.levels = Some(off);
        let same = total(mu(&zeroed) - mu(&plain));
        assert!(same < 1e-6, "{same}");
    }

    #[test]
    fn widths_double_up_to_the_cap() {
        assert_eq!(channel_widths(16, None, 4), vec![16, 32, 64, 128]);
        assert_eq!(channel_widths(16, Some(48), 4), vec![16, 32, 48, 48]);
        assert_eq!(channel_widths(32, Some(32), 4), vec![32, 32, 32, 32]);
        assert_eq!(channel_widths(8, None, 0), Vec::<usize>::new());
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        // A capped model has the capped layers: 3·32·16 + 32 weights and
        // biases in the encoder's first layer, 32·32·16 + 32 in the others.
        let e = ConvImageEncoder::new(spec(64, 3, 32, Some(32)), Levels::Off, None, &dev);
        let d = ConvImageDecoder::new(spec(64, 3, 32, Some(32)), false, &dev);
        let conv_params: usize = e.convs.iter().map(|c| c.num_params()).sum();
        assert_eq!(conv_params, (3 * 32 * 16 + 32) + 3 * (32 * 32 * 16 + 32));
        let deconv_params: usize = d.deconvs.iter().map(|c| c.num_params()).sum();
        assert_eq!(deconv_params, 3 * (32 * 32 * 16 + 32) + (32 * 3 * 16 + 3));
        let x = Tensor::zeros([2, 3 * 64 * 64], &dev);
        assert_eq!(d.forward(e.forward(x).mu).dims(), [2, 3 * 64 * 64]);
    }

    #[test]
    fn refine_adds_two_same_side_convolutions() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        // 64×64 RGB, channels 4: deconvs 32→16→8→4 and, with refine, the
        // last one keeps 4 channels (4·4·16 + 4 weights and biases), then
        // 3×3 convs 4→4 at 32×32 and 4→3 at 64×64.
        let plain = ConvImageDecoder::new(spec(64, 3, 4, None), false, &dev);
        let refined = ConvImageDecoder::new(spec(64, 3, 4, None), true, &dev);
        assert!(plain.refines.is_empty());
        let params = |d: &ConvImageDecoder| -> usize {
            d.deconvs.iter().map(|c| c.num_params()).sum::<usize>()
                + d.refines.iter().map(|c| c.num_params()).sum::<usize>()
        };
        let shared = (32 * 16 * 16 + 16) + (16 * 8 * 16 + 8) + (8 * 4 * 16 + 4);
        assert_eq!(params(&plain), shared + (4 * 3 * 16 + 3));
        assert_eq!(
            params(&refined),
            shared + (4 * 4 * 16 + 4) + (4 * 4 * 9 + 4) + (4 * 3 * 9 + 3)
        );
        // The refining convolutions take part: the output changes when
        // the last one's bias does.
        let z = Tensor::<2>::ones([1, 3], &dev);
        let before = refined.forward(z.clone());
        let mut changed = refined.clone();
        let last = changed.refines.len() - 1;
        let bias = changed.refines[last].bias.clone().unwrap();
        changed.refines[last].bias = Some(bias.map(|b| b.add_scalar(1.0)));
        let diff = (changed.forward(z.clone()) - before)
            .abs()
            .mean()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()[0];
        assert!((diff - 1.0).abs() < 1e-4, "{diff}");
        // MNIST sides (28 → 14 → 7): two deconvs, both refined.
        let mnist = ConvImageDecoder::new(spec(28, 1, 4, None), true, &dev);
        assert_eq!(mnist.refines.len(), 2);
        assert_eq!(
            mnist.forward(z.clone().narrow(0, 0, 1)).dims(),
            [1, 28 * 28]
        );
    }
}
