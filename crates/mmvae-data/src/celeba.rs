//! CelebA faces with attribute captions, as in "Multimodal VAE for
//! Text-Image Tasks": the official aligned images, centre-cropped and resized
//! to 64×64 RGB, and nine of the forty binary attributes rendered into one
//! deterministic caption ("a young woman who is smiling, with black hair,
//! wearing lipstick").
//!
//! A class is the set of the nine attributes, as a bit mask (bit `i` set when
//! [`ATTRIBUTES`]`[i]` is present), so there are 512 classes and nine binary
//! attribute slots; the caption names each present attribute by one word, so
//! it also serves as a multi-hot attribute list.
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

/// Side of the square images, in pixels.
pub const SIDE: usize = 64;
pub const CHANNELS: usize = 3;
/// The attributes used, in bit order (official column names).
pub const ATTRIBUTES: [&str; 9] = [
    "Young",
    "Male",
    "Smiling",
    "Eyeglasses",
    "Black_Hair",
    "Blond_Hair",
    "Bald",
    "Mustache",
    "Wearing_Lipstick",
];
/// Slot names (lower case) in bit order.
pub const SLOT_NAMES: [&str; 9] = [
    "young",
    "male",
    "smiling",
    "eyeglasses",
    "black_hair",
    "blond_hair",
    "bald",
    "mustache",
    "lipstick",
];
pub const NUM_CLASSES: usize = 1 << ATTRIBUTES.len();
pub const ATTR_FILE: &str = "list_attr_celeba.txt";
pub const PARTITION_FILE: &str = "list_eval_partition.txt";
pub const IMAGE_DIR: &str = "img_align_celeba";
/// The centre crop keeps this fraction of the shorter side (148 px of the
/// official 178×218 images, the usual crop for 64×64 CelebA models).
pub const CROP_FRACTION: f64 = 148.0 / 178.0;

const YOUNG: usize = 0;
const MALE: usize = 1;
const SMILING: usize = 2;
const EYEGLASSES: usize = 3;
const BLACK: usize = 4;
const BLOND: usize = 5;
const BALD: usize = 6;
const MUSTACHE: usize = 7;
const LIPSTICK: usize = 8;

/// The word that names each attribute in a caption (for `Male`: `man`; its
/// absence is named by `woman`).
const WORDS: [&str; 9] = [
    "young",
    "man",
    "smiling",
    "eyeglasses",
    "black",
    "blond",
    "bald",
    "mustache",
    "lipstick",
];

/// Where users get the files.
pub const HOW_TO_GET: &str = "CelebA cannot be downloaded by mmvae: get `img_align_celeba.zip`, `list_attr_celeba.txt` (Anno/) and `list_eval_partition.txt` (Eval/) from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, unzip the images into a folder `celeba/` beside the two lists, and point --data-dir / MMVAE_DATA at it (or at its parent)";

/// The value (0 or 1) of each attribute of `class`, in bit order.
pub fn attributes(class: usize) -> Vec<usize> {
    (0..ATTRIBUTES.len()).map(|i| (class >> i) & 1).collect()
}

/// The class whose attributes are `attrs` (values other than 0 count as 1).
pub fn class_of_attributes(attrs: &[usize]) -> usize {
    attrs
        .iter()
        .enumerate()
        .filter(|(_, &a)| a != 0)
        .fold(0, |c, (i, _)| c | (1 << i))
}

fn join_and(items: &[&str]) -> String {
    items.join(" and ")
}

/// The caption of `class`: subject, then `who is …`, `with …`, `wearing …`
/// clauses in a fixed order, naming only the attributes present.
pub fn caption(class: usize) -> String {
    let a = attributes(class);
    let on = |i: usize| a[i] == 1;
    let mut s = String::from("a ");
    if on(YOUNG) {
        s.push_str("young ");
    }
    s.push_str(if on(MALE) { "man" } else { "woman" });
    let pick = |items: &[(usize, &'static str)]| -> Vec<&'static str> {
        items
            .iter()
            .filter(|(i, _)| on(*i))
            .map(|(_, w)| *w)
            .collect()
    };
    let is = pick(&[(SMILING, "smiling"), (BALD, "bald")]);
    let with = pick(&[
        (BLACK, "black hair"),
        (BLOND, "blond hair"),
        (MUSTACHE, "a mustache"),
    ]);
    let wearing = pick(&[(EYEGLASSES, "eyeglasses"), (LIPSTICK, "lipstick")]);
    let mut clauses = Vec::new();
    if !is.is_empty() {
        clauses.push(format!("who is {}", join_and(&is)));
    }
    if !with.is_empty() {
        clauses.push(format!("with {}", join_and(&with)));
    }
    if !wearing.is_empty() {
        clauses.push(format!("wearing {}", join_and(&wearing)));
    }
    if !clauses.is_empty() {
        s.push(' ');
        s.push_str(&clauses.join(", "));
    }
    s
}

/// Each attribute's value as a caption names it: present when its word
/// occurs. `Male` is `None` unless exactly one of `man` / `woman` occurs.
/// Word order does not matter, so a set of words parses as well as a
/// sentence.
pub fn parse_caption(text: &str) -> Vec<Option<usize>> {
    let words = crate::tokenizer::words(text);
    let has = |w: &str| words.iter().any(|x| x == w);
    (0..ATTRIBUTES.len())
        .map(|i| {
            if i == MALE {
                match (has("man"), has("woman")) {
                    (true, false) => Some(1),
                    (false, true) => Some(0),
                    _ => None,
                }
            } else {
                Some(usize::from(has(WORDS[i])))
            }
        })
        .collect()
}

/// The class a caption names when every attribute parses and the caption
/// uses exactly the words of that class's caption (in any order).
pub fn class_of_caption(text: &str) -> Option<usize> {
    let attrs = parse_caption(text)
        .into_iter()
        .collect::<Option<Vec<usize>>>()?;
    let class = class_of_attributes(&attrs);
    let set = |t: &str| {
        crate::tokenizer::words(t)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
    };
    (set(text) == set(&caption(class))).then_some(class)
}

/// One image of the attribute list.
#[derive(Debug, Clone)]
struct Entry {
    file: String,
    /// 1-based line in the attribute file.
    line: usize,
    class: u32,
}

/// Read `list_attr_celeba.txt`: one entry per image, with the class made of
/// [`ATTRIBUTES`].
fn read_attributes(path: &Path) -> Result<Vec<Entry>> {
    let body = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
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
    let columns: Vec<usize> = ATTRIBUTES
        .iter()
        .map(|a| {
            names
                .iter()
                .position(|n| n == a)
                .ok_or_else(|| at(2, format!("attribute `{a}` is not among the column names")))
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(count);
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
        let class = columns
            .iter()
            .enumerate()
            .filter(|(_, &col)| values[col] == "1")
            .fold(0u32, |c, (bit, _)| c | (1 << bit));
        out.push(Entry {
            file: file.to_string(),
            line,
            class,
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
    Ok(out)
}

/// Read `list_eval_partition.txt`: file name → partition (0, 1 or 2).
fn read_partition(path: &Path) -> Result<HashMap<String, u8>> {
    let body = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
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
    let img = image::load_from_memory(&bytes)
        .map_err(|e| DataError::format(path, format!("cannot decode image: {e}")))?;
    Ok(crop_resize(&img))
}

const CACHE_MAGIC: &[u8; 8] = b"MMVAECA1";

fn cache_path(dir: &Path, split: Split) -> PathBuf {
    let s = match split {
        Split::Train => "train",
        Split::Test => "test",
    };
    dir.join(format!("mmvae-cache-{SIDE}-{s}.bin"))
}

fn read_cache(path: &Path, key: &[u8; 32]) -> Option<(Vec<u8>, Vec<u32>)> {
    let b = std::fs::read(path).ok()?;
    if b.len() < 48 || &b[..8] != CACHE_MAGIC || &b[8..40] != key {
        return None;
    }
    let n = u64::from_le_bytes(b[40..48].try_into().ok()?) as usize;
    let px = CHANNELS * SIDE * SIDE;
    if b.len() != 48 + n * 4 + n * px {
        return None;
    }
    let labels = b[48..48 + n * 4]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Some((b[48 + n * 4..].to_vec(), labels))
}

/// The decoded images (planar, `[n, 3, 64, 64]`) and classes of `split`
/// from the CelebA folder `dir`, decoding on `threads` threads, or from the
/// cache a previous load wrote (when the folder is writable).
pub fn load(dir: &Path, split: Split, threads: usize) -> Result<(Vec<u8>, Vec<u32>)> {
    let attr_path = dir.join(ATTR_FILE);
    let part_path = dir.join(PARTITION_FILE);
    let attr_bytes = std::fs::read(&attr_path).map_err(|e| DataError::io(&attr_path, e))?;
    let part_bytes = std::fs::read(&part_path).map_err(|e| DataError::io(&part_path, e))?;
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
    let entries = read_attributes(&attr_path)?;
    let partition = read_partition(&part_path)?;
    let mut chosen = Vec::new();
    for e in entries {
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
    let labels: Vec<u32> = chosen.iter().map(|e| e.class).collect();
    // A read-only data folder simply goes without a cache.
    let _ = fsutil::write_atomic_with(&cache, |w| {
        use std::io::Write;
        w.write_all(CACHE_MAGIC)?;
        w.write_all(&key)?;
        w.write_all(&(labels.len() as u64).to_le_bytes())?;
        for l in &labels {
            w.write_all(&l.to_le_bytes())?;
        }
        w.write_all(&images)
    });
    Ok((images, labels))
}

/// Write a small CelebA folder in the official format (for tests and
/// demos): `n` JPEG images of `width`×`height` whose centre colour encodes
/// the class and whose border (outside the crop) is grey, attributes that
/// cycle through the classes, and partitions 0, 1, 2 in turn.
pub fn write_fixture(dir: &Path, n: usize, width: u32, height: u32) -> Result<Vec<usize>> {
    let img_dir = dir.join(IMAGE_DIR);
    std::fs::create_dir_all(&img_dir).map_err(|e| DataError::io(&img_dir, e))?;
    let all = [
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
    let mut attr = format!("{n}\n{}\n", all.join(" "));
    let mut part = String::new();
    let mut classes = Vec::new();
    for i in 0..n {
        let class = (i * 37 + 5) % NUM_CLASSES;
        classes.push(class);
        let file = format!("{:06}.jpg", i + 1);
        let a = attributes(class);
        let vals: Vec<&str> = all
            .iter()
            .map(|name| match ATTRIBUTES.iter().position(|x| x == name) {
                Some(bit) if a[bit] == 1 => "1",
                Some(_) => "-1",
                None if (i + name.len()) % 3 == 0 => "1",
                None => "-1",
            })
            .collect();
        attr.push_str(&format!("{file} {}\n", vals.join(" ")));
        part.push_str(&format!("{file} {}\n", i % 3));
        let centre = fixture_colour(class);
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            let (cx, cy) = (x as f64 / width as f64, y as f64 / height as f64);
            if (0.3..0.7).contains(&cx) && (0.3..0.7).contains(&cy) {
                image::Rgb(centre)
            } else if (0.05..0.95).contains(&cx) && (0.1..0.9).contains(&cy) {
                image::Rgb([40, 40, 40])
            } else {
                image::Rgb([250, 250, 250])
            }
        });
        let path = img_dir.join(&file);
        img.save_with_format(&path, image::ImageFormat::Jpeg)
            .map_err(|e| DataError::format(&path, e.to_string()))?;
    }
    fsutil::write_atomic(&dir.join(ATTR_FILE), attr.as_bytes())?;
    fsutil::write_atomic(&dir.join(PARTITION_FILE), part.as_bytes())?;
    Ok(classes)
}

/// The centre colour of a fixture image of `class`.
pub fn fixture_colour(class: usize) -> [u8; 3] {
    let a = attributes(class);
    [
        if a[MALE] == 1 { 220 } else { 30 },
        if a[SMILING] == 1 { 220 } else { 30 },
        if a[YOUNG] == 1 { 220 } else { 30 },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_follow_the_fixed_order_and_parse_back() {
        let c = |attrs: &[&str]| {
            let v: Vec<usize> = ATTRIBUTES
                .iter()
                .map(|a| usize::from(attrs.contains(a)))
                .collect();
            caption(class_of_attributes(&v))
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
        let mut seen = std::collections::HashSet::new();
        for class in 0..NUM_CLASSES {
            let cap = caption(class);
            assert!(seen.insert(cap.clone()), "duplicate caption {cap}");
            let want: Vec<Option<usize>> = attributes(class).into_iter().map(Some).collect();
            assert_eq!(parse_caption(&cap), want, "{cap}");
            assert_eq!(class_of_caption(&cap), Some(class), "{cap}");
            // The words in any order name the same class (a multi-hot list).
            let mut w = crate::tokenizer::words(&cap);
            w.reverse();
            assert_eq!(class_of_caption(&w.join(" ")), Some(class));
        }
        assert_eq!(parse_caption("a man and a woman")[MALE], None);
        assert_eq!(class_of_caption("a young man who is happy"), None);
    }

    #[test]
    fn loads_the_official_format_with_crop_partition_and_cache() {
        let d = tempfile::tempdir().unwrap();
        let classes = write_fixture(d.path(), 9, 178, 218).unwrap();
        let (train, tl) = load(d.path(), Split::Train, 2).unwrap();
        let (test, sl) = load(d.path(), Split::Test, 1).unwrap();
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
        assert_eq!(load(d.path(), Split::Train, 2).unwrap().1, want_train);
        // ...until a list changes, which invalidates it.
        let p = d.path().join(PARTITION_FILE);
        let body = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, body.replace("000002.jpg 1", "000002.jpg 0")).unwrap();
        let e = load(d.path(), Split::Train, 2).unwrap_err().to_string();
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
            load(d.path(), Split::Test, 1).unwrap_err().to_string()
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
        let e = load(d.path(), Split::Test, 1).unwrap_err().to_string();
        assert!(
            e.contains("000003.jpg") && e.contains("no partition"),
            "{e}"
        );
        std::fs::write(&part, pbody.replace("000003.jpg 2", "000003.jpg 7")).unwrap();
        let e = load(d.path(), Split::Test, 1).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("`7`"), "{e}");
        // An undecodable image names the image.
        std::fs::write(&part, &pbody).unwrap();
        std::fs::write(d.path().join(IMAGE_DIR).join("000003.jpg"), b"not a jpeg").unwrap();
        let e = load(d.path(), Split::Test, 1).unwrap_err().to_string();
        assert!(e.contains("000003.jpg") && e.contains("decode"), "{e}");
    }
}
