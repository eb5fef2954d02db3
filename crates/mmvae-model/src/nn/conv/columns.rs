//! im2col and its adjoint col2im through a padded copy of each image
//! plane and one table of offsets.
//!
//! Padded with its zeros, an image plane is read by every kernel tap at the
//! same offsets (one per position, `row · stride · width + column ·
//! stride`), moved by the tap's own start. So a plane's column rows are
//! table lookups over all its positions at once, with no bounds, no
//! per-row runs and no padding cases: on AVX-512 sixteen values per gather
//! instruction. col2im adds into the padded plane as runs of neighbouring
//! pixels where the stride allows ([`Across`]), since a scatter
//! instruction is slow, and through the table otherwise.

use rayon::prelude::*;

use super::geometry::Geometry;
use crate::nn::fastmath::{vectorised, Kernel};
use crate::nn::scratch::Scratch;

/// The padded plane of a [`Geometry`] and where each tap and position
/// reads in it.
struct Table {
    /// Height and width of the padded plane: every value any tap reads.
    padded: [usize; 2],
    /// Per position (row-major): its top-left corner in the padded plane.
    offsets: Offsets,
    /// Per tap (kernel row, kernel column): its start in the padded plane.
    taps: Vec<usize>,
}

impl Table {
    fn of(g: &Geometry) -> Self {
        let extent = |axis: usize| {
            let reach = |n: usize, step: usize| n.saturating_sub(1) * step;
            reach(g.positions[axis], g.stride[axis]) + reach(g.kernel[axis], g.dilation[axis]) + 1
        };
        let padded = [extent(0), extent(1)];
        assert!(
            padded[0] * padded[1] <= i32::MAX as usize,
            "convolution plane too large"
        );
        let offsets = (0..g.positions[0])
            .flat_map(|oh| {
                (0..g.positions[1])
                    .map(move |ow| (oh * g.stride[0] * padded[1] + ow * g.stride[1]) as u32)
            })
            .collect();
        let offsets = Offsets::new(offsets);
        let taps = (0..g.kernel[0])
            .flat_map(|ki| {
                (0..g.kernel[1]).map(move |kj| ki * g.dilation[0] * padded[1] + kj * g.dilation[1])
            })
            .collect();
        Self {
            padded,
            offsets,
            taps,
        }
    }

    fn len(&self) -> usize {
        self.padded[0] * self.padded[1]
    }

    /// Padded-plane row `y` holds image row `y - padding[0]` from column
    /// `padding[1]` on: the range of image rows that land inside, and for
    /// image columns the same.
    fn inside(&self, g: &Geometry, axis: usize) -> (usize, usize) {
        let first = g.padding[axis].min(self.padded[axis]);
        let end = (g.padding[axis] + g.image[axis]).min(self.padded[axis]);
        (first, end.max(first))
    }

    /// Copies image plane `src` into `padded`, zeros around it.
    fn fill(&self, g: &Geometry, src: &[f32], padded: &mut [f32]) {
        let ((top, bottom), (left, right)) = (self.inside(g, 0), self.inside(g, 1));
        let width = self.padded[1];
        padded[..top * width].fill(0.0);
        padded[bottom * width..].fill(0.0);
        for (y, row) in padded
            .chunks_exact_mut(width)
            .enumerate()
            .take(bottom)
            .skip(top)
        {
            row[..left].fill(0.0);
            row[right..].fill(0.0);
            let source = &src[(y - g.padding[0]) * g.image[1]..][..g.image[1]];
            row[left..right].copy_from_slice(&source[..right - left]);
        }
    }

    /// Copies the image part of `padded` into image plane `dst`.
    fn crop(&self, g: &Geometry, padded: &[f32], dst: &mut [f32]) {
        let ((top, bottom), (left, right)) = (self.inside(g, 0), self.inside(g, 1));
        let iw = g.image[1];
        if bottom - top < g.image[0] || right - left < iw {
            // Image rows or columns that no position reaches receive nothing.
            dst.fill(0.0);
        }
        for (y, row) in padded
            .chunks_exact(self.padded[1])
            .enumerate()
            .take(bottom)
            .skip(top)
        {
            dst[(y - g.padding[0]) * iw..][..right - left].copy_from_slice(&row[left..right]);
        }
    }
}

/// One image plane's sums of col2im in its padded buffer, compiled for
/// the widest vectors the processor has.
struct PlaneSums<'a> {
    cols: &'a [f32],
    g: &'a Geometry,
    table: &'a Table,
    item: usize,
    channel: usize,
    padded: &'a mut [f32],
}

impl Kernel for PlaneSums<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self {
            cols,
            g,
            table,
            item,
            channel,
            padded,
        } = self;
        let (len, plane, taps) = (g.col_len(), g.plane(), table.taps.len());
        let tap = |t: usize| &cols[(channel * taps + t) * len + item * plane..][..plane];
        padded.fill(0.0);
        let kw = g.kernel[1];
        for ki in 0..g.kernel[0] {
            let mut kj = 0;
            while kj < kw {
                let t = ki * kw + kj;
                let dst = &mut padded[table.taps[t]..];
                let across = Across::of(g, kw - kj);
                match across {
                    Across::Runs => table.add_runs(g, dst, tap(t)),
                    Across::Pairs => table.add_pairs(g, dst, tap(t), tap(t + 1)),
                    Across::Table => scatter_add(dst, tap(t), &table.offsets),
                }
                kj += across.taps();
            }
        }
    }
}

/// How col2im adds one kernel row's taps, along the image's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Across {
    /// Stride 1: each position row of a tap is a run of neighbouring pixels.
    Runs,
    /// Stride 2, taps next to each other (dilation 1): two taps' position
    /// rows interleave into one run of pixels.
    Pairs,
    /// Any other stride: through the offset table.
    Table,
}

impl Across {
    /// The way for a kernel row's next tap, with `left` taps left in the row.
    fn of(g: &Geometry, left: usize) -> Self {
        match (g.stride[1], g.dilation[1]) {
            (1, _) => Self::Runs,
            (2, 1) if left >= 2 => Self::Pairs,
            _ => Self::Table,
        }
    }

    /// Taps it adds at once.
    fn taps(self) -> usize {
        match self {
            Self::Runs | Self::Table => 1,
            Self::Pairs => 2,
        }
    }
}

impl Table {
    /// `dst[oh · stride · width + ow] += src[oh, ow]` (stride 1 along columns).
    #[inline(always)]
    fn add_runs(&self, g: &Geometry, dst: &mut [f32], src: &[f32]) {
        let (pw, step) = (g.positions[1], g.stride[0] * self.padded[1]);
        if pw == 0 {
            return;
        }
        for (oh, src) in src.chunks_exact(pw).enumerate() {
            let dst = &mut dst[oh * step..][..pw];
            dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
        }
    }

    /// `dst[oh · stride · width + 2·ow] += a[oh, ow]` and `… + 1] +=
    /// b[oh, ow]` (stride 2 along columns, two neighbouring taps).
    #[inline(always)]
    fn add_pairs(&self, g: &Geometry, dst: &mut [f32], a: &[f32], b: &[f32]) {
        let (pw, step) = (g.positions[1], g.stride[0] * self.padded[1]);
        if pw == 0 {
            return;
        }
        for (oh, (a, b)) in a.chunks_exact(pw).zip(b.chunks_exact(pw)).enumerate() {
            let dst = &mut dst[oh * step..][..2 * pw];
            for ((d, x), y) in dst.chunks_exact_mut(2).zip(a).zip(b) {
                d[0] += x;
                d[1] += y;
            }
        }
    }
}

/// Gathers the image values under the kernel at every position into
/// `out`, every value of which it writes (the padding's zeros too).
///
/// # Shapes
/// - image: `[batch, channels, image[0], image[1]]`
/// - out: `[channels · kernel[0] · kernel[1], batch · positions[0] · positions[1]]`,
///   rows ordered (channel, kernel row, kernel column), columns (item, row, column).
pub fn im2col_into(image: &[f32], g: &Geometry, out: &mut [f32]) {
    assert_eq!(image.len(), g.image_len());
    assert_eq!(out.len(), g.col_rows() * g.col_len());
    let table = Table::of(g);
    let (len, plane, per_image) = (g.col_len(), g.plane(), g.image[0] * g.image[1]);
    out.par_chunks_mut((table.taps.len() * len).max(1))
        .enumerate()
        .for_each(|(c, rows)| {
            let mut padded = Scratch::take(table.len());
            for item in 0..g.batch {
                let src = &image[(item * g.channels + c) * per_image..][..per_image];
                table.fill(g, src, &mut padded);
                // A gather reads sixteen values wherever they are, so all
                // strides take the table.
                for (t, &start) in table.taps.iter().enumerate() {
                    let dst = &mut rows[t * len + item * plane..][..plane];
                    gather(dst, &padded[start..], &table.offsets);
                }
            }
        });
}

/// Adds every column value back onto the image pixel it was gathered
/// from, into `out` (every value of which it writes): the transpose of
/// [`im2col_into`]. Each pixel sums its taps in one fixed order (kernel
/// row, then column), so the result does not depend on the thread count.
///
/// # Shapes
/// - cols: `[channels · kernel[0] · kernel[1], batch · positions[0] · positions[1]]`
/// - out: `[batch, channels, image[0], image[1]]`
pub fn col2im_into(cols: &[f32], g: &Geometry, out: &mut [f32]) {
    assert_eq!(cols.len(), g.col_rows() * g.col_len());
    assert_eq!(out.len(), g.image_len());
    let table = Table::of(g);
    out.par_chunks_mut((g.image[0] * g.image[1]).max(1))
        .enumerate()
        .for_each(|(nc, dst)| {
            let mut padded = Scratch::take(table.len());
            let plane = PlaneSums {
                cols,
                g,
                table: &table,
                item: nc / g.channels,
                channel: nc % g.channels,
                padded: &mut padded,
            };
            vectorised(plane);
            table.crop(g, &padded, dst);
        });
}

/// Offsets into a plane, with their largest value.
struct Offsets {
    values: Vec<u32>,
    max: usize,
}

impl Offsets {
    fn new(values: Vec<u32>) -> Self {
        let max = values.iter().copied().max().unwrap_or(0) as usize;
        Self { values, max }
    }

    /// Whether there is anything to look up in a buffer of `len` values,
    /// after checking that every offset lies inside it.
    fn any_inside(&self, len: usize, what: &str) -> bool {
        if self.values.is_empty() {
            return false;
        }
        assert!(self.max < len, "{what} offset outside the padded plane");
        true
    }
}

/// Whether the processor has AVX-512F (the table's vector loops).
#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// `dst[i] = src[offsets[i]]`.
fn gather(dst: &mut [f32], src: &[f32], offsets: &Offsets) {
    assert_eq!(dst.len(), offsets.values.len());
    if !offsets.any_inside(src.len(), "im2col") {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the processor has AVX-512F, and every offset lies inside `src`
        // (both checked just above).
        return unsafe { vector::gather(dst, src, &offsets.values) };
    }
    gather_portable(dst, src, &offsets.values);
}

/// [`gather`] one value at a time.
fn gather_portable(dst: &mut [f32], src: &[f32], offsets: &[u32]) {
    for (d, &o) in dst.iter_mut().zip(offsets) {
        *d = src[o as usize];
    }
}

/// `dst[offsets[i]] += src[i]`, the offsets all different.
fn scatter_add(dst: &mut [f32], src: &[f32], offsets: &Offsets) {
    assert_eq!(src.len(), offsets.values.len());
    if !offsets.any_inside(dst.len(), "col2im") {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the processor has AVX-512F, and every offset lies inside `dst`
        // (both checked just above); the offsets are all different.
        return unsafe { vector::scatter_add(dst, src, &offsets.values) };
    }
    scatter_add_portable(dst, src, &offsets.values);
}

/// [`scatter_add`] one value at a time.
fn scatter_add_portable(dst: &mut [f32], src: &[f32], offsets: &[u32]) {
    for (&v, &o) in src.iter().zip(offsets) {
        dst[o as usize] += v;
    }
}

#[cfg(target_arch = "x86_64")]
mod vector {
    use std::arch::x86_64::*;

    /// [`super::gather`], sixteen values per instruction.
    ///
    /// # Safety
    /// The processor has AVX-512F; every offset indexes into `src`, and
    /// `dst` and `offsets` have the same length.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gather(dst: &mut [f32], src: &[f32], offsets: &[u32]) {
        let full = dst.len() / 16 * 16;
        for i in (0..full).step_by(16) {
            // SAFETY: i + 16 ≤ len for both slices; the offsets are in range
            // (the caller's promise) and below 2³¹ (so read as i32 correctly).
            unsafe {
                let at = _mm512_loadu_si512(offsets.as_ptr().add(i).cast());
                let v = _mm512_i32gather_ps::<4>(at, src.as_ptr());
                _mm512_storeu_ps(dst.as_mut_ptr().add(i), v);
            }
        }
        super::gather_portable(&mut dst[full..], src, &offsets[full..]);
    }

    /// [`super::scatter_add`], sixteen values per instruction.
    ///
    /// # Safety
    /// The processor has AVX-512F; every offset indexes into `dst` and no
    /// two are equal; `src` and `offsets` have the same length.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scatter_add(dst: &mut [f32], src: &[f32], offsets: &[u32]) {
        let full = src.len() / 16 * 16;
        for i in (0..full).step_by(16) {
            // SAFETY: i + 16 ≤ len for both slices; the offsets are in range,
            // below 2³¹ and all different (the caller's promise), so the
            // sixteen lanes read and write sixteen different values of `dst`.
            unsafe {
                let at = _mm512_loadu_si512(offsets.as_ptr().add(i).cast());
                let sum = _mm512_add_ps(
                    _mm512_i32gather_ps::<4>(at, dst.as_ptr()),
                    _mm512_loadu_ps(src.as_ptr().add(i)),
                );
                _mm512_i32scatter_ps::<4>(dst.as_mut_ptr(), at, sum);
            }
        }
        super::scatter_add_portable(dst, &src[full..], &offsets[full..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Geometries that take every path: strides 1, 2 and 3, dilation,
    /// padding before only / on both sides / more after than before, image
    /// rows and columns that no position reaches, a 1 × 1 kernel.
    fn geometries() -> Vec<Geometry> {
        let cases = [
            // image, kernel, stride, padding before, dilation, padding after
            ([5, 6], [3, 2], [2, 2], [1, 0], [1, 2], [0, 0]),
            ([7, 8], [3, 4], [1, 1], [1, 2], [1, 1], [1, 2]),
            ([7, 8], [3, 4], [2, 2], [1, 2], [1, 1], [1, 2]),
            ([7, 8], [3, 4], [3, 3], [1, 2], [1, 1], [1, 2]),
            ([6, 6], [4, 4], [2, 2], [1, 1], [1, 1], [2, 3]),
            ([8, 7], [1, 1], [3, 2], [0, 0], [1, 1], [0, 0]),
        ];
        cases
            .into_iter()
            .map(|(image, kernel, stride, padding, dilation, after)| {
                let side = |axis: usize| {
                    let span = dilation[axis] * (kernel[axis] - 1) + 1;
                    (image[axis] + padding[axis] + after[axis] - span) / stride[axis] + 1
                };
                Geometry {
                    batch: 2,
                    channels: 3,
                    image,
                    positions: [side(0), side(1)],
                    kernel,
                    stride,
                    padding,
                    dilation,
                }
            })
            .collect()
    }

    fn ramp(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 101) as f32 * scale - 1.0)
            .collect()
    }

    /// For each column entry in order (channel, kernel row, kernel column,
    /// item, row, column): the image index it reads, or `None` in the padding.
    fn sources(g: &Geometry) -> Vec<Option<usize>> {
        let mut out = Vec::new();
        for c in 0..g.channels {
            for ki in 0..g.kernel[0] {
                for kj in 0..g.kernel[1] {
                    for n in 0..g.batch {
                        for oh in 0..g.positions[0] {
                            for ow in 0..g.positions[1] {
                                let at = |p: usize, k: usize, axis: usize| {
                                    let v = (p * g.stride[axis] + k * g.dilation[axis]) as isize
                                        - g.padding[axis] as isize;
                                    (0..g.image[axis] as isize)
                                        .contains(&v)
                                        .then_some(v as usize)
                                };
                                out.push(at(oh, ki, 0).zip(at(ow, kj, 1)).map(|(y, x)| {
                                    ((n * g.channels + c) * g.image[0] + y) * g.image[1] + x
                                }));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Each column entry is the pixel the definition names, or 0 in the
    /// padding, whatever the buffer held before.
    #[test]
    fn im2col_gathers_the_pixels_under_the_kernel() {
        for g in geometries() {
            let x = ramp(g.image_len(), 0.02);
            let mut cols = vec![f32::NAN; g.col_rows() * g.col_len()];
            im2col_into(&x, &g, &mut cols);
            let want: Vec<f32> = sources(&g)
                .into_iter()
                .map(|s| s.map_or(0.0, |i| x[i]))
                .collect();
            assert_eq!(cols, want, "{g:?}");
        }
    }

    /// col2im adds each column entry onto its pixel, taps in order, and
    /// zeros every pixel no tap reaches, whatever the buffer held before.
    #[test]
    fn col2im_adds_each_entry_back_onto_its_pixel() {
        for g in geometries() {
            let c = ramp(g.col_rows() * g.col_len(), 0.03);
            let mut want = vec![0.0f32; g.image_len()];
            // The entries in (channel, tap, item, position) order: per pixel,
            // the taps arrive in (kernel row, kernel column) order.
            for (v, s) in c.iter().zip(sources(&g)) {
                if let Some(i) = s {
                    want[i] += v;
                }
            }
            let mut image = vec![f32::NAN; g.image_len()];
            col2im_into(&c, &g, &mut image);
            assert_eq!(image, want, "{g:?}");
        }
    }

    /// The table's lookups give the same values with and without vector
    /// instructions (lengths past and short of a vector, every offset).
    #[test]
    fn the_tables_vector_and_portable_loops_agree() {
        let src = ramp(300, 0.01);
        for n in [5, 16, 37] {
            let offsets = Offsets::new((0..n).map(|i| (i * 7 % 300) as u32).collect());
            let (mut vector, mut portable) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            gather(&mut vector, &src, &offsets);
            gather_portable(&mut portable, &src, &offsets.values);
            assert_eq!(vector, portable);
            let (mut vector, mut portable) = (src.clone(), src.clone());
            scatter_add(&mut vector, &ramp(n, 0.5), &offsets);
            scatter_add_portable(&mut portable, &ramp(n, 0.5), &offsets.values);
            assert_eq!(vector, portable);
        }
    }
}
