//! 2 × 2 max pooling with stride 2 on burn's CPU backend, for inference.
//!
//! burn-flex pools through a general loop that divides, tracks the index
//! of each maximum and checks every bound, one value at a time; in an
//! evaluation of generated images by the evaluation classifier that was
//! about half the time. [`max_pool2d`] takes burn's [`MaxPool2d`] module
//! and, for its common 2 × 2 stride-2 form on an untracked CPU tensor,
//! reads each window's four values directly. The values are burn's: the
//! window in row-major order, a later value taken when it is larger or NaN.
//! Everywhere else (autodiff, other devices and shapes) it calls the
//! module's own forward pass. [`relu_max_pool2d`] pools a ReLU's output in
//! the same pass: the ReLU of each window's maximum, which is the maximum
//! of the window's ReLUs (both keep a NaN, and every other value is the
//! largest positive one or `0.0`).

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::nn::pool::MaxPool2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{DType, Device, Tensor};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::nn::activation::{relu, relu_value};
use crate::nn::dense::{tensor, Dense};

/// Output values at or above which the planes are pooled over the thread
/// pool.
const PARALLEL: usize = 1 << 16;

/// The 2 × 2 pooling as an operation of the CPU backend.
#[backend_extension(Flex)]
pub trait PoolBackend: Backend {
    /// See [`max_pool_2x2`].
    fn max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// [`max_pool_2x2`] of the ReLU of `x`.
    fn relu_max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl PoolBackend for Flex {
    fn max_pool_2x2(x: FlexTensor) -> FlexTensor {
        max_pool_2x2(&x, |v| v)
    }

    fn relu_max_pool_2x2(x: FlexTensor) -> FlexTensor {
        max_pool_2x2(&x, relu_value)
    }
}

/// The larger of the two, or `v` where it is NaN (burn's rule, so a NaN
/// propagates).
fn take(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// Pools one `height × width` plane into `out` (`height / 2 × width / 2`),
/// `then` applied to each maximum.
fn pool_plane(plane: &[f32], width: usize, out: &mut [f32], then: impl Fn(f32) -> f32) {
    let w_out = width / 2;
    if w_out == 0 {
        return;
    }
    for (oh, row) in out.chunks_exact_mut(w_out).enumerate() {
        let top = &plane[2 * oh * width..][..width];
        let bottom = &plane[(2 * oh + 1) * width..][..width];
        for (ow, o) in row.iter_mut().enumerate() {
            let (a, b) = (top[2 * ow], top[2 * ow + 1]);
            let (c, d) = (bottom[2 * ow], bottom[2 * ow + 1]);
            *o = then(take(take(take(a, b), c), d));
        }
    }
}

/// Each 2 × 2 window's maximum, the last odd row and column dropped, and
/// `then` applied to it.
///
/// # Shapes
/// - x: `[batch, channels, height, width]`
/// - output: `[batch, channels, height / 2, width / 2]`
pub fn max_pool_2x2(x: &FlexTensor, then: impl Fn(f32) -> f32 + Copy + Sync) -> FlexTensor {
    let x = Dense::new(x);
    let [batch, channels, height, width] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let (h_out, w_out) = (height / 2, width / 2);
    let mut out = vec![0.0f32; batch * channels * h_out * w_out];
    let (plane, plane_out) = (height * width, h_out * w_out);
    if plane_out > 0 && batch * channels * plane_out >= PARALLEL {
        x.values()
            .par_chunks(plane)
            .zip(out.par_chunks_mut(plane_out))
            .for_each(|(p, o)| pool_plane(p, width, o, then));
    } else if plane_out > 0 {
        x.values()
            .chunks(plane)
            .zip(out.chunks_mut(plane_out))
            .for_each(|(p, o)| pool_plane(p, width, o, then));
    }
    tensor(out, &[batch, channels, h_out, w_out])
}

/// `pool.forward(x)`, directly for the 2 × 2 stride-2 form on an untracked
/// CPU tensor.
///
/// # Shapes
/// - x: `[batch, channels, height, width]`
/// - output: `[batch, channels, height_out, width_out]`
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    if !direct(pool, &x) {
        return pool.forward(x);
    }
    Tensor::from_dispatch(Dispatch::max_pool_2x2(x.into_dispatch()))
}

/// `pool.forward(relu(x))`, in one pass for the 2 × 2 stride-2 form on an
/// untracked CPU tensor.
///
/// # Shapes
/// - x: `[batch, channels, height, width]`
/// - output: `[batch, channels, height_out, width_out]`
pub fn relu_max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    if !direct(pool, &x) {
        return pool.forward(relu(x));
    }
    Tensor::from_dispatch(Dispatch::relu_max_pool_2x2(x.into_dispatch()))
}

/// Whether `pool` of `x` is the 2 × 2 stride-2 form on an untracked `f32`
/// CPU tensor.
fn direct(pool: &MaxPool2d, x: &Tensor<4>) -> bool {
    let plain = pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && matches!(pool.padding, PaddingConfig2d::Valid)
        && !pool.ceil_mode;
    plain && x.dtype() == DType::F32 && !x.is_autodiff() && x.device() == Device::flex()
}

#[cfg(test)]
mod tests {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Distribution, TensorData};

    use super::*;

    fn bits(data: TensorData) -> (Vec<usize>, Vec<u32>) {
        // Every NaN compares as one value: burn and this pass both keep a
        // NaN, not necessarily the same one.
        let values = data
            .iter::<f32>()
            .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
            .collect();
        (data.shape().to_vec(), values)
    }

    #[test]
    fn matches_burn_bit_for_bit() {
        let device = Device::flex();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        // Even and odd sides, a plane of one row, and enough values for the
        // planes to be split over threads.
        for dims in [[2, 3, 8, 8], [3, 2, 7, 9], [1, 4, 1, 6], [8, 64, 32, 32]] {
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            assert_eq!(
                bits(max_pool2d(&pool, x.clone()).into_data()),
                bits(pool.forward(x).into_data()),
                "{dims:?}"
            );
        }
        // Ties between signed zeros keep the first; a NaN anywhere wins.
        let values = vec![-0.0, 0.0, 0.0, -0.0, 1.0, f32::NAN, 2.0, 3.0];
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, 2, 2, 2]), &device);
        let ours = max_pool2d(&pool, x.clone()).into_data();
        assert_eq!(bits(ours.clone()), bits(pool.forward(x).into_data()));
        let v: Vec<f32> = ours.iter::<f32>().collect();
        assert!(
            v[0] == 0.0 && v[0].is_sign_negative() && v[1].is_nan(),
            "{v:?}"
        );
    }

    #[test]
    fn relu_then_pool_matches_burn_bit_for_bit() {
        let device = Device::flex();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let burns = |x: Tensor<4>| pool.forward(burn::tensor::activation::relu(x));
        for dims in [[2, 3, 8, 8], [3, 2, 7, 9], [8, 64, 32, 32]] {
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            assert_eq!(
                bits(relu_max_pool2d(&pool, x.clone()).into_data()),
                bits(burns(x).into_data()),
                "{dims:?}"
            );
        }
        // All-negative windows, signed zeros and a NaN.
        let values = vec![
            -1.0,
            -0.0,
            -2.0,
            -3.0,
            -0.0,
            0.0,
            -0.0,
            -0.0,
            1.0,
            f32::NAN,
            2.0,
            3.0,
        ];
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, 3, 2, 2]), &device);
        let ours = relu_max_pool2d(&pool, x.clone()).into_data();
        assert_eq!(bits(ours.clone()), bits(burns(x).into_data()));
        let v: Vec<f32> = ours.iter::<f32>().collect();
        assert!(
            v[0].to_bits() == 0 && v[1].to_bits() == 0 && v[2].is_nan(),
            "{v:?}"
        );
    }

    #[test]
    fn other_forms_and_tracked_tensors_take_burns_path() {
        let x = Tensor::<4>::random([2, 3, 6, 6], Distribution::Default, &Device::flex());
        let pool = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).init();
        assert_eq!(
            bits(max_pool2d(&pool, x.clone()).into_data()),
            bits(pool.forward(x.clone()).into_data())
        );
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let tracked =
            Tensor::<4>::from_data(x.into_data(), &Device::flex().autodiff()).require_grad();
        let y = max_pool2d(&pool, tracked.clone());
        let grads = y.sum().backward();
        assert!(tracked.grad(&grads).is_some());
    }
}
