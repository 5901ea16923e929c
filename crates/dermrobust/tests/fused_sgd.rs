//! The one-pass SGD update (`training::sgd::FusedSgd`, the trainer's SGD) is burn's `Sgd`: the
//! same parameters to the bit after several steps, with and without weight decay and dampening,
//! on burn-flex float32 (the fused kernel) and float64 (tensor operations); and its optimiser
//! record resumes in burn's `Sgd` and back.

mod common;

use burn::optim::momentum::MomentumConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use dermrobust::models::{Arch, HeadKind, ModelConfig};
use dermrobust::training::sgd::FusedSgd;

fn model(dtype: burn::tensor::DType) -> dermrobust::models::Classifier {
    let ad = Device::flex().autodiff();
    let config = ModelConfig { width: 0.125, head: HeadKind::Linear, dropout: 0.0, ..ModelConfig::new(Arch::Resnet18, 3) };
    let m = config.init(&ad).map(&mut common::Reinit::new(3));
    if dtype == burn::tensor::DType::F64 {
        m.map(&mut common::ToF64)
    } else {
        m
    }
}

/// Gradients of a fixed loss of `m` on fixed images (the same for both optimisers).
fn grads(m: &dermrobust::models::Classifier, dtype: burn::tensor::DType, step: usize) -> GradientsParams {
    let ad = Device::flex().autodiff();
    let pixels: Vec<f32> = (0..2 * 3 * 32 * 32).map(|i| (((i + 7 * step) * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [2, 3, 32, 32]), &ad).cast(dtype);
    let loss = m.forward(x).powf_scalar(2.0).mean();
    GradientsParams::from_grads(loss.backward(), m)
}

/// Every parameter of `a` and `b`, bit for bit.
fn assert_same_bits(what: &str, a: &dermrobust::models::Classifier, b: &dermrobust::models::Classifier) {
    let (pa, pb) = (common::float_values(a), common::float_values(b));
    assert_eq!(pa.len(), pb.len());
    for (i, (x, y)) in pa.iter().zip(&pb).enumerate() {
        assert_eq!(x.len(), y.len(), "{what}: parameter {i} sizes");
        let differing = x.iter().zip(y).filter(|(u, v)| u.to_bits() != v.to_bits()).count();
        assert_eq!(differing, 0, "{what}: parameter {i} differs in {differing} of {} values", x.len());
    }
}

fn burn_sgd(momentum: f64, dampening: f64, weight_decay: Option<f32>) -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(momentum).with_dampening(dampening)))
        .with_weight_decay(weight_decay.map(WeightDecayConfig::new))
        .init()
}

#[test]
fn fused_sgd_gives_burns_parameters_to_the_bit() {
    for dtype in [burn::tensor::DType::F32, burn::tensor::DType::F64] {
        for (momentum, dampening, weight_decay) in [(0.9, 0.0, Some(5e-4f32)), (0.9, 0.0, None), (0.8, 0.1, Some(1e-3))] {
            let what = format!("{dtype:?}, momentum {momentum}, dampening {dampening}, weight decay {weight_decay:?}");
            let (mut ours, mut theirs) = (model(dtype), model(dtype));
            let mut fused = FusedSgd::new(momentum as f32, dampening, weight_decay).init();
            let mut reference = burn_sgd(momentum, dampening, weight_decay);
            for step in 0..3 {
                let (g_ours, g_theirs) = (grads(&ours, dtype, step), grads(&theirs, dtype, step));
                ours = fused.step(0.05, ours, g_ours);
                theirs = reference.step(0.05, theirs, g_theirs);
                assert_same_bits(&format!("{what}, step {step}"), &ours, &theirs);
            }
        }
    }
}

#[test]
fn fused_sgd_state_resumes_in_burns_sgd_and_back() {
    let dtype = burn::tensor::DType::F32;
    let (momentum, weight_decay) = (0.9, Some(5e-4f32));
    let (mut m, mut fused) = (model(dtype), FusedSgd::new(momentum as f32, 0.0, weight_decay).init());
    for step in 0..2 {
        let g = grads(&m, dtype, step);
        m = fused.step(0.05, m, g);
    }
    // Our record in burn's optimiser, and burn's record back in ours: one more step each, from
    // the same model and gradients, gives the same parameters as ours continuing.
    let mut burn_resumed = burn_sgd(momentum, 0.0, weight_decay).load_record(fused.to_record());
    let (a, b) = (burn_resumed.step(0.05, m.clone(), grads(&m, dtype, 2)), fused.step(0.05, m.clone(), grads(&m, dtype, 2)));
    assert_same_bits("burn's Sgd resumed from FusedSgd's record", &a, &b);
    let mut ours_resumed = FusedSgd::new(momentum as f32, 0.0, weight_decay).init().load_record(burn_resumed.to_record());
    let (c, d) = (ours_resumed.step(0.05, a.clone(), grads(&a, dtype, 3)), burn_resumed.step(0.05, a.clone(), grads(&a, dtype, 3)));
    assert_same_bits("FusedSgd resumed from burn's record", &c, &d);
}
