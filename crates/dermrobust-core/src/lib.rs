//! dermrobust-core: everything dermrobust's models, training and audits stand on.
//!
//! - [`data`]: datasets (HAM10000, ISIC, manifests, folders, synthetic), label schemes,
//!   lesion-aware splits, the decoded-image cache.
//! - [`imaging`]: the image type and the one library of image operations (augmentation, audits,
//!   attacks and test-time augmentation all use it).
//! - [`metrics`]: the one metrics library (evaluation and every audit).
//! - [`optim`]: the differential-evolution optimiser of the black-box attacks.
//! - [`synth`]: the synthetic dermoscopy generator, the embedded default dataset.
//! - [`report`]: atomic output files, plots and the HTML report.

pub mod data;
pub mod imaging;
pub mod metrics;
pub mod optim;
pub mod progress;
pub mod report;
pub mod synth;
