//! The one audit shape and its runner. An audit is a set of named conditions (transformed sets,
//! attacks, artefact shares) applied to images; for each model it gives per-image records,
//! per-condition figures and a few highlighted perturbed images. The runner runs it over the
//! models, summarises each condition as mean ± standard deviation over models, and writes
//! `<audit>.json`, `<audit>_per_image.csv`, `report.html` and the resume key, atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dermrobust_core::imaging::io::encode_png;
use dermrobust_core::imaging::{Image, ImageOp};
use dermrobust_core::metrics;
use dermrobust_core::report::html::HtmlReport;
use dermrobust_core::report::{read_json, write_csv, write_json};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::input::AuditImages;
use crate::evaluation::{argmax, is_onnx, ImageClassifier};
use crate::models::run_dir::resolve_model_path;

/// One model's figures for one condition: named numbers (`None` where undefined).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Condition {
    pub name: String,
    pub family: String,
    pub metrics: BTreeMap<String, Option<f64>>,
}

/// Mean and standard deviation over models.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
}

/// One condition summarised over models.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConditionSummary {
    pub name: String,
    pub family: String,
    pub models: usize,
    /// Mean ± sd of each metric; `None` where a model lacks it.
    pub metrics: BTreeMap<String, Option<MeanSd>>,
}

/// A perturbed image worth showing: which image, the replayable operation, both predictions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Highlight {
    pub model: usize,
    /// Index of the image in the audited set.
    pub image: usize,
    pub condition: String,
    pub op: ImageOp,
    pub original: Vec<f32>,
    pub perturbed: Vec<f32>,
}

/// A metric to show, with its label and display scale (100 for percentages).
#[derive(Clone, Debug)]
pub struct KeyMetric {
    pub key: &'static str,
    pub label: String,
    pub scale: f64,
    pub digits: usize,
}

/// What an audit produced for one model.
pub struct ModelRun<M, R> {
    pub result: M,
    pub rows: Vec<R>,
    pub highlights: Vec<Highlight>,
}

/// An audit: a named set of conditions, run model by model.
pub trait Audit {
    /// Everything an audit finds for one model (in `<audit>.json`).
    type ModelResult: Serialize + DeserializeOwned + Clone;
    /// One per-image record (a row of `<audit>_per_image.csv`), including the replayable
    /// operation that made the perturbed image.
    type Row: Serialize;
    /// The audit's own summary over models (in `<audit>.json`).
    type Summary: Serialize + DeserializeOwned + Clone;

    /// File stem: `brittleness` gives `brittleness.json` and `brittleness_per_image.csv`.
    fn name(&self) -> &'static str;
    /// Title of the report.
    fn title(&self) -> String;
    /// The settings that decide the results, as JSON object fields (written into `<audit>.json`
    /// and the resume key).
    fn settings(&self) -> Result<serde_json::Map<String, serde_json::Value>>;
    /// Run the audit for one classifier.
    fn run_model(&self, classifier: &dyn ImageClassifier, model: usize, images: &AuditImages, quiet: bool) -> Result<ModelRun<Self::ModelResult, Self::Row>>;
    /// The named conditions of one model's result with their figures.
    fn conditions(&self, result: &Self::ModelResult) -> Vec<Condition>;
    /// The audit's own summary over models.
    fn summarise(&self, results: &[Self::ModelResult]) -> Self::Summary;
    /// The audit's own report sections (the runner adds the introduction and the highlights).
    fn report(&self, report: &mut HtmlReport, outcome: &AuditOutcome<Self>, images: &AuditImages) -> Result<()>;
    /// Prepare for the models about to be audited (their paths, the TTA they are audited with)
    /// and the folder the audit writes to: an audit that runs on several sets of models (the
    /// experiment grid) loads here what it needs of each, such as gradients. Default: nothing.
    fn bind(&self, _models: &[PathBuf], _tta: Option<&crate::evaluation::Tta>, _out: &Path) -> Result<()> {
        Ok(())
    }
    /// Whether the gallery of highlights also shows each perturbation magnified (for attacks,
    /// whose changes are too small to see).
    fn magnify_highlights(&self) -> bool {
        false
    }
    /// The metrics that tables and plots of this audit show first (e.g. in the experiment grid).
    fn key_metrics(&self) -> Vec<KeyMetric> {
        vec![]
    }
    /// Short description of a model's result for the console.
    fn describe_result(&self, _result: &Self::ModelResult) -> Option<String> {
        None
    }
    /// Whether the audit uses the images' lesion masks (loaded where the data has them).
    fn needs_masks(&self) -> bool {
        false
    }
}

/// What a finished audit holds.
pub struct AuditOutcome<A: Audit + ?Sized> {
    pub models: Vec<String>,
    pub results: Vec<A::ModelResult>,
    pub summary: A::Summary,
    pub conditions: Vec<ConditionSummary>,
    pub highlights: Vec<Highlight>,
    /// Whether the outcome was read back from a finished audit (`--resume`).
    pub reused: bool,
}

/// Where an audit runs and what it is called in its files.
pub struct AuditRun<'a> {
    /// The dataset, as the user named it.
    pub data: String,
    /// Model files or folders (for the resume key).
    pub model_paths: &'a [PathBuf],
    /// What else decides the results: TTA, decision rule, ensemble (for the resume key).
    pub subject: serde_json::Value,
    pub out: &'a Path,
    /// Reuse a finished audit in `out` when its key is unchanged.
    pub resume: bool,
    pub quiet: bool,
}

/// The resume key: an audit is reused only when its models (by size and time stamp), images,
/// settings and subject are unchanged.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct AuditKey {
    pub audit: String,
    pub data: String,
    pub models: Vec<(PathBuf, u64, u64)>,
    pub subject: serde_json::Value,
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub images: Vec<usize>,
    pub pool: usize,
}

pub const AUDIT_KEY_FILE: &str = "audit_key.json";

impl AuditKey {
    /// What differs between two keys, in words (for refusing a resume).
    pub fn differences(&self, other: &AuditKey) -> Vec<String> {
        let mut d = Vec::new();
        if self.audit != other.audit {
            d.push(format!("audit ({} vs {})", self.audit, other.audit));
        }
        if self.data != other.data {
            d.push(format!("data ({} vs {})", self.data, other.data));
        }
        if self.models != other.models {
            d.push("models (other files, or retrained since)".to_string());
        }
        if self.subject != other.subject {
            d.push(format!("split, part or capture remedy ({} vs {})", self.subject, other.subject));
        }
        for (k, v) in &self.settings {
            if other.settings.get(k) != Some(v) {
                d.push(format!("setting '{k}' ({v} vs {})", other.settings.get(k).map(|x| x.to_string()).unwrap_or_else(|| "unset".into())));
            }
        }
        for k in other.settings.keys().filter(|k| !self.settings.contains_key(*k)) {
            d.push(format!("setting '{k}'"));
        }
        if self.images != other.images || self.pool != other.pool {
            d.push(format!("images ({} vs {})", self.images.len(), other.images.len()));
        }
        d
    }
}

/// The weights file of a model (an ONNX file, or a dermrobust model's `model.bpk`).
fn weights_file(path: &Path) -> PathBuf {
    if is_onnx(path) {
        path.to_path_buf()
    } else {
        let model = resolve_model_path(path);
        model.join(crate::models::checkpoint::WEIGHTS_FILE)
    }
}

/// A model's entry in a resume key: its path, and its weights file's size and time stamp.
pub fn fingerprint(path: &Path) -> Result<(PathBuf, u64, u64)> {
    let file = weights_file(path);
    let meta = std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let mtime = meta.modified()?.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok((path.to_path_buf(), meta.len(), mtime))
}

#[derive(Serialize)]
struct AuditFile<'a, A: Audit> {
    audit: &'static str,
    data: &'a str,
    images: usize,
    classes: &'a [String],
    #[serde(flatten)]
    settings: serde_json::Map<String, serde_json::Value>,
    models: &'a [A::ModelResult],
    summary: &'a A::Summary,
    conditions: &'a [ConditionSummary],
}

#[derive(Deserialize)]
#[serde(bound = "")]
struct SavedAudit<A: Audit> {
    models: Vec<A::ModelResult>,
    summary: A::Summary,
    conditions: Vec<ConditionSummary>,
}

/// Summarise each condition over models: mean ± sd per metric, in the first model's order.
pub fn summarise_conditions(per_model: &[Vec<Condition>]) -> Vec<ConditionSummary> {
    let Some(first) = per_model.first() else { return vec![] };
    first
        .iter()
        .enumerate()
        .map(|(c, cond)| {
            let metrics = cond
                .metrics
                .keys()
                .map(|name| {
                    let values: Vec<Option<f64>> = per_model.iter().map(|m| m.get(c).and_then(|x| x.metrics.get(name).copied().flatten())).collect();
                    let summary = values.iter().all(Option::is_some).then(|| {
                        let (mean, sd) = metrics::mean_std(&values.iter().flatten().copied().collect::<Vec<_>>());
                        MeanSd { mean, sd }
                    });
                    (name.clone(), summary)
                })
                .collect();
            ConditionSummary { name: cond.name.clone(), family: cond.family.clone(), models: per_model.len(), metrics }
        })
        .collect()
}

/// Run `audit` for every classifier and write its files into `run.out`; with `run.resume`, reuse
/// a finished audit whose key is unchanged.
pub fn run_audit<A: Audit>(audit: &A, classifiers: &[Box<dyn ImageClassifier>], images: &AuditImages, run: &AuditRun) -> Result<AuditOutcome<A>> {
    std::fs::create_dir_all(run.out).with_context(|| format!("cannot create {}", run.out.display()))?;
    let key = AuditKey {
        audit: audit.name().to_string(),
        data: run.data.clone(),
        models: run.model_paths.iter().map(|p| fingerprint(p)).collect::<Result<_>>()?,
        subject: run.subject.clone(),
        settings: audit.settings()?,
        images: images.indices.to_vec(),
        pool: images.pool.len(),
    };
    let key_file = run.out.join(AUDIT_KEY_FILE);
    let json_file = run.out.join(format!("{}.json", audit.name()));
    if run.resume && read_json::<AuditKey>(&key_file).is_ok_and(|k| k == key) {
        if let Ok(saved) = read_json::<SavedAudit<A>>(&json_file) {
            if !run.quiet {
                eprintln!("reusing the finished audit in {}", run.out.display());
            }
            let models = classifiers.iter().map(|c| c.describe()).collect();
            return Ok(AuditOutcome { models, results: saved.models, summary: saved.summary, conditions: saved.conditions, highlights: vec![], reused: true });
        }
    }
    // A stale key must not vouch for an audit that is about to be replaced.
    let _ = std::fs::remove_file(&key_file);

    let mut results = Vec::new();
    let mut rows = Vec::new();
    let mut highlights = Vec::new();
    for (m, c) in classifiers.iter().enumerate() {
        let ModelRun { result, rows: r, highlights: h } = audit.run_model(c.as_ref(), m, images, run.quiet)?;
        if !run.quiet {
            if let Some(line) = audit.describe_result(&result) {
                eprintln!("{}: {line}", c.describe());
            }
        }
        results.push(result);
        rows.extend(r);
        highlights.extend(h);
    }
    let conditions = summarise_conditions(&results.iter().map(|r| audit.conditions(r)).collect::<Vec<_>>());
    let outcome = AuditOutcome { models: classifiers.iter().map(|c| c.describe()).collect(), summary: audit.summarise(&results), results, conditions, highlights, reused: false };
    write_json(
        &json_file,
        &AuditFile::<A> {
            audit: audit.name(),
            data: &run.data,
            images: images.indices.len(),
            classes: &images.set.classes,
            settings: key.settings.clone(),
            models: &outcome.results,
            summary: &outcome.summary,
            conditions: &outcome.conditions,
        },
    )?;
    write_csv(&run.out.join(format!("{}_per_image.csv", audit.name())), &rows)?;
    write_report(audit, &outcome, images, run)?;
    write_json(&key_file, &key)?;
    Ok(outcome)
}

fn write_report<A: Audit>(audit: &A, outcome: &AuditOutcome<A>, images: &AuditImages, run: &AuditRun) -> Result<()> {
    let mut r = HtmlReport::new(&audit.title());
    report_sections(&mut r, audit, outcome, images, &run.data)?;
    r.write(&run.out.join("report.html"))
}

/// The report sections of a finished audit: what was audited, the audit's own sections, and the
/// largest changes (rebuilt from their records). Other reports (the demo's) embed them.
pub fn report_sections<A: Audit>(r: &mut HtmlReport, audit: &A, outcome: &AuditOutcome<A>, images: &AuditImages, data: &str) -> Result<()> {
    r.paragraph(&format!(
        "Data: {data}, {} images. Models ({}): {}. Per-image records with the operation that made each perturbed image are in {}_per_image.csv; `dermrobust replay` rebuilds any of them.",
        images.indices.len(),
        outcome.models.len(),
        outcome.models.join("; "),
        audit.name()
    ));
    audit.report(r, outcome, images)?;
    if !outcome.highlights.is_empty() {
        r.heading("Largest changes");
        r.paragraph("Original and perturbed image (rebuilt from the recorded operation) with the predicted class and its probability on each.");
        for h in outcome.highlights.iter().take(8) {
            let set = images.set;
            let img = set.image(h.image);
            let perturbed = h.op.apply(&img)?;
            let cap = |p: &[f32]| format!("{} {:.2}", set.classes[argmax(p)], p[argmax(p)]);
            let mut row = vec![
                (encode_png(&enlarged(&img, 128))?, format!("{} (true {}): {}", set.ids[h.image], set.classes[set.labels[h.image]], cap(&h.original))),
                (encode_png(&enlarged(&perturbed, 128))?, format!("{}: {}", h.condition, cap(&h.perturbed))),
            ];
            if audit.magnify_highlights() {
                row.push((encode_png(&enlarged(&magnified(&img, &perturbed), 128))?, "perturbation, magnified".to_string()));
            }
            r.image_row(&row);
        }
    }
    Ok(())
}

/// A perturbation made visible: `|perturbed - original|` scaled so its largest value is white.
fn magnified(original: &Image, perturbed: &Image) -> Image {
    let diff: Vec<f32> = perturbed.data.iter().zip(&original.data).map(|(a, b)| (a - b).abs()).collect();
    let max = diff.iter().copied().fold(0f32, f32::max).max(1e-6);
    Image::new(original.channels, original.width, original.height, diff.into_iter().map(|d| d / max).collect())
}

/// Enlarge a small image for display (nearest neighbour keeps pixels honest).
pub fn enlarged(img: &Image, side: usize) -> Image {
    let f = (side / img.width.max(1)).max(1);
    let mut out = Image::filled(img.channels, img.width * f, img.height * f, 0.0);
    for c in 0..img.channels {
        for y in 0..out.height {
            for x in 0..out.width {
                out.set(c, x, y, img.get(c, x / f, y / f));
            }
        }
    }
    out
}
