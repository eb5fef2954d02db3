//! MVAE's computer-vision experiment: several image modalities computed
//! from each image of a source dataset, so that a model learns image
//! transformations as cross-modal generation (colourisation from the
//! greyscale, edges to image, completion of a masked copy, watermark
//! removal), plus the source's caption.
//!
//! The source ([`VisionSource`]) is shapes level 3 (coloured, textured
//! shapes, captioned; nothing to download) or CelebA (faces captioned by
//! their attributes; the user's files). Each item holds five images, all
//! 64×64 RGB (the one-channel ones repeated on three channels):
//!
//! | name | what |
//! |---|---|
//! | `image` | the source image |
//! | `grey` | its luminance (ITU-R BT.601 weights) |
//! | `edges` | the Sobel gradient magnitude of the luminance |
//! | `masked` | the image with a 24×24 square, at a seeded position, filled grey |
//! | `watermark` | the image under a fixed pattern of light diagonal strokes |
//!
//! Every view is a pure function of the source image and the item's index.

use crate::captions::splitmix64;
use crate::celeba::AttrSet;
use crate::dataset::{DatasetKind, ImageLabelSet, View};
use crate::error::Result;
use crate::shapes::Level;

/// The dataset whose images the views are computed from, and whose
/// classes, captions and attribute slots the items keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VisionSource {
    /// Shapes level 3: coloured, textured shapes on black, rendered in code.
    Shapes,
    /// CelebA faces with a chosen attribute set, from the official files.
    CelebA(AttrSet),
}

impl VisionSource {
    /// The source as a dataset of its own.
    pub fn kind(self) -> DatasetKind {
        match self {
            VisionSource::Shapes => DatasetKind::Shapes(Level::L3),
            VisionSource::CelebA(set) => DatasetKind::CelebA(set),
        }
    }

    /// The name of the views of this source: `vision` on shapes,
    /// `vision-` and the CelebA set's name otherwise (`vision-celeba`,
    /// `vision-celeba19`, `vision-celeba:Young,Male`).
    pub fn dataset_name(self) -> String {
        match self {
            VisionSource::Shapes => PREFIX.into(),
            VisionSource::CelebA(set) => format!("{PREFIX}-{}", set.dataset_name()),
        }
    }

    /// The source named by a dataset name, where it is one of the views'
    /// (`None` for any other name).
    pub fn parse(name: &str) -> Option<Result<Self>> {
        if name == PREFIX {
            return Some(Ok(VisionSource::Shapes));
        }
        let source = name.strip_prefix(PREFIX)?.strip_prefix('-')?;
        AttrSet::from_dataset_name(source).map(|set| set.map(VisionSource::CelebA))
    }
}

/// The name of the views of shapes level 3, and the start of the others'.
const PREFIX: &str = "vision";

/// The images of an item, the source first.
pub const NAMES: [&str; 5] = ["image", "grey", "edges", "masked", "watermark"];
/// Side of the masked square, in pixels.
pub const MASK: usize = 24;
/// Grey level of the masked square.
const MASK_GREY: u8 = 128;
const SEED: u64 = 0x5649_5349_4F4E;

/// Luminance of every pixel of a planar RGB image of `plane` pixels.
fn luma(img: &[u8], plane: usize) -> Vec<f32> {
    (0..plane)
        .map(|p| {
            0.299 * f32::from(img[p])
                + 0.587 * f32::from(img[plane + p])
                + 0.114 * f32::from(img[2 * plane + p])
        })
        .collect()
}

/// A one-channel image `[plane]` repeated on three planes.
fn three(grey: impl Iterator<Item = u8> + Clone, plane: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 * plane);
    for _ in 0..3 {
        out.extend(grey.clone());
    }
    out
}

/// The greyscale view.
pub fn grey(img: &[u8], side: usize) -> Vec<u8> {
    let l = luma(img, side * side);
    three(l.iter().map(|&v| (v + 0.5) as u8), side * side)
}

/// The edge view: |∇| of the luminance by the 3×3 Sobel operator (borders
/// replicated), divided by 4 and clipped to 255.
pub fn edges(img: &[u8], side: usize) -> Vec<u8> {
    let l = luma(img, side * side);
    let at = |x: isize, y: isize| {
        let c = |v: isize| v.clamp(0, side as isize - 1) as usize;
        l[c(y) * side + c(x)]
    };
    let mut g = Vec::with_capacity(side * side);
    for y in 0..side as isize {
        for x in 0..side as isize {
            let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x - 1, y)
                - at(x - 1, y + 1);
            let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x, y - 1)
                - at(x + 1, y - 1);
            g.push(((gx * gx + gy * gy).sqrt() / 4.0).min(255.0) as u8);
        }
    }
    three(g.into_iter(), side * side)
}

/// Top-left corner of item `i`'s masked square.
pub fn mask_corner(i: usize, side: usize) -> (usize, usize) {
    let h = splitmix64(SEED ^ i as u64);
    let span = (side - MASK + 1) as u64;
    ((h % span) as usize, ((h >> 32) % span) as usize)
}

/// The masked view of item `i`.
pub fn masked(img: &[u8], side: usize, i: usize) -> Vec<u8> {
    let (x0, y0) = mask_corner(i, side);
    let mut out = img.to_vec();
    let plane = side * side;
    for c in 0..3 {
        for y in y0..y0 + MASK {
            out[c * plane + y * side + x0..c * plane + y * side + x0 + MASK].fill(MASK_GREY);
        }
    }
    out
}

/// Whether pixel `(x, y)` is under the watermark: 2-px strokes along the
/// diagonals `x + y ≡ 0 (mod 16)`.
pub fn watermarked(x: usize, y: usize) -> bool {
    (x + y) % 16 < 2
}

/// The watermarked view: the pattern blended half-way to white.
pub fn watermark(img: &[u8], side: usize) -> Vec<u8> {
    let plane = side * side;
    let mut out = img.to_vec();
    for c in 0..3 {
        for p in 0..plane {
            if watermarked(p % side, p / side) {
                let v = &mut out[c * plane + p];
                *v = ((u16::from(*v) + 255) / 2) as u8;
            }
        }
    }
    out
}

/// Add the computed views to a set of RGB images (its `images` become the
/// `image` view).
pub fn add_views(set: &mut ImageLabelSet) {
    assert_eq!(set.channels, 3, "the vision views need RGB images");
    let side = set.rows;
    let n = set.len();
    let mut views: Vec<View> = NAMES[1..]
        .iter()
        .map(|name| View {
            name: name.to_string(),
            images: Vec::with_capacity(set.images.len()),
        })
        .collect();
    for i in 0..n {
        let img = set.image(i);
        views[0].images.extend(grey(img, side));
        views[1].images.extend(edges(img, side));
        views[2].images.extend(masked(img, side, i));
        views[3].images.extend(watermark(img, side));
    }
    set.views = views;
}

/// How much of the shapes the masked square hides over a set of items:
/// how many items have none, at least half, at least three quarters and
/// all of the shape's pixels (the source image's non-black ones) under the
/// square. Completion cannot restore what no other copy shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaskCover {
    /// Items with a shape (at least one non-black pixel).
    pub items: usize,
    pub none: usize,
    pub half: usize,
    pub three_quarters: usize,
    pub all: usize,
}

impl MaskCover {
    /// Count the items of `set`, whose `images` are the vision sources.
    pub fn of(set: &ImageLabelSet) -> Self {
        let mut c = Self::default();
        for i in 0..set.len() {
            let Some(f) = hidden_fraction(set.image(i), set.rows, i) else {
                continue;
            };
            c.items += 1;
            c.none += usize::from(f == 0.0);
            c.half += usize::from(f >= 0.5);
            c.three_quarters += usize::from(f >= 0.75);
            c.all += usize::from(f == 1.0);
        }
        c
    }
}

/// The fraction of item `i`'s shape pixels (non-black in any channel of the
/// planar RGB `img`) that its masked square covers; `None` for an image
/// without any.
pub fn hidden_fraction(img: &[u8], side: usize, i: usize) -> Option<f64> {
    let plane = side * side;
    let (x0, y0) = mask_corner(i, side);
    let (mut shape, mut hidden) = (0usize, 0usize);
    for p in 0..plane {
        if (0..3).all(|c| img[c * plane + p] == 0) {
            continue;
        }
        shape += 1;
        let (x, y) = (p % side, p / side);
        hidden += usize::from((x0..x0 + MASK).contains(&x) && (y0..y0 + MASK).contains(&y));
    }
    (shape > 0).then(|| hidden as f64 / shape as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 8×8 RGB image: left half black, right half the colour `(r, g, b)`.
    fn half(r: u8, g: u8, b: u8) -> Vec<u8> {
        let side = 8;
        let mut v = vec![0u8; 3 * side * side];
        for (c, val) in [r, g, b].into_iter().enumerate() {
            for y in 0..side {
                for x in side / 2..side {
                    v[c * side * side + y * side + x] = val;
                }
            }
        }
        v
    }

    #[test]
    fn grey_is_the_luminance_on_three_channels() {
        let g = grey(&half(255, 0, 0), 8);
        // 0.299 · 255 = 76.2.
        assert_eq!(g[5], 76);
        assert_eq!(g[64 + 5], 76);
        assert_eq!(g[128 + 5], 76);
        assert_eq!(g[0], 0);
    }

    #[test]
    fn sobel_edges_mark_the_boundary_only() {
        let e = edges(&half(255, 255, 255), 8);
        // Away from the step the gradient is 0; at the step, Sobel's gx is
        // 4 · 255 (1 + 2 + 1 rows of 255), so |∇| / 4 = 255.
        assert_eq!(e[8 + 1], 0);
        assert_eq!(e[8 + 6], 0);
        assert_eq!(e[8 + 3], 255);
        assert_eq!(e[8 + 4], 255);
    }

    #[test]
    fn the_mask_is_a_seeded_square_inside_the_image() {
        let side = 64;
        let img = vec![7u8; 3 * side * side];
        for i in 0..50 {
            let (x0, y0) = mask_corner(i, side);
            assert!(x0 + MASK <= side && y0 + MASK <= side);
            let m = masked(&img, side, i);
            let grey = m.iter().filter(|&&v| v == MASK_GREY).count();
            assert_eq!(grey, 3 * MASK * MASK);
            assert_eq!(mask_corner(i, side), (x0, y0));
        }
        assert_ne!(mask_corner(0, side), mask_corner(1, side));
    }

    #[test]
    fn hidden_fraction_counts_the_shape_pixels_under_the_square() {
        let side = 64;
        let (x0, y0) = mask_corner(3, side);
        // A 4×4 block of colour at (x, y), on black.
        let block = |x: usize, y: usize| {
            let mut img = vec![0u8; 3 * side * side];
            for yy in y..y + 4 {
                for xx in x..x + 4 {
                    img[2 * side * side + yy * side + xx] = 9;
                }
            }
            img
        };
        assert_eq!(hidden_fraction(&block(x0, y0), side, 3), Some(1.0));
        // Straddling the square's left edge: two of its four columns inside.
        let straddle = block(x0.max(2) - 2, y0);
        let want = if x0 >= 2 { 0.5 } else { 1.0 };
        assert_eq!(hidden_fraction(&straddle, side, 3), Some(want));
        // Black everywhere: no shape to hide.
        assert_eq!(hidden_fraction(&vec![0u8; 3 * side * side], side, 3), None);
        // Over a set: one item hidden entirely, one not at all.
        let far = |x: usize| if x >= 32 { 0 } else { 60 };
        let (xa, ya) = mask_corner(0, side);
        let (xb, yb) = mask_corner(1, side);
        let mut images = block(xa, ya);
        images.extend(block(far(xb), far(yb)));
        let set = ImageLabelSet::new(
            crate::DatasetKind::Vision(VisionSource::Shapes),
            3,
            (side, side),
            images,
            vec![0, 0],
        );
        let c = MaskCover::of(&set);
        let away = hidden_fraction(set.image(1), side, 1);
        assert_eq!(away, Some(0.0), "mask of item 1 at ({xb}, {yb})");
        assert_eq!(
            c,
            MaskCover {
                items: 2,
                none: 1,
                half: 1,
                three_quarters: 1,
                all: 1
            }
        );
    }

    #[test]
    fn the_views_of_celeba_keep_its_faces_labels_and_captions() {
        use crate::dataset::Split;
        let d = tempfile::tempdir().unwrap();
        crate::celeba::write_fixture(&d.path().join("celeba"), 9, 178, 218).unwrap();
        let set = AttrSet::parse("Smiling,Male").unwrap();
        let kind = DatasetKind::parse("vision-celeba:Male,Smiling").unwrap();
        assert_eq!(kind, DatasetKind::Vision(VisionSource::CelebA(set)));
        let faces =
            ImageLabelSet::open(DatasetKind::CelebA(set), Some(d.path()), Split::Test, 1).unwrap();
        let views = ImageLabelSet::open(kind, Some(d.path()), Split::Test, 1).unwrap();
        assert_eq!(views.kind, kind);
        assert_eq!(views.image_names(), NAMES);
        assert_eq!(
            (views.len(), views.labels.clone()),
            (3, faces.labels.clone())
        );
        for i in 0..views.len() {
            let face = faces.image(i);
            assert_eq!(views.image(i), face);
            let grey_view = views.view_of("grey").unwrap();
            assert_eq!(views.view_image(grey_view, i), grey(face, 64));
            let masked_view = views.view_of("masked").unwrap();
            assert_eq!(views.view_image(masked_view, i), masked(face, 64, i));
        }
        // The items speak of the faces' attributes.
        assert_eq!(kind.slots(), DatasetKind::CelebA(set).slots());
        let c = crate::Captioner::new(kind, 0);
        let label = views.labels[0] as usize;
        assert_eq!(c.reference(label), Some(set.caption(label)));
        assert_eq!(c.class_of(&set.caption(label)), Some(label));
        // Not the shapes benchmark: the user's files, found where CelebA's are.
        assert!(!kind.is_synthetic());
        let e = ImageLabelSet::open(kind, Some(&d.path().join("none")), Split::Test, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mmlab.ie.cuhk.edu.hk"), "{e}");
    }

    #[test]
    fn the_watermark_lightens_its_strokes_only() {
        let side = 16;
        let img = vec![100u8; 3 * side * side];
        let w = watermark(&img, side);
        assert_eq!(w[0], 177, "(0, 0) is on a stroke: (100 + 255) / 2");
        assert_eq!(w[5], 100, "(5, 0) is not");
        assert_eq!(w[1], 177, "(1, 0) is on the same stroke");
        assert_eq!(w[15], 100, "(15, 0) is not");
        assert_eq!(w[16 + 15], 177, "(15, 1): 15 + 1 ≡ 0 (mod 16)");
        assert_eq!(w[2 * 256], 177, "every channel");
    }
}
