#![no_main]
//! A checkpoint's `text-prior.json`.
mod common;
use libfuzzer_sys::fuzz_target;
use mmvae_model::prior::TextPriorInfo;

fuzz_target!(|data: &[u8]| {
    let dir = std::path::Path::new("ck");
    common::checked(TextPriorInfo::from_json(data, dir), "text-prior.json");
});
