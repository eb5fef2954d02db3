#![no_main]
//! The decoded-CelebA cache beside the lists. Its key (a hash of the lists)
//! is taken from the input itself, so the fuzzer gets past the key check.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut key = [0u8; 32];
    if data.len() >= 40 {
        key.copy_from_slice(&data[8..40]);
    }
    if let Some((_, masks, images)) = mmvae_data::celeba::parse_cache(data, &key) {
        assert_eq!(images.len(), masks.len() * 3 * 64 * 64);
    }
});
