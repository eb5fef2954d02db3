//! `mmvae train` and `mmvae fit-prior`.

use super::*;

pub(super) fn print_epoch(r: &EpochReport) {
    let phase = r
        .phase
        .as_ref()
        .map(|p| format!(" [{p}]"))
        .unwrap_or_default();
    let adv = match (r.train.get("adv_g"), r.train.get("adv_d")) {
        (Some(g), Some(d)) => format!("  adversarial G {g:.2} D {d:.3}"),
        _ => String::new(),
    };
    let pseudo = match (r.train.get("pseudo_used"), r.train.get("pseudo_agree")) {
        (Some(u), Some(a)) => format!(
            "  self-training: {:.1}% filled in, {:.1}% of them agree",
            100.0 * u,
            100.0 * a
        ),
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
        "epoch {:>3}{phase}  step {:>6}  train loss {:>9.3}  val loss {:>9.3}  ({}){adv}{pseudo}  {:.0} samples/s  (data wait {:.1}%)  {:.0}s{}",
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
        "trained {} epochs ({} steps) in {:.0}s; validation loss of best/ {:.3}\ncheckpoints: {}/best {}/last\nmetrics: {}/metrics.jsonl",
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
                let clfs = Classifiers::load(&cdir, kind, &m.device)?;
                let clf = image_classifier(&clfs, &m, &cdir)?;
                choose_prior_temperature(&mut m, clf, temps, opts.data_dir.as_deref()).context(
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
            let cdir = classifier::dir_or_default(a.classifier.as_deref(), kind);
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
    let clfs = Classifiers::load(&cdir, kind, &m.device)?;
    let clf = image_classifier(&clfs, &m, &cdir)?;
    choose_prior_temperature(&mut m, clf, &a.temperatures, a.data_dir.as_deref())?;
    Ok(())
}

/// The classifier in `clfs` (loaded from `dir`) that reads the model's
/// image modality, the one its text prior draws.
fn image_classifier<'c>(
    clfs: &'c Classifiers,
    m: &infer::Loaded,
    dir: &Path,
) -> Result<&'c classifier::Classifier> {
    clfs.of_image(&m.model).with_context(|| {
        format!(
            "no classifier in {} reads the model's image modality",
            dir.display()
        )
    })
}

/// Choose the temperature of `m`'s fitted text prior on its run's
/// validation split ([`eval::choose_prior_temperature`]) and print the
/// scores.
pub(super) fn choose_prior_temperature(
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
