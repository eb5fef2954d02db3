#![no_main]
//! A JSON-lines pairs file: what `pairs::read_pairs` does with its bytes.
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("d/fuzz.jsonl");
    if let Some(p) = common::checked(
        mmvae_data::pairs::parse_pairs(path, data, true),
        "fuzz.jsonl",
    ) {
        for e in &p.errors {
            assert!(e.contains("fuzz.jsonl") && !e.contains('\n'), "{e}");
        }
    }
});
