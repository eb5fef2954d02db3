//! PolyMNIST: five image modalities `m0`…`m4` of one digit, each a
//! different MNIST image of the item's class on its own background, so the
//! modalities share only the digit (the benchmark of MoPoE and MMVAE+).
//!
//! The published set crops each modality's background from one of five
//! photographs. This renderer draws each modality's background from its own
//! procedural texture instead (value noise, stripes, checks, soft blobs, fine
//! noise; each with its own two colours and scale), and draws the digit by
//! inverting the background under its strokes, as the published set does.
//! Backgrounds are all light or all dark per modality, so the inverted digit
//! stays legible.
//!
//! # Items
//! Item `i` of a split takes MNIST item `i` of the same split: its class, and
//! its image for `m0`. Modality `m ≥ 1` draws another MNIST image of the same
//! class, chosen by a SplitMix64 hash of `(seed, m, i)`; every background is a
//! hash of `(seed, split, m, i)`. Bytes are a pure function of the MNIST
//! files, the seed and the index, whatever the number of threads.
//!
//! # Published files
//! [`load_published`] reads the published layout, `train/m0/<index>.<label>.png`
//! … `test/m4/…`, 28×28 RGB: every modality folder must hold the same
//! indices with the same labels.

use std::collections::BTreeMap;
use std::path::Path;

use crate::captions::splitmix64;
use crate::dataset::{ImageLabelSet, Split, View};
use crate::error::{DataError, Result};
use crate::texture::{Rng, Texture, TextureKind};
use crate::DatasetKind;

/// Modalities per item.
pub const MODALITIES: usize = 5;
/// The modalities' names, as in the published set.
pub const NAMES: [&str; MODALITIES] = ["m0", "m1", "m2", "m3", "m4"];
/// Images are `SIDE×SIDE` RGB.
pub const SIDE: usize = 28;
pub const CHANNELS: usize = 3;
const PLANE: usize = SIDE * SIDE;
const IMAGE_LEN: usize = CHANNELS * PLANE;
/// The seed of the rendered benchmark: fixed, so every model and evaluator
/// sees the same images.
pub const SEED: u64 = 0x504F_4C59_4D4E_5354;

/// How one modality draws its background: a texture kind, the two colours
/// it blends between, and a scale applied to image coordinates.
struct Style {
    texture: TextureKind,
    colours: [[f32; 3]; 2],
    scale: f32,
}

/// One style per modality: `m0`, `m2`, `m4` dark (the digit comes out
/// light), `m1`, `m3` light (the digit comes out dark).
const STYLES: [Style; MODALITIES] = [
    Style {
        texture: TextureKind::Noise,
        colours: [[10.0, 50.0, 80.0], [30.0, 110.0, 100.0]],
        scale: 1.0,
    },
    Style {
        texture: TextureKind::Stripes,
        colours: [[250.0, 225.0, 130.0], [235.0, 165.0, 70.0]],
        scale: 1.0,
    },
    Style {
        texture: TextureKind::Checks,
        colours: [[95.0, 20.0, 25.0], [45.0, 15.0, 70.0]],
        scale: 1.0,
    },
    Style {
        texture: TextureKind::Blobs,
        colours: [[205.0, 225.0, 250.0], [250.0, 190.0, 215.0]],
        scale: 1.0,
    },
    Style {
        texture: TextureKind::Noise,
        colours: [[20.0, 70.0, 20.0], [75.0, 25.0, 85.0]],
        scale: 2.0,
    },
];

fn split_salt(split: Split) -> u64 {
    match split {
        Split::Train => 0x7EA1,
        Split::Test => 0x7E57,
    }
}

/// Key of modality `m` of item `i`.
fn key(seed: u64, split: Split, m: usize, i: usize) -> u64 {
    splitmix64(splitmix64(seed ^ split_salt(split)) ^ splitmix64(((m as u64) << 40) ^ i as u64))
}

/// Draw modality `m` of one item into `out` (`[3 * 28 * 28]`, planar):
/// the background of `m`'s style, inverted under the digit `digit`
/// (`[28 * 28]` MNIST bytes).
fn draw(m: usize, item_key: u64, digit: &[u8], out: &mut [u8]) {
    let style = &STYLES[m];
    let mut rng = Rng::new(item_key, 1);
    let half = SIDE as f32 / 2.0;
    let texture = Texture::of_kind(style.texture, &mut rng, half, half, half);
    // A random crop of the texture: an offset in texture coordinates (the
    // noise lattice covers 72 px at its coarsest: 28 · 2 + 12 stays inside).
    let (ox, oy) = (rng.range(0.0, 12.0), rng.range(0.0, 12.0));
    let [lo, hi] = style.colours;
    for p in 0..PLANE {
        let (x, y) = ((p % SIDE) as f32 + 0.5, (p / SIDE) as f32 + 0.5);
        let t = texture.eval(x * style.scale + ox, y * style.scale + oy);
        let d = f32::from(digit[p]) / 255.0;
        for c in 0..CHANNELS {
            let bg = lo[c] + (hi[c] - lo[c]) * t;
            let v = bg + (255.0 - 2.0 * bg) * d;
            out[c * PLANE + p] = (v.clamp(0.0, 255.0) + 0.5) as u8;
        }
    }
}

/// MNIST item indices of each class.
fn by_class(mnist: &ImageLabelSet) -> Vec<Vec<usize>> {
    let mut v = vec![Vec::new(); 10];
    for (i, &l) in mnist.labels.iter().enumerate() {
        v[l as usize].push(i);
    }
    v
}

/// The MNIST image each modality of item `i` shows.
fn sources(mnist: &ImageLabelSet, classes: &[Vec<usize>], seed: u64, i: usize) -> [usize; 5] {
    let c = mnist.labels[i] as usize;
    let mut out = [i; MODALITIES];
    for (m, o) in out.iter_mut().enumerate().skip(1) {
        let pool = &classes[c];
        let h = splitmix64(seed ^ splitmix64(((m as u64) << 32) ^ i as u64));
        *o = pool[(h % pool.len() as u64) as usize];
    }
    out
}

/// Render PolyMNIST from one MNIST split (28×28 grey), on `threads`
/// threads; item `i` takes MNIST item `i`'s class.
///
/// # Shapes
/// `images` (`m0`) and each view `[n * 3 * 28 * 28]`, `n = mnist.len()`.
pub fn render(mnist: &ImageLabelSet, split: Split, seed: u64, threads: usize) -> ImageLabelSet {
    let n = mnist.len();
    let classes = by_class(mnist);
    let mut planes: Vec<Vec<u8>> = vec![vec![0u8; n * IMAGE_LEN]; MODALITIES];
    let per = n.div_ceil(threads.max(1)).max(1);
    // Chunks of items per thread, each writing its rows of every modality.
    let mut chunks: Vec<Vec<&mut [u8]>> = (0..n.div_ceil(per)).map(|_| Vec::new()).collect();
    for plane in planes.iter_mut() {
        for (k, rows) in plane.chunks_mut(per * IMAGE_LEN).enumerate() {
            chunks[k].push(rows);
        }
    }
    let classes = &classes;
    std::thread::scope(|s| {
        for (k, mut rows) in chunks.into_iter().enumerate() {
            s.spawn(move || {
                for local in 0..rows[0].len() / IMAGE_LEN {
                    let i = k * per + local;
                    let src = sources(mnist, classes, seed, i);
                    for (m, &j) in src.iter().enumerate() {
                        let out = &mut rows[m][local * IMAGE_LEN..(local + 1) * IMAGE_LEN];
                        draw(m, key(seed, split, m, i), mnist.image(j), out);
                    }
                }
            });
        }
    });
    let mut planes = planes.into_iter();
    let first = planes.next().expect("five modalities");
    let mut set = ImageLabelSet::new(
        DatasetKind::PolyMnist,
        CHANNELS,
        (SIDE, SIDE),
        first,
        mnist.labels.clone(),
    );
    set.views = planes
        .zip(NAMES.iter().skip(1))
        .map(|(images, name)| View {
            name: name.to_string(),
            images,
        })
        .collect();
    set
}

/// Whether `dir` holds the published layout (`train/m0` or `test/m0`).
pub fn is_published(dir: &Path) -> bool {
    dir.join("train").join(NAMES[0]).is_dir() || dir.join("test").join(NAMES[0]).is_dir()
}

/// Parse a published file name, `<index>.<label>.png`.
fn parse_name(path: &Path) -> Result<(usize, u32)> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let bad = |what: &str| {
        DataError::format(
            path,
            format!("{what}: expected a file named <index>.<label>.png"),
        )
    };
    let stem = name
        .strip_suffix(".png")
        .ok_or_else(|| bad("not a .png file"))?;
    let (index, label) = stem.split_once('.').ok_or_else(|| bad("no label"))?;
    let index: usize = index
        .parse()
        .map_err(|_| bad("the index is not a number"))?;
    let label: u32 = label
        .parse()
        .map_err(|_| bad("the label is not a number"))?;
    if label >= 10 {
        return Err(bad(&format!("label {label} is not a digit 0-9")));
    }
    Ok((index, label))
}

/// The files of one modality folder: index → (label, path).
fn list_modality(dir: &Path) -> Result<BTreeMap<usize, (u32, std::path::PathBuf)>> {
    if !dir.is_dir() {
        return Err(DataError::format(
            dir,
            "modality folder is missing (PolyMNIST needs m0 … m4 in train/ and test/)",
        ));
    }
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let (index, label) = parse_name(&path)?;
        if out.insert(index, (label, path.clone())).is_some() {
            return Err(DataError::format(&path, format!("index {index} repeats")));
        }
    }
    Ok(out)
}

/// Read one split of the published PolyMNIST files under `dir`.
pub fn load_published(dir: &Path, split: Split) -> Result<ImageLabelSet> {
    let root = dir.join(match split {
        Split::Train => "train",
        Split::Test => "test",
    });
    let lists: Vec<_> = NAMES
        .iter()
        .map(|m| list_modality(&root.join(m)))
        .collect::<Result<_>>()?;
    let first = &lists[0];
    for (m, list) in lists.iter().enumerate().skip(1) {
        let folder = root.join(NAMES[m]);
        if list.len() != first.len() {
            return Err(DataError::format(
                &folder,
                format!(
                    "holds {} images, {} holds {}: every modality folder needs the same items",
                    list.len(),
                    NAMES[0],
                    first.len()
                ),
            ));
        }
        for ((i, (l, _)), (j, (k, path))) in first.iter().zip(list) {
            if i != j || l != k {
                return Err(DataError::format(
                    path,
                    format!(
                        "does not match {}'s item {i} (label {l}): every modality folder needs the same <index>.<label> names",
                        NAMES[0]
                    ),
                ));
            }
        }
    }
    let n = first.len();
    let mut planes: Vec<Vec<u8>> = (0..MODALITIES)
        .map(|_| Vec::with_capacity(n * IMAGE_LEN))
        .collect();
    for (plane, list) in planes.iter_mut().zip(&lists) {
        for (_, path) in list.values() {
            let img = crate::imageio::load_image(path, CHANNELS, SIDE, SIDE)?;
            plane.extend(img.pixels.iter().map(|&v| (v * 255.0).round() as u8));
        }
    }
    let labels = first.values().map(|(l, _)| *l).collect();
    let mut planes = planes.into_iter();
    let mut set = ImageLabelSet::new(
        DatasetKind::PolyMnist,
        CHANNELS,
        (SIDE, SIDE),
        planes.next().expect("five modalities"),
        labels,
    );
    set.views = planes
        .zip(NAMES.iter().skip(1))
        .map(|(images, name)| View {
            name: name.to_string(),
            images,
        })
        .collect();
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small MNIST-like split: 40 items, 4 of each class, each image a
    /// distinct pattern.
    fn fake_mnist() -> ImageLabelSet {
        let n = 40;
        let images = (0..n * PLANE)
            .map(|k| {
                if (k / PLANE + k % 7).is_multiple_of(3) {
                    255
                } else {
                    0
                }
            })
            .collect();
        let labels = (0..n).map(|i| (i % 10) as u32).collect();
        ImageLabelSet::new(DatasetKind::Mnist, 1, (28, 28), images, labels)
    }

    #[test]
    fn rendering_is_seeded_and_independent_of_threads() {
        let mnist = fake_mnist();
        let a = render(&mnist, Split::Train, SEED, 1);
        let b = render(&mnist, Split::Train, SEED, 3);
        assert_eq!(a.images, b.images);
        for (x, y) in a.views.iter().zip(&b.views) {
            assert_eq!(x.images, y.images);
        }
        let c = render(&mnist, Split::Train, SEED ^ 1, 2);
        assert_ne!(a.views[0].images, c.views[0].images);
        let t = render(&mnist, Split::Test, SEED, 2);
        assert_ne!(a.images, t.images, "splits draw their own backgrounds");
        assert_eq!(a.image_names(), NAMES);
        assert_eq!(a.labels, mnist.labels);
    }

    #[test]
    fn every_modality_shows_a_digit_of_the_items_class() {
        let mnist = fake_mnist();
        let classes = by_class(&mnist);
        for i in 0..mnist.len() {
            let src = sources(&mnist, &classes, SEED, i);
            assert_eq!(src[0], i);
            for &j in &src {
                assert_eq!(mnist.labels[j], mnist.labels[i]);
            }
        }
    }

    /// The digit is legible: pixels under the strokes differ from the
    /// background around them by at least 100 grey levels on average.
    #[test]
    fn the_inverted_digit_contrasts_with_every_background() {
        let mnist = fake_mnist();
        let set = render(&mnist, Split::Train, SEED, 1);
        for v in 0..MODALITIES {
            let (mut on, mut off, mut n_on, mut n_off) = (0.0, 0.0, 0.0, 0.0);
            for i in 0..set.len() {
                let img = set.view_image(v, i);
                let digit = mnist.image(i);
                // m ≥ 1 draws another image of the class: compare with
                // the digit it shows.
                let src = sources(&mnist, &by_class(&mnist), SEED, i)[v];
                let digit = if v == 0 { digit } else { mnist.image(src) };
                for p in 0..PLANE {
                    let luma: f64 =
                        (0..3).map(|c| f64::from(img[c * PLANE + p])).sum::<f64>() / 3.0;
                    if digit[p] == 255 {
                        on += luma;
                        n_on += 1.0;
                    } else if digit[p] == 0 {
                        off += luma;
                        n_off += 1.0;
                    }
                }
            }
            let gap = (on / n_on - off / n_off).abs();
            assert!(gap > 100.0, "modality {v}: contrast {gap:.1}");
        }
    }

    #[test]
    fn backgrounds_differ_between_modalities() {
        let set = render(&fake_mnist(), Split::Train, SEED, 1);
        let mean = |v: usize| -> [f64; 3] {
            let mut s = [0.0; 3];
            for i in 0..set.len() {
                let img = set.view_image(v, i);
                for (c, sc) in s.iter_mut().enumerate() {
                    *sc += img[c * PLANE..(c + 1) * PLANE]
                        .iter()
                        .map(|&b| f64::from(b))
                        .sum::<f64>();
                }
            }
            s.map(|x| x / (set.len() * PLANE) as f64)
        };
        let means: Vec<[f64; 3]> = (0..MODALITIES).map(mean).collect();
        for a in 0..MODALITIES {
            for b in a + 1..MODALITIES {
                let d: f64 = (0..3).map(|c| (means[a][c] - means[b][c]).abs()).sum();
                assert!(d > 20.0, "m{a} and m{b} look alike: {d:.1}");
            }
        }
    }

    fn write_published(root: &Path, items: &[(usize, u32)]) {
        for split in ["train", "test"] {
            for m in NAMES {
                let dir = root.join(split).join(m);
                std::fs::create_dir_all(&dir).unwrap();
                for &(i, l) in items {
                    let img = crate::imageio::Image::from_bytes(
                        3,
                        SIDE,
                        SIDE,
                        &vec![(i * 10 + m.as_bytes()[1] as usize) as u8; IMAGE_LEN],
                    );
                    crate::imageio::save_image(&dir.join(format!("{i}.{l}.png")), &img).unwrap();
                }
            }
        }
    }

    #[test]
    fn published_files_load_with_their_labels_and_modalities() {
        let dir = tempfile::tempdir().unwrap();
        write_published(dir.path(), &[(0, 5), (1, 0), (2, 9)]);
        assert!(is_published(dir.path()));
        let set = load_published(dir.path(), Split::Test).unwrap();
        assert_eq!(set.labels, vec![5, 0, 9]);
        assert_eq!(set.image_names(), NAMES);
        // Item 1 of m3: every byte (1 * 10 + '3').
        assert!(set.view_image(3, 1).iter().all(|&b| b == 10 + b'3'));
    }

    #[test]
    fn published_files_refuse_missing_modalities_bad_names_and_uneven_folders() {
        let dir = tempfile::tempdir().unwrap();
        write_published(dir.path(), &[(0, 5), (1, 0)]);
        std::fs::remove_dir_all(dir.path().join("train/m2")).unwrap();
        let e = load_published(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(e.contains("m2") && e.contains("missing"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        write_published(dir.path(), &[(0, 5), (1, 0)]);
        std::fs::copy(
            dir.path().join("test/m1/0.5.png"),
            dir.path().join("test/m1/7.x.png"),
        )
        .unwrap();
        let e = load_published(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("7.x.png") && e.contains("label"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        write_published(dir.path(), &[(0, 5), (1, 0)]);
        std::fs::remove_file(dir.path().join("test/m4/1.0.png")).unwrap();
        let e = load_published(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("m4") && e.contains("same items"), "{e}");
    }
}
