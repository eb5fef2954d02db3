//! Reading input images and writing image grids as PNG.

use crate::error::{DataError, Result};
use crate::fsutil;
use std::path::Path;

/// A grayscale image with values in `[0, 1]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<f32>,
}

impl GrayImage {
    pub fn from_bytes(width: usize, height: usize, bytes: &[u8]) -> Self {
        Self {
            width,
            height,
            pixels: bytes.iter().map(|&b| b as f32 / 255.0).collect(),
        }
    }
}

/// Load a PNG as grayscale, requiring exactly `width`×`height` pixels.
/// Colour images are converted to luminance; the format is detected from the
/// content, not the extension.
pub fn load_gray(path: &Path, width: usize, height: usize) -> Result<GrayImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| DataError::format(path, format!("cannot decode image (PNG expected): {e}")))?;
    if img.width() as usize != width || img.height() as usize != height {
        return Err(DataError::format(
            path,
            format!("image is {}x{}, the model expects {width}x{height} (white on black, like its training data)", img.width(), img.height()),
        ));
    }
    let g = img.to_luma8();
    Ok(GrayImage::from_bytes(width, height, g.as_raw()))
}

/// Encode a grayscale image as PNG bytes.
fn encode_png(width: usize, height: usize, bytes: Vec<u8>) -> Vec<u8> {
    let buf = image::GrayImage::from_raw(width as u32, height as u32, bytes)
        .expect("buffer size matches");
    let mut out = std::io::Cursor::new(Vec::new());
    buf.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encoding to memory cannot fail");
    out.into_inner()
}

/// Save one image as PNG (atomically).
pub fn save_gray(path: &Path, img: &GrayImage) -> Result<()> {
    let bytes = img
        .pixels
        .iter()
        .map(|&p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    fsutil::write_atomic(path, &encode_png(img.width, img.height, bytes))
}

/// Tile images (all the same size) into a grid with `cols` columns and a
/// 2-pixel gray border, and save it as PNG (atomically).
pub fn save_grid(path: &Path, images: &[GrayImage], cols: usize) -> Result<()> {
    let grid = make_grid(images, cols)?;
    save_gray(path, &grid)
}

/// Tile images into one grid image.
pub fn make_grid(images: &[GrayImage], cols: usize) -> Result<GrayImage> {
    let first = images
        .first()
        .ok_or_else(|| DataError::Invalid("no images to tile".into()))?;
    let (w, h) = (first.width, first.height);
    if images.iter().any(|i| i.width != w || i.height != h) {
        return Err(DataError::Invalid(
            "images in a grid must share one size".into(),
        ));
    }
    let cols = cols.clamp(1, images.len());
    let rows = images.len().div_ceil(cols);
    let pad = 2;
    let (gw, gh) = (cols * (w + pad) + pad, rows * (h + pad) + pad);
    let mut px = vec![0.5f32; gw * gh];
    for (k, img) in images.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        let (x0, y0) = (pad + c * (w + pad), pad + r * (h + pad));
        for y in 0..h {
            px[(y0 + y) * gw + x0..(y0 + y) * gw + x0 + w]
                .copy_from_slice(&img.pixels[y * w..(y + 1) * w]);
        }
    }
    Ok(GrayImage {
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
        let img = GrayImage::from_bytes(
            28,
            28,
            &(0..784).map(|i| (i % 256) as u8).collect::<Vec<_>>(),
        );
        let p = d.path().join("x.png");
        save_gray(&p, &img).unwrap();
        assert_eq!(load_gray(&p, 28, 28).unwrap(), img);
    }

    #[test]
    fn wrong_size_and_format_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("small.png");
        save_gray(&p, &GrayImage::from_bytes(10, 12, &[0; 120])).unwrap();
        let e = load_gray(&p, 28, 28).unwrap_err().to_string();
        assert!(e.contains("10x12") && e.contains("small.png"), "{e}");
        let q = d.path().join("text.png");
        std::fs::write(&q, "hello").unwrap();
        assert!(load_gray(&q, 28, 28)
            .unwrap_err()
            .to_string()
            .contains("cannot decode"));
    }

    #[test]
    fn grid_layout() {
        let imgs: Vec<_> = (0..5)
            .map(|k| GrayImage::from_bytes(3, 2, &[k as u8 * 50; 6]))
            .collect();
        let g = make_grid(&imgs, 2).unwrap();
        assert_eq!((g.width, g.height), (2 * 5 + 2, 3 * 4 + 2));
        // Image 3 sits at row 1, column 1.
        let (x, y) = (2 + 5, 2 + 4);
        assert!((g.pixels[y * g.width + x] - 150.0 / 255.0).abs() < 1e-6);
    }
}
