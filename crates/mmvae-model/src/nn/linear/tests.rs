//! The fused layer against burn's `Linear::forward`, bit for bit: values
//! and the gradients of input, weight and bias, for inputs of rank 1 to 3,
//! with and without a bias, and with a summed axis long enough for the
//! matrix kernels to split it.

use burn::nn::LinearConfig;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use super::*;

fn bits(data: TensorData) -> (Vec<usize>, Vec<u32>) {
    let values = data.iter::<f32>().map(f32::to_bits).collect();
    (data.shape().to_vec(), values)
}

/// The output and the gradients of input, weight and bias (where it has
/// one) after `(output · probe).sum()`.
type Run = (TensorData, TensorData, TensorData, Option<TensorData>);

fn compare<const D: usize>(config: LinearConfig, dims: [usize; D]) {
    let device = Device::flex().autodiff();
    let layer = config.init(&device);
    let x = Tensor::<D>::random(dims, Distribution::Normal(0.0, 1.0), &device).require_grad();
    let probe = Tensor::<D>::random(
        layer.forward(x.clone()).dims(),
        Distribution::Default,
        &device,
    );
    let run = |f: &dyn Fn(Tensor<D>) -> Tensor<D>| -> Run {
        let y = f(x.clone());
        let values = y.clone().into_data();
        let grads = (y * probe.clone()).sum().backward();
        (
            values,
            x.grad(&grads).unwrap().into_data(),
            layer.weight.grad(&grads).unwrap().into_data(),
            layer
                .bias
                .as_ref()
                .map(|b| b.grad(&grads).unwrap().into_data()),
        )
    };
    let (got, got_x, got_w, got_b) = run(&|x| linear(&layer, x));
    let (want, want_x, want_w, want_b) = run(&|x| layer.forward(x));
    let what = format!("{dims:?}");
    assert_eq!(bits(got), bits(want), "{what}: output");
    assert_eq!(bits(got_x), bits(want_x), "{what}: input gradient");
    assert_eq!(bits(got_w), bits(want_w), "{what}: weight gradient");
    assert_eq!(got_b.map(bits), want_b.map(bits), "{what}: bias gradient");
}

#[test]
fn matches_burn_bit_for_bit_on_values_and_gradients() {
    compare(LinearConfig::new(7, 5), [9, 7]);
    compare(LinearConfig::new(7, 5).with_bias(false), [9, 7]);
    compare(LinearConfig::new(6, 3), [6]);
    // [batch, steps, hidden] with few steps: burn merges the leading axes.
    let (dims, weight) = ([20, 3, 32], [32, 30]);
    assert_eq!(Products::of(&dims, weight), Some(Products::One));
    compare(LinearConfig::new(32, 30), dims);
    // An MNIST expert's first layer: 784 summed values.
    compare(LinearConfig::new(784, 64), [50, 784]);
    // Wide enough for the products to be split over threads.
    compare(LinearConfig::new(256, 256), [200, 256]);
}

/// Where burn multiplies item by item, so does the fused layer; where it
/// would not merge a higher rank, burn's own pass runs.
#[test]
fn batched_products_match_burn_bit_for_bit() {
    // A caption decoder's output layer: [batch, steps, hidden].
    let (dims, weight) = ([20, 9, 32], [32, 30]);
    assert_eq!(Products::of(&dims, weight), Some(Products::PerItem(20)));
    compare(LinearConfig::new(32, 30), dims);
    compare(LinearConfig::new(32, 30).with_bias(false), dims);
    // Enough work for the items to run over the thread pool.
    let (dims, weight) = ([64, 9, 256], [256, 8]);
    assert_eq!(Products::of(&dims, weight), Some(Products::PerItem(64)));
    compare(LinearConfig::new(256, 8), dims);
    let (dims, weight) = ([2, 3, 16, 8], [8, 4]);
    assert_eq!(Products::of(&dims, weight), None);
    compare(LinearConfig::new(8, 4), dims);
}

/// Without autodiff (inference) too.
#[test]
fn inference_matches_burn() {
    let device = Device::flex();
    let layer = LinearConfig::new(12, 7).init(&device);
    let x = Tensor::<2>::random([10, 12], Distribution::Normal(0.0, 1.0), &device);
    assert_eq!(
        bits(linear(&layer, x.clone()).into_data()),
        bits(layer.forward(x).into_data())
    );
}
