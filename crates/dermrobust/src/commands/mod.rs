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

use anyhow::Result;
use dermrobust_core::data::DataSpec;

use crate::evaluation::{ImageClassifier, TtaViews, WithTta, FASTAI_TTA_BETA, MARON_TTA_SCALE};

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

/// Test-time augmentation options (shared by `evaluate` and `audit`).
#[derive(clap::Args, Clone, Debug)]
pub struct TtaArgs {
    /// Test-time augmentation: average the prediction over deterministic views of each image
    /// (default: Maron et al.'s, as fastai computes it).
    #[arg(long)]
    pub tta: bool,
    #[command(flatten)]
    pub how: TtaViewArgs,
}

/// Which TTA (shared by `evaluate`, `audit` and `experiment`).
#[derive(clap::Args, Clone, Debug)]
pub struct TtaViewArgs {
    /// The TTA views: `maron` (8: no/horizontal flip x zoom into each of the 4 corners), `flips`
    /// (4), `dihedral` (8: rotations by 0/90/180/270 degrees x no/horizontal flip), or a TOML file
    /// of `[[view]]` tables, each an image operation (e.g. `op = "rotate"`, `degrees = 90`).
    #[arg(long, default_value = "maron")]
    pub tta_views: TtaViews,
    /// Side of the corner crops of the `maron` views (fastai: 1/1.35).
    #[arg(long, default_value_t = MARON_TTA_SCALE)]
    pub tta_scale: f32,
    /// Weight of the unmodified image in the TTA blend (fastai: 0.4; 0 = plain mean of the views).
    #[arg(long, default_value_t = FASTAI_TTA_BETA)]
    pub tta_original_weight: f32,
}

/// A chosen TTA: the views and the weight of the unmodified image.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tta {
    pub views: Vec<dermrobust_core::imaging::ImageOp>,
    pub original_weight: f32,
}

impl Tta {
    /// One sentence for reports.
    pub fn description(&self) -> String {
        let what = if self.views == crate::evaluation::maron_tta_views(MARON_TTA_SCALE) {
            "Maron et al.'s 8 views (no/horizontal flip x zoom 1.35 into each corner)".to_string()
        } else {
            format!("{} views ({})", self.views.len(), self.views.iter().map(|v| v.label()).collect::<Vec<_>>().join(", "))
        };
        match self.original_weight {
            w if w == FASTAI_TTA_BETA => format!("test-time augmentation over {what}, blended 0.6/0.4 with the unmodified image as fastai does"),
            w if w == 0.0 => format!("test-time augmentation: the mean over {what}"),
            w => format!("test-time augmentation over {what}, the unmodified image weighted {w}"),
        }
    }

    pub fn wrap(&self, inner: Box<dyn ImageClassifier>) -> Box<dyn ImageClassifier> {
        Box::new(WithTta { inner, views: self.views.clone(), original_weight: self.original_weight })
    }
}

impl TtaViewArgs {
    /// The TTA these options describe (a bad views file is an error naming it).
    pub fn tta(&self) -> Result<Tta> {
        if !(0.0..=1.0).contains(&self.tta_original_weight) {
            anyhow::bail!("--tta-original-weight must be between 0 and 1, not {}", self.tta_original_weight);
        }
        Ok(Tta { views: self.tta_views.views(self.tta_scale)?, original_weight: self.tta_original_weight })
    }
}

impl TtaArgs {
    /// The TTA asked for, if any.
    pub fn chosen(&self) -> Result<Option<Tta>> {
        if self.tta { self.how.tta().map(Some) } else { Ok(None) }
    }
}
