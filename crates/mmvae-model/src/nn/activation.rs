//! ReLU and the logistic sigmoid on burn's CPU backend, for inference,
//! over the thread pool.
//!
//! burn-flex maps an activation over a tensor one value at a time on the
//! calling thread. In an evaluation the hidden layers' ReLUs and the image
//! decoders' sigmoids ran there while the other threads waited. [`relu`]
//! and [`sigmoid`] apply burn's own formulas to the same values, split into
//! runs over the thread pool (in place where the tensor's storage is its
//! own), so the results are burn's bit for bit where the calling thread
//! and the pool treat subnormals alike, as on every device from
//! [`crate::device::cpu_device`]. Everywhere else (autodiff, other devices
//! and types, small tensors) they call burn's activation.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::tensor::{activation, DType, Device, Tensor};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::nn::dense::{tensor, Dense};

/// Values at or above which the map is split over the thread pool.
const PARALLEL: usize = 1 << 15;

/// Values per run of the split.
const RUN: usize = 1 << 13;

/// The activations as operations of the CPU backend.
#[backend_extension(Flex)]
pub trait ActivationBackend: Backend {
    /// burn's ReLU, over the thread pool.
    fn par_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// burn's sigmoid, over the thread pool.
    fn par_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl ActivationBackend for Flex {
    fn par_relu(x: FlexTensor) -> FlexTensor {
        map(x, relu_value)
    }

    fn par_sigmoid(x: FlexTensor) -> FlexTensor {
        map(x, sigmoid_value)
    }
}

/// burn-flex's ReLU of one value: a NaN propagates, `-0.0` becomes `0.0`.
pub(crate) fn relu_value(x: f32) -> f32 {
    if x.is_nan() || x > 0.0 {
        x
    } else {
        0.0
    }
}

/// burn-flex's sigmoid of one value: `exp` of a value never above zero,
/// so neither branch overflows.
fn sigmoid_value(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `op` applied to every value of an `f32` tensor, in place when its
/// storage is its own, contiguous and starts at its first value.
fn map(mut x: FlexTensor, op: fn(f32) -> f32) -> FlexTensor {
    let n = x.layout().num_elements();
    let apply = |run: &mut [f32]| run.iter_mut().for_each(|v| *v = op(*v));
    if x.is_unique() && x.layout().is_contiguous() && x.layout().start_offset() == 0 {
        x.storage_mut::<f32>()[..n]
            .par_chunks_mut(RUN)
            .for_each(apply);
        return x;
    }
    let dense = Dense::new(&x);
    let mut values = dense.values().to_vec();
    values.par_chunks_mut(RUN).for_each(apply);
    tensor(values, dense.dims())
}

/// Whether `x` takes the thread-pool path: an untracked `f32` CPU tensor of
/// at least [`PARALLEL`] values.
fn parallel<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32
        && !x.is_autodiff()
        && x.shape().num_elements() >= PARALLEL
        && x.device() == Device::flex()
}

/// `max(x, 0)`, a NaN kept (burn's [`activation::relu`]).
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !parallel(&x) {
        return activation::relu(x);
    }
    Tensor::from_dispatch(Dispatch::par_relu(x.into_dispatch()))
}

/// `1 / (1 + e^-x)` (burn's [`activation::sigmoid`]).
pub fn sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !parallel(&x) {
        return activation::sigmoid(x);
    }
    Tensor::from_dispatch(Dispatch::par_sigmoid(x.into_dispatch()))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, TensorData};

    use super::*;

    fn bits(data: TensorData) -> (Vec<usize>, Vec<u32>) {
        let values = data
            .iter::<f32>()
            .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
            .collect();
        (data.shape().to_vec(), values)
    }

    /// Values from `-scale` to `scale`, the special ones first (−100's
    /// sigmoid is subnormal), on the CPU device.
    fn values(n: usize, scale: f32) -> Tensor<2> {
        let device = crate::device::cpu_device();
        let x = Tensor::<2>::random([n, 257], Distribution::Uniform(-1.0, 1.0), &device) * scale;
        let special = [
            -0.0,
            0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -100.0,
            100.0,
        ];
        let mut v: Vec<f32> = x.into_data().iter::<f32>().collect();
        v[..special.len()].copy_from_slice(&special);
        Tensor::from_data(TensorData::new(v, [n, 257]), &device)
    }

    #[test]
    fn match_burn_bit_for_bit() {
        // Below and above the split, owned and shared storage, and a
        // transposed view.
        for n in [3, 200] {
            let x = values(n, 30.0);
            assert_eq!(
                bits(relu(x.clone()).into_data()),
                bits(activation::relu(x.clone()).into_data()),
                "relu {n}"
            );
            assert_eq!(
                bits(sigmoid(x.clone()).into_data()),
                bits(activation::sigmoid(x.clone()).into_data()),
                "sigmoid {n}"
            );
            let owned = x.clone().add_scalar(0.0);
            assert_eq!(
                bits(sigmoid(owned).into_data()),
                bits(activation::sigmoid(x.clone()).into_data())
            );
            let t = x.clone().transpose();
            assert_eq!(
                bits(relu(t.clone()).into_data()),
                bits(activation::relu(t).into_data())
            );
        }
    }

    #[test]
    fn tracked_tensors_keep_their_gradients() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::random([200, 257], Distribution::Default, &device).require_grad();
        let grads = sigmoid(relu(x.clone() - 0.5)).sum().backward();
        assert!(x.grad(&grads).is_some());
    }
}
