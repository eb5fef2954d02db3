//! Adam with its moment updates and parameter update fused into one pass
//! over each tensor on the CPU.
//!
//! burn's [`Adam`] computes a step as a dozen whole-tensor operations (each
//! scaling, square, sum, square root and division allocates and writes a
//! new tensor), on the calling thread. For the MLP image experts' 4,096-wide
//! layers that is about a third of a training step on 2 cores. [`FusedAdam`]
//! does the same arithmetic, in the same order and in `f32`, element by
//! element in one pass, split over the kernels' thread pool; its results
//! are bit for bit burn's, its state is burn's [`AdamState`] (so `optim.bpk`
//! files are the same), and on a GPU it hands the step to burn's [`Adam`].
//! The step is a backend operation on burn-flex's tensors, so it updates a
//! parameter and its moments in place where nothing else holds them, and
//! copies a shared one once.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, ModuleOptimizer, Optimizer};
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::nn::dense::Dense;

/// Elements per parallel piece of a fused step.
const PIECE: usize = 1 << 15;

/// Adam's hyper-parameters (burn's defaults; no weight decay, no AMSGrad)
/// and an optional gradient-norm clip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedAdamConfig {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// Clip each parameter's gradient to this L2 norm before the step.
    pub grad_clip_norm: Option<f32>,
}

impl Default for FusedAdamConfig {
    fn default() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
            grad_clip_norm: None,
        }
    }
}

impl FusedAdamConfig {
    pub fn with_beta_1(self, beta_1: f32) -> Self {
        Self { beta_1, ..self }
    }

    pub fn with_epsilon(self, epsilon: f32) -> Self {
        Self { epsilon, ..self }
    }

    pub fn with_grad_clip_norm(self, grad_clip_norm: Option<f32>) -> Self {
        Self {
            grad_clip_norm,
            ..self
        }
    }

    /// burn's Adam with the same hyper-parameters.
    pub fn reference(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_grad_clipping(self.grad_clip_norm.map(GradientClippingConfig::Norm))
    }

    /// A whole-module optimizer.
    pub fn init(&self) -> ModuleOptimizer {
        let optim = ModuleOptimizer::from(FusedAdam {
            config: *self,
            reference: self.reference().build(),
        });
        match self.grad_clip_norm {
            Some(norm) => optim.with_grad_clipping(GradientClippingConfig::Norm(norm).init()),
            None => optim,
        }
    }
}

/// Adam whose CPU steps run fused; see the module documentation.
#[derive(Clone)]
pub struct FusedAdam {
    config: FusedAdamConfig,
    reference: Adam,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let device = tensor.device();
        let moments_f32 = state
            .as_ref()
            .is_none_or(|s| is_f32(&s.momentum.moment_1) && is_f32(&s.momentum.moment_2));
        if device == Device::flex() && is_f32(&tensor) && is_f32(&grad) && moments_f32 {
            let momentum = state.map(|s| s.momentum);
            let (t, s) = fused_step(&self.config, lr, tensor, grad, momentum);
            (t, Some(AdamState::new(s)))
        } else {
            self.reference.step(lr, tensor, grad, state)
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Adam::to_device(state, device)
    }
}

fn is_f32<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == burn::tensor::DType::F32
}

/// The fused step as an operation of a backend (the CPU's only).
#[backend_extension(Flex)]
trait AdamBackend: Backend {
    /// The parameter and both moments after one step of [`Coefficients`].
    fn adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        coefficients: Coefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl AdamBackend for Flex {
    fn adam_step(
        param: FlexTensor,
        grad: FlexTensor,
        moment_1: FlexTensor,
        moment_2: FlexTensor,
        k: Coefficients,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (mut p, mut m, mut v) = (owned(param), owned(moment_1), owned(moment_2));
        let g = Dense::new(&grad);
        let n = g.values().len();
        assert!(
            [&p, &m, &v].iter().all(|t| t.layout().num_elements() == n),
            "adam_step: the parameter, its gradient and moments differ in size"
        );
        floats(&mut p, n)
            .par_chunks_mut(PIECE)
            .zip(floats(&mut m, n).par_chunks_mut(PIECE))
            .zip(floats(&mut v, n).par_chunks_mut(PIECE))
            .zip(g.values().par_chunks(PIECE))
            .for_each(|(((p, m), v), g)| k.apply(p, m, v, g));
        (p, m, v)
    }
}

/// `t` contiguous from the start of its buffer: as it is where it already
/// is, else copied once.
fn owned(t: FlexTensor) -> FlexTensor {
    let n = t.layout().num_elements();
    if t.layout().contiguous_offsets() == Some((0, n)) {
        t
    } else {
        t.to_contiguous()
    }
}

/// The first `n` values of `t`'s buffer, writable: in place where `t`
/// holds the only reference to them, else after one copy.
fn floats(t: &mut FlexTensor, n: usize) -> &mut [f32] {
    &mut t.storage_mut::<f32>()[..n]
}

/// One Adam step of `param` on the host, in burn's order of operations:
/// `m = m·β₁ + g·(1−β₁)`, `v = v·β₂ + (g·g)·(1−β₂)`, then
/// `param − ((m·c) / (√v + ε·b)) · lr` with `b = √(1−β₂ᵗ)` and
/// `c = b / (1−β₁ᵗ)`.
fn fused_step<const D: usize>(
    h: &FusedAdamConfig,
    lr: f64,
    param: Tensor<D>,
    grad: Tensor<D>,
    state: Option<AdaptiveMomentumState<D>>,
) -> (Tensor<D>, AdaptiveMomentumState<D>) {
    let (time, m, v) = match state {
        Some(s) => (s.time + 1, s.moment_1, s.moment_2),
        // The moments start from the gradient alone; these are overwritten.
        None => (1, grad.zeros_like(), grad.zeros_like()),
    };
    let t = time as i32;
    let b = (1.0 - h.beta_2.powi(t)).sqrt();
    let k = Coefficients {
        beta_1: h.beta_1,
        beta_2: h.beta_2,
        f1: 1.0 - h.beta_1,
        f2: 1.0 - h.beta_2,
        c: b / (1.0 - h.beta_1.powi(t)),
        eps: h.epsilon * b,
        lr: lr as f32,
        first: time == 1,
    };
    let (p, m, v) = Dispatch::adam_step(
        param.into_dispatch(),
        grad.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        k,
    );
    let state =
        AdaptiveMomentumState::new(time, Tensor::from_dispatch(m), Tensor::from_dispatch(v));
    (Tensor::from_dispatch(p), state)
}

/// The scalars of one step, `f32` as burn's scalar operations use them.
#[derive(Clone, Copy, Debug)]
struct Coefficients {
    beta_1: f32,
    beta_2: f32,
    /// `1 − β₁`, `1 − β₂`.
    f1: f32,
    f2: f32,
    /// `√(1−β₂ᵗ) / (1−β₁ᵗ)`.
    c: f32,
    /// `ε·√(1−β₂ᵗ)`.
    eps: f32,
    lr: f32,
    /// The first step (the moments start from the gradient alone).
    first: bool,
}

impl Coefficients {
    /// The step on one piece, with the widest vectors the CPU has.
    fn apply(self, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { self.apply_avx512(p, m, v, g) };
        } else if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.apply_avx2(p, m, v, g) };
        }
        self.apply_portable(p, m, v, g)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn apply_avx512(self, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        self.apply_portable(p, m, v, g)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn apply_avx2(self, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        self.apply_portable(p, m, v, g)
    }

    /// Plain loops the compiler vectorises (no fused multiply-add: each
    /// operation rounds as burn's tensor operations do).
    #[inline(always)]
    fn apply_portable(self, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        let n = p.len().min(m.len()).min(v.len()).min(g.len());
        let (p, m, v, g) = (&mut p[..n], &mut m[..n], &mut v[..n], &g[..n]);
        for i in 0..n {
            let (mi, vi) = if self.first {
                (g[i] * self.f1, (g[i] * g[i]) * self.f2)
            } else {
                (
                    m[i] * self.beta_1 + g[i] * self.f1,
                    v[i] * self.beta_2 + (g[i] * g[i]) * self.f2,
                )
            };
            m[i] = mi;
            v[i] = vi;
            p[i] -= ((mi * self.c) / (vi.sqrt() + self.eps)) * self.lr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;

    /// A layer wider than one parallel piece, so that steps are split.
    fn layer(dev: &Device) -> Linear {
        LinearConfig::new(300, 150).init(dev)
    }

    /// Gradients of a loss whose scale changes with `step`, some of them
    /// tiny (the second moments of such gradients go subnormal).
    fn grads(m: &Linear, step: usize, dev: &Device) -> GradientsParams {
        let x = Tensor::<2>::random([8, 300], burn::tensor::Distribution::Default, dev);
        let scale = [1.0, 1e-3, 1e-19, 5.0, 0.1][step % 5];
        let loss = m.forward(x).powf_scalar(2.0).sum().mul_scalar(scale);
        GradientsParams::from_grads(loss.backward(), m)
    }

    fn values(m: &Linear) -> Vec<Vec<f32>> {
        let mut out = vec![m.weight.val().into_data().try_to_vec::<f32>().unwrap()];
        if let Some(b) = &m.bias {
            out.push(b.val().into_data().try_to_vec::<f32>().unwrap());
        }
        out
    }

    /// Steps `steps` of `optim` from `start`, each on its own batch.
    fn run(start: &Linear, optim: &mut ModuleOptimizer, steps: std::ops::Range<usize>) -> Linear {
        let dev = start.weight.val().device();
        let mut m = start.clone();
        for s in steps {
            dev.seed(3 + s as u64);
            let g = grads(&m, s, &dev);
            m = optim.step(1e-2, m, g);
        }
        m
    }

    #[test]
    fn fused_steps_are_burns_adam_bit_for_bit() {
        for config in [
            FusedAdamConfig::default(),
            FusedAdamConfig::default()
                .with_beta_1(0.5)
                .with_epsilon(1e-8)
                .with_grad_clip_norm(Some(0.5)),
        ] {
            let _lock = crate::testutil::rng_lock();
            let dev = crate::device::cpu_device().autodiff();
            dev.seed(1);
            let start = layer(&dev);
            let fused = run(&start, &mut config.init(), 0..7);
            let burns = run(&start, &mut config.reference().init(), 0..7);
            assert_eq!(values(&fused), values(&burns), "{config:?}");
            assert_ne!(
                values(&fused),
                values(&start),
                "the steps moved the weights"
            );
            // The fused optimizer's saved state, read by burn's Adam, goes on
            // as burn's own.
            let mut optim = config.init();
            let five = run(&start, &mut optim, 0..5);
            let bytes = optim.into_bytes().unwrap();
            let mut resumed = config.reference().init().from_bytes(bytes).unwrap();
            let seven = run(&five, &mut resumed, 5..7);
            assert_eq!(values(&seven), values(&burns), "{config:?}");
        }
    }

    #[test]
    fn a_run_resumes_from_burns_saved_state() {
        let _lock = crate::testutil::rng_lock();
        let dev = crate::device::cpu_device().autodiff();
        dev.seed(5);
        let start = layer(&dev);
        let config = FusedAdamConfig::default();
        // Three steps under burn's Adam, then two under the fused one from
        // burn's state; against five under burn's Adam.
        let mut optim = config.reference().init();
        let three = run(&start, &mut optim, 0..3);
        let mut fused = config.init().load_record(optim.to_record());
        let continued = run(&three, &mut fused, 3..5);
        let burns = run(&start, &mut config.reference().init(), 0..5);
        assert_eq!(values(&continued), values(&burns));
    }

    #[test]
    fn coefficients_follow_the_closed_form() {
        // One element, two steps, by hand: m₁ = 0.1·g, v₁ = 0.001·g²;
        // m₂ = 0.9·m₁ + 0.1·g, v₂ = 0.999·v₁ + 0.001·g².
        let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8f64, 0.01f64);
        let mut p = [1.0f32];
        let (mut m, mut v) = ([0.0f32], [0.0f32]);
        let mut expected = 1.0f64;
        let (mut em, mut ev) = (0.0f64, 0.0f64);
        for (t, g) in [(1, 0.5f64), (2, -2.0f64)] {
            let c = |b: f64| 1.0 - b.powi(t);
            let k = Coefficients {
                beta_1: b1 as f32,
                beta_2: b2 as f32,
                f1: (1.0 - b1) as f32,
                f2: (1.0 - b2) as f32,
                c: (c(b2).sqrt() / c(b1)) as f32,
                eps: (eps * c(b2).sqrt()) as f32,
                lr: lr as f32,
                first: t == 1,
            };
            k.apply(&mut p, &mut m, &mut v, &[g as f32]);
            em = b1 * em + (1.0 - b1) * g;
            ev = b2 * ev + (1.0 - b2) * g * g;
            // Adam's bias-corrected update.
            expected -= lr * (em / c(b1)) / ((ev / c(b2)).sqrt() + eps);
            assert!(
                (p[0] as f64 - expected).abs() < 1e-6,
                "{} vs {expected}",
                p[0]
            );
        }
    }
}
