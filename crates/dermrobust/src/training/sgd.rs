//! SGD with momentum and weight decay whose update is one pass per parameter on the CPU
//! (`models::kernels::sgd`), as a burn `Optimizer` (issue 14).
//!
//! It is burn's `Sgd` (no Nesterov) computed in one pass instead of six: the same arithmetic, so
//! the same parameters to the bit, and the same state record (`momentum.velocity`), so runs
//! checkpointed with either resume with the other. Elsewhere than float32 burn-flex tensors it
//! runs the same arithmetic as tensor operations.

use burn::optim::{join_path, LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSink, StateSource};
use burn::prelude::*;

use crate::models::kernels::on_flex_f32;
use crate::models::kernels::sgd::{fused_sgd_step, SgdConstants};

/// The optimiser: momentum, dampening and an optional weight decay, as `SgdConfig` takes them.
#[derive(Clone, Debug)]
pub struct FusedSgd {
    momentum: f32,
    dampening: f64,
    weight_decay: Option<f32>,
}

impl FusedSgd {
    pub fn new(momentum: f32, dampening: f64, weight_decay: Option<f32>) -> Self {
        FusedSgd { momentum, dampening, weight_decay }
    }

    /// Wrapped for a whole module, as `SgdConfig::init` wraps burn's.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

/// One parameter's velocity, recorded under the names burn's `SgdState` uses.
#[derive(Clone)]
pub struct FusedSgdState<const D: usize> {
    pub velocity: Tensor<D>,
}

impl<const D: usize> RecordState for FusedSgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(&join_path(prefix, "momentum"), "velocity", self.velocity.clone().into_data());
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let data = src.take_tensor(&join_path(prefix, "momentum"), "velocity")?;
        Some(FusedSgdState { velocity: Tensor::from_data(data, device) })
    }
}

impl Optimizer for FusedSgd {
    type State<const D: usize> = FusedSgdState<D>;

    fn step<const D: usize>(&self, lr: LearningRate, tensor: Tensor<D>, grad: Tensor<D>, state: Option<Self::State<D>>) -> (Tensor<D>, Option<Self::State<D>>) {
        let velocity = state.map(|s| s.velocity);
        let constants = SgdConstants { lr, momentum: self.momentum, dampening: self.dampening, weight_decay: self.weight_decay };
        let fused = on_flex_f32(&tensor) && on_flex_f32(&grad) && velocity.as_ref().is_none_or(on_flex_f32);
        let (tensor, velocity) = if fused { fused_sgd_step(tensor, grad, velocity, &constants) } else { step_with_tensor_ops(tensor, grad, velocity, &constants) };
        (tensor, Some(FusedSgdState { velocity }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        FusedSgdState { velocity: state.velocity.to_device(device) }
    }
}

/// The same step as tensor operations (burn's `Sgd`, term for term), for other devices and dtypes.
fn step_with_tensor_ops<const D: usize>(tensor: Tensor<D>, grad: Tensor<D>, velocity: Option<Tensor<D>>, k: &SgdConstants) -> (Tensor<D>, Tensor<D>) {
    let grad = match k.weight_decay {
        Some(w) => tensor.clone().mul_scalar(w).add(grad),
        None => grad,
    };
    let velocity = match velocity {
        Some(v) => grad.mul_scalar(1.0 - k.dampening).add(v.mul_scalar(k.momentum)),
        None => grad,
    };
    (tensor - velocity.clone().mul_scalar(k.lr), velocity)
}
