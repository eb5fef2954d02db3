//! Trains a small model for a few steps on a slice of real MNIST (found
//! through `MMVAE_DATA`), checks that the loss went down, then generates and
//! captions with it. Without `MMVAE_DATA` the test is skipped, except under
//! CI (`CI` set), where missing data is a failure.

use mmvae_data::captions::CaptionSet;
use mmvae_data::dataset::{self, DatasetKind};
use mmvae_model::config::{ExpertConfig, ImageModel};
use mmvae_model::device::Compute;
use mmvae_model::infer::{self, Draw};
use mmvae_model::train::{train, TrainOptions};
use mmvae_model::TrainConfig;

#[test]
fn trains_on_real_mnist_then_generates_and_captions() {
    let Ok(dir) = dataset::locate(DatasetKind::Mnist, None) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide MNIST through MMVAE_DATA"
        );
        eprintln!("skipped: set MMVAE_DATA to a folder holding mnist/ to run this test");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
    cfg.model.latent = 16;
    cfg.modalities[0].expert = ExpertConfig::Image {
        model: ImageModel::Mlp { hidden: 128 },
        likelihood: Default::default(),
    };
    cfg.optim.batch_size = 50;
    cfg.optim.epochs = 3;
    cfg.optim.lr = 2e-3;
    cfg.data.train_limit = Some(3000);
    cfg.data.val_size = 500;
    let opts = TrainOptions {
        out_dir: tmp.path().join("run"),
        data_dir: Some(dir),
        resume: false,
        progress: false,
        compute: Compute::Cpu,
        threads: 2,
    };
    let s = train(&cfg, &opts, |_| {}).unwrap();
    assert_eq!(s.steps, 3 * 60);
    let first = &s.reports[0];
    let last = s.reports.last().unwrap();
    assert!(
        last.train["loss"] < 0.9 * first.train["loss"],
        "train loss {} -> {}",
        first.train["loss"],
        last.train["loss"]
    );
    assert!(
        last.val["loss"] < first.val["loss"],
        "val loss {} -> {}",
        first.val["loss"],
        last.val["loss"]
    );
    assert!(last.val["nll/text"] < first.val["nll/text"]);

    let m = infer::load(&tmp.path().join("run/best"), Compute::Cpu).unwrap();
    m.seed(0);
    let imgs = m.generate("a handwritten seven", 4, Draw::Sample).unwrap();
    assert_eq!(imgs.len(), 4);
    assert!(imgs
        .iter()
        .all(|i| i.width == 28 && i.pixels.iter().all(|p| (0.0..=1.0).contains(p))));
    let caps = m.caption(&imgs, Draw::Mean, None).unwrap();
    let captioner = m.captioner();
    // Every caption is a sentence over the training vocabulary.
    let vocab: std::collections::HashSet<String> = captioner
        .all_captions(CaptionSet::Train)
        .iter()
        .flat_map(|c| c.split_whitespace().map(String::from))
        .collect();
    for c in &caps {
        assert!(
            !c.is_empty() && c.split_whitespace().all(|w| vocab.contains(w)),
            "caption `{c}`"
        );
    }
}
