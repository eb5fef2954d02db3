//! `mmvae calibrate` and `mmvae check`: does a caption match an image, or
//! more generally one modality of an item another one?

use anyhow::{bail, Result};
use clap::Args;
use mmvae_data::fsutil;
use mmvae_data::imageio::Image;
use mmvae_model::eval::consistency::{self, ScoreOptions};
use mmvae_model::eval::pair_check::{self, ModalityPair, PairCalibration, PairScore};
use mmvae_model::infer::Loaded;
use mmvae_model::modality::ModalityKind;
use std::path::PathBuf;

use crate::commands::{parse_given, ModelArgs};

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Validation items the thresholds are fitted on.
    #[arg(long, default_value_t = 2000)]
    val_items: usize,
    /// Test items the fitted thresholds are measured on.
    #[arg(long, default_value_t = 2000)]
    test_items: usize,
    /// Prior samples estimating log p(x) and log p(y) in the ratio scores.
    #[arg(long, default_value_t = 64)]
    prior_samples: usize,
    /// Calibrate the check between these two modalities (`A,B`, e.g.
    /// `image,digit` or `m0,m3`) instead of image and caption; saved as
    /// `consistency-A-B.json` for `check --given A=… --given B=…`.
    #[arg(long)]
    pair: Option<String>,
}

/// Whether the model has the image and caption modalities the image–caption
/// check reads.
fn has_image_and_text(m: &Loaded) -> bool {
    let kinds = m.model.layout().kinds;
    kinds.contains(&ModalityKind::Image) && kinds.contains(&ModalityKind::Text)
}

pub fn calibrate(a: CalibrateArgs) -> Result<()> {
    if a.prior_samples == 0 {
        bail!("--prior-samples must be at least 1");
    }
    let m = a.model.load()?;
    let pair = match &a.pair {
        Some(p) => Some(ModalityPair::parse(&m.model, p)?),
        None if has_image_and_text(&m) => None,
        None => bail!(
            "the model has no image and caption to check against each other; name two of its modalities ({}) with --pair A,B",
            m.model.names.join(", ")
        ),
    };
    let cfg = &m.checkpoint.config;
    let data = mmvae_model::io::data::load_train_data(cfg, a.data_dir.as_deref())?;
    let test = mmvae_model::io::data::load_test(&cfg.data, a.data_dir.as_deref())?;
    let opts = ScoreOptions {
        prior_samples: a.prior_samples,
        seed: a.model.seed,
        ..ScoreOptions::default()
    };
    if let Some(pair) = pair {
        let c = pair_check::calibrate_pair(
            &m,
            pair,
            &data.val,
            a.val_items,
            &test,
            a.test_items,
            opts,
        )?;
        let path = c.save(&m, pair)?;
        outln!("{}", c.table().trim_end());
        outln!("calibration: {}", path.display());
        return Ok(());
    }
    let c = consistency::calibrate(&m, &data.val, a.val_items, &test, a.test_items, opts)?;
    let path = c.save(&a.model.checkpoint)?;
    outln!("{}", c.table().trim_end());
    outln!("calibration: {}", path.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The image of one pair.
    #[arg(long, requires = "text", conflicts_with_all = ["pairs", "given"])]
    image: Option<PathBuf>,
    /// The caption of one pair.
    #[arg(long, requires = "image")]
    text: Option<String>,
    /// Many pairs: CSV with a header naming `image` and `text` columns, or
    /// JSON lines (`.jsonl`) with those keys; paths relative to the file.
    #[arg(long, required_unless_present_any = ["image", "given"], conflicts_with = "given")]
    pairs: Option<PathBuf>,
    /// Where to write the scores of --pairs (CSV; default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Score only the readable pairs of --pairs, listing the others, instead
    /// of stopping.
    #[arg(long)]
    skip_bad: bool,
    /// Decide with this score (overlap, text-ratio, image-ratio; for
    /// --given: overlap, B-ratio, A-ratio) instead of the calibrated default.
    #[arg(long)]
    score: Option<String>,
    /// Any two modalities of one item, `--given NAME=VALUE` twice (an image
    /// file, a caption, or a class by index or name), checked against each
    /// other with the calibration of `calibrate --pair`.
    #[arg(long)]
    given: Vec<String>,
}

/// `check --given A=… --given B=…`: the three scores of the pair and the
/// calibrated decision.
fn check_given(a: &CheckArgs) -> Result<()> {
    let given = parse_given(&a.given)?;
    let [(na, va), (nb, vb)] = &given[..] else {
        bail!(
            "give exactly two modalities, --given A=VALUE --given B=VALUE (got {})",
            given.len()
        );
    };
    let m = a.model.load()?;
    let pair = ModalityPair::parse(&m.model, &format!("{na},{nb}"))?;
    let cal = PairCalibration::load(&m, pair)?;
    let (first, second) = (cal.first.clone(), cal.second.clone());
    let score = match &a.score {
        Some(s) => PairScore::parse(s, &first, &second)?,
        None => cal.default_score,
    };
    let threshold = cal.thresholds[&score];
    // Each value in the model's order of the pair.
    let value_of = |name: &str| if name == na { va } else { vb };
    let input_a = m.given_input(pair.first, value_of(&first))?;
    let input_b = m.given_input(pair.second, value_of(&second))?;
    m.seed(cal.options.seed);
    let r = pair_check::score_modality_pairs(
        &m.model,
        pair,
        &input_a,
        &input_b,
        &[(0, 0)],
        cal.options,
    )?[0];
    for s in PairScore::ALL {
        outln!("{:<16} {:>12.3}", s.name(&first, &second), r.get(s));
    }
    let v = r.get(score);
    let yes = v >= threshold;
    outln!(
        "{} ({} {v:.3} {} threshold {threshold:.3})",
        if yes { "match" } else { "mismatch" },
        score.name(&first, &second),
        if yes { ">=" } else { "<" },
    );
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One image–caption pair to check: where it came from, the image and the
/// caption.
struct Pair {
    at: String,
    image: Image,
    text: String,
}

/// The pairs a `check` scores: `--image` with `--text`, or the lines of
/// `--pairs` (bad lines listed, and skipped only with `--skip-bad`).
fn pairs_to_check(a: &CheckArgs, m: &Loaded) -> Result<Vec<Pair>> {
    let mut items = Vec::new();
    if let (Some(img), Some(text)) = (&a.image, &a.text) {
        let image = m.read_image(img)?;
        // Unknown words are an error here, not silently <unk>.
        m.text_batch(std::slice::from_ref(text), true)?;
        items.push(Pair {
            at: img.display().to_string(),
            image,
            text: text.clone(),
        });
        return Ok(items);
    }
    let Some(pf) = &a.pairs else {
        return Ok(items);
    };
    let read = mmvae_data::pairs::read_pairs(pf)?;
    let mut errors = read.errors;
    for p in read.pairs {
        let at = format!("{} line {}", pf.display(), p.line);
        match m.read_image(&p.image) {
            Err(e) => errors.push(format!("{at}: {e}")),
            Ok(image) => match m.text_batch(std::slice::from_ref(&p.text), true) {
                Err(e) => errors.push(format!("{at}: {e}")),
                Ok(_) => items.push(Pair {
                    at: p.image.display().to_string(),
                    image,
                    text: p.text,
                }),
            },
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        if !a.skip_bad {
            bail!(
                "{}: {} bad line(s) (listed above); fix them or pass --skip-bad",
                pf.display(),
                errors.len()
            );
        }
        eprintln!(
            "skipped {} bad line(s); scoring {}",
            errors.len(),
            items.len()
        );
    }
    if items.is_empty() {
        bail!("{}: no pair could be scored", pf.display());
    }
    Ok(items)
}

pub fn check(a: CheckArgs) -> Result<()> {
    if !a.given.is_empty() {
        return check_given(&a);
    }
    let m = a.model.load()?;
    if !has_image_and_text(&m) {
        bail!(
            "the model has no image and caption: check two of its modalities ({}) with --given A=VALUE --given B=VALUE",
            m.model.names.join(", ")
        );
    }
    let cal = consistency::Calibration::load(&m)?;
    let score = match &a.score {
        Some(s) => consistency::Score::parse(s)?,
        None => cal.default_score,
    };
    let k = consistency::Score::ALL
        .iter()
        .position(|&s| s == score)
        .unwrap_or(0);
    let threshold = cal.thresholds[&score];
    let items = pairs_to_check(&a, &m)?;
    let pixels = m.colours() * m.side() * m.side();
    let flat: Vec<f32> = items
        .iter()
        .flat_map(|it| it.image.pixels.iter().copied())
        .collect();
    let images = mmvae_model::burn::tensor::Tensor::<2>::from_data(
        mmvae_model::burn::tensor::TensorData::new(flat, [items.len(), pixels]),
        &m.device,
    );
    let captions: Vec<String> = items.iter().map(|i| i.text.clone()).collect();
    let pairs: Vec<(usize, usize)> = (0..items.len()).map(|i| (i, i)).collect();
    let scores = consistency::score_pairs(&m, images, &captions, &pairs, cal.options)?;
    let matches = |r: &consistency::PairScores| r[k] >= threshold;
    if a.pairs.is_none() {
        let r = scores[0];
        for (s, v) in consistency::Score::ALL.iter().zip(r) {
            outln!("{:<12} {v:>12.3}", s.name());
        }
        let yes = matches(&r);
        outln!(
            "{} ({} {:.3} {} threshold {:.3})",
            if yes { "match" } else { "mismatch" },
            score.name(),
            r[k],
            if yes { ">=" } else { "<" },
            threshold
        );
        return Ok(());
    }
    let mut csv = String::from("image,text,overlap,text_ratio,image_ratio,match\n");
    for (it, r) in items.iter().zip(&scores) {
        csv += &format!(
            "{},{},{:.4},{:.4},{:.4},{}\n",
            csv_field(&it.at),
            csv_field(&it.text),
            r[0],
            r[1],
            r[2],
            matches(r)
        );
    }
    match &a.out {
        Some(o) => {
            fsutil::write_atomic(o, csv.as_bytes())?;
            let n = scores.iter().filter(|r| matches(r)).count();
            outln!(
                "{} pairs scored, {n} match (by {}); scores: {}",
                scores.len(),
                score.name(),
                o.display()
            );
        }
        None => outln!("{}", csv.trim_end()),
    }
    Ok(())
}
