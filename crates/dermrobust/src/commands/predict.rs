//! `dermrobust predict`: class probabilities of image files.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::evaluation::{argmax, load_model};

#[derive(clap::Args)]
pub struct PredictArgs {
    /// A model folder, a training run folder, or an ONNX file with its sidecar TOML.
    #[arg(long)]
    pub model: PathBuf,
    /// Image files (JPEG or PNG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Mishra's capture remedy (default: the one the model was trained with; a file has no
    /// lesion mask, so --fov finds the lesion by Otsu's automatic localisation).
    #[command(flatten)]
    pub capture: super::ModelCaptureArgs,
}

#[derive(Serialize)]
struct Prediction {
    file: String,
    predicted_class: String,
    probabilities: std::collections::BTreeMap<String, f32>,
}

pub fn run(a: &PredictArgs) -> Result<()> {
    let (model, info) = load_model(&a.model)?;
    let info = info.with_capture(&a.capture.choice()?);
    if let Some(r) = &info.capture {
        eprintln!("capture remedy: {}{}", r.describe(), if r.fov.is_some() { " (image files have no mask: the lesion is found by Otsu's automatic localisation)" } else { "" });
    }
    let images = a.images.iter().map(|p| info.read_image(p).map(|(img, _)| img)).collect::<Result<Vec<_>>>()?;
    let probs = model.predict(&images)?;
    let rows: Vec<Prediction> = a
        .images
        .iter()
        .zip(&probs)
        .map(|(f, p)| Prediction {
            file: f.display().to_string(),
            predicted_class: model.classes()[argmax(p)].clone(),
            probabilities: model.classes().iter().cloned().zip(p.iter().copied()).collect(),
        })
        .collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let header: Vec<String> = model.classes().iter().map(|c| format!("{c:>8}")).collect();
        println!("{:<40} {:>10} {}", "file", "predicted", header.join(""));
        for r in &rows {
            let ps: Vec<String> = model.classes().iter().map(|c| format!("{:>8.4}", r.probabilities[c])).collect();
            println!("{:<40} {:>10} {}", r.file, r.predicted_class, ps.join(""));
        }
    }
    Ok(())
}
