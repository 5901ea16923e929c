//! Where a training step of ResNet-18 (64 px, batch 32, burn-flex) spends its time: forward with
//! the loss, backward, and the SGD update, as medians over 10 steps. With `conv_profile` it shows
//! how much of a step the convolutions are (BENCHMARKS.md, issue 14).
//!
//!     cargo run --release --example step_profile [-- BATCH RES]

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::prelude::*;
use dermrobust::models::{normalise, Arch, HeadKind, ModelConfig};
use dermrobust::training::config::LossKind;
use dermrobust::training::loss::Loss;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    dermrobust::device::keep_freed_memory();
    let mut args = std::env::args().skip(1).map(|s| s.parse::<usize>().expect("a number"));
    let batch = args.next().unwrap_or(32);
    let res = args.next().unwrap_or(64);
    let config = ModelConfig { head: HeadKind::Linear, ..ModelConfig::new(Arch::Resnet18, 7) };
    let device = Device::flex().autodiff();
    let mut model = config.init(&device);
    let mut optim = dermrobust::training::sgd::FusedSgd::new(0.9, 0.0, None).init();
    let loss_fn = Loss { kind: LossKind::CrossEntropy, class_weights: None, label_smoothing: 0.0, focal_gamma: 0.0 };
    let pixels: Vec<f32> = (0..batch * 3 * res * res).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let labels: Vec<usize> = (0..batch).map(|i| i % 7).collect();
    let (mut fwd, mut bwd, mut opt) = (vec![], vec![], vec![]);
    for it in 0..12 {
        let t = Instant::now();
        let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [batch, 3, res, res]), &device);
        let loss = loss_fn.forward(model.forward(normalise(x, &config)), &labels);
        let _: f32 = loss.clone().into_scalar();
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = Instant::now();
        model = optim.step(0.01, model, grads);
        // The update is lazy in places: force it by reading every parameter.
        let _ = model.valid().forward(Tensor::zeros([1, 3, res, res], &Device::flex())).into_data();
        let t3 = Instant::now();
        // What that one-image forward pass costs by itself, to subtract.
        let _ = model.valid().forward(Tensor::zeros([1, 3, res, res], &Device::flex())).into_data();
        let t4 = Instant::now();
        if it >= 2 {
            fwd.push((t1 - t).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
            opt.push(((t3 - t2) - (t4 - t3)).as_secs_f64() * 1e3);
        }
    }
    let (f, b, o) = (median(fwd), median(bwd), median(opt));
    println!("ResNet-18 {res} px, batch {batch}: forward+loss {f:.1} ms, backward {b:.1} ms, SGD update {o:.1} ms, step {:.1} ms = {:.0} images/s", f + b + o, batch as f64 * 1e3 / (f + b + o));
}
