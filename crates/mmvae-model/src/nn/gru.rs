//! A GRU's forward pass over a whole sequence that gathers the hidden
//! states once at the end.
//!
//! burn-nn's `Gru::forward` writes each step's hidden state into a
//! `[batch, time, hidden]` tensor with `slice_assign`, which copies that
//! tensor at every step and records a slice-assign per step for the
//! backward pass. [`forward`] does the same arithmetic on the same module
//! (so checkpoints and values are unchanged) and stacks the states once.

use burn::nn::gru::Gru;
use burn::nn::GateController;
use burn::prelude::*;

/// `gru` over `x` from `h0` (zeros when `None`).
///
/// # Shapes
/// `x`: `[batch, time, input]`, `h0`: `[batch, hidden]` → `[batch, time, hidden]`
pub fn forward(gru: &Gru, x: Tensor<3>, h0: Option<Tensor<2>>) -> Tensor<3> {
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
mod tests {
    use super::*;
    use burn::nn::gru::GruConfig;
    use burn::tensor::Distribution;

    /// The same values and gradients as burn-nn's forward, bit for bit.
    #[test]
    fn matches_burn_nn_values_and_gradients_exactly() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex().autodiff();
        dev.seed(3);
        for reset_after in [true, false] {
            let gru = GruConfig::new(5, 7, true)
                .with_reset_after(reset_after)
                .init(&dev);
            let x = Tensor::<3>::random([4, 6, 5], Distribution::Normal(0.0, 1.0), &dev);
            let h0 = Tensor::<2>::random([4, 7], Distribution::Normal(0.0, 1.0), &dev);
            let w = Tensor::<3>::random([4, 6, 7], Distribution::Normal(0.0, 1.0), &dev);
            let run = |f: &dyn Fn(Tensor<3>, Tensor<2>) -> Tensor<3>| {
                let (x, h0) = (x.clone().require_grad(), h0.clone().require_grad());
                let y = f(x.clone(), h0.clone());
                let g = (y.clone() * w.clone()).sum().backward();
                let wg = gru.new_gate.hidden_transform.weight.grad(&g).unwrap();
                (
                    y.into_data(),
                    x.grad(&g).unwrap().into_data(),
                    h0.grad(&g).unwrap().into_data(),
                    wg.into_data(),
                )
            };
            let ours = run(&|x, h| forward(&gru, x, Some(h)));
            let theirs = run(&|x, h| gru.forward(x, Some(h)));
            assert_eq!(ours, theirs, "reset_after = {reset_after}");
            // Without a starting state both start from zeros.
            assert_eq!(
                forward(&gru, x.clone(), None).into_data(),
                gru.forward(x.clone(), None).into_data()
            );
        }
    }
}
