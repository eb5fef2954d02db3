//! Files of image–caption pairs: CSV with a header (`image` or `file`, and
//! `text` or `caption`; optionally `split`) or JSON lines with the same
//! keys. Image paths are relative to the file's folder unless absolute.
//!
//! A problem with the file as a whole (unreadable, no usable header) is an
//! error; a problem with one line is reported with its line number and the
//! remaining lines are still read, so the caller can list every bad line.
//!
//! [`load_split`] turns such a file into a training or test split (the
//! `pairs` dataset): images of any size centre-cropped and resized, each
//! item keeping its own caption.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetKind, ImageLabelSet, Split};
use crate::error::{DataError, Result};

/// One image–caption pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// 1-based line in the file.
    pub line: usize,
    pub image: PathBuf,
    pub text: String,
    pub split: Option<String>,
}

/// The pairs of a file, and one message per bad line (`file line N: why`).
#[derive(Debug, Default)]
pub struct Pairs {
    pub pairs: Vec<Pair>,
    pub errors: Vec<String>,
    /// Each image seen so far and its line (to report duplicates).
    seen: std::collections::HashMap<PathBuf, usize>,
}

const IMAGE_KEYS: [&str; 2] = ["image", "file"];
const TEXT_KEYS: [&str; 2] = ["text", "caption"];

/// The longest pairs file read: 256 MiB (about two million captions).
pub const MAX_PAIRS_FILE: u64 = 256 << 20;

/// Read a pairs file; JSON lines if it ends in `.jsonl`, CSV otherwise.
/// A file longer than [`MAX_PAIRS_FILE`] is refused before it is read.
pub fn read_pairs(path: &Path) -> Result<Pairs> {
    let body = crate::fsutil::read_limited(path, MAX_PAIRS_FILE, "the pairs file")?;
    let jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    parse_pairs(path, &body, jsonl)
}

/// The pairs of a file's bytes (`body`), JSON lines or CSV; `path` names
/// it in messages, and its folder is the base of relative image paths.
pub fn parse_pairs(path: &Path, body: &[u8], jsonl: bool) -> Result<Pairs> {
    let body = std::str::from_utf8(body)
        .map_err(|e| DataError::format(path, format!("not UTF-8 text: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = if jsonl {
        parse_jsonl(path, body, base)
    } else {
        parse_csv(path, body, base)?
    };
    for e in &mut out.errors {
        *e = one_line(e);
    }
    if out.pairs.is_empty() && out.errors.is_empty() {
        return Err(DataError::format(path, "no pairs in this file"));
    }
    Ok(out)
}

/// `msg` with line breaks (from a quoted field, a file name) written as
/// `\n` and `\r`, so each message stays one line.
fn one_line(msg: &str) -> String {
    msg.replace('\n', "\\n").replace('\r', "\\r")
}

fn resolve(base: &Path, s: &str) -> PathBuf {
    let p = Path::new(s);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn check_fields(
    path: &Path,
    line: usize,
    base: &Path,
    image: Option<&str>,
    text: Option<&str>,
    split: Option<&str>,
    out: &mut Pairs,
) {
    let at = format!("{} line {line}", path.display());
    match (image.map(str::trim), text.map(str::trim)) {
        (None, _) | (Some(""), _) => out.errors.push(format!("{at}: no image")),
        (_, None) | (_, Some("")) => out.errors.push(format!("{at}: empty text")),
        (Some(i), Some(t)) => {
            let image = resolve(base, i);
            // The same image listed twice is reported on its second line,
            // and only its first line is kept.
            if let Some(first) = out.seen.get(&image) {
                out.errors.push(format!(
                    "{at}: image `{}` already listed on line {first}",
                    image.display()
                ));
                return;
            }
            out.seen.insert(image.clone(), line);
            out.pairs.push(Pair {
                line,
                image,
                text: t.to_string(),
                split: split
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            })
        }
    }
}

fn parse_csv(path: &Path, body: &str, base: &Path) -> Result<Pairs> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(body.as_bytes());
    let header = rdr
        .headers()
        .map_err(|e| DataError::format(path, format!("line 1: {e}")))?
        .clone();
    let find = |keys: &[&str]| {
        header
            .iter()
            .position(|h| keys.contains(&h.trim().to_ascii_lowercase().as_str()))
    };
    let (Some(ci), Some(ct)) = (find(&IMAGE_KEYS), find(&TEXT_KEYS)) else {
        return Err(DataError::format(
            path,
            format!(
                "line 1: the header must name an `image` (or `file`) column and a `text` (or `caption`) column; found {:?}",
                header.iter().collect::<Vec<_>>()
            ),
        ));
    };
    let cs = find(&["split"]);
    let mut out = Pairs::default();
    for rec in rdr.records() {
        match rec {
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                out.errors
                    .push(format!("{} line {line}: {e}", path.display()));
            }
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line() as usize);
                if r.len() != header.len() {
                    out.errors.push(format!(
                        "{} line {line}: {} fields, the header has {}",
                        path.display(),
                        r.len(),
                        header.len()
                    ));
                    continue;
                }
                check_fields(
                    path,
                    line,
                    base,
                    r.get(ci),
                    r.get(ct),
                    cs.and_then(|c| r.get(c)),
                    &mut out,
                );
            }
        }
    }
    Ok(out)
}

fn parse_jsonl(path: &Path, body: &str, base: &Path) -> Pairs {
    let mut out = Pairs::default();
    for (k, raw) in body.lines().enumerate() {
        let line = k + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                out.errors
                    .push(format!("{} line {line}: invalid JSON: {e}", path.display()));
                continue;
            }
        };
        let get = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_str()));
        check_fields(
            path,
            line,
            base,
            get(&IMAGE_KEYS),
            get(&TEXT_KEYS),
            get(&["split"]),
            &mut out,
        );
    }
    out
}

/// What to do with a bad line or image of a pairs dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BadItems {
    /// Stop at the first one, naming its file and line.
    #[default]
    Stop,
    /// Leave it out, and count and list it in the split's notes.
    Skip,
}

/// How a pairs dataset is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairsOptions {
    /// Images are centre-cropped to a square and resized to `side`×`side`.
    pub side: usize,
    /// 1 (grey) or 3 (RGB); images with other channel counts are converted.
    pub channels: usize,
    pub bad: BadItems,
}

impl Default for PairsOptions {
    fn default() -> Self {
        Self {
            side: 64,
            channels: 3,
            bad: BadItems::Stop,
        }
    }
}

/// The names looked for in a folder given as a pairs dataset.
pub const CAPTION_FILES: [&str; 2] = ["captions.csv", "captions.jsonl"];

/// The captions file of `path`: `path` itself, or the one of
/// [`CAPTION_FILES`] inside it.
pub fn captions_file(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if path.is_dir() {
        return CAPTION_FILES
            .iter()
            .map(|f| path.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                DataError::format(
                    path,
                    format!("no {} in this folder", CAPTION_FILES.join(" or ")),
                )
            });
    }
    Err(DataError::format(path, "no such captions file or folder"))
}

/// The split of a pair: its `split` value (`train`, `val`/`valid`/
/// `validation` count as training; `test`), or without one a hash of the
/// image's file name that puts about one pair in ten in the test split.
fn split_of(file: &Path, p: &Pair) -> std::result::Result<Split, String> {
    match p.split.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => {
            let name = p
                .image
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x1000_0000_01b3)
            });
            Ok(if crate::captions::splitmix64(h).is_multiple_of(10) {
                Split::Test
            } else {
                Split::Train
            })
        }
        Some("train" | "training" | "val" | "valid" | "validation") => Ok(Split::Train),
        Some("test" | "testing") => Ok(Split::Test),
        Some(other) => Err(one_line(&format!(
            "{} line {}: split `{other}` is not train, val or test",
            file.display(),
            p.line
        ))),
    }
}

/// A pair's image bytes and the conversion it took (if any), or why it
/// could not be read.
type Decoded = std::result::Result<(Vec<u8>, Option<&'static str>), String>;

/// One decoded image, and whether its channels had to be converted.
fn decode_pair(file: &Path, p: &Pair, opts: &PairsOptions) -> Decoded {
    let at = format!("line {} of {}", p.line, file.display());
    let bytes = crate::fsutil::read_limited(&p.image, crate::imageio::MAX_IMAGE_BYTES, "the image")
        .map_err(|e| format!("{e} (the image on {at})"))?;
    let img = crate::imageio::decode_image(&bytes, &p.image)
        .map_err(|e| format!("{e} (the image on {at})"))?;
    let c = img.color();
    let converted = match (c.channel_count(), opts.channels) {
        (1, 1) | (3, 3) => None,
        (2, 1) | (4, 3) => Some("transparency dropped"),
        (1 | 2, _) => Some("grey converted to RGB"),
        (_, _) => Some("colour converted to grey"),
    };
    Ok((
        crate::imageio::crop_resize(&img, opts.side, opts.channels, 1.0),
        converted,
    ))
}

/// Each pair's image decoded (see [`decode_pair`]), or its one-line
/// error, on `threads` threads, in the order of `pairs`.
fn decode_all(file: &Path, pairs: &[Pair], opts: &PairsOptions, threads: usize) -> Vec<Decoded> {
    let per = pairs.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = pairs
            .chunks(per)
            .map(|ps| {
                s.spawn(move || {
                    ps.iter()
                        .map(|p| decode_pair(file, p, opts).map_err(|e| one_line(&e)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("decoder thread panicked"))
            .collect()
    })
}

/// What loading the `name` split of `file` left out (bad lines, bad
/// images: the count and the first) and converted (images per conversion).
fn skip_notes(
    name: &str,
    file: &Path,
    [lines, images]: [&[String]; 2],
    converted: std::collections::BTreeMap<&str, usize>,
) -> Vec<String> {
    let mut notes = Vec::new();
    for (what, list) in [("lines", lines), ("images", images)] {
        if !list.is_empty() {
            notes.push(format!(
                "{name} split: skipped {} bad {what} of {}, first: {}",
                list.len(),
                file.display(),
                list[0]
            ));
        }
    }
    for (what, n) in converted {
        notes.push(format!("{name} split: {n} images {what}"));
    }
    notes
}

/// Read `split` of the pairs dataset at `path` (a captions file, or a
/// folder holding one of [`CAPTION_FILES`]), decoding images on `threads`
/// threads. Every item keeps its own caption; labels are all 0.
pub fn load_split(
    path: &Path,
    split: Split,
    opts: &PairsOptions,
    threads: usize,
) -> Result<ImageLabelSet> {
    let file = captions_file(path)?;
    let read = read_pairs(&file)?;
    let mut problems: Vec<String> = read.errors;
    let mut chosen = Vec::new();
    for p in read.pairs {
        match split_of(&file, &p) {
            Ok(s) if s == split => chosen.push(p),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
    }
    let stop = |problems: &[String]| {
        let more = match problems.len() {
            1 => String::new(),
            n => format!(
                " (and {} more bad lines; `data.bad_items = \"skip\"` leaves them out)",
                n - 1
            ),
        };
        DataError::Invalid(format!("{}{more}", problems[0]))
    };
    if opts.bad == BadItems::Stop && !problems.is_empty() {
        return Err(stop(&problems));
    }
    let px = opts.channels * opts.side * opts.side;
    let decoded = decode_all(&file, &chosen, opts, threads);
    let mut images = Vec::with_capacity(chosen.len() * px);
    let mut captions = Vec::with_capacity(chosen.len());
    let mut converted: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut bad_images = Vec::new();
    for (p, d) in chosen.iter().zip(decoded) {
        match d {
            Ok((px_bytes, conv)) => {
                images.extend(px_bytes);
                captions.push(p.text.clone());
                if let Some(c) = conv {
                    *converted.entry(c).or_default() += 1;
                }
            }
            Err(e) if opts.bad == BadItems::Stop => return Err(DataError::Invalid(e)),
            Err(e) => bad_images.push(e),
        }
    }
    let name = format!("{split:?}").to_lowercase();
    let notes = skip_notes(&name, &file, [&problems, &bad_images], converted);
    if captions.is_empty() {
        return Err(DataError::format(
            &file,
            format!("no usable {name} pairs (a `split` column with `train` / `test`, or about one pair in ten by file name, makes the test split)"),
        ));
    }
    let n = captions.len();
    let mut set = ImageLabelSet::new(
        DatasetKind::Pairs,
        opts.channels,
        (opts.side, opts.side),
        images,
        vec![0; n],
    );
    set.captions = Some(captions);
    set.skipped = problems.len() + bad_images.len();
    set.notes = notes;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, s: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, s).unwrap();
        p
    }

    #[test]
    fn csv_pairs_with_quotes_splits_and_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "pairs.csv",
            "file,caption,split\n\
             a.png,\"a cat, sitting\",train\n\
             b.png,,test\n\
             c.png,a dog\n\
             /abs/d.png,a bird,\n\
             a.png,again,train\n",
        );
        let r = read_pairs(&p).unwrap();
        // The duplicate of a.png (line 6) is reported and left out.
        assert_eq!(r.pairs.len(), 2, "{:?}", r.pairs);
        assert_eq!(r.pairs[0].image, d.path().join("a.png"));
        assert_eq!(r.pairs[0].text, "a cat, sitting");
        assert_eq!(r.pairs[0].split.as_deref(), Some("train"));
        assert_eq!(r.pairs[1].image, PathBuf::from("/abs/d.png"));
        assert_eq!(r.pairs[1].split, None);
        assert_eq!(r.errors.len(), 3, "{:?}", r.errors);
        assert!(
            r.errors[0].contains("line 3: empty text"),
            "{}",
            r.errors[0]
        );
        assert!(r.errors[1].contains("line 4: 2 fields"), "{}", r.errors[1]);
        assert!(r.errors[2].contains("line 6") && r.errors[2].contains("line 2"));
    }

    #[test]
    fn jsonl_pairs_and_file_level_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "p.jsonl",
            "{\"image\": \"x.png\", \"text\": \"red square\"}\n\nnot json\n{\"image\": \"y.png\"}\n",
        );
        let r = read_pairs(&p).unwrap();
        assert_eq!(r.pairs.len(), 1);
        assert_eq!(r.pairs[0].line, 1);
        assert!(
            r.errors[0].contains("line 3: invalid JSON"),
            "{:?}",
            r.errors
        );
        assert!(r.errors[1].contains("line 4: empty text"), "{:?}", r.errors);
        let bad = write(d.path(), "h.csv", "path,words\nx.png,hi\n");
        let e = read_pairs(&bad).unwrap_err().to_string();
        assert!(e.contains("h.csv") && e.contains("line 1"), "{e}");
        let e = read_pairs(&d.path().join("missing.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.csv"), "{e}");
        let empty = write(d.path(), "e.csv", "image,text\n");
        assert!(read_pairs(&empty)
            .unwrap_err()
            .to_string()
            .contains("no pairs"));
    }

    /// A folder of pairs: `img{i}.png` RGB images of assorted sizes whose
    /// left half is bright, one grey and one RGBA image, and a captions
    /// file with the given extra lines appended.
    fn folder(dir: &Path, extra: &str) -> PathBuf {
        let mut csv = String::from("file,caption,split\n");
        for i in 0..12 {
            let (w, h) = (20 + 7 * i as u32, 30 + 3 * i as u32);
            let img = image::RgbImage::from_fn(w, h, |x, _| {
                if x < w / 2 {
                    image::Rgb([250, 10 * i as u8, 0])
                } else {
                    image::Rgb([0, 0, 0])
                }
            });
            img.save(dir.join(format!("img{i}.png"))).unwrap();
            let split = if i % 4 == 3 { "test" } else { "train" };
            csv.push_str(&format!("img{i}.png,picture number {i},{split}\n"));
        }
        image::GrayImage::from_pixel(9, 9, image::Luma([200]))
            .save(dir.join("grey.png"))
            .unwrap();
        image::RgbaImage::from_pixel(9, 9, image::Rgba([0, 200, 0, 128]))
            .save(dir.join("alpha.png"))
            .unwrap();
        csv.push_str("grey.png,a grey one,train\nalpha.png,a see-through one,val\n");
        csv.push_str(extra);
        write(dir, "captions.csv", &csv)
    }

    #[test]
    fn pairs_load_as_a_split_with_their_captions_resized_and_converted() {
        let d = tempfile::tempdir().unwrap();
        folder(d.path(), "");
        let opts = PairsOptions {
            side: 16,
            channels: 3,
            bad: BadItems::Stop,
        };
        // The folder finds its captions.csv.
        let train = load_split(d.path(), Split::Train, &opts, 2).unwrap();
        let test = load_split(d.path(), Split::Test, &opts, 2).unwrap();
        assert_eq!((train.len(), test.len()), (11, 3));
        assert_eq!((train.rows, train.cols, train.channels), (16, 16, 3));
        assert_eq!(train.kind, DatasetKind::Pairs);
        let caps = train.captions.as_ref().unwrap();
        assert_eq!(caps[0], "picture number 0");
        assert_eq!(caps[10], "a see-through one", "val counts as training");
        assert_eq!(test.captions.as_ref().unwrap()[0], "picture number 3");
        // Every size is cropped to its centre square and resized: the left
        // half stays bright red, the right half black.
        let plane = 16 * 16;
        for k in 0..9 {
            let img = train.image(k);
            assert!(img[8 * 16 + 1] > 200, "item {k}: left {}", img[8 * 16 + 1]);
            assert!(
                img[8 * 16 + 14] < 30,
                "item {k}: right {}",
                img[8 * 16 + 14]
            );
            assert!(img[2 * plane + 8 * 16 + 1] < 30, "blue plane");
        }
        assert!(
            train
                .notes
                .iter()
                .any(|n| n.contains("1 images grey converted to RGB"))
                && train
                    .notes
                    .iter()
                    .any(|n| n.contains("1 images transparency dropped")),
            "{:?}",
            train.notes
        );
        // Grey output: one channel.
        let grey = PairsOptions {
            channels: 1,
            ..opts
        };
        let g = load_split(d.path(), Split::Train, &grey, 1).unwrap();
        assert_eq!(g.pixels(), 256);
        assert!(g
            .notes
            .iter()
            .any(|n| n.contains("10 images colour converted to grey")));
    }

    #[test]
    fn without_a_split_column_about_one_in_ten_is_test() {
        let d = tempfile::tempdir().unwrap();
        let mut body = String::from("image,text\n");
        image::GrayImage::from_pixel(4, 4, image::Luma([9]))
            .save(d.path().join("x.png"))
            .unwrap();
        for i in 0..400 {
            std::fs::copy(d.path().join("x.png"), d.path().join(format!("p{i}.png"))).unwrap();
            body.push_str(&format!("p{i}.png,item {i}\n"));
        }
        let f = write(d.path(), "list.csv", &body);
        let opts = PairsOptions {
            side: 4,
            channels: 1,
            bad: BadItems::Stop,
        };
        let test = load_split(&f, Split::Test, &opts, 2).unwrap();
        let train = load_split(&f, Split::Train, &opts, 2).unwrap();
        assert_eq!(test.len() + train.len(), 400);
        assert!((20..=60).contains(&test.len()), "{}", test.len());
        // Deterministic.
        assert_eq!(
            load_split(&f, Split::Test, &opts, 1).unwrap().captions,
            test.captions
        );
    }

    #[test]
    fn bad_lines_and_images_stop_with_their_line_or_are_skipped_and_counted() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("broken.png"), b"not a png").unwrap();
        let f = folder(
            d.path(),
            "missing.png,not there,train\nbroken.png,broken,train\nimg1.png,twice,train\nimg2.png,,train\n",
        );
        let stop = PairsOptions {
            side: 8,
            channels: 3,
            bad: BadItems::Stop,
        };
        // Line errors come first, in line order: the duplicate (line 18),
        // then the empty caption (line 19).
        let e = load_split(&f, Split::Train, &stop, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 18") && e.contains("img1.png") && e.contains("already listed"),
            "{e}"
        );
        assert!(e.contains("and 1 more bad lines"), "{e}");
        let clean = std::fs::read_to_string(&f)
            .unwrap()
            .replace("img1.png,twice,train\nimg2.png,,train\n", "");
        std::fs::write(&f, clean).unwrap();
        let e = load_split(&f, Split::Train, &stop, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.png") && e.contains("line 16"), "{e}");
        std::fs::write(
            &f,
            std::fs::read_to_string(&f)
                .unwrap()
                .replace("missing.png,not there,train\n", ""),
        )
        .unwrap();
        let e = load_split(&f, Split::Train, &stop, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("broken.png") && e.contains("decode") && e.contains("line 16"),
            "{e}"
        );
        // Skipping: everything else loads, and the notes count what was left out.
        let f = folder(
            d.path(),
            "missing.png,not there,train\nbroken.png,broken,train\nimg1.png,twice,train\nimg2.png,,train\nimg3.png,x,later\n",
        );
        let skip = PairsOptions {
            bad: BadItems::Skip,
            ..stop
        };
        let s = load_split(&f, Split::Train, &skip, 2).unwrap();
        assert_eq!(s.len(), 11);
        let notes = s.notes.join("\n");
        assert!(
            notes.contains("skipped 3 bad lines") && notes.contains("line 18"),
            "{notes}"
        );
        assert!(
            notes.contains("skipped 2 bad images") && notes.contains("missing.png"),
            "{notes}"
        );
        // A folder without a captions file, and a test split with nothing in it.
        let empty = tempfile::tempdir().unwrap();
        let e = load_split(empty.path(), Split::Train, &stop, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("captions.csv or captions.jsonl"), "{e}");
    }

    /// Found by fuzzing: a quoted image path holding a line break made the
    /// duplicate's message span lines.
    #[test]
    fn a_line_break_in_a_field_stays_inside_one_message() {
        let r = parse_pairs(
            Path::new("d/p.csv"),
            b"image,text\n\",a\ng\",t\n\",a\ng\",q",
            false,
        )
        .unwrap();
        assert_eq!(r.errors.len(), 1);
        let e = &r.errors[0];
        assert!(
            e.contains("already listed") && e.contains("a\\ng") && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn bytes_that_are_not_text_name_the_file() {
        let e = parse_pairs(Path::new("d/p.csv"), b"image,text\nx.png,\xff\n", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("d/p.csv") && e.contains("not UTF-8"), "{e}");
    }
}
