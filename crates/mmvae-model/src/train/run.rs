//! One training run as small steps: start it (fresh or resumed), train an
//! epoch batch by batch, then validate, checkpoint and report.

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use mmvae_data::captions::CaptionSet;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::parallel::{sharded_gradients, Adversary, Critics, Perceptual, Sharding};
use super::perceptual::FeatureNet;
use super::pseudo::{PseudoPairs, PseudoStats};
use super::{
    add_weighted, beta_at, evaluate_loss, init_model, mean_of, optimizer, plan_stream,
    progress_message, same_run, step_loss, EpochReport, Refiner, TrainOptions,
};
use crate::config::{BestEpoch, TrainConfig};
use crate::device::Compute;
use crate::error::{ModelError, Result};
use crate::io::batch::{shuffled, CaptionSource, HostBatch};
use crate::io::checkpoint::{self, TrainState};
use crate::io::data::{load_train_data, Pairing, TrainData, VAL_STREAM};
use crate::mvae::Mvae;

/// What changes as a run trains: the model, its optimizer, the
/// discriminator of adversarial refinement, and the counters.
pub(super) struct Learner {
    pub model: Mvae,
    pub optim: ModuleOptimizer,
    pub refiner: Option<Refiner>,
    pub state: TrainState,
}

/// A run in progress.
pub(super) struct Run<'a> {
    pub cfg: &'a TrainConfig,
    pub opts: &'a TrainOptions,
    pub data: TrainData,
    pub pairing: Pairing,
    /// What self-training filled in for the current epoch.
    pub pseudo: PseudoPairs,
    pub device: Device,
    pub eval_device: Device,
    /// The perceptual loss's feature network, fixed for the whole run.
    pub feature_net: Option<FeatureNet>,
    pub learner: Learner,
    /// The data-parallel split of each step, kept for the whole run.
    pub sharding: Sharding,
    started: Instant,
    elapsed_before: f64,
}

/// The sums an epoch's steps accumulate.
#[derive(Default)]
struct EpochTotals {
    sums: BTreeMap<String, f64>,
    seen: usize,
    adversarial: (f64, f64),
    perceptual: f64,
    data_wait_s: f64,
    pseudo: Option<PseudoStats>,
}

impl EpochTotals {
    /// The epoch's mean training terms, with the adversarial and
    /// perceptual terms where they were on, and the self-training shares.
    fn means(self, adversarial: bool, perceptual: bool) -> BTreeMap<String, f64> {
        let n = self.seen.max(1) as f64;
        let mut train = mean_of(self.sums, self.seen);
        if adversarial {
            train.insert("adv_g".into(), self.adversarial.0 / n);
            train.insert("adv_d".into(), self.adversarial.1 / n);
        }
        if perceptual {
            train.insert("perceptual".into(), self.perceptual / n);
        }
        if let Some(p) = self.pseudo {
            // The share of the generated values used, and of those the share
            // that agree with the withheld ones.
            train.insert(
                "pseudo_used".into(),
                p.used as f64 / p.generated.max(1) as f64,
            );
            train.insert(
                "pseudo_agree".into(),
                p.agreeing as f64 / p.used.max(1) as f64,
            );
        }
        train
    }
}

impl<'a> Run<'a> {
    fn last_dir(&self) -> PathBuf {
        self.opts.out_dir.join("last")
    }

    /// Load the data, then resume `last/` or start fresh.
    pub fn start(cfg: &'a TrainConfig, opts: &'a TrainOptions) -> Result<Self> {
        cfg.validate()?;
        let data = load_train_data(cfg, opts.data_dir.as_deref())?;
        let device = opts.compute.device()?.autodiff();
        let feature_net = match &cfg.perceptual {
            Some(p) if cfg.uses_perceptual() => {
                Some(FeatureNet::load(&p.network, cfg.data.dataset, &device)?.no_grad())
            }
            _ => None,
        };
        let learner = if opts.resume {
            resume(cfg, opts, &data, &device)?
        } else {
            fresh(cfg, opts, &data, &device)?
        };
        let bs = cfg.optim.batch_size;
        Ok(Run {
            cfg,
            opts,
            pairing: Pairing::new(cfg, data.train.len()),
            pseudo: PseudoPairs::none(data.train.len()),
            data,
            eval_device: device.clone().without_autodiff(),
            device,
            feature_net,
            elapsed_before: learner.state.elapsed_s,
            learner,
            sharding: Sharding::new(
                match opts.compute {
                    Compute::Cpu => opts.threads.clamp(1, bs),
                    Compute::Gpu(_) => 1,
                },
                cfg.optim.core_sharing,
            ),
            started: Instant::now(),
        })
    }

    /// Train epoch `epoch`, then validate, checkpoint and report it.
    pub fn epoch(&mut self, epoch: usize) -> Result<EpochReport> {
        let cfg = self.cfg;
        // Each phase has its own objective, so `best/` is the best epoch of
        // the phase reached last.
        if let Some((i, _)) = cfg.phase_at(epoch) {
            if i > 0 && cfg.phase_at(epoch.wrapping_sub(1)).map(|(j, _)| j) != Some(i) {
                self.learner.state.best_val_loss = f64::INFINITY;
            }
        }
        // The latent draws of each epoch come from a stream seeded by the
        // epoch, so a resumed run repeats an uninterrupted one exactly.
        self.device
            .seed(cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let begun = Instant::now();
        let totals = self.train_epoch(epoch)?;
        let train_time = begun.elapsed().as_secs_f64();
        self.finish_epoch(epoch, totals, train_time)
    }

    /// The epoch's items in their seeded order.
    fn order(&self, epoch: usize) -> Vec<usize> {
        let items = self.pairing.items(epoch);
        shuffled(
            items.len(),
            self.cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407),
        )
        .into_iter()
        .map(|j| items[j])
        .collect()
    }

    fn progress_bar(&self, epoch: usize, steps: usize) -> ProgressBar {
        let cfg = self.cfg;
        let pb = if self.opts.progress {
            ProgressBar::new(steps as u64)
        } else {
            ProgressBar::hidden()
        };
        pb.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_prefix(match cfg.phase_at(epoch) {
            Some((_, p)) => format!("{}/{} ({})", epoch + 1, cfg.optim.epochs, p.name),
            None => format!("{}/{}", epoch + 1, cfg.optim.epochs),
        });
        pb
    }

    /// Track for gradients the parameters epoch `epoch` uses (the decoders
    /// it weighs, the encoders that are not shared): the weights change
    /// only between epochs (phases), and the optimizer leaves untracked
    /// parameters as they are.
    fn track_used_parameters(&mut self, epoch: usize) {
        let weights = self.cfg.weights_at(epoch);
        self.learner.model = self
            .learner
            .model
            .clone()
            .with_used_parameters_tracked(&weights.weight);
    }

    /// Every step of epoch `epoch`; batches are gathered on their own
    /// thread, two ahead of the step.
    fn train_epoch(&mut self, epoch: usize) -> Result<EpochTotals> {
        let bs = self.cfg.optim.batch_size;
        let order = self.order(epoch);
        let pb = self.progress_bar(epoch, order.len().div_ceil(bs));
        let source = CaptionSource {
            captioner: self.data.captioner,
            set: CaptionSet::Train,
            stream: epoch as u64 + 1,
        };
        let layout = self.cfg.layout();
        let last_dir = self.last_dir();
        let pseudo_stats = self.fill_in(epoch);
        self.track_used_parameters(epoch);
        let Run {
            cfg,
            data,
            pairing,
            pseudo,
            learner,
            device,
            feature_net,
            sharding,
            ..
        } = self;
        let ctx = StepContext {
            cfg,
            device,
            sharding,
            feature_net: feature_net.as_ref(),
            side: data.train.rows,
            colours: data.train.channels,
            epoch,
            last_dir: &last_dir,
        };
        let mut totals = EpochTotals {
            pseudo: pseudo_stats,
            ..EpochTotals::default()
        };
        let mut failure = None;
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<HostBatch>(2);
            let (train_set, vocab, order, layout) = (&data.train, &data.vocab, &order, &layout);
            let (pairing, pseudo) = (&*pairing, &*pseudo);
            s.spawn(move || {
                for chunk in order.chunks(bs) {
                    let mut hb = HostBatch::gather(layout, train_set, chunk, source, vocab);
                    pairing.apply(&mut hb, chunk);
                    pseudo.apply(&mut hb, chunk);
                    if tx.send(hb).is_err() {
                        break;
                    }
                }
            });
            loop {
                let waited = Instant::now();
                let Ok(hb) = rx.recv() else { break };
                totals.data_wait_s += waited.elapsed().as_secs_f64();
                match ctx.step(learner, &hb, &mut totals) {
                    Ok(message) => {
                        pb.inc(1);
                        pb.set_message(message);
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        });
        pb.finish_and_clear();
        match failure {
            Some(e) => Err(e),
            None => Ok(totals),
        }
    }

    /// Self-training: fill in the unpaired items for epoch `epoch` (from
    /// `data.self_training.from_epoch` on) with the current model.
    fn fill_in(&mut self, epoch: usize) -> Option<PseudoStats> {
        let st = self.cfg.data.self_training.as_ref()?;
        if epoch + 1 < st.from_epoch {
            return None;
        }
        let (pseudo, stats) = PseudoPairs::fill(
            &self.learner.model.valid(),
            self.cfg,
            &self.data,
            &self.pairing,
            st,
            &self.eval_device,
        );
        self.pseudo = pseudo;
        Some(stats)
    }

    /// Validate the model after epoch `epoch`, save `last/` (and `best/`),
    /// and report the epoch.
    fn finish_epoch(
        &mut self,
        epoch: usize,
        t: EpochTotals,
        train_time: f64,
    ) -> Result<EpochReport> {
        let cfg = self.cfg;
        let epoch_loss = cfg.loss_at(epoch);
        let val = evaluate_loss(
            &self.learner.model.valid(),
            cfg,
            &epoch_loss,
            &cfg.weights_at(epoch),
            &self.data.val,
            CaptionSource {
                captioner: self.data.captioner,
                set: CaptionSet::Train,
                stream: VAL_STREAM,
            },
            &self.data.vocab,
            &self.eval_device,
        );
        let val_loss = val.get("loss").copied().unwrap_or(f64::NAN);
        if !val_loss.is_finite() {
            return Err(ModelError::Diverged(format!(
                "validation loss is non-finite after epoch {}; the last good checkpoint is kept in {}",
                epoch + 1,
                self.last_dir().display()
            )));
        }
        let l = &mut self.learner;
        l.state.epoch = epoch + 1;
        l.state.val_loss = val_loss;
        l.state.elapsed_s = self.elapsed_before + self.started.elapsed().as_secs_f64();
        let best = match cfg.optim.best {
            BestEpoch::ValLoss => val_loss < l.state.best_val_loss,
            BestEpoch::Last => true,
        };
        if best {
            l.state.best_val_loss = val_loss;
        }
        let refiner = &l.refiner;
        checkpoint::save_with(
            &self.opts.out_dir.join("last"),
            &l.model,
            Some(&l.optim),
            cfg,
            &self.data.vocab,
            &l.state,
            |tmp| refiner.as_ref().map_or(Ok(()), |r| r.save(tmp)),
        )?;
        if best {
            let best_dir = self.opts.out_dir.join("best");
            checkpoint::save(&best_dir, &l.model, None, cfg, &self.data.vocab, &l.state)?;
        }
        let adversarial = epoch_loss.adversarial_weight > 0.0 && l.refiner.is_some();
        let perceptual = epoch_loss.perceptual_weight > 0.0 && self.feature_net.is_some();
        let (seen, data_wait_s) = (t.seen, t.data_wait_s);
        let train = t.means(adversarial, perceptual);
        Ok(EpochReport {
            epoch: epoch + 1,
            phase: cfg.phase_at(epoch).map(|(_, p)| p.name.clone()),
            step: l.state.step,
            beta: beta_at(&epoch_loss, l.state.step),
            lr: cfg.lr_at(epoch),
            train,
            val,
            elapsed_s: l.state.elapsed_s,
            samples_per_s: seen as f64 / train_time.max(1e-9),
            data_wait: data_wait_s / train_time.max(1e-9),
            best,
        })
    }
}

/// What one step needs besides the learner.
struct StepContext<'a> {
    cfg: &'a TrainConfig,
    device: &'a Device,
    sharding: &'a Sharding,
    feature_net: Option<&'a FeatureNet>,
    side: usize,
    colours: usize,
    epoch: usize,
    last_dir: &'a std::path::Path,
}

impl StepContext<'_> {
    /// One optimizer step on `hb` (and a discriminator step when the
    /// adversary is on); returns the progress bar's message.
    fn step(&self, l: &mut Learner, hb: &HostBatch, t: &mut EpochTotals) -> Result<String> {
        let cfg = self.cfg;
        let (loss_cfg, beta) = step_loss(cfg, self.epoch, l.state.step);
        let weights = cfg.weights_at(self.epoch);
        let mut plan = l
            .model
            .plan(&loss_cfg, &weights, plan_stream(cfg.seed, l.state.step));
        let critics = Critics {
            adversary: match &l.refiner {
                Some(r) if loss_cfg.adversarial_weight > 0.0 => Some(Adversary {
                    discriminator: r.discriminator.clone().no_grad(),
                    loss: r.cfg.loss,
                    weight: loss_cfg.adversarial_weight,
                }),
                _ => None,
            },
            perceptual: match self.feature_net {
                Some(net) if loss_cfg.perceptual_weight > 0.0 => Some(Perceptual {
                    network: net.clone(),
                    weight: loss_cfg.perceptual_weight,
                    colours: self.colours,
                    side: self.side,
                }),
                _ => None,
            },
        };
        // Images decoded where no term weighs them are for the critics.
        plan.image_logits = critics.adversary.is_some() || critics.perceptual.is_some();
        let step = sharded_gradients(
            &l.model,
            hb,
            self.sharding,
            &loss_cfg,
            &plan,
            beta,
            &critics,
            self.device,
        );
        let r = step.report;
        if r.values().any(|v| !v.is_finite()) {
            return Err(ModelError::Diverged(format!(
                "loss became non-finite at epoch {} step {} ({r:?}); the last good checkpoint is kept in {}",
                self.epoch + 1,
                l.state.step,
                self.last_dir.display()
            )));
        }
        // The model moves through the optimizer: with no second reference
        // to its parameters, the update is in place.
        let (optim, lr) = (&mut l.optim, cfg.lr_at(self.epoch));
        replace_with::replace_with_or_abort(&mut l.model, |m| optim.step(lr, m, step.grads));
        let size = hb.size as f64;
        t.perceptual += step.perceptual_loss as f64 * size;
        if let (Some(refiner), Some(_)) = (l.refiner.as_mut(), &critics.adversary) {
            let images = hb.to_device(self.device).images();
            let d = refiner.step(images, step.generated, self.device);
            t.adversarial.0 += step.generator_loss as f64 * size;
            t.adversarial.1 += d as f64 * size;
        }
        l.state.step += 1;
        add_weighted(&mut t.sums, &r, hb.size);
        t.seen += hb.size;
        Ok(progress_message(&r))
    }
}

/// The learner saved in `last/`, checked against this run's config and
/// vocabulary.
fn resume(
    cfg: &TrainConfig,
    opts: &TrainOptions,
    data: &TrainData,
    device: &Device,
) -> Result<Learner> {
    let last_dir = opts.out_dir.join("last");
    let ck = checkpoint::read_meta(&last_dir)?;
    if !same_run(&ck.config, cfg) {
        return Err(ModelError::checkpoint(
            &last_dir,
            "was trained with a different configuration (only optim.epochs and optim.lr may change on --resume, and not with phases)",
        ));
    }
    if ck.vocab != data.vocab {
        return Err(ModelError::checkpoint(
            &last_dir,
            "vocabulary differs from this dataset's",
        ));
    }
    let (side, colours) = (data.train.rows, data.train.channels);
    let (_, model) = checkpoint::load(&last_dir, device)?;
    let optim = checkpoint::load_optim(&last_dir, optimizer(cfg), &model)?;
    Ok(Learner {
        model,
        optim,
        refiner: match &cfg.adversarial {
            Some(a) if cfg.uses_adversary() => {
                Some(Refiner::load(a, side, colours, &last_dir, device)?)
            }
            _ => None,
        },
        state: ck.state,
    })
}

/// A freshly initialised learner, in a new output folder.
fn fresh(
    cfg: &TrainConfig,
    opts: &TrainOptions,
    data: &TrainData,
    device: &Device,
) -> Result<Learner> {
    let out = &opts.out_dir;
    if out.join("last").exists() {
        return Err(ModelError::Invalid(format!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| ModelError::Io {
        path: out.clone(),
        source: e,
    })?;
    let (side, colours) = (data.train.rows, data.train.channels);
    Ok(Learner {
        model: init_model(cfg, side, colours, data.vocab.len(), device),
        optim: optimizer(cfg),
        refiner: match &cfg.adversarial {
            Some(a) if cfg.uses_adversary() => Some(Refiner::new(a, side, colours, device)),
            _ => None,
        },
        state: TrainState {
            format: checkpoint::FORMAT,
            dataset: cfg.data.dataset,
            side,
            colours,
            epoch: 0,
            step: 0,
            val_loss: f64::INFINITY,
            best_val_loss: f64::INFINITY,
            elapsed_s: 0.0,
        },
    })
}
