//! Reading input images and writing image grids as PNG.

use crate::error::{DataError, Result};
use crate::fsutil;
use std::path::Path;

/// An image with values in `[0, 1]`: 1 channel (grey) or 3 (RGB), planar
/// (all of channel 0 row-major, then channel 1, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub channels: usize,
    pub width: usize,
    pub height: usize,
    /// `[channels * height * width]`
    pub pixels: Vec<f32>,
}

impl Image {
    /// From planar bytes `[channels * height * width]`.
    pub fn from_bytes(channels: usize, width: usize, height: usize, bytes: &[u8]) -> Self {
        Self {
            channels,
            width,
            height,
            pixels: bytes.iter().map(|&b| b as f32 / 255.0).collect(),
        }
    }

    /// Interleaved 8-bit samples (`[h, w, c]`), as image files store them.
    fn interleaved(&self) -> Vec<u8> {
        let plane = self.width * self.height;
        let mut out = vec![0u8; plane * self.channels];
        for c in 0..self.channels {
            for i in 0..plane {
                out[i * self.channels + c] =
                    (self.pixels[c * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        out
    }
}

/// Planar bytes from interleaved `[h, w, c]` samples.
fn planar(raw: &[u8], channels: usize) -> Vec<u8> {
    let plane = raw.len() / channels;
    let mut out = vec![0u8; raw.len()];
    for i in 0..plane {
        for c in 0..channels {
            out[c * plane + i] = raw[i * channels + c];
        }
    }
    out
}

/// The longest side of an image the toolkit decodes, in pixels (checked
/// from the file's header, before decoding).
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// The most bytes one decoded image may take (width × height × bytes per
/// pixel, checked from the header before decoding; also the decoder's
/// allocation limit): 256 MiB, e.g. a 8192×8192 RGBA photo.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Decode PNG or JPEG bytes (the format detected from the content),
/// refusing from the header alone an image with a side over
/// [`MAX_IMAGE_SIDE`], over [`MAX_IMAGE_BYTES`] decoded, or with no pixels;
/// `path` names the file in errors.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<image::DynamicImage> {
    use image::ImageDecoder;
    let bad = |e: &dyn std::fmt::Display| {
        DataError::format(
            path,
            format!("cannot decode image (PNG or JPEG expected): {e}"),
        )
    };
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder().map_err(|e| bad(&e))?;
    let (w, h) = decoder.dimensions();
    let need = decoder.total_bytes();
    if w == 0 || h == 0 {
        return Err(DataError::format(
            path,
            format!("image is {w}x{h}: no pixels"),
        ));
    }
    if w.max(h) > MAX_IMAGE_SIDE || need > MAX_IMAGE_BYTES {
        return Err(DataError::format(
            path,
            format!(
                "image is {w}x{h} ({need} bytes decoded), more than the limit of {MAX_IMAGE_SIDE} pixels a side and {MAX_IMAGE_BYTES} bytes"
            ),
        ));
    }
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.reserve(need).map_err(|e| bad(&e))?;
    decoder.set_limits(limits).map_err(|e| bad(&e))?;
    image::DynamicImage::from_decoder(decoder).map_err(|e| bad(&e))
}

/// Load an image file (PNG or JPEG, detected from the content) with
/// `channels` channels (1: converted to luminance, 3: RGB), requiring exactly
/// `width`×`height` pixels.
pub fn load_image(path: &Path, channels: usize, width: usize, height: usize) -> Result<Image> {
    let bytes = read_image_file(path)?;
    image_from_bytes(&bytes, path, channels, width, height)
}

/// The bytes of an image file, refusing one longer than [`MAX_IMAGE_BYTES`]
/// (no PNG or JPEG file is larger than its decoded pixels plus headers).
fn read_image_file(path: &Path) -> Result<Vec<u8>> {
    fsutil::read_limited(path, MAX_IMAGE_BYTES, "the image file")
}

/// [`load_image`] on the bytes of a file; `path` names it in errors.
pub fn image_from_bytes(
    bytes: &[u8],
    path: &Path,
    channels: usize,
    width: usize,
    height: usize,
) -> Result<Image> {
    let img = decode_image(bytes, path)?;
    if img.width() as usize != width || img.height() as usize != height {
        let kind = if channels == 1 {
            "white on black, like its training data"
        } else {
            "RGB, like its training data"
        };
        return Err(DataError::format(
            path,
            format!(
                "image is {}x{}, the model expects {width}x{height} ({kind})",
                img.width(),
                img.height()
            ),
        ));
    }
    let raw = match channels {
        1 => img.to_luma8().into_raw(),
        3 => planar(img.to_rgb8().as_raw(), 3),
        c => {
            return Err(DataError::Invalid(format!(
                "images with {c} channels are not supported (1 or 3)"
            )))
        }
    };
    Ok(Image::from_bytes(channels, width, height, &raw))
}

/// Load an image file of any size, centre-cropped to a square and resized
/// to `side`×`side` with `channels` channels (as the pairs dataset reads its
/// images).
pub fn load_image_fitted(path: &Path, channels: usize, side: usize) -> Result<Image> {
    let bytes = read_image_file(path)?;
    fitted_from_bytes(&bytes, path, channels, side)
}

/// [`load_image_fitted`] on the bytes of a file; `path` names it in errors.
pub fn fitted_from_bytes(bytes: &[u8], path: &Path, channels: usize, side: usize) -> Result<Image> {
    let img = decode_image(bytes, path)?;
    Ok(Image::from_bytes(
        channels,
        side,
        side,
        &crop_resize(&img, side, channels, 1.0),
    ))
}

/// Centre-crop a decoded image to a square of `fraction` of its shorter
/// side and resize it to `side`×`side` with `channels` channels (1: luminance,
/// 3: RGB; an alpha channel is dropped); planar bytes `[channels, side, side]`.
pub fn crop_resize(
    img: &image::DynamicImage,
    side: usize,
    channels: usize,
    fraction: f64,
) -> Vec<u8> {
    let (w, h) = (img.width(), img.height());
    let sq = ((w.min(h) as f64 * fraction).round() as u32).clamp(1, w.min(h).max(1));
    let crop = img.crop_imm((w - sq) / 2, (h - sq) / 2, sq, sq);
    let small = crop.resize_exact(
        side as u32,
        side as u32,
        image::imageops::FilterType::Triangle,
    );
    if channels == 1 {
        small.to_luma8().into_raw()
    } else {
        planar(small.to_rgb8().as_raw(), 3)
    }
}

/// PNG bytes of an image.
pub fn encode_png(img: &Image) -> Vec<u8> {
    let (w, h) = (img.width as u32, img.height as u32);
    let raw = img.interleaved();
    let mut out = std::io::Cursor::new(Vec::new());
    let r = if img.channels == 3 {
        image::RgbImage::from_raw(w, h, raw)
            .expect("buffer size matches")
            .write_to(&mut out, image::ImageFormat::Png)
    } else {
        image::GrayImage::from_raw(w, h, raw)
            .expect("buffer size matches")
            .write_to(&mut out, image::ImageFormat::Png)
    };
    r.expect("PNG encoding to memory cannot fail");
    out.into_inner()
}

/// Save one image as PNG (atomically).
pub fn save_image(path: &Path, img: &Image) -> Result<()> {
    fsutil::write_atomic(path, &encode_png(img))
}

/// Tile images (all the same size) into a grid with `cols` columns and a
/// 2-pixel gray border, and save it as PNG (atomically).
pub fn save_grid(path: &Path, images: &[Image], cols: usize) -> Result<()> {
    let grid = make_grid(images, cols)?;
    save_image(path, &grid)
}

/// Tile images into one grid image.
pub fn make_grid(images: &[Image], cols: usize) -> Result<Image> {
    let first = images
        .first()
        .ok_or_else(|| DataError::Invalid("no images to tile".into()))?;
    let (ch, w, h) = (first.channels, first.width, first.height);
    if images
        .iter()
        .any(|i| i.width != w || i.height != h || i.channels != ch)
    {
        return Err(DataError::Invalid(
            "images in a grid must share one size".into(),
        ));
    }
    let cols = cols.clamp(1, images.len());
    let rows = images.len().div_ceil(cols);
    let pad = 2;
    let (gw, gh) = (cols * (w + pad) + pad, rows * (h + pad) + pad);
    let mut px = vec![0.5f32; ch * gw * gh];
    for (k, img) in images.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        let (x0, y0) = (pad + c * (w + pad), pad + r * (h + pad));
        for p in 0..ch {
            for y in 0..h {
                let dst = p * gw * gh + (y0 + y) * gw + x0;
                let src = p * w * h + y * w;
                px[dst..dst + w].copy_from_slice(&img.pixels[src..src + w]);
            }
        }
    }
    Ok(Image {
        channels: ch,
        width: gw,
        height: gh,
        pixels: px,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let img = Image::from_bytes(
            1,
            28,
            28,
            &(0..784).map(|i| (i % 256) as u8).collect::<Vec<_>>(),
        );
        let p = d.path().join("x.png");
        save_image(&p, &img).unwrap();
        assert_eq!(load_image(&p, 1, 28, 28).unwrap(), img);
    }

    #[test]
    fn wrong_size_and_format_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("small.png");
        save_image(&p, &Image::from_bytes(1, 10, 12, &[0; 120])).unwrap();
        let e = load_image(&p, 1, 28, 28).unwrap_err().to_string();
        assert!(e.contains("10x12") && e.contains("small.png"), "{e}");
        let q = d.path().join("text.png");
        std::fs::write(&q, "hello").unwrap();
        assert!(load_image(&q, 1, 28, 28)
            .unwrap_err()
            .to_string()
            .contains("cannot decode"));
    }

    /// A PNG chunk: length, type and data, CRC.
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let body = [kind, data].concat();
        let crc = body.iter().fold(!0u32, |mut c, &b| {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0xedb8_8320
                } else {
                    c >> 1
                };
            }
            c
        });
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&(!crc).to_be_bytes());
        out
    }

    /// The start of a PNG announcing `w`×`h` 8-bit RGBA: the signature,
    /// the IHDR chunk and an empty IDAT chunk.
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend(chunk(b"IHDR", &ihdr));
        out.extend(chunk(b"IDAT", &[]));
        out
    }

    /// Found by fuzzing: the JPEG decoder's message for a file cut short
    /// after its start-of-image marker spans two lines.
    #[test]
    fn a_truncated_jpeg_is_a_one_line_error() {
        let e = decode_image(&[0xff, 0xd8, 0xff], Path::new("cut.jpg"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut.jpg") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn oversized_images_are_refused_from_their_header() {
        let p = Path::new("wide.png");
        for (w, h) in [(MAX_IMAGE_SIDE + 1, 1), (1, 1 << 30), (9000, 9000)] {
            let e = decode_image(&png_header(w, h), p).unwrap_err().to_string();
            assert!(
                e.contains("wide.png")
                    && e.contains(&format!("{w}x{h}"))
                    && e.contains(&MAX_IMAGE_SIDE.to_string()),
                "{e}"
            );
        }
        // Within the limits, the missing data is what fails.
        let e = decode_image(&png_header(4, 4), p).unwrap_err().to_string();
        assert!(e.contains("cannot decode"), "{e}");
    }

    #[test]
    fn grid_layout() {
        let imgs: Vec<_> = (0..5)
            .map(|k| Image::from_bytes(1, 3, 2, &[k as u8 * 50; 6]))
            .collect();
        let g = make_grid(&imgs, 2).unwrap();
        assert_eq!((g.width, g.height), (2 * 5 + 2, 3 * 4 + 2));
        // Image 3 sits at row 1, column 1.
        let (x, y) = (2 + 5, 2 + 4);
        assert!((g.pixels[y * g.width + x] - 150.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn rgb_round_trips_planar() {
        let d = tempfile::tempdir().unwrap();
        // Channel planes 10, 20, 30 (+ position) on a 4×3 image.
        let bytes: Vec<u8> = (0..3)
            .flat_map(|c| (0..12).map(move |i| (10 * (c + 1) + i) as u8))
            .collect();
        let img = Image::from_bytes(3, 4, 3, &bytes);
        let p = d.path().join("rgb.png");
        save_image(&p, &img).unwrap();
        assert_eq!(load_image(&p, 3, 4, 3).unwrap(), img);
        // The same file read as grey is one plane of luminance.
        let g = load_image(&p, 1, 4, 3).unwrap();
        assert_eq!((g.channels, g.pixels.len()), (1, 12));
        // A grid keeps channels apart.
        let grid = make_grid(&[img.clone(), img], 2).unwrap();
        assert_eq!(grid.channels, 3);
        let plane = grid.width * grid.height;
        assert!((grid.pixels[2 * plane + 2 * grid.width + 2] - 30.0 / 255.0).abs() < 1e-6);
    }
}
