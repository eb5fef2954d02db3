//! Choosing where tensors live. The CPU backend (`flex`) is always there;
//! the GPU backend (`wgpu`, Vulkan/Metal/DX12) needs the `wgpu` feature.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compute {
    /// burn's `flex` CPU backend (multi-threaded, SIMD).
    #[default]
    Cpu,
    /// burn's `wgpu` backend on the default GPU adapter.
    Wgpu,
}

impl Compute {
    pub fn parse(s: &str) -> crate::error::Result<Self> {
        match s {
            "cpu" => Ok(Compute::Cpu),
            "wgpu" => Ok(Compute::Wgpu),
            other => Err(crate::error::ModelError::Invalid(format!(
                "unknown device `{other}` (expected cpu or wgpu)"
            ))),
        }
    }

    /// The inference device.
    pub fn device(self) -> crate::error::Result<Device> {
        match self {
            Compute::Cpu => Ok(cpu_device()),
            Compute::Wgpu => wgpu_device(),
        }
    }
}

/// The CPU device, with subnormals flushed on the threads that will run
/// its kernels: every CPU computation (training, classifiers, probes,
/// benchmarks) gets its device here.
pub fn cpu_device() -> Device {
    flush_subnormals_on_cpu_threads();
    Device::flex()
}

/// Make this thread treat subnormal floats (below 1.2e-38 in f32) as zero,
/// on input and output: x86-64's MXCSR FTZ and DAZ bits, AArch64's FPCR FZ
/// bit; elsewhere nothing. Training produces subnormals as the image
/// decoder grows sure of its black background and as Adam's second moments
/// of vanishing gradients decay, and each subnormal operation costs a
/// hundred normal ones on x86: a level 3 shapes run at β = 0.5 slowed from
/// 192 to 103 images/s within three epochs without this. PyTorch does the
/// same with `torch.set_flush_denormal(True)`. The values it changes are
/// below any precision the models use.
pub fn flush_subnormals() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: sets two mode bits of this thread's SSE control register;
    // the only effect is that subnormal inputs and results read as zero.
    #[allow(deprecated)]
    // the intrinsics are deprecated for changing the float mode, which is the point
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040); // FTZ (bit 15) | DAZ (bit 6)
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: sets the flush-to-zero bit of this thread's FPCR.
    unsafe {
        let mut fpcr: u64;
        std::arch::asm!("mrs {}, fpcr", out(reg) fpcr);
        std::arch::asm!("msr fpcr, {}", in(reg) fpcr | (1 << 24));
    }
}

/// [`flush_subnormals`] on this thread and on every thread of rayon's
/// global pool, where burn-flex runs its kernels. Threads spawned later for
/// data-parallel shards call [`flush_subnormals`] themselves.
pub fn flush_subnormals_on_cpu_threads() {
    flush_subnormals();
    rayon::broadcast(|_| flush_subnormals());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnormals_flush_to_zero_on_the_cpu_threads() {
        // Computed at run time, so the compiler cannot fold it.
        let tiny = std::hint::black_box(1.0e-30f32);
        let unflushed = std::thread::spawn(move || tiny * std::hint::black_box(1.0e-10f32))
            .join()
            .unwrap();
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert!(unflushed > 0.0 && !unflushed.is_normal(), "{unflushed:e}");
        }
        let flushed = std::thread::spawn(move || {
            Compute::Cpu.device().unwrap();
            let here = tiny * std::hint::black_box(1.0e-10f32);
            let pool: Vec<f32> = rayon::broadcast(|_| {
                std::hint::black_box(1.0e-30f32) * std::hint::black_box(1.0e-10f32)
            });
            (here, pool)
        })
        .join()
        .unwrap();
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert_eq!(flushed.0, 0.0);
            assert!(flushed.1.iter().all(|&v| v == 0.0), "{:?}", flushed.1);
        }
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> crate::error::Result<Device> {
    Ok(Device::wgpu(DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> crate::error::Result<Device> {
    Err(crate::error::ModelError::Invalid(
        "this build has no GPU support: rebuild with `--features wgpu`".into(),
    ))
}
