//! Loading any model as a classifier: a dermrobust model or training run folder, or an ONNX file
//! with its sidecar; with test-time augmentation, ensembles and prior correction on top. Also
//! the images a model is evaluated on, read the way the model expects them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dermrobust_core::data::split::TRAIN;
use dermrobust_core::data::{default_cache_dir, DataSpec, Dataset, ImageSet, LabelScheme, LoadOptions, Preprocess, Split};
use dermrobust_core::imaging::remedy::{AppliedRemedy, CaptureRemedy};
use dermrobust_core::imaging::Image;

pub use super::capture::CaptureChoice;

use super::classifier::{learned_prior, DecisionRule, Ensemble, ImageClassifier, PriorCorrected, TrainedModel};
use super::onnx::OnnxModel;
use super::tta::Tta;
use crate::models::run_dir::{resolve_model_path, RunDir};

/// The part name that means "every image of the data, no split" (`--part all`), for auditing
/// a model on an external dataset.
pub const ALL_IMAGES: &str = "all";

/// How a model reads data: its classes (in output order), label scheme and preprocessing, and
/// the capture remedy its images get (the one it was trained with, unless overridden with
/// [`ModelInfo::with_capture`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub classes: Vec<String>,
    pub label_scheme: LabelScheme,
    pub preprocess: Preprocess,
    pub capture: Option<CaptureRemedy>,
}

impl ModelInfo {
    /// The same model with the capture remedy `choice` resolves to.
    pub fn with_capture(mut self, choice: &CaptureChoice) -> ModelInfo {
        self.capture = choice.resolve(self.capture.as_ref());
        self
    }

    /// One image file read the model's way: decoded, preprocessed, and with the capture remedy
    /// applied (the lesion found by Otsu's localisation: a lone file has no mask). Returns the
    /// image and the remedy applied to it.
    pub fn read_image(&self, path: &Path) -> Result<(Image, Option<AppliedRemedy>)> {
        let img = self.preprocess.apply(&dermrobust_core::imaging::io::read_rgb(path)?);
        // Quantised to 8 bits like the pixel cache, so a file and the same image in a dataset
        // give the same input.
        let img = img.quantised_u8();
        match &self.capture {
            None => Ok((img, None)),
            Some(r) => {
                let (out, _, applied) = r.apply(&img, None).with_context(|| format!("capture remedy of {}", path.display()))?;
                let out = out.quantised_u8();
                Ok((out, Some(applied)))
            }
        }
    }
}

/// Whether `path` names an ONNX model.
pub fn is_onnx(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Load the model at `path` (a dermrobust model or run folder, or an `.onnx` file).
pub fn load_model(path: &Path) -> Result<(Box<dyn ImageClassifier>, ModelInfo)> {
    if is_onnx(path) {
        let m = OnnxModel::load(path)?;
        let info = ModelInfo { classes: m.sidecar.classes.clone(), label_scheme: m.sidecar.labels, preprocess: m.sidecar.preprocess(), capture: m.sidecar.capture.clone() };
        Ok((Box::new(m), info))
    } else {
        let m = TrainedModel::load(&resolve_model_path(path))?;
        let info = ModelInfo { classes: m.meta.classes.clone(), label_scheme: m.meta.label_scheme, preprocess: m.meta.preprocess.clone(), capture: m.meta.capture.clone() };
        Ok((super::engine::on_engine(m)?, info))
    }
}

/// The split to use for the model at `model`: `explicit` if given, else the `split.json` of the
/// training run that holds the model, if any.
pub fn split_for(model: &Path, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if is_onnx(model) {
        return None;
    }
    let run = RunDir::of_model(model)?;
    if let Some(split) = run.existing_split() {
        return Some(split);
    }
    // A model of an experiment grid (EXP/models/ARCH/VARIANT/runN) uses the grid's split, EXP/split.json.
    run.root.ancestors().skip(1).find(|a| a.file_name().is_some_and(|n| n == "models")).and_then(|models| models.parent()).map(|exp| exp.join(RunDir::SPLIT)).filter(|p| p.is_file())
}

/// Load `models` as classifiers: each one, or their ensemble; with `tta`. All must share classes,
/// input and capture remedy, the remedy as `capture` resolves it for each (so `--gamma`/`--fov`
/// or `--no-capture-remedy` reconcile models trained with different remedies). The returned
/// information carries the resolved remedy.
pub fn load_classifiers(models: &[PathBuf], ensemble: bool, tta: Option<&Tta>, capture: &CaptureChoice) -> Result<(Vec<Box<dyn ImageClassifier>>, ModelInfo)> {
    if models.is_empty() {
        bail!("no model given");
    }
    let mut loaded = Vec::new();
    let mut info: Option<ModelInfo> = None;
    for p in models {
        let (m, i) = load_model(p)?;
        let i = i.with_capture(capture);
        match &info {
            Some(first) if first.capture != i.capture => bail!(
                "{} was trained with the capture remedy {}, unlike the first model ({}): models audited together must match (or give --gamma/--fov or --no-capture-remedy for all)",
                p.display(),
                i.capture.as_ref().map(CaptureRemedy::describe).unwrap_or_else(|| "none".into()),
                first.capture.as_ref().map(CaptureRemedy::describe).unwrap_or_else(|| "none".into())
            ),
            Some(first) if first.classes != i.classes || first.preprocess != i.preprocess => bail!(
                "{} has classes {:?} at {:?}, unlike the first model's {:?} at {:?}: models audited together must match",
                p.display(),
                i.classes,
                i.preprocess,
                first.classes,
                first.preprocess
            ),
            Some(_) => {}
            None => info = Some(i),
        }
        loaded.push(m);
    }
    let wrap = |m: Box<dyn ImageClassifier>| match tta {
        Some(t) => t.wrap(m),
        None => m,
    };
    let classifiers = if ensemble { vec![wrap(Box::new(Ensemble { members: loaded }))] } else { loaded.into_iter().map(wrap).collect() };
    Ok((classifiers, info.expect("at least one model")))
}

/// `classifiers` corrected to equal class priors when `priors` (training class shares) are
/// given (`--decision balanced`).
pub fn with_priors(classifiers: Vec<Box<dyn ImageClassifier>>, priors: Option<&[f32]>) -> Result<Vec<Box<dyn ImageClassifier>>> {
    match priors {
        None => Ok(classifiers),
        Some(p) => classifiers.into_iter().map(|c| Ok(Box::new(PriorCorrected::new(c, p.to_vec())?) as Box<dyn ImageClassifier>)).collect(),
    }
}

/// The images a model is evaluated or audited on: `data` read with the model's label scheme and
/// preprocessing (through the pixel cache), restricted to `part` of `split` when there is a split
/// and `part` is not [`ALL_IMAGES`]. Classes are put in the model's output order.
pub fn model_data(info: &ModelInfo, data: &DataSpec, split: Option<&Path>, part: &str, skip_bad: bool, quiet: bool) -> Result<(ImageSet, Vec<usize>)> {
    model_data_with_masks(info, data, split, part, skip_bad, quiet, false)
}

/// [`model_data`], with the lesion masks loaded too when `masks` (where the data has them).
/// The model's capture remedy (`info.capture`) is applied to every image here, once.
pub fn model_data_with_masks(info: &ModelInfo, data: &DataSpec, split: Option<&Path>, part: &str, skip_bad: bool, quiet: bool, masks: bool) -> Result<(ImageSet, Vec<usize>)> {
    let ds = Dataset::open(data, info.label_scheme)?;
    let masks = masks || info.capture.as_ref().is_some_and(CaptureRemedy::uses_masks);
    let opts = LoadOptions { cache_dir: Some(default_cache_dir()), skip_bad, quiet, masks };
    let (mut set, report) = ImageSet::load(&ds, &info.preprocess, &opts)?;
    if !report.skipped.is_empty() && !quiet {
        eprintln!("skipped {} unreadable images (first: {}: {})", report.skipped.len(), report.skipped[0].0, report.skipped[0].1);
    }
    if let Some(remedy) = &info.capture {
        apply_capture_remedy(&mut set, remedy, quiet)?;
    }
    reorder_classes(&mut set, &info.classes).with_context(|| format!("data {data}"))?;
    if split.is_none() && part != ALL_IMAGES {
        // Loud, not silent: without a split there is no test part to restrict to.
        eprintln!("note: no split file for this model, so every image of {data} is used (give --split FILE for its '{part}' part, or --part {ALL_IMAGES} to say so)");
    }
    let indices: Vec<usize> = match split.filter(|_| part != ALL_IMAGES) {
        Some(p) => {
            let split = Split::load(p)?;
            let part_index = split.part_index(part)?;
            let idx: Vec<usize> = (0..set.len()).filter(|&i| split.assignment.get(&set.ids[i]) == Some(&part_index)).collect();
            if idx.is_empty() {
                bail!(
                    "no image of {data} is in part '{part}' of the split {}: the split was made for other data. To use every image of an external dataset, give --part {ALL_IMAGES}",
                    p.display()
                );
            }
            idx
        }
        None => (0..set.len()).collect(),
    };
    if indices.is_empty() {
        bail!("{data} has no image");
    }
    Ok((set, indices))
}

/// Apply Mishra's capture `remedy` to every image of `set` (the one place images get it, for
/// training and for every use of a trained model), saying where the lesions were found.
pub fn apply_capture_remedy(set: &mut ImageSet, remedy: &CaptureRemedy, quiet: bool) -> Result<()> {
    let (by_mask, by_otsu) = set.apply_capture_remedy(remedy)?;
    if !quiet {
        let fov = if remedy.fov.is_some() { format!(" (lesion found from its mask in {by_mask} images, by Otsu's automatic localisation in {by_otsu})") } else { String::new() };
        eprintln!("capture remedy: {}{fov}", remedy.describe());
    }
    Ok(())
}

/// Put the set's classes in `model_classes` order (relabelling images), or fail if the data has
/// classes the model does not know.
pub fn reorder_classes(set: &mut ImageSet, model_classes: &[String]) -> Result<()> {
    if set.classes == model_classes {
        return Ok(());
    }
    let map: Vec<usize> = set
        .classes
        .iter()
        .map(|c| model_classes.iter().position(|m| m == c).with_context(|| format!("the data's class '{c}' is not among the model's classes {model_classes:?} (data classes {:?})", set.classes)))
        .collect::<Result<_>>()?;
    for l in set.labels.iter_mut() {
        *l = map[*l];
    }
    set.classes = model_classes.to_vec();
    Ok(())
}

/// The prior that `--decision balanced` corrects `models`' probabilities with ([`learned_prior`]):
/// equal shares for runs trained with balanced classes (their `config.toml`), else the class shares
/// of `split`'s training part; `None` for `argmax`.
pub fn decision_priors(decision: DecisionRule, set: &ImageSet, split: Option<&Path>, models: &[PathBuf]) -> Result<Option<Vec<f32>>> {
    match decision {
        DecisionRule::Argmax => Ok(None),
        DecisionRule::Balanced => {
            let balanced = models.iter().map(|m| trained_with_balanced_classes(m)).collect::<Result<Vec<bool>>>()?;
            if balanced.iter().any(|&b| b != balanced[0]) {
                bail!("--decision balanced: some of the models were trained with balanced classes (--oversample or --class-weights balanced) and some not, so no one prior corrects them all: audit them separately");
            }
            let Some(path) = split else { bail!("--decision balanced needs the training split for the class shares: give --split") };
            let split = Split::load(path)?;
            let train_part = split.part_index(TRAIN)?;
            let train: Vec<usize> = (0..set.len()).filter(|&i| split.assignment.get(&set.ids[i]) == Some(&train_part)).collect();
            let balanced_training = balanced.first().copied().unwrap_or(false);
            Ok(Some(learned_prior(balanced_training, &set.labels, &train, set.num_classes()).with_context(|| format!("training part of {}", path.display()))?))
        }
    }
}

/// Whether the run holding `model` balanced its classes in training (`oversample`, or
/// `class_weights = "balanced"` in its `config.toml`); false where there is no run configuration
/// (an ONNX file, a bare model folder).
fn trained_with_balanced_classes(model: &Path) -> Result<bool> {
    /// The part of a run's training configuration that sets the class balance its loss saw.
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct ClassBalance {
        oversample: bool,
        class_weights: String,
    }
    let Some(config) = RunDir::of_model(model).map(|run| run.config()).filter(|c| c.is_file()) else { return Ok(false) };
    let text = std::fs::read_to_string(&config).with_context(|| format!("cannot read {}", config.display()))?;
    let balance: ClassBalance = toml::from_str(&text).with_context(|| format!("{}: not a training configuration", config.display()))?;
    Ok(balance.oversample || balance.class_weights == "balanced")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run folder holding `model/model.json` and a `config.toml` with `config`.
    fn run_with(root: &Path, config: &str) -> PathBuf {
        std::fs::create_dir_all(root.join("model")).unwrap();
        std::fs::write(root.join("model/model.json"), "{}").unwrap();
        std::fs::write(root.join("config.toml"), config).unwrap();
        root.to_path_buf()
    }

    #[test]
    fn balanced_decision_does_not_correct_a_model_trained_on_balanced_classes_again() {
        let dir = tempfile::tempdir().unwrap();
        let oversampled = run_with(&dir.path().join("a"), "epochs = 3\noversample = true\nclass_weights = \"none\"\n");
        let weighted = run_with(&dir.path().join("b"), "oversample = false\nclass_weights = \"balanced\"\n");
        let plain = run_with(&dir.path().join("c"), "oversample = false\nclass_weights = \"none\"\n");
        assert!(trained_with_balanced_classes(&oversampled).unwrap());
        assert!(trained_with_balanced_classes(&oversampled.join("model")).unwrap());
        assert!(trained_with_balanced_classes(&weighted).unwrap());
        assert!(!trained_with_balanced_classes(&plain).unwrap());
        assert!(!trained_with_balanced_classes(&dir.path().join("model.onnx")).unwrap());
        let broken = run_with(&dir.path().join("d"), "oversample = 3\n");
        let err = trained_with_balanced_classes(&broken).unwrap_err();
        assert!(format!("{err:#}").contains("config.toml"), "{err:#}");

        // Labels 0,0,0,1 in training: the data's shares for a plain model, equal shares otherwise.
        let labels = [0, 0, 0, 1];
        assert_eq!(learned_prior(false, &labels, &[0, 1, 2, 3], 2).unwrap(), vec![0.75, 0.25]);
        assert_eq!(learned_prior(true, &labels, &[0, 1, 2, 3], 2).unwrap(), vec![0.5, 0.5]);
    }
}
