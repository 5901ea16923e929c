//! How well a map agrees with a lesion mask, how faithful it is, and whether it depends on the
//! model at all.
//!
//! Localisation (maps and masks of one size; a mask pixel is lesion where it exceeds 0.5):
//! - `energy_inside`: share of the map's sum inside the mask (the chance level is the mask's
//!   area share, `mask_area`);
//! - `pointing`: whether the map's maximum lies in the mask (the pointing game of Zhang et al.
//!   2018, without tolerance);
//! - `jaccard`: Yan et al.'s protocol: re-normalise the map to [0, 1], binarise at 0.5, Jaccard
//!   index with the mask;
//! - `border_energy` / `max_in_border`: share of the map's sum, and whether its maximum lies,
//!   in the band of width `BORDER` x side along the image edges (rulers, dark corners).
//!
//! Faithfulness: deletion and insertion curves (Petsiuk et al. 2018). Sanity: Spearman rank
//! correlation between maps (Adebayo et al. 2018).

use anyhow::Result;
use dermrobust_core::imaging::{Image, ImageOp};
use serde::{Deserialize, Serialize};

use crate::evaluation::ImageClassifier;

/// Width of the border band as a fraction of the side.
pub const BORDER: f32 = 0.125;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Localisation {
    pub energy_inside: f64,
    pub pointing: bool,
    pub jaccard: f64,
    pub mask_area: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BorderAttention {
    pub border_energy: f64,
    pub max_in_border: bool,
    /// The band's area share (the chance level of `border_energy`).
    pub border_area: f64,
}

/// Index of the first maximum.
pub fn argmax_pixel(map: &[f32]) -> usize {
    map.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0
}

/// Localisation of `map` against `mask` (same size; `None` when the mask is empty).
pub fn localisation(map: &Image, mask: &Image) -> Option<Localisation> {
    assert_eq!((map.width, map.height), (mask.width, mask.height), "map and mask sizes differ");
    let m = &map.data;
    let inside: Vec<bool> = mask.data.iter().map(|&v| v > 0.5).collect();
    let area = inside.iter().filter(|&&b| b).count();
    if area == 0 {
        return None;
    }
    let total: f64 = m.iter().map(|&v| v.max(0.0) as f64).sum();
    let in_sum: f64 = m.iter().zip(&inside).filter(|(_, b)| **b).map(|(&v, _)| v.max(0.0) as f64).sum();
    let min = m.iter().copied().fold(f32::INFINITY, f32::min);
    let max = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = max - min;
    let binary: Vec<bool> = m.iter().map(|&v| range > 0.0 && (v - min) / range >= 0.5).collect();
    let inter = binary.iter().zip(&inside).filter(|(a, b)| **a && **b).count();
    let union = binary.iter().zip(&inside).filter(|(a, b)| **a || **b).count();
    Some(Localisation {
        energy_inside: if total > 0.0 { in_sum / total } else { 0.0 },
        pointing: inside[argmax_pixel(m)],
        jaccard: inter as f64 / union.max(1) as f64,
        mask_area: area as f64 / inside.len() as f64,
    })
}

/// Whether pixel `(x, y)` of a `w x h` image lies in the border band.
pub fn in_border(x: usize, y: usize, w: usize, h: usize) -> bool {
    let bw = ((BORDER * w as f32).round() as usize).max(1);
    let bh = ((BORDER * h as f32).round() as usize).max(1);
    x < bw || y < bh || x >= w - bw || y >= h - bh
}

pub fn border_attention(map: &Image) -> BorderAttention {
    let (w, h) = (map.width, map.height);
    let band: Vec<bool> = (0..w * h).map(|p| in_border(p % w, p / w, w, h)).collect();
    let total: f64 = map.data.iter().map(|&v| v.max(0.0) as f64).sum();
    let b: f64 = map.data.iter().zip(&band).filter(|(_, b)| **b).map(|(&v, _)| v.max(0.0) as f64).sum();
    BorderAttention {
        border_energy: if total > 0.0 { b / total } else { 0.0 },
        max_in_border: band[argmax_pixel(&map.data)],
        border_area: band.iter().filter(|&&b| b).count() as f64 / band.len() as f64,
    }
}

/// Ranks (1-based, ties get their mean rank).
fn ranks(v: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0f64; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            r[o] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (`None` when either is constant).
pub fn spearman(a: &[f32], b: &[f32]) -> Option<f64> {
    assert_eq!(a.len(), b.len());
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// A deletion or insertion curve: the target probability after each step, and its area
/// (trapezoid rule over the fraction of pixels changed, 0..1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub probabilities: Vec<f32>,
    pub area: f64,
}

fn area(p: &[f32]) -> f64 {
    let steps = (p.len() - 1).max(1) as f64;
    p.windows(2).map(|w| (w[0] + w[1]) as f64 / 2.0).sum::<f64>() / steps
}

/// Deletion (most salient pixels first replaced by black) and insertion (most salient pixels of
/// the image first placed onto a blurred copy, Gaussian sigma 5% of the side) curves of `map`
/// for the probability of `class`, in `steps` equal steps (Petsiuk et al. 2018). Lower deletion
/// area and higher insertion area mean a more faithful map.
pub fn deletion_insertion(classifier: &dyn ImageClassifier, image: &Image, map: &Image, class: usize, steps: usize) -> Result<(Curve, Curve)> {
    let hw = image.width * image.height;
    let mut order: Vec<usize> = (0..hw).collect();
    order.sort_by(|&a, &b| map.data[b].total_cmp(&map.data[a]).then(a.cmp(&b)));
    let blurred = ImageOp::GaussianBlur { sigma: 0.05 }.apply(image)?;
    let mut deleted = Vec::with_capacity(steps + 1);
    let mut inserted = Vec::with_capacity(steps + 1);
    for s in 0..=steps {
        let k = hw * s / steps;
        let (mut d, mut ins) = (image.clone(), blurred.clone());
        for &p in &order[..k] {
            for c in 0..image.channels {
                d.data[c * hw + p] = 0.0;
                ins.data[c * hw + p] = image.data[c * hw + p];
            }
        }
        deleted.push(d);
        inserted.push(ins);
    }
    let pd: Vec<f32> = classifier.predict(&deleted)?.iter().map(|p| p[class]).collect();
    let pi: Vec<f32> = classifier.predict(&inserted)?.iter().map(|p| p[class]).collect();
    Ok((Curve { area: area(&pd), probabilities: pd }, Curve { area: area(&pi), probabilities: pi }))
}
