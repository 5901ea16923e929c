//! CPU kernels for burn-flex that burn 0.22 lacks or runs slowly, as backend extensions with
//! handwritten backward passes (issue 14, BENCHMARKS.md): convolution as batch-wide matrix
//! products (3x3 stride-1 ones by Winograd's F(4x4, 3x3)), training-mode batch norm in fused
//! passes, and the SGD update in one pass. Each applies to float32 tensors on burn-flex only; the model layers fall back to
//! burn's operations elsewhere (other devices), and `tests/kernels.rs` and `tests/conv_paths.rs`
//! check them against burn's.

pub mod batch_norm;
pub mod gemm_conv;
pub mod sgd;
pub mod tiny_maps;
pub mod winograd;

use burn::backend::flex::FlexTensor;
use burn::backend::DispatchDevice;
use burn::prelude::*;
use burn::tensor::DType;

/// Whether `x` is float32 on burn-flex (with or without autodiff), where these kernels apply.
pub fn on_flex_f32<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && matches!(x.device().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// A contiguous float32 view of a flex tensor's values (a copy only when it is not contiguous).
/// The kernels are offered float32 tensors only ([`on_flex_f32`]), so another dtype is a bug.
fn f32_values(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "dermrobust's CPU kernels take float32 only (on_flex_f32 is checked first)");
    t.to_contiguous()
}

/// A flex tensor of `values` with `shape`.
fn flex_tensor(values: Vec<f32>, shape: impl Into<Vec<usize>>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}
