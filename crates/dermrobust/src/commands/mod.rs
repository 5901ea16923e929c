//! The implementation of each command-line command (the CLI in `main.rs` only parses).

pub mod audit;
pub mod bench;
pub mod data;
pub mod demo;
pub mod evaluate;
pub mod experiment;
pub mod lr_find;
pub mod predict;
pub mod train;

use std::path::{Path, PathBuf};

use dermrobust_core::data::DataSpec;

/// The images a trained model is evaluated or audited on (shared by `evaluate` and `audit`).
#[derive(clap::Args, Clone, Debug)]
pub struct ModelDataArgs {
    /// Dataset; labels follow the model's label scheme.
    #[arg(long, default_value = "synthetic")]
    pub data: DataSpec,
    /// Split file. Default: the training run's split.json next to the model, if there is one;
    /// otherwise every image is used.
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Part of the split to use.
    #[arg(long, default_value = "test")]
    pub part: String,
}

impl ModelDataArgs {
    /// The split file to use for a model at `model` (a run or model folder).
    pub fn split_for(&self, model: &Path) -> Option<PathBuf> {
        let run_split = crate::training::trainer::resolve_model_path(model).parent().map(|p| p.join("split.json")).filter(|p| p.is_file());
        self.split.clone().or(run_split)
    }
}
