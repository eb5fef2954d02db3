//! Fully connected layers on burn's CPU backend as one operation.
//!
//! burn computes `Linear` as a matrix product, then a broadcast bias add,
//! each a separate tensor operation under autodiff, and burn-flex writes
//! every product into a freshly zero-filled buffer that it then copies to
//! realign. [`linear`] runs the forward pass as the product and an
//! in-place bias add, and its backward step as the two products and the
//! bias's sums, into buffers nothing else touches. It takes burn's
//! [`Linear`] module as it is, so checkpoints do not change.
//!
//! The values are burn's bit for bit: the same products through the same
//! matrix kernels ([`Products`]: burn multiplies some inputs item by item),
//! the bias added after the product, and the gradients summed in burn's
//! order (tests compare both). On other devices and for other float types
//! it calls the module's own forward pass.

mod autodiff;
mod flex;

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor};
use burn_std::{MatmulTransformAction, MatmulTransformAnalysis, MatmulTransformPolicy};

/// How the rows of a layer's input are multiplied by its weight, as burn
/// does it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Products {
    /// One product of all the rows.
    One,
    /// One product per item: the rows split into this many equal runs
    /// (burn's batched product on `[items, steps, d_input]`).
    PerItem(usize),
}

impl Products {
    /// How burn multiplies an input of `dims` by a `weight`-shaped matrix:
    /// ranks 1 and 2 in one product, higher ranks where burn's policy
    /// merges the leading axes too; else, for rank 3, item by item. `None`
    /// for the rest (burn's own pass then runs).
    fn of(dims: &[usize], weight: [usize; 2]) -> Option<Self> {
        if dims.len() <= 2 {
            return Some(Self::One);
        }
        let analysis = MatmulTransformAnalysis::from_shapes(&dims.into(), &weight.into());
        match MatmulTransformPolicy::default().action(&analysis) {
            MatmulTransformAction::MergeBatches { .. } => Some(Self::One),
            MatmulTransformAction::Keep if dims.len() == 3 => Some(Self::PerItem(dims[0])),
            MatmulTransformAction::Keep => None,
        }
    }
}

/// The fused fully connected layer as an operation of a backend.
#[backend_extension(Flex, Autodiff)]
pub trait LinearBackend: Backend {
    /// `x · weight + bias`; see [`flex::forward`].
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        products: Products,
    ) -> FloatTensor<Self>;
}

impl LinearBackend for Flex {
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        products: Products,
    ) -> FloatTensor<Self> {
        flex::forward(&x, &weight, &bias, products)
    }
}

/// Whether the fused operation applies: `f32` tensors on the CPU backend.
fn on_flex<const D: usize>(x: &Tensor<D>, weight: &Tensor<2>) -> bool {
    x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && x.device().without_autodiff() == Device::flex()
}

fn fused(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>, products: Products) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::fused_linear(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        products,
    ))
}

/// `x.matmul(weight) + bias`, with the bias broadcast over the rows, as one
/// operation on the CPU backend.
///
/// # Shapes
/// - x: `[rows, d_input]`, weight: `[d_input, d_output]`, bias: `[d_output]`
/// - output: `[rows, d_output]`
pub fn affine(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    if !on_flex(&x, &weight) {
        return x.matmul(weight) + bias.unsqueeze();
    }
    fused(x, weight, bias, Products::One)
}

/// `layer.forward(x)`, as one operation on the CPU backend.
///
/// # Shapes
/// - x: `[..., d_input]`
/// - output: `[..., d_output]`
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let weight = layer.weight.val();
    let [d_in, d_out] = weight.dims();
    let dims = x.dims();
    let products = match Products::of(&dims, [d_in, d_out]) {
        Some(p) if dims[D - 1] == d_in && on_flex(&x, &weight) => p,
        _ => return layer.forward(x),
    };
    let bias = match &layer.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([d_out], &x.device()),
    };
    let rows = dims[..D - 1].iter().product::<usize>();
    let mut out_dims = dims;
    out_dims[D - 1] = d_out;
    fused(x.reshape([rows, d_in]), weight, bias, products).reshape(out_dims)
}

#[cfg(test)]
mod tests;
