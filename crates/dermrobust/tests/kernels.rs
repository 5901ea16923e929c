//! The fused training-mode batch norm (`models::kernels::batch_norm`) gives burn's `BatchNorm`:
//! outputs, running statistics, and the gradients of the input, γ and β, within 1e-4 relative to
//! the largest value plus 1e-5; inference mode and other dtypes are left to burn.

use burn::module::{Module, Param};
use burn::nn::BatchNormConfig;
use burn::prelude::*;
use dermrobust::models::kernels::batch_norm::batch_norm;

fn random<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    device.seed(seed);
    Tensor::random(shape, burn::tensor::Distribution::Normal(0.5, 2.0), device)
}

fn close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let scale = a.clone().abs().max().into_scalar::<f32>().max(1e-6);
    let diff = (a - b).abs().max().into_scalar::<f32>();
    // Plus 1e-5 absolute: with two samples per channel the input gradient cancels to about 1e-3,
    // where float32 rounding in burn's many-step composition is about 2e-6.
    assert!(diff <= 1e-4 * scale + 1e-5, "{what}: differs by {diff} (largest value {scale})");
}

#[test]
fn fused_batch_norm_matches_burns_in_training() {
    let ad = Device::flex().autodiff();
    for (i, shape) in [[4, 3, 5, 5], [2, 8, 1, 1], [3, 6, 7, 4], [1, 2, 3, 3]].into_iter().enumerate() {
        let what = format!("input {shape:?}");
        let c = shape[1];
        let mut ours = BatchNormConfig::new(c).with_momentum(0.2).init(&ad);
        ours.gamma = Param::from_tensor(random([c], 100 + i as u64, &ad));
        ours.beta = Param::from_tensor(random([c], 200 + i as u64, &ad));
        let theirs = ours.clone();
        let x = random(shape, 300 + i as u64, &ad).require_grad();
        let dy = random(shape, 400 + i as u64, &ad);
        // Two steps, so that the running statistics are updated from non-initial values.
        for step in 0..2 {
            let (want, got) = (theirs.forward(x.clone()), batch_norm(&ours, x.clone()));
            close(&format!("{what} step {step}, output"), want.clone(), got.clone());
            close(&format!("{what} step {step}, running mean"), theirs.running_mean.value(), ours.running_mean.value());
            close(&format!("{what} step {step}, running variance"), theirs.running_var.value(), ours.running_var.value());
            let (g_want, g_got) = ((want * dy.clone()).sum().backward(), (got * dy.clone()).sum().backward());
            close(&format!("{what}, input gradient"), x.grad(&g_want).unwrap(), x.grad(&g_got).unwrap());
            close(&format!("{what}, gamma gradient"), theirs.gamma.val().grad(&g_want).unwrap(), ours.gamma.val().grad(&g_got).unwrap());
            close(&format!("{what}, beta gradient"), theirs.beta.val().grad(&g_want).unwrap(), ours.beta.val().grad(&g_got).unwrap());
        }
    }
}

#[test]
fn inference_mode_is_burns_batch_norm() {
    let device = Device::flex();
    let mut bn = BatchNormConfig::new(3).init(&device);
    bn.running_mean = burn::module::RunningState::new(Tensor::from_floats([0.1, -0.2, 0.3], &device));
    let x = random([2, 3, 4, 4], 7, &device);
    let want = bn.forward(x.clone());
    let got = batch_norm(&bn, x.clone());
    close("inference", want, got);
    // A layer left on the training device but frozen normalises with its running statistics.
    let ad = Device::flex().autodiff();
    let frozen = BatchNormConfig::new(3).init(&ad).freeze();
    let xa = Tensor::<4>::from_data(x.to_data(), &ad);
    close("frozen", frozen.forward(xa.clone()), batch_norm(&frozen, xa));
}
