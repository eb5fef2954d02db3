//! Checkpoints: a folder holding the weights (`model.bpk`), the exact
//! configuration (`config.toml`), the vocabulary (`vocab.json`), the
//! training state (`state.json`) and, for resuming, the optimizer state
//! (`optim.bpk`). A checkpoint is written to a temporary folder and renamed
//! into place, so a reader never sees a half-written one.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use mmvae_data::{fsutil, DatasetKind, Vocab};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::error::{ModelError, Result};
use crate::mvae::{DataShape, Mvae};

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
    let tensors = Reader::from_file(path)
        .and_then(Reader::into_tensors)
        .map_err(|e| e.to_string())?;
    let renamed = tensors
        .into_iter()
        .map(|mut t| {
            if let Some((old, new)) = V1_NAMES.iter().find(|(old, _)| t.name.starts_with(old)) {
                t.name = format!("{new}{}", &t.name[old.len()..]);
            }
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
    let state: TrainState = serde_json::from_slice(&std::fs::read(&sp).map_err(io(&sp))?)
        .map_err(|e| ModelError::checkpoint(dir, format!("state.json is unreadable: {e}")))?;
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

struct Shapes(Vec<Vec<usize>>);
impl ModuleVisitor for Shapes {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.push(p.val().dims().to_vec());
    }
}

fn shapes<M: Module>(m: &M) -> Vec<Vec<usize>> {
    let mut s = Shapes(Vec::new());
    m.visit(&mut s);
    s.0
}

/// Load weights into `model`, refusing a file whose tensors do not have
/// exactly the shapes the model was built with.
pub fn load_weights<M: Module>(model: M, path: &Path) -> std::result::Result<M, String> {
    check_shapes(model, |m| m.try_load_file(path).map_err(|e| e.to_string()))
}

/// `load` applied to `model`, refused when a tensor's shape differs from
/// the model's.
fn check_shapes<M: Module>(
    model: M,
    load: impl FnOnce(M) -> std::result::Result<M, String>,
) -> std::result::Result<M, String> {
    let expected = shapes(&model);
    let loaded = load(model)?;
    let got = shapes(&loaded);
    if got != expected {
        let msg = match expected
            .iter()
            .zip(&got)
            .enumerate()
            .find(|(_, (e, g))| e != g)
        {
            Some((i, (e, g))) => format!(
                "tensor shape mismatch at parameter {i}: file has {g:?}, model expects {e:?}"
            ),
            None => format!(
                "tensor shape mismatch: file has {} tensors, model expects {}",
                got.len(),
                expected.len()
            ),
        };
        return Err(msg);
    }
    Ok(loaded)
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
    let loaded = match ck.state.format {
        1 => load_v1_weights(model, &path),
        FORMAT => load_weights(model, &path),
        n => {
            return Err(ModelError::checkpoint(
                dir,
                format!("state.json says format {n}; this build reads formats 1 to {FORMAT} (it was written by a newer mmvae)"),
            ))
        }
    };
    let model = loaded.map_err(|e| {
        ModelError::checkpoint(
            dir,
            format!("weights do not match config.toml/vocab.json: {e}"),
        )
    })?;
    Ok((ck, model))
}

/// Load the optimizer state saved with a checkpoint, if any.
pub fn load_optim(dir: &Path, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let p = dir.join("optim.bpk");
    if !p.is_file() {
        return Err(ModelError::checkpoint(
            dir,
            "optim.bpk is missing: this checkpoint cannot be resumed",
        ));
    }
    optim
        .load(&p)
        .map_err(|e| ModelError::checkpoint(dir, format!("cannot read optimizer state: {e}")))
}
