//! Robustness audits. Each takes classifiers (anything implementing
//! [`ImageClassifier`](crate::evaluation::ImageClassifier)) and a dataset, and produces a
//! machine-readable result (JSON + per-image CSV) and a human report (`report.html`), using the
//! shared image operations, metrics and report code.

pub mod brittleness;
pub mod report;
pub mod suite;

/// At most `max` of `indices`, chosen at random (seeded) so that a subset stays representative
/// of classes and lesions, in their original order.
pub fn subsample(indices: &[usize], max: Option<usize>, seed: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    match max {
        Some(m) if m < indices.len() => {
            let mut v = indices.to_vec();
            v.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            v.truncate(m);
            v.sort();
            v
        }
        _ => indices.to_vec(),
    }
}
