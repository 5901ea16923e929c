//! Evaluation: predictions of any [`ImageClassifier`] on a set, their metrics, and the files
//! `metrics.json` and `predictions.csv`.

pub mod classifier;
pub mod metrics;

use std::path::Path;

use anyhow::Result;
use dermrobust_core::data::ImageSet;
use dermrobust_core::imaging::Image;

pub use classifier::{maron_tta_views, Ensemble, ImageClassifier, TrainedModel, WithTta};
pub use metrics::{argmax, evaluate, EvalMetrics};

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
