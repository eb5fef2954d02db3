#![no_main]
//! An evaluation classifier's `classifier.json`.
mod common;
use libfuzzer_sys::fuzz_target;
use mmvae_model::eval::classifier::ClassifierInfo;

fuzz_target!(|data: &[u8]| {
    let dir = std::path::Path::new("clf");
    common::checked(ClassifierInfo::from_json(data, dir), "classifier.json");
});
