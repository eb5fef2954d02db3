#![no_main]
//! CelebA's `list_attr_celeba.txt`.
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("list_attr_celeba.txt");
    let r = mmvae_data::celeba::parse_attributes(path, data);
    common::checked(r, "list_attr_celeba.txt");
});
