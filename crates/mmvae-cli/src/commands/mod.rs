//! Subcommand arguments and their thin handlers: parse, call the libraries,
//! print. All logic lives in `mmvae-data` and `mmvae-model`. One file per
//! group of commands; the imports and the arguments every command that
//! loads a model shares are here.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use mmvae_data::dataset::{self, DatasetKind, Split};
use mmvae_data::imageio::{self, Image};
use mmvae_data::shapes::Level;
use mmvae_data::{fetch, fsutil};
use mmvae_model::device::Compute;
use mmvae_model::eval::classifier::{self, ClassifierTrainOptions};
use mmvae_model::eval::classifiers::{self, Classifiers};
use mmvae_model::eval::{self, EvalOptions, Metric};
use mmvae_model::infer::{self, Draw, Endpoint};
use mmvae_model::io::data::load_split;
use mmvae_model::predict::Prediction;
use mmvae_model::prior::{self, TextPriorConfig, TextPriorInfo};
use mmvae_model::train::parallel::default_threads;
use mmvae_model::train::{self, EpochReport, TrainOptions};
use mmvae_model::TrainConfig;
use mmvae_report::plot::Chart;
use mmvae_report::report::{self, ReportOptions, Saved};
use mmvae_report::tsne::TsneConfig;
use std::path::{Path, PathBuf};

mod datasets;
mod evaluation;
mod generation;
mod quickstart;
mod reports;
mod training;

pub use datasets::*;
pub use evaluation::*;
pub use generation::*;
pub use quickstart::*;
pub use reports::*;
pub use training::*;

fn compute(s: &str) -> Result<Compute> {
    Ok(Compute::parse(s)?)
}

/// What every command that uses a trained model takes.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Checkpoint folder (e.g. runs/mnist/best).
    #[arg(long)]
    pub(crate) checkpoint: PathBuf,
    /// Seed of the latent draws and sampled words.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Compute device: cpu, wgpu (the best GPU), or wgpu:NAME / wgpu:N (one
    /// adapter of `mmvae devices`, by part of its name or its number); GPUs
    /// need a build with --features wgpu.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Draw text→image latents from the caption's posterior q(z|y) even
    /// when the checkpoint has a fitted text prior (`mmvae fit-prior`).
    #[arg(long)]
    no_text_prior: bool,
    /// Scale the text prior's component standard deviations by this when
    /// drawing text→image latents (default: the prior's own `temperature`;
    /// 1 is the fitted mixture).
    #[arg(long)]
    prior_temperature: Option<f32>,
    /// Text→image: draw this many candidate images per caption and keep the
    /// one the model itself reads back as the caption most likely (the
    /// image encoded, the caption scored by the text decoder; default: the
    /// text prior's `rerank`, else 1, no reranking).
    #[arg(long)]
    rerank: Option<usize>,
}

impl ModelArgs {
    /// Load the checkpoint and seed its device.
    pub(crate) fn load(&self) -> Result<infer::Loaded> {
        let mut m = infer::load(&self.checkpoint, compute(&self.device)?)?;
        if self.no_text_prior {
            // The prior's saved `rerank` goes with it (`--rerank` still applies).
            m.text_prior = None;
            m.rerank = 1;
        }
        if let Some(t) = self.prior_temperature {
            if !(t.is_finite() && t >= 0.0) {
                bail!("--prior-temperature must be a number >= 0 (got {t})");
            }
            m.prior_temperature = t;
        }
        if let Some(k) = self.rerank {
            m.rerank = check_rerank(k)?;
        }
        m.seed(self.seed);
        Ok(m)
    }
}

/// `--rerank`, checked: 1 ..= the most candidates.
fn check_rerank(k: usize) -> Result<usize> {
    let max = prior::MAX_RERANK;
    if !(1..=max).contains(&k) {
        bail!("--rerank must be in 1..={max} (got {k})");
    }
    Ok(k)
}

fn check_n(n: usize) -> Result<()> {
    if !(1..=1024).contains(&n) {
        bail!("--n must be in 1..=1024 (got {n})");
    }
    Ok(())
}

/// `--given NAME=VALUE` arguments as (name, value) pairs.
pub(crate) fn parse_given(given: &[String]) -> Result<Vec<(String, String)>> {
    given
        .iter()
        .map(|g| match g.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("--given {g}: expected NAME=VALUE"),
        })
        .collect()
}
