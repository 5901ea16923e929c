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
//! tract gives no gradients, so an ONNX model takes part in every black-box audit but not in
//! gradient attacks or gradient explanations.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dermrobust_core::data::{LabelScheme, Preprocess};
use dermrobust_core::imaging::Image;
use serde::Deserialize;
use tract_onnx::prelude::*;

use super::classifier::{softmax, ImageClassifier};

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

type Plan = std::sync::Arc<TypedRunnableModel>;

/// An ONNX network with its sidecar, as an [`ImageClassifier`].
pub struct OnnxModel {
    pub path: PathBuf,
    pub sidecar: OnnxSidecar,
    /// The plan is compiled for a fixed batch; smaller batches are padded.
    batch: usize,
    plan: Plan,
}

impl OnnxModel {
    const BATCH: usize = 16;

    pub fn load(path: &Path) -> Result<Self> {
        let sidecar = OnnxSidecar::load(&OnnxSidecar::path_for(path)?)?;
        let s = sidecar.input_size;
        let batch = Self::BATCH;
        let plan = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| anyhow::anyhow!("{}: not a readable ONNX model: {e:#}", path.display()))?
            .with_input_fact(0, f32::fact([batch, 3, s, s]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow::anyhow!("{}: cannot prepare the ONNX model for input [{batch}, 3, {s}, {s}]: {e:#}", path.display()))?;
        let model = OnnxModel { path: path.to_path_buf(), sidecar, batch, plan };
        // One forward pass now, so a network whose outputs disagree with the sidecar fails here.
        let probe = model.run_batch(&[Image::filled(3, s, s, 0.5)])?;
        if probe[0].len() != model.sidecar.classes.len() {
            bail!("{} returns {} outputs but its sidecar names {} classes", path.display(), probe[0].len(), model.sidecar.classes.len());
        }
        Ok(model)
    }

    fn run_batch(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let s = self.sidecar.input_size;
        let plane = s * s;
        let mut data = vec![0f32; self.batch * 3 * plane];
        for (k, img) in images.iter().enumerate() {
            if img.width != s || img.height != s || img.channels != 3 {
                bail!("{} expects {s}x{s} RGB images, got {}x{}x{}", self.path.display(), img.width, img.height, img.channels);
            }
            for c in 0..3 {
                let (m, sd) = (self.sidecar.mean[c], self.sidecar.std[c]);
                let out = &mut data[(k * 3 + c) * plane..(k * 3 + c + 1) * plane];
                for (o, &v) in out.iter_mut().zip(&img.data[c * plane..(c + 1) * plane]) {
                    *o = (v - m) / sd;
                }
            }
        }
        let input: Tensor = tract_ndarray::Array4::from_shape_vec((self.batch, 3, s, s), data)?.into();
        let outputs = self.plan.run(tvec!(input.into())).map_err(|e| anyhow::anyhow!("{}: inference failed: {e:#}", self.path.display()))?;
        let view = outputs[0].to_plain_array_view::<f32>().map_err(|e| anyhow::anyhow!("{}: output is not f32: {e:#}", self.path.display()))?;
        let flat: Vec<f32> = view.iter().copied().collect();
        let k = flat.len() / self.batch;
        Ok(flat.chunks(k).take(images.len()).map(|row| match self.sidecar.output {
            OutputKind::Logits => softmax(row),
            OutputKind::Probabilities => row.to_vec(),
        }).collect())
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
        for chunk in images.chunks(self.batch) {
            out.extend(self.run_batch(chunk)?);
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("ONNX {} ({} classes)", self.path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default(), self.sidecar.classes.len())
    }
}
