#![no_main]
//! A weights file (`model.bpk`, `text-prior.bpk`, …): its header parsed and
//! its tensors matched against a model's, as `load_weights` does before
//! loading. The model is the seeds': a linear layer 3 → 2 with a bias.
mod common;
use libfuzzer_sys::fuzz_target;
use mmvae_model::io::checkpoint::{match_tensors, parse_weights};

fuzz_target!(|data: &[u8]| {
    let expected = [
        ("weight".to_string(), vec![3, 2]),
        ("bias".to_string(), vec![2]),
    ];
    if let Some(stored) = common::checked(parse_weights(data), "") {
        common::checked(match_tensors(&stored, &expected), "tensor");
    }
});
