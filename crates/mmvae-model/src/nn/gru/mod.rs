//! A GRU's forward pass over a whole sequence, on burn-nn's `Gru` module
//! as it is (checkpoints do not change).
//!
//! burn-nn's `Gru::forward` writes each step's hidden state into a
//! `[batch, time, hidden]` tensor with `slice_assign`, which copies that
//! tensor at every step and records a slice-assign per step for the
//! backward pass; each step is six matrix products and a dozen elementwise
//! operations, each a tensor of its own and a node of the autodiff graph.
//! On the CPU backend [`forward`] computes the input projections of all
//! steps as one matrix product (the three gates' weights side by side) and
//! the recurrence as one operation with its own backward pass through time
//! ([`sequence`]): per step one product and one fused cell ([`cell`]), the
//! gates' sigmoids, the candidate's tanh (vectorised, [`super::fastmath`])
//! and the new state in one pass. Elsewhere (other devices, other float
//! types, other activations, `reset_after = false`, clipping, no biases) it
//! runs burn-nn's arithmetic step by step ([`unfused`]).

mod autodiff;
pub mod cell;
pub mod sequence;

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch};
use burn::nn::activation::Activation;
use burn::nn::gru::Gru;
use burn::nn::GateController;
use burn::prelude::*;
use burn::tensor::DType;

use crate::nn::linear::affine;

/// The fused GRU recurrence as an operation of a backend.
#[backend_extension(Flex, Autodiff)]
pub trait GruBackend: Backend {
    /// See [`sequence::forward`].
    fn gru_sequence(
        gx: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl GruBackend for burn::backend::Flex {
    fn gru_sequence(
        gx: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        sequence::forward(&gx, &h0, &weight, &bias)
    }
}

/// `gru` over `x` from `h0` (zeros when `None`).
///
/// # Shapes
/// `x`: `[batch, time, input]`, `h0`: `[batch, hidden]` → `[batch, time, hidden]`
pub fn forward(gru: &Gru, x: Tensor<3>, h0: Option<Tensor<2>>) -> Tensor<3> {
    match FusedWeights::of(gru, &x) {
        Some(weights) => fused(&weights, x, h0),
        None => unfused(gru, x, h0),
    }
}

/// The three gates' weights side by side, in the order update, reset,
/// new: `[input, 3·hidden]` and `[hidden, 3·hidden]`, biases `[3·hidden]`.
struct FusedWeights {
    input: Tensor<2>,
    input_bias: Tensor<1>,
    hidden: Tensor<2>,
    hidden_bias: Tensor<1>,
}

impl FusedWeights {
    /// The weights when the fused cell computes this GRU on `x`'s device.
    fn of(gru: &Gru, x: &Tensor<3>) -> Option<Self> {
        let flex = x.dtype() == DType::F32 && x.device().without_autodiff() == Device::flex();
        let activations = matches!(gru.gate_activation, Activation::Sigmoid(_))
            && matches!(gru.hidden_activation, Activation::Tanh(_));
        if !(flex && activations && gru.reset_after && gru.clip.is_none()) {
            return None;
        }
        let gates = [&gru.update_gate, &gru.reset_gate, &gru.new_gate];
        let weights = |f: fn(&GateController) -> &burn::nn::Linear| {
            Tensor::cat(gates.iter().map(|g| f(g).weight.val()).collect(), 1)
        };
        let biases = |f: fn(&GateController) -> &burn::nn::Linear| {
            let b: Option<Vec<Tensor<1>>> = gates
                .iter()
                .map(|g| f(g).bias.as_ref().map(|b| b.val()))
                .collect();
            b.map(|b| Tensor::cat(b, 0))
        };
        // The biases first: without them nothing else is worth joining.
        let input_bias = biases(|g| &g.input_transform)?;
        let hidden_bias = biases(|g| &g.hidden_transform)?;
        Some(Self {
            input: weights(|g| &g.input_transform),
            input_bias,
            hidden: weights(|g| &g.hidden_transform),
            hidden_bias,
        })
    }
}

/// The sequence through the fused recurrence: the input projections of
/// all steps in one product, then [`sequence::forward`].
fn fused(w: &FusedWeights, x: Tensor<3>, h0: Option<Tensor<2>>) -> Tensor<3> {
    let [batch, time, input] = x.dims();
    let [hidden, gates] = w.hidden.dims();
    let gx = affine(
        x.reshape([batch * time, input]),
        w.input.clone(),
        w.input_bias.clone(),
    );
    let h0 = h0.unwrap_or_else(|| Tensor::zeros([batch, hidden], &gx.device()));
    Tensor::from_dispatch(Dispatch::gru_sequence(
        gx.reshape([batch, time, gates]).into_dispatch(),
        h0.into_dispatch(),
        w.hidden.clone().into_dispatch(),
        w.hidden_bias.clone().into_dispatch(),
    ))
}

/// burn-nn's arithmetic, step by step, with the states stacked once.
///
/// # Shapes
/// `x`: `[batch, time, input]`, `h0`: `[batch, hidden]` → `[batch, time, hidden]`
pub fn unfused(gru: &Gru, x: Tensor<3>, h0: Option<Tensor<2>>) -> Tensor<3> {
    let [batch, time, _] = x.dims();
    let mut h = h0.unwrap_or_else(|| Tensor::zeros([batch, gru.d_hidden], &x.device()));
    let mut states = Vec::with_capacity(time);
    for x_t in x.iter_dim(1) {
        let x_t = x_t.squeeze_dim::<2>(1);
        let z = gru
            .gate_activation
            .forward(gate_product(&x_t, &h, None, &gru.update_gate));
        let r = gru
            .gate_activation
            .forward(gate_product(&x_t, &h, None, &gru.reset_gate));
        let n_in = if gru.reset_after {
            gate_product(&x_t, &h, Some(&r), &gru.new_gate)
        } else {
            gate_product(&x_t, &h.clone().mul(r), None, &gru.new_gate)
        };
        let candidate = gru.hidden_activation.forward(n_in);
        let one_minus_z = z.clone().neg().add_scalar(1.0);
        h = candidate.mul(one_minus_z) + z.mul(h);
        if let Some(clip) = gru.clip {
            h = h.clamp(-clip, clip);
        }
        states.push(h.clone());
    }
    Tensor::stack(states, 1)
}

/// `W_x x + b_x + r ⊙ (W_h h + b_h)` (`r` = 1 when `None`), added in the
/// order burn-nn adds them.
fn gate_product(
    input: &Tensor<2>,
    hidden: &Tensor<2>,
    reset: Option<&Tensor<2>>,
    gate: &GateController,
) -> Tensor<2> {
    let input_product = input.clone().matmul(gate.input_transform.weight.val());
    let hidden_product = hidden.clone().matmul(gate.hidden_transform.weight.val());
    let input_part = match &gate.input_transform.bias {
        Some(bias) => input_product + bias.val().unsqueeze(),
        None => input_product,
    };
    let hidden_part = match &gate.hidden_transform.bias {
        Some(bias) => hidden_product + bias.val().unsqueeze(),
        None => hidden_product,
    };
    match reset {
        Some(r) => input_part + r.clone().mul(hidden_part),
        None => input_part + hidden_part,
    }
}

#[cfg(test)]
mod tests;
