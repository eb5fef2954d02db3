//! Loading the splits a run needs, and the vocabulary built from them.

use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::dataset::{DatasetKind, ImageLabelSet, Split};
use mmvae_data::{TokenLevel, Vocab};
use std::path::Path;

use crate::config::TrainConfig;
use crate::error::Result;

/// Caption streams: training draws a fresh template per image each epoch
/// (stream = epoch + 1); validation and test use fixed streams.
pub const VAL_STREAM: u64 = 1 << 40;
pub const TEST_STREAM: u64 = 2 << 40;

/// The training and validation splits of a run.
pub struct TrainData {
    pub train: ImageLabelSet,
    pub val: ImageLabelSet,
    pub vocab: Vocab,
    pub captioner: Captioner,
}

/// The vocabulary: every token of every training template at `level`.
/// Held-out templates reuse these words by construction.
pub fn build_vocab(captioner: &Captioner, level: TokenLevel) -> Vocab {
    Vocab::build_at(level, captioner.all_captions(CaptionSet::Train))
}

/// Refuse a `model.max_len` that would cut captions short: every training
/// and held-out caption, with `<bos>` and `<eos>`, must fit.
pub fn check_max_len(cfg: &TrainConfig, captioner: &Captioner, vocab: &Vocab) -> Result<()> {
    let mut longest = 0;
    for set in [CaptionSet::Train, CaptionSet::HeldOut] {
        if captioner.has(set) {
            for c in captioner.all_captions(set) {
                longest = longest.max(vocab.token_count(&c) + 2);
            }
        }
    }
    if longest > cfg.model.max_len {
        return Err(crate::error::ModelError::Config(format!(
            "`model.max_len` = {} is too short for this dataset's captions: the longest needs {longest} tokens with <bos> and <eos>",
            cfg.model.max_len
        )));
    }
    Ok(())
}

/// Threads used to render synthetic data.
fn render_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Load (or render) one split. The CLI's `--data-dir` wins over the config's
/// `data.dir`; synthetic datasets ignore both.
pub fn load_split(
    kind: DatasetKind,
    split: Split,
    cli: Option<&Path>,
    cfg: Option<&Path>,
) -> Result<ImageLabelSet> {
    Ok(ImageLabelSet::open(
        kind,
        cli.or(cfg),
        split,
        render_threads(),
    )?)
}

pub fn load_train_data(cfg: &TrainConfig, cli_dir: Option<&Path>) -> Result<TrainData> {
    let kind = cfg.data.dataset;
    let mut train = load_split(kind, Split::Train, cli_dir, cfg.data.dir.as_deref())?;
    if train.len() <= cfg.data.val_size {
        return Err(crate::error::ModelError::Config(format!(
            "`data.val_size` = {} leaves no training data ({} images)",
            cfg.data.val_size,
            train.len()
        )));
    }
    let val = train.split_off_tail(cfg.data.val_size);
    if let Some(n) = cfg.data.train_limit {
        train.truncate(n);
    }
    let captioner = Captioner::new(kind, cfg.data.caption_seed);
    let vocab = build_vocab(&captioner, cfg.data.tokenizer);
    check_max_len(cfg, &captioner, &vocab)?;
    Ok(TrainData {
        train,
        val,
        vocab,
        captioner,
    })
}

pub fn load_test(
    kind: DatasetKind,
    cli_dir: Option<&Path>,
    cfg_dir: Option<&Path>,
) -> Result<ImageLabelSet> {
    load_split(kind, Split::Test, cli_dir, cfg_dir)
}
