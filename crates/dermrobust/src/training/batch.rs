//! Turning images into tensors: batches of raw `[0, 1]` RGB, built in parallel (with
//! augmentation) on a background thread so that the next batch is ready when the model is.

use std::sync::mpsc::{sync_channel, Receiver};

use burn::prelude::*;
use dermrobust_core::data::ImageSet;
use dermrobust_core::imaging::Image;
use rand::SeedableRng;
use rayon::prelude::*;

use super::augment;
use super::config::AugmentPreset;

/// Planar `[0, 1]` pixels of a batch, ready to become a tensor.
pub struct HostBatch {
    pub pixels: Vec<f32>,
    pub labels: Vec<usize>,
    pub indices: Vec<usize>,
    pub size: usize,
}

impl HostBatch {
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let n = self.labels.len();
        Tensor::from_data(TensorData::new(self.pixels.clone(), [n, 3, self.size, self.size]), device)
    }
}

/// Images as a `[N, 3, H, W]` tensor.
pub fn images_to_tensor(images: &[Image], device: &Device) -> Tensor<4> {
    let (h, w) = (images[0].height, images[0].width);
    let mut data = Vec::with_capacity(images.len() * 3 * h * w);
    for img in images {
        data.extend_from_slice(&img.data);
    }
    Tensor::from_data(TensorData::new(data, [images.len(), 3, h, w]), device)
}

/// Build one batch; augmentation is seeded by `(seed, position in the epoch)` so runs repeat.
pub fn build(set: &ImageSet, indices: &[usize], preset: AugmentPreset, seed: u64, first_position: usize) -> HostBatch {
    let plane = 3 * set.size * set.size;
    let mut pixels = vec![0.0f32; indices.len() * plane];
    pixels.par_chunks_mut(plane).zip(indices.par_iter()).enumerate().for_each(|(k, (out, &i))| {
        if preset == AugmentPreset::None {
            for (o, &p) in out.iter_mut().zip(set.pixels(i)) {
                *o = p as f32 / 255.0;
            }
        } else {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add((first_position + k) as u64));
            let op = augment::draw(preset, &mut rng);
            let img = op.apply(&set.image(i)).expect("augmentation of an RGB image");
            out.copy_from_slice(&img.data);
        }
    });
    HostBatch { pixels, labels: indices.iter().map(|&i| set.labels[i]).collect(), indices: indices.to_vec(), size: set.size }
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
