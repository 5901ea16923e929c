//! Turning images into tensors: batches of raw `[0, 1]` RGB, built in parallel (with
//! augmentation) on a background thread so that the next batch is ready when the model is.

use std::sync::mpsc::{sync_channel, Receiver};

use burn::prelude::*;
use dermrobust_core::data::ImageSet;
use rand::SeedableRng;
use rayon::prelude::*;

use super::augment;
use super::config::AugmentPreset;

/// Planar `[0, 1]` pixels of a batch, ready to become a tensor, with the lesion masks where the
/// set has them, moved by the same augmentation as their images.
pub struct HostBatch {
    pub pixels: Vec<f32>,
    pub labels: Vec<usize>,
    pub indices: Vec<usize>,
    pub size: usize,
    /// One `[0, 1]` plane per image (zeros where an image has no mask), if any image of the
    /// batch has a mask.
    pub masks: Option<Vec<f32>>,
    /// Which images of the batch have a mask.
    pub has_mask: Vec<bool>,
}

impl HostBatch {
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let n = self.labels.len();
        Tensor::from_data(TensorData::new(self.pixels.clone(), [n, 3, self.size, self.size]), device)
    }

    /// The masks as a `[N, 1, H, W]` tensor, if the batch has any.
    pub fn masks_tensor(&self, device: &Device) -> Option<Tensor<4>> {
        let n = self.labels.len();
        self.masks.as_ref().map(|m| Tensor::from_data(TensorData::new(m.clone(), [n, 1, self.size, self.size]), device))
    }
}

/// Build one batch; augmentation is seeded by `(seed, position in the epoch)` so runs repeat.
/// Masks (where the set has them) go through the same geometric operation as their image.
pub fn build(set: &ImageSet, indices: &[usize], preset: AugmentPreset, seed: u64, first_position: usize) -> HostBatch {
    let plane = 3 * set.size * set.size;
    let mask_plane = set.size * set.size;
    let has_mask: Vec<bool> = indices.iter().map(|&i| set.mask(i).is_some()).collect();
    let any_mask = has_mask.iter().any(|&m| m);
    let mut pixels = vec![0.0f32; indices.len() * plane];
    let mut masks = vec![0.0f32; if any_mask { indices.len() * mask_plane } else { 0 }];
    let mut mask_chunks: Vec<&mut [f32]> = if any_mask { masks.chunks_mut(mask_plane).collect() } else { indices.iter().map(|_| &mut [][..]).collect() };
    pixels.par_chunks_mut(plane).zip(mask_chunks.par_iter_mut()).zip(indices.par_iter()).enumerate().for_each(|(k, ((out, mask_out), &i))| {
        let mask = set.mask(i);
        if preset == AugmentPreset::None {
            for (o, &p) in out.iter_mut().zip(set.pixels(i)) {
                *o = p as f32 / 255.0;
            }
            if let Some(m) = mask {
                mask_out.copy_from_slice(&m.data);
            }
        } else {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add((first_position + k) as u64));
            let op = augment::draw(preset, &mut rng);
            let img = op.apply(&set.image(i)).expect("augmentation of an RGB image");
            out.copy_from_slice(&img.data);
            if let Some(m) = mask {
                mask_out.copy_from_slice(&op.apply_mask(&m).expect("augmentation of a mask").data);
            }
        }
    });
    drop(mask_chunks);
    HostBatch {
        pixels,
        labels: indices.iter().map(|&i| set.labels[i]).collect(),
        indices: indices.to_vec(),
        size: set.size,
        masks: any_mask.then_some(masks),
        has_mask,
    }
}

/// Batches of `order` built ahead on a background thread (two in flight).
pub fn prefetch(set: std::sync::Arc<ImageSet>, order: Vec<usize>, batch_size: usize, preset: AugmentPreset, seed: u64) -> Receiver<HostBatch> {
    let (tx, rx) = sync_channel(2);
    std::thread::spawn(move || {
        for (b, chunk) in order.chunks(batch_size).enumerate() {
            let batch = build(&set, chunk, preset, seed, b * batch_size);
            if tx.send(batch).is_err() {
                return; // the consumer stopped early
            }
        }
    });
    rx
}
