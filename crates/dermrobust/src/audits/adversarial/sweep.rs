//! Systematic sweeps (Du-Harpur et al., Supplementary Figure S1): every test image shifted in one
//! colour channel by a few units of 255, or rotated by multiples of 15 degrees, and for each
//! setting the false negatives (positive images, e.g. melanoma, decided otherwise),
//! sensitivity, specificity and AUROC.

use anyhow::Result;
use dermrobust_core::data::LabelScheme;
use dermrobust_core::imaging::{BorderFill, Image, ImageOp};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::evaluation::metrics::headline_auroc_f32;
use crate::evaluation::{argmax, ImageClassifier};

/// One setting of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSetting {
    /// `colour` or `rotation`.
    pub family: String,
    pub name: String,
    /// The channel (`red`, `green`, `blue`) of a colour setting.
    pub channel: Option<String>,
    /// Units of 255 added to the channel, or degrees of rotation.
    pub value: f32,
    pub op: ImageOp,
}

/// Du-Harpur's sweeps: offsets `-max..=max` of 255 in steps of `step` per channel, and rotations
/// by every multiple of `angle_step` degrees below 360.
pub fn settings(max_offset: i32, step: i32, angle_step: f32) -> Vec<SweepSetting> {
    let mut out = Vec::new();
    for (c, channel) in ["red", "green", "blue"].iter().enumerate() {
        let mut v = -max_offset;
        while v <= max_offset {
            if v != 0 {
                let mut offset = [0.0; 3];
                offset[c] = v as f32 / 255.0;
                out.push(SweepSetting { family: "colour".into(), name: format!("{channel} {v:+}/255"), channel: Some(channel.to_string()), value: v as f32, op: ImageOp::ColourBalance { gain: [1.0; 3], offset } });
            }
            v += step.max(1);
        }
    }
    let mut a = angle_step;
    while a < 360.0 {
        out.push(SweepSetting { family: "rotation".into(), name: format!("rotate {a}"), channel: None, value: a, op: ImageOp::Rotate { degrees: a, fill: BorderFill::Reflect } });
        a += angle_step;
    }
    out
}

/// How a classifier does on one (perturbed) copy of the images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    pub setting: String,
    pub family: String,
    pub channel: Option<String>,
    pub value: f32,
    /// Positive-class images decided otherwise (missed melanomas).
    pub false_negatives: usize,
    pub positives: usize,
    pub sensitivity: Option<f64>,
    pub specificity: Option<f64>,
    pub auroc: Option<f64>,
}

/// The figures of probabilities `probs` against `labels`, the positive class being
/// `LabelScheme::positive_class` (melanoma where there is one).
pub fn figures(setting: &str, family: &str, channel: Option<String>, value: f32, labels: &[usize], probs: &[Vec<f32>], classes: &[String]) -> SweepResult {
    let pos = LabelScheme::positive_class(classes);
    let (mut tp, mut fneg, mut tn, mut fp) = (0usize, 0usize, 0usize, 0usize);
    for (&l, p) in labels.iter().zip(probs) {
        let decided_positive = argmax(p) == pos;
        match (l == pos, decided_positive) {
            (true, true) => tp += 1,
            (true, false) => fneg += 1,
            (false, false) => tn += 1,
            (false, true) => fp += 1,
        }
    }
    let ratio = |a: usize, b: usize| (a + b > 0).then(|| a as f64 / (a + b) as f64);
    SweepResult {
        setting: setting.to_string(),
        family: family.to_string(),
        channel,
        value,
        false_negatives: fneg,
        positives: tp + fneg,
        sensitivity: ratio(tp, fneg),
        specificity: ratio(tn, fp),
        auroc: headline_auroc_f32(labels, probs, classes),
    }
}

/// Run the sweep: the unperturbed images first, then every setting.
pub fn run(classifier: &dyn ImageClassifier, images: &[Image], labels: &[usize], classes: &[String], settings: &[SweepSetting]) -> Result<Vec<SweepResult>> {
    let predict = |imgs: &[Image]| -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(imgs.len());
        for chunk in imgs.chunks(256) {
            out.extend(classifier.predict(chunk)?);
        }
        Ok(out)
    };
    let mut out = vec![figures("none", "none", None, 0.0, labels, &predict(images)?, classes)];
    for s in settings {
        let perturbed: Vec<Image> = images.par_iter().map(|i| s.op.apply(i)).collect::<Result<_>>()?;
        out.push(figures(&s.name, &s.family, s.channel.clone(), s.value, labels, &predict(&perturbed)?, classes));
    }
    Ok(out)
}
