#!/usr/bin/env bash
# (Re)write the fuzz targets' seed corpora, fuzz/corpus/<target>/seed-*:
# small valid files made by the product's own writers (see
# crates/*/tests/fuzz_corpus.rs, which also replay the corpora in
# `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."
export MMVAE_WRITE_CORPUS=1
cargo test --release -p mmvae-data --test fuzz_corpus -- every_seed
cargo test --release -p mmvae-model --test fuzz_corpus -- every_seed
