//! The one place that chooses where tensors live. Every model, training run and audit asks this
//! module; the command line chooses once, with `--device` ([`select`]), and the CPU is the default.
//!
//! `Device::default()` silently prefers any GPU backend compiled in; naming the device keeps CPU
//! results reproducible whatever features a build enables, and a GPU is used only when asked for.
//! The GPU device (`--device vulkan`) needs the cargo feature `vulkan`, which the default build
//! leaves out.

use std::sync::RwLock;

use anyhow::{bail, Result};
use burn::prelude::*;

/// Where forward and backward passes run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// The CPU: burn's flex backend (rayon threads, SIMD).
    #[default]
    Cpu,
    /// The first Vulkan GPU (burn's wgpu backend on Vulkan); needs a build with `--features vulkan`.
    Vulkan,
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Vulkan => "vulkan",
        })
    }
}

/// The device chosen with [`select`]; `None`: the CPU.
static CHOSEN: RwLock<Option<(DeviceChoice, Device)>> = RwLock::new(None);

/// The device `choice` names, or a clear error when this build or this machine has none.
pub fn device_for(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::flex()),
        DeviceChoice::Vulkan => vulkan(),
    }
}

/// Use `choice` for every model, training run and audit from now on.
pub fn select(choice: DeviceChoice) -> Result<()> {
    let device = device_for(choice)?;
    *CHOSEN.write().unwrap_or_else(|p| p.into_inner()) = Some((choice, device));
    Ok(())
}

/// The device chosen with [`select`] (the CPU unless another was selected).
pub fn chosen() -> DeviceChoice {
    CHOSEN.read().unwrap_or_else(|p| p.into_inner()).as_ref().map_or(DeviceChoice::Cpu, |(c, _)| *c)
}

/// The device of inference: forward passes of evaluation and audits.
pub fn inference_device() -> Device {
    CHOSEN.read().unwrap_or_else(|p| p.into_inner()).as_ref().map_or_else(Device::flex, |(_, d)| d.clone())
}

/// The device of training and of gradients (the inference device with autodiff).
pub fn autodiff_device() -> Device {
    inference_device().autodiff()
}

#[cfg(not(feature = "vulkan"))]
fn vulkan() -> Result<Device> {
    bail!(
        "--device vulkan: this dermrobust was built without GPU support. Build it with \
         `cargo build --release --features vulkan` (README, section GPU), or use --device cpu"
    )
}

#[cfg(feature = "vulkan")]
fn vulkan() -> Result<Device> {
    use burn::tensor::{DeviceKind, DeviceType};
    const NEEDS: &str = "a GPU with a Vulkan driver and the run-time libraries libvulkan1, libglx0, libglvnd0 and libegl1";
    // Listing the adapters first: burn panics deep inside on a device that cannot be opened. A
    // panic while listing (no loader) is reported the same way.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let listed = std::panic::catch_unwind(|| Device::enumerate(DeviceType::Vulkan).into_iter().count());
    std::panic::set_hook(previous);
    match listed {
        Ok(0) => bail!("--device vulkan: no Vulkan device found on this machine (it needs {NEEDS}); use --device cpu"),
        Err(_) => bail!("--device vulkan: Vulkan could not be initialised on this machine (it needs {NEEDS}); use --device cpu"),
        Ok(_) => Ok(Device::vulkan(DeviceKind::DefaultDevice)),
    }
}

/// Keep freed memory in the process instead of returning it to the system. A training step
/// allocates and frees activation-sized buffers (megabytes each) hundreds of times; glibc serves
/// such sizes with fresh `mmap`s, so every step paid page faults and the kernel's zeroing of each
/// page (8% of a ResNet-18 step at 64 px). With the thresholds raised, they are reused: training
/// 185-193 -> 203-220 images/s on this CPU (BENCHMARKS.md, issue 14). Call once, before any
/// allocation of that size; other C libraries and systems are left as they are.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
