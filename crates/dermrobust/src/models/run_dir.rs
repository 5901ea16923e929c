//! The layout of a training run folder, known in this one place:
//!
//! ```text
//! RUN/manifest.json config.toml split.json history.csv training_curves.svg
//!     checkpoint/      the last epoch (model, optimizer, state.json), resumable
//!     model/           the best model by validation AUROC
//!     metrics.json predictions.csv   the test part's evaluation
//! ```

use std::path::{Path, PathBuf};

use super::checkpoint;

/// A training run folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub const BEST_MODEL: &'static str = "model";
    pub const CHECKPOINT: &'static str = "checkpoint";
    pub const SPLIT: &'static str = "split.json";

    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// The run that holds the model at `path` (a run folder, a model folder or a `model.json`).
    pub fn of_model(path: &Path) -> Option<Self> {
        let model = resolve_model_path(path);
        model.parent().map(|p| RunDir::new(p))
    }

    pub fn best_model(&self) -> PathBuf {
        self.root.join(Self::BEST_MODEL)
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join(Self::CHECKPOINT)
    }
    /// The fresh and old checkpoint folders of an atomic checkpoint swap.
    pub fn checkpoint_swap(&self) -> (PathBuf, PathBuf) {
        (self.root.join(format!("{}.new", Self::CHECKPOINT)), self.root.join(format!("{}.old", Self::CHECKPOINT)))
    }
    pub fn state(&self) -> PathBuf {
        self.checkpoint().join("state.json")
    }
    pub fn split(&self) -> PathBuf {
        self.root.join(Self::SPLIT)
    }
    /// The run's split file, if it exists: its own `split.json`, else the file its manifest names
    /// (`split_file`: a run trained with `--split FILE` uses that file and keeps no copy).
    pub fn existing_split(&self) -> Option<PathBuf> {
        if let Some(own) = Some(self.split()).filter(|p| p.is_file()) {
            return Some(own);
        }
        let manifest: serde_json::Value = dermrobust_core::report::read_json(&self.manifest()).ok()?;
        manifest.get("split_file")?.as_str().map(PathBuf::from).filter(|p| p.is_file())
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }
    pub fn predictions(&self) -> PathBuf {
        self.root.join("predictions.csv")
    }
    pub fn history(&self) -> PathBuf {
        self.root.join("history.csv")
    }
    pub fn curves(&self) -> PathBuf {
        self.root.join("training_curves.svg")
    }
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// The weights file of the best model (its size and time stamp key finished audits).
    pub fn best_weights(&self) -> PathBuf {
        self.best_model().join(checkpoint::WEIGHTS_FILE)
    }
}

/// Resolve a run folder, a model folder or a `model.json` to the model folder.
pub fn resolve_model_path(path: &Path) -> PathBuf {
    let best = path.join(RunDir::BEST_MODEL);
    if best.join(checkpoint::META_FILE).is_file() { best } else { checkpoint::model_dir(path) }
}
