//! Choosing where tensors live. The CPU backend (`flex`) is always there;
//! the GPU backend (`wgpu`, Vulkan/Metal/DX12) needs the `wgpu` feature.

use burn::prelude::*;

/// Where a command computes: `--device cpu`, `wgpu` (the best GPU adapter),
/// or `wgpu:NAME` / `wgpu:N` (one adapter of `mmvae devices`, by a part of
/// its name or by its position in that list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// burn's `flex` CPU backend (multi-threaded, SIMD).
    #[default]
    Cpu,
    /// burn's `wgpu` backend (Vulkan, Metal, DX12) on one adapter.
    Gpu(GpuSlot),
}

/// One graphics adapter, addressed as burn addresses it: by its type, its
/// index among the adapters of that type, and its graphics API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuSlot {
    /// The adapter wgpu prefers (a high-performance GPU where there is one).
    Best,
    /// The `index`-th adapter of type `kind` on graphics API `api`.
    Adapter {
        kind: AdapterKind,
        index: usize,
        api: GraphicsApi,
    },
}

/// The type a graphics adapter reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    Discrete,
    Integrated,
    Virtual,
    /// A software rasterizer (lavapipe, llvmpipe, WARP).
    Software,
    Other,
}

/// The graphics API an adapter is driven through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphicsApi {
    Vulkan,
    Metal,
    Dx12,
    OpenGl,
    WebGpu,
}

/// A graphics adapter the computer offers, as `mmvae devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The driver's name for it, e.g. `NVIDIA H200` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    pub driver: String,
    pub slot: GpuSlot,
}

impl std::fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdapterKind::Discrete => "discrete GPU",
            AdapterKind::Integrated => "integrated GPU",
            AdapterKind::Virtual => "virtual GPU",
            AdapterKind::Software => "software (CPU)",
            AdapterKind::Other => "other",
        })
    }
}

impl Compute {
    /// Reads a `--device` value. `wgpu:NAME` and `wgpu:N` look the adapter
    /// up now, so that a name matching no adapter fails here.
    pub fn parse(s: &str) -> crate::error::Result<Self> {
        match s.split_once(':') {
            None if s == "cpu" => Ok(Compute::Cpu),
            None if s == "wgpu" || s == "gpu" => Ok(Compute::Gpu(GpuSlot::Best)),
            Some(("wgpu" | "gpu", spec)) if !spec.is_empty() => {
                Ok(Compute::Gpu(choose_adapter(&adapters()?, spec)?.slot))
            }
            _ => Err(crate::error::ModelError::Invalid(format!(
                "unknown device `{s}` (expected cpu, wgpu, wgpu:NAME or wgpu:N; `mmvae devices` lists the adapters)"
            ))),
        }
    }

    /// The inference device. For a GPU, the adapter is brought up on the
    /// first call (an error, not a panic, when it cannot be) and reused after.
    pub fn device(self) -> crate::error::Result<Device> {
        match self {
            Compute::Cpu => Ok(cpu_device()),
            Compute::Gpu(slot) => gpu_device(slot),
        }
    }

    /// Whether this is a GPU (where data-parallel CPU shards do not apply).
    pub fn is_gpu(self) -> bool {
        matches!(self, Compute::Gpu(_))
    }

    /// A name for reports: `cpu`, or `wgpu: ` and the adapter's name.
    pub fn label(self) -> String {
        match self {
            Compute::Cpu => "cpu".into(),
            Compute::Gpu(GpuSlot::Best) => "wgpu (best adapter)".into(),
            Compute::Gpu(slot) => adapters()
                .ok()
                .and_then(|found| found.into_iter().find(|a| a.slot == slot))
                .map_or_else(|| "wgpu".into(), |a| format!("wgpu: {}", a.name)),
        }
    }
}

/// The adapter `spec` names among `found`: a position in the list, or a
/// case-insensitive part of exactly one adapter's name.
pub fn choose_adapter(found: &[AdapterInfo], spec: &str) -> crate::error::Result<AdapterInfo> {
    let listing = || {
        if found.is_empty() {
            "none found (is a Vulkan driver installed?)".to_string()
        } else {
            found
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{i}: {}", a.name))
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    if let Ok(i) = spec.parse::<usize>() {
        return found.get(i).cloned().ok_or_else(|| {
            crate::error::ModelError::Invalid(format!(
                "no GPU adapter {i} (adapters: {})",
                listing()
            ))
        });
    }
    let needle = spec.to_lowercase();
    let hits: Vec<&AdapterInfo> = found
        .iter()
        .filter(|a| a.name.to_lowercase().contains(&needle))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(crate::error::ModelError::Invalid(format!(
            "no GPU adapter named like `{spec}` (adapters: {})",
            listing()
        ))),
        many => Err(crate::error::ModelError::Invalid(format!(
            "`{spec}` names {} adapters ({}); give more of the name or its number",
            many.len(),
            many.iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ))),
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

#[cfg(feature = "wgpu")]
mod gpu;
#[cfg(feature = "wgpu")]
pub use self::gpu::adapters;
#[cfg(feature = "wgpu")]
use self::gpu::gpu_device;

#[cfg(not(feature = "wgpu"))]
fn no_gpu_support() -> crate::error::ModelError {
    crate::error::ModelError::Invalid(
        "this build has no GPU support: rebuild with `--features wgpu`".into(),
    )
}

/// The graphics adapters of the computer (none in a build without `wgpu`).
#[cfg(not(feature = "wgpu"))]
pub fn adapters() -> crate::error::Result<Vec<AdapterInfo>> {
    Err(no_gpu_support())
}

#[cfg(not(feature = "wgpu"))]
fn gpu_device(_slot: GpuSlot) -> crate::error::Result<Device> {
    Err(no_gpu_support())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, kind: AdapterKind, index: usize) -> AdapterInfo {
        AdapterInfo {
            name: name.into(),
            driver: String::new(),
            slot: GpuSlot::Adapter {
                kind,
                index,
                api: GraphicsApi::Vulkan,
            },
        }
    }

    #[test]
    fn an_adapter_is_chosen_by_number_or_by_part_of_its_name() {
        let found = [
            adapter("NVIDIA H200", AdapterKind::Discrete, 0),
            adapter("NVIDIA H100", AdapterKind::Discrete, 1),
            adapter("llvmpipe (LLVM 15.0.6, 256 bits)", AdapterKind::Software, 0),
        ];
        assert_eq!(choose_adapter(&found, "1").unwrap(), found[1]);
        assert_eq!(choose_adapter(&found, "h200").unwrap(), found[0]);
        assert_eq!(choose_adapter(&found, "LLVMpipe").unwrap(), found[2]);
        let err = |spec: &str| choose_adapter(&found, spec).unwrap_err().to_string();
        // Two adapters match: refused, naming both.
        let e = err("nvidia");
        assert!(e.contains("names 2 adapters") && e.contains("H100"), "{e}");
        // None matches, or the number is past the list: the list is named.
        let e = err("radeon");
        assert!(e.contains("radeon") && e.contains("0: NVIDIA H200"), "{e}");
        assert!(err("3").contains("no GPU adapter 3"), "{}", err("3"));
        let e = choose_adapter(&[], "h200").unwrap_err().to_string();
        assert!(e.contains("none found"), "{e}");
    }

    #[test]
    fn device_values_parse() {
        assert_eq!(Compute::parse("cpu").unwrap(), Compute::Cpu);
        assert_eq!(Compute::parse("wgpu").unwrap(), Compute::Gpu(GpuSlot::Best));
        for bad in ["tpu", "wgpu:", "cpu:0", ""] {
            let e = Compute::parse(bad).unwrap_err().to_string();
            assert!(e.contains("unknown device"), "{bad}: {e}");
        }
        if cfg!(not(feature = "wgpu")) {
            let e = Compute::parse("wgpu:0").unwrap_err().to_string();
            assert!(e.contains("--features wgpu"), "{e}");
            let e = Compute::Gpu(GpuSlot::Best)
                .device()
                .unwrap_err()
                .to_string();
            assert!(e.contains("--features wgpu"), "{e}");
        }
    }

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
