#![no_main]
//! A TOML config: what `TrainConfig::load` does with a file's text.
mod common;
use libfuzzer_sys::fuzz_target;
use mmvae_model::TrainConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let path = std::path::Path::new("fuzz.toml");
        common::checked(TrainConfig::from_toml_str(text, path), "fuzz.toml");
    }
});
