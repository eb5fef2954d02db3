//! CelebA faces with attribute captions, as in "Multimodal VAE for
//! Text-Image Tasks": the official aligned images, centre-cropped and resized
//! to 64×64 RGB, and nine of the forty binary attributes rendered into one
//! deterministic caption ("a young woman who is smiling, with black hair,
//! wearing lipstick").
//!
//! The attribute set is a choice ([`AttrSet`]): by default the nine of
//! [`DEFAULT_ATTRIBUTES`] (dataset `celeba`), the eighteen of
//! [`CELEBA19_ATTRIBUTES`] (dataset `celeba19`), or any of the forty, up to
//! 18 (dataset `celeba:Young,Male,Bangs,…`). A class is the subset present, as a
//! bit mask, so nine attributes make 512 classes and nine binary attribute
//! slots; the caption names each present attribute by a word no other uses,
//! so it also serves as a multi-hot attribute list.
//!
//! # Files (the official layout)
//! - `img_align_celeba/` with `000001.jpg` …
//! - `list_attr_celeba.txt`: the image count, the 40 attribute names, then
//!   one line per image: its file name and 40 values of `1` or `-1`;
//! - `list_eval_partition.txt`: one line per image: its file name and
//!   `0` (train), `1` (validation) or `2` (test).
//!
//! The training split is partitions 0 and 1 in file order (so a run's
//! validation tail comes from the official validation images), the test split
//! is partition 2. Decoded splits are cached beside the files
//! (`mmvae-cache-64-{train,test}.bin`), keyed by a hash of both lists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::dataset::Split;
use crate::error::{DataError, Result};
use crate::fsutil;

mod attributes;

pub use attributes::*;

/// Side of the square images, in pixels.
pub const SIDE: usize = 64;
pub const CHANNELS: usize = 3;
pub const ATTR_FILE: &str = "list_attr_celeba.txt";
pub const PARTITION_FILE: &str = "list_eval_partition.txt";
pub const IMAGE_DIR: &str = "img_align_celeba";
/// The centre crop keeps this fraction of the shorter side (148 px of the
/// official 178×218 images, the usual crop for 64×64 CelebA models).
pub const CROP_FRACTION: f64 = 148.0 / 178.0;

/// Where users get the files.
pub const HOW_TO_GET: &str = "CelebA cannot be downloaded by mmvae: get `img_align_celeba.zip`, `list_attr_celeba.txt` (Anno/) and `list_eval_partition.txt` (Eval/) from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, unzip the images into a folder `celeba/` beside the two lists, and point --data-dir / MMVAE_DATA at it (or at its parent)";

/// One image of the attribute list.
#[derive(Debug, Clone)]
struct Entry {
    file: String,
    /// 1-based line in the attribute file.
    line: usize,
    /// The attributes present, as a mask over [`TABLE`].
    mask: u64,
}

/// The attribute file read: which [`TABLE`] columns it has (a mask) and
/// its images.
struct AttributeList {
    columns: u64,
    entries: Vec<Entry>,
}

/// The longest attribute or partition list read: 256 MiB (the official
/// lists are 26 MB and 3 MB).
pub const MAX_LIST_BYTES: u64 = 256 << 20;

fn utf8<'a>(path: &Path, body: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(body).map_err(|e| DataError::format(path, format!("not UTF-8 text: {e}")))
}

/// A parsed attribute list: the columns found (a mask over [`TABLE`]) and
/// each entry's file name, line and mask.
pub type AttributeRows = (u64, Vec<(String, usize, u64)>);

/// Parse the bytes of `list_attr_celeba.txt` (`path` names it in errors):
/// one entry per image, with the attributes present as a mask over
/// [`TABLE`]. Returns the columns found (a mask over [`TABLE`]) and each
/// entry's file name, line and mask.
pub fn parse_attributes(path: &Path, body: &[u8]) -> Result<AttributeRows> {
    let list = attributes(path, body)?;
    Ok((
        list.columns,
        list.entries
            .into_iter()
            .map(|e| (e.file, e.line, e.mask))
            .collect(),
    ))
}

fn attributes(path: &Path, body: &[u8]) -> Result<AttributeList> {
    let body = utf8(path, body)?;
    let mut lines = body.lines().enumerate();
    let at = |line: usize, msg: String| DataError::format(path, format!("line {line}: {msg}"));
    let count: usize = match lines.next() {
        Some((_, l)) => l
            .trim()
            .parse()
            .map_err(|_| at(1, format!("expected the image count, found `{}`", l.trim())))?,
        None => return Err(DataError::format(path, "empty file")),
    };
    let names: Vec<&str> = match lines.next() {
        Some((_, l)) => l.split_whitespace().collect(),
        None => return Err(at(2, "missing the attribute names".into())),
    };
    // (column, table index) of every known attribute in the header.
    let columns: Vec<(usize, usize)> = TABLE
        .iter()
        .enumerate()
        .filter_map(|(t, a)| names.iter().position(|n| *n == a.name).map(|c| (c, t)))
        .collect();
    // The announced count is checked once the lines are read; it only sizes
    // the list up to the number of lines there are.
    let mut out = Vec::with_capacity(count.min(body.len() / 2));
    for (k, raw) in lines {
        let line = k + 1;
        let mut fields = raw.split_whitespace();
        let Some(file) = fields.next() else {
            continue;
        };
        let values: Vec<&str> = fields.collect();
        if values.len() != names.len() {
            return Err(at(
                line,
                format!(
                    "`{file}` has {} attribute values, the header names {}",
                    values.len(),
                    names.len()
                ),
            ));
        }
        if let Some((col, v)) = values
            .iter()
            .enumerate()
            .find(|(_, v)| !matches!(**v, "1" | "-1" | "0"))
        {
            return Err(at(
                line,
                format!(
                    "`{file}`: attribute `{}` is `{v}`, expected 1 or -1",
                    names[col]
                ),
            ));
        }
        let mask = columns
            .iter()
            .filter(|(col, _)| values[*col] == "1")
            .fold(0u64, |m, (_, t)| m | (1 << t));
        out.push(Entry {
            file: file.to_string(),
            line,
            mask,
        });
    }
    if out.len() != count {
        return Err(DataError::format(
            path,
            format!(
                "line 1 announces {count} images, the file lists {}",
                out.len()
            ),
        ));
    }
    Ok(AttributeList {
        columns: columns.iter().fold(0, |m, (_, t)| m | (1 << t)),
        entries: out,
    })
}

/// An error unless the attribute file has a column for every attribute of
/// `set`.
fn check_columns(path: &Path, columns: u64, set: AttrSet) -> Result<()> {
    match set.indices().into_iter().find(|t| columns & (1 << t) == 0) {
        Some(t) => Err(DataError::format(
            path,
            format!(
                "line 2: attribute `{}` is not among the column names",
                TABLE[t].name
            ),
        )),
        None => Ok(()),
    }
}

/// Parse the bytes of `list_eval_partition.txt` (`path` names it in
/// errors): file name → partition (0, 1 or 2).
pub fn parse_partition(path: &Path, body: &[u8]) -> Result<HashMap<String, u8>> {
    let body = utf8(path, body)?;
    let mut out = HashMap::new();
    for (k, raw) in body.lines().enumerate() {
        let mut f = raw.split_whitespace();
        let (Some(file), Some(p)) = (f.next(), f.next()) else {
            if raw.trim().is_empty() {
                continue;
            }
            return Err(DataError::format(
                path,
                format!("line {}: expected `file partition`", k + 1),
            ));
        };
        let p: u8 = match p {
            "0" => 0,
            "1" => 1,
            "2" => 2,
            _ => {
                return Err(DataError::format(
                    path,
                    format!(
                        "line {}: partition `{p}` of `{file}` is not 0, 1 or 2",
                        k + 1
                    ),
                ))
            }
        };
        out.insert(file.to_string(), p);
    }
    Ok(out)
}

/// Centre-crop (see [`CROP_FRACTION`]) and resize a decoded image to
/// [`SIDE`]×[`SIDE`] RGB; planar bytes `[3, SIDE, SIDE]`.
pub fn crop_resize(img: &image::DynamicImage) -> Vec<u8> {
    crate::imageio::crop_resize(img, SIDE, CHANNELS, CROP_FRACTION)
}

/// A face for a CelebA model from an image file: one of
/// [`SIDE`]×[`SIDE`] as it is, any other size (an aligned CelebA photo is
/// 178×218) cropped and resized as the dataset's loader does.
pub fn load_face(path: &Path) -> Result<crate::imageio::Image> {
    use crate::imageio;
    let bytes = fsutil::read_limited(path, imageio::MAX_IMAGE_BYTES, "the image file")?;
    let img = imageio::decode_image(&bytes, path)?;
    if img.width() as usize == SIDE && img.height() as usize == SIDE {
        return imageio::image_from_bytes(&bytes, path, CHANNELS, SIDE, SIDE);
    }
    Ok(imageio::Image::from_bytes(
        CHANNELS,
        SIDE,
        SIDE,
        &crop_resize(&img),
    ))
}

fn decode(path: &Path, line: usize, attr_file: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| {
        DataError::format(
            path,
            format!(
                "cannot read the image listed on line {line} of {}: {e}",
                attr_file.display()
            ),
        )
    })?;
    let img = crate::imageio::decode_image(&bytes, path)?;
    Ok(crop_resize(&img))
}

const CACHE_MAGIC: &[u8; 8] = b"MMVAECA2";

fn cache_path(dir: &Path, split: Split) -> PathBuf {
    let s = match split {
        Split::Train => "train",
        Split::Test => "test",
    };
    dir.join(format!("mmvae-cache-{SIDE}-{s}.bin"))
}

/// A decoded split: the columns the attribute file has, each image's
/// attribute mask, and the planar pixels.
type Decoded = (u64, Vec<u64>, Vec<u8>);

fn read_cache(path: &Path, key: &[u8; 32]) -> Option<Decoded> {
    parse_cache(&std::fs::read(path).ok()?, key)
}

/// A cache file's content, if it is one for `key` whose length matches the
/// image count it announces (checked before anything is allocated).
pub fn parse_cache(b: &[u8], key: &[u8; 32]) -> Option<(u64, Vec<u64>, Vec<u8>)> {
    if b.len() < 56 || &b[..8] != CACHE_MAGIC || &b[8..40] != key {
        return None;
    }
    let columns = u64::from_le_bytes(b[40..48].try_into().ok()?);
    let n = usize::try_from(u64::from_le_bytes(b[48..56].try_into().ok()?)).ok()?;
    let px = CHANNELS * SIDE * SIDE;
    let len = n.checked_mul(8 + px).and_then(|l| l.checked_add(56));
    if len != Some(b.len()) {
        return None;
    }
    let masks = b[56..56 + n * 8]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Some((columns, masks, b[56 + n * 8..].to_vec()))
}

/// The decoded images (planar, `[n, 3, 64, 64]`) and classes (over the
/// attribute set `set`) of `split` from the CelebA folder `dir`, decoding
/// on `threads` threads, or from the cache a previous load wrote (when the
/// folder is writable). The cache holds all forty attributes, so it serves
/// every attribute set.
pub fn load(dir: &Path, split: Split, set: AttrSet, threads: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    let attr_path = dir.join(ATTR_FILE);
    let (columns, masks, images) = load_masks(dir, split, threads)?;
    check_columns(&attr_path, columns, set)?;
    let labels = masks.iter().map(|&m| set.class_of_mask(m)).collect();
    Ok((images, labels))
}

fn load_masks(dir: &Path, split: Split, threads: usize) -> Result<Decoded> {
    let attr_path = dir.join(ATTR_FILE);
    let part_path = dir.join(PARTITION_FILE);
    let attr_bytes = fsutil::read_limited(&attr_path, MAX_LIST_BYTES, "the attribute list")?;
    let part_bytes = fsutil::read_limited(&part_path, MAX_LIST_BYTES, "the partition list")?;
    let mut h = Sha256::new();
    h.update(&attr_bytes);
    h.update(b"\0");
    h.update(&part_bytes);
    h.update((SIDE as u64).to_le_bytes());
    h.update(CROP_FRACTION.to_le_bytes());
    let key: [u8; 32] = h.finalize().into();
    let cache = cache_path(dir, split);
    if let Some(hit) = read_cache(&cache, &key) {
        return Ok(hit);
    }
    let list = attributes(&attr_path, &attr_bytes)?;
    let partition = parse_partition(&part_path, &part_bytes)?;
    let mut chosen = Vec::new();
    for e in list.entries {
        let p = *partition.get(&e.file).ok_or_else(|| {
            DataError::format(
                &part_path,
                format!(
                    "`{}` (line {} of {ATTR_FILE}) has no partition",
                    e.file, e.line
                ),
            )
        })?;
        let keep = match split {
            Split::Train => p < 2,
            Split::Test => p == 2,
        };
        if keep {
            chosen.push(e);
        }
    }
    if chosen.is_empty() {
        return Err(DataError::format(
            &part_path,
            format!("no {split:?} images are listed").to_lowercase(),
        ));
    }
    let px = CHANNELS * SIDE * SIDE;
    let mut images = vec![0u8; chosen.len() * px];
    let per = chosen.len().div_ceil(threads.max(1));
    let img_dir = dir.join(IMAGE_DIR);
    std::thread::scope(|s| {
        let handles: Vec<_> = chosen
            .chunks(per)
            .zip(images.chunks_mut(per * px))
            .map(|(es, out)| {
                let (img_dir, attr_path) = (&img_dir, &attr_path);
                s.spawn(move || -> Result<()> {
                    for (e, o) in es.iter().zip(out.chunks_mut(px)) {
                        o.copy_from_slice(&decode(&img_dir.join(&e.file), e.line, attr_path)?);
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("decoder thread panicked"))
    })?;
    let masks: Vec<u64> = chosen.iter().map(|e| e.mask).collect();
    // A read-only data folder simply goes without a cache.
    let _ = fsutil::write_atomic_with(&cache, |w| {
        use std::io::Write;
        w.write_all(CACHE_MAGIC)?;
        w.write_all(&key)?;
        w.write_all(&list.columns.to_le_bytes())?;
        w.write_all(&(masks.len() as u64).to_le_bytes())?;
        for m in &masks {
            w.write_all(&m.to_le_bytes())?;
        }
        w.write_all(&images)
    });
    Ok((list.columns, masks, images))
}

/// The attribute columns of `list_attr_celeba.txt`, in the official order.
const OFFICIAL_COLUMNS: [&str; 40] = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
];

/// A fixture image of `class`: its colour in the centre, dark grey around
/// it inside the crop, near-white outside.
fn fixture_image(class: usize, width: u32, height: u32) -> image::RgbImage {
    let centre = fixture_colour(class);
    image::RgbImage::from_fn(width, height, |x, y| {
        let (cx, cy) = (x as f64 / width as f64, y as f64 / height as f64);
        if (0.3..0.7).contains(&cx) && (0.3..0.7).contains(&cy) {
            image::Rgb(centre)
        } else if (0.05..0.95).contains(&cx) && (0.1..0.9).contains(&cy) {
            image::Rgb([40, 40, 40])
        } else {
            image::Rgb([250, 250, 250])
        }
    })
}

/// Write a small CelebA folder in the official format (for tests and
/// demos): `n` JPEG images of `width`×`height` whose centre colour encodes
/// the class and whose border (outside the crop) is grey, attributes that
/// cycle through the classes, and partitions 0, 1, 2 in turn. The classes
/// returned are those of the default attribute set; an attribute outside
/// it, named `a`, is present in image `i` (from 0) when `(i + a.len()) % 3
/// == 0`.
pub fn write_fixture(dir: &Path, n: usize, width: u32, height: u32) -> Result<Vec<usize>> {
    let img_dir = dir.join(IMAGE_DIR);
    std::fs::create_dir_all(&img_dir).map_err(|e| DataError::io(&img_dir, e))?;
    let mut attr = format!("{n}\n{}\n", OFFICIAL_COLUMNS.join(" "));
    let mut part = String::new();
    let mut classes = Vec::new();
    let default = AttrSet::DEFAULT;
    for i in 0..n {
        let class = (i * 37 + 5) % default.num_classes();
        classes.push(class);
        let file = format!("{:06}.jpg", i + 1);
        let a = default.class_attributes(class);
        let vals: Vec<&str> = OFFICIAL_COLUMNS
            .iter()
            .map(
                |name| match DEFAULT_ATTRIBUTES.iter().position(|x| x == name) {
                    Some(bit) if a[bit] == 1 => "1",
                    Some(_) => "-1",
                    None if (i + name.len()) % 3 == 0 => "1",
                    None => "-1",
                },
            )
            .collect();
        attr.push_str(&format!("{file} {}\n", vals.join(" ")));
        part.push_str(&format!("{file} {}\n", i % 3));
        let path = img_dir.join(&file);
        fixture_image(class, width, height)
            .save_with_format(&path, image::ImageFormat::Jpeg)
            .map_err(|e| DataError::format(&path, e.to_string()))?;
    }
    fsutil::write_atomic(&dir.join(ATTR_FILE), attr.as_bytes())?;
    fsutil::write_atomic(&dir.join(PARTITION_FILE), part.as_bytes())?;
    Ok(classes)
}

/// The centre colour of a fixture image of `class` (of the default set):
/// red for `Male`, green for `Smiling`, blue for `Young`.
pub fn fixture_colour(class: usize) -> [u8; 3] {
    let a = AttrSet::DEFAULT.class_attributes(class);
    let v = |bit: usize| if a[bit] == 1 { 220 } else { 30 };
    [v(1), v(2), v(0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: AttrSet = AttrSet::DEFAULT;

    #[test]
    fn captions_follow_the_fixed_order_and_parse_back() {
        let c = |attrs: &[&str]| {
            let v: Vec<usize> = DEFAULT_ATTRIBUTES
                .iter()
                .map(|a| usize::from(attrs.contains(a)))
                .collect();
            D.caption(D.class_of_attributes(&v))
        };
        assert_eq!(
            c(&["Young", "Smiling", "Black_Hair", "Wearing_Lipstick"]),
            "a young woman who is smiling, with black hair, wearing lipstick"
        );
        assert_eq!(c(&["Male"]), "a man");
        assert_eq!(
            c(&["Male", "Bald", "Smiling", "Mustache", "Eyeglasses"]),
            "a man who is smiling and bald, with a mustache, wearing eyeglasses"
        );
        assert_eq!(D.num_classes(), 512);
        assert_eq!(D.dataset_name(), "celeba");
        let names: Vec<&str> = D.attributes().iter().map(|a| a.name).collect();
        assert_eq!(names, DEFAULT_ATTRIBUTES);
        all_captions_are_unique_and_parse_back(D);
        assert_eq!(D.parse_caption("a man and a woman")[MALE], None);
        assert_eq!(D.class_of_caption("a young man who is happy"), None);
    }

    fn all_captions_are_unique_and_parse_back(set: AttrSet) {
        let mut seen = std::collections::HashSet::new();
        for class in 0..set.num_classes() {
            let cap = set.caption(class);
            assert!(seen.insert(cap.clone()), "duplicate caption {cap}");
            let want: Vec<Option<usize>> =
                set.class_attributes(class).into_iter().map(Some).collect();
            assert_eq!(set.parse_caption(&cap), want, "{cap}");
            assert_eq!(set.class_of_caption(&cap), Some(class), "{cap}");
            // The words in any order name the same class (a multi-hot list).
            let mut w = crate::tokenizer::words(&cap);
            w.reverse();
            assert_eq!(set.class_of_caption(&w.join(" ")), Some(class));
        }
    }

    #[test]
    fn every_attribute_has_its_own_key_word() {
        // Each key occurs in its own phrase and in no other phrase, and is
        // none of the caption's fixed words.
        let fixed = [
            "a", "an", "woman", "who", "is", "with", "wearing", "and", "in", "photo",
        ];
        for (i, a) in TABLE.iter().enumerate() {
            assert!(a.phrase.split(' ').any(|w| w == a.key), "{}", a.name);
            assert!(!fixed.contains(&a.key), "{}", a.name);
            for (j, b) in TABLE.iter().enumerate() {
                if i != j {
                    assert!(
                        !b.phrase.split(' ').any(|w| w == a.key),
                        "{} in {}",
                        a.key,
                        b.name
                    );
                }
            }
        }
        // Every attribute alone, and a set spanning every clause.
        for (i, a) in TABLE.iter().enumerate() {
            let set = AttrSet::parse(a.name).unwrap();
            assert_eq!(set.indices(), vec![i]);
            all_captions_are_unique_and_parse_back(set);
        }
        let set = AttrSet::parse(
            "blurry, Attractive,Male,No_Beard,Bangs,Big_Nose,Wearing_Hat,Young,Smiling,Eyeglasses",
        )
        .unwrap();
        all_captions_are_unique_and_parse_back(set);
        let all = (1 << set.len()) - 1;
        assert_eq!(
            set.caption(all),
            "a young attractive man who is smiling and clean shaven, with bangs and a big nose, \
             wearing eyeglasses and a hat, in a blurry photo"
        );
        // Bits in table order: Young, Male, Smiling, Eyeglasses, Attractive, …
        assert_eq!(set.caption(0b10), "a man");
        assert_eq!(set.caption(1 << 4), "an attractive woman");
    }

    #[test]
    fn attribute_sets_parse_name_and_reject_bad_lists() {
        let s = AttrSet::parse("Bangs,young").unwrap();
        // Bit order is table order, whatever the order of the list.
        assert_eq!(s.dataset_name(), "celeba:Young,Bangs");
        assert_eq!(s.num_classes(), 4);
        assert_eq!(s.class_of_mask((1 << 21) | (1 << 5)), 0b10);
        let e = |l: &str| AttrSet::parse(l).unwrap_err().to_string();
        assert!(
            e("Young,Smilling").contains("`Smilling`"),
            "{}",
            e("Young,Smilling")
        );
        assert!(e("Young,young").contains("twice"));
        let many: Vec<&str> = TABLE.iter().take(19).map(|a| a.name).collect();
        assert!(e(&many.join(",")).contains("at most 18"));
    }

    #[test]
    fn celeba19_is_the_eighteen_attributes_of_the_mvae_experiment() {
        let s = AttrSet::CELEBA19;
        assert_eq!(AttrSet::parse(&CELEBA19_ATTRIBUTES.join(",")).unwrap(), s);
        assert_eq!(s.len(), 18);
        assert_eq!(s.dataset_name(), "celeba19");
        let k = crate::DatasetKind::parse("celeba19").unwrap();
        assert_eq!(k, crate::DatasetKind::CelebA(s));
        assert_eq!(k.name(), "celeba19");
        assert_eq!(k.base_name(), "celeba");
        let slots: Vec<&str> = k.slots().iter().map(|s| s.0).collect();
        assert_eq!(slots.len(), 18);
        for want in [
            "bald",
            "bangs",
            "male",
            "smiling",
            "hat",
            "receding_hairline",
        ] {
            assert!(slots.contains(&want), "{want} in {slots:?}");
        }
        assert!(k.slots().iter().all(|s| s.1 == 2));
        // The same set named by its attributes is the same dataset.
        let listed =
            crate::DatasetKind::parse(&format!("celeba:{}", CELEBA19_ATTRIBUTES.join(",")));
        assert_eq!(listed.unwrap(), k);
    }

    #[test]
    fn loads_the_official_format_with_crop_partition_and_cache() {
        let d = tempfile::tempdir().unwrap();
        let classes = write_fixture(d.path(), 9, 178, 218).unwrap();
        let (train, tl) = load(d.path(), Split::Train, D, 2).unwrap();
        let (test, sl) = load(d.path(), Split::Test, D, 1).unwrap();
        // Partitions cycle 0, 1, 2: train holds items 0,1,3,4,6,7.
        let want_train: Vec<u32> = [0, 1, 3, 4, 6, 7]
            .iter()
            .map(|&i| classes[i] as u32)
            .collect();
        let want_test: Vec<u32> = [2, 5, 8].iter().map(|&i| classes[i] as u32).collect();
        assert_eq!(tl, want_train);
        assert_eq!(sl, want_test);
        let px = CHANNELS * SIDE * SIDE;
        assert_eq!(train.len(), 6 * px);
        assert_eq!(test.len(), 3 * px);
        let plane = SIDE * SIDE;
        for (k, &l) in tl.iter().enumerate() {
            let img = &train[k * px..(k + 1) * px];
            let want = fixture_colour(l as usize);
            for c in 0..3 {
                // Centre: the class colour (JPEG is lossy).
                let centre = img[c * plane + 32 * SIDE + 32] as i32;
                assert!((centre - want[c] as i32).abs() < 20, "{centre} vs {want:?}");
                // Corner: the dark frame, not the bright border the crop removes.
                let corner = img[c * plane + SIDE + 1] as i32;
                assert!(corner < 90, "corner {corner}: the border was not cropped");
            }
        }
        // The second load reads the cache: it survives a deleted image...
        assert!(cache_path(d.path(), Split::Train).is_file());
        std::fs::remove_file(d.path().join(IMAGE_DIR).join("000001.jpg")).unwrap();
        assert_eq!(load(d.path(), Split::Train, D, 2).unwrap().1, want_train);
        // The cache serves any attribute set: Young (bit 0 of the default
        // classes), Bangs and Wearing_Hat (the fixture's rule for others).
        let set = AttrSet::parse("Wearing_Hat,Young,Bangs").unwrap();
        let (_, custom) = load(d.path(), Split::Train, set, 2).unwrap();
        let want: Vec<u32> = [0usize, 1, 3, 4, 6, 7]
            .iter()
            .map(|&i| {
                let young = (classes[i] & 1) as u32;
                let bangs = u32::from((i + "Bangs".len()).is_multiple_of(3));
                let hat = u32::from((i + "Wearing_Hat".len()).is_multiple_of(3));
                young | bangs << 1 | hat << 2
            })
            .collect();
        assert_eq!(custom, want);
        // ...until a list changes, which invalidates it.
        let p = d.path().join(PARTITION_FILE);
        let body = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, body.replace("000002.jpg 1", "000002.jpg 0")).unwrap();
        let e = load(d.path(), Split::Train, D, 2).unwrap_err().to_string();
        assert!(
            e.contains("000001.jpg") && e.contains("line 3"),
            "missing image must name the file and its line: {e}"
        );
    }

    #[test]
    fn bad_lists_name_the_file_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        write_fixture(d.path(), 4, 40, 50).unwrap();
        let attr = d.path().join(ATTR_FILE);
        let good = std::fs::read_to_string(&attr).unwrap();
        let err = |body: &str| {
            std::fs::write(&attr, body).unwrap();
            load(d.path(), Split::Test, D, 1).unwrap_err().to_string()
        };
        let lines: Vec<&str> = good.lines().collect();
        // A value that is not 1 / -1.
        let bad = good.replacen(" -1", " 2", 1);
        let e = err(&bad);
        assert!(
            e.contains(ATTR_FILE) && e.contains("line 3") && e.contains("`2`"),
            "{e}"
        );
        // A short line.
        let short = format!(
            "{}\n{}\n{} 1 -1\n{}\n",
            lines[0],
            lines[1],
            "000001.jpg",
            lines[3..].join("\n")
        );
        let e = err(&short);
        assert!(
            e.contains("line 3") && e.contains("2 attribute values"),
            "{e}"
        );
        // A missing column.
        let e = err(&good.replace("Smiling", "Grinning"));
        assert!(e.contains("line 2") && e.contains("Smiling"), "{e}");
        // A wrong count.
        let e = err(&good.replacen("4\n", "5\n", 1));
        assert!(e.contains("line 1") && e.contains("5 images"), "{e}");
        std::fs::write(&attr, &good).unwrap();
        // A partition file that misses an image, or names a bad partition.
        let part = d.path().join(PARTITION_FILE);
        let pbody = std::fs::read_to_string(&part).unwrap();
        std::fs::write(&part, pbody.replace("000003.jpg 2\n", "")).unwrap();
        let e = load(d.path(), Split::Test, D, 1).unwrap_err().to_string();
        assert!(
            e.contains("000003.jpg") && e.contains("no partition"),
            "{e}"
        );
        std::fs::write(&part, pbody.replace("000003.jpg 2", "000003.jpg 7")).unwrap();
        let e = load(d.path(), Split::Test, D, 1).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("`7`"), "{e}");
        // An undecodable image names the image.
        std::fs::write(&part, &pbody).unwrap();
        std::fs::write(d.path().join(IMAGE_DIR).join("000003.jpg"), b"not a jpeg").unwrap();
        let e = load(d.path(), Split::Test, D, 1).unwrap_err().to_string();
        assert!(e.contains("000003.jpg") && e.contains("decode"), "{e}");
    }

    /// A huge image count on line 1 once sized the list before any line
    /// was read (a capacity overflow, or an allocation of the count).
    #[test]
    fn an_announced_count_past_the_lines_is_an_error_not_an_allocation() {
        for count in [u64::MAX, 1 << 40] {
            let body = format!("{count}\nYoung Male\n000001.jpg 1 -1\n");
            let e = parse_attributes(Path::new("a.txt"), body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("a.txt") && e.contains(&format!("announces {count} images")),
                "{e}"
            );
        }
        let e = parse_attributes(Path::new("a.txt"), b"1\nYoung\n\xff 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    /// An image count whose byte length wraps around to the file's length
    /// once passed the cache's length check (and then sliced past it).
    #[test]
    fn a_cache_whose_count_overflows_is_ignored() {
        let key = [7u8; 32];
        let mut b = CACHE_MAGIC.to_vec();
        b.extend_from_slice(&key);
        b.extend_from_slice(&0u64.to_le_bytes());
        let ok = [b.clone(), 0u64.to_le_bytes().to_vec()].concat();
        assert_eq!(parse_cache(&ok, &key), Some((0, vec![], vec![])));
        // 2^61 × (8 + 3·64·64) bytes is 0 modulo 2^64.
        let wraps = [b, (1u64 << 61).to_le_bytes().to_vec()].concat();
        assert_eq!(parse_cache(&wraps, &key), None);
    }
}
