//! `dermrobust export`: write a trained dermrobust model as an ONNX file with its sidecar TOML.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use burn::module::Module;
use dermrobust_core::imaging::Image;
use rand::{Rng, SeedableRng};

use crate::evaluation::onnx::OnnxModel;
use crate::evaluation::{ImageClassifier, TrainedModel};
use crate::models::checkpoint;
use crate::models::onnx_export::export_onnx;
use crate::models::run_dir::resolve_model_path;

#[derive(clap::Args)]
#[command(after_help = "The ONNX graph (operator set 13) takes images normalised with the model's mean and std, named \
                  `input` [batch, 3, S, S] with a symbolic batch, and returns `logits` [batch, classes]. The sidecar \
                  OUT.toml beside it names the classes, input size, mean, std, resizing and label scheme, so \
                  `predict`, `evaluate`, `replay` and every black-box audit take OUT.onnx like the model itself.\n\n\
                  Example: dermrobust export --model runs/r18 --onnx exports/r18.onnx")]
pub struct ExportArgs {
    /// The model to export: a training run folder (its best model), a model folder, or its model.json.
    #[arg(long)]
    pub model: PathBuf,
    /// The ONNX file to write (ending in .onnx); the sidecar <name>.toml is written beside it.
    #[arg(long)]
    pub onnx: PathBuf,
    /// Skip the check that the ONNX file, run by tract, gives the model's probabilities.
    #[arg(long)]
    pub no_check: bool,
}

/// The largest probability difference the check accepts between the model and its export.
pub const CHECK_TOLERANCE: f32 = 1e-4;

pub fn run(a: &ExportArgs) -> Result<()> {
    let model_dir = resolve_model_path(&a.model);
    let device = crate::device::inference_device();
    let (model, meta) = checkpoint::load(&model_dir, &device)?;
    // The inference model with batch norms folded into the convolutions (ResNet, VGG).
    let model = model.valid().fold_batch_norm();
    export_onnx(&model, &meta, &a.onnx)?;
    println!("wrote {} and {}", a.onnx.display(), a.onnx.with_extension("toml").display());
    if !a.no_check {
        let diff = check(&model_dir, &a.onnx)?;
        println!("check: the ONNX model (tract) and the dermrobust model agree within {diff:.1e} in probability on 8 test images");
    }
    Ok(())
}

/// The largest difference in probability between the model at `model_dir` and its ONNX export
/// at `onnx` on a few seeded random images; an error above [`CHECK_TOLERANCE`].
pub fn check(model_dir: &Path, onnx: &Path) -> Result<f32> {
    let ours = TrainedModel::load(model_dir)?;
    let theirs = OnnxModel::load(onnx)?;
    let s = ours.input_size();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x0e8a);
    let images: Vec<Image> = (0..8).map(|_| Image::new(3, s, s, (0..3 * s * s).map(|_| rng.random::<f32>()).collect())).collect();
    let (p, q) = (ours.predict(&images)?, theirs.predict(&images)?);
    let diff = p.iter().flatten().zip(q.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    if diff.is_nan() || diff > CHECK_TOLERANCE {
        bail!("the ONNX export {} differs from the model by up to {diff} in probability (more than {CHECK_TOLERANCE})", onnx.display());
    }
    Ok(diff)
}
