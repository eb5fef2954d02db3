//! The fully connected layer on burn-flex tensors: the forward pass and
//! the gradients of its input, weight and bias.

use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::nn::dense::{tensor, Dense};
use crate::nn::grads::{Grads, Wanted};
use crate::nn::matmul::{matmul, matmul_into, Mat};

use super::Products;

/// Products of at least this many multiply-adds in all run item by item
/// over the thread pool.
const PARALLEL_ITEMS: usize = 1 << 20;

/// The rows of each product: all of them, or one item's.
fn run_rows(rows: usize, products: Products) -> usize {
    match products {
        Products::One => rows,
        Products::PerItem(items) => {
            assert!(
                items > 0 && rows.is_multiple_of(items),
                "linear: {rows} rows do not split into {items} items"
            );
            rows / items
        }
    }
}

/// `a · b` for each run of `run` rows of `a` (row-major, `k` wide) into the
/// matching rows of `out` (`n` wide): one product per item, as burn's
/// batched product computes them.
fn per_run(a: &[f32], k: usize, b: Mat, run: usize, out: &mut [f32]) {
    let n = b.cols;
    if run == 0 || n == 0 {
        return;
    }
    let one = |(a, out): (&[f32], &mut [f32])| matmul_into(Mat::rows(a, run, k), b, out, false);
    if out.len().saturating_mul(k) >= PARALLEL_ITEMS {
        a.par_chunks(run * k)
            .zip(out.par_chunks_mut(run * n))
            .for_each(one);
    } else {
        a.chunks(run * k).zip(out.chunks_mut(run * n)).for_each(one);
    }
}

/// `x · weight` (as [`Products`] says), then `bias` added to every row
/// (after the product, as burn adds it).
///
/// # Shapes
/// - x: `[rows, d_input]`, weight: `[d_input, d_output]`, bias: `[d_output]`
/// - output: `[rows, d_output]`
pub fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    products: Products,
) -> FlexTensor {
    let (x, w, b) = (Dense::new(x), Dense::new(weight), Dense::new(bias));
    let ([rows, d_in], [_, d_out]) = (dims2(&x), dims2(&w));
    let w = Mat::rows(w.values(), d_in, d_out);
    let mut out = match products {
        Products::One => matmul(Mat::rows(x.values(), rows, d_in), w),
        Products::PerItem(_) => {
            let mut out = vec![0.0f32; rows * d_out];
            per_run(x.values(), d_in, w, run_rows(rows, products), &mut out);
            out
        }
    };
    if d_out > 0 {
        for row in out.chunks_exact_mut(d_out) {
            row.iter_mut().zip(b.values()).for_each(|(v, b)| *v += b);
        }
    }
    tensor(out, &[rows, d_out])
}

/// The gradients of [`forward`] given the output's gradient `grad`:
/// `grad · weightᵀ`, `xᵀ · grad` and the sums of `grad` over its rows, in
/// burn's order (item by item: the items' weight gradients added in turn;
/// the bias's sums over the items first, then over the steps).
///
/// # Shapes
/// - x: `[rows, d_input]`, weight: `[d_input, d_output]`
/// - grad: `[rows, d_output]`
pub fn backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    products: Products,
    wanted: Wanted,
) -> Grads {
    let grad = Dense::new(grad);
    let [rows, d_out] = dims2(&grad);
    let run = run_rows(rows, products);
    let g = Mat::rows(grad.values(), rows, d_out);
    let input = wanted.input.then(|| {
        let w = Dense::new(weight);
        let [d_in, _] = dims2(&w);
        let wt = Mat::rows(w.values(), d_in, d_out).t();
        let gx = match products {
            Products::One => matmul(g, wt),
            Products::PerItem(_) => {
                let mut gx = vec![0.0f32; rows * d_in];
                per_run(grad.values(), d_out, wt, run, &mut gx);
                gx
            }
        };
        tensor(gx, &[rows, d_in])
    });
    let weight = wanted.weight.then(|| {
        let x = Dense::new(x);
        let [_, d_in] = dims2(&x);
        tensor(
            weight_grad(x.values(), grad.values(), d_in, d_out, run),
            &[d_in, d_out],
        )
    });
    let bias = wanted
        .bias
        .then(|| tensor(bias_grad(grad.values(), d_out, run), &[d_out]));
    Grads {
        input,
        weight,
        bias,
    }
}

/// `Σ xᵀ · grad` over the runs of `run` rows, added run after run.
fn weight_grad(x: &[f32], grad: &[f32], d_in: usize, d_out: usize, run: usize) -> Vec<f32> {
    let rows = grad.len() / d_out.max(1);
    if run == rows {
        return matmul(Mat::rows(x, rows, d_in).t(), Mat::rows(grad, rows, d_out));
    }
    let mut sum = vec![0.0f32; d_in * d_out];
    if run == 0 {
        return sum;
    }
    for (x, g) in x.chunks(run * d_in).zip(grad.chunks(run * d_out)) {
        let p = matmul(Mat::rows(x, run, d_in).t(), Mat::rows(g, run, d_out));
        sum.iter_mut().zip(&p).for_each(|(s, v)| *s += v);
    }
    sum
}

/// The bias's gradient: the rows summed in order; for runs, each step
/// summed over the items first, then the steps in order.
fn bias_grad(grad: &[f32], d_out: usize, run: usize) -> Vec<f32> {
    let add_rows = |rows: &[f32], width: usize| {
        let mut sums = vec![0.0f32; width];
        if width > 0 {
            for row in rows.chunks_exact(width) {
                sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
        }
        sums
    };
    let rows = grad.len() / d_out.max(1);
    if run == rows {
        return add_rows(grad, d_out);
    }
    // [items, run, d_out] → [run, d_out] → [d_out]
    add_rows(&add_rows(grad, run * d_out), d_out)
}

fn dims2(t: &Dense) -> [usize; 2] {
    let d = t.dims();
    [d[0], d[1]]
}
