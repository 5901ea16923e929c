//! Brittleness audit (Maron et al. 2021): how often and how much predictions change when the
//! test images are transformed (artificial brittleness) or photographed again (natural
//! brittleness), and what that does to performance.
//!
//! The absolute change is measured on the probability of the image's true class: for a binary
//! melanoma/nevus classifier that equals Maron's change of the melanoma probability, and it is
//! defined the same way for any number of classes.

use std::collections::HashMap;
use std::time::Instant;

use std::path::Path;

use anyhow::{bail, Context, Result};
use dermrobust_core::data::{ImageSet, LabelScheme};
use dermrobust_core::imaging::phash::{hamming, perceptual_hash};
use dermrobust_core::imaging::{Image, ImageOp};
use dermrobust_core::metrics::{self, ChangeDistribution};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::input::AuditImages;
use super::runner::{Audit, AuditOutcome, Condition, Highlight, KeyMetric, ModelRun};
use super::suite::Suite;
use crate::evaluation::metrics::headline_auroc_f32;
use crate::evaluation::{argmax, ImageClassifier};

/// Ranking and accuracy of one set of predictions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Performance {
    pub accuracy: f64,
    /// Binary: AUROC of the positive class; multi-class: macro one-vs-rest AUROC.
    pub auroc: Option<f64>,
    /// Average precision of the positive class against the rest.
    pub average_precision: Option<f64>,
}

pub fn performance(labels: &[usize], probs: &[Vec<f32>], classes: &[String]) -> Performance {
    let pos = LabelScheme::positive_class(classes);
    let correct = labels.iter().zip(probs).filter(|(l, p)| argmax(p) == **l).count();
    let l: Vec<bool> = labels.iter().map(|&x| x == pos).collect();
    let s: Vec<f64> = probs.iter().map(|p| p[pos] as f64).collect();
    let auroc = headline_auroc_f32(labels, probs, classes);
    Performance { accuracy: correct as f64 / labels.len().max(1) as f64, auroc, average_precision: metrics::average_precision(&l, &s).ok() }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetResult {
    pub name: String,
    pub family: String,
    pub op: ImageOp,
    /// P(class change): share of images whose predicted class differs from the original's.
    pub p_class_change: f64,
    /// Absolute change of the true-class probability.
    pub abs_change: ChangeDistribution,
    pub performance: Performance,
    pub delta_accuracy: f64,
    pub delta_auroc: Option<f64>,
}

/// The audit of one classifier.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelBrittleness {
    pub model: String,
    pub original: Performance,
    pub sets: Vec<SetResult>,
    pub natural: Option<NaturalResult>,
    pub forward_passes: usize,
    pub seconds: f64,
    pub forward_passes_per_second: f64,
}

/// One row of the per-image CSV.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRow {
    pub model: usize,
    pub set: String,
    pub image_id: String,
    pub true_class: String,
    pub predicted_original: String,
    pub predicted_transformed: String,
    pub p_true_original: f32,
    pub p_true_transformed: f32,
    pub abs_change: f32,
    pub class_changed: bool,
    /// The image operation that made the transformed image (JSON), for `dermrobust replay`.
    pub op: String,
}

/// A flip worth showing a person: where it happened and both predictions.

/// Natural brittleness over pairs of photographs of the same lesion.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NaturalResult {
    pub lesions: usize,
    pub pairs: usize,
    pub p_class_change: f64,
    pub abs_change: ChangeDistribution,
    /// Performance on all photographs that belong to a pair.
    pub performance: Performance,
}

/// How natural pairs are formed.
#[derive(Clone, Debug, Default)]
pub struct PairOptions {
    /// User grouping of similar-looking photographs: image id -> group name. Pairs are formed
    /// only inside a group (Maron sorted photographs by hand); without it, inside a lesion.
    pub similarity_groups: Option<HashMap<String, String>>,
    /// Keep only pairs whose perceptual hashes differ in at most this many of 64 bits.
    pub max_hash_distance: Option<u32>,
}

/// Pairs `(i, j)` of images (indices into `set`, `i < j`) among `indices` that show the same
/// lesion (and pass the filters).
pub fn natural_pairs(set: &ImageSet, indices: &[usize], opts: &PairOptions) -> Vec<(usize, usize)> {
    let hashes: HashMap<usize, u64> =
        if opts.max_hash_distance.is_some() { indices.par_iter().map(|&i| (i, perceptual_hash(&set.image(i)))).collect() } else { HashMap::new() };
    let mut by_group: HashMap<String, Vec<usize>> = HashMap::new();
    for &i in indices {
        let key = match &opts.similarity_groups {
            Some(g) => match g.get(&set.ids[i]) {
                Some(name) => format!("{}\u{1}{}", set.groups[i], name),
                None => continue,
            },
            None => set.groups[i].clone(),
        };
        by_group.entry(key).or_default().push(i);
    }
    let mut pairs = Vec::new();
    for members in by_group.values() {
        for a in 0..members.len() {
            for b in a + 1..members.len() {
                let (i, j) = (members[a], members[b]);
                if let Some(d) = opts.max_hash_distance {
                    if hamming(hashes[&i], hashes[&j]) > d {
                        continue;
                    }
                }
                pairs.push((i.min(j), i.max(j)));
            }
        }
    }
    pairs.sort();
    pairs
}

/// Natural brittleness from the predictions `probs` of every image that belongs to a pair.
fn natural(set: &ImageSet, probs: &HashMap<usize, Vec<f32>>, pairs: &[(usize, usize)]) -> Result<Option<NaturalResult>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let predicted = |i: usize| argmax(&probs[&i]);
    let p_true = |i: usize| probs[&i][set.labels[i]] as f64;
    let before: Vec<usize> = pairs.iter().map(|&(i, _)| predicted(i)).collect();
    let after: Vec<usize> = pairs.iter().map(|&(_, j)| predicted(j)).collect();
    let pb: Vec<f64> = pairs.iter().map(|&(i, _)| p_true(i)).collect();
    let pa: Vec<f64> = pairs.iter().map(|&(_, j)| p_true(j)).collect();
    let members = pair_members(pairs);
    let l: Vec<usize> = members.iter().map(|&i| set.labels[i]).collect();
    let p: Vec<Vec<f32>> = members.iter().map(|&i| probs[&i].clone()).collect();
    let mut lesions: Vec<&str> = members.iter().map(|&i| set.groups[i].as_str()).collect();
    lesions.sort();
    lesions.dedup();
    Ok(Some(NaturalResult {
        lesions: lesions.len(),
        pairs: pairs.len(),
        p_class_change: metrics::prediction_change_rate(&before, &after)?,
        abs_change: metrics::change_distribution(&pb, &pa)?,
        performance: performance(&l, &p, &set.classes),
    }))
}

/// The images that belong to at least one pair, sorted.
fn pair_members(pairs: &[(usize, usize)]) -> Vec<usize> {
    let mut members: Vec<usize> = pairs.iter().flat_map(|&(i, j)| [i, j]).collect();
    members.sort();
    members.dedup();
    members
}

/// Everything the audit of one classifier produced.

/// Predict in chunks (bounded memory, one batch size for all sets).
fn predict_all(classifier: &dyn ImageClassifier, images: &[Image]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(256) {
        out.extend(classifier.predict(chunk)?);
    }
    Ok(out)
}

/// Audit one classifier on images `indices` of `set` with every transformation of `suite`, and
/// on the natural `pairs` (image indices into `set`; they may reach beyond `indices`, so that a
/// subsample for the artificial sets does not thin out the rarer pairs). The original
/// predictions are computed once; every set reuses the decoded originals.
pub fn audit(
    classifier: &dyn ImageClassifier,
    model_index: usize,
    set: &ImageSet,
    indices: &[usize],
    suite: &Suite,
    pairs: &[(usize, usize)],
    quiet: bool,
) -> Result<ModelRun<ModelBrittleness, ImageRow>> {
    if indices.is_empty() {
        bail!("the brittleness audit needs at least one image");
    }
    if classifier.classes() != set.classes.as_slice() {
        bail!("the model's classes {:?} differ from the data's {:?}", classifier.classes(), set.classes);
    }
    let started = Instant::now();
    let classes = &set.classes;
    let originals: Vec<Image> = indices.iter().map(|&i| set.image(i)).collect();
    let labels: Vec<usize> = indices.iter().map(|&i| set.labels[i]).collect();
    let bar = dermrobust_core::progress::bar((suite.sets.len() + 1) as u64, &format!("auditing model {}", model_index + 1), quiet);
    let p0 = predict_all(classifier, &originals)?;
    bar.inc(1);
    let original = performance(&labels, &p0, classes);
    let pred0: Vec<usize> = p0.iter().map(|p| argmax(p)).collect();
    let true0: Vec<f64> = labels.iter().zip(&p0).map(|(&l, p)| p[l] as f64).collect();
    let mut sets = Vec::new();
    let mut rows = Vec::new();
    let mut flips = Vec::new();
    for t in &suite.sets {
        bar.set_prefix(t.name.clone());
        let op_json = serde_json::to_string(&t.op)?;
        let transformed: Vec<Image> = originals.par_iter().map(|img| t.op.apply(img)).collect::<Result<_>>()?;
        let p1 = predict_all(classifier, &transformed)?;
        let pred1: Vec<usize> = p1.iter().map(|p| argmax(p)).collect();
        let true1: Vec<f64> = labels.iter().zip(&p1).map(|(&l, p)| p[l] as f64).collect();
        let perf = performance(&labels, &p1, classes);
        for k in 0..indices.len() {
            let changed = pred0[k] != pred1[k];
            rows.push(ImageRow {
                model: model_index,
                set: t.name.clone(),
                image_id: set.ids[indices[k]].clone(),
                true_class: classes[labels[k]].clone(),
                predicted_original: classes[pred0[k]].clone(),
                predicted_transformed: classes[pred1[k]].clone(),
                p_true_original: true0[k] as f32,
                p_true_transformed: true1[k] as f32,
                abs_change: (true0[k] - true1[k]).abs() as f32,
                class_changed: changed,
                op: op_json.clone(),
            });
            if changed {
                flips.push(Highlight { model: model_index, image: indices[k], condition: t.name.clone(), op: t.op.clone(), original: p0[k].clone(), perturbed: p1[k].clone() });
            }
        }
        sets.push(SetResult {
            name: t.name.clone(),
            family: t.family.clone(),
            op: t.op.clone(),
            p_class_change: metrics::prediction_change_rate(&pred0, &pred1)?,
            abs_change: metrics::change_distribution(&true0, &true1)?,
            delta_accuracy: perf.accuracy - original.accuracy,
            delta_auroc: perf.auroc.zip(original.auroc).map(|(a, b)| a - b),
            performance: perf,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut pair_probs: HashMap<usize, Vec<f32>> = HashMap::new();
    let members = pair_members(pairs);
    let seen: HashMap<usize, usize> = indices.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let unseen: Vec<usize> = members.iter().copied().filter(|i| !seen.contains_key(i)).collect();
    let unseen_images: Vec<Image> = unseen.par_iter().map(|&i| set.image(i)).collect();
    for (&i, p) in unseen.iter().zip(predict_all(classifier, &unseen_images)?) {
        pair_probs.insert(i, p);
    }
    for &i in &members {
        if let Some(&k) = seen.get(&i) {
            pair_probs.insert(i, p0[k].clone());
        }
    }
    let natural = natural(set, &pair_probs, pairs)?;
    // Largest changes first, so the report can show the worst flips.
    flips.sort_by(|a, b| {
        let d = |f: &Highlight| (f.original[set.labels[f.image]] - f.perturbed[set.labels[f.image]]).abs();
        d(b).total_cmp(&d(a))
    });
    flips.truncate(12);
    let seconds = started.elapsed().as_secs_f64();
    let forward_passes = (indices.len() * (suite.sets.len() + 1) + unseen.len()) * classifier.views();
    Ok(ModelRun {
        result: ModelBrittleness { model: classifier.describe(), original, sets, natural, forward_passes, seconds, forward_passes_per_second: forward_passes as f64 / seconds },
        rows,
        highlights: flips,
    })
}

/// Mean and standard deviation over models of each set's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetSummary {
    pub name: String,
    pub family: String,
    pub models: usize,
    pub p_class_change: (f64, f64),
    pub mean_abs_change: (f64, f64),
    pub auroc: Option<(f64, f64)>,
    pub delta_auroc: Option<(f64, f64)>,
}

pub fn summarise(models: &[ModelBrittleness]) -> Vec<SetSummary> {
    let Some(first) = models.first() else { return vec![] };
    let mut out = Vec::new();
    let ms = |v: Vec<f64>| metrics::mean_std(&v);
    let opt = |v: Vec<Option<f64>>| -> Option<(f64, f64)> { v.iter().all(Option::is_some).then(|| metrics::mean_std(&v.into_iter().flatten().collect::<Vec<_>>())) };
    out.push(SetSummary {
        name: "original".into(),
        family: "original".into(),
        models: models.len(),
        p_class_change: (0.0, 0.0),
        mean_abs_change: (0.0, 0.0),
        auroc: opt(models.iter().map(|m| m.original.auroc).collect()),
        delta_auroc: Some((0.0, 0.0)),
    });
    for (s, set) in first.sets.iter().enumerate() {
        out.push(SetSummary {
            name: set.name.clone(),
            family: set.family.clone(),
            models: models.len(),
            p_class_change: ms(models.iter().map(|m| m.sets[s].p_class_change).collect()),
            mean_abs_change: ms(models.iter().map(|m| m.sets[s].abs_change.mean).collect()),
            auroc: opt(models.iter().map(|m| m.sets[s].performance.auroc).collect()),
            delta_auroc: opt(models.iter().map(|m| m.sets[s].delta_auroc).collect()),
        });
    }
    if models.iter().all(|m| m.natural.is_some()) {
        let nat: Vec<&NaturalResult> = models.iter().filter_map(|m| m.natural.as_ref()).collect();
        out.push(SetSummary {
            name: "natural pairs".into(),
            family: "natural".into(),
            models: models.len(),
            p_class_change: ms(nat.iter().map(|n| n.p_class_change).collect()),
            mean_abs_change: ms(nat.iter().map(|n| n.abs_change.mean).collect()),
            auroc: opt(nat.iter().map(|n| n.performance.auroc).collect()),
            delta_auroc: None,
        });
    }
    out
}

/// The brittleness audit as one [`Audit`]: the transformed sets of a suite, and natural pairs.
pub struct Brittleness {
    pub suite: Suite,
    pub pairs: PairOptions,
}

impl Audit for Brittleness {
    type ModelResult = ModelBrittleness;
    type Row = ImageRow;
    type Summary = Vec<SetSummary>;

    fn name(&self) -> &'static str {
        "brittleness"
    }

    fn title(&self) -> String {
        "Brittleness audit".into()
    }

    fn settings(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut m = serde_json::Map::new();
        m.insert("suite".into(), serde_json::to_value(&self.suite)?);
        if let Some(d) = self.pairs.max_hash_distance {
            m.insert("max_hash_distance".into(), d.into());
        }
        if let Some(g) = &self.pairs.similarity_groups {
            m.insert("similarity_groups".into(), serde_json::to_value(g.iter().collect::<std::collections::BTreeMap<_, _>>())?);
        }
        Ok(m)
    }

    fn run_model(&self, classifier: &dyn ImageClassifier, model: usize, images: &AuditImages, quiet: bool) -> Result<ModelRun<ModelBrittleness, ImageRow>> {
        let pairs = natural_pairs(images.set, images.pool, &self.pairs);
        let mut run = audit(classifier, model, images.set, images.indices, &self.suite, &pairs, quiet)?;
        if model > 0 {
            run.highlights.clear(); // the report shows the first model's flips
        }
        Ok(run)
    }

    fn conditions(&self, r: &ModelBrittleness) -> Vec<Condition> {
        let cond = |name: &str, family: &str, p: Option<f64>, abs: Option<f64>, perf: &Performance, d_auroc: Option<f64>| Condition {
            name: name.into(),
            family: family.into(),
            metrics: [
                ("p_class_change", p),
                ("mean_abs_change", abs),
                ("accuracy", Some(perf.accuracy)),
                ("auroc", perf.auroc),
                ("average_precision", perf.average_precision),
                ("delta_auroc", d_auroc),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        };
        let mut out = vec![cond("original", "original", Some(0.0), Some(0.0), &r.original, Some(0.0))];
        out.extend(r.sets.iter().map(|s| cond(&s.name, &s.family, Some(s.p_class_change), Some(s.abs_change.mean), &s.performance, s.delta_auroc)));
        if let Some(n) = &r.natural {
            out.push(cond("natural pairs", "natural", Some(n.p_class_change), Some(n.abs_change.mean), &n.performance, None));
        }
        out
    }

    fn summarise(&self, results: &[ModelBrittleness]) -> Vec<SetSummary> {
        summarise(results)
    }

    fn report(&self, report: &mut dermrobust_core::report::html::HtmlReport, outcome: &AuditOutcome<Self>, _images: &AuditImages) -> Result<()> {
        super::report::sections(report, &outcome.results, &outcome.summary, &self.suite)
    }

    fn key_metrics(&self) -> Vec<KeyMetric> {
        vec![
            KeyMetric { key: "p_class_change", label: "P(class change) %".into(), scale: 100.0, digits: 2 },
            KeyMetric { key: "mean_abs_change", label: "abs change %".into(), scale: 100.0, digits: 2 },
            KeyMetric { key: "auroc", label: "AUROC".into(), scale: 1.0, digits: 3 },
        ]
    }

    fn describe_result(&self, r: &ModelBrittleness) -> Option<String> {
        Some(format!("{:.0} forward passes/s", r.forward_passes_per_second))
    }
}

/// Read a CSV `image_id,group` of hand-sorted groups of similar-looking photographs.
pub fn read_similarity_groups(path: &Path) -> Result<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = HashMap::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}, line {}: malformed row", path.display(), i + 2))?;
        match (row.get(0), row.get(1)) {
            (Some(id), Some(g)) if !id.is_empty() && !g.is_empty() => {
                out.insert(id.to_string(), g.to_string());
            }
            _ => bail!("{}, line {}: expected image_id,group", path.display(), i + 2),
        }
    }
    Ok(out)
}
