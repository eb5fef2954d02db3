//! Data-parallel training steps on the CPU: a batch is split into shards,
//! each shard's forward and backward pass runs on its own thread with its
//! own autodiff graph, and the gradients are summed. How the shards share
//! the cores with burn-flex's kernel threads is the config's
//! [`CoreSharing`]; both ways compute the same bits.
//! The noise is drawn on the calling thread before the shards start, so a
//! run stays repeatable for a given number of shards.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use std::sync::{Arc, Mutex, OnceLock};

pub use crate::config::CoreSharing;

use burn::tensor::activation::sigmoid;

use crate::config::{AdversarialLoss, LossConfig};
use crate::io::batch::HostBatch;
use crate::mvae::Mvae;
use crate::objective::Plan;
use crate::train::discriminator::{generator_loss, PatchDiscriminator};
use crate::train::perceptual::FeatureNet;
use std::collections::BTreeMap;

/// The default number of shards: one per available core, at most 4.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
}

/// Split a host batch into up to `n` contiguous shards of near-equal size.
pub fn shard(hb: &HostBatch, n: usize) -> Vec<HostBatch> {
    let n = n.clamp(1, hb.size.max(1));
    let base = hb.size / n;
    let extra = hb.size % n;
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let len = base + usize::from(i < extra);
        out.push(hb.rows(start, len));
        start += len;
    }
    out
}

/// The data-parallel split of a training step: how many shards, and how
/// they share the cores with burn-flex's kernel threads. Both ways of
/// sharing compute the same values bit for bit, so the choice changes
/// speed only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sharding {
    shards: usize,
    sharing: CoreSharing,
}

impl Sharding {
    /// `shards` data-parallel shards per step (at least 1).
    pub fn new(shards: usize, sharing: CoreSharing) -> Self {
        Self {
            shards: shards.max(1),
            sharing,
        }
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    pub fn sharing(&self) -> CoreSharing {
        self.sharing
    }
}

/// One single-thread rayon pool per shard, made once and kept
/// ([`CoreSharing::CorePerShard`]).
fn shard_pools(n: usize) -> Vec<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<Vec<Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    while pools.len() < n {
        let i = pools.len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(move |_| format!("mmvae-shard-{i}"))
            .build()
            .expect("a one-thread pool for a training shard");
        pools.push(Arc::new(pool));
    }
    pools[..n].to_vec()
}

/// Adds every parameter's gradient from `parts` into one [`GradientsParams`].
struct Merge {
    parts: Vec<GradientsParams>,
    merged: GradientsParams,
}

impl ModuleVisitor for Merge {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let id: ParamId = p.id;
        let mut sum: Option<Tensor<D>> = None;
        for g in self.parts.iter_mut() {
            if let Some(t) = g.remove::<D>(id) {
                sum = Some(match sum {
                    Some(s) => s + t,
                    None => t,
                });
            }
        }
        if let Some(s) = sum {
            self.merged.register(id, s);
        }
    }
}

/// Run `loss` on each shard in its own thread, on its own fork of `model`,
/// and return the summed gradients, the summed reports and each shard's
/// extra output, in shard order. `loss` returns the shard's (already
/// weighted) scalar loss, its report values and anything else the caller
/// wants back from the shard. The shards share the cores as `sharding`
/// says.
pub fn parallel_gradients<M, S, T, F>(
    model: &M,
    shards: Vec<S>,
    device: &Device,
    sharding: &Sharding,
    loss: F,
) -> (GradientsParams, Vec<f32>, Vec<T>)
where
    M: Module,
    S: Send,
    T: Send,
    F: Fn(&M, S) -> (Tensor<1>, Vec<f32>, T) + Sync,
{
    let many = shards.len() > 1;
    let pools = match sharding.sharing() {
        CoreSharing::CorePerShard if many => shard_pools(shards.len()),
        CoreSharing::CorePerShard | CoreSharing::SharedKernelPool => Vec::new(),
    };
    let loss = &loss;
    let results: Vec<(GradientsParams, Vec<f32>, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = shards
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                // A fork has its own autodiff graph, so the shards do not
                // serialise on one graph lock.
                let m = if many {
                    model.clone().fork(device)
                } else {
                    model.clone()
                };
                let pool = pools.get(i).cloned();
                s.spawn(move || {
                    let run = move || {
                        crate::device::flush_subnormals();
                        let (l, report, extra) = loss(&m, part);
                        (GradientsParams::from_grads(l.backward(), &m), report, extra)
                    };
                    match pool {
                        Some(pool) => pool.install(run),
                        None => run(),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("training shard panicked"))
            .collect()
    });
    let mut report = vec![0.0f32; results.first().map(|r| r.1.len()).unwrap_or(0)];
    let mut grads = Vec::with_capacity(results.len());
    let mut extras = Vec::with_capacity(results.len());
    for (g, r, e) in results {
        for (a, b) in report.iter_mut().zip(r) {
            *a += b;
        }
        grads.push(g);
        extras.push(e);
    }
    if grads.len() == 1 {
        return (grads.pop().expect("one shard"), report, extras);
    }
    let mut merge = Merge {
        parts: grads,
        merged: GradientsParams::new(),
    };
    model.visit(&mut merge);
    (merge.merged, report, extras)
}

/// The discriminator a training step's generated images are judged by,
/// held fixed during the model's step.
#[derive(Clone)]
pub struct Adversary {
    pub discriminator: PatchDiscriminator,
    pub loss: AdversarialLoss,
    /// Weight of the generator loss in the model's objective.
    pub weight: f32,
}

/// The perceptual loss of a training step: the feature network, held fixed.
#[derive(Clone)]
pub struct Perceptual {
    pub network: FeatureNet,
    /// Weight of the per-image feature distance in the model's objective.
    pub weight: f32,
    pub colours: usize,
    pub side: usize,
}

/// What judges a step's decoded images besides their likelihood.
#[derive(Clone, Default)]
pub struct Critics {
    pub adversary: Option<Adversary>,
    pub perceptual: Option<Perceptual>,
}

/// One step's gradients and what the step computed besides.
pub struct StepGradients {
    pub grads: GradientsParams,
    /// The objective's named terms (batch means).
    pub report: BTreeMap<String, f32>,
    /// With an [`Adversary`]: the generator loss (per image, before its
    /// weight), a batch mean.
    pub generator_loss: f32,
    /// With a [`Perceptual`] loss: the feature distance per image (before
    /// its weight), a batch mean.
    pub perceptual_loss: f32,
    /// With an [`Adversary`]: the judged images, detached, row-major
    /// `[2 * batch, pixels]` (each shard's joint reconstructions, then its
    /// images drawn from q(z|text)).
    pub generated: Vec<f32>,
}

/// One MVAE step's gradients and loss report, computed over `shards`
/// threads. The result equals the gradient of the whole batch's loss (each
/// shard's loss is weighted by its share of the batch). With an
/// adversary, the objective adds its weighted generator loss on the joint
/// reconstructions and on the images drawn from q(z|text); with a
/// perceptual loss, the weighted feature distance of the joint and
/// image-only reconstructions to their images.
#[allow(clippy::too_many_arguments)]
pub fn sharded_gradients(
    model: &Mvae,
    hb: &HostBatch,
    sharding: &Sharding,
    cfg: &LossConfig,
    plan: &Plan,
    beta: f32,
    critics: &Critics,
    device: &Device,
) -> StepGradients {
    let parts = shard(hb, sharding.shards());
    // Noise first, in a fixed order, on this thread.
    let work: Vec<(HostBatch, Tensor<2>, Critics)> = parts
        .into_iter()
        .map(|p| {
            let eps = Tensor::random(
                [model.noise_rows(plan, cfg, p.size), model.noise_dim()],
                Distribution::Normal(0.0, 1.0),
                device,
            );
            (p, eps, critics.clone())
        })
        .collect();
    let step = ShardStep {
        cfg,
        plan,
        beta,
        total: hb.size as f32,
        device,
    };
    let (grads, report, extras) =
        parallel_gradients(model, work, device, sharding, |m, w| step.run(m, w));
    let names = extras.first().map(|e| e.names.clone()).unwrap_or_default();
    let mut out = StepGradients {
        grads,
        report: names.into_iter().zip(report).collect(),
        generator_loss: 0.0,
        perceptual_loss: 0.0,
        generated: Vec::new(),
    };
    for e in extras {
        out.generator_loss += e.generator_loss;
        out.generated.extend(e.judged);
        out.perceptual_loss += e.perceptual_loss;
    }
    out
}

/// What one shard's step computes besides its loss and report: the
/// critics' losses, already weighted by the shard's share of the batch.
struct ShardExtras {
    generator_loss: f32,
    judged: Vec<f32>,
    perceptual_loss: f32,
    /// The report's term names, in the order of its values.
    names: Vec<String>,
}

/// The settings every shard of one step shares.
struct ShardStep<'a> {
    cfg: &'a LossConfig,
    plan: &'a Plan,
    beta: f32,
    /// The whole batch's size: each shard's loss is weighted by its share.
    total: f32,
    device: &'a Device,
}

impl ShardStep<'_> {
    /// One shard's weighted loss, its weighted report values and extras.
    fn run(
        &self,
        m: &Mvae,
        (part, eps, critics): (HostBatch, Tensor<2>, Critics),
    ) -> (Tensor<1>, Vec<f32>, ShardExtras) {
        let batch = part.to_device(self.device);
        let out = m.loss_with_noise(&batch, self.cfg, self.plan, self.beta, eps);
        let w = part.size as f32 / self.total;
        let report = out.terms.to_host();
        let names: Vec<String> = report.keys().cloned().collect();
        let values = report.into_values().map(|v| v * w).collect();
        let mut loss = out.total;
        let mut extras = ShardExtras {
            generator_loss: 0.0,
            judged: Vec::new(),
            perceptual_loss: 0.0,
            names,
        };
        let b = part.size;
        // Validated: the critics run only on image + text models, whose
        // loss returns both kinds of image.
        if let (Some(p), Some(recon)) = (critics.perceptual, &out.reconstructed) {
            let copies = recon.dims()[0] / b;
            let d = p
                .network
                .distance(
                    sigmoid(recon.clone()),
                    batch.images().repeat_dim(0, copies),
                    p.colours,
                    p.side,
                )
                .mean();
            extras.perceptual_loss = d.clone().into_scalar::<f32>() * w;
            loss = loss + d * p.weight;
        }
        if let (Some(a), Some(recon), Some(generated)) =
            (critics.adversary, &out.reconstructed, &out.generated)
        {
            let judged = sigmoid(Tensor::cat(
                vec![recon.clone().narrow(0, 0, b), generated.clone()],
                0,
            )); // [2b, pixels]
            let g = generator_loss(a.loss, a.discriminator.forward(judged.clone())).mean();
            extras.generator_loss = g.clone().into_scalar::<f32>() * w;
            loss = loss + g * a.weight;
            extras.judged = crate::host::floats(judged.detach());
        }
        (loss * w, values, extras)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnimodalTarget;

    /// Both ways of sharing the cores give the same gradients, bit for bit,
    /// on layers large enough for burn-flex to split their products over
    /// rayon's pool (so the choice cannot change a seeded run).
    #[test]
    fn both_core_sharings_give_identical_gradients() {
        use burn::nn::{Linear, LinearConfig};
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex().autodiff();
        dev.seed(3);
        let layer: Linear = LinearConfig::new(512, 512).init(&dev);
        let rows = |seed: u64| {
            dev.seed(seed);
            Tensor::<2>::random([64, 512], Distribution::Normal(0.0, 1.0), &dev)
        };
        let grads = |sharing: CoreSharing| {
            let shards = vec![rows(11), rows(12)];
            let (g, report, _) = parallel_gradients(
                &layer,
                shards,
                &dev,
                &Sharding::new(2, sharing),
                |m: &Linear, x: Tensor<2>| {
                    let l = m.forward(x).tanh().powi_scalar(2).sum();
                    let v = l.clone().into_scalar();
                    (l, vec![v], ())
                },
            );
            let w = g.get::<2>(layer.weight.id).expect("weight gradient");
            (w.into_data().try_to_vec::<f32>().unwrap(), report)
        };
        let (a, ra) = grads(CoreSharing::SharedKernelPool);
        let (b, rb) = grads(CoreSharing::CorePerShard);
        assert_eq!(ra, rb);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(a.iter().any(|x| *x != 0.0));
    }

    #[test]
    fn sharded_gradients_equal_whole_batch_gradients() {
        let _rng = crate::testutil::rng_lock();
        // Covers the image-only latent's noise columns in the shards.
        let (cfg, modalities) = crate::testutil::tiny_image_text(2);
        let loss = LossConfig {
            unimodal_target: UnimodalTarget::All,
            ..LossConfig::default()
        };
        let dev = Device::flex().autodiff();
        dev.seed(1);
        let model = cfg.init(&modalities, crate::testutil::SHAPE, &dev);
        let weights = crate::testutil::weights(&modalities);
        let plan = model.plan(&loss, &weights, 0);
        let n = 5;
        let hb = crate::testutil::host_batch(n);
        let parts = shard(&hb, 2);
        assert_eq!(parts.iter().map(|p| p.size).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(parts[1], hb.rows(3, 2));

        dev.seed(9);
        let step = sharded_gradients(
            &model,
            &hb,
            &Sharding::new(2, CoreSharing::CorePerShard),
            &loss,
            &plan,
            1.0,
            &Critics::default(),
            &dev,
        );
        let (g2, r2) = (step.grads, step.report);
        // The same noise, drawn as the sharded step drew it, for the whole batch.
        dev.seed(9);
        let cols = model.noise_dim();
        let e1 = Tensor::<2>::random([9, cols], Distribution::Normal(0.0, 1.0), &dev);
        let e2 = Tensor::<2>::random([6, cols], Distribution::Normal(0.0, 1.0), &dev);
        // Rows are [joint, x, y] per shard; reassemble them for the whole batch.
        let pick = |e: &Tensor<2>, k: usize, len: usize| e.clone().narrow(0, k * len, len);
        let eps = Tensor::cat(
            vec![
                pick(&e1, 0, 3),
                pick(&e2, 0, 2),
                pick(&e1, 1, 3),
                pick(&e2, 1, 2),
                pick(&e1, 2, 3),
                pick(&e2, 2, 2),
            ],
            0,
        );
        let out = model.loss_with_noise(&hb.to_device(&dev), &loss, &plan, 1.0, eps);
        let r1 = out.terms.to_host();
        let g1 = GradientsParams::from_grads(out.total.backward(), &model);
        assert!(
            (r1["loss"] - r2["loss"]).abs() < 1e-3 * r1["loss"].abs(),
            "{r1:?} vs {r2:?}"
        );

        struct Cmp<'a>(&'a GradientsParams, &'a GradientsParams, usize);
        impl ModuleVisitor for Cmp<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                let a = self
                    .0
                    .get::<D>(p.id)
                    .unwrap()
                    .try_into_vec_as::<f32>()
                    .unwrap();
                let b = self
                    .1
                    .get::<D>(p.id)
                    .unwrap()
                    .try_into_vec_as::<f32>()
                    .unwrap();
                for (x, y) in a.iter().zip(&b) {
                    assert!(
                        (x - y).abs() <= 1e-4 + 1e-3 * x.abs().max(y.abs()),
                        "{x} vs {y}"
                    );
                }
                self.2 += 1;
            }
        }
        let mut c = Cmp(&g1, &g2, 0);
        model.visit(&mut c);
        assert!(c.2 > 30);
    }
}
