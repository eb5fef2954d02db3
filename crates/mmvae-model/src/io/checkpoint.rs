//! Checkpoints: a folder holding the weights (`model.bpk`), the exact
//! configuration (`config.toml`), the vocabulary (`vocab.json`), the
//! training state (`state.json`) and, for resuming, the optimizer state
//! (`optim.bpk`). A checkpoint is written to a temporary folder and renamed
//! into place, so a reader never sees a half-written one.

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use mmvae_data::{fsutil, DatasetKind, Vocab};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::error::{ModelError, Result};
use crate::mvae::{DataShape, Mvae};

use super::weights::check_shapes;
pub use super::weights::{
    expected_tensors, load_weights, match_tensors, parse_weights, stored_tensors, StoredTensor,
    MAX_TENSOR_LIST,
};

/// Where training stands, saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The checkpoint format: 1 = two fixed modalities (weights named
    /// `image_encoder`, `text_decoder`, …; no field in state.json), 2 =
    /// modalities as data (`experts.N.…`).
    #[serde(default = "format_v1")]
    pub format: u32,
    pub dataset: DatasetKind,
    /// Image side length in pixels.
    pub side: usize,
    /// Image channels: 1 grey, 3 RGB.
    #[serde(default = "one")]
    pub colours: usize,
    /// Completed epochs.
    pub epoch: usize,
    /// Completed optimizer steps.
    pub step: usize,
    /// Validation loss after the last completed epoch.
    pub val_loss: f64,
    /// Best validation loss so far.
    pub best_val_loss: f64,
    /// Training wall time so far, seconds.
    pub elapsed_s: f64,
}

/// A loaded checkpoint's metadata.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: TrainConfig,
    pub vocab: Vocab,
    pub state: TrainState,
}

fn one() -> usize {
    1
}

fn format_v1() -> u32 {
    1
}

/// The checkpoint format this build writes.
pub const FORMAT: u32 = 2;

/// The largest image side a checkpoint may be for (the largest
/// `data.image_size` a config accepts).
pub const MAX_SIDE: usize = 512;

/// The longest `state.json` read: 1 MiB (one is a few hundred bytes).
pub const MAX_STATE_BYTES: u64 = 1 << 20;

impl TrainState {
    /// The state in the bytes of a `state.json` of the checkpoint `dir`:
    /// a format this build reads (1 to [`FORMAT`]), an image side of 1 to
    /// [`MAX_SIDE`] and 1 or 3 colours.
    pub fn from_json(bytes: &[u8], dir: &Path) -> Result<TrainState> {
        let bad = |msg: String| ModelError::checkpoint(dir, format!("state.json {msg}"));
        let state: TrainState =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("is unreadable: {e}")))?;
        if !(1..=FORMAT).contains(&state.format) {
            return Err(bad(format!(
                "says format {}; this build reads formats 1 to {FORMAT} (it was written by a newer mmvae)",
                state.format
            )));
        }
        if !(1..=MAX_SIDE).contains(&state.side) {
            return Err(bad(format!(
                "gives an image side of {}, outside 1..={MAX_SIDE}",
                state.side
            )));
        }
        if state.colours != 1 && state.colours != 3 {
            return Err(bad(format!("gives {} colours, not 1 or 3", state.colours)));
        }
        Ok(state)
    }
}

/// How format 1 named the weights, and their names now.
const V1_NAMES: [(&str, &str); 9] = [
    ("image_encoder.", "experts.0.Image.encoder."),
    ("image_decoder.", "experts.0.Image.decoder."),
    ("pixel_scale.", "experts.0.Image.pixel_scale."),
    ("text_encoder.", "experts.1.Text.encoder."),
    ("text_decoder.", "experts.1.Text.decoder."),
    (
        "fusion_head.Attention.embed_image.",
        "fusion_head.Attention.embeds.0.",
    ),
    (
        "fusion_head.Attention.embed_text.",
        "fusion_head.Attention.embeds.1.",
    ),
    (
        "fusion_head.Attention.image_to_text.",
        "fusion_head.Attention.attend.0.",
    ),
    (
        "fusion_head.Attention.text_to_image.",
        "fusion_head.Attention.attend.1.",
    ),
];

/// Load format-1 weights (two fixed modalities, image first) into `model`
/// (built from the same config, read as `[[modalities]]` image and text).
fn load_v1_weights<M: Module>(model: M, path: &Path) -> std::result::Result<M, String> {
    use burn::store::burn_pack::{Reader, Writer};
    let mut stored = stored_tensors(path)?;
    for t in &mut stored {
        t.name = v1_name(&t.name);
    }
    match_tensors(&stored, &expected_tensors(&model))?;
    let tensors = Reader::from_file(path)
        .and_then(Reader::into_tensors)
        .map_err(|e| e.to_string())?;
    let renamed = tensors
        .into_iter()
        .map(|mut t| {
            t.name = v1_name(&t.name);
            t
        })
        .collect();
    let bytes = Writer::new(renamed)
        .into_bytes()
        .map_err(|e| e.to_string())?;
    let record = burn::store::ModuleRecord::from_bytes(bytes).map_err(|e| e.to_string())?;
    check_shapes(model, |m| {
        m.try_load_record(record).map_err(|e| e.to_string())
    })
}

/// A format-1 tensor name as format 2 names it.
fn v1_name(name: &str) -> String {
    match V1_NAMES.iter().find(|(old, _)| name.starts_with(old)) {
        Some((old, new)) => format!("{new}{}", &name[old.len()..]),
        None => name.to_string(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Save a checkpoint folder atomically (replacing any previous one).
pub fn save(
    dir: &Path,
    model: &Mvae,
    optim: Option<&ModuleOptimizer>,
    cfg: &TrainConfig,
    vocab: &Vocab,
    state: &TrainState,
) -> Result<()> {
    save_with(dir, model, optim, cfg, vocab, state, |_| Ok(()))
}

/// [`save`], with `extra` writing further files into the folder before it
/// replaces the previous one (the discriminator of adversarial training).
pub fn save_with(
    dir: &Path,
    model: &Mvae,
    optim: Option<&ModuleOptimizer>,
    cfg: &TrainConfig,
    vocab: &Vocab,
    state: &TrainState,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let tmp = fsutil::temp_sibling(dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let res = (|| -> Result<()> {
        model
            .clone()
            .save_file(tmp.join("model.bpk"))
            .map_err(|e| ModelError::checkpoint(&tmp, format!("cannot write weights: {e}")))?;
        if let Some(o) = optim {
            o.save(tmp.join("optim.bpk")).map_err(|e| {
                ModelError::checkpoint(&tmp, format!("cannot write optimizer state: {e}"))
            })?;
        }
        fsutil::write_atomic(&tmp.join("config.toml"), cfg.to_toml().as_bytes())?;
        vocab.save(&tmp.join("vocab.json"))?;
        fsutil::write_atomic(
            &tmp.join("state.json"),
            // The weights just written are in this build's format.
            serde_json::to_string_pretty(&TrainState {
                format: FORMAT,
                ..state.clone()
            })
            .expect("state serialises")
            .as_bytes(),
        )?;
        extra(&tmp)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = dir.with_file_name(format!(
        ".{}.old-{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(dir))?;
    if old.exists() {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Read a checkpoint's metadata (config, vocabulary, state) without weights.
pub fn read_meta(dir: &Path) -> Result<Checkpoint> {
    if !dir.is_dir() {
        return Err(ModelError::checkpoint(
            dir,
            "not a folder (expected the output of `mmvae train`, e.g. runs/mnist/best)",
        ));
    }
    for f in ["model.bpk", "config.toml", "vocab.json", "state.json"] {
        if !dir.join(f).is_file() {
            return Err(ModelError::checkpoint(
                dir,
                format!("{f} is missing; is this a checkpoint folder?"),
            ));
        }
    }
    let config = TrainConfig::load(&dir.join("config.toml"))?;
    let vocab = Vocab::load(&dir.join("vocab.json"))?;
    let sp = dir.join("state.json");
    let state = TrainState::from_json(
        &fsutil::read_limited(&sp, MAX_STATE_BYTES, "state.json")?,
        dir,
    )?;
    if state.dataset != config.data.dataset {
        return Err(ModelError::checkpoint(
            dir,
            "state.json and config.toml name different datasets",
        ));
    }
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        config,
        vocab,
        state,
    })
}

pub fn load(dir: &Path, device: &Device) -> Result<(Checkpoint, Mvae)> {
    let ck = read_meta(dir)?;
    let model = ck.config.model.init(
        &ck.config.modalities,
        DataShape {
            side: ck.state.side,
            colours: ck.state.colours,
            vocab: ck.vocab.len(),
        },
        device,
    );
    let path = dir.join("model.bpk");
    // read_meta refused formats other than 1 and FORMAT.
    let loaded = match ck.state.format {
        1 => load_v1_weights(model, &path),
        _ => load_weights(model, &path),
    };
    let model = loaded.map_err(|e| {
        ModelError::checkpoint(
            dir,
            format!("model.bpk does not match config.toml/vocab.json: {e}"),
        )
    })?;
    Ok((ck, model))
}

/// Load the optimizer state saved with the checkpoint of `model`, refused
/// unless every state tensor is for one of the model's parameters, with
/// its shape.
pub fn load_optim(dir: &Path, optim: ModuleOptimizer, model: &Mvae) -> Result<ModuleOptimizer> {
    let p = dir.join("optim.bpk");
    if !p.is_file() {
        return Err(ModelError::checkpoint(
            dir,
            "optim.bpk is missing: this checkpoint cannot be resumed",
        ));
    }
    super::weights::load_optim_state(optim, model, &p)
        .map_err(|e| ModelError::checkpoint(dir, format!("optim.bpk does not fit the model: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    fn state() -> TrainState {
        TrainState {
            format: FORMAT,
            dataset: DatasetKind::Mnist,
            side: 28,
            colours: 1,
            epoch: 3,
            step: 30,
            val_loss: 1.5,
            best_val_loss: 1.25,
            elapsed_s: 9.0,
        }
    }

    #[test]
    fn state_json_is_refused_outside_its_bounds() {
        let dir = Path::new("runs/x/best");
        let json = |s: &TrainState| serde_json::to_vec(s).unwrap();
        assert_eq!(
            TrainState::from_json(&json(&state()), dir).unwrap(),
            state()
        );
        let bad = [
            (
                TrainState {
                    format: FORMAT + 1,
                    ..state()
                },
                "format 3",
            ),
            (
                TrainState {
                    format: 0,
                    ..state()
                },
                "format 0",
            ),
            (TrainState { side: 0, ..state() }, "side of 0"),
            (
                TrainState {
                    side: 1 << 40,
                    ..state()
                },
                "outside 1..=512",
            ),
            (
                TrainState {
                    colours: 2,
                    ..state()
                },
                "2 colours",
            ),
        ];
        for (s, want) in bad {
            let e = TrainState::from_json(&json(&s), dir)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("runs/x/best") && e.contains("state.json") && e.contains(want),
                "{e}"
            );
        }
        let e = TrainState::from_json(b"{", dir).unwrap_err().to_string();
        assert!(
            e.contains("state.json is unreadable") && !e.contains('\n'),
            "{e}"
        );
    }

    /// Found by fuzzing: the JSON parser's message quotes the unknown
    /// dataset name, line break and all.
    #[test]
    fn a_line_break_in_a_quoted_name_stays_in_one_line() {
        let e = TrainState::from_json(b"{\"dataset\":\"\\n\"", Path::new("ck"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("state.json") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn weights_are_checked_by_name_and_shape_before_their_data_is_read() {
        let dev = Device::flex();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.bpk");
        LinearConfig::new(3, 2).init(&dev).save_file(&p).unwrap();
        // What the file holds is what the model expects.
        let stored = stored_tensors(&p).unwrap();
        let same = LinearConfig::new(3, 2).init(&dev);
        let want = expected_tensors(&same);
        let mut names: Vec<_> = stored.iter().map(|t| t.name.clone()).collect();
        names.sort();
        let mut want_names: Vec<_> = want.iter().map(|(n, _)| n.clone()).collect();
        want_names.sort();
        assert_eq!(names, want_names);
        assert_eq!(parse_weights(&std::fs::read(&p).unwrap()).unwrap(), stored);
        load_weights(same, &p).unwrap();
        // Another shape, a missing and an extra tensor are each named.
        let e = load_weights(LinearConfig::new(4, 2).init(&dev), &p).unwrap_err();
        assert!(e.contains("tensor `weight`") && e.contains("[4, 2]"), "{e}");
        let e = load_weights(LinearConfig::new(3, 2).with_bias(false).init(&dev), &p).unwrap_err();
        assert!(e.contains("`bias` is not one of the model's"), "{e}");
    }

    #[test]
    fn corrupt_weight_headers_are_refused() {
        let dev = Device::flex();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.bpk");
        LinearConfig::new(3, 2).init(&dev).save_file(&p).unwrap();
        let good = std::fs::read(&p).unwrap();
        let mut magic = good.clone();
        magic[0] ^= 1;
        assert!(parse_weights(&magic).unwrap_err().contains("magic"));
        let mut huge = good.clone();
        huge[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = parse_weights(&huge).unwrap_err();
        assert!(e.contains("more than the limit"), "{e}");
        let mut long = good.clone();
        long[6..10].copy_from_slice(&(good.len() as u32).to_le_bytes());
        let e = parse_weights(&long).unwrap_err();
        assert!(e.contains("runs past the end"), "{e}");
        // Tensor data cut short: the ranges no longer fit in the file.
        assert!(parse_weights(&good[..good.len() - 4]).is_err());
        assert!(parse_weights(&good[..5]).unwrap_err().contains("too short"));
        // The same checks guard a file before it is loaded.
        std::fs::write(&p, &long).unwrap();
        let e = load_weights(LinearConfig::new(3, 2).init(&dev), &p).unwrap_err();
        assert!(e.contains("runs past the end"), "{e}");
    }
}
