//! `mmvae report`, `plot`, `bench` and `devices`.

use super::*;

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
    /// How the shards share the cores: core-per-shard (each its own core) or
    /// shared-kernel-pool (one pool of kernel threads), as a config's
    /// `optim.core_sharing`.
    #[arg(long, default_value = "core-per-shard")]
    core_sharing: String,
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
        mmvae_model::config::CoreSharing::parse(&a.core_sharing)?,
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
