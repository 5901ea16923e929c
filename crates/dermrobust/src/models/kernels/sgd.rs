//! The SGD update with momentum and weight decay in one pass over each parameter, as a burn
//! backend extension for burn-flex (issue 14).
//!
//! Why: burn's `Sgd` composes the update from tensor operations (weight decay, two scalings and an
//! addition for the velocity, one scaling and a subtraction for the parameter), each a pass over
//! all 11 million parameters of a ResNet-18 with a new tensor; this reads the parameter, its
//! gradient and its velocity once and writes the two results. The arithmetic is burn's, term for
//! term and in its order, so the results are the same to the bit (`tests/fused_sgd.rs`).

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Flex, TensorMetadata};
use burn::prelude::*;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{f32_values, flex_tensor};

/// The update's constants, as burn's `Sgd` holds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConstants {
    pub lr: f64,
    pub momentum: f32,
    pub dampening: f64,
    pub weight_decay: Option<f32>,
}

/// Values per task: large enough that scheduling costs nothing, small enough to share out.
const CHUNK: usize = 1 << 15;

/// One step on float32 slices: with `g' = w·p + g` (weight decay `w`, when set), the velocity
/// `v' = g'` on the first step and `(1 - d)·g' + m·v` after it, and the parameter `p - lr·v'`.
/// Returns `(p', v')`.
pub fn step_f32(param: &[f32], grad: &[f32], velocity: Option<&[f32]>, k: &SgdConstants) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(param.len(), grad.len(), "SGD step: parameter and gradient differ in size");
    if let Some(v) = velocity {
        assert_eq!(param.len(), v.len(), "SGD step: parameter and velocity differ in size");
    }
    // burn converts each scalar to the element type before multiplying: so do we.
    let (lr, keep, momentum) = (k.lr as f32, (1.0 - k.dampening) as f32, k.momentum);
    // The outputs are written once, without zeroing them first (a pass as long as the update).
    let n = param.len();
    let (mut new_param, mut new_velocity) = (Vec::<f32>::with_capacity(n), Vec::<f32>::with_capacity(n));
    let (p_out, v_out) = (&mut new_param.spare_capacity_mut()[..n], &mut new_velocity.spare_capacity_mut()[..n]);
    p_out.par_chunks_mut(CHUNK).zip(v_out.par_chunks_mut(CHUNK)).enumerate().for_each(|(i, (p_out, v_out))| {
        let range = i * CHUNK..i * CHUNK + p_out.len();
        let (p, g) = (&param[range.clone()], &grad[range.clone()]);
        let v = velocity.map(|v| &v[range]);
        match k.weight_decay {
            Some(w) => update::<true>(p, g, v, w, keep, momentum, lr, p_out, v_out),
            None => update::<false>(p, g, v, 0.0, keep, momentum, lr, p_out, v_out),
        }
    });
    // SAFETY: the loop above wrote every one of the first `n` values of both.
    unsafe {
        new_param.set_len(n);
        new_velocity.set_len(n);
    }
    (new_param, new_velocity)
}

/// One chunk of [`step_f32`]: with weight decay `w` when `DECAY` (burn's `p·w + g` first), with
/// the previous velocity `v` when given. One straight loop per case, so that each vectorises.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn update<const DECAY: bool>(p: &[f32], g: &[f32], v: Option<&[f32]>, w: f32, keep: f32, momentum: f32, lr: f32, p_out: &mut [MaybeUninit<f32>], v_out: &mut [MaybeUninit<f32>]) {
    let decayed = |j: usize| if DECAY { p[j] * w + g[j] } else { g[j] };
    match v {
        Some(v) => {
            for j in 0..p.len() {
                let vel = decayed(j) * keep + v[j] * momentum;
                v_out[j].write(vel);
                p_out[j].write(p[j] - vel * lr);
            }
        }
        None => {
            for j in 0..p.len() {
                let vel = decayed(j);
                v_out[j].write(vel);
                p_out[j].write(p[j] - vel * lr);
            }
        }
    }
}

/// The extension: one step of one parameter.
#[backend_extension(Flex)]
pub trait FusedSgdBackend: Backend {
    /// `(p', v')`; `velocity` is read only when `first` is false (pass any tensor otherwise).
    #[allow(clippy::too_many_arguments)]
    fn fused_sgd_step(param: FloatTensor<Self>, grad: FloatTensor<Self>, velocity: FloatTensor<Self>, first: bool, lr: f64, momentum: f64, dampening: f64, weight_decay: f64) -> (FloatTensor<Self>, FloatTensor<Self>);
}

impl FusedSgdBackend for Flex {
    fn fused_sgd_step(param: FloatTensor<Self>, grad: FloatTensor<Self>, velocity: FloatTensor<Self>, first: bool, lr: f64, momentum: f64, dampening: f64, weight_decay: f64) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let shape = param.shape().to_vec();
        let (param, grad) = (f32_values(&param), f32_values(&grad));
        let velocity = (!first).then(|| f32_values(&velocity));
        // A weight decay of exactly 0 means none (burn would add 0·p, which changes nothing
        // but the sign of a zero).
        let constants = SgdConstants { lr, momentum: momentum as f32, dampening, weight_decay: (weight_decay != 0.0).then_some(weight_decay as f32) };
        let (p, v) = step_f32(param.storage::<f32>(), grad.storage::<f32>(), velocity.as_ref().map(|v| v.storage::<f32>()), &constants);
        (flex_tensor(p, shape.clone()), flex_tensor(v, shape))
    }
}

/// One fused step of a parameter on burn-flex (float32; see [`super::on_flex_f32`]): `(p', v')`.
pub fn fused_sgd_step<const D: usize>(param: Tensor<D>, grad: Tensor<D>, velocity: Option<Tensor<D>>, k: &SgdConstants) -> (Tensor<D>, Tensor<D>) {
    use burn::backend::Dispatch;
    let first = velocity.is_none();
    let velocity = velocity.unwrap_or_else(|| grad.clone());
    let (p, v) = <Dispatch as FusedSgdBackend>::fused_sgd_step(
        param.into_dispatch(),
        grad.into_dispatch(),
        velocity.into_dispatch(),
        first,
        k.lr,
        k.momentum as f64,
        k.dampening,
        k.weight_decay.map_or(0.0, f64::from),
    );
    (Tensor::from_dispatch(p), Tensor::from_dispatch(v))
}
