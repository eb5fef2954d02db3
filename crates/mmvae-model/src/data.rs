//! Loading the splits a run needs, and the vocabulary built from them.

use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::dataset::{self, DatasetKind, ImageLabelSet, Split};
use mmvae_data::Vocab;
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::error::Result;

/// Caption streams: training draws a fresh template per image each epoch
/// (stream = epoch + 1); validation and test use fixed streams.
pub const VAL_STREAM: u64 = 1 << 40;
pub const TEST_STREAM: u64 = 2 << 40;

/// The training and validation splits of a run.
pub struct TrainData {
    pub dir: PathBuf,
    pub train: ImageLabelSet,
    pub val: ImageLabelSet,
    pub vocab: Vocab,
    pub captioner: Captioner,
}

/// The vocabulary: every word of every training template. Held-out
/// templates reuse these words by construction.
pub fn build_vocab(captioner: &Captioner) -> Vocab {
    Vocab::build(captioner.all_captions(CaptionSet::Train))
}

/// Resolve the data folder: the CLI's `--data-dir` wins over the config's `data.dir`.
pub fn data_dir(kind: DatasetKind, cli: Option<&Path>, cfg: Option<&Path>) -> Result<PathBuf> {
    Ok(dataset::locate(kind, cli.or(cfg))?)
}

pub fn load_train_data(cfg: &TrainConfig, cli_dir: Option<&Path>) -> Result<TrainData> {
    let kind = cfg.data.dataset;
    let dir = data_dir(kind, cli_dir, cfg.data.dir.as_deref())?;
    let mut train = ImageLabelSet::load(kind, &dir, Split::Train)?;
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
    let vocab = build_vocab(&captioner);
    Ok(TrainData {
        dir,
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
    let dir = data_dir(kind, cli_dir, cfg_dir)?;
    Ok(ImageLabelSet::load(kind, &dir, Split::Test)?)
}
