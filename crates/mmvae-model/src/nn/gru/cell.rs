//! One GRU step (`reset_after`, sigmoid gates, tanh candidate) on
//! burn-flex tensors, from the gates' pre-activations, and its backward
//! pass.
//!
//! With `gx = x W_x + b_x` and `gh = h W_h + b_h`, each `[batch, 3·hidden]`
//! in the order update (z), reset (r), new (n):
//!
//! ```text
//! z = σ(gx_z + gh_z)    r = σ(gx_r + gh_r)    n = tanh(gx_n + r ⊙ gh_n)
//! h' = n ⊙ (1 − z) + z ⊙ h
//! ```
//!
//! the operations burn-nn's `Gru` performs, in its order.

use burn_flex::FlexTensor;

use crate::nn::dense::{tensor, Dense};
use crate::nn::fastmath::{sigmoid, tanh, vectorised, Kernel};

/// The gates of a step, `[batch, 3·hidden]` (z, r, n): what the backward
/// pass needs besides the step's inputs.
pub type Gates = FlexTensor;

/// `values` split into its three gates' blocks of `n`.
#[inline(always)]
fn split3(values: &[f32], n: usize) -> [&[f32]; 3] {
    [&values[..n], &values[n..2 * n], &values[2 * n..3 * n]]
}

#[inline(always)]
fn split3_mut(values: &mut [f32], n: usize) -> [&mut [f32]; 3] {
    let (a, rest) = values.split_at_mut(n);
    let (b, c) = rest.split_at_mut(n);
    [a, b, &mut c[..n]]
}

/// The new hidden state and the gates.
///
/// # Shapes
/// `gx`, `gh`: `[batch, 3·hidden]`, `h`: `[batch, hidden]` → `[batch, hidden]`
/// (gates `[batch, 3·hidden]`)
pub fn forward(gx: &FlexTensor, gh: &FlexTensor, h: &FlexTensor) -> (FlexTensor, Gates) {
    let (gx, gh, h) = (Dense::new(gx), Dense::new(gh), Dense::new(h));
    let [batch, hidden] = [h.dims()[0], h.dims()[1]];
    let mut out = vec![0.0f32; batch * hidden];
    let mut gates = vec![0.0f32; 3 * batch * hidden];
    vectorised(Forward {
        hidden,
        gx: gx.values(),
        gh: gh.values(),
        h: h.values(),
        out: &mut out,
        gates: &mut gates,
    });
    (
        tensor(out, &[batch, hidden]),
        tensor(gates, &[batch, 3 * hidden]),
    )
}

/// The forward pass's loop over the rows of a batch.
struct Forward<'a> {
    hidden: usize,
    gx: &'a [f32],
    gh: &'a [f32],
    h: &'a [f32],
    out: &'a mut [f32],
    gates: &'a mut [f32],
}

impl Kernel for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let hidden = self.hidden;
        let rows = self
            .gx
            .chunks_exact(3 * hidden)
            .zip(self.gh.chunks_exact(3 * hidden))
            .zip(self.h.chunks_exact(hidden))
            .zip(self.out.chunks_exact_mut(hidden))
            .zip(self.gates.chunks_exact_mut(3 * hidden));
        for ((((gx, gh), h), out), gates) in rows {
            step_row(gx, gh, h, out, gates);
        }
    }
}

#[inline(always)]
fn step_row(gx: &[f32], gh: &[f32], h: &[f32], out: &mut [f32], gates: &mut [f32]) {
    let n = h.len();
    let ([xz, xr, xn], [hz, hr, hn]) = (split3(gx, n), split3(gh, n));
    let [gz, gr, gn] = split3_mut(gates, n);
    let out = &mut out[..n];
    for j in 0..n {
        let z = sigmoid(xz[j] + hz[j]);
        let r = sigmoid(xr[j] + hr[j]);
        let c = tanh(xn[j] + r * hn[j]);
        out[j] = c * (1.0 - z) + z * h[j];
        (gz[j], gr[j], gn[j]) = (z, r, c);
    }
}

/// The gradients of a step's three inputs.
pub struct Grads {
    /// `[batch, 3·hidden]`
    pub gx: FlexTensor,
    /// `[batch, 3·hidden]`
    pub gh: FlexTensor,
    /// `[batch, hidden]`
    pub h: FlexTensor,
}

/// The gradients of `gx`, `gh` and `h` from that of the new state.
///
/// # Shapes
/// `gates`, `gh`: `[batch, 3·hidden]`, `h`, `grad`: `[batch, hidden]`
pub fn backward(gates: &Gates, gh: &FlexTensor, h: &FlexTensor, grad: &FlexTensor) -> Grads {
    let (gates, gh, h, grad) = (
        Dense::new(gates),
        Dense::new(gh),
        Dense::new(h),
        Dense::new(grad),
    );
    let [batch, hidden] = [h.dims()[0], h.dims()[1]];
    let mut d_gx = vec![0.0f32; 3 * batch * hidden];
    let mut d_gh = vec![0.0f32; 3 * batch * hidden];
    let mut d_h = vec![0.0f32; batch * hidden];
    vectorised(Backward {
        hidden,
        gates: gates.values(),
        gh: gh.values(),
        h: h.values(),
        grad: grad.values(),
        out: [&mut d_gx, &mut d_gh, &mut d_h],
    });
    Grads {
        gx: tensor(d_gx, &[batch, 3 * hidden]),
        gh: tensor(d_gh, &[batch, 3 * hidden]),
        h: tensor(d_h, &[batch, hidden]),
    }
}

/// The backward pass's loop over the rows of a batch.
struct Backward<'a> {
    hidden: usize,
    gates: &'a [f32],
    gh: &'a [f32],
    h: &'a [f32],
    grad: &'a [f32],
    /// The gradients of gx, gh and h.
    out: [&'a mut [f32]; 3],
}

impl Kernel for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let (n, [d_gx, d_gh, d_h]) = (self.hidden, self.out);
        let rows = self
            .gates
            .chunks_exact(3 * n)
            .zip(self.gh.chunks_exact(3 * n))
            .zip(self.h.chunks_exact(n))
            .zip(self.grad.chunks_exact(n))
            .zip(d_gx.chunks_exact_mut(3 * n))
            .zip(d_gh.chunks_exact_mut(3 * n))
            .zip(d_h.chunks_exact_mut(n));
        for ((((((gates, gh), h), grad), d_gx), d_gh), d_h) in rows {
            backward_row(gates, gh, h, grad, [d_gx, d_gh, d_h]);
        }
    }
}

#[inline(always)]
fn backward_row(gates: &[f32], gh: &[f32], h: &[f32], grad: &[f32], out: [&mut [f32]; 3]) {
    let n = h.len();
    let ([z, r, c], [_, _, hn]) = (split3(gates, n), split3(gh, n));
    let [d_gx, d_gh, d_h] = out;
    let grad = &grad[..n];
    let d_h = &mut d_h[..n];
    let [dxz, dxr, dxn] = split3_mut(d_gx, n);
    let [dhz, dhr, dhn] = split3_mut(d_gh, n);
    for j in 0..n {
        let (z, r, c, g) = (z[j], r[j], c[j], grad[j]);
        let dz = g * (h[j] - c) * (z * (1.0 - z));
        let dn = g * (1.0 - z) * (1.0 - c * c);
        let dr = dn * hn[j] * (r * (1.0 - r));
        (dxz[j], dxr[j], dxn[j]) = (dz, dr, dn);
        (dhz[j], dhr[j], dhn[j]) = (dz, dr, dn * r);
        d_h[j] = g * z;
    }
}
