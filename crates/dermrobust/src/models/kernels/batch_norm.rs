//! Training-mode batch norm in two passes forward and two backward, as a burn backend extension
//! for burn-flex (issue 14).
//!
//! Why: burn 0.22's default `batch_norm_train` (which burn-flex keeps) builds the statistics and
//! the gradient out of about a dozen tensor operations, several of them copies (a channel swap
//! before each reduction), each a full pass over the activation. Here, per channel over the
//! `batch * height * width` samples:
//!
//! - forward: mean and biased variance (one read, per channel on its own thread), then
//!   `y = x * scale + shift` (one read, one write);
//! - backward: `Σ dy` and `Σ dy * x̂` (one read), then
//!   `dx = γ / σ * (dy - Σ dy / S - x̂ * Σ dy x̂ / S)` (one read, one write).
//!
//! The results are burn's (`tests/kernels.rs`); [`batch_norm`] updates the running statistics
//! as `burn::nn::BatchNorm` does.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Flex};

use super::{f32_values, flex_tensor};
use burn::nn::BatchNorm;
use burn::prelude::*;
use rayon::prelude::*;

/// `[batch, channels, positions]` of an activation `[batch, channels, ...]`.
fn layout(shape: &[usize]) -> [usize; 3] {
    assert!(shape.len() >= 2, "batch norm: the input needs a channel axis");
    [shape[0], shape[1], shape[2..].iter().product()]
}

/// Per-channel mean and biased variance (accumulated in f64, two passes over each channel).
pub fn stats_f32(x: &[f32], [n, c, hw]: [usize; 3]) -> (Vec<f32>, Vec<f32>) {
    let count = (n * hw).max(1) as f64;
    let per_channel: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let segments = || (0..n).map(move |b| &x[(b * c + ch) * hw..][..hw]);
            let mean = segments().map(|s| s.iter().map(|&v| v as f64).sum::<f64>()).sum::<f64>() / count;
            let var = segments().map(|s| s.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()).sum::<f64>() / count;
            (mean as f32, var as f32)
        })
        .collect();
    per_channel.into_iter().unzip()
}

/// `y = x * scale[c] + shift[c]` per channel, image by image on all threads.
fn affine(x: &[f32], scale: &[f32], shift: &[f32], [_, c, hw]: [usize; 3]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut((c * hw).max(1)).zip(x.par_chunks((c * hw).max(1))).for_each(|(yi, xi)| {
        for ch in 0..c {
            let (a, b) = (scale[ch], shift[ch]);
            yi[ch * hw..][..hw].iter_mut().zip(&xi[ch * hw..][..hw]).for_each(|(y, &x)| *y = x * a + b);
        }
    });
    y
}

fn inv_std(variance: &[f32], epsilon: f64) -> Vec<f32> {
    variance.iter().map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32).collect()
}

/// Forward: the normalised, scaled and shifted activation, with the batch mean and biased
/// variance.
pub fn forward_f32(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f64, dims: [usize; 3]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = stats_f32(x, dims);
    let scale: Vec<f32> = inv_std(&var, epsilon).iter().zip(gamma).map(|(s, g)| s * g).collect();
    let shift: Vec<f32> = beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    (affine(x, &scale, &shift, dims), mean, var)
}

/// Backward: gradients of the input, γ and β from the output gradient `dy`, given the statistics
/// the forward pass returned.
#[allow(clippy::too_many_arguments)]
pub fn backward_f32(x: &[f32], gamma: &[f32], mean: &[f32], variance: &[f32], epsilon: f64, dy: &[f32], dims: [usize; 3]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, c, hw] = dims;
    let inv = inv_std(variance, epsilon);
    // Σ dy and Σ dy * x̂ per channel.
    let sums: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (m, s) = (mean[ch], inv[ch]);
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for b in 0..n {
                let (xs, ds) = (&x[(b * c + ch) * hw..][..hw], &dy[(b * c + ch) * hw..][..hw]);
                sum_dy += ds.iter().map(|&d| d as f64).sum::<f64>();
                sum_dy_xhat += xs.iter().zip(ds).map(|(&x, &d)| (d * (x - m) * s) as f64).sum::<f64>();
            }
            (sum_dy as f32, sum_dy_xhat as f32)
        })
        .collect();
    let (beta_grad, gamma_grad): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
    let count = (n * hw).max(1) as f32;
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut((c * hw).max(1)).enumerate().for_each(|(b, dxi)| {
        for ch in 0..c {
            let (m, s, k) = (mean[ch], inv[ch], gamma[ch] * inv[ch]);
            let (mean_dy, mean_dy_xhat) = (beta_grad[ch] / count, gamma_grad[ch] / count);
            let (xs, ds) = (&x[(b * c + ch) * hw..][..hw], &dy[(b * c + ch) * hw..][..hw]);
            dxi[ch * hw..][..hw].iter_mut().zip(xs.iter().zip(ds)).for_each(|(out, (&x, &d))| *out = k * (d - mean_dy - (x - m) * s * mean_dy_xhat));
        }
    });
    (dx, gamma_grad, beta_grad)
}

/// The extension: forward and backward as backend operations, so that autodiff calls the fused
/// backward.
#[backend_extension(Flex, Autodiff)]
pub trait FusedBatchNormBackend: Backend {
    /// Output, batch mean, biased batch variance.
    fn fused_batch_norm_train(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f64) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// Gradients of the input, γ and β.
    fn fused_batch_norm_train_backward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, mean: FloatTensor<Self>, variance: FloatTensor<Self>, epsilon: f64, output_grad: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl FusedBatchNormBackend for Flex {
    fn fused_batch_norm_train(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f64) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x, gamma, beta) = (f32_values(&x), f32_values(&gamma), f32_values(&beta));
        let shape = x.layout().shape().to_vec();
        let dims = layout(&shape);
        let (y, mean, var) = forward_f32(x.storage::<f32>(), gamma.storage::<f32>(), beta.storage::<f32>(), epsilon, dims);
        (flex_tensor(y, shape), flex_tensor(mean, vec![dims[1]]), flex_tensor(var, vec![dims[1]]))
    }

    fn fused_batch_norm_train_backward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, mean: FloatTensor<Self>, variance: FloatTensor<Self>, epsilon: f64, output_grad: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x, gamma, mean, variance, dy) = (f32_values(&x), f32_values(&gamma), f32_values(&mean), f32_values(&variance), f32_values(&output_grad));
        let shape = x.layout().shape().to_vec();
        let dims = layout(&shape);
        let (dx, dgamma, dbeta) = backward_f32(x.storage::<f32>(), gamma.storage::<f32>(), mean.storage::<f32>(), variance.storage::<f32>(), epsilon, dy.storage::<f32>(), dims);
        (flex_tensor(dx, shape), flex_tensor(dgamma, vec![dims[1]]), flex_tensor(dbeta, vec![dims[1]]))
    }
}

impl<B: Backend + FusedBatchNormBackend, C: CheckpointStrategy> FusedBatchNormBackend for Autodiff<B, C> {
    fn fused_batch_norm_train(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f64) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct FusedBatchNorm;

        impl<B: Backend + FusedBatchNormBackend> Backward<B, 3> for FusedBatchNorm {
            type State = (NodeId, NodeId, B::FloatTensorPrimitive, B::FloatTensorPrimitive, f64);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, gamma_state, mean, variance, epsilon) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
                let gamma = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma_state);
                let (dx, dgamma, dbeta) = B::fused_batch_norm_train_backward(x, gamma, mean, variance, epsilon, grad);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_gamma {
                    grads.register::<B>(node.id, dgamma);
                }
                if let Some(node) = node_beta {
                    grads.register::<B>(node.id, dbeta);
                }
            }
        }

        let prep = FusedBatchNorm.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful();
        let (output, mean, variance) = match prep {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let (y, mean, variance) = B::fused_batch_norm_train(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon);
                (prep.finish((x_state, gamma_state, mean.clone(), variance.clone(), epsilon), y), mean, variance)
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, variance) = B::fused_batch_norm_train(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon);
                (prep.finish(y), mean, variance)
            }
        };
        // The statistics leave the graph (burn's batch norm detaches them too).
        (output, FloatTensor::<Self>::new(mean), FloatTensor::<Self>::new(variance))
    }

    // Not differentiated again (no second-order training here): computed on the inner backend,
    // returned untracked.
    fn fused_batch_norm_train_backward(x: FloatTensor<Self>, gamma: FloatTensor<Self>, mean: FloatTensor<Self>, variance: FloatTensor<Self>, epsilon: f64, output_grad: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dgamma, dbeta) = B::fused_batch_norm_train_backward(x.into_primitive(), gamma.into_primitive(), mean.into_primitive(), variance.into_primitive(), epsilon, output_grad.into_primitive());
        (FloatTensor::<Self>::new(dx), FloatTensor::<Self>::new(dgamma), FloatTensor::<Self>::new(dbeta))
    }
}

/// `bn` applied to `x`. In training mode on burn-flex (float32) through the fused kernels, with
/// the running statistics updated exactly as `BatchNorm::forward` updates them; otherwise (inference
/// mode, a frozen layer, another device or dtype) `BatchNorm::forward`.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    if !training || !super::on_flex_f32(&x) {
        return bn.forward(x);
    }
    use burn::backend::Dispatch;
    let device = x.device();
    let (y, mean, variance) = <Dispatch as FusedBatchNormBackend>::fused_batch_norm_train(x.into_dispatch(), bn.gamma.val().into_dispatch(), bn.beta.val().into_dispatch(), bn.epsilon);
    let (mean, variance) = (Tensor::<1>::from_dispatch(mean).detach(), Tensor::<1>::from_dispatch(variance).detach());
    let running_mean = bn.running_mean.value_sync().to_device(&device).mul_scalar(1.0 - bn.momentum).add(mean.mul_scalar(bn.momentum));
    let running_var = bn.running_var.value_sync().to_device(&device).mul_scalar(1.0 - bn.momentum).add(variance.mul_scalar(bn.momentum));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
    Tensor::from_dispatch(y)
}
