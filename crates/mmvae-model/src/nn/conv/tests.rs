//! The batched convolutions against burn's own (values and the gradients
//! of input, weight and bias), on the shapes the image models use and on
//! odd ones (asymmetric padding, dilation, output padding, no bias).

use burn::module::Param;
use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Distribution, Tensor, TensorData, Tolerance};

use super::*;

fn close(got: TensorData, want: TensorData, what: &str) {
    let scale = want
        .iter::<f32>()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-3);
    let worst = got
        .iter::<f32>()
        .zip(want.iter::<f32>())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    assert!(
        worst <= 2e-5 * scale,
        "{what}: off by {worst} (largest value {scale})"
    );
}

#[test]
fn conv2d_matches_burn_on_values_and_gradients() {
    let big = Geometry {
        batch: 3,
        channels: 64,
        image: [32, 32],
        positions: [16, 16],
        kernel: [4, 4],
        stride: [2, 2],
        padding: [1, 1],
        dilation: [1, 1],
    };
    assert_eq!(
        big.chunks().collect::<Vec<_>>(),
        vec![(0, 1), (1, 1), (2, 1)]
    );
    let device = Device::flex().autodiff();
    let cases = [
        // (config, input): a stride-2 4×4 layer, a padded 3×3, dilation with
        // asymmetric "same" padding, no bias.
        (
            Conv2dConfig::new([3, 5], [4, 4])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
            [4, 3, 16, 16],
        ),
        (
            Conv2dConfig::new([2, 4], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
            [3, 2, 7, 9],
        ),
        (
            Conv2dConfig::new([2, 3], [4, 2])
                .with_dilation([2, 1])
                .with_padding(PaddingConfig2d::Same),
            [2, 2, 9, 8],
        ),
        (
            Conv2dConfig::new([3, 2], [3, 3])
                .with_stride([2, 3])
                .with_bias(false),
            [2, 3, 11, 10],
        ),
        // The evaluation classifier's first layer on 64×64 RGB (two items per chunk).
        (
            Conv2dConfig::new([3, 32], [3, 3]).with_padding(PaddingConfig2d::Same),
            [6, 3, 64, 64],
        ),
        // One batch item per chunk (a column matrix of 64·4·4 × 16·16 values).
        (
            Conv2dConfig::new([64, 4], [4, 4])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
            [3, 64, 32, 32],
        ),
    ];
    for (config, input) in cases {
        let conv = config.init(&device);
        compare_params(conv, input, conv2d, |m, x| m.forward(x));
    }
}

#[test]
fn conv_transpose2d_matches_burn_on_values_and_gradients() {
    let device = Device::flex().autodiff();
    let cases = [
        (
            ConvTranspose2dConfig::new([5, 3], [4, 4])
                .with_stride([2, 2])
                .with_padding([1, 1]),
            [4, 5, 8, 8],
        ),
        (
            ConvTranspose2dConfig::new([2, 4], [3, 3])
                .with_stride([3, 2])
                .with_padding_out([1, 1]),
            [3, 2, 5, 4],
        ),
        (
            ConvTranspose2dConfig::new([3, 2], [3, 2])
                .with_dilation([2, 1])
                .with_padding([2, 0])
                .with_bias(false),
            [2, 3, 6, 7],
        ),
        // One batch item per chunk.
        (
            ConvTranspose2dConfig::new([4, 64], [4, 4])
                .with_stride([2, 2])
                .with_padding([1, 1]),
            [3, 4, 16, 16],
        ),
    ];
    for (config, input) in cases {
        let deconv = config.init(&device);
        compare_params(deconv, input, conv_transpose2d, |m, x| m.forward(x));
    }
}

/// [`compare`], plus the gradients of the module's parameters.
fn compare_params<M>(
    module: M,
    input: [usize; 4],
    ours: impl Fn(&M, Tensor<4>) -> Tensor<4>,
    burn: impl Fn(&M, Tensor<4>) -> Tensor<4>,
) where
    M: Params,
{
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device).require_grad();
    assert!(
        batched(&x, 1),
        "the batched path must apply on the CPU backend"
    );
    let probe = Tensor::<4>::random(
        burn(&module, x.clone()).dims(),
        Distribution::Default,
        &device,
    );
    let run = |f: &dyn Fn(&M, Tensor<4>) -> Tensor<4>| {
        let y = f(&module, x.clone());
        let values = y.clone().into_data();
        let grads = (y * probe.clone()).sum().backward();
        let x_grad = x.grad(&grads).unwrap().into_data();
        let (w, b) = module.params();
        let w_grad = w.grad(&grads).unwrap().into_data();
        let b_grad = b.map(|b| b.grad(&grads).unwrap().into_data());
        (values, x_grad, w_grad, b_grad)
    };
    let (got, got_x, got_w, got_b) = run(&ours);
    let (want, want_x, want_w, want_b) = run(&burn);
    close(got, want, "output");
    close(got_x, want_x, "input gradient");
    close(got_w, want_w, "weight gradient");
    assert_eq!(got_b.is_some(), want_b.is_some());
    if let (Some(got), Some(want)) = (got_b, want_b) {
        close(got, want, "bias gradient");
    }
}

/// The weight and bias of a convolution module.
trait Params {
    fn params(&self) -> (Tensor<4>, Option<Tensor<1>>);
}

impl Params for Conv2d {
    fn params(&self) -> (Tensor<4>, Option<Tensor<1>>) {
        (self.weight.val(), self.bias.as_ref().map(Param::val))
    }
}

impl Params for ConvTranspose2d {
    fn params(&self) -> (Tensor<4>, Option<Tensor<1>>) {
        (self.weight.val(), self.bias.as_ref().map(Param::val))
    }
}

/// Without autodiff (inference) the batched path gives burn's values too.
#[test]
fn inference_matches_burn() {
    let device = Device::flex();
    let conv = Conv2dConfig::new([3, 6], [4, 4])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let x = Tensor::<4>::random([5, 3, 12, 12], Distribution::Normal(0.0, 1.0), &device);
    assert!(batched(&x, 1) && !batched(&x, 3));
    close(
        conv2d(&conv, x.clone()).into_data(),
        conv.forward(x).into_data(),
        "conv output",
    );
    let deconv = ConvTranspose2dConfig::new([3, 2], [4, 4])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .init(&device);
    let x = Tensor::<4>::random([5, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device);
    let ours = conv_transpose2d(&deconv, x.clone()).into_data();
    ours.assert_approx_eq::<f32>(&deconv.forward(x).into_data(), Tolerance::absolute(1e-5));
}
