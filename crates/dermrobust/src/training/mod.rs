//! Training: configuration, augmentation, losses, schedules, batches and the loop.

pub mod attention;
pub mod augment;
pub mod batch;
pub mod bias;
pub mod config;
pub mod loss;
pub mod lr_find;
pub mod runs;
pub mod schedule;
pub mod sgd;
pub mod throughput;
pub mod trainer;

pub use config::TrainConfig;
pub use runs::train_runs;
pub use trainer::{prepare_data, prepare_data_with_masks, train_one, train_one_with_terms, RunResult, TrainData};
