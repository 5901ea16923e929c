//! Losses on logits: cross-entropy (class weights, label smoothing) and focal loss.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::config::LossKind;
use crate::models::ModelOutput;

/// A batch as a loss term sees it: labels, and lesion masks `[N, 1, H, W]` (moved with their
/// images by the augmentation) where the batch has them.
pub struct BatchTargets<'a> {
    pub labels: &'a [usize],
    pub masks: Option<Tensor<4>>,
    pub has_mask: &'a [bool],
}

/// An extra term of the training loss, added to the classification loss: it sees the model's
/// whole output (logits and maps) and the batch's masks (e.g. Yan et al.'s Dice term between
/// attention maps and lesion masks).
pub trait LossTerm: Send + Sync {
    /// Name for logs.
    fn name(&self) -> String;
    /// Whether the data must be loaded with lesion masks for this term.
    fn needs_masks(&self) -> bool {
        false
    }
    /// The term's value for a batch (a scalar `[1]` tensor on the batch's device).
    fn forward(&self, output: &ModelOutput, targets: &BatchTargets) -> Tensor<1>;
}

#[derive(Clone, Debug)]
pub struct Loss {
    pub kind: LossKind,
    /// Weight of each class (PyTorch convention: the mean is normalised by the summed weights).
    pub class_weights: Option<Vec<f32>>,
    pub label_smoothing: f64,
    pub focal_gamma: f64,
}

impl Loss {
    /// Mean loss of a batch. `labels` are class indices.
    pub fn forward(&self, logits: Tensor<2>, labels: &[usize]) -> Tensor<1> {
        let [n, k] = logits.dims();
        let device = logits.device();
        let mut onehot = vec![0.0f32; n * k];
        for (i, &l) in labels.iter().enumerate() {
            onehot[i * k + l] = 1.0;
        }
        let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [n, k]), &device);
        let class_weights: Vec<f32> = self.class_weights.clone().unwrap_or_else(|| vec![1.0; k]);
        let weights: Vec<f32> = labels.iter().map(|&l| class_weights[l]).collect();
        let weight_sum: f32 = weights.iter().sum();
        let weights = Tensor::<2>::from_data(TensorData::new(weights, [n, 1]), &device);
        let logp = log_softmax(logits, 1);
        let per_sample: Tensor<2> = match self.kind {
            LossKind::CrossEntropy => {
                // PyTorch's convention: the smoothing term weights each class by its own weight,
                // and the sum is divided by the summed weights of the true classes.
                let eps = self.label_smoothing as f32;
                let class_weights = Tensor::<2>::from_data(TensorData::new(class_weights, [1, k]), &device);
                let target = onehot * weights.clone() * (1.0 - eps) + class_weights * (eps / k as f32);
                -(target * logp).sum_dim(1)
            }
            LossKind::Focal => {
                let logp_true = (onehot * logp).sum_dim(1); // [n, 1]
                let modulating = (-logp_true.clone().exp() + 1.0).clamp_min(0.0).powf_scalar(self.focal_gamma as f32);
                -(modulating * logp_true) * weights
            }
        };
        per_sample.sum().div_scalar(weight_sum.max(f32::EPSILON)).reshape([1])
    }
}
