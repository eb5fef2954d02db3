//! Loading the splits a run needs, and the vocabulary built from them.

use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::dataset::{DatasetKind, ImageLabelSet, Split};
use mmvae_data::{TokenLevel, Vocab};
use std::path::Path;

use crate::config::{DataConfig, TrainConfig};
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
    /// What the loader reported (items skipped, images converted).
    pub notes: Vec<String>,
}

/// The vocabulary: every token of every training template at `level`.
/// Held-out templates reuse these words by construction.
pub fn build_vocab(captioner: &Captioner, level: TokenLevel) -> Vocab {
    Vocab::build_at(level, captioner.all_captions(CaptionSet::Train))
}

/// Refuse a `model.max_len` that would cut captions short: every training
/// and held-out caption (a dataset's own captions where it has them), with
/// `<bos>` and `<eos>`, must fit.
pub fn check_max_len(
    cfg: &TrainConfig,
    captioner: &Captioner,
    own: Option<&[&str]>,
    vocab: &Vocab,
) -> Result<()> {
    let mut longest = (0, String::new());
    let mut see = |c: &str| {
        let n = vocab.token_count(c) + 2;
        if n > longest.0 {
            longest = (n, c.to_string());
        }
    };
    match own {
        Some(caps) => caps.iter().for_each(|c| see(c)),
        None => {
            for set in [CaptionSet::Train, CaptionSet::HeldOut] {
                if captioner.has(set) {
                    captioner.all_captions(set).iter().for_each(|c| see(c));
                }
            }
        }
    }
    if longest.0 > cfg.model.max_len {
        let mut example = longest.1;
        if example.chars().count() > 60 {
            example = example.chars().take(57).collect::<String>() + "...";
        }
        return Err(crate::error::ModelError::Config(format!(
            "`model.max_len` = {} is too short for this dataset's captions: the longest (`{example}`) needs {} tokens with <bos> and <eos>",
            cfg.model.max_len, longest.0
        )));
    }
    Ok(())
}

/// Threads used to render synthetic data.
fn render_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Load (or render) one split of a labelled dataset with its defaults. The
/// CLI's `--data-dir` wins over the config's `data.dir`; synthetic datasets
/// ignore both.
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

/// Load one split as a run's data config describes it (for `pairs`, with
/// its image size, channels and bad-item policy).
pub fn load_configured(
    data: &DataConfig,
    split: Split,
    cli: Option<&Path>,
) -> Result<ImageLabelSet> {
    if data.dataset != DatasetKind::Pairs {
        return load_split(data.dataset, split, cli, data.dir.as_deref());
    }
    let path = cli.or(data.dir.as_deref()).ok_or_else(|| {
        crate::error::ModelError::Config(
            "the pairs dataset needs `data.dir` (or --data-dir) naming a captions file (CSV `file,caption[,split]` or JSON lines) or a folder holding captions.csv / captions.jsonl".into(),
        )
    })?;
    Ok(mmvae_data::pairs::load_split(
        path,
        split,
        &data.pairs_options(),
        render_threads(),
    )?)
}

pub fn load_train_data(cfg: &TrainConfig, cli_dir: Option<&Path>) -> Result<TrainData> {
    let kind = cfg.data.dataset;
    let mut train = load_configured(&cfg.data, Split::Train, cli_dir)?;
    let notes = std::mem::take(&mut train.notes);
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
    // A dataset with its own captions: the vocabulary of the training
    // captions (validation included); otherwise every template's words.
    let own: Option<Vec<&str>> = train.captions.as_ref().map(|t| {
        t.iter()
            .chain(val.captions.iter().flatten())
            .map(String::as_str)
            .collect()
    });
    let vocab = match &own {
        Some(caps) => Vocab::build_at(cfg.data.tokenizer, caps),
        None => build_vocab(&captioner, cfg.data.tokenizer),
    };
    check_max_len(cfg, &captioner, own.as_deref(), &vocab)?;
    Ok(TrainData {
        train,
        val,
        vocab,
        captioner,
        notes,
    })
}

/// The test split of a run's dataset.
pub fn load_test(data: &DataConfig, cli_dir: Option<&Path>) -> Result<ImageLabelSet> {
    load_configured(data, Split::Test, cli_dir)
}
