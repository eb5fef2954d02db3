//! Batched 2-D convolutions for burn's CPU backend.
//!
//! burn-flex computes a convolution one batch item at a time, as a matrix
//! product with as many rows as output channels (32–256 here), which runs
//! on the matrix kernels' narrowest, slowest shapes. [`conv2d`] and
//! [`conv_transpose2d`] gather the whole batch into one column matrix and
//! compute each pass, forward and backward, as a single large product
//! (the layout PyTorch's CPU convolutions use), with their own gradients
//! registered with burn's autodiff. They take burn's `Conv2d` and
//! `ConvTranspose2d` modules as they are, so checkpoints do not change.
//!
//! On other devices, for grouped convolutions and other float types they
//! call the modules' own forward pass. The values equal burn's up to the
//! order of summation (tests compare both, values and gradients).

mod autodiff;
mod columns;
mod flex;
pub mod geometry;

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::PaddingConfig2d;
use burn::tensor::{DType, Device, Tensor};

pub use geometry::Geometry;

/// The batched convolutions as operations of a backend.
#[backend_extension(Flex, Autodiff)]
pub trait ConvBackend: Backend {
    /// See [`flex::conv2d`].
    fn batched_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;

    /// See [`flex::conv_transpose2d`].
    fn batched_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;
}

impl ConvBackend for Flex {
    fn batched_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        flex::conv2d(&x, &weight, &bias, &geometry)
    }

    fn batched_conv_transpose2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        flex::conv_transpose2d(&x, &weight, &bias, &geometry)
    }
}

/// Whether the batched path applies: `f32` tensors on the CPU backend.
fn batched(x: &Tensor<4>, groups: usize) -> bool {
    groups == 1 && x.dtype() == DType::F32 && x.device().without_autodiff() == Device::flex()
}

/// The module's bias, or zeros (a constant: no gradient is computed for it).
fn bias_or_zeros(bias: Option<Tensor<1>>, channels: usize, device: &Device) -> Tensor<1> {
    bias.unwrap_or_else(|| Tensor::zeros([channels], device))
}

/// The zero rows and columns (before, after) that `conv` adds to an image
/// of `size` on each axis, as burn's `Conv2d` computes them ("same" padding
/// from the undilated kernel).
fn padding_pairs(conv: &Conv2d, size: [usize; 2]) -> [(usize, usize); 2] {
    let same = |axis: usize| {
        let (k, s) = (conv.kernel_size[axis], conv.stride[axis]);
        let out = size[axis].div_ceil(s);
        let total = if out > 0 {
            ((out - 1) * s + k).saturating_sub(size[axis])
        } else {
            0
        };
        (total / 2, total - total / 2)
    };
    match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => [same(0), same(1)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
    }
}

/// `conv.forward(x)`, batched on the CPU backend.
///
/// # Shapes
/// - x: `[batch, c_in, height, width]`
/// - output: `[batch, c_out, height_out, width_out]`
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if !batched(&x, conv.groups) {
        return conv.forward(x);
    }
    let [batch, channels, height, width] = x.dims();
    let [c_out, _, k_h, k_w] = conv.weight.dims();
    let [(top, bottom), (left, right)] = padding_pairs(conv, [height, width]);
    let side = |size: usize, before: usize, after: usize, axis: usize| {
        let span = conv.dilation[axis] * (conv.kernel_size[axis] - 1) + 1;
        (size + before + after).saturating_sub(span) / conv.stride[axis] + 1
    };
    let geometry = Geometry {
        batch,
        channels,
        image: [height, width],
        positions: [side(height, top, bottom, 0), side(width, left, right, 1)],
        kernel: [k_h, k_w],
        stride: conv.stride,
        padding: [top, left],
        dilation: conv.dilation,
    };
    let device = x.device();
    let bias = bias_or_zeros(conv.bias.as_ref().map(|b| b.val()), c_out, &device);
    Tensor::from_dispatch(Dispatch::batched_conv2d(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.into_dispatch(),
        geometry,
    ))
}

/// `deconv.forward(x)`, batched on the CPU backend.
///
/// # Shapes
/// - x: `[batch, c_in, height, width]`
/// - output: `[batch, c_out, height_out, width_out]`
pub fn conv_transpose2d(deconv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    if !batched(&x, deconv.groups) {
        return deconv.forward(x);
    }
    let [batch, _, height, width] = x.dims();
    let [_, c_out, k_h, k_w] = deconv.weight.dims();
    let side = |size: usize, axis: usize| {
        ((size - 1) * deconv.stride[axis]
            + deconv.dilation[axis] * (deconv.kernel_size[axis] - 1)
            + deconv.padding_out[axis]
            + 1)
        .saturating_sub(2 * deconv.padding[axis])
    };
    let geometry = Geometry {
        batch,
        channels: c_out,
        image: [side(height, 0), side(width, 1)],
        positions: [height, width],
        kernel: [k_h, k_w],
        stride: deconv.stride,
        padding: deconv.padding,
        dilation: deconv.dilation,
    };
    let device = x.device();
    let bias = bias_or_zeros(deconv.bias.as_ref().map(|b| b.val()), c_out, &device);
    Tensor::from_dispatch(Dispatch::batched_conv_transpose2d(
        x.into_dispatch(),
        deconv.weight.val().into_dispatch(),
        bias.into_dispatch(),
        geometry,
    ))
}

#[cfg(test)]
mod tests;
