//! The GRU paths against burn-nn's `Gru::forward`.

use super::*;
use burn::module::Param;
use burn::nn::gru::GruConfig;
use burn::tensor::{Distribution, Tolerance};

/// The step-by-step path: the same values and gradients as burn-nn's
/// forward, bit for bit.
#[test]
fn unfused_matches_burn_nn_values_and_gradients_exactly() {
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
        let ours = run(&|x, h| unfused(&gru, x, Some(h)));
        let theirs = run(&|x, h| gru.forward(x, Some(h)));
        assert_eq!(ours, theirs, "reset_after = {reset_after}");
        // Without a starting state both start from zeros.
        assert_eq!(
            unfused(&gru, x.clone(), None).into_data(),
            gru.forward(x.clone(), None).into_data()
        );
    }
}

/// Every gradient the fused path computes: input, starting state, and the
/// input and hidden weights and biases of each gate.
fn gradients(
    gru: &Gru,
    y: Tensor<3>,
    w: &Tensor<3>,
    x: &Tensor<3>,
    h0: &Tensor<2>,
) -> Vec<TensorData> {
    let g = (y * w.clone()).sum().backward();
    let mut out = vec![
        x.grad(&g).unwrap().into_data(),
        h0.grad(&g).unwrap().into_data(),
    ];
    for gate in [&gru.update_gate, &gru.reset_gate, &gru.new_gate] {
        for linear in [&gate.input_transform, &gate.hidden_transform] {
            out.push(linear.weight.grad(&g).unwrap().into_data());
            let bias: &Param<Tensor<1>> = linear.bias.as_ref().unwrap();
            out.push(bias.grad(&g).unwrap().into_data());
        }
    }
    out
}

/// The fused recurrence: burn-nn's values and gradients to float
/// rounding, with and without a starting state, for hidden sizes below,
/// at and past a vector register's width (16), and for one step alone
/// (step-by-step decoding).
#[test]
fn fused_matches_burn_nn_values_and_gradients() {
    let _rng = crate::testutil::rng_lock();
    let dev = Device::flex().autodiff();
    dev.seed(5);
    for (hidden, time) in [(9, 7), (21, 3), (16, 1)] {
        let gru = GruConfig::new(6, hidden, true).init(&dev);
        let x = Tensor::<3>::random([5, time, 6], Distribution::Normal(0.0, 1.5), &dev);
        let h0 = Tensor::<2>::random([5, hidden], Distribution::Normal(0.0, 1.0), &dev);
        let w = Tensor::<3>::random([5, time, hidden], Distribution::Normal(0.0, 1.0), &dev);
        assert!(
            FusedWeights::of(&gru, &x).is_some(),
            "the fused path applies"
        );
        let tol = Tolerance::<f32>::absolute(2e-5);
        let run = |f: &dyn Fn(Tensor<3>, Tensor<2>) -> Tensor<3>| {
            let (x, h0) = (x.clone().require_grad(), h0.clone().require_grad());
            let y = f(x.clone(), h0.clone());
            (y.clone().into_data(), gradients(&gru, y, &w, &x, &h0))
        };
        let (ours, our_grads) = run(&|x, h| forward(&gru, x, Some(h)));
        let (theirs, their_grads) = run(&|x, h| gru.forward(x, Some(h)));
        ours.assert_approx_eq(&theirs, tol);
        assert_eq!(our_grads.len(), 14);
        for (i, (a, b)) in our_grads.iter().zip(&their_grads).enumerate() {
            a.assert_approx_eq(b, tol);
            assert!(
                a.iter::<f32>().any(|v| v != 0.0),
                "hidden {hidden}: gradient {i} is all zeros"
            );
        }
        // From zeros, with the input's gradient through the whole sequence.
        let xg = x.clone().require_grad();
        let ours = forward(&gru, xg.clone(), None);
        let g = (ours.clone() * w.clone()).sum().backward();
        let xt = x.clone().require_grad();
        let theirs = gru.forward(xt.clone(), None);
        let gt = (theirs.clone() * w.clone()).sum().backward();
        ours.into_data().assert_approx_eq(&theirs.into_data(), tol);
        let (ga, gb) = (xg.grad(&g).unwrap(), xt.grad(&gt).unwrap());
        ga.into_data().assert_approx_eq(&gb.into_data(), tol);
    }
}

/// Without autodiff (generation) the fused cell gives the same values as
/// under it.
#[test]
fn fused_inference_matches_the_tracked_forward() {
    let _rng = crate::testutil::rng_lock();
    let dev = Device::flex();
    dev.seed(6);
    let gru = GruConfig::new(4, 8, true).init(&dev);
    let x = Tensor::<3>::random([3, 5, 4], Distribution::Normal(0.0, 1.0), &dev);
    let plain = forward(&gru, x.clone(), None).into_data();
    let ad = dev.clone().autodiff();
    let tracked = forward(
        &gru.clone().fork(&ad),
        Tensor::from_data(x.into_data(), &ad),
        None,
    );
    assert_eq!(plain, tracked.into_data());
}

/// The configurations the fused cell does not compute go step by step,
/// bit for bit as burn-nn.
#[test]
fn other_configurations_take_the_unfused_path() {
    let _rng = crate::testutil::rng_lock();
    let dev = Device::flex();
    dev.seed(7);
    let x = Tensor::<3>::random([2, 3, 4], Distribution::Normal(0.0, 1.0), &dev);
    let configs = [
        GruConfig::new(4, 5, true).with_reset_after(false),
        GruConfig::new(4, 5, false),
        GruConfig::new(4, 5, true).with_clip(Some(0.5)),
    ];
    for config in configs {
        let gru = config.init(&dev);
        assert!(FusedWeights::of(&gru, &x).is_none());
        assert_eq!(
            forward(&gru, x.clone(), None).into_data(),
            gru.forward(x.clone(), None).into_data()
        );
    }
}
