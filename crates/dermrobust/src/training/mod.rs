//! Training: configuration, augmentation, losses, schedules, batches and the loop.

pub mod augment;
pub mod batch;
pub mod config;
pub mod loss;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use trainer::{prepare_data, train_one, RunResult, TrainData};
