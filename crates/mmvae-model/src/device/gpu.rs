//! The wgpu side of [`Compute`]: listing the graphics adapters and bringing
//! one up as a burn [`Device`].

use std::sync::Mutex;

use burn::prelude::*;
use burn::tensor::wgpu::{wgpu, WgpuBackend};

use super::{AdapterInfo, AdapterKind, GpuSlot, GraphicsApi};
use crate::error::{ModelError, Result};

/// The graphics APIs asked for adapters, in the order they are listed.
const APIS: [(wgpu::Backend, GraphicsApi); 4] = [
    (wgpu::Backend::Vulkan, GraphicsApi::Vulkan),
    (wgpu::Backend::Metal, GraphicsApi::Metal),
    (wgpu::Backend::Dx12, GraphicsApi::Dx12),
    (wgpu::Backend::Gl, GraphicsApi::OpenGl),
];

/// The graphics adapters of the computer, per graphics API in the order of
/// [`APIS`], each with the slot that addresses it.
pub fn adapters() -> Result<Vec<AdapterInfo>> {
    let mut out = Vec::new();
    for (backend, api) in APIS {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: backend.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let infos: Vec<wgpu::AdapterInfo> =
            futures_lite::future::block_on(instance.enumerate_adapters(backend.into()))
                .iter()
                .map(wgpu::Adapter::get_info)
                .collect();
        // burn counts each adapter type from zero, per graphics API.
        let mut seen: Vec<AdapterKind> = Vec::new();
        for info in infos {
            let kind = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
                wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
                wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
                wgpu::DeviceType::Cpu => AdapterKind::Software,
                wgpu::DeviceType::Other => AdapterKind::Other,
            };
            let index = seen.iter().filter(|k| **k == kind).count();
            seen.push(kind);
            let driver = [info.driver.as_str(), info.driver_info.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            out.push(AdapterInfo {
                name: info.name,
                driver,
                slot: GpuSlot::Adapter { kind, index, api },
            });
        }
    }
    Ok(out)
}

/// Devices already brought up, reused by later calls: burn refuses to
/// initialise one adapter twice.
static READY: Mutex<Vec<(GpuSlot, Device)>> = Mutex::new(Vec::new());

/// The burn device on `slot`, brought up on first use.
pub fn gpu_device(slot: GpuSlot) -> Result<Device> {
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, d)) = ready.iter().find(|(s, _)| *s == slot) {
        return Ok(d.clone());
    }
    let options = match slot {
        GpuSlot::Best => Device::wgpu_options(),
        GpuSlot::Adapter { kind, index, api } => {
            let kind = match kind {
                AdapterKind::Discrete => DeviceKind::DiscreteGpu(index),
                AdapterKind::Integrated => DeviceKind::IntegratedGpu(index),
                AdapterKind::Virtual => DeviceKind::VirtualGpu(index),
                AdapterKind::Software if index == 0 => DeviceKind::Cpu,
                AdapterKind::Software | AdapterKind::Other => {
                    return Err(ModelError::Invalid(format!(
                        "the {kind} adapter {index} cannot be addressed by burn's wgpu backend; choose another"
                    )))
                }
            };
            let api = match api {
                GraphicsApi::Vulkan => WgpuBackend::Vulkan,
                GraphicsApi::Metal => WgpuBackend::Metal,
                GraphicsApi::Dx12 => WgpuBackend::Dx12,
                GraphicsApi::OpenGl => WgpuBackend::Gl,
                GraphicsApi::WebGpu => WgpuBackend::WebGpu,
            };
            Device::wgpu_options().device_kind(kind).graphics_api(api)
        }
    };
    let device = options.init().map_err(|e| {
        let found = adapters()
            .map(|a| {
                if a.is_empty() {
                    "none (is a Vulkan driver installed?)".to_string()
                } else {
                    a.iter()
                        .map(|a| a.name.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            })
            .unwrap_or_else(|e| e.to_string());
        ModelError::Invalid(format!(
            "no usable GPU for {}: {e} (adapters: {found}); use --device cpu",
            describe(slot)
        ))
    })?;
    ready.push((slot, device.clone()));
    Ok(device)
}

fn describe(slot: GpuSlot) -> String {
    match slot {
        GpuSlot::Best => "--device wgpu".into(),
        GpuSlot::Adapter { kind, index, api } => format!("the {kind} {index} on {api:?}"),
    }
}
