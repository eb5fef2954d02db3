//! The training loop: seeded, with a progress bar, validation each epoch,
//! metrics appended to `metrics.jsonl`, atomic `best/` and `last/`
//! checkpoints, resuming, and a clean stop if the loss stops being finite.

pub mod adam;
pub mod discriminator;
pub mod parallel;
pub mod perceptual;
pub mod pseudo;
mod run;
pub mod schedule;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use mmvae_data::ImageLabelSet;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{AdversarialConfig, LossConfig, TrainConfig};
use crate::device::Compute;
use crate::error::{ModelError, Result};
use crate::io::batch::{CaptionSource, HostBatch};
use crate::io::checkpoint;
use crate::io::data::VAL_STREAM;
use crate::mvae::{DataShape, Mvae};
use crate::objective::TargetWeights;
use crate::train::adam::FusedAdamConfig;
use crate::train::discriminator::{discriminator_loss, r1_penalty, PatchDiscriminator};
use std::collections::BTreeMap;

/// Options of a run that are not part of the model's configuration.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub out_dir: PathBuf,
    pub data_dir: Option<PathBuf>,
    pub resume: bool,
    pub progress: bool,
    pub compute: Compute,
    /// Data-parallel shards per step (threads); 1 = no sharding. Results are
    /// repeatable for a fixed value.
    pub threads: usize,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    /// The phase this epoch belonged to, in phased training.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub step: usize,
    pub beta: f32,
    pub lr: f64,
    pub train: BTreeMap<String, f64>,
    pub val: BTreeMap<String, f64>,
    pub elapsed_s: f64,
    pub samples_per_s: f64,
    /// Fraction of the epoch's training time the step loop spent waiting
    /// for the next batch (the data path's cost, batches being prepared on
    /// their own thread).
    pub data_wait: f64,
    pub best: bool,
}

#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub out_dir: PathBuf,
    pub epochs: usize,
    pub steps: usize,
    pub best_val_loss: f64,
    pub elapsed_s: f64,
    pub reports: Vec<EpochReport>,
    /// What the data loader reported (items skipped, images converted).
    pub data_notes: Vec<String>,
    /// The text prior fitted to `best/` after training (`[text_prior]`).
    pub text_prior: Option<crate::prior::TextPriorInfo>,
}

/// Build a freshly initialised model, seeded.
pub fn init_model(
    cfg: &TrainConfig,
    side: usize,
    colours: usize,
    vocab: usize,
    device: &Device,
) -> Mvae {
    device.seed(cfg.seed);
    cfg.model.init(
        &cfg.modalities,
        DataShape {
            side,
            colours,
            vocab,
        },
        device,
    )
}

pub fn optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    FusedAdamConfig::default()
        .with_epsilon(1e-8)
        .with_grad_clip_norm(cfg.optim.grad_clip)
        .init()
}

/// β for step `step` under the loss's KL annealing schedule.
pub fn beta_at(loss: &LossConfig, step: usize) -> f32 {
    loss.beta * loss.kl_anneal.factor(loss.kl_anneal_steps, step)
}

/// The loss configuration of one training step: the phase's weights for
/// `epoch`, with the alignment weight annealed to `step`; and β at `step`.
pub fn step_loss(cfg: &TrainConfig, epoch: usize, step: usize) -> (LossConfig, f32) {
    let mut l = cfg.loss_at(epoch);
    l.align_weight *= l.align_anneal.factor(l.align_anneal_steps, step);
    let beta = beta_at(&l, step);
    (l, beta)
}

/// The adversarial part of a run: the discriminator and its optimizer.
struct Refiner {
    cfg: AdversarialConfig,
    discriminator: PatchDiscriminator,
    optim: ModuleOptimizer,
}

const DISC_WEIGHTS: &str = "discriminator.bpk";
const DISC_OPTIM: &str = "discriminator-optim.bpk";

impl Refiner {
    fn new(cfg: &AdversarialConfig, side: usize, colours: usize, device: &Device) -> Self {
        Refiner {
            cfg: cfg.clone(),
            discriminator: cfg.init(side, colours, device),
            optim: Self::optimizer(cfg),
        }
    }

    fn optimizer(cfg: &AdversarialConfig) -> ModuleOptimizer {
        FusedAdamConfig::default()
            .with_beta_1(cfg.beta1)
            .with_epsilon(1e-8)
            .init()
    }

    /// The discriminator and its optimizer state saved in `dir` by a run.
    fn load(
        cfg: &AdversarialConfig,
        side: usize,
        colours: usize,
        dir: &Path,
        device: &Device,
    ) -> Result<Self> {
        let fresh = cfg.init(side, colours, device);
        let discriminator = checkpoint::load_weights(fresh, &dir.join(DISC_WEIGHTS))
            .map_err(|e| ModelError::checkpoint(dir, format!("{DISC_WEIGHTS}: {e}")))?;
        let p = dir.join(DISC_OPTIM);
        let optim = crate::io::weights::load_optim_state(Self::optimizer(cfg), &discriminator, &p)
            .map_err(|e| ModelError::checkpoint(dir, format!("{DISC_OPTIM}: {e}")))?;
        Ok(Refiner {
            cfg: cfg.clone(),
            discriminator,
            optim,
        })
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.discriminator
            .clone()
            .save_file(dir.join(DISC_WEIGHTS))
            .map_err(|e| {
                ModelError::checkpoint(dir, format!("cannot write {DISC_WEIGHTS}: {e}"))
            })?;
        self.optim
            .save(dir.join(DISC_OPTIM))
            .map_err(|e| ModelError::checkpoint(dir, format!("cannot write {DISC_OPTIM}: {e}")))
    }

    /// One discriminator step on the real `images` against `generated`
    /// (`[n, pixels]`, row-major); returns its loss.
    fn step(&mut self, images: Tensor<2>, generated: Vec<f32>, device: &Device) -> f32 {
        let [_, pixels] = images.dims();
        let n = generated.len() / pixels.max(1);
        let fake = Tensor::<2>::from_data(TensorData::new(generated, [n, pixels]), device);
        let d = &self.discriminator;
        let mut loss =
            discriminator_loss(self.cfg.loss, d.forward(images.clone()), d.forward(fake));
        if self.cfg.r1 > 0.0 {
            loss = loss + r1_penalty(d, images) * (self.cfg.r1 / 2.0);
        }
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), d);
        let (optim, lr) = (&mut self.optim, self.cfg.lr);
        replace_with::replace_with_or_abort(&mut self.discriminator, |d| optim.step(lr, d, grads));
        value
    }
}

/// Mean named terms of `model`'s objective over a dataset under the
/// `loss` settings and modality `weights` (at full β), in batches (no
/// gradients).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_loss(
    model: &Mvae,
    cfg: &TrainConfig,
    loss: &LossConfig,
    weights: &TargetWeights,
    data: &ImageLabelSet,
    source: CaptionSource,
    vocab: &mmvae_data::Vocab,
    device: &Device,
) -> BTreeMap<String, f64> {
    let bs = cfg.optim.batch_size.max(1);
    let mut sums = BTreeMap::new();
    let mut n = 0usize;
    let idx: Vec<usize> = (0..data.len()).collect();
    let plan = model.plan(loss, weights, VAL_STREAM);
    for chunk in idx.chunks(bs) {
        let hb = HostBatch::gather(&cfg.layout(), data, chunk, source, vocab);
        let out = model.loss(&hb.to_device(device), loss, &plan, loss.beta);
        add_weighted(&mut sums, &out.terms.to_host(), chunk.len());
        n += chunk.len();
    }
    mean_of(sums, n)
}

/// Adds `values` weighted by `count` items into `sums`.
fn add_weighted(sums: &mut BTreeMap<String, f64>, values: &BTreeMap<String, f32>, count: usize) {
    for (k, v) in values {
        *sums.entry(k.clone()).or_insert(0.0) += *v as f64 * count as f64;
    }
}

fn mean_of(sums: BTreeMap<String, f64>, n: usize) -> BTreeMap<String, f64> {
    sums.into_iter()
        .map(|(k, s)| (k, s / n.max(1) as f64))
        .collect()
}

/// The stream that seeds step `step`'s sampled subsets.
fn plan_stream(seed: u64, step: usize) -> u64 {
    mmvae_data::captions::splitmix64(seed ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// The progress bar's message: the loss and the joint term's parts.
fn progress_message(r: &BTreeMap<String, f32>) -> String {
    let mut parts = vec![format!(
        "loss {:.2}",
        r.get("loss").copied().unwrap_or(f32::NAN)
    )];
    for (k, v) in r {
        if k.starts_with("nll/") || k == "kl" {
            parts.push(format!("{} {v:.2}", k.trim_start_matches("nll/")));
        }
    }
    parts.join(" ")
}

fn same_run(a: &TrainConfig, b: &TrainConfig) -> bool {
    // Where the data lives may change between runs; what it is may not.
    let data = |c: &TrainConfig| crate::config::DataConfig {
        dir: None,
        ..c.data.clone()
    };
    a.model == b.model
        && data(a) == data(b)
        && a.loss == b.loss
        && a.adversarial == b.adversarial
        && a.perceptual == b.perceptual
        && a.phases == b.phases
        && a.seed == b.seed
        && a.optim.batch_size == b.optim.batch_size
}

/// Train a model as configured; `on_epoch` sees each epoch's report.
pub fn train(
    cfg: &TrainConfig,
    opts: &TrainOptions,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<TrainSummary> {
    let mut run = run::Run::start(cfg, opts)?;
    let metrics = opts.out_dir.join("metrics.jsonl");
    let mut reports = Vec::new();
    for epoch in run.learner.state.epoch..cfg.optim.epochs {
        let report = run.epoch(epoch)?;
        append_jsonl(&metrics, &report)?;
        on_epoch(&report);
        reports.push(report);
    }
    let text_prior = match &cfg.text_prior {
        Some(pc) => Some(crate::prior::fit_checkpoint(
            &opts.out_dir.join("best"),
            opts.data_dir.as_deref(),
            pc,
            opts.compute,
        )?),
        None => None,
    };
    let state = &run.learner.state;
    Ok(TrainSummary {
        text_prior,
        out_dir: opts.out_dir.clone(),
        epochs: state.epoch,
        steps: state.step,
        best_val_loss: state.best_val_loss,
        elapsed_s: state.elapsed_s,
        reports,
        data_notes: run.data.notes.clone(),
    })
}

fn append_jsonl(path: &Path, value: &impl Serialize) -> Result<()> {
    let line = serde_json::to_string(value).expect("report serialises");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    writeln!(f, "{line}").map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmvae_data::{idx, DatasetKind};

    /// The RNG lock (held for the test) and a temporary folder whose
    /// `data/` holds an 80-item MNIST fixture.
    fn with_fixture() -> (std::sync::MutexGuard<'static, ()>, tempfile::TempDir) {
        let lock = crate::testutil::rng_lock();
        let d = tempfile::tempdir().unwrap();
        fixture(&d.path().join("data"), 80);
        (lock, d)
    }

    fn fixture(dir: &Path, n: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for split in ["train", "t10k"] {
            let imgs: Vec<u8> = (0..n * 784).map(|i| ((i * 31) % 256) as u8).collect();
            let lbls: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            std::fs::write(
                dir.join(format!("{split}-images-idx3-ubyte")),
                idx::encode(&[n, 28, 28], &imgs),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{split}-labels-idx1-ubyte")),
                idx::encode(&[n], &lbls),
            )
            .unwrap();
        }
    }

    fn opts(out: PathBuf, data: PathBuf) -> TrainOptions {
        TrainOptions {
            out_dir: out,
            data_dir: Some(data),
            resume: false,
            progress: false,
            compute: Compute::Cpu,
            threads: 2,
        }
    }

    /// Train `cfg` into `root/name` on the fixture in `root/data` and check
    /// that the training loss went down and validation stayed finite.
    fn train_tiny(cfg: &TrainConfig, root: &Path, name: &str) -> TrainSummary {
        let r = train(cfg, &opts(root.join(name), root.join("data")), |_| {}).unwrap();
        let (first, last) = (&r.reports[0], r.reports.last().unwrap());
        assert!(
            last.train["loss"] < first.train["loss"] && last.val["loss"].is_finite(),
            "{name}: {} -> {}",
            first.train["loss"],
            last.train["loss"]
        );
        r
    }

    #[test]
    fn non_finite_loss_stops_cleanly_and_keeps_the_last_good_checkpoint() {
        let (_rng, d) = with_fixture();
        let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
        let out = d.path().join("run");
        train(&cfg, &opts(out.clone(), d.path().join("data")), |_| {}).unwrap();
        let good = std::fs::read(out.join("last/model.bpk")).unwrap();

        // An overflowing likelihood weight makes the very first loss infinite.
        cfg.modalities[0].weight = 1e38;
        let out2 = d.path().join("run2");
        let e = train(&cfg, &opts(out2.clone(), d.path().join("data")), |_| {}).unwrap_err();
        assert!(matches!(e, ModelError::Diverged(_)), "{e}");
        assert!(e.to_string().contains("non-finite"), "{e}");
        assert!(
            !out2.join("last").exists(),
            "no checkpoint is written for a diverged step"
        );
        // The earlier run is untouched.
        assert_eq!(std::fs::read(out.join("last/model.bpk")).unwrap(), good);
    }

    #[test]
    fn same_seed_same_run() {
        let (_rng, d) = with_fixture();
        let cfg = TrainConfig::tiny(DatasetKind::Mnist);
        let a = train(
            &cfg,
            &opts(d.path().join("a"), d.path().join("data")),
            |_| {},
        )
        .unwrap();
        let b = train(
            &cfg,
            &opts(d.path().join("b"), d.path().join("data")),
            |_| {},
        )
        .unwrap();
        assert_eq!(a.reports[0].train, b.reports[0].train);
        assert_eq!(a.reports[0].val, b.reports[0].val);
        let (wa, wb) = (
            weights(&d.path().join("a/last")),
            weights(&d.path().join("b/last")),
        );
        assert!(wa.len() > 1000);
        assert_eq!(wa, wb);
    }

    /// A checkpoint's parameter values in visiting order (the saved files
    /// differ between identical models only in parameter ids).
    fn weights(dir: &Path) -> Vec<f32> {
        struct Values(Vec<f32>);
        impl burn::module::ModuleVisitor for Values {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                self.0.extend(p.val().try_into_vec_as::<f32>().unwrap());
            }
        }
        let (_, m) = checkpoint::load(dir, &Device::flex()).unwrap();
        let mut v = Values(Vec::new());
        burn::module::Module::visit(&m, &mut v);
        v.0
    }

    #[test]
    fn three_weakly_paired_self_trained_modalities_train_resume_exactly_and_evaluate() {
        let (_rng, d) = with_fixture();
        let data = d.path().join("data");
        let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
        cfg.modalities.push(crate::config::ModalityConfig::new(
            "digit",
            crate::config::ExpertConfig::Label {
                model: crate::config::LabelModel {
                    classes: 10,
                    hidden: 8,
                },
            },
        ));
        cfg.model.fusion = crate::config::Fusion::MoPoe;
        cfg.data.paired_fraction = 0.25;
        // From the second epoch on, the model's own captions and labels
        // complete the unpaired items.
        cfg.data.self_training = Some(crate::config::SelfTraining {
            from_epoch: 2,
            min_confidence: 0.5,
            draws: 2,
        });
        cfg.optim.epochs = 3;
        // Filled-in items add terms, so the training loss need not fall.
        let whole = train(&cfg, &opts(d.path().join("whole"), data.clone()), |_| {}).unwrap();
        assert!(whole.reports.iter().all(|r| r.val["loss"].is_finite()));
        assert!(!whole.reports[0].train.contains_key("pseudo_used"));
        for r in &whole.reports[1..] {
            let used = r.train["pseudo_used"];
            assert!((0.0..=1.0).contains(&used), "{used}");
            assert!((0.0..=1.0).contains(&r.train["pseudo_agree"]));
        }
        assert!(whole.reports[1..]
            .iter()
            .any(|r| r.train["pseudo_used"] > 0.0));
        assert!(whole.reports[0].val.contains_key("nll/digit"));
        assert!(whole.reports[0].val.contains_key("cross/digit->image"));
        let mut first = cfg.clone();
        first.optim.epochs = 1;
        let split = d.path().join("split");
        train(&first, &opts(split.clone(), data.clone()), |_| {}).unwrap();
        let resumed = train(
            &cfg,
            &TrainOptions {
                resume: true,
                ..opts(split.clone(), data)
            },
            |_| {},
        )
        .unwrap();
        for (a, b) in whole.reports[1..].iter().zip(&resumed.reports) {
            assert_eq!((a.epoch, &a.train, &a.val), (b.epoch, &b.train, &b.val));
        }
        assert_eq!(
            weights(&d.path().join("whole/last")),
            weights(&split.join("last"))
        );
        // The checkpoint reloads as the same three-modality model and
        // generates every modality from every other.
        let m = crate::infer::load(&split.join("best"), Compute::Cpu).unwrap();
        assert_eq!(m.model.names, ["image", "text", "digit"]);
        assert_eq!(m.checkpoint.state.format, checkpoint::FORMAT);
    }

    #[test]
    fn best_holds_the_last_epoch_when_the_config_asks() {
        let (_rng, d) = with_fixture();
        let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
        cfg.optim.epochs = 3;
        cfg.optim.best = crate::config::BestEpoch::Last;
        let out = d.path().join("run");
        let r = train(&cfg, &opts(out.clone(), d.path().join("data")), |_| {}).unwrap();
        assert!(r.reports.iter().all(|e| e.best));
        assert_eq!(r.best_val_loss, r.reports[2].val["loss"]);
        assert_eq!(weights(&out.join("best")), weights(&out.join("last")));
    }

    #[test]
    fn a_resumed_run_repeats_the_uninterrupted_run() {
        let (_rng, d) = with_fixture();
        let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
        cfg.optim.epochs = 3;
        let data = d.path().join("data");
        let whole = train(&cfg, &opts(d.path().join("whole"), data.clone()), |_| {}).unwrap();

        // The same run stopped after one epoch, then resumed to three.
        let mut first = cfg.clone();
        first.optim.epochs = 1;
        let split = d.path().join("split");
        train(&first, &opts(split.clone(), data.clone()), |_| {}).unwrap();
        let mut o = opts(split.clone(), data);
        o.resume = true;
        let rest = train(&cfg, &o, |_| {}).unwrap();

        assert_eq!(rest.reports.len(), 2);
        for (a, b) in whole.reports[1..].iter().zip(&rest.reports) {
            assert_eq!((a.epoch, &a.train, &a.val), (b.epoch, &b.train, &b.val));
        }
        let w = weights(&d.path().join("whole/last"));
        assert!(w.len() > 1000);
        assert_eq!(w, weights(&split.join("last")));

        // Optimizer state from another run (the same layout, other
        // parameter ids) is refused before it is read, naming the file.
        std::fs::copy(
            d.path().join("whole/last/optim.bpk"),
            split.join("last/optim.bpk"),
        )
        .unwrap();
        let mut o = opts(split.clone(), d.path().join("data"));
        o.resume = true;
        let mut more = cfg.clone();
        more.optim.epochs = 4;
        let e = train(&more, &o, |_| {}).err().unwrap().to_string();
        assert!(e.contains("optim.bpk does not fit the model"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn every_fusion_and_text_model_trains_and_its_checkpoint_reloads() {
        let (_rng, d) = with_fixture();
        let gru = crate::config::TextModel::Gru {
            embed: 8,
            hidden: 16,
        };
        let lstm = |bidirectional| crate::config::TextModel::Lstm {
            embed: 8,
            hidden: 16,
            bidirectional,
        };
        for (fusion, private, text) in [
            (crate::config::Fusion::Poe, 0, gru),
            (crate::config::Fusion::Moe, 0, gru),
            (crate::config::Fusion::MoPoe, 0, gru),
            (crate::config::Fusion::Mvtcae, 0, gru),
            (crate::config::Fusion::Concat, 0, gru),
            (crate::config::Fusion::Attention, 2, gru),
            (crate::config::Fusion::Poe, 3, gru),
            (crate::config::Fusion::Poe, 0, lstm(false)),
            (crate::config::Fusion::Moe, 0, lstm(true)),
            (
                crate::config::Fusion::Poe,
                0,
                crate::config::TextModel::XLstm {
                    embed: 8,
                    hidden: 16,
                },
            ),
            (
                crate::config::Fusion::Poe,
                0,
                crate::config::TextModel::Transformer {
                    d_model: 16,
                    heads: 2,
                    layers: 1,
                    ff: 32,
                },
            ),
            (
                crate::config::Fusion::Moe,
                0,
                crate::config::TextModel::MultiHot { hidden: 16 },
            ),
        ] {
            let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
            cfg.model.fusion = fusion;
            cfg.model.private_latent = private;
            cfg.modalities[1].expert = crate::config::ExpertConfig::Text { model: text };
            cfg.optim.epochs = 2;
            let name = format!("{fusion:?}-{private}-{text:?}");
            train_tiny(&cfg, d.path(), &name);
            let (ck, m) =
                checkpoint::load(&d.path().join(&name).join("last"), &Device::flex()).unwrap();
            assert_eq!(ck.config.model.fusion, fusion);
            assert_eq!(
                ck.config.modalities[1].expert,
                crate::config::ExpertConfig::Text { model: text }
            );
            assert_eq!(m.private(), private);
            if private > 0 {
                private_latent_use_is_measured(d.path(), &name, private);
            }
        }
    }

    /// `eval`'s latent use of the model trained into `root/name`: the
    /// image's private latent is measured, the caption has none.
    fn private_latent_use_is_measured(root: &Path, name: &str, private: usize) {
        let m = crate::infer::load(&root.join(name).join("last"), Compute::Cpu).unwrap();
        let test = crate::io::data::load_split(
            DatasetKind::Mnist,
            mmvae_data::Split::Test,
            Some(&root.join("data")),
            None,
        )
        .unwrap();
        let src = crate::io::batch::CaptionSource {
            captioner: m.captioner(),
            set: mmvae_data::CaptionSet::Train,
            stream: crate::io::data::TEST_STREAM,
        };
        let used = crate::eval::latent::latent_usage(&m, &test, 40, 16, src);
        let image = used["image"]
            .private
            .expect("the image has a private latent");
        assert_eq!(image.dims, private);
        assert!(image.active <= private && image.kl.is_finite() && image.kl >= 0.0);
        assert_eq!(used["image"].shared.dims, m.model.latent);
        assert!(used["text"].private.is_none());
    }

    #[test]
    fn perceptual_loss_trains_from_user_supplied_vgg16_weights() {
        use crate::config::{FeatureNetwork, PerceptualConfig};
        use crate::train::perceptual::Vgg16Features;
        let (_rng, d) = with_fixture();
        // Small random "VGG16" weights in torchvision's layout, as a user's
        // converted file would be.
        let dev = Device::flex();
        dev.seed(9);
        let weights = d.path().join("vgg16.safetensors");
        Vgg16Features::init(1, &dev)
            .save_torchvision(&weights)
            .unwrap();
        let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
        cfg.optim.epochs = 2;
        cfg.loss.perceptual_weight = 0.01;
        cfg.perceptual = Some(PerceptualConfig {
            network: FeatureNetwork::Vgg16 {
                weights: weights.clone(),
                layers: 1,
            },
        });
        let out = d.path().join("run");
        let r = train(&cfg, &opts(out.clone(), d.path().join("data")), |_| {}).unwrap();
        let (p0, p1) = (
            r.reports[0].train["perceptual"],
            r.reports[1].train["perceptual"],
        );
        assert!(p0 > 0.0 && p1 < p0, "perceptual distance {p0} -> {p1}");
        // The config saved beside the weights names the network.
        let saved = std::fs::read_to_string(out.join("last/config.toml")).unwrap();
        assert!(
            saved.contains("vgg16") && saved.contains("perceptual_weight"),
            "{saved}"
        );
        // A missing weights file is an error naming it, before any training.
        cfg.perceptual = Some(PerceptualConfig {
            network: FeatureNetwork::Vgg16 {
                weights: d.path().join("nope.safetensors"),
                layers: 1,
            },
        });
        let e = train(
            &cfg,
            &opts(d.path().join("run2"), d.path().join("data")),
            |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("nope.safetensors"), "{e}");
        assert!(!d.path().join("run2").exists(), "nothing is written");
    }

    #[test]
    fn character_level_captions_train_and_are_checked_for_length() {
        let (_rng, d) = with_fixture();
        let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
        cfg.data.tokenizer = mmvae_data::TokenLevel::Char;
        // Word-sized max_len cannot hold a caption's characters.
        let e = train(
            &cfg,
            &opts(d.path().join("short"), d.path().join("data")),
            |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("model.max_len") && e.contains("too short"),
            "{e}"
        );
        cfg.model.max_len = 64;
        cfg.optim.epochs = 2;
        train_tiny(&cfg, d.path(), "char");
        let (ck, m) = checkpoint::load(&d.path().join("char/last"), &Device::flex()).unwrap();
        assert_eq!(ck.vocab.level(), mmvae_data::TokenLevel::Char);
        assert!(ck.vocab.id(" ").is_some() && ck.vocab.id("w").is_some());
        // Decoding yields at most max_len − 1 characters of that vocabulary.
        let z = Tensor::<2>::zeros([2, m.latent], &Device::flex());
        for ids in m.decode_text(z, None) {
            let text = ck.vocab.decode(&ids);
            assert!(text.chars().count() < 64, "{text}");
        }
    }

    #[test]
    fn moe_importance_weighted_objectives_train() {
        use crate::config::{Fusion, Objective};
        let (_rng, d) = with_fixture();
        for objective in [Objective::Iwae, Objective::Dreg] {
            let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
            cfg.model.fusion = Fusion::Moe;
            cfg.loss.objective = objective;
            cfg.loss.k = 4;
            cfg.optim.epochs = 2;
            train_tiny(&cfg, d.path(), &format!("{objective:?}"));
        }
    }

    #[test]
    fn residual_images_and_learned_likelihoods_train_and_reload() {
        use crate::config::{ImageLikelihood, ImageModel};
        let (_rng, d) = with_fixture();
        for (image, likelihood) in [
            (
                ImageModel::Residual {
                    channels: 2,
                    hidden: 16,
                    attention: true,
                },
                ImageLikelihood::Laplace {
                    scale: 0.2,
                    learned: true,
                },
            ),
            (
                ImageModel::Mlp { hidden: 32 },
                ImageLikelihood::Gaussian {
                    scale: 0.2,
                    learned: true,
                },
            ),
        ] {
            let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
            cfg.modalities[0].expert = crate::config::ExpertConfig::Image {
                model: image,
                likelihood,
            };
            cfg.optim.epochs = 2;
            let name = format!("{image:?}-{likelihood:?}");
            train_tiny(&cfg, d.path(), &name);
            let (_, m) =
                checkpoint::load(&d.path().join(&name).join("last"), &Device::flex()).unwrap();
            let s = m
                .image_expert()
                .pixel_scale
                .as_ref()
                .expect("a learned scale");
            let ls = s.log_scale.val().try_into_vec_as::<f32>().unwrap();
            assert!(
                (ls[0] - 0.2f32.ln()).abs() > 1e-4,
                "{name}: the learned scale never moved ({ls:?})"
            );
        }
    }

    #[test]
    fn phased_adversarial_training_runs_its_phases_and_resumes() {
        use crate::config::{AdversarialConfig, LossOverride, Phase};
        let (_rng, d) = with_fixture();
        let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
        cfg.optim.epochs = 3;
        cfg.adversarial = Some(AdversarialConfig {
            channels: 4,
            r1: 10.0,
            ..AdversarialConfig::default()
        });
        cfg.phases = vec![
            Phase {
                name: "vae".into(),
                epochs: 1,
                lr: None,
                loss: LossOverride::default(),
            },
            Phase {
                name: "refine".into(),
                epochs: 2,
                lr: Some(5e-4),
                loss: LossOverride {
                    adversarial_weight: Some(0.5),
                    ..LossOverride::default()
                },
            },
        ];
        let out = d.path().join("run");
        let r = train(&cfg, &opts(out.clone(), d.path().join("data")), |_| {}).unwrap();
        let phases: Vec<_> = r.reports.iter().map(|e| e.phase.clone().unwrap()).collect();
        assert_eq!(phases, ["vae", "refine", "refine"]);
        assert_eq!(r.reports[1].lr, 5e-4);
        assert!(!r.reports[0].train.contains_key("adv_d"));
        for e in &r.reports[1..] {
            let (g, dl) = (e.train["adv_g"], e.train["adv_d"]);
            assert!(g.is_finite() && dl.is_finite() && dl > 0.0, "{g} {dl}");
        }
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert!(metrics.contains("\"phase\":\"refine\""), "{metrics}");
        let saved = std::fs::read(out.join("last").join(DISC_WEIGHTS)).unwrap();
        assert!(out.join("last").join(DISC_OPTIM).is_file());
        assert!(!out.join("best").join(DISC_WEIGHTS).exists());

        // The discriminator trained: its weights differ from a fresh one's.
        let dev = Device::flex();
        dev.seed(77);
        let fresh = cfg.adversarial.as_ref().unwrap().init(28, 1, &dev);
        let loaded =
            checkpoint::load_weights(fresh.clone(), &out.join("last").join(DISC_WEIGHTS)).unwrap();
        let x = Tensor::<2>::full([1, 784], 0.5, &dev);
        assert_ne!(
            loaded.forward(x.clone()).try_into_vec_as::<f32>().unwrap(),
            fresh.forward(x).try_into_vec_as::<f32>().unwrap()
        );

        // An interrupted run resumes with its discriminator: pretend the
        // last epoch never finished.
        let state_path = out.join("last/state.json");
        let state = std::fs::read_to_string(&state_path).unwrap();
        std::fs::write(&state_path, state.replace("\"epoch\": 3", "\"epoch\": 2")).unwrap();
        let mut o = opts(out.clone(), d.path().join("data"));
        o.resume = true;
        let again = train(&cfg, &o, |_| {}).unwrap();
        assert_eq!(again.reports.len(), 1);
        assert_eq!(again.reports[0].phase.as_deref(), Some("refine"));
        assert_ne!(
            std::fs::read(out.join("last").join(DISC_WEIGHTS)).unwrap(),
            saved
        );
        // A different phase plan is refused.
        cfg.phases[1].loss.adversarial_weight = Some(1.0);
        let e = train(&cfg, &o, |_| {}).unwrap_err().to_string();
        assert!(e.contains("different configuration"), "{e}");
    }

    #[test]
    fn annealed_alignment_weight_by_step() {
        let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
        cfg.loss.align_weight = 4.0;
        cfg.loss.align_anneal_steps = 4;
        cfg.loss.kl_anneal = crate::config::Anneal::Cyclical;
        cfg.loss.kl_anneal_steps = 2;
        let (l, beta) = step_loss(&cfg, 0, 0);
        assert_eq!((l.align_weight, beta), (1.0, 0.0));
        let (l, beta) = step_loss(&cfg, 0, 1);
        assert_eq!((l.align_weight, beta), (2.0, 1.0));
        let (l, beta) = step_loss(&cfg, 0, 10);
        assert_eq!((l.align_weight, beta), (4.0, 0.0));
    }

    #[test]
    fn kl_annealing_is_linear_then_flat() {
        let mut cfg = TrainConfig::tiny(DatasetKind::Mnist);
        cfg.loss.beta = 2.0;
        cfg.loss.kl_anneal_steps = 10;
        assert!((beta_at(&cfg.loss, 0) - 0.2).abs() < 1e-6);
        assert!((beta_at(&cfg.loss, 4) - 1.0).abs() < 1e-6);
        assert_eq!(beta_at(&cfg.loss, 9), 2.0);
        assert_eq!(beta_at(&cfg.loss, 1000), 2.0);
    }
}
