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
            Compute::Cpu => Ok(Device::flex()),
            Compute::Wgpu => wgpu_device(),
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
