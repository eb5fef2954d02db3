//! `mmvae sweep`: train and evaluate every cell of an experiment grid,
//! resumably, and write its leaderboard.

use anyhow::{Context, Result};
use clap::Args;
use mmvae_data::fsutil;
use mmvae_model::eval::classifier;
use mmvae_model::eval::classifiers::Classifiers;
use mmvae_model::eval::{self, EvalOptions, Metric};
use mmvae_model::sweep::{Leaderboard, RunResult, SweepSpec};
use mmvae_model::train::parallel::default_threads;
use mmvae_model::train::{self, TrainOptions};
use mmvae_model::{device::Compute, infer};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The sweep file: a base config, [[cells]] with overrides, seeds (see
    /// docs/recipes.md).
    file: PathBuf,
    /// Where the datasets' files are (as for `train`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Evaluation classifier folder (default: runs/classifier-<dataset>).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Score only the first N test items (and N prior samples for joint
    /// coherence, at most 10,000).
    #[arg(long)]
    limit: Option<usize>,
    /// Run only these cells (repeatable); the leaderboard still lists every
    /// finished one.
    #[arg(long = "cell")]
    cells: Vec<String>,
    /// Print what would run, and the leaderboard of what has, without
    /// training.
    #[arg(long)]
    dry_run: bool,
    /// Also write the leaderboard's markdown table to this file.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Folder of the runs and the leaderboard (default: the sweep file's
    /// `out`). A cell already scored there is not scored again, so the same
    /// grid scored another way (another `--classifier`) needs its own.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Data-parallel shards per step (default: the cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn sweep(a: SweepArgs) -> Result<()> {
    let mut spec = SweepSpec::load(&a.file)?;
    if let Some(out) = &a.out {
        spec.out = Some(out.clone());
    }
    if let Some(c) = a
        .cells
        .iter()
        .find(|c| !spec.cells.iter().any(|s| &s.name == *c))
    {
        anyhow::bail!("--cell {c}: {} has no such cell", a.file.display());
    }
    let metrics = Metric::parse_list(&spec.metrics.join(",")).context("the sweep's `metrics`")?;
    // Every cell's config is checked before the first run starts.
    for cell in &spec.cells {
        for &seed in &spec.seeds {
            let cfg = spec.cell_config(cell, seed)?;
            cfg.validate()?;
            spec.check_shown(&cfg)
                .with_context(|| format!("{}: cell {}", a.file.display(), cell.name))?;
        }
    }
    let mut results = Vec::new();
    for cell in &spec.cells {
        let selected = a.cells.is_empty() || a.cells.contains(&cell.name);
        for &seed in &spec.seeds {
            let dir = spec.run_dir(cell, seed);
            let done = dir.join("result.json");
            if done.exists() {
                let r: RunResult = serde_json::from_slice(
                    &std::fs::read(&done).with_context(|| done.display().to_string())?,
                )
                .with_context(|| format!("{}: unreadable", done.display()))?;
                println!("{} seed {seed}: done", cell.name);
                results.push(r);
                continue;
            }
            if !selected || a.dry_run {
                println!("{} seed {seed}: to run in {}", cell.name, dir.display());
                continue;
            }
            // A run with a saved state resumes: past its last epoch, it is
            // only scored.
            let verb = if has_saved_state(&dir) {
                "resuming"
            } else {
                "training"
            };
            println!("{} seed {seed}: {verb} in {}", cell.name, dir.display());
            let r = run_cell(&a, &spec, cell, seed, &metrics)?;
            fsutil::write_atomic(&done, serde_json::to_string_pretty(&r)?.as_bytes())?;
            results.push(r);
        }
    }
    let board = Leaderboard::from_results(&spec, &results);
    let md = board.markdown();
    let out = spec.out_dir();
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    fsutil::write_atomic(&out.join("leaderboard.md"), md.as_bytes())?;
    fsutil::write_atomic(
        &out.join("leaderboard.json"),
        serde_json::to_string_pretty(&board)?.as_bytes(),
    )?;
    if let Some(t) = &a.table {
        fsutil::write_atomic(t, md.as_bytes())?;
    }
    print!("{md}");
    println!("leaderboard: {}", out.join("leaderboard.md").display());
    Ok(())
}

/// Whether a run's folder holds a saved training state to resume from.
fn has_saved_state(dir: &std::path::Path) -> bool {
    dir.join("last").join("state.json").exists()
}

/// Train (resuming an interrupted run) and evaluate one cell with one seed.
fn run_cell(
    a: &SweepArgs,
    spec: &SweepSpec,
    cell: &mmvae_model::sweep::CellSpec,
    seed: u64,
    metrics: &std::collections::BTreeSet<Metric>,
) -> Result<RunResult> {
    let mut cfg = spec.cell_config(cell, seed)?;
    crate::commands::remember_data_dir(&mut cfg, a.data_dir.as_deref())?;
    let dir = spec.run_dir(cell, seed);
    let opts = TrainOptions {
        out_dir: dir.clone(),
        data_dir: a.data_dir.clone(),
        resume: has_saved_state(&dir),
        progress: false,
        compute: Compute::Cpu,
        threads: a.threads.unwrap_or_else(default_threads),
    };
    let summary = train::train(&cfg, &opts, |r| {
        println!(
            "  epoch {:>3}  val loss {:.3}  {:.0} samples/s",
            r.epoch,
            r.val.get("loss").copied().unwrap_or(f64::NAN),
            r.samples_per_s
        )
    })
    .with_context(|| format!("training cell {} seed {seed}", cell.name))?;
    // The run's whole training time, over every resumed part of it.
    let train_seconds = summary.elapsed_s;
    let m = infer::load(&dir.join("best"), Compute::Cpu)?;
    let kind = cfg.data.dataset;
    let clf = if kind.is_labelled() {
        let cdir = classifier::dir_or_default(a.classifier.as_deref(), kind);
        Some(Classifiers::load(&cdir, kind, &m.device)?)
    } else {
        None
    };
    let test = mmvae_model::io::data::load_test(&cfg.data, a.data_dir.as_deref())?;
    let opts = EvalOptions {
        metrics: metrics.clone(),
        limit: a.limit,
        seed: 0,
        joint_samples: a.limit.map_or(10_000, |n| n.min(10_000)),
        ..EvalOptions::default()
    };
    let report = eval::evaluate(&m, clf.as_ref(), &test, &opts);
    let eval = serde_json::to_value(&report)?;
    fsutil::write_atomic(
        &dir.join("best").join("eval.json"),
        serde_json::to_string_pretty(&eval)?.as_bytes(),
    )?;
    println!("{}", report.table().trim_end());
    Ok(RunResult {
        cell: cell.name.clone(),
        seed,
        train_seconds,
        eval,
    })
}
