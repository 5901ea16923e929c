//! Evaluation: predictions of any [`ImageClassifier`] on a set, their metrics, and the files
//! `metrics.json` and `predictions.csv`.

pub mod capture;
pub mod classifier;
pub mod engine;
pub mod gradients;
pub mod load;
pub mod metrics;
pub mod onnx;
pub mod tta;

use std::path::Path;

use anyhow::Result;
use dermrobust_core::data::{DataSpec, ImageSet};
use dermrobust_core::report::write_json;
use dermrobust_core::imaging::Image;

pub use classifier::{class_shares, learned_prior, DecisionRule, Ensemble, ImageClassifier, PriorCorrected, TrainedModel};
pub use tta::{dihedral_views, flip_views, maron_tta_views, Tta, TtaViews, WithTta, FASTAI_TTA_BETA, MARON_TTA_SCALE};
pub use capture::{CaptureArgs, CaptureChoice, ModelCaptureArgs};
pub use load::{apply_capture_remedy, decision_priors, is_onnx, load_classifiers, load_model, model_data, model_data_with_masks, split_for, with_priors, ModelInfo, ALL_IMAGES};
pub use metrics::{argmax, evaluate, headline_auroc, EvalMetrics};

/// Probabilities for images `indices` of `set`, in batches, with a progress bar.
pub fn predict_set(classifier: &dyn ImageClassifier, set: &ImageSet, indices: &[usize], quiet: bool) -> Result<Vec<Vec<f32>>> {
    let bar = dermrobust_core::progress::bar(indices.len() as u64, "predicting", quiet);
    let mut out = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(256) {
        let images: Vec<Image> = chunk.iter().map(|&i| set.image(i)).collect();
        out.extend(classifier.predict(&images)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Write `predictions.csv`: id, lesion, true class, predicted class, one probability per class.
pub fn write_predictions(path: &Path, set: &ImageSet, indices: &[usize], probs: &[Vec<f32>]) -> Result<()> {
    let mut header: Vec<String> = ["image_id", "lesion_id", "true_class", "predicted_class"].iter().map(|s| s.to_string()).collect();
    header.extend(set.classes.iter().map(|c| format!("p_{c}")));
    let rows: Vec<Vec<String>> = indices
        .iter()
        .zip(probs)
        .map(|(&i, p)| {
            let mut row = vec![set.ids[i].clone(), set.groups[i].clone(), set.classes[set.labels[i]].clone(), set.classes[argmax(p)].clone()];
            row.extend(p.iter().map(|v| format!("{v:.6}")));
            row
        })
        .collect();
    dermrobust_core::report::write_table(path, &header, &rows)
}

/// Evaluate the model at `model` (any kind [`load_model`] reads) on `part` of `data`, with `tta`
/// if given: write `metrics.json` and `predictions.csv` into `out`. Returns the metrics and the
/// classifier's description.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_model(model: &Path, data: &DataSpec, split: Option<&Path>, part: &str, tta: Option<&Tta>, capture: &CaptureChoice, skip_bad: bool, seed: u64, out: &Path, quiet: bool) -> Result<(EvalMetrics, String)> {
    let (classifier, info) = load_model(model)?;
    let info = info.with_capture(capture);
    let (set, indices) = model_data(&info, data, split, part, skip_bad, quiet)?;
    let classifier = match tta {
        Some(t) => t.wrap(classifier),
        None => classifier,
    };
    let probs = predict_set(classifier.as_ref(), &set, &indices, quiet)?;
    let labels: Vec<usize> = indices.iter().map(|&i| set.labels[i]).collect();
    let metrics = evaluate(&labels, &probs, &set.classes, seed)?;
    std::fs::create_dir_all(out)?;
    write_json(&out.join("metrics.json"), &metrics)?;
    write_predictions(&out.join("predictions.csv"), &set, &indices, &probs)?;
    Ok((metrics, classifier.describe()))
}
