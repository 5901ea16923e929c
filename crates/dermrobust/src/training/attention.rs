//! Yan et al.'s attention regularisation (AttnMel-CNN-Lesion): a Dice term between each attention
//! map and the lesion mask resized to the map's size, added to the classification loss:
//! `loss = focal + λ3 · Dice(A_3, M_3) + λ4 · Dice(A_4, M_4)`.
//!
//! From the authors' code (github.com/SaoYan/IPMI2019-AttnMel, `loss.py` `DiceLoss` and
//! `train_seg.py`): the Dice loss is `1 - 2 Σ(a·m) / Σ(a + m)` with both sums over the **whole
//! batch as one tensor** (so a batch whose masks are all empty still has a positive denominator:
//! the sigmoid attention is never zero), the masks are shrunk to each map's size by adaptive average
//! pooling (`F.adaptive_avg_pool2d`, so mask cells are lesion fractions in [0, 1]), and the weights
//! are λ3 = 0.001 (pool-3) and λ4 = 0.01 (pool-4). The paper writes the term as the negative
//! Sørensen-Dice coefficient; `1 - Dice` differs from it by a constant.
//!
//! Images without a mask (a dataset where only some images have one) are left out of the term:
//! the Dice sums run over the images of the batch that have a mask, and a batch where none has one
//! adds nothing. (All of Yan's ISIC images have masks.) A tiny constant (1e-6) in the denominator
//! only guards against a map that underflows to exactly zero everywhere.

use burn::prelude::*;
use burn::tensor::module::adaptive_avg_pool2d;

use super::config::TrainConfig;
use super::loss::{BatchTargets, LossTerm};
use crate::models::attnmel::{MAP_POOL3, MAP_POOL4};
use crate::models::ModelOutput;

/// `1 - 2 Σ(a·m) / Σ(a + m)` over the whole batch: `maps` and `masks` `[N, 1, h, w]` of the
/// same shape.
pub fn dice_loss(maps: Tensor<4>, masks: Tensor<4>) -> Tensor<1> {
    let intersection = (maps.clone() * masks.clone()).sum();
    let total = (maps + masks).sum();
    (-(intersection * 2.0) / (total + 1e-6) + 1.0).reshape([1])
}

/// Lesion masks `[N, 1, H, W]` shrunk to `[N, 1, h, w]` by adaptive average pooling (the
/// authors' `F.adaptive_avg_pool2d`).
pub fn resize_masks(masks: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = masks.dims();
    if [h, w] == size { masks } else { adaptive_avg_pool2d(masks, size) }
}

/// The Dice term on one named attention map of the model's output.
#[derive(Clone, Debug)]
pub struct AttentionDice {
    /// Name of the map in [`ModelOutput::maps`].
    pub map: String,
    pub lambda: f64,
}

impl LossTerm for AttentionDice {
    fn name(&self) -> String {
        format!("{} x Dice({})", self.lambda, self.map)
    }

    fn needs_masks(&self) -> bool {
        true
    }

    fn forward(&self, output: &ModelOutput, targets: &BatchTargets) -> Tensor<1> {
        let device = output.logits.device();
        let zero = || Tensor::<1>::zeros([1], &device);
        let Some(map) = output.maps.iter().find(|(name, _)| *name == self.map).map(|(_, m)| m.clone()) else {
            panic!("the model gives no map named '{}' (the attention Dice term needs an attention model)", self.map);
        };
        let Some(masks) = targets.masks.clone() else { return zero() };
        let rows: Vec<i64> = targets.has_mask.iter().enumerate().filter(|(_, m)| **m).map(|(i, _)| i as i64).collect();
        if rows.is_empty() {
            return zero();
        }
        let [n, _, h, w] = map.dims();
        let (map, masks) = if rows.len() == n {
            (map, masks)
        } else {
            let index = Tensor::<1, Int>::from_data(TensorData::new(rows.clone(), [rows.len()]), &device);
            (map.select(0, index.clone()), masks.select(0, index))
        };
        dice_loss(map, resize_masks(masks, [h, w])) * self.lambda
    }
}

/// The loss terms a configuration asks for: with `--attention-masks`, the Dice terms on the
/// pool-3 and pool-4 attention maps weighted by `--lambda-pool3` and `--lambda-pool4`.
pub fn config_terms(cfg: &TrainConfig) -> Vec<Box<dyn LossTerm>> {
    if !cfg.attention_masks {
        return vec![];
    }
    vec![
        Box::new(AttentionDice { map: MAP_POOL3.to_string(), lambda: cfg.lambda_pool3 }),
        Box::new(AttentionDice { map: MAP_POOL4.to_string(), lambda: cfg.lambda_pool4 }),
    ]
}
