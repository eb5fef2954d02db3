#![no_main]
//! CelebA's `list_eval_partition.txt`.
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("list_eval_partition.txt");
    let r = mmvae_data::celeba::parse_partition(path, data);
    common::checked(r, "list_eval_partition.txt");
});
