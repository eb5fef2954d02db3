//! The batched convolutions on burn-flex tensors: forward passes and the
//! gradients of their inputs.
//!
//! A convolution and its transpose are the same two maps between the image
//! side and the positions side of a [`Geometry`], taken in opposite
//! directions: [`gather`] (im2col, then the weights) and [`scatter`] (the
//! transposed weights, then col2im). A convolution's forward pass is a
//! gather and its input gradient a scatter; a transposed convolution's the
//! other way round. Both weight gradients multiply the positions side by
//! the image side's columns.
//!
//! Weights keep burn's layouts: `[c_out, c_in, k_h, k_w]` for a
//! convolution, `[c_in, c_out, k_h, k_w]` for a transposed one; either way
//! a `[rows, col_rows]` matrix whose rows are the positions side's channels.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::nn::dense::{tensor, Dense};
use crate::nn::grads::{Grads, Wanted};
use crate::nn::matmul::{matmul_into, Mat};
use crate::nn::scratch::Scratch;

use super::columns::{col2im_into, im2col_into};
use super::geometry::{swap_outer_into, Geometry};

/// Values at or above which the bias is added over the thread pool.
const PARALLEL_BIAS: usize = 1 << 15;

/// Adds `bias[c]` to every value of channel `c` of `[batch, channels, plane]`.
fn add_bias(values: &mut [f32], bias: &[f32], plane: usize) {
    if plane == 0 {
        return;
    }
    let add = |(i, run): (usize, &mut [f32])| {
        let b = bias[i % bias.len()];
        run.iter_mut().for_each(|v| *v += b);
    };
    if values.len() >= PARALLEL_BIAS {
        values.par_chunks_exact_mut(plane).enumerate().for_each(add);
    } else {
        values.chunks_exact_mut(plane).enumerate().for_each(add);
    }
}

/// For each chunk of items: the columns of the image side, then the
/// positions side `weight · cols` into `gather` (`[batch, rows, plane]`),
/// and `positions · colsᵀ` summed over the chunks into `weight_grad`
/// (`[rows, col_rows]`), each where given. The columns are built once for
/// both.
///
/// # Shapes
/// - image: `[batch, channels, image[0], image[1]]`
/// - weight: `[rows, col_rows]`; positions: `[batch, rows, plane]`
fn through_columns(
    image: &[f32],
    g: &Geometry,
    gather: Option<(Mat, &mut [f32])>,
    weight_grad: Option<(&[f32], &mut [f32])>,
) {
    let (per_image, plane) = (g.channels * g.image[0] * g.image[1], g.plane());
    let rows = match (&gather, &weight_grad) {
        (Some((w, _)), _) => w.rows,
        (None, Some((_, gw))) => gw.len() / g.col_rows(),
        (None, None) => return,
    };
    let (mut gather, mut weight_grad) = (gather, weight_grad);
    for (i, (first, items)) in g.chunks().enumerate() {
        let gc = g.with_batch(items);
        let mut cols = Scratch::take(gc.col_rows() * gc.col_len());
        im2col_into(
            &image[first * per_image..][..items * per_image],
            &gc,
            &mut cols,
        );
        let cols = Mat::rows(&cols, gc.col_rows(), gc.col_len());
        let run = first * rows * plane..(first + items) * rows * plane;
        // [rows, items · plane] (the positions side with the items inside)
        let mut inner = Scratch::take(run.len());
        if let Some((w, out)) = gather.as_mut() {
            // [rows, k] · [k, items · plane] = [rows, items, plane]
            matmul_into(*w, cols, &mut inner, false);
            swap_outer_into(&inner, rows, items, plane, &mut out[run.clone()]);
        }
        if let Some((positions, gw)) = weight_grad.as_mut() {
            // [rows, items · plane] · [items · plane, k]
            swap_outer_into(&positions[run], items, rows, plane, &mut inner);
            matmul_into(Mat::rows(&inner, rows, gc.col_len()), cols.t(), gw, i > 0);
        }
    }
}

/// The positions side `[batch, rows, plane]` times `weight` (`[rows,
/// col_rows]`), then added back onto the image side by col2im.
///
/// # Shapes
/// - positions: `[batch, rows, plane]` → `[batch, channels, image[0], image[1]]`
fn scatter(positions: &[f32], weight: Mat, g: &Geometry) -> Vec<f32> {
    let (per_image, plane, rows) = (g.channels * g.image[0] * g.image[1], g.plane(), weight.rows);
    let mut out = vec![0.0f32; g.image_len()];
    for (first, items) in g.chunks() {
        let gc = g.with_batch(items);
        // [rows, items · plane]
        let mut pt = Scratch::take(items * rows * plane);
        swap_outer_into(
            &positions[first * rows * plane..][..items * rows * plane],
            items,
            rows,
            plane,
            &mut pt,
        );
        // [k, rows] · [rows, items · plane]
        let mut cols = Scratch::take(gc.col_rows() * gc.col_len());
        matmul_into(
            weight.t(),
            Mat::rows(&pt, rows, gc.col_len()),
            &mut cols,
            false,
        );
        col2im_into(
            &cols,
            &gc,
            &mut out[first * per_image..][..items * per_image],
        );
    }
    out
}

/// The sum of each channel of `[batch, channels, plane]`: within each run
/// of items (first, count) in item-then-position order, then over the runs.
fn channel_sums(
    values: &[f32],
    batch: usize,
    channels: usize,
    runs: impl Iterator<Item = (usize, usize)>,
) -> Vec<f32> {
    let plane = values.len() / (batch * channels).max(1);
    let mut sums = vec![0.0f32; channels];
    for (first, items) in runs {
        for (c, total) in sums.iter_mut().enumerate() {
            let run =
                (first..first + items).flat_map(|n| &values[(n * channels + c) * plane..][..plane]);
            *total += run.sum::<f32>();
        }
    }
    sums
}

fn weight_tensor(values: Vec<f32>, weight: &FlexTensor) -> FlexTensor {
    let s = weight.layout().shape();
    tensor(values, &[s[0], s[1], s[2], s[3]])
}

/// A convolution over the image side `g` (its input) with `c_out` output
/// channels, a chunk of batch items at a time ([`Geometry::chunks`]).
///
/// # Shapes
/// - x: `[batch, channels, image[0], image[1]]`
/// - weight: `[c_out, channels, kernel[0], kernel[1]]`, bias: `[c_out]`
/// - output: `[batch, c_out, positions[0], positions[1]]`
pub fn conv2d(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor, g: &Geometry) -> FlexTensor {
    let c_out = weight.layout().shape()[0];
    let (x, w, b) = (Dense::new(x), Dense::new(weight), Dense::new(bias));
    let mut out = vec![0.0f32; g.batch * c_out * g.plane()];
    let w = Mat::rows(w.values(), c_out, g.col_rows());
    through_columns(x.values(), g, Some((w, &mut out)), None);
    add_bias(&mut out, b.values(), g.plane());
    tensor(out, &[g.batch, c_out, g.positions[0], g.positions[1]])
}

/// The gradients of [`conv2d`] given the output's gradient `grad`.
pub fn conv2d_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    g: &Geometry,
    wanted: Wanted,
) -> Grads {
    let c_out = weight.layout().shape()[0];
    let (x, w, grad) = (Dense::new(x), Dense::new(weight), Dense::new(grad));
    let w = Mat::rows(w.values(), c_out, g.col_rows());
    let input = wanted.input.then(|| {
        let gx = scatter(grad.values(), w, g);
        tensor(gx, &[g.batch, g.channels, g.image[0], g.image[1]])
    });
    let weight_grad = wanted.weight.then(|| {
        let mut gw = vec![0.0f32; c_out * g.col_rows()];
        through_columns(x.values(), g, None, Some((grad.values(), &mut gw)));
        weight_tensor(gw, weight)
    });
    let bias = wanted.bias.then(|| {
        tensor(
            channel_sums(grad.values(), g.batch, c_out, g.chunks()),
            &[c_out],
        )
    });
    Grads {
        input,
        weight: weight_grad,
        bias,
    }
}

/// A transposed convolution onto the image side `g` (its output) from
/// `c_in` input channels at `g.positions`, a chunk of items at a time.
///
/// # Shapes
/// - x: `[batch, c_in, positions[0], positions[1]]`
/// - weight: `[c_in, channels, kernel[0], kernel[1]]`, bias: `[channels]`
/// - output: `[batch, channels, image[0], image[1]]`
pub fn conv_transpose2d(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    g: &Geometry,
) -> FlexTensor {
    let c_in = weight.layout().shape()[0];
    let (x, w, b) = (Dense::new(x), Dense::new(weight), Dense::new(bias));
    let mut out = scatter(x.values(), Mat::rows(w.values(), c_in, g.col_rows()), g);
    add_bias(&mut out, b.values(), g.image[0] * g.image[1]);
    tensor(out, &[g.batch, g.channels, g.image[0], g.image[1]])
}

/// The gradients of [`conv_transpose2d`] given the output's gradient `grad`.
pub fn conv_transpose2d_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    g: &Geometry,
    wanted: Wanted,
) -> Grads {
    let c_in = weight.layout().shape()[0];
    let (x, w, grad) = (Dense::new(x), Dense::new(weight), Dense::new(grad));
    let w = Mat::rows(w.values(), c_in, g.col_rows());
    let mut gx = vec![
        0.0f32;
        if wanted.input {
            g.batch * c_in * g.plane()
        } else {
            0
        }
    ];
    let mut gw = vec![
        0.0f32;
        if wanted.weight {
            c_in * g.col_rows()
        } else {
            0
        }
    ];
    through_columns(
        grad.values(),
        g,
        wanted.input.then_some((w, gx.as_mut_slice())),
        wanted.weight.then_some((x.values(), gw.as_mut_slice())),
    );
    Grads {
        input: wanted
            .input
            .then(|| tensor(gx, &[g.batch, c_in, g.positions[0], g.positions[1]])),
        weight: wanted.weight.then(|| weight_tensor(gw, weight)),
        bias: wanted.bias.then(|| {
            let sums = channel_sums(
                grad.values(),
                g.batch,
                g.channels,
                std::iter::once((0, g.batch)),
            );
            tensor(sums, &[g.channels])
        }),
    }
}
