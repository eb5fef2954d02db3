//! The Bernoulli negative log-likelihood of targets under logits,
//! `softplus(l) − x·l`, as one fused operation on the CPU backend.
//!
//! burn's `softplus` is seven tensor operations (a scale, a comparison, a
//! mask, `exp`, `log1p`, a division and a select), each with its own
//! backward step, and glibc's scalar `expf`/`log1pf` under them. [`nll`]
//! computes `max(l, 0) − x·l + log1p(e^−|l|)` in one vectorised pass and
//! its gradients (`σ(l) − x` for the logits, `−l` for the targets) in
//! another. On other devices and float types it is burn's arithmetic.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::prelude::*;
use burn::tensor::activation::softplus;
use burn::tensor::DType;
use burn_flex::FlexTensor;

use crate::nn::dense::{tensor, Dense};
use crate::nn::fastmath::{exp, ln, vectorised, Kernel};

/// The fused likelihood as an operation of a backend.
#[backend_extension(Flex, Autodiff)]
pub trait BernoulliBackend: Backend {
    /// See [`forward`].
    fn bernoulli_nll(logits: FloatTensor<Self>, target: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl BernoulliBackend for Flex {
    fn bernoulli_nll(logits: FloatTensor<Self>, target: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(&logits, &target)
    }
}

/// Elementwise `−log p(x | l)` of targets `x ∈ [0, 1]` under Bernoulli
/// logits `l` (stable for any `l`).
///
/// # Shapes
/// `logits`, `target`: `[n, d]` → `[n, d]`
pub fn nll(logits: Tensor<2>, target: Tensor<2>) -> Tensor<2> {
    let flex = logits.dtype() == DType::F32
        && target.dtype() == DType::F32
        && logits.device().without_autodiff() == Device::flex()
        && logits.dims() == target.dims();
    if !flex {
        return softplus(logits.clone(), 1.0) - logits * target;
    }
    Tensor::from_dispatch(Dispatch::bernoulli_nll(
        logits.into_dispatch(),
        target.into_dispatch(),
    ))
}

/// `log1p(u)` for `u ∈ [0, 1]`: `ln(1 + u)` corrected for the rounding of
/// `1 + u` (exact to float rounding down to the smallest `u`).
#[inline(always)]
fn log1p_unit(u: f32) -> f32 {
    let v = 1.0 + u;
    let d = v - 1.0;
    if d == 0.0 {
        u
    } else {
        ln(v) * (u / d)
    }
}

/// The forward pass on burn-flex tensors.
fn forward(logits: &FlexTensor, target: &FlexTensor) -> FlexTensor {
    let (l, x) = (Dense::new(logits), Dense::new(target));
    let mut out = vec![0.0f32; l.values().len()];
    vectorised(Nll {
        l: l.values(),
        x: x.values(),
        out: &mut out,
    });
    tensor(out, l.dims())
}

struct Nll<'a> {
    l: &'a [f32],
    x: &'a [f32],
    out: &'a mut [f32],
}

impl Kernel for Nll<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let n = self.out.len();
        let (l, x) = (&self.l[..n], &self.x[..n]);
        for i in 0..n {
            let l = l[i];
            self.out[i] = l.max(0.0) - x[i] * l + log1p_unit(exp(-l.abs()));
        }
    }
}

/// The gradients of the logits and the targets.
fn backward(logits: &FlexTensor, target: &FlexTensor, grad: &FlexTensor) -> [FlexTensor; 2] {
    let (l, x, g) = (Dense::new(logits), Dense::new(target), Dense::new(grad));
    let n = l.values().len();
    let (mut d_l, mut d_x) = (vec![0.0f32; n], vec![0.0f32; n]);
    vectorised(NllBackward {
        l: l.values(),
        x: x.values(),
        g: g.values(),
        d_l: &mut d_l,
        d_x: &mut d_x,
    });
    [tensor(d_l, l.dims()), tensor(d_x, l.dims())]
}

struct NllBackward<'a> {
    l: &'a [f32],
    x: &'a [f32],
    g: &'a [f32],
    d_l: &'a mut [f32],
    d_x: &'a mut [f32],
}

impl Kernel for NllBackward<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let n = self.d_l.len();
        let (l, x, g, d_x) = (&self.l[..n], &self.x[..n], &self.g[..n], &mut self.d_x[..n]);
        for i in 0..n {
            let e = exp(-l[i].abs());
            let sigmoid = (if l[i] >= 0.0 { 1.0 } else { e }) / (1.0 + e);
            self.d_l[i] = g[i] * (sigmoid - x[i]);
            d_x[i] = -(g[i] * l[i]);
        }
    }
}

#[derive(Debug)]
struct NllStep;

impl Backward<Flex, 2> for NllStep {
    type State = (FloatTensor<Flex>, FloatTensor<Flex>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_l, node_x] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (l, x) = ops.state;
        let [d_l, d_x] = backward(&l, &x, &grad);
        for (node, g) in [(node_l, d_l), (node_x, d_x)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

impl<C: CheckpointStrategy> BernoulliBackend for Autodiff<Flex, C> {
    fn bernoulli_nll(logits: FloatTensor<Self>, target: FloatTensor<Self>) -> FloatTensor<Self> {
        match NllStep
            .prepare::<C>([logits.node(), target.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (l, x) = (logits.into_primitive(), target.into_primitive());
                let out = forward(&l, &x);
                prep.finish((l, x), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(&logits.into_primitive(), &target.into_primitive()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tolerance;

    /// burn's `softplus(l) − x·l`: values and both gradients, from
    /// saturated negative to saturated positive logits.
    #[test]
    fn matches_burn_values_and_gradients() {
        let dev = Device::flex().autodiff();
        let l: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) * 1.7).collect();
        let x: Vec<f32> = (0..64).map(|i| ((i * 37) % 11) as f32 / 10.0).collect();
        let w: Vec<f32> = (0..64).map(|i| 1.0 + (i % 5) as f32).collect();
        let t = |v: &Vec<f32>| Tensor::<2>::from_data(TensorData::new(v.clone(), [8, 8]), &dev);
        let run = |f: fn(Tensor<2>, Tensor<2>) -> Tensor<2>| {
            let (l, x) = (t(&l).require_grad(), t(&x).require_grad());
            let y = f(l.clone(), x.clone());
            let g = (y.clone() * t(&w)).sum().backward();
            [
                y.into_data(),
                l.grad(&g).unwrap().into_data(),
                x.grad(&g).unwrap().into_data(),
            ]
        };
        let ours = run(nll);
        let theirs = run(|l, x| softplus(l.clone(), 1.0) - l * x);
        for (a, b) in ours.iter().zip(&theirs) {
            a.assert_approx_eq::<f32>(b, Tolerance::relative(1e-6).set_absolute(1e-6));
        }
    }

    /// Tiny terms are kept: `log1p(e^−|l|)` where `1 + e^−|l|` rounds to 1.
    #[test]
    fn keeps_the_tail_that_one_plus_rounds_away() {
        let dev = Device::flex();
        let l = Tensor::<2>::from_data(TensorData::new(vec![-20.0f32, 20.0, 0.0], [1, 3]), &dev);
        let x = Tensor::<2>::zeros([1, 3], &dev);
        let v = nll(l, x).into_data().try_to_vec::<f32>().unwrap();
        let want = [
            (-20.0f64).exp().ln_1p(),
            20.0 + (-20.0f64).exp().ln_1p(),
            2f64.ln(),
        ];
        for (a, b) in v.iter().zip(want) {
            assert!((*a as f64 - b).abs() <= b * 1e-6, "{a} vs {b}");
        }
    }
}
