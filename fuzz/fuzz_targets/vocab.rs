#![no_main]
//! A checkpoint's `vocab.json`, then a round trip of text through it.
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("vocab.json");
    if let Some(v) = common::checked(mmvae_data::Vocab::from_json(data, path), "vocab.json") {
        let ids = v.encode_lossy("a photo of the digit 7");
        let framed = v.frame(&ids, 12);
        let _ = v.decode(&framed);
    }
});
