//! dermrobust: train dermoscopy classifiers and measure how far to trust them.
//!
//! Layout, from data to the command line: `dermrobust_core` (data, images, metrics, synthetic
//! data, reports) -> [`models`] -> [`training`] -> [`evaluation`] -> `main.rs` (the CLI).

pub mod audits;
pub mod commands;
pub mod evaluation;
pub mod models;
pub mod training;
