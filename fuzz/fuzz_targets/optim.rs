#![no_main]
//! An optimizer-state file (`optim.bpk`, read when resuming): its header
//! parsed and its state tensors matched against a model's parameters, as
//! `load_optim_state` does before loading. The model is the seed's: a
//! linear layer 3 → 2 whose weight and bias have the parameter ids 1 and 2.
mod common;
use libfuzzer_sys::fuzz_target;
use mmvae_model::io::weights::{match_optim, parse_optim};

fuzz_target!(|data: &[u8]| {
    let params = [(1u64, vec![3, 2]), (2u64, vec![2])];
    if let Some(stored) = common::checked(parse_optim(data), "") {
        common::checked(match_optim(&stored, &params), "");
    }
});
