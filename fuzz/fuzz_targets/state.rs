#![no_main]
//! A checkpoint's `state.json`.
mod common;
use libfuzzer_sys::fuzz_target;
use mmvae_model::io::checkpoint::TrainState;

fuzz_target!(|data: &[u8]| {
    let dir = std::path::Path::new("ck");
    common::checked(TrainState::from_json(data, dir), "state.json");
});
