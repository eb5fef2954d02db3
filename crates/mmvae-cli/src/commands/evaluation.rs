//! `mmvae eval` and `mmvae classifier`.

use super::*;
use std::collections::BTreeSet;

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
    /// perplexity, reconstruction, fid, probe, retrieval, loglik, latent
    /// (each modality's KL and active units), or all (default: all but
    /// loglik).
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

/// The metric groups `--metrics` and `--loglik` select, checked against
/// the other options.
fn selected_metrics(a: &EvalArgs) -> Result<BTreeSet<Metric>> {
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
    Ok(metrics)
}

/// On a dataset without labels, the groups that need them are left out of
/// the defaults, and an error when asked for.
fn drop_label_metrics(
    metrics: &mut BTreeSet<Metric>,
    asked: bool,
    kind: DatasetKind,
) -> Result<()> {
    if kind.is_labelled() {
        return Ok(());
    }
    if !asked {
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
    Ok(())
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let mut metrics = selected_metrics(&a)?;
    let m = a.model.load()?;
    let data_cfg = &m.checkpoint.config.data;
    let kind = data_cfg.dataset;
    drop_label_metrics(&mut metrics, a.metrics.is_some(), kind)?;
    // The classifier scores coherence and gives FID its features; the other
    // groups run without one.
    let scored = metrics.contains(&Metric::Coherence) || metrics.contains(&Metric::Fid);
    let classifier = if kind.is_labelled() && scored {
        let cdir = classifier::dir_or_default(a.classifier.as_deref(), kind);
        Some(Classifiers::load(&cdir, kind, &m.device)?)
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
    let report = eval::evaluate(&m, classifier.as_ref(), &test, &opts);
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
        /// mnist, fashion-mnist, multimnist, polymnist, shapes-l1 … shapes-l5, vision, celeba, celeba19, celeba:ATTRIBUTE,… or vision-celeba (vision-celeba19, vision-celeba:ATTRIBUTE,…).
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
        /// One classifier for every image modality of a dataset with
        /// several (PolyMNIST), reading a random one of each item per epoch;
        /// by default each image modality gets its own.
        #[arg(long)]
        one_for_all: bool,
        /// Read only these images of each item, by name (comma-separated);
        /// by default the dataset's own (on vision, the source image). A
        /// classifier of one transformed copy, e.g. `--reads grey`, shows
        /// how much of each attribute that copy keeps.
        #[arg(long, value_delimiter = ',')]
        reads: Vec<String>,
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
            one_for_all,
            reads,
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
            if one_for_all {
                opts = opts.one_for_all(kind);
            }
            if let Some(e) = epochs {
                if e == 0 {
                    bail!("--epochs must be at least 1");
                }
                opts.epochs = e;
            }
            opts.train_limit = train_limit;
            opts.seed = seed;
            opts.progress = !quiet;
            let out = out.unwrap_or_else(|| classifier::default_dir_reading(kind, &reads));
            opts.reads = reads;
            let t = std::time::Instant::now();
            let info = classifiers::train(&train, &test, &opts, &out)?.info;
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
                let how = match info.per_modality.is_empty() {
                    true => "mean over images",
                    false => "mean of one classifier per image",
                };
                format!(" ({how}; {})", parts.join(", "))
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
