//! What every audit audits: the models (each, or their ensemble, with TTA and a decision rule)
//! and the images (a dataset read the models' way, a split part, an optional subsample). One
//! definition, so every audit command takes the same options and means the same by them.

use std::path::{Path, PathBuf};

use anyhow::Result;
use dermrobust_core::data::{DataSpec, ImageSet};

use super::runner::{run_audit, Audit, AuditOutcome, AuditRun};
use crate::evaluation::{decision_priors, load_classifiers, model_data_with_masks, split_for, with_priors, CaptureChoice, DecisionRule, ImageClassifier, ModelInfo, Tta};

/// The models and images of an audit.
#[derive(Clone, Debug)]
pub struct AuditSubject {
    /// Model folders, training run folders or ONNX files.
    pub models: Vec<PathBuf>,
    /// Audit the ensemble (mean probability) of all models instead of each one.
    pub ensemble: bool,
    pub tta: Option<Tta>,
    pub data: DataSpec,
    /// The split; default: the training run's `split.json` beside the first model.
    pub split: Option<PathBuf>,
    /// The split part (`test`), or `all`.
    pub part: String,
    pub decision: DecisionRule,
    /// Audit at most this many images (a seeded random subset of the part).
    pub max_images: Option<usize>,
    /// Skip unreadable images instead of failing.
    pub skip_bad: bool,
    /// Mishra's capture remedy: the models' recorded one by default.
    pub capture: CaptureChoice,
}

/// The images of an audit: `indices` get every condition; `pool` is the whole split part (a
/// superset), among which audits that compare images with each other (natural pairs) look.
pub struct AuditImages<'a> {
    pub set: &'a ImageSet,
    pub indices: &'a [usize],
    pub pool: &'a [usize],
}

/// Loaded models and data, ready for an audit.
pub struct Prepared {
    pub classifiers: Vec<Box<dyn ImageClassifier>>,
    pub info: ModelInfo,
    pub set: ImageSet,
    pub pool: Vec<usize>,
    pub indices: Vec<usize>,
    pub split: Option<PathBuf>,
}

impl Prepared {
    pub fn images(&self) -> AuditImages<'_> {
        AuditImages { set: &self.set, indices: &self.indices, pool: &self.pool }
    }
}

impl AuditSubject {
    /// The split file in use.
    pub fn split_file(&self) -> Option<PathBuf> {
        split_for(&self.models[0], self.split.as_deref())
    }

    /// What decides an audit's results besides the audit's own settings (for its resume key).
    pub fn key(&self) -> serde_json::Value {
        let mut key = serde_json::json!({
            "ensemble": self.ensemble,
            "tta": self.tta,
            "decision": self.decision,
            "split": self.split_file(),
            "part": self.part,
        });
        // Only a remedy chosen here enters the key (a recorded one is part of the models, whose
        // files the key fingerprints), so keys of audits without one are unchanged.
        if self.capture != CaptureChoice::Recorded {
            key["capture"] = serde_json::to_value(&self.capture).unwrap_or_default();
        }
        key
    }

    /// Prepare the models and images and run `audit` on them into `out` (reusing a finished
    /// audit there with `resume`).
    pub fn run<A: Audit>(&self, audit: &A, out: &Path, resume: bool, quiet: bool) -> Result<AuditOutcome<A>> {
        let prepared = self.prepare_with_masks(quiet, audit.needs_masks())?;
        let run = AuditRun { data: self.data.to_string(), model_paths: &self.models, subject: self.key(), out, resume, quiet };
        run_audit(audit, &prepared.classifiers, &prepared.images(), &run)
    }

    /// Load the models and the data.
    pub fn prepare(&self, quiet: bool) -> Result<Prepared> {
        self.prepare_with_masks(quiet, false)
    }

    /// [`AuditSubject::prepare`], with the lesion masks loaded too when `masks`.
    pub fn prepare_with_masks(&self, quiet: bool, masks: bool) -> Result<Prepared> {
        let split = self.split_file();
        let (classifiers, info) = load_classifiers(&self.models, self.ensemble, self.tta.as_ref(), &self.capture)?;
        let (set, pool) = model_data_with_masks(&info, &self.data, split.as_deref(), &self.part, self.skip_bad, quiet, masks)?;
        let priors = decision_priors(self.decision, &set, split.as_deref(), &self.models)?;
        let classifiers = with_priors(classifiers, priors.as_deref())?;
        let indices = super::subsample(&pool, self.max_images, 0);
        if !quiet {
            eprintln!("auditing {} images{}", indices.len(), describe_part(split.as_deref(), &self.part));
        }
        Ok(Prepared { classifiers, info, set, pool, indices, split })
    }
}

fn describe_part(split: Option<&Path>, part: &str) -> String {
    match split {
        Some(p) if part != crate::evaluation::ALL_IMAGES => format!(" (part '{part}' of {})", p.display()),
        _ => " (all images of the data)".to_string(),
    }
}
