#![no_main]
//! A checkpoint's `consistency.json`, for a model of MNIST; a calibration
//! that loads must print its table.
mod common;
use libfuzzer_sys::fuzz_target;
use mmvae_model::eval::consistency::Calibration;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("ck/consistency.json");
    if let Some(c) = common::checked(
        Calibration::from_json(data, path, "mnist"),
        "consistency.json",
    ) {
        let _ = c.table();
    }
});
