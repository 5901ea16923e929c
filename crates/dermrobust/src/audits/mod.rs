//! Robustness audits. Each is an [`Audit`]: named conditions applied to the images of an
//! [`AuditSubject`] (any classifier: dermrobust models, ONNX models, ensembles, TTA), run by the
//! one [`run_audit`], which writes `<audit>.json`, `<audit>_per_image.csv`, `report.html` and the
//! resume key. Every perturbation is an `ImageOp` record that `dermrobust replay` rebuilds.

pub mod adversarial;
pub mod artefacts;
pub mod brittleness;
pub mod experiment;
pub mod explain;
pub mod input;
pub mod replay;
pub mod report;
pub mod runner;
pub mod suite;

pub use input::{AuditImages, AuditSubject, Prepared};
pub use runner::{report_sections, run_audit, Audit, AuditOutcome, AuditRun, Condition, ConditionSummary, Highlight, ModelRun};

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
