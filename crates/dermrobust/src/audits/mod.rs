//! Robustness audits. Each takes classifiers (anything implementing
//! [`ImageClassifier`](crate::evaluation::ImageClassifier)) and a dataset, and produces a
//! machine-readable result (JSON + per-image CSV) and a human report (`report.html`), using the
//! shared image operations, metrics and report code.

pub mod brittleness;
pub mod report;
pub mod suite;
