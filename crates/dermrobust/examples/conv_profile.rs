//! Per-layer profile of ResNet-18's convolutions at 64 px, batch 32, on burn-flex: forward, weight
//! gradient and input gradient of each distinct convolution shape, times how often the network
//! uses it. `tools/bench/torch_conv_profile.py` measures the same on PyTorch (BENCHMARKS.md).
//!
//!     cargo run --release --example conv_profile [-- BATCH]

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::module::{conv2d, conv2d_weight_backward};
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::s;

/// The same convolution as one matrix product over the whole batch: the k*k shifted (strided)
/// views of the padded input side by side (im2col by slicing), times the weight matrix.
fn gemm_conv(x: Tensor<4>, w: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    let [n, c, h, _] = x.dims();
    let [o, _, k, _] = w.dims();
    let out = (h + 2 * pad - k) / stride + 1;
    let xp = if pad > 0 { x.pad((pad, pad, pad, pad), PadMode::Constant(0.0)) } else { x };
    let span = (out - 1) * stride + 1;
    let st = stride as isize;
    let mut views = Vec::with_capacity(k * k);
    for i in 0..k {
        for j in 0..k {
            views.push(xp.clone().slice(s![.., .., i..i + span; st, j..j + span; st]));
        }
    }
    let cols = Tensor::cat(views, 1).permute([0, 2, 3, 1]).reshape([n * out * out, k * k * c]);
    let wm = w.permute([0, 2, 3, 1]).reshape([o, k * k * c]).transpose();
    cols.matmul(wm).reshape([n, out, out, o]).permute([0, 3, 1, 2])
}

/// (name, count in the network, in channels, out channels, input side, kernel, stride, padding)
const LAYERS: [(&str, usize, usize, usize, usize, usize, usize, usize); 11] = [
    ("stem 7x7/2 3-64 @64", 1, 3, 64, 64, 7, 2, 3),
    ("3x3 64-64 @16", 4, 64, 64, 16, 3, 1, 1),
    ("3x3/2 64-128 @16", 1, 64, 128, 16, 3, 2, 1),
    ("3x3 128-128 @8", 3, 128, 128, 8, 3, 1, 1),
    ("3x3/2 128-256 @8", 1, 128, 256, 8, 3, 2, 1),
    ("3x3 256-256 @4", 3, 256, 256, 4, 3, 1, 1),
    ("3x3/2 256-512 @4", 1, 256, 512, 4, 3, 2, 1),
    ("3x3 512-512 @2", 3, 512, 512, 2, 3, 1, 1),
    ("1x1/2 64-128 @16", 1, 64, 128, 16, 1, 2, 0),
    ("1x1/2 128-256 @8", 1, 128, 256, 8, 1, 2, 0),
    ("1x1/2 256-512 @4", 1, 256, 512, 4, 1, 2, 0),
];

fn median_ms(mut f: impl FnMut()) -> f64 {
    for _ in 0..2 {
        f();
    }
    let mut t: Vec<f64> = (0..7)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), device)
}

fn main() {
    let batch: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let (mut tf, mut tw, mut tx) = (0.0, 0.0, 0.0);
    let (mut conv_both_total, mut gemm_fwd_total, mut gemm_both_total) = (0.0, 0.0, 0.0);
    println!("layer | count | forward ms | weight grad ms | input grad ms (fwd+bwd via autodiff minus the two)");
    for (name, count, cin, cout, side, k, s, p) in LAYERS {
        let opts = || ConvOptions::new([s, s], [p, p], [1, 1], 1);
        let x = random([batch, cin, side, side], &device);
        let w = random([cout, cin, k, k], &device);
        let out = (side + 2 * p - k) / s + 1;
        let dy = random([batch, cout, out, out], &device);
        let fwd = median_ms(|| {
            let _ = conv2d(x.clone(), w.clone(), None, opts()).into_data();
        });
        let wgrad = median_ms(|| {
            let _ = conv2d_weight_backward(x.clone(), w.clone(), dy.clone(), opts()).into_data();
        });
        let xa = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
        let wa = Tensor::<4>::from_data(w.to_data(), &ad).require_grad();
        let dya = Tensor::<4>::from_data(dy.to_data(), &ad);
        let both = median_ms(|| {
            let y = conv2d(xa.clone(), wa.clone(), None, opts());
            let grads = (y * dya.clone()).sum().backward();
            let _ = xa.grad(&grads).map(|g| g.into_data());
            let _ = wa.grad(&grads).map(|g| g.into_data());
        });
        let xgrad = (both - fwd - wgrad).max(0.0);
        let gfwd = median_ms(|| {
            let _ = gemm_conv(x.clone(), w.clone(), s, p).into_data();
        });
        let gboth = median_ms(|| {
            let y = gemm_conv(xa.clone(), wa.clone(), s, p);
            let grads = (y * dya.clone()).sum().backward();
            let _ = xa.grad(&grads).map(|g| g.into_data());
            let _ = wa.grad(&grads).map(|g| g.into_data());
        });
        let diff = (conv2d(x.clone(), w.clone(), None, opts()) - gemm_conv(x.clone(), w.clone(), s, p)).abs().max().into_scalar::<f32>();
        println!("{name} | {count} | {fwd:.2} | {wgrad:.2} | {xgrad:.2} | batch-gemm: forward {gfwd:.2}, forward+backward {gboth:.2} (conv2d {both:.2}); max diff {diff:.1e}");
        conv_both_total += both * count as f64;
        gemm_fwd_total += gfwd * count as f64;
        gemm_both_total += gboth * count as f64;
        tf += fwd * count as f64;
        tw += wgrad * count as f64;
        tx += xgrad * count as f64;
    }
    println!("network total (ms per batch of {batch}) | | {tf:.1} | {tw:.1} | {tx:.1}");
    println!("network total, forward+backward: conv2d {conv_both_total:.1} ms; batch-gemm forward {gemm_fwd_total:.1} ms, forward+backward {gemm_both_total:.1} ms");
}
