//! The batch-matrix-product convolution (`models::layers::conv_forward` on small feature maps and
//! 1x1 kernels) computes burn's convolution: outputs, input gradients and weight gradients agree
//! within 1e-4 relative to the largest value.

use burn::prelude::*;
use dermrobust::models::layers::{batch_gemm_conv, conv_forward};

fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    device.seed(seed);
    Tensor::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), device)
}

fn close(what: &str, a: Tensor<4>, b: Tensor<4>) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let scale = a.clone().abs().max().into_scalar::<f32>().max(1e-6);
    let diff = (a - b).abs().max().into_scalar::<f32>();
    assert!(diff <= 1e-4 * scale, "{what}: differs by {diff} (largest value {scale})");
}

#[test]
fn batch_gemm_convolution_matches_burns_forward_and_backward() {
    let ad = Device::flex().autodiff();
    // (batch, c_in, c_out, side, kernel, stride, padding, bias)
    let cases = [
        (3, 8, 12, 4, 3, 1, 1, false),
        (3, 8, 12, 4, 3, 2, 1, true),
        (2, 16, 8, 2, 3, 1, 1, false),
        (2, 6, 10, 8, 1, 2, 0, false),
        (2, 6, 10, 3, 1, 1, 0, true),
        (1, 4, 5, 4, 3, 2, 0, false),
    ];
    for (i, &(n, cin, cout, side, k, s, p, bias)) in cases.iter().enumerate() {
        let what = format!("case {i}: {cin}->{cout} {k}x{k}/{s} pad {p} at {side}x{side}");
        ad.seed(10 + i as u64);
        let conv = burn::nn::conv::Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([s, s])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(bias)
            .init(&ad);
        let x = random([n, cin, side, side], 20 + i as u64, &ad).require_grad();
        let dy_shape = { let o = (side + 2 * p - k) / s + 1; [n, cout, o, o] };
        let dy = random(dy_shape, 30 + i as u64, &ad);

        let want = conv.forward(x.clone());
        let got = conv_forward(&conv, x.clone());
        close(&format!("{what}, output"), want.clone(), got.clone());
        let direct = batch_gemm_conv(x.clone(), conv.weight.val(), [s, s], [p; 4]);
        let direct = match &conv.bias { Some(b) => direct + b.val().reshape([1, cout, 1, 1]), None => direct };
        close(&format!("{what}, batch_gemm_conv"), want.clone(), direct);

        let g_want = (want * dy.clone()).sum().backward();
        let g_got = (got * dy).sum().backward();
        close(&format!("{what}, input gradient"), x.grad(&g_want).unwrap(), x.grad(&g_got).unwrap());
        let w = conv.weight.val();
        close(&format!("{what}, weight gradient"), w.grad(&g_want).unwrap(), w.grad(&g_got).unwrap());
    }
}
