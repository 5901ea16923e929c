//! Building blocks shared by every architecture: convolution + batch norm, and the blur-pool
//! low-pass used by anti-aliased models.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};

use std::cell::RefCell;
use std::rc::Rc;

/// A replacement for every ReLU of a forward pass (see [`with_relu_hook`]). It gets each ReLU's
/// input, flattened, in the order the forward pass applies them, and returns the output.
pub type ReluHook = Rc<dyn Fn(Tensor<1>) -> Tensor<1>>;

thread_local! {
    static RELU_HOOK: RefCell<Option<ReluHook>> = const { RefCell::new(None) };
}

/// The ReLU of every architecture. Plain `max(x, 0)` unless a hook is installed on this thread
/// by [`with_relu_hook`]: explanation methods that change ReLU's backward pass (guided
/// backpropagation) install one for the duration of a forward pass.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let hook = RELU_HOOK.with(|h| h.borrow().clone());
    match hook {
        None => burn::tensor::activation::relu(x),
        Some(h) => {
            let dims = x.dims();
            let n = dims.iter().product::<usize>();
            h(x.reshape([n])).reshape(dims)
        }
    }
}

/// Run `f` with every ReLU replaced by `hook` on this thread (restored afterwards, also on panic).
pub fn with_relu_hook<R>(hook: ReluHook, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<ReluHook>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0.take();
            RELU_HOOK.with(|h| *h.borrow_mut() = old);
        }
    }
    let _restore = Restore(RELU_HOOK.with(|h| h.borrow_mut().replace(hook)));
    f()
}

/// A bias-free "same" convolution, as torchvision's ResNet and DenseNet put before a batch norm.
pub fn conv(c_in: usize, c_out: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    conv_config(c_in, c_out, kernel, stride).with_bias(false).init(device)
}

/// The same with a bias, as torchvision's `vgg16_bn` has (redundant before batch norm, kept so
/// its weights import exactly).
pub fn conv_with_bias(c_in: usize, c_out: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    conv_config(c_in, c_out, kernel, stride).with_bias(true).init(device)
}

fn conv_config(c_in: usize, c_out: usize, kernel: usize, stride: usize) -> Conv2dConfig {
    let p = kernel / 2;
    Conv2dConfig::new([c_in, c_out], [kernel, kernel]).with_stride([stride, stride]).with_padding(PaddingConfig2d::Explicit(p, p, p, p))
}

pub fn bn(channels: usize, device: &Device) -> Option<BatchNorm> {
    Some(BatchNormConfig::new(channels).init(device))
}

/// Convolution, then batch norm unless it has been folded into the convolution.
pub fn conv_bn(conv: &Conv2d, bn: &Option<BatchNorm>, x: Tensor<4>) -> Tensor<4> {
    let y = conv_forward(conv, x);
    match bn {
        Some(b) => super::kernels::batch_norm::batch_norm(b, y),
        None => y,
    }
}

/// `conv` applied to `x`. On burn-flex (float32, groups 1, dilation 1: every convolution of our
/// architectures) it runs through dermrobust's CPU kernels, forward and backward
/// ([`super::kernels::gemm_conv`]: matrix products, Winograd for 3x3 stride 1, tap by tap on tiny
/// maps; about 5x faster than burn-flex's own on this CPU, BENCHMARKS.md, issue 14); elsewhere
/// (other devices) burn's.
pub fn conv_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else { return conv.forward(x) };
    if conv.groups != 1 || conv.dilation != [1, 1] || !super::kernels::gemm_conv::supported(&x) {
        return conv.forward(x);
    }
    let y = super::kernels::gemm_conv::gemm_conv2d(x, conv.weight.val(), conv.stride, [top, left, bottom, right]);
    match &conv.bias {
        Some(b) => {
            let o = b.dims()[0];
            y + b.val().reshape([1, o, 1, 1])
        }
        None => y,
    }
}

/// Fold inference-mode batch norm into the preceding convolution: `w' = w * g / sqrt(v + eps)`,
/// `b' = beta + (b - mean) * g / sqrt(v + eps)`. The result computes the same function with
/// one operation fewer per layer.
pub fn fold(conv: &mut Conv2d, bn: &mut Option<BatchNorm>) {
    let Some(b) = bn.take() else { return };
    let scale = b.gamma.val() / (b.running_var.value() + b.epsilon).sqrt();
    let w = conv.weight.val();
    let [o, _, _, _] = w.dims();
    let bias = match &conv.bias {
        Some(old) => old.val(),
        None => Tensor::zeros([o], &w.device()),
    };
    let fused_w = w * scale.clone().reshape([o, 1, 1, 1]);
    let fused_b = b.beta.val() + (bias - b.running_mean.value()) * scale;
    conv.weight = conv.weight.clone().map(|_| fused_w);
    conv.bias = Some(Param::from_tensor(fused_b));
}

/// Anti-aliasing low-pass before subsampling (Zhang 2019, "Making convolutional networks
/// shift-invariant again"): a fixed binomial filter applied per channel with reflection padding,
/// then subsampling by `stride`. The kernel is a constant, not a parameter.
#[derive(Module, Debug)]
pub struct BlurPool {
    pub kernel: Tensor<4>,
    pub channels: usize,
    pub stride: usize,
}

impl BlurPool {
    /// Binomial filter of size 3 (`[1, 2, 1]`) or 4 (`[1, 3, 3, 1]`, the paper's default).
    pub fn new(channels: usize, stride: usize, filter_size: usize, device: &Device) -> Self {
        let taps: Vec<f32> = match filter_size {
            3 => vec![1.0, 2.0, 1.0],
            _ => vec![1.0, 3.0, 3.0, 1.0],
        };
        let n = taps.len();
        let total: f32 = taps.iter().sum::<f32>().powi(2);
        let mut k = Vec::with_capacity(channels * n * n);
        for _ in 0..channels {
            for a in &taps {
                for b in &taps {
                    k.push(a * b / total);
                }
            }
        }
        BlurPool { kernel: Tensor::from_data(TensorData::new(k, [channels, 1, n, n]), device), channels, stride }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let n = self.kernel.dims()[2];
        let (before, after) = ((n - 1) / 2, n / 2);
        let [_, _, h, w] = x.dims();
        // Reflection needs at least 2 pixels; tiny maps fall back to edge padding.
        let mode = if h > after && w > after { PadMode::Reflect } else { PadMode::Edge };
        let x = x.pad((before, after, before, after), mode);
        let opts = ConvOptions::new([self.stride, self.stride], [0, 0], [1, 1], self.channels);
        conv2d(x, self.kernel.clone(), None, opts)
    }
}
