//! Every config the repository ships (the recipes in `configs/` and the
//! sweeps' cells in `sweeps/configs/`) loads and builds its model.

use std::path::Path;

use super::*;

#[test]
fn shipped_configs_parse() {
    // Model init draws from the shared device RNG.
    let _rng = crate::testutil::rng_lock();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut n = 0;
    // The recipes, and the sweeps' own cells.
    let files = ["configs", "sweeps/configs"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|entry| entry.unwrap().path());
    for p in files {
        if p.extension().is_some_and(|e| e == "toml") {
            let c = TrainConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
            // And each builds its model for its dataset.
            let kind = c.data.dataset;
            let captioner = mmvae_data::Captioner::new(kind, c.data.caption_seed);
            let vocab = crate::io::data::build_vocab(&captioner, c.data.tokenizer);
            crate::io::data::check_max_len(&c, &captioner, None, &vocab)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let m = c.model.init(
                &c.modalities,
                crate::mvae::DataShape {
                    side: kind.image_size().0,
                    colours: kind.channels(),
                    vocab: vocab.len(),
                },
                &burn::prelude::Device::flex(),
            );
            assert_eq!(m.names.len(), c.modalities.len(), "{}", p.display());
            assert_eq!(m.latent, c.model.latent, "{}", p.display());
            n += 1;
        }
    }
    assert!(
        n >= 25,
        "expected the shipped configs under {}",
        root.display()
    );
}
