#![no_main]
//! A checkpoint's `consistency-A-B.json` (the check between two
//! modalities), for a model of MNIST with `image` and `digit`; a
//! calibration that loads must print its table.
mod common;
use libfuzzer_sys::fuzz_target;
use mmvae_model::eval::pair_check::PairCalibration;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("ck/consistency-image-digit.json");
    if let Some(c) = common::checked(
        PairCalibration::from_json(data, path, "mnist", ("image", "digit")),
        "consistency-image-digit.json",
    ) {
        let _ = c.table();
    }
});
