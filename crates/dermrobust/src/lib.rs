//! dermrobust: train dermoscopy classifiers and measure how far to trust them.
//!
//! Layers, each using only those before it: `dermrobust_core` (data, images, metrics, synthetic
//! data, reports) -> [`device`] -> [`models`] -> [`evaluation`] -> [`training`] -> [`audits`]
//! -> [`commands`] -> `main.rs` (the CLI, which only parses).

pub mod audits;
pub mod commands;
pub mod device;
pub mod evaluation;
pub mod models;
pub mod training;
