//! Models from other frameworks: an ONNX file (e.g. exported by PyTorch) run by tract, a pure-Rust
//! inference engine, with a sidecar TOML that says what the network expects and returns.
//!
//! ```toml
//! # model.toml beside model.onnx (or <name>.toml beside <name>.onnx)
//! classes = ["nv", "mel"]          # class names in the order of the network's outputs
//! input_size = 224                 # side of the square input
//! mean = [0.485, 0.456, 0.406]     # the network gets (pixel in [0, 1] - mean) / std
//! std = [0.229, 0.224, 0.225]
//! resize = "stretch"               # or "centre-crop" (with centre_crop = 0.8)
//! labels = "native"                # label scheme to read datasets with (native, ham7, ...)
//! output = "logits"                # or "probabilities"
//! ```
//!
//! `--engine ort` runs it on ONNX Runtime instead ([`super::engine`]).
//!
//! tract gives no gradients, so an ONNX model takes part in every black-box audit but not in
//! gradient attacks or gradient explanations.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dermrobust_core::data::{LabelScheme, Preprocess};
use dermrobust_core::imaging::Image;
use serde::Deserialize;

use super::classifier::{softmax, ImageClassifier};
use super::engine::{pack_normalised, Engine, OnnxRunner};

/// What the sidecar TOML of an ONNX model says.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSidecar {
    pub classes: Vec<String>,
    pub input_size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    #[serde(default)]
    pub resize: Resize,
    pub centre_crop: Option<f32>,
    #[serde(default)]
    pub labels: LabelScheme,
    #[serde(default)]
    pub output: OutputKind,
    /// Informational: the name of the network's input.
    pub input_name: Option<String>,
    /// Mishra's capture remedy the network expects (`[capture]`: gamma, fov, fov_margin), which
    /// dermrobust applies to every image before it, as for its own models.
    #[serde(default)]
    pub capture: Option<dermrobust_core::imaging::remedy::CaptureRemedy>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// The whole photograph resized to a square.
    #[default]
    Stretch,
    /// A centre square crop of `centre_crop` of the short side, then resized.
    CentreCrop,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    /// Unnormalised scores: dermrobust applies the softmax.
    #[default]
    Logits,
    /// The network already returns probabilities.
    Probabilities,
}

impl OnnxSidecar {
    /// The sidecar of `onnx`: `<name>.toml` beside it, else `model.toml` in its folder.
    pub fn path_for(onnx: &Path) -> Result<PathBuf> {
        let own = onnx.with_extension("toml");
        let shared = onnx.parent().unwrap_or(Path::new(".")).join("model.toml");
        [own.clone(), shared.clone()].into_iter().find(|p| p.is_file()).with_context(|| {
            format!("{} needs a sidecar {} (or {}) naming its classes, input size, mean and std", onnx.display(), own.display(), shared.display())
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let s: OnnxSidecar = toml::from_str(&text).with_context(|| format!("{}: not a valid ONNX sidecar", path.display()))?;
        if s.classes.len() < 2 {
            bail!("{}: `classes` must name at least two classes, in output order", path.display());
        }
        if s.input_size < 8 {
            bail!("{}: input_size {} is too small", path.display(), s.input_size);
        }
        if s.std.iter().any(|&v| !(v > 0.0 && v.is_finite())) || s.mean.iter().any(|v| !v.is_finite()) {
            bail!("{}: mean must be finite and std positive", path.display());
        }
        match (s.resize, s.centre_crop) {
            (Resize::CentreCrop, None) => bail!("{}: resize = \"centre-crop\" needs centre_crop (a fraction of the short side)", path.display()),
            (_, Some(f)) if !(f > 0.0 && f <= 1.0) => bail!("{}: centre_crop must be in (0, 1], got {f}", path.display()),
            _ => {}
        }
        Ok(s)
    }

    pub fn preprocess(&self) -> Preprocess {
        Preprocess { size: self.input_size, centre_crop: if self.resize == Resize::CentreCrop { self.centre_crop } else { None } }
    }
}

/// An ONNX network with its sidecar, as an [`ImageClassifier`], run by tract or (with
/// `--engine ort`) ONNX Runtime.
pub struct OnnxModel {
    pub path: PathBuf,
    pub sidecar: OnnxSidecar,
    runner: OnnxRunner,
}

impl OnnxModel {
    /// Images per forward pass.
    const BATCH: usize = 64;

    /// Load on the engine chosen for this process ([`super::engine::engine`]).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_on(path, super::engine::engine())
    }

    /// Load on `engine` (tract unless it is [`Engine::Ort`]).
    pub fn load_on(path: &Path, engine: Engine) -> Result<Self> {
        let sidecar = OnnxSidecar::load(&OnnxSidecar::path_for(path)?)?;
        let s = sidecar.input_size;
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let runner = OnnxRunner::new(engine, &bytes, s, &path.display().to_string())?;
        let model = OnnxModel { path: path.to_path_buf(), sidecar, runner };
        // One forward pass now, so a network whose outputs disagree with the sidecar fails here.
        let probe = model.run_batch(&[Image::filled(3, s, s, 0.5)])?;
        if probe[0].len() != model.sidecar.classes.len() {
            bail!("{} returns {} outputs but its sidecar names {} classes", path.display(), probe[0].len(), model.sidecar.classes.len());
        }
        Ok(model)
    }

    fn run_batch(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let s = self.sidecar.input_size;
        let what = self.path.display().to_string();
        let data = pack_normalised(images, s, self.sidecar.mean, self.sidecar.std, &what)?;
        let rows = self.runner.run(data, images.len(), s, &what)?;
        Ok(rows
            .iter()
            .map(|row| match self.sidecar.output {
                OutputKind::Logits => softmax(row),
                OutputKind::Probabilities => row.to_vec(),
            })
            .collect())
    }
}

impl ImageClassifier for OnnxModel {
    fn classes(&self) -> &[String] {
        &self.sidecar.classes
    }

    fn input_size(&self) -> usize {
        self.sidecar.input_size
    }

    fn predict(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(Self::BATCH) {
            out.extend(self.run_batch(chunk)?);
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        let name = self.path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
        match self.runner.engine() {
            Engine::Ort => format!("ONNX {name} ({} classes) on ONNX Runtime", self.sidecar.classes.len()),
            _ => format!("ONNX {name} ({} classes)", self.sidecar.classes.len()),
        }
    }
}
