//! The implementation of each command-line command (the CLI in `main.rs` only parses).

pub mod artefacts;
pub mod adversarial;
pub mod audit;
pub mod bench;
pub mod data;
pub mod demo;
pub mod evaluate;
pub mod explain;
pub mod export;
pub mod lr_find;
pub mod predict;
pub mod replay;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::Result;
use dermrobust_core::data::DataSpec;

use crate::audits::AuditSubject;
use crate::evaluation::DecisionRule;
pub use crate::evaluation::tta::{TtaArgs, TtaViewArgs};
pub use crate::evaluation::{CaptureArgs, ModelCaptureArgs};

/// The images a model is evaluated or audited on (shared by `evaluate` and every audit).
#[derive(clap::Args, Clone, Debug)]
pub struct ModelDataArgs {
    /// Dataset; labels follow the model's label scheme (an ONNX model's sidecar `labels`).
    #[arg(long, default_value = "synthetic")]
    pub data: DataSpec,
    /// Split file. Default: the training run's split.json next to the model, if there is one;
    /// otherwise every image is used.
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Part of the split to use, or `all` for every image of the data (e.g. an external dataset
    /// audited with a model trained elsewhere).
    #[arg(long, default_value = "test")]
    pub part: String,
    /// Skip unreadable images (with a count and the first error) instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    /// Mishra's capture remedy (default: the one the model was trained with).
    #[command(flatten)]
    pub capture: ModelCaptureArgs,
}

impl ModelDataArgs {
    /// The split file to use for the model at `model`.
    pub fn split_for(&self, model: &Path) -> Option<PathBuf> {
        crate::evaluation::split_for(model, self.split.as_deref())
    }
}

/// The models and data of any audit: one definition, so every audit command takes the same
/// options.
#[derive(clap::Args, Clone, Debug)]
pub struct AuditModelArgs {
    /// Model folder, training run folder, or ONNX file (with its sidecar TOML); repeat for
    /// several models (e.g. repeats of one configuration: mean and standard deviation are
    /// reported).
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    /// Audit the ensemble (mean probability) of all --model instead of each one.
    #[arg(long)]
    pub ensemble: bool,
    #[command(flatten)]
    pub tta: TtaArgs,
    #[command(flatten)]
    pub data: ModelDataArgs,
    /// How probabilities become decisions. `balanced` corrects the probabilities to equal class
    /// priors with the class shares of the split's training part, so a model trained on
    /// imbalanced data is judged at a decision that is not (nearly) always the majority class.
    #[arg(long, value_enum, default_value_t = DecisionRule::Argmax)]
    pub decision: DecisionRule,
    /// Audit at most this many images (a seeded random subset of the part).
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Reuse the finished audit in --out when its models, images and settings are unchanged.
    #[arg(long)]
    pub resume: bool,
}

impl AuditModelArgs {
    pub fn subject(&self) -> Result<AuditSubject> {
        if self.max_images == Some(0) {
            anyhow::bail!("--max-images must be at least 1");
        }
        Ok(AuditSubject {
            models: self.models.clone(),
            ensemble: self.ensemble,
            tta: self.tta.chosen()?,
            data: self.data.data.clone(),
            split: self.data.split.clone(),
            part: self.data.part.clone(),
            decision: self.decision,
            max_images: self.max_images,
            skip_bad: self.data.skip_bad,
            capture: self.data.capture.choice()?,
        })
    }
}

