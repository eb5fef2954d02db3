#![no_main]
//! IDX files, gzipped or raw: what `idx::read` does with a file's bytes.
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.idx");
    if let Some(a) = common::checked(mmvae_data::idx::decode(data, path), "fuzz.idx") {
        assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
    }
});
