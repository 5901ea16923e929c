//! The one place that chooses where tensors live. Every model, training run and audit asks this
//! module, so moving dermrobust to a GPU backend is a change of one line here.
//!
//! `Device::default()` silently prefers any GPU backend compiled in; naming the device keeps CPU
//! results reproducible whatever features a build enables.

use burn::prelude::*;

/// The device of inference: forward passes of evaluation and audits.
pub fn inference_device() -> Device {
    Device::flex()
}

/// The device of training and of gradients (the inference device with autodiff).
pub fn autodiff_device() -> Device {
    inference_device().autodiff()
}
