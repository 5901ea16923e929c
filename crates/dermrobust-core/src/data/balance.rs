//! Class balance: counts, inverse-frequency class weights and oversampling.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

pub fn class_counts(labels: &[usize], num_classes: usize) -> Vec<usize> {
    let mut counts = vec![0; num_classes];
    for &l in labels {
        counts[l] += 1;
    }
    counts
}

/// scikit-learn's `compute_class_weight("balanced")`: `n_samples / (n_classes * count)`.
/// Classes without samples get weight 0.
pub fn balanced_class_weights(counts: &[usize]) -> Vec<f32> {
    let total: usize = counts.iter().sum();
    let k = counts.iter().filter(|&&c| c > 0).count().max(1);
    counts.iter().map(|&c| if c == 0 { 0.0 } else { total as f32 / (k as f32 * c as f32) }).collect()
}

/// One epoch's sample order with every class drawn as often as the largest one: each class's
/// indices are all used, then topped up by sampling with replacement. Shuffled, seeded.
pub fn oversampled_order(labels: &[usize], num_classes: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    let target = by_class.iter().map(Vec::len).max().unwrap_or(0);
    let mut order = Vec::with_capacity(target * num_classes);
    for members in by_class.iter().filter(|m| !m.is_empty()) {
        order.extend_from_slice(members);
        for _ in members.len()..target {
            order.push(members[rng.random_range(0..members.len())]);
        }
    }
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_weights_match_sklearn() {
        // sklearn.utils.class_weight.compute_class_weight("balanced", classes=[0,1,2], y=[0]*6+[1]*3+[2]*1)
        // -> [0.55555556, 1.11111111, 3.33333333]
        let w = balanced_class_weights(&[6, 3, 1]);
        assert!((w[0] - 0.555_555_6).abs() < 1e-6 && (w[1] - 1.111_111_1).abs() < 1e-6 && (w[2] - 3.333_333_3).abs() < 1e-6);
    }

    #[test]
    fn oversampling_equalises_classes_and_keeps_every_sample() {
        let labels = vec![0, 0, 0, 0, 0, 1, 2, 2];
        let order = oversampled_order(&labels, 3, 1);
        assert_eq!(class_counts(&order.iter().map(|&i| labels[i]).collect::<Vec<_>>(), 3), vec![5, 5, 5]);
        for i in 0..labels.len() {
            assert!(order.contains(&i), "sample {i} missing");
        }
    }
}
