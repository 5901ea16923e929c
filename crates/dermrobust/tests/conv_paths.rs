//! The batch-wide matrix-product convolution (`models::kernels::gemm_conv`, used by
//! `models::layers::conv_forward` on burn-flex) computes burn's convolution: outputs, input
//! gradients and weight gradients agree within 1e-4 relative to the largest value, over the shapes
//! our architectures use (stem 7x7/2, 3x3 with and without stride, 1x1 shortcuts, maps down to
//! 1x1) and asymmetric padding.

use burn::prelude::*;
use dermrobust::models::kernels::gemm_conv::{gemm_conv2d, gemm_conv2d_grads, supported};
use dermrobust::models::layers::conv_forward;

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
        (2, 3, 8, 20, 7, 2, 3, false),
        (2, 8, 8, 16, 3, 1, 1, true),
        (3, 5, 7, 11, 3, 2, 1, false),
        (2, 4, 6, 1, 3, 1, 1, false),
        // Several images per thread on the per-image path (scratch buffers reused across images).
        (7, 3, 4, 8, 3, 1, 1, false),
        (5, 4, 6, 20, 3, 2, 1, true),
        // 1x1 stride-1 convolutions (DenseNet's bottlenecks) on maps of 64 positions or more.
        (3, 6, 10, 8, 1, 1, 0, false),
        (2, 5, 7, 12, 1, 1, 0, true),
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
        assert!(supported(&x));
        let dy_shape = { let o = (side + 2 * p - k) / s + 1; [n, cout, o, o] };
        let dy = random(dy_shape, 30 + i as u64, &ad);

        let want = conv.forward(x.clone());
        let got = conv_forward(&conv, x.clone());
        close(&format!("{what}, output"), want.clone(), got.clone());

        let g_want = (want * dy.clone()).sum().backward();
        let g_got = (got * dy.clone()).sum().backward();
        let w = conv.weight.val();
        close(&format!("{what}, input gradient"), x.grad(&g_want).unwrap(), x.grad(&g_got).unwrap());
        close(&format!("{what}, weight gradient"), w.grad(&g_want).unwrap(), w.grad(&g_got).unwrap());

        // The kernels called directly, without autodiff, give the same gradients.
        let (dx, dw) = gemm_conv2d_grads(x.clone().inner(), w.clone().inner(), dy.inner(), [s, s], [p; 4]);
        close(&format!("{what}, direct input gradient"), x.grad(&g_want).unwrap(), dx);
        close(&format!("{what}, direct weight gradient"), w.grad(&g_want).unwrap(), dw);
    }
}

/// Padding that differs between the sides (as the anti-aliased and same-padded layers use) against
/// burn's convolution on an explicitly padded input.
#[test]
fn asymmetric_padding_matches_padding_first() {
    let ad = Device::flex().autodiff();
    for (i, padding) in [[0, 1, 1, 0], [2, 0, 1, 1], [1, 2, 0, 0]].into_iter().enumerate() {
        let [top, left, bottom, right] = padding;
        let x = random([2, 4, 9, 7], 40 + i as u64, &ad).require_grad();
        let w = random([6, 4, 3, 3], 50 + i as u64, &ad).require_grad();
        let padded = x.clone().pad((left, right, top, bottom), burn::tensor::ops::PadMode::Constant(0.0));
        let want = burn::tensor::module::conv2d(padded, w.clone(), None, burn::tensor::ops::ConvOptions::new([2, 1], [0, 0], [1, 1], 1));
        let got = gemm_conv2d(x.clone(), w.clone(), [2, 1], padding);
        close(&format!("padding {padding:?}, output"), want.clone(), got.clone());
        let dy = random(want.dims(), 60 + i as u64, &ad);
        let g_want = (want * dy.clone()).sum().backward();
        let g_got = (got * dy).sum().backward();
        close(&format!("padding {padding:?}, input gradient"), x.grad(&g_want).unwrap(), x.grad(&g_got).unwrap());
        close(&format!("padding {padding:?}, weight gradient"), w.grad(&g_want).unwrap(), w.grad(&g_got).unwrap());
    }
}

/// A tensor on a device without the extension is not offered to it.
#[test]
fn only_float32_flex_tensors_take_the_batch_wide_path() {
    let device = Device::flex();
    let x = Tensor::<4>::zeros([1, 1, 2, 2], &device);
    assert!(supported(&x));
    assert!(!supported(&x.cast(burn::tensor::DType::F64)));
}

/// Winograd F(4x4, 3x3) (`models::kernels::winograd`, which the 3x3 stride-1 convolutions take)
/// against the unfolded products on the same data: odd and even map sizes (partial tiles at the
/// right and bottom edges), non-square maps, padding 0, 1, 2 and asymmetric, several chunks of
/// images, and more channels than one block of lanes. Relative to the largest value, within 1e-5.
#[test]
fn winograd_matches_the_unfolded_convolution() {
    use dermrobust::models::kernels::gemm_conv::ConvGeometry;
    use dermrobust::models::kernels::winograd;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // (batch, c_in, c_out, h, w, padding [top, left, bottom, right])
    let cases = [
        (2, 3, 4, 4, 4, [1, 1, 1, 1]),
        (3, 5, 7, 7, 9, [1, 1, 1, 1]),
        (2, 9, 11, 7, 6, [0, 0, 0, 0]),
        (2, 4, 3, 8, 8, [2, 2, 2, 2]),
        (2, 4, 6, 9, 7, [0, 1, 2, 1]),
        (2, 6, 5, 5, 10, [2, 0, 1, 1]),
        (9, 17, 12, 16, 16, [1, 1, 1, 1]),
        (70, 8, 8, 4, 4, [1, 1, 1, 1]),
        // DenseNet-121 at width 0.125: a 16-channel bottleneck to 4 new channels.
        (4, 16, 4, 16, 16, [1, 1, 1, 1]),
        (4, 16, 4, 8, 8, [1, 1, 1, 1]),
    ];
    for (n, c, o, h, w, padding) in cases {
        let g = ConvGeometry::new([n, c, h, w], [o, c, 3, 3], [1, 1], padding);
        assert!(winograd::applies(&g), "{g:?} should take the Winograd path");
        matches_unfolded(&g, &mut rng, [winograd::forward, winograd::input_grad, winograd::weight_grad]);
    }
}

/// 2x2 outputs and strided or non-3x3 convolutions stay on the unfolded path.
#[test]
fn winograd_is_chosen_only_where_it_is_faster() {
    use dermrobust::models::kernels::gemm_conv::ConvGeometry;
    use dermrobust::models::kernels::winograd::applies;
    assert!(applies(&ConvGeometry::new([1, 8, 4, 4], [8, 8, 3, 3], [1, 1], [1; 4])));
    assert!(!applies(&ConvGeometry::new([1, 8, 2, 2], [8, 8, 3, 3], [1, 1], [1; 4])));
    assert!(!applies(&ConvGeometry::new([1, 8, 8, 8], [8, 8, 3, 3], [2, 2], [1; 4])));
    assert!(!applies(&ConvGeometry::new([1, 8, 8, 8], [8, 8, 1, 1], [1, 1], [0; 4])));
}

/// The tap-by-tap products for tiny maps (`models::kernels::tiny_maps`, which 3x3 convolutions on
/// maps of up to 4 outputs take) against the unfolded ones on the same data, within 1e-5 of the
/// largest value: 2x2 and 1x1 maps, padding 1 and asymmetric, stride 2, non-square.
#[test]
fn tap_by_tap_products_match_the_unfolded_convolution() {
    use dermrobust::models::kernels::gemm_conv::ConvGeometry;
    use dermrobust::models::kernels::tiny_maps;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    // (batch, c_in, c_out, h, w, kernel, stride, padding [top, left, bottom, right])
    let cases = [
        (5, 12, 9, 2, 2, 3, 1, [1, 1, 1, 1]),
        (3, 7, 5, 1, 1, 3, 1, [1, 1, 1, 1]),
        (4, 6, 8, 2, 1, 3, 1, [1, 1, 1, 1]),
        (2, 5, 4, 3, 3, 3, 2, [1, 1, 1, 1]),
        (3, 4, 6, 2, 2, 3, 1, [0, 1, 2, 1]),
        (2, 3, 5, 4, 4, 5, 2, [2, 2, 2, 2]),
    ];
    for (n, c, o, h, w, k, s, padding) in cases {
        let g = ConvGeometry::new([n, c, h, w], [o, c, k, k], [s, s], padding);
        matches_unfolded(&g, &mut rng, [tiny_maps::forward, tiny_maps::input_grad, tiny_maps::weight_grad]);
    }
    // Where it is taken: mostly-padding taps on tiny maps only.
    assert!(tiny_maps::applies(&ConvGeometry::new([1, 8, 2, 2], [8, 8, 3, 3], [1, 1], [1; 4])));
    assert!(tiny_maps::applies(&ConvGeometry::new([1, 8, 1, 1], [8, 8, 3, 3], [1, 1], [1; 4])));
    assert!(!tiny_maps::applies(&ConvGeometry::new([1, 8, 4, 4], [8, 8, 3, 3], [2, 2], [1; 4])));
    assert!(!tiny_maps::applies(&ConvGeometry::new([1, 8, 4, 4], [8, 8, 1, 1], [2, 2], [0; 4])));
    assert!(!tiny_maps::applies(&ConvGeometry::new([1, 8, 4, 4], [8, 8, 3, 3], [1, 1], [1; 4])));
}

/// `got` equals `want` within `tolerance` of `want`'s largest magnitude.
fn close_values(what: &str, want: &[f32], got: &[f32], tolerance: f32) {
    assert_eq!(want.len(), got.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = want.iter().zip(got).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= tolerance * scale, "{what}: differs by {diff} (largest value {scale})");
}

/// A kernel's forward pass, input gradient and weight gradient (each taking its two operands and
/// the geometry) against the unfolded products on random data of geometry `g`, within 1e-5 of
/// the largest value.
fn matches_unfolded(g: &dermrobust::models::kernels::gemm_conv::ConvGeometry, rng: &mut rand_chacha::ChaCha8Rng, kernel: [Pass; 3]) {
    use dermrobust::models::kernels::gemm_conv::{forward_unfolded, input_grad_unfolded, weight_grad_unfolded};
    use rand::Rng;
    let mut values = |len: usize| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>();
    let x = values(g.n * g.c * g.h * g.w);
    let weight = values(g.o * g.c * g.kh * g.kw);
    let dy = values(g.n * g.o * g.out_h() * g.out_w());
    let [forward, input_grad, weight_grad] = kernel;
    let pairs = [
        ("output", forward_unfolded(&x, &weight, g), forward(&x, &weight, g)),
        ("input gradient", input_grad_unfolded(&weight, &dy, g), input_grad(&weight, &dy, g)),
        ("weight gradient", weight_grad_unfolded(&x, &dy, g), weight_grad(&x, &dy, g)),
    ];
    for (what, want, got) in pairs {
        close_values(&format!("{what} of {g:?}"), &want, &got, 1e-5);
    }
}

/// One pass of a convolution kernel: two operands and the geometry.
type Pass = fn(&[f32], &[f32], &dermrobust::models::kernels::gemm_conv::ConvGeometry) -> Vec<f32>;
