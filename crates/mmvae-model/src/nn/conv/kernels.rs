//! The arithmetic of the batched convolutions on plain `f32` slices:
//! im2col, its adjoint col2im, one matrix product for the whole batch,
//! and the layout swaps around it.
//!
//! A convolution is seen from two sides: the *image* side (`channels` ×
//! `image`, the input of a convolution and the output of a transposed
//! one) and the *positions* side (`positions`, the output of a convolution
//! and the input of a transposed one). [`im2col`] gathers, for every
//! position of every batch item, the image values under the kernel;
//! [`col2im`] adds them back, which is the same map transposed.

use rayon::prelude::*;

/// Values in one chunk's column matrix (1 MiB of `f32`): see [`Geometry::chunks`].
pub const CHUNK_VALUES: usize = 1 << 18;

/// The geometry of a 2-D convolution between an image side and a
/// positions side (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Batch items.
    pub batch: usize,
    /// Channels on the image side.
    pub channels: usize,
    /// Height and width of the image side.
    pub image: [usize; 2],
    /// Height and width of the positions side.
    pub positions: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Step between neighbouring positions, in image pixels.
    pub stride: [usize; 2],
    /// Zero rows / columns before the image (the padding after it only
    /// changes how many positions there are).
    pub padding: [usize; 2],
    /// Step between neighbouring kernel taps, in image pixels.
    pub dilation: [usize; 2],
}

impl Geometry {
    /// Rows of a column matrix: one per (channel, kernel row, kernel column).
    pub fn col_rows(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Positions of one batch item.
    pub fn plane(&self) -> usize {
        self.positions[0] * self.positions[1]
    }

    /// Columns of a column matrix: every position of every batch item.
    pub fn col_len(&self) -> usize {
        self.batch * self.plane()
    }

    /// Values on the image side.
    pub fn image_len(&self) -> usize {
        self.batch * self.channels * self.image[0] * self.image[1]
    }

    /// The same geometry for `batch` items.
    pub fn with_batch(&self, batch: usize) -> Self {
        Self { batch, ..*self }
    }

    /// Consecutive runs of batch items (first item, count) whose column
    /// matrix holds about [`CHUNK_VALUES`] values (at least one item each),
    /// so that it stays in the core's cache between im2col and the product.
    pub fn chunks(&self) -> impl Iterator<Item = (usize, usize)> {
        let per_item = (self.col_rows() * self.plane()).max(1);
        let size = (CHUNK_VALUES / per_item).clamp(1, self.batch.max(1));
        let batch = self.batch;
        (0..batch)
            .step_by(size)
            .map(move |first| (first, size.min(batch - first)))
    }

    /// Along `axis`, for kernel tap `tap`: the positions whose tap lands
    /// inside the image (`first..end`), and the image index of position 0
    /// (`offset`, negative where it falls in the padding).
    #[inline]
    fn span(&self, axis: usize, tap: usize) -> Span {
        let (s, len) = (self.stride[axis], self.image[axis]);
        let offset = (tap * self.dilation[axis]) as isize - self.padding[axis] as isize;
        // The first position p with p·s + offset ≥ 0, and the first with p·s + offset ≥ len.
        let bound = |at: isize| {
            let need = at - offset;
            if need <= 0 {
                0
            } else {
                (need as usize).div_ceil(s)
            }
        };
        let positions = self.positions[axis];
        Span {
            first: bound(0).min(positions),
            end: bound(len as isize).min(positions),
            offset,
            stride: s,
        }
    }
}

/// The positions along one axis whose kernel tap lands inside the image.
#[derive(Clone, Copy)]
struct Span {
    first: usize,
    end: usize,
    offset: isize,
    stride: usize,
}

impl Span {
    /// The image index of position `p` (inside `first..end`).
    #[inline]
    fn source(&self, p: usize) -> usize {
        (p as isize * self.stride as isize + self.offset) as usize
    }
}

/// Gathers the image values under the kernel at every position.
///
/// # Shapes
/// - image: `[batch, channels, image[0], image[1]]`
/// - output: `[channels · kernel[0] · kernel[1], batch · positions[0] · positions[1]]`,
///   rows ordered (channel, kernel row, kernel column), columns (item, row, column).
pub fn im2col(image: &[f32], g: &Geometry) -> Vec<f32> {
    debug_assert_eq!(image.len(), g.image_len());
    let cols = g.col_len();
    let mut out = vec![0.0f32; g.col_rows() * cols];
    out.par_chunks_mut(cols)
        .enumerate()
        .for_each(|(row, dst)| im2col_row(image, g, row, dst));
    out
}

/// Fills row `row` of [`im2col`]'s output (zeros on entry).
#[inline(never)]
fn im2col_row(image: &[f32], g: &Geometry, row: usize, dst: &mut [f32]) {
    let plane = g.plane();
    let [ih, iw] = g.image;
    let pw = g.positions[1];
    let kw = g.kernel[1];
    let (c, tap) = (row / (g.kernel[0] * kw), row % (g.kernel[0] * kw));
    let (rows, across) = (g.span(0, tap / kw), g.span(1, tap % kw));
    for n in 0..g.batch {
        let src = &image[(n * g.channels + c) * ih * iw..][..ih * iw];
        let dst = &mut dst[n * plane..][..plane];
        // The padding's values stay the buffer's zeros.
        for oh in rows.first..rows.end {
            let src = &src[rows.source(oh) * iw..][..iw];
            let dst = &mut dst[oh * pw..][across.first..across.end];
            let src = &src[across.source(across.first)..];
            if across.stride == 1 {
                dst.copy_from_slice(&src[..dst.len()]);
            } else {
                for (d, run) in dst.iter_mut().zip(src.chunks(across.stride)) {
                    *d = run[0];
                }
            }
        }
    }
}

/// Adds every column value back onto the image pixel it was gathered
/// from: the transpose of [`im2col`]. Each image plane sums its taps in
/// one fixed order (kernel row, kernel column, position), so the result
/// does not depend on the number of threads.
///
/// # Shapes
/// - cols: `[channels · kernel[0] · kernel[1], batch · positions[0] · positions[1]]`
/// - output: `[batch, channels, image[0], image[1]]`
pub fn col2im(cols: &[f32], g: &Geometry) -> Vec<f32> {
    debug_assert_eq!(cols.len(), g.col_rows() * g.col_len());
    let [ih, iw] = g.image;
    let mut out = vec![0.0f32; g.image_len()];
    out.par_chunks_mut(ih * iw)
        .enumerate()
        .for_each(|(nc, dst)| col2im_plane(cols, g, nc, dst));
    out
}

/// Accumulates image plane `nc` (item · channels + channel) of [`col2im`]'s output.
#[inline(never)]
fn col2im_plane(cols: &[f32], g: &Geometry, nc: usize, dst: &mut [f32]) {
    let (len, plane) = (g.col_len(), g.plane());
    let iw = g.image[1];
    let pw = g.positions[1];
    let [kh, kw] = g.kernel;
    let (n, c) = (nc / g.channels, nc % g.channels);
    for ki in 0..kh {
        let rows = g.span(0, ki);
        for kj in 0..kw {
            let across = g.span(1, kj);
            let row = (c * kh + ki) * kw + kj;
            let src = &cols[row * len + n * plane..][..plane];
            for oh in rows.first..rows.end {
                let src = &src[oh * pw..][across.first..across.end];
                let dst = &mut dst[rows.source(oh) * iw..][..iw];
                let dst = dst[across.source(across.first)..].chunks_mut(across.stride);
                for (run, v) in dst.zip(src) {
                    run[0] += v;
                }
            }
        }
    }
}

/// Swaps the two outer axes of `[a, b, inner]`, giving `[b, a, inner]`.
pub fn swap_outer(src: &[f32], a: usize, b: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; src.len()];
    swap_outer_into(src, a, b, inner, &mut out);
    out
}

/// [`swap_outer`] into `dst`.
pub fn swap_outer_into(src: &[f32], a: usize, b: usize, inner: usize, dst: &mut [f32]) {
    assert_eq!(src.len(), a * b * inner);
    assert_eq!(dst.len(), src.len());
    for (j, dst) in dst.chunks_exact_mut(a * inner).enumerate() {
        for i in 0..a {
            dst[i * inner..][..inner].copy_from_slice(&src[(i * b + j) * inner..][..inner]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry {
            batch: 2,
            channels: 3,
            image: [5, 6],
            positions: [3, 3],
            kernel: [3, 2],
            stride: [2, 2],
            padding: [1, 0],
            dilation: [1, 2],
        }
    }

    fn ramp(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 101) as f32 * scale - 1.0)
            .collect()
    }

    /// ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩: col2im is im2col's transpose.
    #[test]
    fn col2im_is_the_transpose_of_im2col() {
        let g = geometry();
        let x = ramp(g.image_len(), 0.02);
        let c = ramp(g.col_rows() * g.col_len(), 0.03);
        let lhs: f64 = im2col(&x, &g)
            .iter()
            .zip(&c)
            .map(|(a, b)| (a * b) as f64)
            .sum();
        let rhs: f64 = x
            .iter()
            .zip(col2im(&c, &g))
            .map(|(a, b)| (a * b) as f64)
            .sum();
        assert!(
            (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }

    /// Each column entry is the pixel the definition names, or 0 in the padding.
    #[test]
    fn im2col_gathers_the_pixels_under_the_kernel() {
        let g = geometry();
        let x: Vec<f32> = (0..g.image_len()).map(|i| i as f32 + 1.0).collect();
        let cols = im2col(&x, &g);
        for c in 0..g.channels {
            for (ki, kj) in [(0, 0), (1, 1), (2, 0)] {
                let row = (c * 3 + ki) * 2 + kj;
                for (n, oh, ow) in [(0, 0, 0), (1, 2, 1), (1, 1, 2)] {
                    let y = (oh * 2 + ki) as isize - 1;
                    let xx = ow * 2 + kj * 2;
                    let want = if (0..5).contains(&y) && xx < 6 {
                        x[((n * 3 + c) * 5 + y as usize) * 6 + xx]
                    } else {
                        0.0
                    };
                    assert_eq!(cols[row * g.col_len() + n * 9 + oh * 3 + ow], want);
                }
            }
        }
    }

    #[test]
    fn swap_outer_moves_whole_inner_runs() {
        let src: Vec<f32> = (0..24).map(|v| v as f32).collect(); // [2, 3, 4]
        let out = swap_outer(&src, 2, 3, 4);
        for i in 0..2 {
            for j in 0..3 {
                assert_eq!(&out[(j * 2 + i) * 4..][..4], &src[(i * 3 + j) * 4..][..4]);
            }
        }
    }
}
