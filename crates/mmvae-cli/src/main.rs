//! `mmvae`: train and use multimodal VAEs over images and text.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// `println!` that ends the program quietly when stdout is a closed pipe
/// (e.g. `mmvae caption ... | head`).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod commands;
mod consistency;
mod serve;
mod sweep;

/// Multimodal variational autoencoders over images and text: train one latent
/// space shared by images and captions, then generate, caption, reconstruct,
/// sample and evaluate.
#[derive(Parser, Debug)]
#[command(name = "mmvae", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model from a TOML config; writes best/ and last/ checkpoints
    /// and metrics.jsonl under --out.
    Train(commands::TrainArgs),
    /// Fit a text prior to a trained checkpoint: a mixture of Gaussians
    /// over the latent per caption, fitted to the images' posteriors, that
    /// text→image then draws from (instead of the caption's posterior).
    FitPrior(commands::FitPriorArgs),
    /// Generate images from a caption (text → image) as a PNG grid.
    Generate(commands::GenerateArgs),
    /// Caption an image, or every PNG in a folder (image → text).
    Caption(commands::CaptionArgs),
    /// Generate any modality from any subset of the others (cross-modal
    /// generation, completion): --given NAME=VALUE ... --to NAME.
    Predict(commands::PredictArgs),
    /// Reconstruct an image through the latent space (image → image), and
    /// print the caption read from the same latent.
    Reconstruct(commands::ReconstructArgs),
    /// Sample images and captions jointly from the prior.
    Sample(commands::SampleArgs),
    /// Measure a checkpoint on the test split: cross-modal and joint
    /// coherence and the conditional coherence matrix (every modality from
    /// every subset), FID, caption BLEU and perplexity, reconstruction PSNR
    /// and SSIM, retrieval MedR and Recall@K, linear probes, importance-
    /// sampled log-likelihood, test loss, each modality's latent use.
    Eval(commands::EvalArgs),
    /// Fit the consistency-check thresholds on the validation split, measure
    /// them on the test split (precision, recall, F1, AUROC against random
    /// and one-attribute mismatches), and save them with the checkpoint.
    Calibrate(consistency::CalibrateArgs),
    /// Does a caption match an image? Scores one pair (--image, --text) or a
    /// file of pairs (--pairs) and decides with the calibrated threshold.
    Check(consistency::CheckArgs),
    /// Write one self-contained HTML page about a checkpoint: config,
    /// training curves, metrics, sample grids, captions, consistency and
    /// retrieval examples, an interpolation and a t-SNE of the latent space.
    Report(commands::ReportArgs),
    /// Plots of a checkpoint's latent space.
    Plot {
        #[command(subcommand)]
        command: commands::PlotCommand,
    },
    /// Decode points on the line between two inputs' latents (images or
    /// captions) into a row of images and their captions.
    Interpolate(commands::InterpolateArgs),
    /// The evaluation classifier that scores generated images.
    Classifier {
        #[command(subcommand)]
        command: commands::ClassifierCommand,
    },
    /// Datasets: download, verify and inspect.
    Data {
        #[command(subcommand)]
        command: commands::DataCommand,
    },
    /// Train briefly on an available dataset, then generate, caption and
    /// evaluate: the whole pipeline in a few minutes.
    Quickstart(commands::QuickstartArgs),
    /// Train and evaluate an experiment grid (cells × seeds) from one TOML
    /// file, resumably, and write a leaderboard (mean ± sd over seeds) as
    /// markdown and JSON.
    Sweep(sweep::SweepArgs),
    /// Training-step throughput and peak memory of the reference models.
    Bench(commands::BenchArgs),
    /// Serve a checkpoint as a local web page and JSON API: text → image,
    /// captions, consistency checks, reconstructions and samples.
    Serve(serve::ServeArgs),
    /// List the GPU adapters `--device wgpu:NAME` can choose (needs a build
    /// with --features wgpu).
    Devices,
}

/// Keep freed tensor buffers in the heap for reuse. By default glibc's
/// malloc hands every allocation above a dynamic threshold back to the
/// kernel when it is freed, so each training step faults the pages of its
/// large tensors in again; a fixed 32 MiB threshold (glibc's largest) and a
/// 256 MiB trim threshold make training steps 10–20% faster at the same
/// peak memory (docs/performance.md).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of the allocator's parameters, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Train(a) => commands::train(a),
        Command::FitPrior(a) => commands::fit_prior(a),
        Command::Generate(a) => commands::generate(a),
        Command::Caption(a) => commands::caption(a),
        Command::Predict(a) => commands::predict(a),
        Command::Reconstruct(a) => commands::reconstruct(a),
        Command::Sample(a) => commands::sample(a),
        Command::Eval(a) => commands::eval(a),
        Command::Calibrate(a) => consistency::calibrate(a),
        Command::Check(a) => consistency::check(a),
        Command::Report(a) => commands::report(a),
        Command::Plot { command } => commands::plot(command),
        Command::Interpolate(a) => commands::interpolate(a),
        Command::Classifier { command } => commands::classifier(command),
        Command::Data { command } => commands::data(command),
        Command::Quickstart(a) => commands::quickstart(a),
        Command::Sweep(a) => sweep::sweep(a),
        Command::Bench(a) => commands::bench(a),
        Command::Serve(a) => serve::serve(a),
        Command::Devices => commands::devices(),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of contexts, outermost first.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", msg.join(": "));
            ExitCode::from(1)
        }
    }
}
