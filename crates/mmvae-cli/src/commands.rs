//! Subcommand arguments and their thin handlers: parse, call the libraries,
//! print. All logic lives in `mmvae-data` and `mmvae-model`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use mmvae_data::dataset::{self, DatasetKind, Split};
use mmvae_data::imageio::{self, Image};
use mmvae_data::shapes::Level;
use mmvae_data::{fetch, fsutil};
use mmvae_model::device::Compute;
use mmvae_model::eval::classifier::{self, ClassifierTrainOptions};
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

fn compute(s: &str) -> Result<Compute> {
    Ok(Compute::parse(s)?)
}

fn print_epoch(r: &EpochReport) {
    let phase = r
        .phase
        .as_ref()
        .map(|p| format!(" [{p}]"))
        .unwrap_or_default();
    let adv = match (r.train.get("adv_g"), r.train.get("adv_d")) {
        (Some(g), Some(d)) => format!("  adversarial G {g:.2} D {d:.3}"),
        _ => String::new(),
    };
    // The joint term's parts, then each modality read from each other one.
    let mut parts: Vec<String> = r
        .val
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("nll/").map(|m| format!("{m} {v:.2}")))
        .collect();
    if let Some(kl) = r.val.get("kl") {
        parts.push(format!("kl {kl:.2}"));
    }
    parts.extend(
        r.val
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("cross/").map(|m| format!("{m} {v:.2}"))),
    );
    eprintln!(
        "epoch {:>3}{phase}  step {:>6}  train loss {:>9.3}  val loss {:>9.3}  ({}){adv}  {:.0} samples/s  (data wait {:.1}%)  {:.0}s{}",
        r.epoch,
        r.step,
        r.train["loss"],
        r.val["loss"],
        parts.join(", "),
        r.samples_per_s,
        100.0 * r.data_wait,
        r.elapsed_s,
        if r.best { "  *best" } else { "" }
    );
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML configuration (see configs/).
    #[arg(long)]
    config: PathBuf,
    /// Output folder (default: runs/<dataset>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder with the dataset's IDX files (overrides data.dir and $MMVAE_DATA).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Override optim.epochs; `[[phases]]` are cut off at this many
    /// epochs, or the last one runs on.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override data.train_limit (use the first N training images).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Compute device: cpu, wgpu (the best GPU), or wgpu:NAME / wgpu:N (one
    /// adapter of `mmvae devices`, by part of its name or its number); GPUs
    /// need a build with --features wgpu.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Data-parallel threads per step (default: one per core, at most 4).
    #[arg(long)]
    threads: Option<usize>,
}

/// Record `--data-dir` in the config saved with the checkpoints (as an
/// absolute `data.dir`), so that `eval`, `report` and the rest find the
/// data again without it; their own `--data-dir` still wins.
pub fn remember_data_dir(cfg: &mut TrainConfig, data_dir: Option<&Path>) -> Result<()> {
    if let Some(d) = data_dir.filter(|_| !cfg.data.dataset.is_synthetic()) {
        cfg.data.dir =
            Some(std::path::absolute(d).with_context(|| format!("--data-dir {}", d.display()))?);
    }
    Ok(())
}

pub fn train(a: TrainArgs) -> Result<()> {
    let mut cfg = TrainConfig::load(&a.config)?;
    if let Some(e) = a.epochs {
        cfg.set_epochs(e);
    }
    if let Some(n) = a.train_limit {
        cfg.data.train_limit = Some(n);
    }
    remember_data_dir(&mut cfg, a.data_dir.as_deref())?;
    cfg.validate()?;
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(cfg.data.dataset.dir_name()));
    let opts = TrainOptions {
        out_dir: out.clone(),
        data_dir: a.data_dir,
        resume: a.resume,
        progress: !a.quiet,
        compute: compute(&a.device)?,
        threads: a.threads.unwrap_or_else(default_threads),
    };
    let s = train::train(&cfg, &opts, print_epoch)
        .with_context(|| format!("training {}", a.config.display()))?;
    outln!(
        "trained {} epochs ({} steps) in {:.0}s; best validation loss {:.3}\ncheckpoints: {}/best {}/last\nmetrics: {}/metrics.jsonl",
        s.epochs,
        s.steps,
        s.elapsed_s,
        s.best_val_loss,
        out.display(),
        out.display(),
        out.display()
    );
    if let Some(p) = &s.text_prior {
        print_prior(&out.join("best"), p);
        let temps = &p.config.choose_temperature;
        let kind = cfg.data.dataset;
        let cdir = classifier::default_dir(kind);
        if !temps.is_empty() && kind.is_labelled() {
            if cdir.join("classifier.json").is_file() {
                let mut m = infer::load(&out.join("best"), opts.compute)?;
                let (clf, _) = classifier::load(&cdir, kind, &m.device)?;
                choose_prior_temperature(&mut m, &clf, temps, opts.data_dir.as_deref()).context(
                    "choosing the text prior's temperature (the model and its prior are saved)",
                )?;
            } else {
                outln!(
                    "no evaluation classifier in {}: kept text prior temperature {}; to choose it later: mmvae classifier train --dataset {kind}, then mmvae fit-prior --checkpoint {} --keep-fit --temperatures {}",
                    cdir.display(),
                    p.config.temperature,
                    out.join("best").display(),
                    temps.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",")
                );
            }
        }
    }
    for note in &s.data_notes {
        outln!("data: {note}");
    }
    Ok(())
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

/// The text prior temperatures the quickstart chooses from (on validation).
const QUICKSTART_TEMPERATURES: &[f32] = &[0.1, 0.25, 0.5, 1.0];

#[derive(Args, Debug)]
pub struct FitPriorArgs {
    /// Checkpoint folder (e.g. runs/shapes-l1/best); the prior is saved
    /// into it as text-prior.bpk and text-prior.json.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Folder with the dataset's files (overrides data.dir and $MMVAE_DATA).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Mixture components per caption.
    #[arg(long, default_value_t = TextPriorConfig::default().components)]
    components: usize,
    /// Passes over the training pairs.
    #[arg(long, default_value_t = TextPriorConfig::default().epochs)]
    epochs: usize,
    /// Default sampling temperature saved with the prior (scales the
    /// components' standard deviations; 1: the fitted mixture).
    #[arg(long, default_value_t = TextPriorConfig::default().temperature)]
    temperature: f32,
    /// Choose the saved temperature from these (comma-separated) by
    /// text→image coherence on the validation split, scored by the
    /// evaluation classifier; replaces --temperature.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    temperatures: Vec<f32>,
    /// Evaluation classifier for --temperatures (default:
    /// runs/classifier-<dataset>).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Keep the prior already fitted in --checkpoint; only choose its
    /// temperature (needs --temperatures).
    #[arg(long)]
    keep_fit: bool,
    /// Text→image candidates per caption saved with the prior (the best
    /// one by the model's own read-back of the caption; 1: no reranking);
    /// --temperatures are scored with it in effect. With --keep-fit it
    /// replaces the saved one.
    #[arg(long)]
    rerank: Option<usize>,
    /// Compute device: cpu, wgpu (the best GPU), or wgpu:NAME / wgpu:N (one
    /// adapter of `mmvae devices`, by part of its name or its number); GPUs
    /// need a build with --features wgpu.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn print_prior(dir: &Path, p: &TextPriorInfo) {
    outln!(
        "text prior: {} components fitted on {} training pairs in {:.0}s (best epoch {}); validation -log p(z|caption): {:.2} nats (caption posterior: {:.2}); saved in {}",
        p.config.components,
        p.train_items,
        p.seconds,
        p.best_epoch,
        p.val_nll_mixture,
        p.val_nll_caption_posterior,
        dir.display()
    );
}

pub fn fit_prior(a: FitPriorArgs) -> Result<()> {
    if a.keep_fit && a.temperatures.is_empty() {
        bail!("--keep-fit only chooses a temperature: give --temperatures");
    }
    if let Some(t) = a
        .temperatures
        .iter()
        .find(|&&t| !prior::is_sampling_temperature(t))
    {
        bail!("--temperatures must all be positive (got {t})");
    }
    // The classifier that scores the temperatures, found before any fitting.
    let clf_dir = match a.temperatures.is_empty() {
        true => None,
        false => {
            let kind = mmvae_model::io::checkpoint::read_meta(&a.checkpoint)?
                .config
                .data
                .dataset;
            if !kind.is_labelled() {
                bail!("choosing a temperature needs class labels to score draws; the {kind} dataset has none");
            }
            let cdir = a
                .classifier
                .clone()
                .unwrap_or_else(|| classifier::default_dir(kind));
            if !cdir.join("classifier.json").is_file() {
                bail!(
                    "no evaluation classifier in {} to choose a temperature with (mmvae classifier train --dataset {kind}, or --classifier DIR)",
                    cdir.display()
                );
            }
            Some((cdir, kind))
        }
    };
    if !a.keep_fit {
        let cfg = TextPriorConfig {
            components: a.components,
            epochs: a.epochs,
            temperature: a.temperature,
            rerank: a.rerank.map(check_rerank).transpose()?.unwrap_or(1),
            ..TextPriorConfig::default()
        };
        let info = prior::fit_checkpoint(
            &a.checkpoint,
            a.data_dir.as_deref(),
            &cfg,
            compute(&a.device)?,
        )
        .with_context(|| format!("fitting a text prior to {}", a.checkpoint.display()))?;
        print_prior(&a.checkpoint, &info);
    }
    let Some((cdir, kind)) = clf_dir else {
        return Ok(());
    };
    let mut m = mmvae_model::infer::load(&a.checkpoint, compute(&a.device)?)?;
    m.fitted_prior()?;
    if let Some(k) = a.rerank {
        m.rerank = check_rerank(k)?;
    }
    let (clf, _) = classifier::load(&cdir, kind, &m.device)?;
    choose_prior_temperature(&mut m, &clf, &a.temperatures, a.data_dir.as_deref())?;
    Ok(())
}

/// Choose the temperature of `m`'s fitted text prior on its run's
/// validation split ([`eval::choose_prior_temperature`]) and print the
/// scores.
fn choose_prior_temperature(
    m: &mut infer::Loaded,
    clf: &classifier::Classifier,
    temperatures: &[f32],
    data_dir: Option<&Path>,
) -> Result<f32> {
    let (scores, chosen) = eval::choose_prior_temperature(m, clf, temperatures, data_dir)?;
    for (t, c) in &scores {
        outln!(
            "temperature {t}: validation text -> image coherence {:.2}%{}",
            c * 100.0,
            if *t == chosen { "  (chosen)" } else { "" }
        );
    }
    outln!(
        "text prior temperature {chosen} saved in {}",
        m.checkpoint.dir.join(prior::INFO).display()
    );
    Ok(chosen)
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The caption to generate images for.
    #[arg(long)]
    text: String,
    /// Number of images.
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Output PNG grid.
    #[arg(long, default_value = "generated.png")]
    out: PathBuf,
    /// Use the posterior mean instead of samples (all images equal).
    #[arg(long)]
    mean: bool,
}

fn check_n(n: usize) -> Result<()> {
    if !(1..=1024).contains(&n) {
        bail!("--n must be in 1..=1024 (got {n})");
    }
    Ok(())
}

pub fn generate(a: GenerateArgs) -> Result<()> {
    check_n(a.n)?;
    let m = a.model.load()?;
    let imgs = m.generate(&a.text, a.n, if a.mean { Draw::Mean } else { Draw::Sample })?;
    let cols = (a.n as f64).sqrt().ceil() as usize;
    imageio::save_grid(&a.out, &imgs, cols)?;
    outln!("{}", a.out.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A modality's value, NAME=VALUE (repeat for several): an image file
    /// for an image modality, a caption for a text one, a class index or
    /// name for a label. The latent is drawn from the posterior given them.
    #[arg(long, value_name = "NAME=VALUE", required = true)]
    given: Vec<String>,
    /// The modality to generate.
    #[arg(long, value_name = "NAME")]
    to: String,
    /// Number of draws.
    #[arg(long, default_value_t = 1)]
    n: usize,
    /// Where generated images go (a PNG grid).
    #[arg(long, default_value = "predicted.png")]
    out: PathBuf,
    /// Use the posterior mean instead of samples.
    #[arg(long)]
    mean: bool,
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

pub fn predict(a: PredictArgs) -> Result<()> {
    check_n(a.n)?;
    let given = parse_given(&a.given)?;
    let m = a.model.load()?;
    let how = if a.mean { Draw::Mean } else { Draw::Sample };
    match m.predict(&given, &a.to, a.n, how)? {
        Prediction::Images(imgs) => {
            let cols = (a.n as f64).sqrt().ceil() as usize;
            imageio::save_grid(&a.out, &imgs, cols)?;
            outln!("{}", a.out.display());
        }
        Prediction::Captions(lines) | Prediction::Labels(lines) => {
            for l in lines {
                outln!("{l}");
            }
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct CaptionArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A PNG or JPEG image, or a folder: every *.png / *.jpg in it is captioned.
    #[arg(long)]
    image: PathBuf,
    /// Sample words at this temperature instead of greedy decoding.
    #[arg(long, conflicts_with = "beam")]
    temperature: Option<f32>,
    /// Beam search of this width instead of greedy decoding.
    #[arg(long)]
    beam: Option<usize>,
    /// Use the posterior mean of q(z|image) instead of a sample.
    #[arg(long)]
    mean: bool,
}

/// The PNG and JPEG files of a folder, sorted.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| {
                ["png", "jpg", "jpeg"]
                    .iter()
                    .any(|x| e.eq_ignore_ascii_case(x))
            })
        })
        .collect();
    v.sort();
    if v.is_empty() {
        bail!("{}: no .png or .jpg files in this folder", dir.display());
    }
    Ok(v)
}

pub fn caption(a: CaptionArgs) -> Result<()> {
    if let Some(t) = a.temperature {
        if !(t.is_finite() && t > 0.0) {
            bail!("--temperature must be > 0 (got {t})");
        }
    }
    if let Some(w) = a.beam {
        if !(1..=64).contains(&w) {
            bail!("--beam must be in 1..=64 (got {w})");
        }
    }
    let m = a.model.load()?;
    let how = if a.mean { Draw::Mean } else { Draw::Sample };
    let run = |imgs: &[Image]| match a.beam {
        Some(w) => m.caption_beam(imgs, how, w),
        None => m.caption(imgs, how, a.temperature),
    };
    if a.image.is_dir() {
        let files = image_files(&a.image)?;
        for chunk in files.chunks(256) {
            let imgs: Vec<Image> = chunk
                .iter()
                .map(|p| m.read_image(p))
                .collect::<Result<_, _>>()?;
            for (p, c) in chunk.iter().zip(run(&imgs)?) {
                outln!("{}\t{}", p.display(), c);
            }
        }
    } else {
        let img = m.read_image(&a.image)?;
        outln!("{}", run(&[img])?.remove(0));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ReconstructArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A PNG image.
    #[arg(long)]
    image: PathBuf,
    /// Output PNG: the input, then `n` reconstructions.
    #[arg(long, default_value = "reconstruction.png")]
    out: PathBuf,
    #[arg(long, default_value_t = 7)]
    n: usize,
}

pub fn reconstruct(a: ReconstructArgs) -> Result<()> {
    check_n(a.n)?;
    let m = a.model.load()?;
    let img = m.read_image(&a.image)?;
    let (recon, caps) = m.reconstruct(&vec![img.clone(); a.n], Draw::Sample)?;
    let mut all = vec![img];
    all.extend(recon);
    imageio::save_grid(&a.out, &all, all.len())?;
    outln!(
        "{}\ncaption from the same latent: {}",
        a.out.display(),
        caps[0]
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Output PNG grid; the captions are printed in grid order.
    #[arg(long, default_value = "samples.png")]
    out: PathBuf,
    #[arg(long)]
    temperature: Option<f32>,
}

pub fn sample(a: SampleArgs) -> Result<()> {
    check_n(a.n)?;
    let m = a.model.load()?;
    let (imgs, caps) = m.sample(a.n, a.temperature);
    let cols = (a.n as f64).sqrt().ceil() as usize;
    imageio::save_grid(&a.out, &imgs, cols)?;
    outln!("{}", a.out.display());
    for (i, c) in caps.iter().enumerate() {
        outln!("{i:>3}\t{c}");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Classifier folder (default: runs/classifier-<dataset>).
    #[arg(long)]
    classifier: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Score only the first N test items.
    #[arg(long)]
    limit: Option<usize>,
    /// JSON report (default: <checkpoint>/eval.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cross-generate from the posterior mean instead of one sample of q(z|input).
    #[arg(long)]
    mean: bool,
    /// Metric groups to compute, comma-separated: coherence, loss, bleu,
    /// perplexity, reconstruction, fid, probe, retrieval, loglik, or all
    /// (default: all but loglik).
    #[arg(long)]
    metrics: Option<String>,
    /// Also estimate log p(x), log p(y) and log p(x,y) by importance sampling
    /// (adds loglik to --metrics).
    #[arg(long)]
    loglik: bool,
    /// Inception-v3 FID weights (pytorch-fid's pt_inception-2015-12-05-6726825d.pth,
    /// or a .safetensors with its tensor names): adds FID in Inception
    /// pool3 features. Slow on a CPU (about 0.1 s per image and set).
    #[arg(long)]
    inception: Option<PathBuf>,
    /// Caption by beam search of this width instead of greedily.
    #[arg(long)]
    beam: Option<usize>,
    /// Importance samples per item for --loglik.
    #[arg(long, default_value_t = 1000)]
    loglik_samples: usize,
    /// Test items for --loglik.
    #[arg(long, default_value_t = 100)]
    loglik_items: usize,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let mut metrics = match &a.metrics {
        Some(list) => Metric::parse_list(list).context("--metrics")?,
        None => Metric::defaults(),
    };
    if a.loglik {
        metrics.insert(Metric::Loglik);
    }
    if a.beam.is_some_and(|w| !(1..=64).contains(&w)) {
        bail!("--beam must be in 1..=64");
    }
    if a.inception.is_some() && !metrics.contains(&Metric::Fid) {
        bail!("--inception needs the fid metric (see --metrics)");
    }
    if a.loglik_items == 0 || a.loglik_samples == 0 {
        bail!("--loglik-items and --loglik-samples must be at least 1");
    }
    let m = a.model.load()?;
    let data_cfg = &m.checkpoint.config.data;
    let kind = data_cfg.dataset;
    if !kind.is_labelled() {
        if a.metrics.is_none() {
            metrics.retain(|x| !Metric::NEED_LABELS.contains(x));
        }
        if let Some(x) = metrics.iter().find(|x| Metric::NEED_LABELS.contains(x)) {
            bail!(
                "the {} metric needs class labels; the {kind} dataset has none (use --metrics with {})",
                x.name(),
                Metric::ALL
                    .iter()
                    .filter(|x| !Metric::NEED_LABELS.contains(x))
                    .map(|x| x.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let classifier = if kind.is_labelled() {
        let cdir = a
            .classifier
            .unwrap_or_else(|| classifier::default_dir(kind));
        Some(classifier::load(&cdir, kind, &m.device)?)
    } else {
        None
    };
    let test = mmvae_model::io::data::load_test(data_cfg, a.data_dir.as_deref())?;
    // The linear probes train on the training split's first items; a
    // dataset with its own captions trains the perplexity model on them.
    let train_split = if metrics.contains(&Metric::Probe)
        || (!kind.is_labelled() && metrics.contains(&Metric::Perplexity))
    {
        Some(mmvae_model::io::data::load_configured(
            data_cfg,
            Split::Train,
            a.data_dir.as_deref(),
        )?)
    } else {
        None
    };
    let train_captions = train_split.as_ref().and_then(|t| t.captions.clone());
    let probe_train = train_split.filter(|_| metrics.contains(&Metric::Probe));
    let inception = match &a.inception {
        Some(p) => Some(mmvae_model::eval::inception::InceptionV3::load(
            p, &m.device,
        )?),
        None => None,
    };
    let opts = EvalOptions {
        metrics,
        probe_train,
        train_captions,
        inception,
        beam: a.beam,
        limit: a.limit,
        seed: a.model.seed,
        draw: if a.mean { Draw::Mean } else { Draw::Sample },
        loglik: (a.loglik_items, a.loglik_samples),
        ..EvalOptions::default()
    };
    let report = eval::evaluate(&m, classifier.as_ref().map(|(c, i)| (c, i)), &test, &opts);
    let out = a
        .out
        .unwrap_or_else(|| a.model.checkpoint.join("eval.json"));
    fsutil::write_atomic(&out, serde_json::to_string_pretty(&report)?.as_bytes())?;
    outln!("{}", report.table().trim_end());
    outln!("report: {}", out.display());
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum ClassifierCommand {
    /// Train the evaluation classifier of a dataset and record its test accuracy.
    Train {
        /// mnist, fashion-mnist, multimnist, polymnist, shapes-l1 … shapes-l5 or celeba.
        #[arg(long)]
        dataset: String,
        /// Output folder (default: runs/classifier-<dataset>).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        train_limit: Option<usize>,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long)]
        quiet: bool,
    },
}

pub fn classifier(c: ClassifierCommand) -> Result<()> {
    match c {
        ClassifierCommand::Train {
            dataset: name,
            out,
            data_dir,
            epochs,
            train_limit,
            seed,
            quiet,
        } => {
            let kind = DatasetKind::parse(&name)?;
            if !kind.is_labelled() {
                bail!(
                    "the {kind} dataset has no class labels to train an evaluation classifier on"
                );
            }
            let train = load_split(kind, Split::Train, data_dir.as_deref(), None)?;
            let test = load_split(kind, Split::Test, data_dir.as_deref(), None)?;
            let mut opts = ClassifierTrainOptions::for_dataset(kind);
            if let Some(e) = epochs {
                if e == 0 {
                    bail!("--epochs must be at least 1");
                }
                opts.epochs = e;
            }
            opts.train_limit = train_limit;
            opts.seed = seed;
            opts.progress = !quiet;
            let out = out.unwrap_or_else(|| classifier::default_dir(kind));
            let t = std::time::Instant::now();
            let (_, info) = classifier::train_classifier(&train, &test, &opts, &out)?;
            let per_slot = if info.test_slot_accuracy.len() > 1 {
                let names = kind.slots();
                let parts: Vec<String> = names
                    .iter()
                    .zip(&info.test_slot_accuracy)
                    .map(|((n, _), a)| format!("{n} {:.2}%", 100.0 * a))
                    .collect();
                format!(" (all attributes right; {})", parts.join(", "))
            } else if !info.test_view_accuracy.is_empty() {
                let parts: Vec<String> = info
                    .test_view_accuracy
                    .iter()
                    .map(|(n, a)| format!("{n} {:.2}%", 100.0 * a))
                    .collect();
                format!(" (mean over images; {})", parts.join(", "))
            } else {
                String::new()
            };
            outln!(
                "{} classifier: test accuracy {:.2}%{per_slot} after {} epochs ({:.0}s); saved in {}",
                kind,
                100.0 * info.test_accuracy,
                info.epochs,
                t.elapsed().as_secs_f64(),
                out.display()
            );
            Ok(())
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download a dataset from its canonical mirror and verify its SHA-256 sums.
    Fetch {
        /// mnist or fashion-mnist (multimnist and polymnist are built from mnist; celeba must be
        /// downloaded by hand, see docs/datasets.md).
        name: String,
        /// Destination folder (default: $MMVAE_DATA/<name>, else data/<name>).
        #[arg(long)]
        dest: Option<PathBuf>,
        /// Another base URL serving the same files.
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Read both splits of a dataset and report what was read: item counts,
    /// load time, and for your own pairs every kind of bad line or image
    /// (exit 1 if there is any).
    Check {
        /// A dataset name (mnist, celeba, shapes-l3, …), or the captions file
        /// (or folder) of your own image–caption pairs.
        dataset: String,
        /// Where a named dataset's files are (as for `train`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Pairs: the side images are cropped and resized to.
        #[arg(long, default_value_t = 64)]
        image_size: usize,
        /// Pairs: 1 (grey) or 3 (RGB).
        #[arg(long, default_value_t = 3)]
        channels: usize,
        /// Write the first 8 test items as a PNG grid: one row per item,
        /// one column per image it holds (PolyMNIST's m0 … m4).
        #[arg(long)]
        grid: Option<PathBuf>,
    },
}

pub fn data(c: DataCommand) -> Result<()> {
    match c {
        DataCommand::Fetch { name, dest, mirror } => {
            let kind = DatasetKind::parse(&name)?;
            let dest = dest.unwrap_or_else(|| {
                std::env::var_os(dataset::DATA_ENV)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("data"))
                    .join(kind.base_name())
            });
            for f in fetch::fetch_dataset(kind, &dest, mirror.as_deref())? {
                match f {
                    fetch::Fetched::Downloaded(p) => {
                        outln!("downloaded and verified {}", p.display())
                    }
                    fetch::Fetched::AlreadyPresent(p) => {
                        outln!("already present and verified {}", p.display())
                    }
                }
            }
            Ok(())
        }
        DataCommand::Check {
            dataset,
            data_dir,
            image_size,
            channels,
            grid,
        } => {
            let named = DatasetKind::parse(&dataset)
                .ok()
                .filter(|k| k.is_labelled());
            let opts = mmvae_data::pairs::PairsOptions {
                side: image_size,
                channels,
                bad: mmvae_data::pairs::BadItems::Skip,
            };
            if named.is_none() && (!(8..=512).contains(&image_size) || !matches!(channels, 1 | 3)) {
                bail!("--image-size must be in 8..=512 and --channels 1 or 3");
            }
            let mut bad = 0;
            for split in [Split::Train, Split::Test] {
                let start = std::time::Instant::now();
                let set = match named {
                    Some(kind) => load_split(kind, split, data_dir.as_deref(), None)?,
                    None => mmvae_data::pairs::load_split(
                        Path::new(&dataset),
                        split,
                        &opts,
                        default_threads(),
                    )
                    .with_context(|| {
                        format!("`{dataset}` is neither a dataset name nor a pairs file")
                    })?,
                };
                let images = set.image_names();
                let modalities = if images.len() > 1 {
                    format!(" ({} images per item: {})", images.len(), images.join(", "))
                } else {
                    String::new()
                };
                outln!(
                    "{split:?}: {} items of {}x{}x{}{modalities} in {:.2}s",
                    set.len(),
                    set.channels,
                    set.rows,
                    set.cols,
                    start.elapsed().as_secs_f64()
                );
                for note in &set.notes {
                    outln!("  {note}");
                }
                bad += set.skipped;
                if let (Some(path), Split::Test) = (&grid, split) {
                    let views = set.image_names().len();
                    let imgs: Vec<imageio::Image> = (0..set.len().min(8))
                        .flat_map(|i| (0..views).map(move |v| (i, v)))
                        .map(|(i, v)| {
                            imageio::Image::from_bytes(
                                set.channels,
                                set.cols,
                                set.rows,
                                set.view_image(v, i),
                            )
                        })
                        .collect();
                    imageio::save_grid(path, &imgs, views)?;
                    outln!("test items written to {}", path.display());
                }
            }
            if bad > 0 {
                bail!("{bad} bad items (listed above); training stops at the first unless `data.bad_items = \"skip\"`");
            }
            Ok(())
        }
    }
}

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Dataset: shapes-l1 … shapes-l5 (rendered in code, nothing to
    /// download), mnist, fashion-mnist, multimnist or celeba.
    #[arg(long, default_value = "shapes-l2")]
    dataset: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Output folder; an earlier quickstart there is replaced.
    #[arg(long, default_value = "runs/quickstart")]
    out: PathBuf,
    /// Training images used (more = better and slower; default 8,000 for
    /// shapes, 20,000 otherwise).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Epochs.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Epochs of the evaluation classifier (on the same training images).
    #[arg(long, default_value_t = 3)]
    classifier_epochs: usize,
}

/// The shipped configuration of a dataset.
pub fn shipped_config(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::Mnist => include_str!("../../../configs/mnist.toml"),
        DatasetKind::FashionMnist => include_str!("../../../configs/fashion-mnist.toml"),
        DatasetKind::Shapes(Level::L1) => include_str!("../../../configs/shapes-l1.toml"),
        DatasetKind::Shapes(Level::L2) => include_str!("../../../configs/shapes-l2.toml"),
        DatasetKind::Shapes(Level::L3) => include_str!("../../../configs/shapes-l3.toml"),
        DatasetKind::Shapes(Level::L4) => include_str!("../../../configs/shapes-l4.toml"),
        DatasetKind::Shapes(Level::L5) => include_str!("../../../configs/shapes-l5.toml"),
        DatasetKind::MultiMnist => include_str!("../../../configs/multimnist.toml"),
        DatasetKind::PolyMnist => include_str!("../../../configs/polymnist.toml"),
        DatasetKind::Vision => include_str!("../../../configs/vision.toml"),
        DatasetKind::CelebA(_) => include_str!("../../../configs/celeba.toml"),
        DatasetKind::Pairs => include_str!("../../../configs/pairs.toml"),
    }
}

pub fn quickstart(a: QuickstartArgs) -> Result<()> {
    let kind = DatasetKind::parse(&a.dataset)?;
    if !kind.is_labelled() {
        bail!("quickstart scores coherence with a classifier and needs a labelled dataset; train on {kind} with `mmvae train --config configs/{kind}.toml --data-dir <captions file>`");
    }
    let cfg_text = shipped_config(kind);
    let mut cfg = TrainConfig::from_toml_str(cfg_text, Path::new("configs/<dataset>.toml"))?;
    cfg.set_epochs(a.epochs);
    let train_limit = a
        .train_limit
        .unwrap_or(if kind.is_synthetic() { 8_000 } else { 20_000 });
    cfg.data.train_limit = Some(train_limit);
    if !kind.is_synthetic() {
        cfg.loss.kl_anneal_steps = 500;
    }
    // A short fit of the text prior, in step with the short training.
    if let Some(p) = cfg.text_prior.as_mut() {
        p.epochs = p.epochs.min(15);
    }
    cfg.validate()?;
    if a.classifier_epochs == 0 {
        bail!("--classifier-epochs must be at least 1");
    }
    if a.out.exists() {
        std::fs::remove_dir_all(&a.out).with_context(|| format!("clearing {}", a.out.display()))?;
    }
    eprintln!(
        "[1/5] training an MVAE on {kind} ({train_limit} images, {} epochs)",
        cfg.optim.epochs
    );
    let opts = TrainOptions {
        out_dir: a.out.clone(),
        data_dir: a.data_dir.clone(),
        resume: false,
        progress: true,
        compute: Compute::Cpu,
        threads: default_threads(),
    };
    train::train(&cfg, &opts, print_epoch)?;

    eprintln!(
        "[2/5] training the evaluation classifier ({} epochs)",
        a.classifier_epochs
    );
    let train_set = load_split(kind, Split::Train, a.data_dir.as_deref(), None)?;
    let test = load_split(kind, Split::Test, a.data_dir.as_deref(), None)?;
    let mut copts = ClassifierTrainOptions::for_dataset(kind);
    copts.epochs = a.classifier_epochs;
    copts.train_limit = Some(train_limit);
    let cdir = a.out.join("classifier");
    let (clf, info) = classifier::train_classifier(&train_set, &test, &copts, &cdir)?;

    eprintln!("[3/5] generating and captioning");
    let ck = a.out.join("best");
    let mut m = infer::load(&ck, Compute::Cpu)?;
    if m.text_prior.is_some() {
        choose_prior_temperature(&mut m, &clf, QUICKSTART_TEMPERATURES, a.data_dir.as_deref())?;
    }
    m.seed(0);
    let captioner = m.captioner();
    let mut grid = Vec::new();
    // One row per class (at most 12 classes, spread over all of them).
    let shown = kind.num_classes().min(12);
    for c in (0..shown).map(|k| k * kind.num_classes() / shown) {
        let text = captioner.render(mmvae_data::captions::CaptionSet::Train, 1, c);
        grid.extend(m.generate(&text, 8, Draw::Sample)?);
    }
    let gen = a.out.join("text-to-image.png");
    imageio::save_grid(&gen, &grid, 8)?;
    let imgs: Vec<Image> = (0..8)
        .map(|i| Image::from_bytes(test.channels, test.cols, test.rows, test.image(i)))
        .collect();
    let caps = m.caption(&imgs, Draw::Sample, None)?;
    let inputs = a.out.join("test-images.png");
    imageio::save_grid(&inputs, &imgs, 8)?;
    let (samples, sample_caps) = m.sample(16, None);
    let samples_png = a.out.join("joint-samples.png");
    imageio::save_grid(&samples_png, &samples, 4)?;

    eprintln!("[4/5] evaluating on 1000 test items");
    let report = eval::evaluate(
        &m,
        Some((&clf, &info)),
        &test,
        &EvalOptions {
            limit: Some(1000),
            joint_samples: 1000,
            ..EvalOptions::default()
        },
    );
    let eval_json = a.out.join("eval.json");
    fsutil::write_atomic(
        &eval_json,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;

    eprintln!("[5/5] writing the HTML report");
    let html_path = a.out.join("report.html");
    let html = mmvae_report::report::build(
        &m,
        &test,
        &Saved::read(&m, Some(&eval_json))?,
        &ReportOptions {
            tsne_items: 300,
            ..ReportOptions::default()
        },
    )?;
    fsutil::write_atomic(&html_path, html.as_bytes())?;

    outln!(
        "\nquickstart on {kind} done (a short run; docs/results.md has the full-length recipes)."
    );
    outln!(
        "text -> image, one row per class ('{}', ...): {}",
        captioner.render(mmvae_data::captions::CaptionSet::Train, 1, 0),
        gen.display()
    );
    outln!("captions of the test images in {}:", inputs.display());
    for (i, c) in caps.iter().enumerate() {
        outln!(
            "  {i}: {c}  (true: {})",
            captioner.render(
                mmvae_data::captions::CaptionSet::Train,
                0,
                test.labels[i] as usize
            )
        );
    }
    outln!(
        "joint prior samples: {} (first captions: {})",
        samples_png.display(),
        sample_caps[..4].join(" | ")
    );
    outln!("{}", report.table().trim_end());
    outln!(
        "outputs: {}  (checkpoint {}, metrics {}, eval {}, HTML report {})",
        a.out.display(),
        ck.display(),
        a.out.join("metrics.jsonl").display(),
        eval_json.display(),
        html_path.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// mvae-mlp (MNIST MVAE, batch 100, latent 64, 512 wide) or conv-vae (64×64 conv VAE).
    #[arg(long, default_value = "mvae-mlp")]
    model: String,
    /// Timed training steps (after warm-up).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Data-parallel threads per step (default: one per core, at most 4).
    #[arg(long)]
    threads: Option<usize>,
    /// Compute device: cpu, wgpu, or wgpu:NAME / wgpu:N (see `mmvae devices`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn bench(a: BenchArgs) -> Result<()> {
    let kind = mmvae_model::bench::BenchModel::parse(&a.model)?;
    let r = mmvae_model::bench::run(
        kind,
        a.batch_size,
        a.steps,
        a.threads.unwrap_or_else(default_threads),
        compute(&a.device)?,
    )?;
    outln!("{}", serde_json::to_string(&r)?);
    Ok(())
}

/// `mmvae devices`: one line per graphics adapter, with the `--device`
/// value that chooses it.
pub fn devices() -> Result<()> {
    let found = mmvae_model::device::adapters()?;
    if found.is_empty() {
        anyhow::bail!("no GPU adapter found (is a Vulkan driver installed?); use --device cpu");
    }
    for (i, a) in found.iter().enumerate() {
        let (kind, api) = match a.slot {
            mmvae_model::device::GpuSlot::Adapter { kind, api, .. } => {
                (kind.to_string(), format!("{api:?}"))
            }
            mmvae_model::device::GpuSlot::Best => (String::new(), String::new()),
        };
        outln!("--device wgpu:{i}\t{}\t{kind}\t{api}\t{}", a.name, a.driver);
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Output HTML file (self-contained: images and charts inline).
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
    /// Metrics JSON to show (default: eval.json in the checkpoint folder or
    /// its parent, if there).
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Test items in the t-SNE plot.
    #[arg(long, default_value_t = 500)]
    tsne_items: usize,
    /// Rows of the example tables.
    #[arg(long, default_value_t = 12)]
    examples: usize,
}

pub fn report(a: ReportArgs) -> Result<()> {
    if a.tsne_items < 2 || a.examples == 0 {
        bail!("--tsne-items must be at least 2 and --examples at least 1");
    }
    let m = a.model.load()?;
    let cfg = &m.checkpoint.config;
    let test = mmvae_model::io::data::load_test(&cfg.data, a.data_dir.as_deref())?;
    let saved = Saved::read(&m, a.eval.as_deref())?;
    let opts = ReportOptions {
        tsne_items: a.tsne_items,
        examples: a.examples,
        seed: a.model.seed,
        ..ReportOptions::default()
    };
    let html = report::build(&m, &test, &saved, &opts)?;
    fsutil::write_atomic(&a.out, html.as_bytes())?;
    outln!(
        "report: {} ({} KiB; metrics from {})",
        a.out.display(),
        html.len() / 1024,
        if saved.eval.is_some() {
            "eval.json"
        } else {
            "nowhere yet: run mmvae eval"
        }
    );
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum PlotCommand {
    /// t-SNE of the image and caption latent means of test items, coloured
    /// by class (PNG, or SVG if --out ends in .svg).
    Tsne {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "tsne.png")]
        out: PathBuf,
        /// Test items (each gives an image point and a caption point).
        #[arg(long, default_value_t = 1000)]
        items: usize,
        #[arg(long, default_value_t = 30.0)]
        perplexity: f64,
        #[arg(long, default_value_t = 1000)]
        iterations: usize,
    },
}

pub fn plot(c: PlotCommand) -> Result<()> {
    match c {
        PlotCommand::Tsne {
            model,
            data_dir,
            out,
            items,
            perplexity,
            iterations,
        } => {
            if !(2..=5000).contains(&items) {
                bail!("--items must be in 2..=5000 (t-SNE here is exact, O(n²)); got {items}");
            }
            if perplexity.is_nan() || perplexity <= 0.0 {
                bail!("--perplexity must be positive");
            }
            let m = model.load()?;
            let cfg = &m.checkpoint.config;
            let test = mmvae_model::io::data::load_test(&cfg.data, data_dir.as_deref())?;
            let tcfg = TsneConfig {
                perplexity,
                iterations,
                seed: model.seed,
                ..TsneConfig::default()
            };
            let scatter = report::tsne_scatter(&m, &test, items, &tcfg)?;
            let svg = out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
            let bytes = if svg {
                scatter.draw_svg((1100, 760))?.into_bytes()
            } else {
                scatter.draw_png((1100, 760))?
            };
            fsutil::write_atomic(&out, &bytes)?;
            outln!(
                "t-SNE of {} points: {}",
                scatter.points.len(),
                out.display()
            );
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["from_image", "from_text"])))]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_image", "to_text"])))]
pub struct InterpolateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Start at the posterior mean of this image (PNG/JPEG).
    #[arg(long)]
    from_image: Option<PathBuf>,
    /// Start at the posterior mean of this caption.
    #[arg(long)]
    from_text: Option<String>,
    /// End at the posterior mean of this image.
    #[arg(long)]
    to_image: Option<PathBuf>,
    /// End at the posterior mean of this caption.
    #[arg(long)]
    to_text: Option<String>,
    /// Points on the segment, both ends included.
    #[arg(long, default_value_t = 8)]
    steps: usize,
    /// Output PNG: one row of decoded images.
    #[arg(long, default_value = "interpolation.png")]
    out: PathBuf,
}

pub fn interpolate(a: InterpolateArgs) -> Result<()> {
    if !(2..=64).contains(&a.steps) {
        bail!("--steps must be in 2..=64 (got {})", a.steps);
    }
    let m = a.model.load()?;
    let end = |img: &Option<PathBuf>, text: &Option<String>| -> Result<Endpoint> {
        Ok(match (img, text) {
            (Some(p), _) => Endpoint::Image(
                m.read_image(p)
                    .with_context(|| format!("reading {}", p.display()))?,
            ),
            (None, Some(t)) => Endpoint::Text(t.clone()),
            (None, None) => bail!("an endpoint needs an image or a text"),
        })
    };
    let (from, to) = (
        end(&a.from_image, &a.from_text)?,
        end(&a.to_image, &a.to_text)?,
    );
    let (imgs, caps) = m.interpolate(&from, &to, a.steps)?;
    imageio::save_grid(&a.out, &imgs, a.steps)?;
    for (k, c) in caps.iter().enumerate() {
        outln!("{k}: {c}");
    }
    outln!("interpolation: {}", a.out.display());
    Ok(())
}
