//! The fuzz targets' corpora, `fuzz/corpus/<target>/`, replayed through the
//! parsers their targets call: the valid seeds (`seed-*`) must parse, and
//! every other file kept there (minimised inputs that once crashed a
//! parser) must not panic.
//!
//! The seeds are small valid files written by the product's own writers:
//! `MMVAE_WRITE_CORPUS=1 cargo test -p mmvae-data --test fuzz_corpus`
//! (re)writes them (`fuzz/make-corpus.sh` does it for every crate).

use std::io::Write;
use std::path::{Path, PathBuf};

use mmvae_data::imageio::{self, Image};
use mmvae_data::{celeba, idx, pairs, TokenLevel, Vocab};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn jpeg(img: &image::DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out
}

fn png(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Every seed: (target, file name, bytes).
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut s = Vec::new();
    // IDX: images and labels, raw and gzipped.
    let images: Vec<u8> = (0..2 * 28 * 28).map(|i| (i * 7 % 256) as u8).collect();
    s.push(("idx", "seed-images.idx", idx::encode(&[2, 28, 28], &images)));
    s.push((
        "idx",
        "seed-images.idx.gz",
        gz(&idx::encode(&[2, 28, 28], &images)),
    ));
    s.push((
        "idx",
        "seed-labels.idx",
        idx::encode(&[5], &[0, 1, 2, 9, 3]),
    ));
    s.push(("idx", "seed-labels.idx.gz", gz(&idx::encode(&[5], &[7; 5]))));
    s.push(("idx", "seed-4d.idx", idx::encode(&[1, 2, 3, 2], &[1; 12])));
    // Images: a 28×28 grey PNG (as `predict` reads), RGB and RGBA PNGs,
    // a 16-bit PNG, and grey and colour JPEGs of other sizes.
    let grey = Image::from_bytes(1, 28, 28, &images[..784]);
    s.push(("image", "seed-grey28.png", imageio::encode_png(&grey)));
    let rgb = image::RgbImage::from_fn(9, 6, |x, y| image::Rgb([x as u8 * 25, y as u8 * 40, 99]));
    let rgb = image::DynamicImage::ImageRgb8(rgb);
    s.push(("image", "seed-rgb.png", png(&rgb)));
    s.push((
        "image",
        "seed-rgba.png",
        png(&image::DynamicImage::ImageRgba8(rgb.to_rgba8())),
    ));
    s.push((
        "image",
        "seed-rgb16.png",
        png(&image::DynamicImage::ImageRgb16(rgb.to_rgb16())),
    ));
    s.push(("image", "seed-rgb.jpg", jpeg(&rgb, 80)));
    s.push((
        "image",
        "seed-grey28.jpg",
        jpeg(
            &image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(28, 28, |x, y| {
                image::Luma([(x * y) as u8])
            })),
            60,
        ),
    ));
    // Pairs files.
    s.push((
        "pairs_csv",
        "seed-pairs.csv",
        b"file,caption,split\na.png,\"a cat, sitting\",train\nb.png,a dog,test\nc/d.png,a bird,\n/abs/e.jpg,two words,val\n".to_vec(),
    ));
    s.push((
        "pairs_csv",
        "seed-bad-lines.csv",
        b"image,text\nx.png,\ny.png,one,two\nx.png,again\n\"q.png\",\"quoted \"\"text\"\"\"\n"
            .to_vec(),
    ));
    s.push((
        "pairs_jsonl",
        "seed-pairs.jsonl",
        b"{\"image\": \"x.png\", \"text\": \"red square\", \"split\": \"test\"}\n\n{\"file\": \"y.png\", \"caption\": \"a blue circle\"}\nnot json\n{\"image\": \"z.png\"}\n".to_vec(),
    ));
    // CelebA lists, as the fixture writes them.
    let d = tempfile::tempdir().unwrap();
    celeba::write_fixture(d.path(), 4, 12, 14).unwrap();
    let read = |f: &str| std::fs::read(d.path().join(f)).unwrap();
    s.push((
        "celeba_attr",
        "seed-list_attr_celeba.txt",
        read(celeba::ATTR_FILE),
    ));
    s.push((
        "celeba_attr",
        "seed-few-columns.txt",
        b"2\nYoung Male Smiling\n000001.jpg 1 -1 1\n000002.jpg -1 1 0\n".to_vec(),
    ));
    s.push((
        "celeba_partition",
        "seed-list_eval_partition.txt",
        read(celeba::PARTITION_FILE),
    ));
    // A cache of no images and of one (its key is bytes 8..40).
    let cache = |n: u64| {
        let mut b = b"MMVAECA2".to_vec();
        b.extend_from_slice(&[3; 32]);
        b.extend_from_slice(&0x1ffu64.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
        b.extend((0..n).flat_map(|i| (i * 5).to_le_bytes()));
        b.extend((0..n as usize * 3 * 64 * 64).map(|i| (i % 251) as u8));
        b
    };
    s.push(("celeba_cache", "seed-empty.bin", cache(0)));
    s.push(("celeba_cache", "seed-one.bin", cache(1)));
    // Vocabularies: a word list and a character vocabulary.
    let save = |v: Vocab| {
        let p = d.path().join("vocab.json");
        v.save(&p).unwrap();
        std::fs::read(p).unwrap()
    };
    s.push((
        "vocab",
        "seed-words.json",
        save(Vocab::build([
            "a photo of the digit seven",
            "an ankle boot",
        ])),
    ));
    s.push((
        "vocab",
        "seed-chars.json",
        save(Vocab::build_at(
            TokenLevel::Char,
            ["1 7 7 3", "big red heart"],
        )),
    ));
    s
}

/// Run one input through the parser of `target`; `Ok` when it parsed.
fn replay(target: &str, data: &[u8]) -> Result<(), String> {
    let e = |e: mmvae_data::DataError| e.to_string();
    match target {
        "idx" => idx::decode(data, Path::new("fuzz.idx"))
            .map(drop)
            .map_err(e),
        "image" => {
            let p = Path::new("fuzz.png");
            imageio::image_from_bytes(data, p, 1, 28, 28)
                .map(drop)
                .or_else(|_| imageio::fitted_from_bytes(data, p, 3, 16).map(drop))
                .map_err(e)
        }
        "pairs_csv" => pairs::parse_pairs(Path::new("d/fuzz.csv"), data, false)
            .map(drop)
            .map_err(e),
        "pairs_jsonl" => pairs::parse_pairs(Path::new("d/fuzz.jsonl"), data, true)
            .map(drop)
            .map_err(e),
        "celeba_attr" => celeba::parse_attributes(Path::new("list_attr_celeba.txt"), data)
            .map(drop)
            .map_err(e),
        "celeba_partition" => celeba::parse_partition(Path::new("list_eval_partition.txt"), data)
            .map(drop)
            .map_err(e),
        "celeba_cache" => {
            let mut key = [0u8; 32];
            if data.len() >= 40 {
                key.copy_from_slice(&data[8..40]);
            }
            celeba::parse_cache(data, &key)
                .map(drop)
                .ok_or_else(|| "not a cache".to_string())
        }
        "vocab" => Vocab::from_json(data, Path::new("vocab.json"))
            .map(drop)
            .map_err(e),
        t => panic!("no replay for target {t}"),
    }
}

const TARGETS: [&str; 8] = [
    "idx",
    "image",
    "pairs_csv",
    "pairs_jsonl",
    "celeba_attr",
    "celeba_partition",
    "celeba_cache",
    "vocab",
];

#[test]
fn every_seed_is_checked_in_and_parses() {
    let write = std::env::var_os("MMVAE_WRITE_CORPUS").is_some();
    for (target, name, bytes) in seeds() {
        assert!(TARGETS.contains(&target));
        let p = corpus(target).join(name);
        if write {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &bytes).unwrap();
        }
        assert!(
            p.is_file(),
            "{} is missing; run fuzz/make-corpus.sh",
            p.display()
        );
        replay(target, &bytes).unwrap_or_else(|e| panic!("seed {target}/{name}: {e}"));
    }
}

#[test]
fn the_checked_in_corpora_replay_without_a_panic() {
    for target in TARGETS {
        let dir = corpus(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = entry.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let r = replay(target, &data);
            if name.starts_with("seed-") {
                r.unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
            n += 1;
        }
        assert!(n > 0, "{} is empty", dir.display());
    }
}
