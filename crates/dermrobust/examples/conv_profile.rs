//! Per-layer profile of ResNet-18's convolutions at 64 px, batch 32: forward, weight gradient and
//! input gradient of each distinct convolution shape, times how often the network uses it, for
//! burn-flex's own convolution, for dermrobust's unfolded matrix products
//! (`models::kernels::gemm_conv`) and for the kernels as the models call them (Winograd F(4x4,
//! 3x3) for 3x3 stride-1 convolutions on maps of 16 outputs or more, `models::kernels::winograd`;
//! unfolded otherwise). `tools/bench/torch_conv_profile.py` measures the same on PyTorch
//! (BENCHMARKS.md).
//!
//!     cargo run --release --example conv_profile [-- BATCH]

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::module::{conv2d, conv2d_weight_backward};
use burn::tensor::ops::ConvOptions;
use dermrobust::models::kernels::gemm_conv::{forward_f32, forward_unfolded, input_grad_f32, input_grad_unfolded, weight_grad_f32, weight_grad_unfolded, ConvGeometry};

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
    dermrobust::device::keep_freed_memory();
    let batch: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let (mut burn_total, mut gemm_total, mut unfolded_total) = ([0.0; 3], [0.0; 3], [0.0; 3]);
    println!("layer | count | burn-flex forward / weight grad / input grad ms | unfolded forward / weight grad / input grad ms | kernels (Winograd for 3x3/1) forward / weight grad / input grad ms | max diff");
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
        // The kernels on plain slices: what a training step calls, without tensor wrapping.
        let (xv, wv, dyv) = (values(&x), values(&w), values(&dy));
        let g = ConvGeometry::new([batch, cin, side, side], [cout, cin, k, k], [s, s], [p; 4]);
        let unfolded = [
            median_ms(|| drop(forward_unfolded(&xv, &wv, &g))),
            median_ms(|| drop(weight_grad_unfolded(&xv, &dyv, &g))),
            median_ms(|| drop(input_grad_unfolded(&wv, &dyv, &g))),
        ];
        let gemm = [
            median_ms(|| drop(forward_f32(&xv, &wv, &g))),
            median_ms(|| drop(weight_grad_f32(&xv, &dyv, &g))),
            median_ms(|| drop(input_grad_f32(&wv, &dyv, &g))),
        ];
        let want = values(&conv2d(x.clone(), w.clone(), None, opts()));
        let diff = want.iter().zip(forward_f32(&xv, &wv, &g)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!("{name} | {count} | {fwd:.2} / {wgrad:.2} / {xgrad:.2} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {diff:.1e}", unfolded[0], unfolded[1], unfolded[2], gemm[0], gemm[1], gemm[2]);
        for (t, v) in unfolded_total.iter_mut().zip(unfolded) {
            *t += v * count as f64;
        }
        for (t, v) in burn_total.iter_mut().zip([fwd, wgrad, xgrad]) {
            *t += v * count as f64;
        }
        for (t, v) in gemm_total.iter_mut().zip(gemm) {
            *t += v * count as f64;
        }
    }
    let [f, w, x] = burn_total;
    println!("network total, burn-flex (ms per batch of {batch}): forward {f:.1}, weight grad {w:.1}, input grad {x:.1}, sum {:.1}", f + w + x);
    let [f, w, x] = unfolded_total;
    println!("network total, unfolded (ms per batch of {batch}): forward {f:.1}, weight grad {w:.1}, input grad {x:.1}, sum {:.1}", f + w + x);
    let [f, w, x] = gemm_total;
    println!("network total, kernels (ms per batch of {batch}): forward {f:.1}, weight grad {w:.1}, input grad {x:.1}, sum {:.1}", f + w + x);
}

fn values(t: &Tensor<4>) -> Vec<f32> {
    t.to_data().try_into_vec::<f32>().expect("float32")
}
