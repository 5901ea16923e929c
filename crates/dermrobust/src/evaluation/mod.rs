//! Evaluation: predictions of any [`ImageClassifier`] on a set, their metrics, and the files
//! `metrics.json` and `predictions.csv`.

pub mod classifier;
pub mod metrics;
pub mod tta;

use std::path::Path;

use anyhow::Result;
use dermrobust_core::data::{default_cache_dir, DataSpec, Dataset, ImageSet, LoadOptions, Split};
use dermrobust_core::imaging::Image;

pub use classifier::{class_shares, DecisionRule, Ensemble, ImageClassifier, PriorCorrected, TrainedModel};
pub use tta::{dihedral_views, flip_views, maron_tta_views, TtaViews, WithTta, FASTAI_TTA_BETA, MARON_TTA_SCALE};
pub use metrics::{argmax, evaluate, EvalMetrics};

/// The images a model is evaluated or audited on: `data` read with the model's label scheme and
/// preprocessing (through the pixel cache), restricted to `part` of `split` when one is given.
pub fn model_data(model: &TrainedModel, data: &DataSpec, split: Option<&Path>, part: &str, skip_bad: bool, quiet: bool) -> Result<(ImageSet, Vec<usize>)> {
    let ds = Dataset::open(data, model.meta.label_scheme)?;
    if ds.classes != model.meta.classes {
        anyhow::bail!("the data's classes {:?} differ from the model's {:?}", ds.classes, model.meta.classes);
    }
    let opts = LoadOptions { cache_dir: Some(default_cache_dir()), skip_bad, quiet, ..Default::default() };
    let (set, _) = ImageSet::load(&ds, &model.meta.preprocess, &opts)?;
    let indices: Vec<usize> = match split {
        Some(p) => {
            let split = Split::load(p)?;
            let part = split.part_index(part)?;
            (0..set.len()).filter(|&i| split.assignment.get(&set.ids[i]) == Some(&part)).collect()
        }
        None => (0..set.len()).collect(),
    };
    if indices.is_empty() {
        anyhow::bail!("no image of {data} is in part '{part}' of the split");
    }
    Ok((set, indices))
}

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
