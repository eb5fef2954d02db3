//! The geometry of the batched convolutions, and the layout swap between
//! a chunk's product and the batch's tensor.
//!
//! A convolution is seen from two sides: the *image* side (`channels` ×
//! `image`, the input of a convolution and the output of a transposed
//! one) and the *positions* side (`positions`, the output of a convolution
//! and the input of a transposed one). im2col gathers, for every position
//! of every batch item, the image values under the kernel; col2im adds
//! them back, which is the same map transposed (see [`super::columns`]).

use rayon::prelude::*;

/// Values in one chunk's column matrix (1 MiB of `f32`): see [`Geometry::chunks`].
pub const CHUNK_VALUES: usize = 1 << 18;

/// Values at or above which a layout swap is split over the thread pool.
const PARALLEL_SWAP: usize = 1 << 15;

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
}

/// Swaps the two outer axes of `[a, b, inner]`, giving `[b, a, inner]`,
/// into `dst` (every value of which it writes); large swaps over the
/// thread pool.
pub fn swap_outer_into(src: &[f32], a: usize, b: usize, inner: usize, dst: &mut [f32]) {
    assert_eq!(src.len(), a * b * inner);
    assert_eq!(dst.len(), src.len());
    if src.is_empty() {
        return;
    }
    let fill = |(j, dst): (usize, &mut [f32])| {
        for i in 0..a {
            dst[i * inner..][..inner].copy_from_slice(&src[(i * b + j) * inner..][..inner]);
        }
    };
    if src.len() >= PARALLEL_SWAP {
        dst.par_chunks_exact_mut(a * inner)
            .enumerate()
            .for_each(fill);
    } else {
        dst.chunks_exact_mut(a * inner).enumerate().for_each(fill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_outer_moves_whole_inner_runs() {
        // Serial and over the thread pool.
        for (a, b, inner) in [(2, 3, 4), (16, 64, 49)] {
            let n = a * b * inner;
            let src: Vec<f32> = (0..n).map(|v| v as f32).collect();
            let mut out = vec![f32::NAN; n];
            swap_outer_into(&src, a, b, inner, &mut out);
            for i in 0..a {
                for j in 0..b {
                    assert_eq!(
                        &out[(j * a + i) * inner..][..inner],
                        &src[(i * b + j) * inner..][..inner]
                    );
                }
            }
        }
    }
}
