//! Mishra et al.'s capture remedies (gamma correction, field-of-view reduction) as options of
//! every command that loads images. The remedy itself is a pure image operation
//! ([`dermrobust_core::imaging::remedy`]); it is applied where images are loaded for a model
//! ([`super::load::model_data_with_masks`], training's `prepare_data`, `predict`), so every path
//! applies it the same way.
//!
//! A training run records its remedy in the model's metadata (`model.json`, `capture`), and
//! evaluation, prediction, replay, explanations and audits apply the model's recorded remedy by
//! default: a model is judged on images prepared as it was trained. Giving `--gamma` or `--fov`
//! replaces the recorded remedy with exactly the one given; `--no-capture-remedy` applies none.

use anyhow::{bail, Result};
use dermrobust_core::imaging::remedy::{CaptureRemedy, FovSource, DEFAULT_FOV_MARGIN};
use serde::{Deserialize, Serialize};

/// The capture remedy options (one definition, flattened into `train` and, through
/// [`ModelCaptureArgs`], into every command that runs a model).
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureArgs {
    /// Mishra's gamma correction of every image before the model sees it: out = in^(1/GAMMA)
    /// (Mishra et al.: 1.2-1.5).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f32>,
    /// Mishra's field-of-view reduction: the view moved and zoomed onto the lesion, found from its
    /// mask (`mask`; images without a mask fall back to `auto`) or by Otsu's threshold on the
    /// blurred image (`auto`); the per-image records say which.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov: Option<FovSource>,
    /// The lesion's bounding box times this fills the reduced field of view.
    #[arg(long, default_value_t = DEFAULT_FOV_MARGIN)]
    pub fov_margin: f32,
}

impl Default for CaptureArgs {
    fn default() -> Self {
        CaptureArgs { gamma: None, fov: None, fov_margin: DEFAULT_FOV_MARGIN }
    }
}

impl CaptureArgs {
    /// Whether any remedy was asked for.
    pub fn given(&self) -> bool {
        self.gamma.is_some() || self.fov.is_some()
    }

    /// The remedy asked for (validated), or `None`.
    pub fn remedy(&self) -> Result<Option<CaptureRemedy>> {
        if self.fov.is_none() && self.fov_margin != DEFAULT_FOV_MARGIN {
            bail!("--fov-margin is a setting of --fov: give --fov mask or --fov auto too");
        }
        if !self.given() {
            return Ok(None);
        }
        let r = CaptureRemedy { gamma: self.gamma, fov: self.fov, fov_margin: self.fov_margin, ..Default::default() };
        r.validate()?;
        Ok(Some(r))
    }
}

/// Which capture remedy a model's images get.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureChoice {
    /// The remedy recorded with the model when it was trained (none for models trained without).
    #[default]
    Recorded,
    /// No remedy, whatever the model recorded.
    Off,
    /// This remedy instead of the recorded one.
    Use(CaptureRemedy),
}

impl CaptureChoice {
    /// The remedy to apply for a model that recorded `recorded`.
    pub fn resolve(&self, recorded: Option<&CaptureRemedy>) -> Option<CaptureRemedy> {
        match self {
            CaptureChoice::Recorded => recorded.cloned(),
            CaptureChoice::Off => None,
            CaptureChoice::Use(r) => Some(r.clone()),
        }
    }
}

/// The capture options of commands that run a trained model: the remedy, or none.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ModelCaptureArgs {
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Apply no capture remedy, not even the one the model was trained with.
    #[arg(long)]
    pub no_capture_remedy: bool,
}

impl ModelCaptureArgs {
    /// The choice: the model's recorded remedy unless `--gamma`/`--fov` or `--no-capture-remedy`.
    pub fn choice(&self) -> Result<CaptureChoice> {
        let given = self.capture.remedy()?;
        match (given, self.no_capture_remedy) {
            (Some(_), true) => bail!("--no-capture-remedy contradicts --gamma/--fov: give one or the other"),
            (Some(r), false) => Ok(CaptureChoice::Use(r)),
            (None, true) => Ok(CaptureChoice::Off),
            (None, false) => Ok(CaptureChoice::Recorded),
        }
    }
}
