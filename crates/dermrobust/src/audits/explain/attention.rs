//! The attention maps of an attention model (AttnMel-CNN, Yan et al. 2019) as explanation maps
//! (`--methods attention`): the model's own sigmoid maps over pool-3 and pool-4, re-normalised to
//! [0, 1] and up-sampled bilinearly to the input (the same last steps as every CAM, so the same
//! localisation metrics apply: Yan's Jaccard at 0.5 of the re-normalised map is their Table 3).
//! The maps do not depend on a target class.

use anyhow::{bail, Result};
use dermrobust_core::imaging::Image;
use serde::{Deserialize, Serialize};

use super::cam::finish_map;
use crate::evaluation::gradients::DifferentiableModel;
use crate::models::attnmel::{MAP_POOL3, MAP_POOL4};
use crate::models::input::images_to_tensor;
use crate::models::normalise;

/// Which attention map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionLayer {
    /// Both maps (`--methods attention`, expanded into the two below before maps are made).
    Both,
    Pool3,
    Pool4,
}

impl AttentionLayer {
    /// The name of the map in the model's output.
    pub fn map_name(self) -> Option<&'static str> {
        match self {
            AttentionLayer::Both => None,
            AttentionLayer::Pool3 => Some(MAP_POOL3),
            AttentionLayer::Pool4 => Some(MAP_POOL4),
        }
    }
}

/// Attention maps of `images` (1 channel, input size, [0, 1]); a clear error for a model without
/// attention.
pub fn attention_maps(model: &DifferentiableModel, images: &[Image], layer: AttentionLayer) -> Result<Vec<Image>> {
    let Some(name) = layer.map_name() else { bail!("'attention' stands for attention-pool3 and attention-pool4: ask for one of them") };
    let (net, meta, device) = model.network()?;
    if net.head.attention.is_none() {
        bail!("{} has no attention maps (only --arch attnmel has): use gradcam, occlusion or rise for it", meta.config.arch);
    }
    let size = meta.preprocess.size;
    let x = images_to_tensor(images, device);
    let out = net.forward_output(normalise(x, &meta.config));
    let Some((_, map)) = out.maps.into_iter().find(|(n, _)| n == name) else { bail!("the model gives no map '{name}'") };
    let [n, _, h, w] = map.dims();
    let values: Vec<f32> = map.inner().try_into_vec_as::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok((0..n).map(|i| finish_map(values[i * h * w..(i + 1) * h * w].to_vec(), w, h, size)).collect())
}
