//! A CdSprites+-style synthetic benchmark: coloured, textured shapes with
//! captions of five levels of difficulty, rendered on the fly.
//!
//! Every image is `64×64` RGB and is described by a caption made of slot
//! values (words in this order, no punctuation):
//!
//! | level | caption | classes |
//! |-------|---------|---------|
//! | 1 | `{shape}`: big white shape on black | 3 |
//! | 2 | `{size} {shape}`: white on black | 6 |
//! | 3 | `{size} {colour} {shape}`: textured shape on black | 30 |
//! | 4 | level 3 + `at {top\|bottom} {left\|right}` | 120 |
//! | 5 | level 4 + `on {light\|dark}` textured background | 240 |
//!
//! e.g. `small red heart at top left`, `big blue square at bottom right on
//! dark`. Shapes are a square, a 2:1 ellipse and a heart, drawn anti-aliased
//! at one of 40 rotations over a full turn. `big` shapes are about a third of
//! the image wide (21 px), `small` ones half that. On levels 1–3 the shape's
//! centre is uniform in `[20, 44]²` px and is not named; on levels 4–5 it is
//! the centre of the named quadrant (16 or 48 px) plus a uniform jitter of
//! ±4 px, moved inwards where needed so that the shape stays inside the image.
//!
//! From level 3 on the shape is filled with a procedural grey texture (value
//! noise, stripes, checks or soft blobs) that multiplies its colour by a factor
//! in `[0.55, 1]`, so the colour stays identifiable. On level 5 the background
//! is a second, independent texture with grey levels in `[170, 230]` (`light`)
//! or `[25, 85]` (`dark`); below level 5 it is black.
//!
//! # Indices and splits
//!
//! Each level has [`PER_LEVEL`] = 30,000 samples, indices `0..30_000`. Sample
//! `i` has class `i % num_classes`, so every class has the same number of
//! samples, `per_class = 30_000 / num_classes`. Copy `k = i / num_classes` of
//! a class is in the test split iff `k < ceil(per_class / 10)`; the test split
//! is therefore the first `num_classes * ceil(per_class / 10)` indices:
//! 3,000 test / 27,000 train on levels 1–4, and on level 5 (`per_class` = 125,
//! 13 test copies per class) 3,120 test / 26,880 train.
//!
//! # Determinism
//!
//! All random choices of a sample (rotation, position, jitter, texture kinds
//! and parameters) are SplitMix64 hashes of `(seed, level, i)` only, so any
//! image can be rendered on its own, and the bytes do not depend on the order
//! or the number of threads. Trigonometry uses polynomials rather than the
//! platform's `libm`, so the bytes are the same on every platform.

use crate::captions::splitmix64;
use crate::texture::{sin_cos, Rng, Texture};

mod level;

pub use level::{Level, Slot};

/// Images are `SIDE×SIDE` pixels.
pub const SIDE: usize = 64;
/// RGB.
pub const CHANNELS: usize = 3;
/// Number of samples per level (indices `0..PER_LEVEL`).
pub const PER_LEVEL: usize = 30_000;

const PLANE: usize = SIDE * SIDE;
const IMAGE_LEN: usize = CHANNELS * PLANE;
const ROTATIONS: usize = 40;
/// Bounding extent of a `big` shape, in pixels.
const EXTENT: f32 = 21.0;

/// RGB of the five colours of levels 3–5, in [`Slot::Colour`] value order.
const COLOURS: [[f32; 3]; 5] = [
    [192.0, 64.0, 0.0],
    [10.0, 107.0, 60.0],
    [228.0, 217.0, 111.0],
    [0.0, 127.0, 200.0],
    [255.0, 0.0, 255.0],
];

/// Render sample `i` of `level` with `seed`.
///
/// # Shapes
/// Returns planar CHW RGB bytes `[3 * 64 * 64]` (all R, then G, then B) and
/// the sample's class, [`Level::class_of_index`]`(i)`.
///
/// # Panics
/// If `i >= PER_LEVEL`.
pub fn render(level: Level, seed: u64, i: usize) -> (Vec<u8>, usize) {
    let mut out = vec![0; IMAGE_LEN];
    let class = render_into(level, seed, i, &mut out);
    (out, class)
}

/// Render the samples `indices` of `level`, split across `threads` threads
/// (0 is taken as 1), in the order of `indices`. The bytes do not depend on
/// `threads`.
///
/// # Shapes
/// Returns images `[n * 3 * 64 * 64]` (planar CHW per image) and classes `[n]`,
/// `n = indices.len()`.
///
/// # Panics
/// If an index is `>= PER_LEVEL`.
pub fn render_many(
    level: Level,
    seed: u64,
    indices: &[usize],
    threads: usize,
) -> (Vec<u8>, Vec<usize>) {
    let n = indices.len();
    let mut images = vec![0; n * IMAGE_LEN];
    let mut classes = vec![0; n];
    let per = n.div_ceil(threads.max(1)).max(1);
    let render_chunk = |idx: &[usize], img: &mut [u8], cls: &mut [usize]| {
        for ((&i, out), c) in idx.iter().zip(img.chunks_mut(IMAGE_LEN)).zip(cls) {
            *c = render_into(level, seed, i, out);
        }
    };
    if per >= n {
        render_chunk(indices, &mut images, &mut classes);
    } else {
        std::thread::scope(|s| {
            for ((idx, img), cls) in indices
                .chunks(per)
                .zip(images.chunks_mut(per * IMAGE_LEN))
                .zip(classes.chunks_mut(per))
            {
                s.spawn(move || render_chunk(idx, img, cls));
            }
        });
    }
    (images, classes)
}

/// Geometry of a shape, in pixels, in its own frame centred on its bounding
/// box (x right, y down; the heart points down).
#[derive(Clone, Copy)]
enum Geometry {
    Square {
        half: f32,
    },
    Ellipse {
        a: f32,
        b: f32,
    },
    /// A 45°-rotated square of side `s` with two discs of radius `s / 2` on its
    /// upper edges, shifted down by `shift` to centre the bounding box.
    Heart {
        s: f32,
        shift: f32,
    },
}

const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;

impl Geometry {
    fn new(shape: usize, scale: f32) -> Geometry {
        let e = EXTENT * scale;
        match shape {
            0 => Geometry::Square { half: 0.42 * e },
            1 => Geometry::Ellipse {
                a: 0.55 * e,
                b: 0.275 * e,
            },
            _ => {
                // Width (1/2 + 1/(2√2))·2s, height from -s/√2 to s/2 + s/(2√2).
                let s = e / (1.0 + SQRT_HALF);
                Geometry::Heart {
                    s,
                    shift: 0.5 * (0.5 + 0.5 * SQRT_HALF - SQRT_HALF) * s,
                }
            }
        }
    }

    /// Half width and half height of the unrotated bounding box.
    fn half_extents(self) -> (f32, f32) {
        match self {
            Geometry::Square { half } => (half, half),
            Geometry::Ellipse { a, b } => (a, b),
            Geometry::Heart { s, .. } => {
                let w = (0.5 + 0.5 * SQRT_HALF) * s;
                (w, 0.5 * (w + SQRT_HALF * s))
            }
        }
    }

    /// Area in px² (for tests).
    #[cfg(test)]
    fn area(self) -> f32 {
        match self {
            Geometry::Square { half } => 4.0 * half * half,
            Geometry::Ellipse { a, b } => std::f32::consts::PI * a * b,
            Geometry::Heart { s, .. } => s * s * (1.0 + std::f32::consts::FRAC_PI_4),
        }
    }

    /// Signed distance in pixels (negative inside): exact for the square,
    /// exact outside and close inside for the heart, a first-order
    /// approximation for the ellipse.
    #[inline]
    fn distance(self, x: f32, y: f32) -> f32 {
        match self {
            Geometry::Square { half } => box_distance(x, y, half),
            Geometry::Ellipse { a, b } => {
                let k0 = ((x / a) * (x / a) + (y / b) * (y / b)).sqrt();
                let k1 = ((x / (a * a)) * (x / (a * a)) + (y / (b * b)) * (y / (b * b))).sqrt();
                if k1 < 1e-6 {
                    -b
                } else {
                    k0 * (k0 - 1.0) / k1
                }
            }
            Geometry::Heart { s, shift } => {
                // Heart frame with y up: the point at (0, -s/√2).
                let hx = x.abs();
                let hy = -(y + shift);
                let c = 0.5 * SQRT_HALF * s;
                let disc = ((hx - c) * (hx - c) + (hy - c) * (hy - c)).sqrt() - 0.5 * s;
                let u = (hx + hy) * SQRT_HALF;
                let v = (hy - hx) * SQRT_HALF;
                disc.min(box_distance(u, v, 0.5 * s))
            }
        }
    }
}

/// Exact signed distance to the axis-aligned square of half side `half`.
#[inline]
fn box_distance(x: f32, y: f32, half: f32) -> f32 {
    let qx = x.abs() - half;
    let qy = y.abs() - half;
    let ox = qx.max(0.0);
    let oy = qy.max(0.0);
    (ox * ox + oy * oy).sqrt() + qx.max(qy).min(0.0)
}

/// `(sin, cos)` of the 40 rotations.
fn rotation(k: usize) -> (f32, f32) {
    let (s, c) = sin_cos(k as f64 * std::f64::consts::TAU / ROTATIONS as f64);
    (s as f32, c as f32)
}

/// Key of sample `(seed, level, i)`: every random choice derives from it.
fn sample_key(level: Level, seed: u64, i: usize) -> u64 {
    splitmix64(splitmix64(seed) ^ splitmix64((u64::from(level.number()) << 40) ^ i as u64))
}

const STREAM_GEOMETRY: u64 = 1;
const STREAM_SHAPE_TEXTURE: u64 = 2;
const STREAM_BACKGROUND: u64 = 3;

/// Render sample `i` into `out` (`[3 * 64 * 64]`), returning its class.
fn render_into(level: Level, seed: u64, i: usize, out: &mut [u8]) -> usize {
    assert!(i < PER_LEVEL, "index {i} out of range 0..{PER_LEVEL}");
    debug_assert_eq!(out.len(), IMAGE_LEN);
    let class = level.class_of_index(i);
    let attrs = level.attributes(class);
    let mut size = 0;
    let mut colour = None;
    let mut shape = 0;
    let mut quadrant = None;
    let mut light = None;
    for (slot, &a) in level.slots().iter().zip(&attrs) {
        match slot {
            Slot::Size => size = a,
            Slot::Colour => colour = Some(COLOURS[a]),
            Slot::Shape => shape = a,
            Slot::Position => quadrant = Some(a),
            Slot::Background => light = Some(a == 0),
        }
    }
    let key = sample_key(level, seed, i);

    // Geometry: rotation, then centre, kept inside the image.
    let mut rng = Rng::new(key, STREAM_GEOMETRY);
    let geometry = Geometry::new(shape, if size == 0 { 1.0 } else { 0.5 });
    let (sin, cos) = rotation(rng.below(ROTATIONS));
    let (hx, hy) = geometry.half_extents();
    let ex = cos.abs() * hx + sin.abs() * hy;
    let ey = sin.abs() * hx + cos.abs() * hy;
    let (cx, cy) = match quadrant {
        None => (rng.range(20.0, 44.0), rng.range(20.0, 44.0)),
        Some(q) => {
            let qx = if q % 2 == 0 { 16.0 } else { 48.0 };
            let qy = if q < 2 { 16.0 } else { 48.0 };
            (qx + rng.range(-4.0, 4.0), qy + rng.range(-4.0, 4.0))
        }
    };
    let side = SIDE as f32;
    let cx = cx.clamp(ex + 0.5, side - ex - 0.5);
    let cy = cy.clamp(ey + 0.5, side - ey - 0.5);

    // Background.
    let (r_plane, rest) = out.split_at_mut(PLANE);
    let (g_plane, b_plane) = rest.split_at_mut(PLANE);
    if let Some(light) = light {
        let mut rng = Rng::new(key, STREAM_BACKGROUND);
        let texture = Texture::random(&mut rng, 32.0, 32.0, 32.0);
        let lo = if light { 170.0 } else { 25.0 };
        for y in 0..SIDE {
            for x in 0..SIDE {
                let v = lo + 60.0 * texture.eval(x as f32 + 0.5, y as f32 + 0.5);
                let byte = (v + 0.5) as u8;
                let p = y * SIDE + x;
                r_plane[p] = byte;
                g_plane[p] = byte;
                b_plane[p] = byte;
            }
        }
    } else {
        out.fill(0);
    }
    let placement = Placement {
        cx,
        cy,
        sin,
        cos,
        ex,
        ey,
    };
    draw_shape(out, geometry, &placement, colour, key);
    class
}

/// Where a shape is drawn: centre, rotation and half extents of its rotated
/// bounding box, in pixels.
struct Placement {
    cx: f32,
    cy: f32,
    sin: f32,
    cos: f32,
    ex: f32,
    ey: f32,
}

/// Composite the shape over the background already in `out`: white if
/// `colour` is `None`, else `colour` times a texture factor in `[0.55, 1]`.
/// Only pixels of the rotated bounding box (plus 2 px) are visited.
fn draw_shape(
    out: &mut [u8],
    geometry: Geometry,
    placement: &Placement,
    colour: Option<[f32; 3]>,
    key: u64,
) {
    let &Placement {
        cx,
        cy,
        sin,
        cos,
        ex,
        ey,
    } = placement;
    let texture = colour.map(|_| {
        let mut rng = Rng::new(key, STREAM_SHAPE_TEXTURE);
        Texture::random(&mut rng, cx, cy, ex.max(ey).max(4.0))
    });
    let rgb = colour.unwrap_or([255.0; 3]);
    let x0 = (cx - ex - 2.0).floor().max(0.0) as usize;
    let x1 = ((cx + ex + 2.0).ceil() as usize).min(SIDE);
    let y0 = (cy - ey - 2.0).floor().max(0.0) as usize;
    let y1 = ((cy + ey + 2.0).ceil() as usize).min(SIDE);
    for y in y0..y1 {
        let py = y as f32 + 0.5;
        let dy = py - cy;
        for x in x0..x1 {
            let px = x as f32 + 0.5;
            let dx = px - cx;
            // Rotate the pixel into the shape's frame.
            let lx = cos * dx + sin * dy;
            let ly = -sin * dx + cos * dy;
            let coverage = (0.5 - geometry.distance(lx, ly)).clamp(0.0, 1.0);
            if coverage <= 0.0 {
                continue;
            }
            let factor = texture
                .as_ref()
                .map_or(1.0, |t| 0.55 + 0.45 * t.eval(px, py));
            let p = y * SIDE + x;
            for (ch, &c) in rgb.iter().enumerate() {
                let o = &mut out[ch * PLANE + p];
                let v = f32::from(*o) * (1.0 - coverage) + c * factor * coverage;
                *o = (v + 0.5) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
        })
    }

    fn pixel(img: &[u8], x: usize, y: usize) -> [u8; 3] {
        let p = y * SIDE + x;
        [img[p], img[PLANE + p], img[2 * PLANE + p]]
    }

    /// Indices `0..n` of `level` whose class has slot `slot` equal to `value`.
    fn with_value(level: Level, slot: Slot, value: usize, n: usize) -> Vec<usize> {
        let j = level.slots().iter().position(|&s| s == slot).unwrap();
        (0..PER_LEVEL)
            .filter(|&i| level.attributes(level.class_of_index(i))[j] == value)
            .take(n)
            .collect()
    }

    #[test]
    fn sin_cos_matches_std() {
        for k in -200..=200 {
            let x = k as f64 * 0.0731;
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-12, "sin {x}");
            assert!((c - x.cos()).abs() < 1e-12, "cos {x}");
        }
    }

    #[test]
    fn golden_hashes() {
        let mut got = Vec::new();
        for level in Level::ALL {
            for i in [0, 1, 777, 29_999] {
                got.push(fnv1a(&render(level, 0, i).0));
            }
        }
        // FNV-1a of samples 0, 1, 777 and 29,999 (seed 0) of each level. A
        // change here changes the data set: bump it only on purpose.
        let expected: [u64; 20] = [
            0xc9d9_8a46_443b_4cf2, // L1
            0x453b_09be_c648_f35b,
            0x0a7e_6e9f_5882_b8d7,
            0x5fbf_f7fa_e902_30b0,
            0x8867_d394_822d_6846, // L2
            0xd19d_85ed_91b6_400d,
            0xaecf_1ffc_9196_57eb,
            0xc850_0320_1466_8d87,
            0xb6be_2cbd_a7dc_c04f, // L3
            0xd40a_b2ed_a997_40b5,
            0xdbbf_b867_a621_bced,
            0x4b84_8d7e_d8ee_727d,
            0x0950_7977_f50e_a2e9, // L4
            0x3cae_7332_8d75_b308,
            0xfd42_e9c5_5c41_1f31,
            0xaa9c_855d_d113_8cb1,
            0xafdd_a81a_0161_d040, // L5
            0x03f2_b3ff_2cde_0ffc,
            0xa759_0c0b_365d_7a39,
            0x7013_2a88_8ced_83e3,
        ];
        assert_eq!(got, expected, "{got:#x?}");
    }

    #[test]
    fn rendering_is_deterministic_and_independent_of_threads() {
        for level in Level::ALL {
            let indices: Vec<usize> = (0..40).map(|k| (k * 7919) % PER_LEVEL).collect();
            let (one, c1) = render_many(level, 5, &indices, 1);
            let (two, c2) = render_many(level, 5, &indices, 2);
            let (three, c3) = render_many(level, 5, &indices, 3);
            assert_eq!(one, two);
            assert_eq!(one, three);
            assert_eq!(c1, c2);
            assert_eq!(c1, c3);
            for (k, &i) in indices.iter().enumerate() {
                let (img, class) = render(level, 5, i);
                assert_eq!(img, render(level, 5, i).0);
                assert_eq!(&img[..], &one[k * IMAGE_LEN..(k + 1) * IMAGE_LEN]);
                assert_eq!(class, c1[k]);
                assert_eq!(class, level.class_of_index(i));
                assert_ne!(img, render(level, 6, i).0, "seed must matter");
            }
            assert_eq!(render_many(level, 5, &[], 4), (vec![], vec![]));
        }
    }

    #[test]
    fn levels_and_attributes_round_trip() {
        for (k, level) in Level::ALL.into_iter().enumerate() {
            assert_eq!(level.number() as usize, k + 1);
            assert_eq!(Level::from_number(level.number()), Some(level));
            for class in 0..level.num_classes() {
                let attrs = level.attributes(class);
                assert_eq!(attrs.len(), level.slots().len());
                assert_eq!(level.class_of_attributes(&attrs), class);
            }
        }
        assert_eq!(Level::from_number(0), None);
        assert_eq!(Level::from_number(6), None);
        let classes: Vec<usize> = Level::ALL.iter().map(|l| l.num_classes()).collect();
        assert_eq!(classes, [3, 6, 30, 120, 240]);
        assert_eq!(Slot::Colour.name(), "colour");
        assert_eq!(Level::L5.attributes(239), [1, 4, 2, 3, 1]);
    }

    #[test]
    fn classes_are_balanced_and_splits_partition_the_indices() {
        for level in Level::ALL {
            let n = level.num_classes();
            let mut counts = vec![0; n];
            let mut test_counts = vec![0; n];
            for i in 0..PER_LEVEL {
                counts[level.class_of_index(i)] += 1;
                if level.is_test(i) {
                    test_counts[level.class_of_index(i)] += 1;
                }
            }
            assert!(counts.iter().all(|&c| c == PER_LEVEL / n));
            let per_test = if level == Level::L5 {
                13
            } else {
                PER_LEVEL / n / 10
            };
            assert!(test_counts.iter().all(|&c| c == per_test));
            let train = level.train_indices();
            let test = level.test_indices();
            let expected_test = if level == Level::L5 { 3_120 } else { 3_000 };
            assert_eq!(test.len(), expected_test);
            assert_eq!(train.len(), PER_LEVEL - expected_test);
            let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
            all.sort_unstable();
            assert_eq!(
                all,
                (0..PER_LEVEL).collect::<Vec<_>>(),
                "disjoint, union = all"
            );
        }
    }

    #[test]
    fn captions_round_trip_with_the_right_words() {
        for (level, words) in Level::ALL.into_iter().zip([1, 2, 3, 6, 8]) {
            let mut seen = std::collections::HashSet::new();
            for class in 0..level.num_classes() {
                let caption = level.caption(class);
                assert_eq!(caption.split_whitespace().count(), words, "{caption}");
                assert_eq!(level.class_of_caption(&caption), Some(class), "{caption}");
                let upper = caption.to_uppercase();
                assert_eq!(level.class_of_caption(&upper), Some(class));
                assert!(seen.insert(caption));
            }
        }
        assert_eq!(Level::L1.caption(2), "heart");
        let c = Level::L4.class_of_attributes(&[1, 0, 2, 0]);
        assert_eq!(Level::L4.caption(c), "small red heart at top left");
        let c = Level::L5.class_of_attributes(&[0, 3, 0, 3, 1]);
        assert_eq!(
            Level::L5.caption(c),
            "big blue square at bottom right on dark"
        );
    }

    #[test]
    fn parse_caption_isolates_garbled_slots_and_rejects_extra_words() {
        for level in Level::ALL {
            for class in (0..level.num_classes()).step_by(7) {
                let attrs = level.attributes(class);
                let slots = level.slots();
                for garbled in 0..slots.len() {
                    // Misspell the first word of the garbled slot's phrase.
                    let text: Vec<String> = slots
                        .iter()
                        .zip(&attrs)
                        .enumerate()
                        .map(|(j, (slot, &a))| {
                            let phrase = slot.values()[a];
                            if j == garbled {
                                let mut w: Vec<&str> = phrase.split(' ').collect();
                                let last = w.len() - 1;
                                let bad = format!("{}x", w[last]);
                                w[last] = &bad;
                                w.join(" ")
                            } else {
                                phrase.to_string()
                            }
                        })
                        .collect();
                    let text = text.join(" ");
                    let parsed = level.parse_caption(&text);
                    for (j, p) in parsed.iter().enumerate() {
                        if j == garbled {
                            assert_eq!(*p, None, "{text}");
                        } else {
                            assert_eq!(*p, Some(attrs[j]), "{text}");
                        }
                    }
                    assert_eq!(level.class_of_caption(&text), None);
                }
                let caption = level.caption(class);
                for extra in [
                    format!("a {caption}"),
                    format!("{caption} please"),
                    format!("{caption} {caption}"),
                ] {
                    assert_eq!(
                        level.parse_caption(&extra),
                        attrs.iter().map(|&a| Some(a)).collect::<Vec<_>>()
                    );
                    assert_eq!(level.class_of_caption(&extra), None, "{extra}");
                }
            }
        }
        // Two values of one slot: ambiguous.
        assert_eq!(
            Level::L3.parse_caption("big red blue heart"),
            [Some(0), None, Some(2)]
        );
        assert_eq!(Level::L2.class_of_caption(""), None);
        assert_eq!(Level::L2.parse_caption(""), [None, None]);
    }

    #[test]
    fn levels_one_and_two_are_white_on_black_inside_the_image() {
        for level in [Level::L1, Level::L2] {
            for i in (0..PER_LEVEL).step_by(97) {
                let (img, _) = render(level, 1, i);
                let mut lit = 0;
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        let [r, g, b] = pixel(&img, x, y);
                        assert!(r == g && g == b, "grey expected");
                        if x == 0 || y == 0 || x == SIDE - 1 || y == SIDE - 1 {
                            assert_eq!(r, 0, "the shape must stay inside the image");
                        }
                        lit += usize::from(r == 255);
                    }
                }
                assert!(lit > 10, "a white shape must be drawn");
            }
        }
    }

    #[test]
    fn shapes_have_their_designed_areas_and_big_is_bigger() {
        // Mean coverage (sum of pixels / 255) over many rotations and
        // positions matches the analytic area: anti-aliasing is area-exact to
        // first order, and the three shapes differ.
        let mean_area = |size: usize, shape: usize| -> f32 {
            let class = Level::L2.class_of_attributes(&[size, shape]);
            let indices: Vec<usize> = (0..200).map(|k| class + 6 * k).collect();
            let (imgs, _) = render_many(Level::L2, 2, &indices, 2);
            let sum: f32 = imgs
                .chunks(IMAGE_LEN)
                .map(|img| {
                    img[..PLANE]
                        .iter()
                        .map(|&b| f32::from(b) / 255.0)
                        .sum::<f32>()
                })
                .sum();
            let mean = sum / indices.len() as f32;
            let expected = Geometry::new(shape, [1.0, 0.5][size]).area();
            assert!(
                (mean / expected - 1.0).abs() < 0.04,
                "size {size} shape {shape}: {mean} px² vs {expected}"
            );
            mean
        };
        let big: Vec<f32> = (0..3).map(|shape| mean_area(0, shape)).collect();
        let small: Vec<f32> = (0..3).map(|shape| mean_area(1, shape)).collect();
        for (b, s) in big.iter().zip(&small) {
            assert!(*b > 3.0 * s, "big {b} px² vs small {s} px²");
        }
        // square > heart > ellipse
        assert!(big[0] > 1.1 * big[2] && big[2] > 1.1 * big[1], "{big:?}");
    }

    #[test]
    fn edges_are_anti_aliased() {
        for i in 0..30 {
            let (img, _) = render(Level::L1, 3, i);
            let partial = img[..PLANE]
                .iter()
                .filter(|b| (1..255).contains(*b))
                .count();
            let full = img[..PLANE].iter().filter(|&&b| b == 255).count();
            assert!(partial >= 12, "sample {i}: {partial} edge pixels");
            assert!(full > partial, "sample {i}: mostly solid");
        }
    }

    #[test]
    fn level_four_shapes_lie_in_their_named_quadrant() {
        for q in 0..4 {
            for i in with_value(Level::L4, Slot::Position, q, 300) {
                let (img, _) = render(Level::L4, 4, i);
                let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        let w: f64 = pixel(&img, x, y).iter().map(|&b| f64::from(b)).sum();
                        m += w;
                        mx += w * (x as f64 + 0.5);
                        my += w * (y as f64 + 0.5);
                    }
                }
                assert!(m > 0.0);
                let (mx, my) = (mx / m, my / m);
                let half = SIDE as f64 / 2.0;
                assert_eq!(mx > half, q % 2 == 1, "sample {i}: x {mx}");
                assert_eq!(my > half, q >= 2, "sample {i}: y {my}");
                assert!((mx - half).abs() > 6.0 && (my - half).abs() > 6.0);
            }
        }
    }

    #[test]
    fn level_five_light_backgrounds_are_brighter_than_dark_ones() {
        let mean = |i: usize| -> f64 {
            let (img, _) = render(Level::L5, 7, i);
            img.iter().map(|&b| f64::from(b)).sum::<f64>() / IMAGE_LEN as f64
        };
        let light: Vec<f64> = with_value(Level::L5, Slot::Background, 0, 200)
            .into_iter()
            .map(mean)
            .collect();
        let dark: Vec<f64> = with_value(Level::L5, Slot::Background, 1, 200)
            .into_iter()
            .map(mean)
            .collect();
        let min_light = light.iter().copied().fold(f64::INFINITY, f64::min);
        let max_dark = dark.iter().copied().fold(0.0, f64::max);
        assert!(min_light > max_dark, "{min_light} vs {max_dark}");
        let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(avg(&light) > 150.0 && avg(&dark) < 90.0);
    }

    #[test]
    fn level_three_colours_are_recognisable() {
        for (colour, rgb) in COLOURS.iter().enumerate() {
            for i in with_value(Level::L3, Slot::Colour, colour, 150) {
                let (img, _) = render(Level::L3, 8, i);
                let mut sum = [0.0f64; 3];
                let mut n = 0.0;
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        let p = pixel(&img, x, y);
                        if p.iter().any(|&b| b > 0) {
                            for (s, &b) in sum.iter_mut().zip(&p) {
                                *s += f64::from(b);
                            }
                            n += 1.0;
                        }
                    }
                }
                assert!(n > 0.0);
                let mean = sum.map(|s| s / n);
                // The texture scales brightness, so compare hues: the angle
                // between RGB vectors (largest cosine).
                let cosine = |c: &[f32; 3]| -> f64 {
                    let c = c.map(f64::from);
                    let dot: f64 = c.iter().zip(&mean).map(|(a, b)| a * b).sum();
                    let norm = |v: &[f64; 3]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
                    dot / (norm(&c) * norm(&mean))
                };
                let nearest = (0..COLOURS.len())
                    .max_by(|&a, &b| cosine(&COLOURS[a]).total_cmp(&cosine(&COLOURS[b])))
                    .unwrap();
                assert!(cosine(rgb) > 0.99, "sample {i}: mean {mean:?} for {rgb:?}");
                assert_eq!(nearest, colour, "sample {i}: mean {mean:?} for {rgb:?}");
            }
        }
    }
}
