//! The model crate's fuzz corpora, `fuzz/corpus/<target>/`, replayed
//! through the parsers their targets call: the valid seeds (`seed-*`) must
//! parse, and every other file kept there (minimised inputs that once
//! crashed a parser) must not panic.
//!
//! The seeds are small valid files written by the product's own writers:
//! `MMVAE_WRITE_CORPUS=1 cargo test -p mmvae-model --test fuzz_corpus`
//! (re)writes them (`fuzz/make-corpus.sh` does it for every crate).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::LinearConfig;
use burn::prelude::Device;
use mmvae_data::celeba::AttrSet;
use mmvae_data::DatasetKind;
use mmvae_model::eval::classifier::ClassifierInfo;
use mmvae_model::eval::consistency::{Calibration, Score, ScoreOptions, ScoreResult};
use mmvae_model::eval::metrics::Binary;
use mmvae_model::eval::pair_check::{PairCalibration, PairScore};
use mmvae_model::io::checkpoint::{match_tensors, parse_weights, TrainState, FORMAT};
use mmvae_model::io::weights::{match_optim, parse_optim};
use mmvae_model::prior::{TextPriorConfig, TextPriorInfo};
use mmvae_model::{burn, TrainConfig};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn fixture(file: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/v1/poe")
            .join(file),
    )
    .unwrap()
}

/// The parameters the optim target matches files against: a linear layer
/// 3 → 2 whose weight and bias have the ids 1 and 2.
fn params() -> Vec<(u64, Vec<usize>)> {
    vec![(1, vec![3, 2]), (2, vec![2])]
}

/// Adam's state for [`params`] after one step, as `optim.bpk` holds it.
fn optim_seed() -> Vec<u8> {
    use burn::module::{Param, ParamId};
    use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
    use burn::prelude::Tensor;
    let dev = Device::flex().autodiff();
    let mut m = LinearConfig::new(3, 2).init(&dev);
    m.weight = Param::initialized(ParamId::from(1), m.weight.val());
    m.bias = m
        .bias
        .map(|b| Param::initialized(ParamId::from(2), b.val()));
    let mut optim: ModuleOptimizer = AdamConfig::new().init();
    let loss = m.forward(Tensor::<2>::ones([4, 3], &dev)).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &m);
    let _ = optim.step(1e-3, m, grads);
    optim.into_bytes().unwrap().to_vec()
}

/// The model the weights target matches files against.
fn expected() -> Vec<(String, Vec<usize>)> {
    vec![("weight".into(), vec![3, 2]), ("bias".into(), vec![2])]
}

/// Every seed: (target, file name, bytes).
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut s = Vec::new();
    let toml = |k: DatasetKind| TrainConfig::tiny(k).to_toml().into_bytes();
    s.push(("config", "seed-tiny-mnist.toml", toml(DatasetKind::Mnist)));
    s.push((
        "config",
        "seed-tiny-celeba.toml",
        toml(DatasetKind::CelebA(AttrSet::DEFAULT)),
    ));
    s.push(("config", "seed-tiny-multimnist.toml", {
        let mut c = TrainConfig::tiny(DatasetKind::MultiMnist);
        c.data.tokenizer = mmvae_data::TokenLevel::Char;
        c.to_toml().into_bytes()
    }));
    s.push(("config", "seed-v1.toml", fixture("config.toml")));
    let state = TrainState {
        format: FORMAT,
        dataset: DatasetKind::Mnist,
        side: 28,
        colours: 1,
        epoch: 3,
        step: 30,
        val_loss: 1.5,
        best_val_loss: 1.25,
        elapsed_s: 9.0,
    };
    s.push((
        "state",
        "seed-state.json",
        serde_json::to_vec_pretty(&state).unwrap(),
    ));
    s.push(("state", "seed-v1.json", fixture("state.json")));
    // A linear layer 3 → 2, with and without its bias.
    let dev = Device::flex();
    let d = tempfile::tempdir().unwrap();
    let save = |m: burn::nn::Linear| {
        let p = d.path().join("w.bpk");
        m.save_file(&p).unwrap();
        std::fs::read(&p).unwrap()
    };
    s.push((
        "weights",
        "seed-linear.bpk",
        save(LinearConfig::new(3, 2).init(&dev)),
    ));
    s.push((
        "weights",
        "seed-no-bias.bpk",
        save(LinearConfig::new(3, 2).with_bias(false).init(&dev)),
    ));
    s.push(("optim", "seed-adam.bpk", optim_seed()));
    let clf = ClassifierInfo {
        dataset: DatasetKind::Mnist,
        side: 28,
        colours: 1,
        classes: 10,
        heads: vec![10],
        epochs: 3,
        seed: 0,
        test_accuracy: 0.991,
        test_slot_accuracy: vec![0.991],
        test_view_accuracy: Vec::new(),
        reads: Vec::new(),
        per_modality: Vec::new(),
    };
    s.push((
        "classifier_info",
        "seed-classifier.json",
        serde_json::to_vec_pretty(&clf).unwrap(),
    ));
    let info = TextPriorInfo {
        config: TextPriorConfig {
            choose_temperature: vec![0.5, 1.0],
            ..TextPriorConfig::default()
        },
        latent: 8,
        train_items: 100,
        val_items: 10,
        best_epoch: 2,
        val_nll_mixture: 3.5,
        val_nll_caption_posterior: 7.25,
        seconds: 12.0,
        temperature_choice: vec![(0.5, 0.75), (1.0, 0.5)],
    };
    s.push((
        "prior_info",
        "seed-text-prior.json",
        serde_json::to_vec_pretty(&info).unwrap(),
    ));
    let b = Binary {
        threshold: 0.5,
        precision: 0.9,
        recall: 0.8,
        f1: 0.85,
        auroc: 0.95,
    };
    let r = ScoreResult { random: b, hard: b };
    let cal = Calibration {
        dataset: "mnist".into(),
        default_score: Score::TextRatio,
        thresholds: Score::ALL.iter().map(|&s| (s, -1.5)).collect(),
        options: ScoreOptions::default(),
        val_items: 10,
        val: Score::ALL.iter().map(|&s| (s, r.clone())).collect(),
        test_items: 10,
        test: Score::ALL.iter().map(|&s| (s, r.clone())).collect(),
    };
    s.push((
        "calibration",
        "seed-consistency.json",
        serde_json::to_vec_pretty(&cal).unwrap(),
    ));
    let pair = PairCalibration {
        dataset: "mnist".into(),
        first: "image".into(),
        second: "digit".into(),
        default_score: PairScore::SecondRatio,
        thresholds: PairScore::ALL.iter().map(|&s| (s, -1.5)).collect(),
        options: ScoreOptions::default(),
        val_items: 10,
        val: PairScore::ALL.iter().map(|&s| (s, b)).collect(),
        test_items: 10,
        test: PairScore::ALL.iter().map(|&s| (s, b)).collect(),
    };
    s.push((
        "pair_calibration",
        "seed-consistency-image-digit.json",
        serde_json::to_vec_pretty(&pair).unwrap(),
    ));
    s
}

/// Run one input through the parser of `target`; `Ok` when it parsed.
fn replay(target: &str, data: &[u8]) -> Result<(), String> {
    let e = |e: mmvae_model::ModelError| e.to_string();
    let ck = Path::new("ck");
    match target {
        "config" => {
            let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
            TrainConfig::from_toml_str(text, Path::new("fuzz.toml"))
                .map(drop)
                .map_err(e)
        }
        "state" => TrainState::from_json(data, ck).map(drop).map_err(e),
        "weights" => match_tensors(&parse_weights(data)?, &expected()),
        "optim" => match_optim(&parse_optim(data)?, &params()),
        "classifier_info" => ClassifierInfo::from_json(data, Path::new("clf"))
            .map(drop)
            .map_err(e),
        "prior_info" => TextPriorInfo::from_json(data, ck).map(drop).map_err(e),
        "calibration" => Calibration::from_json(data, Path::new("ck/consistency.json"), "mnist")
            .map(|c| drop(c.table()))
            .map_err(e),
        "pair_calibration" => PairCalibration::from_json(
            data,
            Path::new("ck/consistency-image-digit.json"),
            "mnist",
            ("image", "digit"),
        )
        .map(|c| drop(c.table()))
        .map_err(e),
        t => panic!("no replay for target {t}"),
    }
}

const TARGETS: [&str; 8] = [
    "config",
    "state",
    "weights",
    "optim",
    "classifier_info",
    "prior_info",
    "calibration",
    "pair_calibration",
];

#[test]
fn every_seed_is_checked_in_and_parses() {
    let write = std::env::var_os("MMVAE_WRITE_CORPUS").is_some();
    for (target, name, bytes) in seeds() {
        assert!(TARGETS.contains(&target));
        let p = corpus(target).join(name);
        if write {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &bytes).unwrap();
        }
        assert!(
            p.is_file(),
            "{} is missing; run fuzz/make-corpus.sh",
            p.display()
        );
        // The seed without a bias is valid weights of another model.
        if name != "seed-no-bias.bpk" {
            replay(target, &bytes).unwrap_or_else(|e| panic!("seed {target}/{name}: {e}"));
        }
    }
}

#[test]
fn the_checked_in_corpora_replay_without_a_panic() {
    for target in TARGETS {
        let dir = corpus(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = entry.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let r = replay(target, &data);
            if name.starts_with("seed-") && name != "seed-no-bias.bpk" {
                r.unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
            n += 1;
        }
        assert!(n > 0, "{} is empty", dir.display());
    }
}
