//! One GRU step (`reset_after`, sigmoid gates, tanh candidate) over a
//! batch, on plain `f32` rows, and its backward step.
//!
//! With `gx = x W_x + b_x` and `gh = h W_h + b_h`, each `3·hidden` wide
//! in the order update (z), reset (r), new (n):
//!
//! ```text
//! z = σ(gx_z + gh_z)    r = σ(gx_r + gh_r)    n = tanh(gx_n + r ⊙ gh_n)
//! h' = n ⊙ (1 − z) + z ⊙ h
//! ```
//!
//! the operations burn-nn's `Gru` performs, in its order. The input
//! projections and the gradients that flow to and from the caller
//! (`gx`, the output's gradient, `gx`'s gradient) are read and written in
//! the caller's `[batch, time, ·]` layout: row `i` of a step at
//! `i · stride` from the step's first value. The rest is one contiguous
//! `[batch, ·]` block per step.

use crate::nn::fastmath::{sigmoid, tanh, Kernel};

/// Row `i` of `len` values when rows start every `stride` values.
#[inline(always)]
fn row(values: &[f32], i: usize, stride: usize, len: usize) -> &[f32] {
    &values[i * stride..][..len]
}

#[inline(always)]
fn row_mut(values: &mut [f32], i: usize, stride: usize, len: usize) -> &mut [f32] {
    &mut values[i * stride..][..len]
}

/// One step forward: the new state and the gates.
///
/// # Shapes
/// `gx`: `batch` rows of `3·hidden` every `gx_stride`; `gh`, `gates`:
/// `[batch, 3·hidden]`; `h`, `out`: `[batch, hidden]`
pub struct Forward<'a> {
    pub hidden: usize,
    pub gx: &'a [f32],
    pub gx_stride: usize,
    pub gh: &'a [f32],
    pub h: &'a [f32],
    pub out: &'a mut [f32],
    pub gates: &'a mut [f32],
}

impl Kernel for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let n = self.hidden;
        for i in 0..self.h.len() / n {
            forward_row(
                row(self.gx, i, self.gx_stride, 3 * n),
                row(self.gh, i, 3 * n, 3 * n),
                row(self.h, i, n, n),
                row_mut(self.out, i, n, n),
                row_mut(self.gates, i, 3 * n, 3 * n),
            );
        }
    }
}

/// Values computed together: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// `L` values of `v` from `at`.
#[inline(always)]
fn load<const L: usize>(v: &[f32], at: usize) -> [f32; L] {
    let mut out = [0.0f32; L];
    out.copy_from_slice(&v[at..at + L]);
    out
}

/// `L` values of each of `v`'s three gate blocks of `n`, from `j`.
#[inline(always)]
fn load3<const L: usize>(v: &[f32], n: usize, j: usize) -> [[f32; L]; 3] {
    [load(v, j), load(v, n + j), load(v, 2 * n + j)]
}

/// Writes `L` values into each of `v`'s blocks of `n`, from `j`.
#[inline(always)]
fn store<const L: usize, const G: usize>(v: &mut [f32], n: usize, j: usize, x: [[f32; L]; G]) {
    for (g, x) in x.iter().enumerate() {
        v[g * n + j..][..L].copy_from_slice(x);
    }
}

/// A row, `LANES` values at a time: each block is read into local arrays
/// and computed there, so the compiler vectorises it without having to
/// prove that the outputs do not overlap the inputs.
#[inline(always)]
fn forward_row(gx: &[f32], gh: &[f32], h: &[f32], out: &mut [f32], gates: &mut [f32]) {
    let n = h.len();
    let whole = n - n % LANES;
    for j in (0..whole).step_by(LANES) {
        forward_lanes::<LANES>([gx, gh, h], [out, gates], n, j);
    }
    for j in whole..n {
        forward_lanes::<1>([gx, gh, h], [out, gates], n, j);
    }
}

#[inline(always)]
fn forward_lanes<const L: usize>(
    inputs: [&[f32]; 3],
    outputs: [&mut [f32]; 2],
    n: usize,
    j: usize,
) {
    let [gx, gh, h] = inputs;
    let [out, gates] = outputs;
    let ([xz, xr, xn], [hz, hr, hn]) = (load3::<L>(gx, n, j), load3::<L>(gh, n, j));
    let h = load::<L>(h, j);
    let (mut z, mut r, mut c, mut o) = ([0.0f32; L], [0.0f32; L], [0.0f32; L], [0.0f32; L]);
    for k in 0..L {
        z[k] = sigmoid(xz[k] + hz[k]);
        r[k] = sigmoid(xr[k] + hr[k]);
        c[k] = tanh(xn[k] + r[k] * hn[k]);
        o[k] = c[k] * (1.0 - z[k]) + z[k] * h[k];
    }
    store(out, n, j, [o]);
    store(gates, n, j, [z, r, c]);
}

/// One step backward. The new state's gradient is the output's (`grad`)
/// plus what flows back from the later steps (`carry`); from it, the
/// gradients of `gx`, of `gh` and of `h` through the update gate alone
/// (`d_h`; `gh`'s own share, `d_gh · W_hᵀ`, is the caller's product).
///
/// # Shapes
/// `gates`, `gh`, `d_gh`: `[batch, 3·hidden]`; `h`, `carry`, `d_h`:
/// `[batch, hidden]`; `grad`: `batch` rows of `hidden` every
/// `grad_stride`; `d_gx`: `batch` rows of `3·hidden` every `d_gx_stride`
pub struct Backward<'a> {
    pub hidden: usize,
    pub gates: &'a [f32],
    pub gh: &'a [f32],
    pub h: &'a [f32],
    pub grad: &'a [f32],
    pub grad_stride: usize,
    pub carry: &'a [f32],
    pub d_gx: &'a mut [f32],
    pub d_gx_stride: usize,
    pub d_gh: &'a mut [f32],
    pub d_h: &'a mut [f32],
}

impl Kernel for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let n = self.hidden;
        for i in 0..self.h.len() / n {
            let inputs = [
                row(self.gates, i, 3 * n, 3 * n),
                row(self.gh, i, 3 * n, 3 * n),
                row(self.h, i, n, n),
                row(self.grad, i, self.grad_stride, n),
                row(self.carry, i, n, n),
            ];
            let outputs = [
                row_mut(self.d_gx, i, self.d_gx_stride, 3 * n),
                row_mut(self.d_gh, i, 3 * n, 3 * n),
                row_mut(self.d_h, i, n, n),
            ];
            backward_row(inputs, outputs);
        }
    }
}

/// A row, [`LANES`] values at a time (see [`forward_row`]).
#[inline(always)]
fn backward_row(inputs: [&[f32]; 5], outputs: [&mut [f32]; 3]) {
    let n = inputs[2].len();
    let whole = n - n % LANES;
    let [d_gx, d_gh, d_h] = outputs;
    for j in (0..whole).step_by(LANES) {
        backward_lanes::<LANES>(inputs, [&mut *d_gx, &mut *d_gh, &mut *d_h], n, j);
    }
    for j in whole..n {
        backward_lanes::<1>(inputs, [&mut *d_gx, &mut *d_gh, &mut *d_h], n, j);
    }
}

#[inline(always)]
fn backward_lanes<const L: usize>(
    inputs: [&[f32]; 5],
    outputs: [&mut [f32]; 3],
    n: usize,
    j: usize,
) {
    let [gates, gh, h, grad, carry] = inputs;
    let ([z, r, c], [_, _, hn]) = (load3::<L>(gates, n, j), load3::<L>(gh, n, j));
    let (h, grad, carry) = (load::<L>(h, j), load::<L>(grad, j), load::<L>(carry, j));
    let (mut dz, mut dr, mut dn, mut dhn, mut dh) =
        ([0.0f32; L], [0.0; L], [0.0; L], [0.0; L], [0.0; L]);
    for k in 0..L {
        let g = grad[k] + carry[k];
        dz[k] = g * (h[k] - c[k]) * (z[k] * (1.0 - z[k]));
        dn[k] = g * (1.0 - z[k]) * (1.0 - c[k] * c[k]);
        dr[k] = dn[k] * hn[k] * (r[k] * (1.0 - r[k]));
        dhn[k] = dn[k] * r[k];
        dh[k] = g * z[k];
    }
    let [d_gx, d_gh, d_h] = outputs;
    store(d_gx, n, j, [dz, dr, dn]);
    store(d_gh, n, j, [dz, dr, dhn]);
    store(d_h, n, j, [dh]);
}
