//! MVAE's computer-vision experiment: several image modalities computed
//! from each image of a source dataset, so that a model learns image
//! transformations as cross-modal generation (colourisation from the
//! greyscale, edges to image, completion of a masked copy, watermark
//! removal), plus the source's caption.
//!
//! The source ([`VisionSource`]) is any labelled dataset of one image per
//! item: shapes level 3 by default (coloured, textured shapes, captioned;
//! nothing to download), another shapes level, MNIST, Fashion-MNIST,
//! MultiMNIST, or CelebA (the user's files). Each item holds five images
//! of the source's size and channels:
//!
//! | name | what |
//! |---|---|
//! | `image` | the source image |
//! | `grey` | its luminance (ITU-R BT.601 weights; a grey source's own image), on every channel |
//! | `edges` | the Sobel gradient magnitude of the luminance, on every channel (or of each channel, [`Edges::Colour`]) |
//! | `masked` | the image with a square of 3/8 the side (24×24 of 64×64; or [`Copies::mask_side`]), at a seeded position, filled grey |
//! | `watermark` | the image under a fixed pattern of light diagonal strokes |
//!
//! Every view is a pure function of the source image, the item's index and
//! the [`Copies`] settings.

use crate::celeba::AttrSet;
use crate::dataset::{DatasetKind, ImageLabelSet, View};
use crate::error::{DataError, Result};
use crate::shapes::{Level, Slot};
use serde::{Deserialize, Serialize};

mod mask;
mod peak;

pub use mask::{
    cover, hidden_fraction, mask_corner, mask_side, masked, Cover, Hidden, MaskCover, MASK_GREY,
};
pub use peak::PeakRule;

/// The dataset whose images the views are computed from, and whose
/// classes, captions and attribute slots the items keep: a labelled
/// dataset of one image per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VisionSource {
    Mnist,
    FashionMnist,
    MultiMnist,
    /// A shapes level, rendered in code (level 3: the `vision` dataset).
    Shapes(Level),
    /// CelebA faces with a chosen attribute set, from the official files.
    CelebA(AttrSet),
}

impl VisionSource {
    /// The source as a dataset of its own.
    pub fn kind(self) -> DatasetKind {
        match self {
            VisionSource::Mnist => DatasetKind::Mnist,
            VisionSource::FashionMnist => DatasetKind::FashionMnist,
            VisionSource::MultiMnist => DatasetKind::MultiMnist,
            VisionSource::Shapes(level) => DatasetKind::Shapes(level),
            VisionSource::CelebA(set) => DatasetKind::CelebA(set),
        }
    }

    /// The source a dataset can be: one of one image per item, with labels
    /// (not PolyMNIST, the views themselves or the user's pairs).
    pub fn of(kind: DatasetKind) -> Option<Self> {
        Some(match kind {
            DatasetKind::Mnist => VisionSource::Mnist,
            DatasetKind::FashionMnist => VisionSource::FashionMnist,
            DatasetKind::MultiMnist => VisionSource::MultiMnist,
            DatasetKind::Shapes(level) => VisionSource::Shapes(level),
            DatasetKind::CelebA(set) => VisionSource::CelebA(set),
            DatasetKind::PolyMnist | DatasetKind::Vision(_) | DatasetKind::Pairs => return None,
        })
    }

    /// The name of the views of this source: `vision` on shapes level 3,
    /// else `vision-` and the source's name (`vision-mnist`,
    /// `vision-shapes-l5`, `vision-celeba:Young,Male`).
    pub fn dataset_name(self) -> String {
        match self {
            VisionSource::Shapes(Level::L3) => PREFIX.into(),
            s => format!("{PREFIX}-{}", s.kind().name()),
        }
    }

    /// The source named by a dataset name, where it is one of the views'
    /// (`None` for any other name).
    pub fn parse(name: &str) -> Option<Result<Self>> {
        if name == PREFIX {
            return Some(Ok(VisionSource::Shapes(Level::L3)));
        }
        let source = name.strip_prefix(PREFIX)?.strip_prefix('-')?;
        let kind = match DatasetKind::parse(source) {
            Ok(kind) => kind,
            Err(e) => return Some(Err(DataError::Invalid(format!("`{name}`: {e}")))),
        };
        Some(VisionSource::of(kind).ok_or_else(|| {
            DataError::Invalid(format!(
                "`{name}`: the vision views are computed from a labelled dataset of one image per item, and `{source}` is not one (use mnist, fashion-mnist, multimnist, shapes-l1 … shapes-l5 or celeba)"
            ))
        }))
    }

    /// Whether the source draws on black, so that a pixel that is not
    /// black belongs to the object (see [`MaskCover`]): every source but
    /// CelebA and the shapes levels with a background.
    pub fn on_black(self) -> bool {
        match self {
            VisionSource::Mnist | VisionSource::FashionMnist | VisionSource::MultiMnist => true,
            VisionSource::Shapes(level) => !level.slots().contains(&Slot::Background),
            VisionSource::CelebA(_) => false,
        }
    }
}

/// The name of the views of shapes level 3, and the start of the others'.
const PREFIX: &str = "vision";

/// The images of an item, the source first.
pub const NAMES: [&str; 5] = ["image", "grey", "edges", "masked", "watermark"];

/// What the edge map is the Sobel gradient magnitude of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edges {
    /// The luminance, on every channel (MVAE's edge map): colour is kept
    /// only as edge strength.
    #[default]
    Luminance,
    /// Each channel of its own: an edge takes the colour of what it
    /// bounds. The same as `luminance` on a grey source.
    Colour,
}

impl Edges {
    pub fn is_luminance(&self) -> bool {
        *self == Edges::Luminance
    }
}

impl std::str::FromStr for Edges {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "luminance" => Ok(Edges::Luminance),
            "colour" => Ok(Edges::Colour),
            _ => Err(format!("`{s}`: the edges are of `luminance` or `colour`")),
        }
    }
}

/// How the transformed copies are made: the masked square's size and what
/// the edges are taken of. The default is the experiment as documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Copies {
    /// Side of the masked square in pixels, under the image's side;
    /// absent: 3/8 of the image's ([`mask_side`]).
    pub mask_side: Option<usize>,
    pub edges: Edges,
}

impl Copies {
    /// The masked square's side on images of `side` pixels.
    pub fn mask(&self, side: usize) -> usize {
        self.mask_side.unwrap_or_else(|| mask_side(side))
    }

    /// Refuse a square that is empty or does not leave part of an image of
    /// `side` pixels in view.
    pub fn check(&self, side: usize) -> Result<()> {
        match self.mask_side {
            Some(m) if m == 0 || m >= side => Err(DataError::Invalid(format!(
                "`data.mask_side` = {m}: the masked square must be 1 to {} pixels wide on these {side}-pixel images",
                side - 1
            ))),
            _ => Ok(()),
        }
    }
}

/// Luminance of every pixel of a planar image of `channels` planes of
/// `plane` pixels: BT.601 of RGB, a grey image's own value.
fn luma(img: &[u8], channels: usize, plane: usize) -> Vec<f32> {
    if channels == 1 {
        return img[..plane].iter().map(|&v| f32::from(v)).collect();
    }
    (0..plane)
        .map(|p| {
            0.299 * f32::from(img[p])
                + 0.587 * f32::from(img[plane + p])
                + 0.114 * f32::from(img[2 * plane + p])
        })
        .collect()
}

/// A one-channel image `[plane]` repeated on `channels` planes.
fn repeat(grey: impl Iterator<Item = u8> + Clone, channels: usize, plane: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(channels * plane);
    for _ in 0..channels {
        out.extend(grey.clone());
    }
    out
}

/// The greyscale view of a planar image of `channels` planes.
pub fn grey(img: &[u8], channels: usize, side: usize) -> Vec<u8> {
    grey_of(&luma(img, channels, side * side), channels)
}

/// The greyscale view from the luminance `l`.
fn grey_of(l: &[f32], channels: usize) -> Vec<u8> {
    repeat(l.iter().map(|&v| (v + 0.5) as u8), channels, l.len())
}

/// The edge view: |∇| of the luminance by the 3×3 Sobel operator (borders
/// replicated), divided by 4 and clipped to 255.
pub fn edges(img: &[u8], channels: usize, side: usize) -> Vec<u8> {
    edges_of(&luma(img, channels, side * side), channels, side)
}

/// The colour edge view: |∇| of each channel by the 3×3 Sobel operator, as
/// [`edges`] computes it of the luminance.
pub fn colour_edges(img: &[u8], channels: usize, side: usize) -> Vec<u8> {
    let plane = side * side;
    (0..channels)
        .flat_map(|c| {
            let p: Vec<f32> = img[c * plane..(c + 1) * plane]
                .iter()
                .map(|&v| f32::from(v))
                .collect();
            sobel(&p, side)
        })
        .collect()
}

/// The edge view from the luminance `l` of a `side`×`side` image.
fn edges_of(l: &[f32], channels: usize, side: usize) -> Vec<u8> {
    repeat(sobel(l, side).into_iter(), channels, side * side)
}

/// |∇| of one `side`×`side` plane by the 3×3 Sobel operator (borders
/// replicated), divided by 4 and clipped to 255.
fn sobel(l: &[f32], side: usize) -> Vec<u8> {
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
    g
}

/// Whether pixel `(x, y)` of an image of `side` pixels is under the
/// watermark: strokes along the diagonals `x + y ≡ 0 (mod side / 4)`,
/// `side / 32` pixels wide (at least one; 2 of every 16 on 64×64).
pub fn watermarked(x: usize, y: usize, side: usize) -> bool {
    (x + y) % (side / 4).max(2) < (side / 32).max(1)
}

/// The watermarked view: the pattern blended half-way to white.
pub fn watermark(img: &[u8], channels: usize, side: usize) -> Vec<u8> {
    let plane = side * side;
    let mut out = img.to_vec();
    for p in (0..plane).filter(|&p| watermarked(p % side, p / side, side)) {
        for c in 0..channels {
            let v = &mut out[c * plane + p];
            *v = ((u16::from(*v) + 255) / 2) as u8;
        }
    }
    out
}

/// Add the views computed as `copies` says to a set of one image per item
/// (its `images` become the `image` view).
pub fn add_views(set: &mut ImageLabelSet, copies: Copies) -> Result<()> {
    assert_eq!(set.rows, set.cols, "the vision views need square images");
    let (side, channels) = (set.rows, set.channels);
    copies.check(side)?;
    let mask = copies.mask(side);
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
        let l = luma(img, channels, side * side);
        views[0].images.extend(grey_of(&l, channels));
        views[1].images.extend(match copies.edges {
            Edges::Luminance => edges_of(&l, channels, side),
            Edges::Colour => colour_edges(img, channels, side),
        });
        views[2].images.extend(masked(img, channels, side, mask, i));
        views[3].images.extend(watermark(img, channels, side));
    }
    set.views = views;
    set.copies = Some(copies);
    Ok(())
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
        let g = grey(&half(255, 0, 0), 3, 8);
        // 0.299 · 255 = 76.2.
        assert_eq!(g[5], 76);
        assert_eq!(g[64 + 5], 76);
        assert_eq!(g[128 + 5], 76);
        assert_eq!(g[0], 0);
    }

    #[test]
    fn sobel_edges_mark_the_boundary_only() {
        let e = edges(&half(255, 255, 255), 3, 8);
        // Away from the step the gradient is 0; at the step, Sobel's gx is
        // 4 · 255 (1 + 2 + 1 rows of 255), so |∇| / 4 = 255.
        assert_eq!(e[8 + 1], 0);
        assert_eq!(e[8 + 6], 0);
        assert_eq!(e[8 + 3], 255);
        assert_eq!(e[8 + 4], 255);
    }

    #[test]
    fn colour_edges_keep_each_channel_of_the_step() {
        let img = half(200, 100, 0);
        let c = colour_edges(&img, 3, 8);
        // At the step each channel's |∇| / 4 is its own value, and 0 away
        // from it; luminance edges put 0.299 · 200 + 0.587 · 100 = 118.5
        // on every channel.
        for (ch, want) in [(0, 200), (1, 100), (2, 0)] {
            assert_eq!(c[ch * 64 + 8 + 3], want, "channel {ch}");
            assert_eq!(c[ch * 64 + 8 + 1], 0);
        }
        let l = edges(&img, 3, 8);
        assert!([l[8 + 3], l[64 + 8 + 3], l[128 + 8 + 3]]
            .iter()
            .all(|&v| v == 118));
        assert_eq!("colour".parse::<Edges>(), Ok(Edges::Colour));
        assert_eq!("luminance".parse::<Edges>(), Ok(Edges::Luminance));
        assert!("sobel".parse::<Edges>().unwrap_err().contains("`sobel`"));
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
            assert_eq!(views.view_image(grey_view, i), grey(face, 3, 64));
            let masked_view = views.view_of("masked").unwrap();
            assert_eq!(views.view_image(masked_view, i), masked(face, 3, 64, 24, i));
        }
        assert_eq!(views.copies, Some(Copies::default()));
        // Copies made otherwise: a smaller square, edges of each channel.
        let copies = Copies {
            mask_side: Some(12),
            edges: Edges::Colour,
        };
        let other = ImageLabelSet::open_with(kind, Some(d.path()), Split::Test, 1, copies).unwrap();
        assert_eq!(other.copies, Some(copies));
        let (edges_view, masked_view) = (
            other.view_of("edges").unwrap(),
            other.view_of("masked").unwrap(),
        );
        for i in 0..other.len() {
            let face = faces.image(i);
            assert_eq!(other.view_image(edges_view, i), colour_edges(face, 3, 64));
            assert_eq!(other.view_image(masked_view, i), masked(face, 3, 64, 12, i));
            assert_ne!(
                other.view_image(masked_view, i),
                views.view_image(masked_view, i)
            );
        }
        for side in [0, 64] {
            let too = Copies {
                mask_side: Some(side),
                ..copies
            };
            let e = ImageLabelSet::open_with(kind, Some(d.path()), Split::Test, 1, too)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("`data.mask_side` = ") && e.contains("1 to 63"),
                "{e}"
            );
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
        let side = 64;
        let img = vec![100u8; 3 * side * side];
        let w = watermark(&img, 3, side);
        assert_eq!(w[0], 177, "(0, 0) is on a stroke: (100 + 255) / 2");
        assert_eq!(w[1], 177, "(1, 0) is on the same 2-px stroke");
        assert_eq!(w[2], 100, "(2, 0) is not");
        assert_eq!(w[15], 100, "(15, 0) is not");
        assert_eq!(w[16], 177, "(16, 0): every 16 px on 64×64");
        assert_eq!(w[side + 15], 177, "(15, 1): 15 + 1 ≡ 0 (mod 16)");
        assert_eq!(w[2 * side * side], 177, "every channel");
        // On 28×28: 1-px strokes every 7 px.
        let w = watermark(&[100u8; 28 * 28], 1, 28);
        let on: Vec<usize> = (0..28).filter(|&x| w[x] == 177).collect();
        assert_eq!(on, [0, 7, 14, 21]);
    }

    /// A grey source's views stay on one channel: the grey copy is the
    /// image, and the square scales with the side.
    #[test]
    fn the_views_of_a_grey_image_keep_its_channel_and_scale_the_square() {
        let side = 28;
        let img: Vec<u8> = (0..side * side).map(|p| (p % 251) as u8).collect();
        assert_eq!(grey(&img, 1, side), img);
        assert_eq!(edges(&img, 1, side).len(), side * side);
        assert_eq!(mask_side(side), 10);
        assert_eq!(colour_edges(&img, 1, side), edges(&img, 1, side));
        let m = masked(&img, 1, side, 10, 5);
        let (x0, y0) = mask_corner(5, side, 10);
        assert!(x0 + 10 <= side && y0 + 10 <= side);
        for y in 0..side {
            for x in 0..side {
                let inside = (x0..x0 + 10).contains(&x) && (y0..y0 + 10).contains(&y);
                let want = if inside { MASK_GREY } else { img[y * side + x] };
                assert_eq!(m[y * side + x], want, "({x}, {y})");
            }
        }
    }
}
