#![no_main]
//! PNG and JPEG files: an input image of a fixed size (`load_image`) and
//! one of any size, cropped and resized (`load_image_fitted`, as the pairs
//! and CelebA datasets read theirs).
mod common;
use libfuzzer_sys::fuzz_target;
use mmvae_data::imageio;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.png");
    if let Some(img) = common::checked(imageio::image_from_bytes(data, path, 1, 28, 28), "fuzz.png")
    {
        assert_eq!(img.pixels.len(), 28 * 28);
    }
    if let Some(img) = common::checked(imageio::fitted_from_bytes(data, path, 3, 16), "fuzz.png") {
        assert_eq!(img.pixels.len(), 3 * 16 * 16);
    }
});
