//! Exact and near-duplicate images across splits (Mishra et al. 2019, section 5.1).

use serde::{Deserialize, Serialize};

use crate::imaging::phash::hamming;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DuplicatePair {
    pub a: String,
    pub b: String,
    /// Hamming distance of the perceptual hashes (0 for exact duplicates).
    pub distance: u32,
    /// Identical decoded pixels.
    pub exact: bool,
}

/// Pairs of images in *different* parts whose perceptual hashes differ in at most `max_distance`
/// bits. `items` holds (id, part, perceptual hash, hash of the exact pixels).
pub fn cross_part_duplicates(items: &[(String, usize, u64, u64)], max_distance: u32) -> Vec<DuplicatePair> {
    let mut out = Vec::new();
    // All pairs: a popcount each, fast even for 10^4 images (5 * 10^7 pairs).
    for i in 0..items.len() {
        for j in i + 1..items.len() {
            let (a, b) = (&items[i], &items[j]);
            if a.1 == b.1 {
                continue;
            }
            let d = hamming(a.2, b.2);
            let exact = a.3 == b.3;
            if d <= max_distance || exact {
                out.push(DuplicatePair { a: a.0.clone(), b: b.0.clone(), distance: d, exact });
            }
        }
    }
    out
}
