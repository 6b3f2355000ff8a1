//! Choosing the compute backend at run time.
//!
//! burn 0.22 picks its backend through a runtime [`Device`]; which backends exist is decided
//! by cargo features at build time. [`DeviceChoice`] is the user-facing name (`cpu`, `wgpu`,
//! `cuda`, as the examples' `--device` flag takes it) and turns into a [`Device`] or a clear
//! error saying which feature to enable.

use std::{fmt, str::FromStr};

use burn::tensor::Device;

use crate::error::{CoreError, Result};

/// A compute backend a user can name.
///
/// ```
/// use sd_core::DeviceChoice;
///
/// let choice: DeviceChoice = "cpu".parse()?;
/// assert_eq!(choice, DeviceChoice::Cpu);
/// let device = choice.device()?; // burn's flex backend with the default features
/// # let _ = device;
/// # Ok::<(), sd_core::CoreError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// burn's `flex` backend: pure Rust, SIMD kernels, all cores through rayon. The default.
    #[default]
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12), with kernel fusion and autotuning.
    Wgpu,
    /// burn's CUDA backend, on GPU 0.
    Cuda,
}

impl DeviceChoice {
    /// Every name [`FromStr`] accepts, in the order the examples list them.
    pub const NAMES: [&'static str; 3] = ["cpu", "wgpu", "cuda"];

    /// The burn device for this choice, or [`CoreError::BackendNotCompiled`] when this build
    /// lacks the backend's cargo feature.
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Cpu => cpu_device(),
            Self::Wgpu => wgpu_device(),
            Self::Cuda => cuda_device(),
        }
    }

    /// Whether this build can make the device.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Cpu => cfg!(feature = "flex"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            _ => Err(CoreError::UnknownDevice(s.to_owned())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        })
    }
}

#[cfg(feature = "flex")]
fn cpu_device() -> Result<Device> {
    Ok(Device::flex())
}

#[cfg(not(feature = "flex"))]
fn cpu_device() -> Result<Device> {
    Err(CoreError::BackendNotCompiled {
        device: "cpu",
        feature: "flex",
    })
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device> {
    Err(CoreError::BackendNotCompiled {
        device: "wgpu",
        feature: "wgpu",
    })
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device> {
    Err(CoreError::BackendNotCompiled {
        device: "cuda",
        feature: "cuda",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_names_the_examples_document() {
        for name in DeviceChoice::NAMES {
            let choice: DeviceChoice = name.parse().expect("documented name");
            assert_eq!(choice.to_string(), name);
        }
        assert_eq!("CPU".parse::<DeviceChoice>().ok(), Some(DeviceChoice::Cpu));
        assert!(matches!(
            "tpu".parse::<DeviceChoice>(),
            Err(CoreError::UnknownDevice(name)) if name == "tpu"
        ));
    }

    #[test]
    fn a_backend_that_is_not_compiled_is_an_error_not_a_panic() {
        for choice in [DeviceChoice::Cpu, DeviceChoice::Wgpu, DeviceChoice::Cuda] {
            if !choice.is_compiled() {
                assert!(matches!(
                    choice.device(),
                    Err(CoreError::BackendNotCompiled { .. })
                ));
            }
        }
    }
}
