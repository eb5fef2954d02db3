//! Matrix products on plain `f32` slices with any strides, through the
//! `gemm` crate: the hand-written CPU kernels' products.

/// A matrix stored in a slice: `(row, column)` is at
/// `row · row_stride + column · col_stride`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    /// The values.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Step between rows.
    pub row_stride: usize,
    /// Step between columns.
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn last(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }
}

/// Products of at least this many multiply-adds are split over the
/// current thread pool (burn-flex's threshold for its own products).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// `lhs · rhs` as a row-major matrix (the product written straight into
/// a new buffer, not over zeros).
pub fn matmul(lhs: Mat, rhs: Mat) -> Vec<f32> {
    check(lhs, rhs);
    let len = lhs.rows * rhs.cols;
    if lhs.cols == 0 {
        return vec![0.0; len];
    }
    let mut out = Vec::with_capacity(len);
    // SAFETY: the inputs are checked above and `out` has room for the dense
    // m × n result; with k > 0 and no accumulation the kernels write every
    // element of it before reading any, so all `len` values are set.
    unsafe {
        gemm_raw(lhs, rhs, out.as_mut_ptr(), false);
        out.set_len(len);
    }
    out
}

/// `out = lhs · rhs`, or `out += lhs · rhs` with `accumulate`; `out` is
/// row-major.
///
/// The `gemm` crate splits a product over threads by output blocks, never
/// along the summed axis, so the values do not depend on the thread count.
pub fn matmul_into(lhs: Mat, rhs: Mat, out: &mut [f32], accumulate: bool) {
    check(lhs, rhs);
    assert_eq!(out.len(), lhs.rows * rhs.cols, "matmul: output size");
    if lhs.cols == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    // SAFETY: the inputs are checked above; `out` is the dense m × n output.
    unsafe { gemm_raw(lhs, rhs, out.as_mut_ptr(), accumulate) }
}

/// The inner dimensions agree and every index the strides reach lies
/// inside its slice.
fn check(lhs: Mat, rhs: Mat) {
    assert_eq!(lhs.cols, rhs.rows, "matmul: inner dimensions differ");
    assert!(lhs.last() <= lhs.data.len() && rhs.last() <= rhs.data.len());
}

/// The product into `out`, a dense row-major `lhs.rows × rhs.cols` buffer.
///
/// # Safety
/// `lhs` and `rhs` must have passed [`check`], and `out` must be valid for
/// writes (and for reads with `accumulate`) of `lhs.rows · rhs.cols` values.
unsafe fn gemm_raw(lhs: Mat, rhs: Mat, out: *mut f32, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let parallelism = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: as the caller guarantees.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_follows_strides_and_transposes() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 2 × 3
        let b: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect(); // 3 × 4
        let ab = matmul(Mat::rows(&a, 2, 3), Mat::rows(&b, 3, 4));
        let want = |i: usize, j: usize| (0..3).map(|k| a[i * 3 + k] * b[k * 4 + j]).sum::<f32>();
        for i in 0..2 {
            for j in 0..4 {
                assert_eq!(ab[i * 4 + j], want(i, j));
            }
        }
        // (ab)ᵀ = bᵀ aᵀ, taken through transposed views.
        let ba = matmul(Mat::rows(&b, 3, 4).t(), Mat::rows(&a, 2, 3).t());
        for i in 0..2 {
            for j in 0..4 {
                assert_eq!(ba[j * 2 + i], want(i, j));
            }
        }
    }
}
