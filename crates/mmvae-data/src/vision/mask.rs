//! The masked copy: a square (by default 3/8 the side) at a seeded
//! position, filled grey, and how much of an object drawn on black it hides.

use crate::captions::splitmix64;
use crate::dataset::{DatasetKind, ImageLabelSet};

/// Grey level of the masked square.
pub const MASK_GREY: u8 = 128;
const SEED: u64 = 0x5649_5349_4F4E;

/// The default side of the masked square of an image of `side` pixels: 3/8
/// of it (24 of 64, 10 of 28).
pub fn mask_side(side: usize) -> usize {
    side * 3 / 8
}

/// Top-left corner of item `i`'s masked square of `mask` pixels.
pub fn mask_corner(i: usize, side: usize, mask: usize) -> (usize, usize) {
    let h = splitmix64(SEED ^ i as u64);
    let span = (side - mask + 1) as u64;
    ((h % span) as usize, ((h >> 32) % span) as usize)
}

/// The masked view of item `i`, its square `mask` pixels wide.
pub fn masked(img: &[u8], channels: usize, side: usize, mask: usize, i: usize) -> Vec<u8> {
    let (x0, y0) = mask_corner(i, side, mask);
    let mut out = img.to_vec();
    let plane = side * side;
    for c in 0..channels {
        for y in y0..y0 + mask {
            out[c * plane + y * side + x0..c * plane + y * side + x0 + mask].fill(MASK_GREY);
        }
    }
    out
}

/// How much of the objects the masked square hides over a set of items
/// drawn on black: how many items have none, at least half, at least three
/// quarters and all of the object's pixels (the source image's non-black
/// ones) under the square. Completion cannot restore what no other copy
/// shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaskCover {
    /// Items with an object (at least one non-black pixel).
    pub items: usize,
    pub none: usize,
    pub half: usize,
    pub three_quarters: usize,
    pub all: usize,
}

impl MaskCover {
    /// Count the items of `set`, whose `images` are the vision sources
    /// (none for a set without the computed copies).
    pub fn of(set: &ImageLabelSet) -> Self {
        let mut c = Self::default();
        let Some(copies) = set.copies else {
            return c;
        };
        let mask = copies.mask(set.rows);
        for i in 0..set.len() {
            let Some(f) = hidden_fraction(set.image(i), set.channels, set.rows, mask, i) else {
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

/// The fraction of item `i`'s object pixels (non-black in any channel of
/// the planar `img`) that its masked square of `mask` pixels covers; `None`
/// for an image without any.
pub fn hidden_fraction(
    img: &[u8],
    channels: usize,
    side: usize,
    mask: usize,
    i: usize,
) -> Option<f64> {
    cover(img, channels, side, mask, i).map(|c| c.hidden)
}

/// What item `i`'s masked square does to its object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cover {
    /// The fraction of the object's pixels under the square.
    pub hidden: f64,
    /// Whether an object pixel lies in the one-pixel ring around the
    /// square: seen in the copy, the object may go on under it.
    pub at_edge: bool,
}

/// The [`Cover`] of item `i`'s object (non-black in any channel of the
/// planar `img`) by its square of `mask` pixels; `None` for an image
/// without one.
pub fn cover(img: &[u8], channels: usize, side: usize, mask: usize, i: usize) -> Option<Cover> {
    let plane = side * side;
    let (x0, y0) = mask_corner(i, side, mask);
    let inside = |v: usize, v0: usize| (v0..v0 + mask).contains(&v);
    let ring = |v: usize, v0: usize| v + 1 >= v0 && v <= v0 + mask;
    let (mut shape, mut hidden, mut at_edge) = (0usize, 0usize, false);
    for p in 0..plane {
        if (0..channels).all(|c| img[c * plane + p] == 0) {
            continue;
        }
        shape += 1;
        let (x, y) = (p % side, p / side);
        let under = inside(x, x0) && inside(y, y0);
        hidden += usize::from(under);
        at_edge |= !under && ring(x, x0) && ring(y, y0);
    }
    (shape > 0).then(|| Cover {
        hidden: hidden as f64 / shape as f64,
        at_edge,
    })
}

/// How much of an item's object its masked square hides, in five disjoint
/// bands: completion can restore a shape the square leaves in view, and
/// not one it hides entirely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hidden {
    /// None of the object's pixels, and none touches the square.
    Apart,
    /// None, but the object reaches the square's edge: the copy alone
    /// does not say that it stops there.
    AtEdge,
    /// Some, under half.
    UnderHalf,
    /// Half or more, not all.
    HalfOrMore,
    /// Every one.
    All,
}

impl Hidden {
    pub const ALL: [Hidden; 5] = [
        Hidden::Apart,
        Hidden::AtEdge,
        Hidden::UnderHalf,
        Hidden::HalfOrMore,
        Hidden::All,
    ];

    /// The band of a cover.
    pub fn of(c: Cover) -> Self {
        let fraction = c.hidden;
        if fraction <= 0.0 {
            if c.at_edge {
                Hidden::AtEdge
            } else {
                Hidden::Apart
            }
        } else if fraction < 0.5 {
            Hidden::UnderHalf
        } else if fraction < 1.0 {
            Hidden::HalfOrMore
        } else {
            Hidden::All
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hidden::Apart => "none, apart",
            Hidden::AtEdge => "none, at edge",
            Hidden::UnderHalf => "under half",
            Hidden::HalfOrMore => "half or more",
            Hidden::All => "all",
        }
    }

    /// Each item's band, where `set` is a vision set whose source draws on
    /// black (`None` for any other set; `None` for an item without an
    /// object).
    pub fn of_items(set: &ImageLabelSet) -> Option<Vec<Option<Hidden>>> {
        let copies = set.copies?;
        match set.kind {
            DatasetKind::Vision(source) if source.on_black() => {
                let (side, mask) = (set.rows, copies.mask(set.rows));
                Some(
                    (0..set.len())
                        .map(|i| cover(set.image(i), set.channels, side, mask, i).map(Hidden::of))
                        .collect(),
                )
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::Level;
    use crate::vision::VisionSource;

    #[test]
    fn the_mask_is_a_seeded_square_inside_the_image() {
        let side = 64;
        let img = vec![7u8; 3 * side * side];
        for mask in [24, 12] {
            for i in 0..50 {
                let (x0, y0) = mask_corner(i, side, mask);
                assert!(x0 + mask <= side && y0 + mask <= side);
                let m = masked(&img, 3, side, mask, i);
                let grey = m.iter().filter(|&&v| v == MASK_GREY).count();
                assert_eq!(grey, 3 * mask * mask);
                assert_eq!(mask_corner(i, side, mask), (x0, y0));
            }
            assert_ne!(mask_corner(0, side, mask), mask_corner(1, side, mask));
        }
    }

    #[test]
    fn hidden_fraction_counts_the_shape_pixels_under_the_square() {
        let side = 64;
        let mask = mask_side(side);
        let (x0, y0) = mask_corner(3, side, mask);
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
        assert_eq!(hidden_fraction(&block(x0, y0), 3, side, mask, 3), Some(1.0));
        // Straddling the square's left edge: two of its four columns inside.
        let straddle = block(x0.max(2) - 2, y0);
        let want = if x0 >= 2 { 0.5 } else { 1.0 };
        assert_eq!(hidden_fraction(&straddle, 3, side, mask, 3), Some(want));
        // Beside the square, in view: touching its edge or one pixel off.
        // (The block's near column at distance 1 or 2 from the square.)
        let beside = |gap: usize| {
            let (x, y) = if x0 + mask_side(side) + gap + 4 <= side {
                (x0 + mask_side(side) + gap - 1, y0)
            } else {
                (x0 - gap - 3, y0)
            };
            cover(&block(x, y), 3, side, mask, 3).unwrap()
        };
        let touching = Cover {
            hidden: 0.0,
            at_edge: true,
        };
        assert_eq!(beside(1), touching);
        assert_eq!(
            beside(2),
            Cover {
                at_edge: false,
                ..touching
            }
        );
        // Black everywhere: no shape to hide.
        assert_eq!(
            hidden_fraction(&vec![0u8; 3 * side * side], 3, side, mask, 3),
            None
        );
        // Over a set: one item hidden entirely, one not at all.
        let far = |x: usize| if x >= 32 { 0 } else { 60 };
        let (xa, ya) = mask_corner(0, side, mask);
        let (xb, yb) = mask_corner(1, side, mask);
        let mut images = block(xa, ya);
        images.extend(block(far(xb), far(yb)));
        let set = ImageLabelSet::new(
            crate::DatasetKind::Vision(VisionSource::Shapes(Level::L3)),
            3,
            (side, side),
            images,
            vec![0, 0],
        );
        // A set without the computed copies has no square to count.
        assert_eq!(MaskCover::of(&set), MaskCover::default());
        assert_eq!(Hidden::of_items(&set), None);
        let mut set = set;
        set.copies = Some(crate::vision::Copies::default());
        let c = MaskCover::of(&set);
        let away = hidden_fraction(set.image(1), 3, side, mask, 1);
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
        // The same two items by band; a set of another dataset has none.
        assert_eq!(
            Hidden::of_items(&set),
            Some(vec![Some(Hidden::All), Some(Hidden::Apart)])
        );
        let mut plain = set.clone();
        plain.kind = DatasetKind::Shapes(Level::L3);
        assert_eq!(Hidden::of_items(&plain), None);
    }

    #[test]
    fn the_bands_split_the_hidden_fraction_and_what_touches_the_square() {
        let band = |hidden: f64, at_edge: bool| Hidden::of(Cover { hidden, at_edge });
        let bands: Vec<Hidden> = [0.0, 0.01, 0.49, 0.5, 0.99, 1.0]
            .into_iter()
            .map(|f| band(f, false))
            .collect();
        use Hidden::*;
        assert_eq!(
            bands,
            [Apart, UnderHalf, UnderHalf, HalfOrMore, HalfOrMore, All]
        );
        // The edge splits only what hides nothing.
        assert_eq!(band(0.0, true), AtEdge);
        assert_eq!(band(0.3, true), UnderHalf);
        let names: Vec<&str> = Hidden::ALL.iter().map(|h| h.name()).collect();
        assert_eq!(
            names,
            [
                "none, apart",
                "none, at edge",
                "under half",
                "half or more",
                "all"
            ]
        );
    }
}
