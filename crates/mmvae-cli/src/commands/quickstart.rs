//! `mmvae quickstart`: the whole pipeline in a few minutes on a shipped recipe.

use super::training::{choose_prior_temperature, print_epoch};
use super::*;
use mmvae_data::captions::CaptionSet;
use mmvae_data::{ImageLabelSet, VisionSource};
use mmvae_model::eval::classifiers::Classifiers;
use mmvae_model::eval::EvalReport;
use mmvae_model::infer::Loaded;

/// The text prior temperatures the quickstart chooses from (on validation)
/// with a shipped config; its own recipe lists its own.
const QUICKSTART_TEMPERATURES: &[f32] = &[0.1, 0.25, 0.5, 1.0];

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Dataset: shapes-l1 (the default, with its own quick recipe,
    /// configs/quickstart.toml), shapes-l2 … shapes-l5 and vision (rendered
    /// in code, nothing to download), mnist, fashion-mnist, multimnist,
    /// polymnist, celeba or vision-celeba (their shipped configs,
    /// shortened; a CelebA attribute set as `celeba:Young,Male`).
    #[arg(long, default_value = "shapes-l1")]
    dataset: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Output folder; an earlier quickstart there is replaced.
    #[arg(long, default_value = "runs/quickstart")]
    out: PathBuf,
    /// Training images used (more = better and slower; default: all of
    /// shapes level 1, 8,000 for the other shapes levels, 20,000 otherwise).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Epochs (default: 6 on shapes level 1, 3 otherwise).
    #[arg(long)]
    epochs: Option<usize>,
    /// Epochs of the evaluation classifier (on the same training images).
    #[arg(long, default_value_t = 3)]
    classifier_epochs: usize,
}

/// The quick start's own recipe: shapes level 1 with an MLP image expert,
/// which draws recognisable shapes after a few minutes on a CPU.
const QUICKSTART_RECIPE: &str = include_str!("../../../../configs/quickstart.toml");

/// Images the evaluation classifier trains on when `--train-limit` is not
/// given (on shapes level 1, 2 epochs of them at learning rate 0.002 reach
/// 99.97%).
const CLASSIFIER_IMAGES: usize = 8_000;

/// The recipe the quick start trains on a dataset, and whether it is the
/// quick start's own (trained at its own length) or a shipped config to
/// shorten.
fn recipe(kind: DatasetKind) -> (&'static str, bool) {
    match kind {
        DatasetKind::Shapes(Level::L1) => (QUICKSTART_RECIPE, true),
        _ => (shipped_config(kind), false),
    }
}

/// The shipped configuration of a dataset.
pub fn shipped_config(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::Mnist => include_str!("../../../../configs/mnist.toml"),
        DatasetKind::FashionMnist => include_str!("../../../../configs/fashion-mnist.toml"),
        DatasetKind::Shapes(Level::L1) => include_str!("../../../../configs/shapes-l1.toml"),
        DatasetKind::Shapes(Level::L2) => include_str!("../../../../configs/shapes-l2.toml"),
        DatasetKind::Shapes(Level::L3) => include_str!("../../../../configs/shapes-l3.toml"),
        DatasetKind::Shapes(Level::L4) => include_str!("../../../../configs/shapes-l4.toml"),
        DatasetKind::Shapes(Level::L5) => include_str!("../../../../configs/shapes-l5.toml"),
        DatasetKind::MultiMnist => include_str!("../../../../configs/multimnist.toml"),
        DatasetKind::PolyMnist => include_str!("../../../../configs/polymnist.toml"),
        DatasetKind::Vision(VisionSource::CelebA(_)) => {
            include_str!("../../../../configs/vision-celeba.toml")
        }
        DatasetKind::Vision(VisionSource::Mnist) => {
            include_str!("../../../../configs/vision-mnist.toml")
        }
        DatasetKind::Vision(_) => include_str!("../../../../configs/vision.toml"),
        DatasetKind::CelebA(_) => include_str!("../../../../configs/celeba.toml"),
        DatasetKind::Pairs => include_str!("../../../../configs/pairs.toml"),
    }
}

/// The quick start's config for `kind`: its own recipe at its own length,
/// or a shipped config shortened; whether it is its own, and the training
/// images it uses (`None`: all).
fn quick_config(
    a: &QuickstartArgs,
    kind: DatasetKind,
) -> Result<(TrainConfig, bool, Option<usize>)> {
    let (cfg_text, own) = recipe(kind);
    let mut cfg = TrainConfig::from_toml_str(cfg_text, Path::new("configs/<dataset>.toml"))?;
    // A shipped config names its dataset's default form (`celeba`,
    // `vision`); the quick start trains the one asked for
    // (`celeba:Young,Male`, `vision-mnist`), with the source's tokenizer
    // and caption length.
    cfg.data.dataset = kind;
    if let DatasetKind::Vision(source) = kind {
        let own = TrainConfig::from_toml_str(
            shipped_config(source.kind()),
            Path::new("configs/<source>.toml"),
        )?;
        cfg.data.tokenizer = own.data.tokenizer;
        cfg.model.max_len = own.model.max_len;
    }
    let default_limit = if kind.is_synthetic() { 8_000 } else { 20_000 };
    let (epochs, train_limit) = if own {
        (a.epochs, a.train_limit)
    } else {
        (
            Some(a.epochs.unwrap_or(3)),
            Some(a.train_limit.unwrap_or(default_limit)),
        )
    };
    if let Some(e) = epochs {
        cfg.set_epochs(e);
    }
    cfg.data.train_limit = train_limit;
    if !kind.is_synthetic() {
        cfg.loss.kl_anneal_steps = 500;
    }
    // A short fit of the text prior, in step with the short training.
    if let Some(p) = cfg.text_prior.as_mut() {
        p.epochs = p.epochs.min(15);
    }
    cfg.validate()?;
    Ok((cfg, own, train_limit))
}

/// The pictures the quick start writes, and the captions it prints.
struct Pictures {
    text_to_image: PathBuf,
    test_images: PathBuf,
    joint_samples: PathBuf,
    /// Captions of the first 8 test images.
    captions: Vec<String>,
    /// Captions of the joint samples.
    sample_captions: Vec<String>,
}

/// Generates from the training phrasing of (at most 12) classes, captions
/// the first test images and samples the prior, each as a grid in `out`.
fn pictures(m: &Loaded, kind: DatasetKind, test: &ImageLabelSet, out: &Path) -> Result<Pictures> {
    m.seed(0);
    let captioner = m.captioner();
    let mut grid = Vec::new();
    // One row per class (at most 12 classes, spread over all of them).
    let shown = kind.num_classes().min(12);
    for c in (0..shown).map(|k| k * kind.num_classes() / shown) {
        let text = captioner.render(CaptionSet::Train, 1, c);
        grid.extend(m.generate(&text, 8, Draw::Sample)?);
    }
    let text_to_image = out.join("text-to-image.png");
    imageio::save_grid(&text_to_image, &grid, 8)?;
    let imgs: Vec<Image> = (0..8)
        .map(|i| Image::from_bytes(test.channels, test.cols, test.rows, test.image(i)))
        .collect();
    let captions = m.caption(&imgs, Draw::Sample, None)?;
    let test_images = out.join("test-images.png");
    imageio::save_grid(&test_images, &imgs, 8)?;
    let (samples, sample_captions) = m.sample(16, None);
    let joint_samples = out.join("joint-samples.png");
    imageio::save_grid(&joint_samples, &samples, 4)?;
    Ok(Pictures {
        text_to_image,
        test_images,
        joint_samples,
        captions,
        sample_captions,
    })
}

/// Evaluate on the first 1,000 test items (1,000 prior samples) and save
/// the JSON in `out`.
fn evaluate_quick(
    m: &Loaded,
    classifier: &Classifiers,
    test: &ImageLabelSet,
    out: &Path,
) -> Result<(EvalReport, PathBuf)> {
    let report = eval::evaluate(
        m,
        Some(classifier),
        test,
        &EvalOptions {
            limit: Some(1000),
            joint_samples: 1000,
            ..EvalOptions::default()
        },
    );
    let eval_json = out.join("eval.json");
    fsutil::write_atomic(
        &eval_json,
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok((report, eval_json))
}

/// The HTML report of the quick start's model, in `out`.
fn write_report(m: &Loaded, test: &ImageLabelSet, eval_json: &Path, out: &Path) -> Result<PathBuf> {
    let html_path = out.join("report.html");
    let html = mmvae_report::report::build(
        m,
        test,
        &Saved::read(m, Some(eval_json))?,
        &ReportOptions {
            tsne_items: 300,
            ..ReportOptions::default()
        },
    )?;
    fsutil::write_atomic(&html_path, html.as_bytes())?;
    Ok(html_path)
}

pub fn quickstart(a: QuickstartArgs) -> Result<()> {
    let kind = DatasetKind::parse(&a.dataset)?;
    if !kind.is_labelled() {
        bail!("quickstart scores coherence with a classifier and needs a labelled dataset; train on {kind} with `mmvae train --config configs/{kind}.toml --data-dir <captions file>`");
    }
    let (cfg, own, train_limit) = quick_config(&a, kind)?;
    if a.classifier_epochs == 0 {
        bail!("--classifier-epochs must be at least 1");
    }
    if a.out.exists() {
        std::fs::remove_dir_all(&a.out).with_context(|| format!("clearing {}", a.out.display()))?;
    }
    let images = train_limit.map_or("all".to_string(), |n| n.to_string());
    eprintln!(
        "[1/5] training an MVAE on {kind} ({images} training images, {} epochs)",
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
    copts.train_limit = Some(train_limit.unwrap_or(CLASSIFIER_IMAGES));
    let cdir = a.out.join("classifier");
    let (clf, info) = classifier::train_classifier(&train_set, &test, &copts, &cdir)?;

    eprintln!("[3/5] generating and captioning");
    let ck = a.out.join("best");
    let mut m = infer::load(&ck, Compute::Cpu)?;
    if m.text_prior.is_some() {
        let temperatures = match (&cfg.text_prior, own) {
            (Some(p), true) if !p.choose_temperature.is_empty() => &p.choose_temperature[..],
            _ => QUICKSTART_TEMPERATURES,
        };
        choose_prior_temperature(&mut m, &clf, temperatures, a.data_dir.as_deref())?;
    }
    let pictures = pictures(&m, kind, &test, &a.out)?;

    eprintln!("[4/5] evaluating on 1000 test items");
    let clf = Classifiers::one(clf, info);
    let (report, eval_json) = evaluate_quick(&m, &clf, &test, &a.out)?;
    eprintln!("[5/5] writing the HTML report");
    let html_path = write_report(&m, &test, &eval_json, &a.out)?;
    print_summary(&m, kind, &test, &pictures, &report);
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

/// What the quick start made: its pictures, the test images' captions
/// beside their true ones, and the evaluation's table.
fn print_summary(
    m: &Loaded,
    kind: DatasetKind,
    test: &ImageLabelSet,
    pictures: &Pictures,
    report: &EvalReport,
) {
    let captioner = m.captioner();
    outln!(
        "\nquickstart on {kind} done (a short run; docs/results.md has the full-length recipes)."
    );
    outln!(
        "text -> image, one row per class ('{}', ...): {}",
        captioner.render(CaptionSet::Train, 1, 0),
        pictures.text_to_image.display()
    );
    outln!(
        "captions of the test images in {}:",
        pictures.test_images.display()
    );
    for (i, c) in pictures.captions.iter().enumerate() {
        outln!(
            "  {i}: {c}  (true: {})",
            captioner.render(CaptionSet::Train, 0, test.labels[i] as usize)
        );
    }
    outln!(
        "joint prior samples: {} (first captions: {})",
        pictures.joint_samples.display(),
        pictures.sample_captions[..4].join(" | ")
    );
    outln!("{}", report.table().trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_level_one_trains_the_quickstart_recipe_and_others_their_shipped_config() {
        let (text, own) = recipe(DatasetKind::Shapes(Level::L1));
        assert!(own);
        let cfg = TrainConfig::from_toml_str(text, Path::new("configs/quickstart.toml")).unwrap();
        assert_eq!(cfg.data.dataset, DatasetKind::Shapes(Level::L1));
        let prior = cfg
            .text_prior
            .as_ref()
            .expect("the recipe fits a text prior");
        assert!(!prior.choose_temperature.is_empty());
        // Its last epoch runs at a lower learning rate, and the phases
        // cover the run.
        let last = cfg.phases.last().expect("the recipe has phases");
        assert!(last.lr.is_some_and(|lr| lr < cfg.optim.lr), "{last:?}");
        let epochs: usize = cfg.phases.iter().map(|p| p.epochs).sum();
        assert_eq!(epochs, cfg.optim.epochs);
        for kind in [DatasetKind::Shapes(Level::L2), DatasetKind::Mnist] {
            let (text, own) = recipe(kind);
            assert!(!own);
            assert_eq!(text, shipped_config(kind));
        }
    }

    /// A shipped config names its dataset's default form; the quick start
    /// trains the attribute set asked for, on the experts the config lists.
    /// A source with a vision recipe of its own trains that recipe.
    #[test]
    fn the_vision_views_train_their_sources_recipe() {
        for (name, file) in [
            ("vision", "dataset = \"vision\""),
            ("vision-mnist", "dataset = \"vision-mnist\""),
            ("vision-celeba:Smiling", "dataset = \"vision-celeba\""),
            ("vision-fashion-mnist", "dataset = \"vision\""),
        ] {
            let kind = DatasetKind::parse(name).unwrap();
            assert!(shipped_config(kind).contains(file), "{name}");
        }
    }

    #[test]
    fn the_quick_config_trains_the_dataset_asked_for() {
        for name in [
            "celeba:Young,Male",
            "vision-celeba:Smiling",
            "vision",
            "vision-mnist",
            "vision-multimnist",
        ] {
            let a = QuickstartArgs {
                dataset: name.into(),
                data_dir: None,
                out: PathBuf::from("unused"),
                train_limit: None,
                epochs: None,
                classifier_epochs: 1,
            };
            let kind = DatasetKind::parse(name).unwrap();
            let (cfg, own, limit) = quick_config(&a, kind).unwrap();
            assert_eq!(cfg.data.dataset, kind, "{name}");
            assert!(!own && limit.is_some(), "{name}");
            let names: Vec<&str> = cfg.modalities.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(
                names.contains(&"grey"),
                name.starts_with("vision"),
                "{name}"
            );
            // The source's caption length and tokenizer (MultiMNIST's digit
            // strings are read character by character).
            let source = TrainConfig::from_toml_str(
                shipped_config(kind.classes_of()),
                Path::new("source.toml"),
            )
            .unwrap();
            assert_eq!(cfg.model.max_len, source.model.max_len, "{name}");
            assert_eq!(cfg.data.tokenizer, source.data.tokenizer, "{name}");
        }
    }
}
