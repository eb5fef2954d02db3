//! The batched convolutions on burn-flex tensors: forward passes and the
//! gradients of their inputs, each one im2col / col2im and one matrix
//! product over the whole batch.
//!
//! Weights keep burn's layouts: `[c_out, c_in, k_h, k_w]` for a
//! convolution, `[c_in, c_out, k_h, k_w]` for a transposed one.

use burn::tensor::TensorData;
use burn_flex::FlexTensor;

use super::kernels::{
    col2im, im2col, matmul, matmul_into, row_sums, swap_outer, swap_outer_into, Geometry, Mat,
};

/// A contiguous `f32` copy-free view of a tensor (copied only when it is
/// strided).
struct Dense(FlexTensor);

impl Dense {
    fn new(t: &FlexTensor) -> Self {
        Self(t.to_contiguous())
    }

    fn values(&self) -> &[f32] {
        let (start, end) = self
            .0
            .layout()
            .contiguous_offsets()
            .expect("contiguous after copy");
        &self.0.storage::<f32>()[start..end]
    }
}

fn tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

fn vector(values: Vec<f32>) -> FlexTensor {
    let n = values.len();
    FlexTensor::from_data(TensorData::new(values, vec![n]))
}

/// Adds `bias[c]` to every value of channel `c` of `[batch, channels, plane]`.
fn add_bias(values: &mut [f32], bias: &[f32], plane: usize) {
    for (i, run) in values.chunks_exact_mut(plane).enumerate() {
        let b = bias[i % bias.len()];
        run.iter_mut().for_each(|v| *v += b);
    }
}

/// Which gradients a backward pass computes.
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    pub input: bool,
    pub weight: bool,
    pub bias: bool,
}

/// The gradients of a convolution's input, weight and bias (those wanted).
pub struct Grads {
    pub input: Option<FlexTensor>,
    pub weight: Option<FlexTensor>,
    pub bias: Option<FlexTensor>,
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
    let (image, plane) = (g.channels * g.image[0] * g.image[1], g.plane());
    let w = Mat::rows(w.values(), c_out, g.col_rows());
    let mut out = vec![0.0f32; g.batch * c_out * plane];
    for (first, items) in g.chunks() {
        let gc = g.with_batch(items);
        let cols = im2col(&x.values()[first * image..][..items * image], &gc);
        // [c_out, k] · [k, items · plane] = [c_out, items, plane]
        let y = matmul(w, Mat::rows(&cols, gc.col_rows(), gc.col_len()));
        let dst = &mut out[first * c_out * plane..][..items * c_out * plane];
        swap_outer_into(&y, c_out, items, plane, dst);
    }
    add_bias(&mut out, b.values(), plane);
    tensor(out, [g.batch, c_out, g.positions[0], g.positions[1]])
}

/// The gradients of [`conv2d`] given the output's gradient `grad`.
pub fn conv2d_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    g: &Geometry,
    wanted: Wanted,
) -> Grads {
    let w_shape = weight.layout().shape().clone();
    let c_out = w_shape[0];
    let (x, w, grad) = (Dense::new(x), Dense::new(weight), Dense::new(grad));
    let (image, plane) = (g.channels * g.image[0] * g.image[1], g.plane());
    let w = Mat::rows(w.values(), c_out, g.col_rows());
    let mut gx = vec![0.0f32; if wanted.input { g.image_len() } else { 0 }];
    let mut gw = vec![
        0.0f32;
        if wanted.weight {
            c_out * g.col_rows()
        } else {
            0
        }
    ];
    let mut gb = vec![0.0f32; c_out];
    for (i, (first, items)) in g.chunks().enumerate() {
        let gc = g.with_batch(items);
        // [c_out, items · plane]
        let gt = swap_outer(
            &grad.values()[first * c_out * plane..][..items * c_out * plane],
            items,
            c_out,
            plane,
        );
        let gt = Mat::rows(&gt, c_out, gc.col_len());
        if wanted.bias {
            gb.iter_mut()
                .zip(row_sums(gt.data, c_out))
                .for_each(|(a, s)| *a += s);
        }
        if wanted.weight {
            let cols = im2col(&x.values()[first * image..][..items * image], &gc);
            // [c_out, items · plane] · [items · plane, k]
            matmul_into(
                gt,
                Mat::rows(&cols, gc.col_rows(), gc.col_len()).t(),
                &mut gw,
                i > 0,
            );
        }
        if wanted.input {
            // [k, c_out] · [c_out, items · plane]
            let cols = matmul(w.t(), gt);
            gx[first * image..][..items * image].copy_from_slice(&col2im(&cols, &gc));
        }
    }
    Grads {
        input: wanted
            .input
            .then(|| tensor(gx, [g.batch, g.channels, g.image[0], g.image[1]])),
        weight: wanted
            .weight
            .then(|| tensor(gw, [w_shape[0], w_shape[1], w_shape[2], w_shape[3]])),
        bias: wanted.bias.then(|| vector(gb)),
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
    let (image, plane) = (g.channels * g.image[0] * g.image[1], g.plane());
    let w = Mat::rows(w.values(), c_in, g.col_rows());
    let mut out = vec![0.0f32; g.image_len()];
    for (first, items) in g.chunks() {
        let gc = g.with_batch(items);
        // [c_in, items · plane]
        let xt = swap_outer(
            &x.values()[first * c_in * plane..][..items * c_in * plane],
            items,
            c_in,
            plane,
        );
        // [k, c_in] · [c_in, items · plane]
        let cols = matmul(w.t(), Mat::rows(&xt, c_in, gc.col_len()));
        out[first * image..][..items * image].copy_from_slice(&col2im(&cols, &gc));
    }
    add_bias(&mut out, b.values(), g.image[0] * g.image[1]);
    tensor(out, [g.batch, g.channels, g.image[0], g.image[1]])
}

/// The gradients of [`conv_transpose2d`] given the output's gradient `grad`.
pub fn conv_transpose2d_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    g: &Geometry,
    wanted: Wanted,
) -> Grads {
    let w_shape = weight.layout().shape().clone();
    let c_in = w_shape[0];
    let (x, w, grad) = (Dense::new(x), Dense::new(weight), Dense::new(grad));
    let (image, plane) = (g.channels * g.image[0] * g.image[1], g.plane());
    let w = Mat::rows(w.values(), c_in, g.col_rows());
    let mut gx = vec![
        0.0f32;
        if wanted.input {
            g.batch * c_in * plane
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
    let gb = wanted.bias.then(|| {
        let per_channel = swap_outer(grad.values(), g.batch, g.channels, g.image[0] * g.image[1]);
        vector(row_sums(&per_channel, g.channels))
    });
    if wanted.input || wanted.weight {
        for (i, (first, items)) in g.chunks().enumerate() {
            let gc = g.with_batch(items);
            // [k, items · plane]
            let cols = im2col(&grad.values()[first * image..][..items * image], &gc);
            let cols = Mat::rows(&cols, gc.col_rows(), gc.col_len());
            if wanted.input {
                // [c_in, k] · [k, items · plane] = [c_in, items, plane]
                let y = matmul(w, cols);
                let dst = &mut gx[first * c_in * plane..][..items * c_in * plane];
                swap_outer_into(&y, c_in, items, plane, dst);
            }
            if wanted.weight {
                let xs = &x.values()[first * c_in * plane..][..items * c_in * plane];
                let xt = swap_outer(xs, items, c_in, plane);
                // [c_in, items · plane] · [items · plane, k]
                matmul_into(Mat::rows(&xt, c_in, gc.col_len()), cols.t(), &mut gw, i > 0);
            }
        }
    }
    Grads {
        input: wanted
            .input
            .then(|| tensor(gx, [g.batch, c_in, g.positions[0], g.positions[1]])),
        weight: wanted
            .weight
            .then(|| tensor(gw, [w_shape[0], w_shape[1], w_shape[2], w_shape[3]])),
        bias: gb,
    }
}
