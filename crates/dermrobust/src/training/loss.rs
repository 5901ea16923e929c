//! Losses on logits: cross-entropy (class weights, label smoothing) and focal loss.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::config::LossKind;

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
        let weights: Vec<f32> = match &self.class_weights {
            Some(w) => labels.iter().map(|&l| w[l]).collect(),
            None => vec![1.0; n],
        };
        let weight_sum: f32 = weights.iter().sum();
        let weights = Tensor::<2>::from_data(TensorData::new(weights, [n, 1]), &device);
        let logp = log_softmax(logits, 1);
        let per_sample: Tensor<2> = match self.kind {
            LossKind::CrossEntropy => {
                let eps = self.label_smoothing as f32;
                let target = onehot * (1.0 - eps) + eps / k as f32;
                -(target * logp).sum_dim(1)
            }
            LossKind::Focal => {
                let logp_true = (onehot * logp).sum_dim(1); // [n, 1]
                let modulating = (-logp_true.clone().exp() + 1.0).clamp_min(0.0).powf_scalar(self.focal_gamma as f32);
                -(modulating * logp_true)
            }
        };
        (per_sample * weights).sum().div_scalar(weight_sum.max(f32::EPSILON)).reshape([1])
    }
}
