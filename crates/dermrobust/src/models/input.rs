//! Images to tensors: the one conversion of raw `[0, 1]` RGB images into a `[N, 3, H, W]` batch,
//! used by inference, training and gradients alike.

use burn::prelude::*;
use dermrobust_core::imaging::Image;

/// Images (all the same size) as a `[N, 3, H, W]` tensor of raw `[0, 1]` pixels.
pub fn images_to_tensor(images: &[Image], device: &Device) -> Tensor<4> {
    let (h, w) = (images[0].height, images[0].width);
    let mut data = Vec::with_capacity(images.len() * 3 * h * w);
    for img in images {
        data.extend_from_slice(&img.data);
    }
    Tensor::from_data(TensorData::new(data, [images.len(), 3, h, w]), device)
}

/// Masks (one `[0, 1]` plane each, all the same size) as a `[N, 1, H, W]` tensor.
pub fn masks_to_tensor(masks: &[Vec<f32>], size: usize, device: &Device) -> Tensor<4> {
    let data: Vec<f32> = masks.iter().flat_map(|m| m.iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [masks.len(), 1, size, size]), device)
}
