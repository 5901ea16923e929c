//! Black-box maps for any [`ImageClassifier`] (ONNX models included): only predictions are used.
//!
//! - Occlusion (Zeiler and Fergus 2014): slide a square patch of the image's mean colour over
//!   the image; a pixel's value is the mean drop of the target probability over the patches that
//!   cover it.
//! - RISE (Petsiuk et al. 2018): `N` random masks (an `s x s` grid of cells kept with
//!   probability `p`, bilinearly upsampled to `(s + 1)` cells' size and shifted at random); the
//!   map is `sum_i P(target | image * M_i) * M_i / (N * p)`; here normalised by each pixel's
//!   own coverage `sum_i M_i` instead of `N * p`, and centred on the mean probability (see
//!   [`rise`]).
//!
//! Both end as the CAMs do: ReLU, scaled to [0, 1].

use anyhow::Result;
use dermrobust_core::imaging::Image;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::cam::scale_unit;
use crate::evaluation::ImageClassifier;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OcclusionSettings {
    /// Patch side as a fraction of the image side.
    pub patch: f32,
    /// Stride as a fraction of the patch side.
    pub stride: f32,
}

impl Default for OcclusionSettings {
    fn default() -> Self {
        OcclusionSettings { patch: 0.125, stride: 0.5 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiseSettings {
    pub masks: usize,
    /// Grid cells per side.
    pub cells: usize,
    /// Probability of keeping a cell.
    pub keep: f32,
    pub seed: u64,
}

impl Default for RiseSettings {
    fn default() -> Self {
        RiseSettings { masks: 500, cells: 8, keep: 0.5, seed: 0 }
    }
}

const BATCH: usize = 64;

/// Occlusion maps of `images` for the probability of `classes[i]`.
pub fn occlusion(classifier: &dyn ImageClassifier, images: &[Image], classes: &[usize], s: &OcclusionSettings) -> Result<Vec<Image>> {
    let mut out = Vec::with_capacity(images.len());
    for (img, &class) in images.iter().zip(classes) {
        let (w, h) = (img.width, img.height);
        let side = ((s.patch * w as f32).round() as usize).clamp(1, w.min(h));
        let stride = ((s.stride * side as f32).round() as usize).max(1);
        let base = classifier.predict(std::slice::from_ref(img))?[0][class];
        let fill: Vec<f32> = (0..img.channels).map(|c| img.plane(c).iter().sum::<f32>() / (w * h) as f32).collect();
        let positions = |len: usize| {
            let mut v: Vec<usize> = (0..=len - side).step_by(stride).collect();
            if *v.last().unwrap() != len - side {
                v.push(len - side);
            }
            v
        };
        let windows: Vec<(usize, usize)> = positions(h).into_iter().flat_map(|y| positions(w).into_iter().map(move |x| (x, y))).collect();
        let mut sum = vec![0f32; w * h];
        let mut count = vec![0f32; w * h];
        for chunk in windows.chunks(BATCH) {
            let batch: Vec<Image> = chunk
                .iter()
                .map(|&(x0, y0)| {
                    let mut o = img.clone();
                    for c in 0..img.channels {
                        for y in y0..y0 + side {
                            for x in x0..x0 + side {
                                o.set(c, x, y, fill[c]);
                            }
                        }
                    }
                    o
                })
                .collect();
            let probs = classifier.predict(&batch)?;
            for (&(x0, y0), p) in chunk.iter().zip(probs) {
                let drop = base - p[class];
                for y in y0..y0 + side {
                    for x in x0..x0 + side {
                        sum[y * w + x] += drop;
                        count[y * w + x] += 1.0;
                    }
                }
            }
        }
        let mut map: Vec<f32> = sum.iter().zip(&count).map(|(s, c)| (s / c.max(1.0)).max(0.0)).collect();
        scale_unit(&mut map);
        out.push(Image::new(1, w, h, map));
    }
    Ok(out)
}

/// RISE's random masks for an image of `size x size`.
pub fn rise_masks(size: usize, s: &RiseSettings) -> Vec<Image> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s.seed);
    let cell = (size as f32 / s.cells as f32).ceil() as usize;
    let up = (s.cells + 1) * cell;
    (0..s.masks)
        .map(|_| {
            let grid: Vec<f32> = (0..s.cells * s.cells).map(|_| if rng.random::<f32>() < s.keep { 1.0 } else { 0.0 }).collect();
            let big = Image::new(1, s.cells, s.cells, grid).resized(up, up);
            let (dx, dy) = (rng.random_range(0..cell), rng.random_range(0..cell));
            big.cropped(dx, dy, size, size)
        })
        .collect()
}

/// RISE maps of `images` for the probability of `classes[i]`.
pub fn rise(classifier: &dyn ImageClassifier, images: &[Image], classes: &[usize], s: &RiseSettings) -> Result<Vec<Image>> {
    let mut out = Vec::with_capacity(images.len());
    let size = images.first().map(|i| i.width).unwrap_or(0);
    let masks = rise_masks(size, s);
    for (img, &class) in images.iter().zip(classes) {
        let hw = img.width * img.height;
        let mut sum = vec![0f32; hw];
        let mut coverage = vec![0f32; hw];
        let mut probs: Vec<f32> = Vec::with_capacity(masks.len());
        for chunk in masks.chunks(BATCH) {
            let batch: Vec<Image> = chunk
                .iter()
                .map(|m| {
                    let mut o = img.clone();
                    for c in 0..img.channels {
                        o.plane_mut(c).iter_mut().zip(&m.data).for_each(|(v, mv)| *v *= mv);
                    }
                    o
                })
                .collect();
            probs.extend(classifier.predict(&batch)?.into_iter().map(|p| p[class]));
        }
        // Each pixel's expected probability when it is kept, minus the mean probability: the
        // RISE estimate `sum_i P_i M_i / (N p)` with `N p` replaced by the pixel's own coverage
        // `sum_i M_i` and centred. With a few hundred masks, coverage varies by several per cent
        // from pixel to pixel in the same pattern for every image (the masks are seeded), and in
        // the uncentred estimate that pattern outweighs the model's response (on HAM10000 at 64 px
        // its maps hardly changed when the model's head was re-initialised).
        let mean = probs.iter().sum::<f32>() / probs.len().max(1) as f32;
        for (m, p) in masks.iter().zip(&probs) {
            sum.iter_mut().zip(coverage.iter_mut()).zip(&m.data).for_each(|((a, c), mv)| {
                *a += (p - mean) * mv;
                *c += mv;
            });
        }
        let mut map: Vec<f32> = sum.iter().zip(&coverage).map(|(v, c)| (v / c.max(1e-6)).max(0.0)).collect();
        scale_unit(&mut map);
        out.push(Image::new(1, img.width, img.height, map));
    }
    Ok(out)
}
