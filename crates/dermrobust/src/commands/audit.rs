//! `dermrobust audit brittleness`: artificial and natural brittleness of one or more models,
//! with test-time augmentation and ensembles as options.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dermrobust_core::data::split::TRAIN;
use dermrobust_core::data::{ImageSet, Split};
use dermrobust_core::report::{write_csv, write_json};
use serde::Serialize;

use crate::audits::brittleness::{self, natural_pairs, AuditOutput, ModelBrittleness, PairOptions, SetSummary};
use crate::audits::report;
use crate::audits::suite::Suite;
use super::Tta;
use crate::evaluation::{class_shares, DecisionRule, Ensemble, ImageClassifier, PriorCorrected, TrainedModel};
use crate::training::trainer::resolve_model_path;

#[derive(clap::Args, Clone)]
pub struct BrittlenessArgs {
    /// Model folder or training run folder; repeat for several models (e.g. repeats of one
    /// configuration: mean and standard deviation are reported).
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    /// Audit the ensemble (mean probability) of all --model instead of each one.
    #[arg(long)]
    pub ensemble: bool,
    #[command(flatten)]
    pub tta: super::TtaArgs,
    #[command(flatten)]
    pub data: super::ModelDataArgs,
    /// Transformation suite (TOML, `[[set]]` tables). Default: the documented built-in suite.
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// CSV `image_id,group` of similar-looking photographs: natural pairs only inside a group.
    #[arg(long)]
    pub similarity_groups: Option<PathBuf>,
    /// Keep only natural pairs whose perceptual hashes differ in at most this many of 64 bits.
    #[arg(long)]
    pub max_hash_distance: Option<u32>,
    /// How probabilities become decisions, whose changes P(class change) counts. `balanced`
    /// corrects the probabilities to equal class priors with the class shares of the split's
    /// training part, so a model trained on imbalanced data is judged at a decision that is not
    /// (nearly) always the majority class.
    #[arg(long, value_enum, default_value_t = DecisionRule::Argmax)]
    pub decision: DecisionRule,
    /// Audit at most this many images with the transformed sets (a seeded random subset of the
    /// part; natural pairs always use the whole part).
    #[arg(long)]
    pub max_images: Option<usize>,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Serialize)]
pub struct BrittlenessFile<'a> {
    pub data: String,
    pub images: usize,
    pub classes: &'a [String],
    pub suite: &'a Suite,
    pub models: &'a [ModelBrittleness],
    pub summary: &'a [SetSummary],
}

fn read_groups(path: &Path) -> Result<HashMap<String, String>> {
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

/// Load the models as classifiers (each, or one ensemble), with TTA if asked, and corrected to
/// equal class priors when `priors` (training class shares) are given.
pub fn classifiers(models: &[PathBuf], ensemble: bool, tta: Option<&Tta>, priors: Option<&[f32]>) -> Result<Vec<Box<dyn ImageClassifier>>> {
    let wrap = |m: Box<dyn ImageClassifier>| -> Result<Box<dyn ImageClassifier>> {
        let m = match tta {
            Some(t) => t.wrap(m),
            None => m,
        };
        Ok(match priors {
            Some(p) => Box::new(PriorCorrected::new(m, p.to_vec())?),
            None => m,
        })
    };
    let loaded: Vec<Box<dyn ImageClassifier>> =
        models.iter().map(|p| TrainedModel::load(&resolve_model_path(p)).map(|m| Box::new(m) as Box<dyn ImageClassifier>)).collect::<Result<_>>()?;
    if ensemble { Ok(vec![wrap(Box::new(Ensemble { members: loaded }))?]) } else { loaded.into_iter().map(wrap).collect() }
}

/// The data at the model's preprocessing: every image of the split part (among which natural
/// pairs are formed), the images audited with the transformed sets (`--max-images` of them), and
/// the training class shares when `--decision balanced` needs them.
pub fn audit_data(a: &BrittlenessArgs, quiet: bool) -> Result<(ImageSet, Vec<usize>, Vec<usize>, Option<Vec<f32>>)> {
    let first = TrainedModel::load(&resolve_model_path(&a.models[0]))?;
    let split_file = a.data.split_for(&a.models[0]);
    let (set, part) = crate::evaluation::model_data(&first, &a.data.data, split_file.as_deref(), &a.data.part, false, quiet)?;
    let indices = crate::audits::subsample(&part, a.max_images, 0);
    let priors = match a.decision {
        DecisionRule::Argmax => None,
        DecisionRule::Balanced => {
            let Some(path) = &split_file else { bail!("--decision balanced needs the training split for the class shares: give --split") };
            let split = Split::load(path)?;
            let train_part = split.part_index(TRAIN)?;
            let train: Vec<usize> = (0..set.len()).filter(|&i| split.assignment.get(&set.ids[i]) == Some(&train_part)).collect();
            Some(class_shares(&set.labels, &train, set.num_classes()).with_context(|| format!("training part of {}", path.display()))?)
        }
    };
    if !quiet {
        eprintln!("auditing {} images{}", indices.len(), split_file.map(|p| format!(" (part '{}' of {})", a.data.part, p.display())).unwrap_or_default());
    }
    Ok((set, part, indices, priors))
}

/// The images an audit covers: `indices` get every transformed set; natural pairs are formed
/// among all of `pair_pool` (a superset, usually the whole split part).
pub struct AuditImages<'a> {
    pub set: &'a ImageSet,
    pub indices: &'a [usize],
    pub pair_pool: &'a [usize],
}

/// Run the audit for already-loaded classifiers and write brittleness.json, the per-image CSV
/// and report.html into `out`. Returns the per-model results and the summary.
pub fn run_audit(classifiers: &[Box<dyn ImageClassifier>], images: &AuditImages, suite: &Suite, pair_opts: &PairOptions, data: &str, out: &Path, quiet: bool) -> Result<(Vec<ModelBrittleness>, Vec<SetSummary>)> {
    std::fs::create_dir_all(out)?;
    let AuditImages { set, indices, pair_pool } = *images;
    let pairs = natural_pairs(set, pair_pool, pair_opts);
    let mut results = Vec::new();
    let mut rows = Vec::new();
    let mut flips = Vec::new();
    for (m, c) in classifiers.iter().enumerate() {
        let AuditOutput { result, rows: r, flips: f } = brittleness::audit(c.as_ref(), m, set, indices, suite, &pairs, quiet)?;
        if !quiet {
            eprintln!("{}: {:.0} forward passes/s", result.model, result.forward_passes_per_second);
        }
        results.push(result);
        rows.extend(r);
        if m == 0 {
            flips = f;
        }
    }
    let summary = brittleness::summarise(&results);
    write_json(&out.join("brittleness.json"), &BrittlenessFile { data: data.to_string(), images: indices.len(), classes: &set.classes, suite, models: &results, summary: &summary })?;
    write_csv(&out.join("brittleness_per_image.csv"), &rows)?;
    report::write(&out.join("report.html"), "Brittleness audit", data, indices.len(), &results, &summary, suite, set, &flips)?;
    Ok((results, summary))
}

pub fn run(a: &BrittlenessArgs, quiet: bool) -> Result<()> {
    let suite = match &a.suite {
        Some(p) => Suite::load(p)?,
        None => Suite::default_suite(),
    };
    let (set, part, indices, priors) = audit_data(a, quiet)?;
    let classifiers = classifiers(&a.models, a.ensemble, a.tta.chosen()?.as_ref(), priors.as_deref())?;
    let pair_opts = PairOptions {
        similarity_groups: a.similarity_groups.as_deref().map(read_groups).transpose()?,
        max_hash_distance: a.max_hash_distance,
    };
    let (_, summary) = run_audit(&classifiers, &AuditImages { set: &set, indices: &indices, pair_pool: &part }, &suite, &pair_opts, &a.data.data.to_string(), &a.out, quiet)?;
    let (header, rows) = report::summary_table(&summary);
    println!("{}", header.join(" | "));
    for r in rows {
        println!("{}", r.join(" | "));
    }
    println!("wrote {}/brittleness.json, brittleness_per_image.csv and report.html", a.out.display());
    Ok(())
}
