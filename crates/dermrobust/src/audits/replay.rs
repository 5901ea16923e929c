//! Rebuilding a perturbed image from its record: every image an audit perturbs is described by an
//! `ImageOp` (in the per-image CSV's `op` column, as JSON), so the original and the record give
//! back the very image the model saw.

use std::path::Path;

use anyhow::{bail, Context, Result};
use dermrobust_core::data::DataSpec;
use dermrobust_core::imaging::{Image, ImageOp};

use crate::evaluation::{argmax, load_model, model_data, CaptureChoice, ImageClassifier, ALL_IMAGES};

/// One record of a per-image CSV: which image, and the operation applied to it.
#[derive(Clone, Debug)]
pub struct Record {
    pub image_id: String,
    pub op: ImageOp,
    /// The remaining columns, by name (e.g. the recorded prediction).
    pub fields: Vec<(String, String)>,
}

impl Record {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Row `row` (1 = the first record after the header) of a per-image CSV.
pub fn read_record(csv_path: &Path, row: usize) -> Result<Record> {
    let mut reader = csv::Reader::from_path(csv_path).with_context(|| format!("cannot open {}", csv_path.display()))?;
    let headers = reader.headers().with_context(|| format!("{}: no header", csv_path.display()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name).with_context(|| format!("{}: no column '{name}' (not a per-image audit record file)", csv_path.display()));
    let (c_id, c_op) = (col("image_id")?, col("op")?);
    if row == 0 {
        bail!("--row counts records from 1");
    }
    let record = reader.records().nth(row - 1).with_context(|| format!("{} has fewer than {row} records", csv_path.display()))?;
    let record = record.with_context(|| format!("{}, line {}: malformed row", csv_path.display(), row + 1))?;
    let op: ImageOp = serde_json::from_str(&record[c_op]).with_context(|| format!("{}, line {}: the op column is not an image operation", csv_path.display(), row + 1))?;
    Ok(Record { image_id: record[c_id].to_string(), op, fields: headers.iter().zip(record.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect() })
}

/// A replayed image and, with a model, its prediction.
pub struct Replayed {
    pub original: Image,
    pub perturbed: Image,
    pub classes: Vec<String>,
    pub probabilities: Vec<f32>,
}

impl Replayed {
    pub fn predicted_class(&self) -> &str {
        &self.classes[argmax(&self.probabilities)]
    }
}

/// Apply `op` to image `image_id` of `data` read the way the model at `model` reads it, and
/// predict the result.
pub fn replay_from_data(op: &ImageOp, image_id: &str, model: &Path, data: &DataSpec, capture: &CaptureChoice) -> Result<Replayed> {
    let (classifier, info) = load_model(model)?;
    let info = info.with_capture(capture);
    let (set, _) = model_data(&info, data, None, ALL_IMAGES, false, true)?;
    let i = set.ids.iter().position(|id| id == image_id).with_context(|| format!("image '{image_id}' is not in {data}"))?;
    replay_image(op, set.image(i), classifier.as_ref())
}

/// Apply `op` to `original` (already at the model's input size) and predict the result.
pub fn replay_image(op: &ImageOp, original: Image, classifier: &dyn ImageClassifier) -> Result<Replayed> {
    let perturbed = op.apply(&original)?;
    let probabilities = classifier.predict(std::slice::from_ref(&perturbed))?.remove(0);
    Ok(Replayed { original, perturbed, classes: classifier.classes().to_vec(), probabilities })
}
