//! A GRU's recurrence over a whole sequence on burn-flex tensors, from
//! the input projections, and its backward pass through time.
//!
//! Each step is one matrix product (`h W_h + b_h`, the three gates side by
//! side) and one pass of [`cell`]; the states live in one time-major
//! buffer, so no step slices, copies or zero-fills a tensor. The backward
//! pass runs the steps in reverse, one product per step for the gradient
//! that flows to the previous state, and then computes the hidden
//! weights' gradient as a single product over all steps.

use burn_flex::FlexTensor;

use super::cell;
use crate::nn::dense::{tensor, Dense};
use crate::nn::fastmath::vectorised;
use crate::nn::matmul::{matmul, matmul_into, Mat};

/// The sizes of a sequence.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    time: usize,
    hidden: usize,
}

impl Dims {
    /// Values in one step's `[batch, hidden]` block.
    fn state(&self) -> usize {
        self.batch * self.hidden
    }
}

/// What the backward pass reads.
#[derive(Debug)]
pub struct Saved {
    dims: Dims,
    /// `h_0 … h_T`, time-major: `[time + 1, batch, hidden]`.
    states: Vec<f32>,
    /// `h_{t-1} W_h + b_h`, time-major: `[time, batch, 3·hidden]`.
    gh: Vec<f32>,
    /// The gates z, r, n: `[time, batch, 3·hidden]`.
    gates: Vec<f32>,
}

/// The states `h_1 … h_T` from `h_0`.
///
/// # Shapes
/// `gx`: `[batch, time, 3·hidden]` (`x W_x + b_x`), `h0`: `[batch, hidden]`,
/// `weight`: `[hidden, 3·hidden]`, `bias`: `[3·hidden]` →
/// `[batch, time, hidden]`
pub fn forward(
    gx: &FlexTensor,
    h0: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
) -> FlexTensor {
    run(gx, h0, weight, bias, false).0
}

/// [`forward`], and what the backward pass needs.
pub fn forward_kept(
    gx: &FlexTensor,
    h0: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
) -> (FlexTensor, Saved) {
    run(gx, h0, weight, bias, true)
}

/// The recurrence; without `keep`, one step's projections and gates are
/// held at a time and the returned [`Saved`] has only the last step's.
fn run(
    gx: &FlexTensor,
    h0: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    keep: bool,
) -> (FlexTensor, Saved) {
    let (gx, h0, weight, bias) = (
        Dense::new(gx),
        Dense::new(h0),
        Dense::new(weight),
        Dense::new(bias),
    );
    let (batch, time, hidden) = (gx.dims()[0], gx.dims()[1], h0.dims()[1]);
    assert_eq!(gx.dims()[2], 3 * hidden, "GRU: input projections' width");
    let d = Dims {
        batch,
        time,
        hidden,
    };
    let (block, wide) = (d.state(), 3 * d.state());
    let mut states = vec![0.0f32; (time + 1) * block];
    states[..block].copy_from_slice(h0.values());
    let slots = if keep { time } else { time.min(1) };
    // Each slot starts as the bias rows; the step's product adds onto them.
    let mut gh = bias.values().repeat(slots * batch);
    let mut gates = vec![0.0f32; slots * wide];
    for t in 0..time {
        let slot = if keep { t } else { 0 };
        let gh_t = &mut gh[slot * wide..][..wide];
        if slot < t {
            for row in gh_t.chunks_exact_mut(3 * hidden) {
                row.copy_from_slice(bias.values());
            }
        }
        let (before, after) = states.split_at_mut((t + 1) * block);
        let h = &before[t * block..];
        let w = Mat::rows(weight.values(), hidden, 3 * hidden);
        matmul_into(Mat::rows(h, batch, hidden), w, gh_t, true);
        vectorised(cell::Forward {
            hidden,
            gx: &gx.values()[t * 3 * hidden..],
            gx_stride: time * 3 * hidden,
            gh: gh_t,
            h,
            out: &mut after[..block],
            gates: &mut gates[slot * wide..][..wide],
        });
    }
    let out = batch_major(&states[block..], d);
    let saved = Saved {
        dims: d,
        states,
        gh,
        gates,
    };
    (tensor(out, &[batch, time, hidden]), saved)
}

/// `[time, batch, hidden]` → `[batch, time, hidden]`.
fn batch_major(states: &[f32], d: Dims) -> Vec<f32> {
    let mut out = Vec::with_capacity(d.batch * d.time * d.hidden);
    for i in 0..d.batch {
        for t in 0..d.time {
            out.extend_from_slice(&states[t * d.state() + i * d.hidden..][..d.hidden]);
        }
    }
    out
}

/// The gradients of the four inputs of [`forward`].
pub struct Grads {
    /// `[batch, time, 3·hidden]`
    pub gx: FlexTensor,
    /// `[batch, hidden]`
    pub h0: FlexTensor,
    /// `[hidden, 3·hidden]`
    pub weight: FlexTensor,
    /// `[3·hidden]`
    pub bias: FlexTensor,
}

/// The inputs' gradients from the states' (`grad`, `[batch, time, hidden]`).
pub fn backward(saved: &Saved, weight: &FlexTensor, grad: &FlexTensor) -> Grads {
    let (weight, grad) = (Dense::new(weight), Dense::new(grad));
    let d = saved.dims;
    let (batch, time, hidden) = (d.batch, d.time, d.hidden);
    let (block, wide) = (d.state(), 3 * d.state());
    let mut d_gx = vec![0.0f32; batch * time * 3 * hidden];
    let mut d_gh = vec![0.0f32; time * wide];
    // What flows into h_t from the steps after t, and into h_{t-1}.
    let mut carry = vec![0.0f32; block];
    let mut d_h = vec![0.0f32; block];
    for t in (0..time).rev() {
        let d_gh_t = &mut d_gh[t * wide..][..wide];
        vectorised(cell::Backward {
            hidden,
            gates: &saved.gates[t * wide..][..wide],
            gh: &saved.gh[t * wide..][..wide],
            h: &saved.states[t * block..][..block],
            grad: &grad.values()[t * hidden..],
            grad_stride: time * hidden,
            carry: &carry,
            d_gx: &mut d_gx[t * 3 * hidden..],
            d_gx_stride: time * 3 * hidden,
            d_gh: d_gh_t,
            d_h: &mut d_h,
        });
        let w = Mat::rows(weight.values(), hidden, 3 * hidden);
        matmul_into(Mat::rows(d_gh_t, batch, 3 * hidden), w.t(), &mut d_h, true);
        std::mem::swap(&mut carry, &mut d_h);
    }
    let rows = time * batch;
    let d_weight = matmul(
        Mat::rows(&saved.states[..rows * hidden], rows, hidden).t(),
        Mat::rows(&d_gh, rows, 3 * hidden),
    );
    let mut d_bias = vec![0.0f32; 3 * hidden];
    for row in d_gh.chunks_exact(3 * hidden) {
        d_bias.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    Grads {
        gx: tensor(d_gx, &[batch, time, 3 * hidden]),
        h0: tensor(carry, &[batch, hidden]),
        weight: tensor(d_weight, &[hidden, 3 * hidden]),
        bias: tensor(d_bias, &[3 * hidden]),
    }
}
