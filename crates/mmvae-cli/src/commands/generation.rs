//! Using a trained model: `generate`, `predict`, `caption`, `reconstruct`, `sample`, `interpolate`.

use super::*;

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
