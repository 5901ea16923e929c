//! Artefact audit (Katsch et al. 2022): insert an artefact class (real templates or procedural
//! artefacts) into exactly k of n test images for a sweep of shares (0, 20, ..., 100%) and
//! several placement seeds, and measure per step PR-AUC (average precision), AUROC, precision,
//! recall, FPR and FNR per class, McNemar's test with Edwards' correction against the clean set
//! (on the binarised predictions: correct or not, and per class: predicted as that class or
//! not), and per image P(class change) and the change of the true-class probability.
//!
//! Shares of one seed are nested (the images of 20% are among those of 40%) and an image gets
//! the same artefact at every share, so each step differs from the previous one only by the
//! images added. With `bias_class` (the class a model was trained with artefacts on), two more
//! conditions show the shortcut: the artefact on every image of that class only, and on every
//! other image only; the clean set is the artefact "removed".

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dermrobust_core::data::ImageSet;
use dermrobust_core::imaging::artefacts::{exact_share, Artefact, Inserter, Placement, TemplateLibrary};
use dermrobust_core::imaging::io::encode_png;
use dermrobust_core::imaging::{Image, ImageOp};
use dermrobust_core::metrics::{self, ConfusionMatrix, McNemar};
use dermrobust_core::report::html::HtmlReport;
use dermrobust_core::report::plots::{line_plot, Series};
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::input::AuditImages;
use super::runner::{enlarged, Audit, AuditOutcome, Condition, Highlight, KeyMetric, ModelRun};
use crate::evaluation::metrics::headline_auroc_f32;
use crate::evaluation::{argmax, ImageClassifier};

/// The significance level of the report's marks (Katsch et al. report p < 0.01).
pub const ALPHA: f64 = 0.01;

/// What to insert and where: shared by `audit artefacts` and the experiment grid.
#[derive(clap::Args, Clone, Debug)]
pub struct ArtefactOptions {
    /// Artefacts, comma-separated: template classes of --artefact-templates (bubble, ruler,
    /// marking, ...) and procedural kinds (hair, ink, ruler-drawn, bubbles-drawn, vignette,
    /// glare, patches).
    #[arg(long, value_delimiter = ',', default_value = "hair,ink,ruler-drawn,bubbles-drawn,vignette,glare,patches")]
    pub artefacts: Vec<String>,
    /// Placement: katsch (the authors' rules per class), anywhere, outside (never changes a
    /// lesion pixel), edge (centred on the lesion border). Without a mask the lesion is the
    /// central disc of radius a quarter of the width.
    #[arg(long, default_value = "katsch")]
    pub placement: Placement,
    /// Shares of the test images that get the artefact (exactly round(share x n) images).
    #[arg(long, value_delimiter = ',', default_value = "0,0.2,0.4,0.6,0.8,1")]
    pub shares: Vec<f64>,
    /// Placement seeds (which images get the artefact, and where).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub placement_seeds: Vec<u64>,
}

impl ArtefactOptions {
    /// The audit, with templates from `templates` (a folder with a meta.json) where given.
    pub fn audit(&self, templates: Option<&std::path::Path>, bias_class: Option<String>) -> Result<ArtefactAudit> {
        let library = templates.map(TemplateLibrary::load).transpose()?;
        let artefacts = self.artefacts.iter().map(|a| Artefact::parse(a.trim(), library.as_ref())).collect::<Result<Vec<_>>>()?;
        ArtefactAudit::new(artefacts, Inserter { library, placement: self.placement }, self.shares.clone(), self.placement_seeds.clone(), bias_class)
    }
}

/// The artefact audit's settings.
pub struct ArtefactAudit {
    pub artefacts: Vec<Artefact>,
    pub inserter: Inserter,
    /// Shares of the test images that get the artefact, in [0, 1].
    pub shares: Vec<f64>,
    /// Placement seeds (which images, and where the artefact goes).
    pub seeds: Vec<u64>,
    /// The class a model was trained with artefacts on, for the shortcut view.
    pub bias_class: Option<String>,
    /// Insertions already drawn: (artefact, seed) -> one per audited image (models share them).
    drawn: Mutex<HashMap<(usize, u64), Vec<Option<ImageOp>>>>,
}

impl ArtefactAudit {
    pub fn new(artefacts: Vec<Artefact>, inserter: Inserter, shares: Vec<f64>, seeds: Vec<u64>, bias_class: Option<String>) -> Result<Self> {
        if artefacts.is_empty() {
            bail!("the artefact audit needs at least one artefact");
        }
        if seeds.is_empty() {
            bail!("the artefact audit needs at least one placement seed");
        }
        if shares.is_empty() || shares.iter().any(|s| !(s.is_finite() && (0.0..=1.0).contains(s))) {
            bail!("artefact shares must be between 0 and 1 (e.g. 0,0.2,0.4,0.6,0.8,1), got {shares:?}");
        }
        let mut shares = shares;
        shares.sort_by(f64::total_cmp);
        shares.dedup();
        Ok(ArtefactAudit { artefacts, inserter, shares, seeds, bias_class, drawn: Mutex::new(HashMap::new()) })
    }

    /// The default sweep: 0, 20, 40, 60, 80 and 100%.
    pub fn katsch_shares() -> Vec<f64> {
        vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    }

    /// One insertion per audited image for artefact `a` and `seed` (drawn once, shared by the
    /// models). Each image's draw is seeded by the seed, the artefact and the image's id.
    fn insertions(&self, a: usize, seed: u64, set: &ImageSet, indices: &[usize]) -> Result<Vec<Option<ImageOp>>> {
        if let Some(v) = self.drawn.lock().unwrap().get(&(a, seed)) {
            return Ok(v.clone());
        }
        let artefact = &self.artefacts[a];
        let drawn: Vec<Option<ImageOp>> = indices
            .par_iter()
            .map(|&i| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(image_seed(seed, artefact.name(), &set.ids[i]));
                self.inserter.draw(artefact, &set.image(i), set.mask(i).as_ref(), &mut rng)
            })
            .collect::<Result<_>>()?;
        self.drawn.lock().unwrap().insert((a, seed), drawn.clone());
        Ok(drawn)
    }
}

fn image_seed(seed: u64, artefact: &str, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for b in artefact.bytes().chain([0u8]).chain(id.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Performance of one set of predictions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepMetrics {
    pub accuracy: f64,
    /// Macro average over classes of the one-vs-rest average precision (PR-AUC).
    pub pr_auc: Option<f64>,
    pub auroc: Option<f64>,
    pub per_class: Vec<ClassMetrics>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub average_precision: Option<f64>,
    pub precision: f64,
    pub recall: f64,
    pub fpr: f64,
    pub fnr: f64,
}

pub fn step_metrics(labels: &[usize], probs: &[Vec<f32>], classes: &[String]) -> Result<StepMetrics> {
    let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let cm = ConfusionMatrix::new(labels, &pred, classes.len())?;
    let reports = cm.per_class();
    let mut per_class = Vec::new();
    let mut aps = Vec::new();
    for (c, name) in classes.iter().enumerate() {
        let l: Vec<bool> = labels.iter().map(|&x| x == c).collect();
        let s: Vec<f64> = probs.iter().map(|p| p[c] as f64).collect();
        let ap = if l.iter().any(|&v| v) { metrics::average_precision(&l, &s).ok() } else { None };
        if let Some(v) = ap {
            aps.push(v);
        }
        let r = &reports[c];
        per_class.push(ClassMetrics { class: name.clone(), average_precision: ap, precision: r.precision, recall: r.recall, fpr: r.fpr, fnr: r.fnr });
    }
    Ok(StepMetrics {
        accuracy: cm.accuracy(),
        pr_auc: (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64),
        auroc: headline_auroc_f32(labels, probs, classes),
        per_class,
    })
}

/// One seed of one step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedStep {
    pub seed: u64,
    /// Images chosen for the artefact (exactly round(share x n)).
    pub chosen: usize,
    /// Chosen images on which the placement rule found no room (left clean).
    pub not_placed: usize,
    pub metrics: StepMetrics,
    /// Share of all images whose predicted class differs from the clean prediction.
    pub p_class_change: f64,
    /// Mean absolute and mean signed change of the true-class probability (all images).
    pub mean_abs_change: f64,
    pub mean_true_change: f64,
    /// McNemar (Edwards) on correct/incorrect, clean vs this step.
    pub mcnemar: McNemar,
    /// McNemar (Edwards) per class on "predicted as this class or not".
    pub mcnemar_per_class: Vec<McNemar>,
}

/// One condition: an artefact at a share (or a bias view), over the seeds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub artefact: String,
    /// The share, or `None` for the bias views.
    pub share: Option<f64>,
    pub seeds: Vec<SeedStep>,
}

/// The audit of one classifier.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelArtefacts {
    pub model: String,
    pub images: usize,
    pub clean: StepMetrics,
    pub steps: Vec<Step>,
    /// A few inserted images per artefact (first seed), with both predictions, for the gallery.
    pub gallery: Vec<Highlight>,
    pub forward_passes: usize,
    pub seconds: f64,
}

/// One row of `artefacts_per_image.csv`: an image with one artefact drawn for one seed.
#[derive(Clone, Debug, Serialize)]
pub struct ArtefactRow {
    pub model: usize,
    pub artefact: String,
    pub seed: u64,
    pub image_id: String,
    pub true_class: String,
    /// The smallest share of the sweep at which this image carries the artefact.
    pub first_share: f64,
    /// False if the placement rule found no room (the image stays clean).
    pub placed: bool,
    pub predicted_original: String,
    pub predicted_perturbed: String,
    pub p_true_original: f32,
    pub p_true_perturbed: f32,
    /// Signed change of the true-class probability (perturbed - original).
    pub true_change: f32,
    pub class_changed: bool,
    /// The image operation that inserts the artefact (JSON), for `dermrobust replay`.
    pub op: String,
}

fn predict_all(classifier: &dyn ImageClassifier, images: &[Image]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(256) {
        out.extend(classifier.predict(chunk)?);
    }
    Ok(out)
}

/// Everything about one mixed set of predictions: `p1` (with the artefact) on the images where
/// `chosen`, `p0` (clean) elsewhere; `placed` says where an artefact could be placed.
pub fn seed_step(seed: u64, chosen: &[bool], placed: &[bool], labels: &[usize], p0: &[Vec<f32>], p1: &[Vec<f32>], classes: &[String]) -> Result<SeedStep> {
    let probs: Vec<Vec<f32>> = (0..labels.len()).map(|k| if chosen[k] { p1[k].clone() } else { p0[k].clone() }).collect();
    let pred0: Vec<usize> = p0.iter().map(|p| argmax(p)).collect();
    let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let t0: Vec<f64> = labels.iter().zip(p0).map(|(&l, p)| p[l] as f64).collect();
    let t1: Vec<f64> = labels.iter().zip(&probs).map(|(&l, p)| p[l] as f64).collect();
    let correct0: Vec<bool> = pred0.iter().zip(labels).map(|(p, l)| p == l).collect();
    let correct1: Vec<bool> = pred.iter().zip(labels).map(|(p, l)| p == l).collect();
    let mcnemar_per_class = (0..classes.len())
        .map(|c| {
            let a: Vec<bool> = pred0.iter().map(|&p| p == c).collect();
            let b: Vec<bool> = pred.iter().map(|&p| p == c).collect();
            metrics::mcnemar(&a, &b)
        })
        .collect::<Result<_>>()?;
    Ok(SeedStep {
        seed,
        chosen: chosen.iter().filter(|c| **c).count(),
        not_placed: chosen.iter().zip(placed).filter(|(c, p)| **c && !**p).count(),
        metrics: step_metrics(labels, &probs, classes)?,
        p_class_change: metrics::prediction_change_rate(&pred0, &pred)?,
        mean_abs_change: metrics::mean_absolute_change(&t0, &t1)?,
        mean_true_change: t1.iter().zip(&t0).map(|(a, b)| a - b).sum::<f64>() / t0.len() as f64,
        mcnemar: metrics::mcnemar(&correct0, &correct1)?,
        mcnemar_per_class,
    })
}

fn pct(share: f64) -> String {
    format!("{}%", (share * 100.0).round())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

impl Audit for ArtefactAudit {
    type ModelResult = ModelArtefacts;
    type Row = ArtefactRow;
    type Summary = Vec<String>;

    fn name(&self) -> &'static str {
        "artefacts"
    }

    fn title(&self) -> String {
        "Artefact audit".into()
    }

    fn needs_masks(&self) -> bool {
        true
    }

    fn settings(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut m = serde_json::Map::new();
        m.insert("artefacts".into(), serde_json::to_value(&self.artefacts)?);
        m.insert("placement".into(), self.inserter.placement.to_string().into());
        m.insert("templates".into(), serde_json::to_value(self.inserter.library.as_ref().map(|l| (&l.dir, l.instances(), l.reference_width)))?);
        m.insert("shares".into(), serde_json::to_value(&self.shares)?);
        m.insert("seeds".into(), serde_json::to_value(&self.seeds)?);
        m.insert("bias_class".into(), serde_json::to_value(&self.bias_class)?);
        Ok(m)
    }

    fn run_model(&self, classifier: &dyn ImageClassifier, model: usize, images: &AuditImages, quiet: bool) -> Result<ModelRun<ModelArtefacts, ArtefactRow>> {
        let set = images.set;
        let indices = images.indices;
        if indices.is_empty() {
            bail!("the artefact audit needs at least one image");
        }
        if classifier.classes() != set.classes.as_slice() {
            bail!("the model's classes {:?} differ from the data's {:?}", classifier.classes(), set.classes);
        }
        let bias_class = match &self.bias_class {
            Some(c) => Some(set.classes.iter().position(|x| x == c).with_context(|| format!("--bias-class {c} is not one of the model's classes {:?}", set.classes))?),
            None => None,
        };
        let started = Instant::now();
        let classes = &set.classes;
        let n = indices.len();
        let labels: Vec<usize> = indices.iter().map(|&i| set.labels[i]).collect();
        let originals: Vec<Image> = indices.par_iter().map(|&i| set.image(i)).collect();
        let p0 = predict_all(classifier, &originals)?;
        let mut passes = n;
        let clean = step_metrics(&labels, &p0, classes)?;
        let bar = dermrobust_core::progress::bar((self.artefacts.len() * self.seeds.len()) as u64, &format!("artefacts, model {}", model + 1), quiet);
        let mut steps: Vec<Step> = Vec::new();
        let mut rows = Vec::new();
        let mut flips = Vec::new();
        let mut gallery = Vec::new();
        for (a, artefact) in self.artefacts.iter().enumerate() {
            let mut per_share: Vec<Vec<SeedStep>> = vec![Vec::new(); self.shares.len()];
            let mut views: Vec<Vec<SeedStep>> = vec![Vec::new(); 2];
            for (si, &seed) in self.seeds.iter().enumerate() {
                bar.set_prefix(format!("{} seed {seed}", artefact.name()));
                let ops = self.insertions(a, seed, set, indices)?;
                let placed: Vec<bool> = ops.iter().map(Option::is_some).collect();
                let todo: Vec<usize> = (0..n).filter(|&k| placed[k]).collect();
                let perturbed: Vec<Image> = todo.par_iter().map(|&k| ops[k].as_ref().unwrap().apply(&originals[k])).collect::<Result<_>>()?;
                passes += perturbed.len();
                let mut p1 = p0.clone();
                for (&k, p) in todo.iter().zip(predict_all(classifier, &perturbed)?) {
                    p1[k] = p;
                }
                let choices: Vec<Vec<bool>> = self.shares.iter().map(|&s| exact_share(n, s, seed)).collect();
                for (j, chosen) in choices.iter().enumerate() {
                    per_share[j].push(seed_step(seed, chosen, &placed, &labels, &p0, &p1, classes)?);
                }
                if let Some(b) = bias_class {
                    let on: Vec<bool> = labels.iter().map(|&l| l == b).collect();
                    let off: Vec<bool> = on.iter().map(|v| !v).collect();
                    views[0].push(seed_step(seed, &on, &placed, &labels, &p0, &p1, classes)?);
                    views[1].push(seed_step(seed, &off, &placed, &labels, &p0, &p1, classes)?);
                }
                let identity = ImageOp::Sequence { ops: vec![] };
                for k in 0..n {
                    let first = choices.iter().position(|c| c[k]).map(|j| self.shares[j]).unwrap_or(f64::NAN);
                    let (pr0, pr1) = (argmax(&p0[k]), argmax(&p1[k]));
                    let op = ops[k].as_ref().unwrap_or(&identity);
                    rows.push(ArtefactRow {
                        model,
                        artefact: artefact.name().to_string(),
                        seed,
                        image_id: set.ids[indices[k]].clone(),
                        true_class: classes[labels[k]].clone(),
                        first_share: first,
                        placed: placed[k],
                        predicted_original: classes[pr0].clone(),
                        predicted_perturbed: classes[pr1].clone(),
                        p_true_original: p0[k][labels[k]],
                        p_true_perturbed: p1[k][labels[k]],
                        true_change: p1[k][labels[k]] - p0[k][labels[k]],
                        class_changed: pr0 != pr1,
                        op: serde_json::to_string(op)?,
                    });
                    if placed[k] && pr0 != pr1 {
                        flips.push(Highlight { model, image: indices[k], condition: artefact.name().to_string(), op: op.clone(), original: p0[k].clone(), perturbed: p1[k].clone() });
                    }
                }
                if si == 0 && model == 0 {
                    for &k in todo.iter().take(4) {
                        gallery.push(Highlight { model, image: indices[k], condition: artefact.name().to_string(), op: ops[k].clone().unwrap(), original: p0[k].clone(), perturbed: p1[k].clone() });
                    }
                }
                bar.inc(1);
            }
            for (j, seeds) in per_share.into_iter().enumerate() {
                let share = self.shares[j];
                steps.push(Step { name: format!("{} {}", artefact.name(), pct(share)), artefact: artefact.name().to_string(), share: Some(share), seeds });
            }
            if let Some(b) = bias_class {
                let [on, off]: [Vec<SeedStep>; 2] = views.try_into().expect("two views");
                steps.push(Step { name: format!("{} on {} only", artefact.name(), classes[b]), artefact: artefact.name().to_string(), share: None, seeds: on });
                steps.push(Step { name: format!("{} on all but {}", artefact.name(), classes[b]), artefact: artefact.name().to_string(), share: None, seeds: off });
            }
        }
        bar.finish_and_clear();
        flips.sort_by(|x, y| {
            let d = |f: &Highlight| (f.original[set.labels[f.image]] - f.perturbed[set.labels[f.image]]).abs();
            d(y).total_cmp(&d(x))
        });
        flips.truncate(12);
        if model > 0 {
            flips.clear();
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(ModelRun {
            result: ModelArtefacts { model: classifier.describe(), images: n, clean, steps, gallery, forward_passes: passes * classifier.views(), seconds },
            rows,
            highlights: flips,
        })
    }

    fn conditions(&self, r: &ModelArtefacts) -> Vec<Condition> {
        let bias = self.bias_class.as_ref().and_then(|c| r.clean.per_class.iter().position(|m| &m.class == c));
        let mut out = Vec::new();
        let mut clean_metrics = metric_map(&r.clean, bias);
        for (k, v) in [("p_class_change", 0.0), ("mean_abs_change", 0.0), ("mean_true_change", 0.0), ("delta_pr_auc", 0.0), ("mcnemar_p", 1.0), ("significant_seeds", 0.0)] {
            clean_metrics.insert(k.to_string(), Some(v));
        }
        out.push(Condition { name: "clean".into(), family: "clean".into(), metrics: clean_metrics });
        for s in &r.steps {
            let mean = |f: &dyn Fn(&SeedStep) -> Option<f64>| -> Option<f64> {
                let v: Vec<f64> = s.seeds.iter().filter_map(f).collect();
                (v.len() == s.seeds.len()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let mut m = BTreeMap::new();
            m.insert("accuracy".to_string(), mean(&|x| Some(x.metrics.accuracy)));
            m.insert("pr_auc".to_string(), mean(&|x| x.metrics.pr_auc));
            m.insert("auroc".to_string(), mean(&|x| x.metrics.auroc));
            m.insert("delta_pr_auc".to_string(), mean(&|x| x.metrics.pr_auc.zip(r.clean.pr_auc).map(|(a, b)| a - b)));
            m.insert("p_class_change".to_string(), mean(&|x| Some(x.p_class_change)));
            m.insert("mean_abs_change".to_string(), mean(&|x| Some(x.mean_abs_change)));
            m.insert("mean_true_change".to_string(), mean(&|x| Some(x.mean_true_change)));
            m.insert("not_placed".to_string(), mean(&|x| Some(x.not_placed as f64)));
            m.insert("mcnemar_p".to_string(), Some(median(s.seeds.iter().map(|x| x.mcnemar.p_value).collect())));
            m.insert("significant_seeds".to_string(), Some(s.seeds.iter().filter(|x| x.mcnemar.p_value < ALPHA).count() as f64 / s.seeds.len() as f64));
            m.insert("macro_recall".to_string(), mean(&|x| Some(macro_recall(&x.metrics))));
            for (c, cm) in r.clean.per_class.iter().enumerate() {
                let name = &cm.class;
                m.insert(format!("ap_{name}"), mean(&|x| x.metrics.per_class[c].average_precision));
                m.insert(format!("precision_{name}"), mean(&|x| Some(x.metrics.per_class[c].precision)));
                m.insert(format!("recall_{name}"), mean(&|x| Some(x.metrics.per_class[c].recall)));
                m.insert(format!("fpr_{name}"), mean(&|x| Some(x.metrics.per_class[c].fpr)));
                m.insert(format!("fnr_{name}"), mean(&|x| Some(x.metrics.per_class[c].fnr)));
                m.insert(format!("mcnemar_p_{name}"), Some(median(s.seeds.iter().map(|x| x.mcnemar_per_class[c].p_value).collect())));
            }
            if let Some(b) = bias {
                m.insert("bias_recall".to_string(), mean(&|x| Some(x.metrics.per_class[b].recall)));
                m.insert("bias_fpr".to_string(), mean(&|x| Some(x.metrics.per_class[b].fpr)));
                m.insert("others_fnr".to_string(), mean(&|x| Some(others_fnr(&x.metrics, b))));
            }
            // Each condition is its own family, so the experiment grid shows one row per
            // condition (a mean over shares would mean nothing).
            out.push(Condition { name: s.name.clone(), family: s.name.clone(), metrics: m });
        }
        out
    }

    fn summarise(&self, results: &[ModelArtefacts]) -> Vec<String> {
        results.iter().map(|r| format!("{}: clean PR-AUC {}", r.model, r.clean.pr_auc.map(|v| format!("{v:.3}")).unwrap_or("–".into()))).collect()
    }

    fn report(&self, report: &mut HtmlReport, outcome: &AuditOutcome<Self>, images: &AuditImages) -> Result<()> {
        report_sections(self, report, outcome, images)
    }

    fn key_metrics(&self) -> Vec<KeyMetric> {
        let mut v = vec![
            KeyMetric { key: "pr_auc", label: "PR-AUC".into(), scale: 1.0, digits: 3 },
            KeyMetric { key: "delta_pr_auc", label: "ΔPR-AUC".into(), scale: 1.0, digits: 3 },
            KeyMetric { key: "macro_recall", label: "mean recall".into(), scale: 1.0, digits: 3 },
            KeyMetric { key: "p_class_change", label: "P(class change) %".into(), scale: 100.0, digits: 1 },
            KeyMetric { key: "mcnemar_p", label: "McNemar p (median)".into(), scale: 1.0, digits: 4 },
        ];
        if let Some(c) = &self.bias_class {
            v.push(KeyMetric { key: "bias_recall", label: format!("recall {c}"), scale: 1.0, digits: 3 });
            v.push(KeyMetric { key: "bias_fpr", label: format!("FPR {c}"), scale: 1.0, digits: 3 });
            v.push(KeyMetric { key: "others_fnr", label: "FNR others (mean)".into(), scale: 1.0, digits: 3 });
        }
        v
    }

    fn describe_result(&self, r: &ModelArtefacts) -> Option<String> {
        Some(format!("{} forward passes in {:.0} s", r.forward_passes, r.seconds))
    }
}

fn metric_map(m: &StepMetrics, bias: Option<usize>) -> BTreeMap<String, Option<f64>> {
    let mut out = BTreeMap::new();
    out.insert("accuracy".to_string(), Some(m.accuracy));
    out.insert("pr_auc".to_string(), m.pr_auc);
    out.insert("auroc".to_string(), m.auroc);
    out.insert("not_placed".to_string(), Some(0.0));
    out.insert("macro_recall".to_string(), Some(macro_recall(m)));
    for c in &m.per_class {
        out.insert(format!("ap_{}", c.class), c.average_precision);
        out.insert(format!("precision_{}", c.class), Some(c.precision));
        out.insert(format!("recall_{}", c.class), Some(c.recall));
        out.insert(format!("fpr_{}", c.class), Some(c.fpr));
        out.insert(format!("fnr_{}", c.class), Some(c.fnr));
        out.insert(format!("mcnemar_p_{}", c.class), Some(1.0));
    }
    if let Some(b) = bias {
        out.insert("bias_recall".to_string(), Some(m.per_class[b].recall));
        out.insert("bias_fpr".to_string(), Some(m.per_class[b].fpr));
        out.insert("others_fnr".to_string(), Some(others_fnr(m, b)));
    }
    out
}

fn macro_recall(m: &StepMetrics) -> f64 {
    m.per_class.iter().map(|c| c.recall).sum::<f64>() / m.per_class.len().max(1) as f64
}

fn others_fnr(m: &StepMetrics, b: usize) -> f64 {
    let v: Vec<f64> = m.per_class.iter().enumerate().filter(|(c, _)| *c != b).map(|(_, x)| x.fnr).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn stars(p: f64) -> &'static str {
    if p < 0.001 {
        "***"
    } else if p < ALPHA {
        "**"
    } else if p < 0.05 {
        "*"
    } else {
        ""
    }
}

fn report_sections(audit: &ArtefactAudit, r: &mut HtmlReport, outcome: &AuditOutcome<ArtefactAudit>, images: &AuditImages) -> Result<()> {
    let templates = match &audit.inserter.library {
        Some(l) => format!("templates from {} ({} instances in {} entries; sizes relative to {} px wide originals)", l.dir.display(), l.instances(), l.entries.len(), l.reference_width),
        None => "no template library (procedural artefacts only)".into(),
    };
    r.heading("What was done");
    r.paragraph(&format!(
        "Artefacts: {}. Placement: {} ({}). Each artefact was inserted into exactly round(share × n) of the {} test images for the shares {}, with {} placement seed(s) ({}); the shares of one seed are nested and an image carries the same artefact at every share. Without a lesion mask the lesion is taken to be the central disc of radius a quarter of the width. Metrics are means over seeds (and mean ± sd over models where there are several). McNemar's test with Edwards' continuity correction compares each step's correct/incorrect predictions with the clean set's (p: median over seeds; * p < 0.05, ** p < {ALPHA}, *** p < 0.001; 'sig. seeds' = share of seeds with p < {ALPHA}).",
        audit.artefacts.iter().map(|a| a.name().to_string()).collect::<Vec<_>>().join(", "),
        audit.inserter.placement,
        templates,
        images.indices.len(),
        audit.shares.iter().map(|s| pct(*s)).collect::<Vec<_>>().join(", "),
        audit.seeds.len(),
        audit.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
    ));
    let classes = &images.set.classes;
    let get = |c: &super::ConditionSummary, k: &str| c.metrics.get(k).copied().flatten();
    let fmt = |v: Option<super::runner::MeanSd>, d: usize| v.map(|m| if outcome.models.len() > 1 { format!("{:.*} ± {:.*}", d, m.mean, d, m.sd) } else { format!("{:.*}", d, m.mean) }).unwrap_or("–".into());
    for a in &audit.artefacts {
        let name = a.name();
        let steps: Vec<&super::ConditionSummary> = outcome.conditions.iter().filter(|c| c.name.starts_with(&format!("{name} ")) && c.name.ends_with('%')).collect();
        if steps.is_empty() {
            continue;
        }
        r.heading(&format!("{name}: metrics against the share of images with the artefact"));
        let share_of = |c: &super::ConditionSummary| c.name.rsplit(' ').next().unwrap().trim_end_matches('%').parse::<f64>().unwrap_or(0.0);
        let mut series = vec![Series { name: "PR-AUC (macro)".into(), points: steps.iter().filter_map(|c| get(c, "pr_auc").map(|v| (share_of(c), v.mean))).collect(), dashed: false }];
        for class in classes {
            series.push(Series { name: format!("AP {class}"), points: steps.iter().filter_map(|c| get(c, &format!("ap_{class}")).map(|v| (share_of(c), v.mean))).collect(), dashed: false });
        }
        let significant: Vec<(f64, f64)> = steps.iter().filter(|c| get(c, "mcnemar_p").is_some_and(|p| p.mean < ALPHA)).filter_map(|c| get(c, "pr_auc").map(|v| (share_of(c), v.mean))).collect();
        if !significant.is_empty() {
            series.push(Series { name: format!("p < {ALPHA} (McNemar)"), points: significant, dashed: true });
        }
        r.svg(&line_plot(&format!("{name}: PR-AUC and per-class AP"), "share of test images with the artefact (%)", "average precision", &series, false)?, &format!("Katsch Fig. 4 for {name}: the dashed series joins the steps where McNemar's test against the clean set gives p < {ALPHA}."));
        let mut header: Vec<String> = ["share", "PR-AUC", "ΔPR-AUC", "AUROC", "accuracy", "P(class change)", "mean Δp(true)", "McNemar p", "sig. seeds", "not placed"].map(String::from).to_vec();
        header.extend(classes.iter().flat_map(|c| [format!("recall {c}"), format!("FPR {c}"), format!("FNR {c}")]));
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|c| {
                let p = get(c, "mcnemar_p").map(|v| v.mean).unwrap_or(1.0);
                let mut row = vec![
                    c.name.rsplit(' ').next().unwrap().to_string(),
                    fmt(get(c, "pr_auc"), 3),
                    fmt(get(c, "delta_pr_auc"), 3),
                    fmt(get(c, "auroc"), 3),
                    fmt(get(c, "accuracy"), 3),
                    fmt(get(c, "p_class_change"), 3),
                    fmt(get(c, "mean_true_change"), 4),
                    format!("{p:.2e}{}", stars(p)),
                    fmt(get(c, "significant_seeds"), 2),
                    fmt(get(c, "not_placed"), 1),
                ];
                for class in classes {
                    row.push(fmt(get(c, &format!("recall_{class}")), 3));
                    row.push(fmt(get(c, &format!("fpr_{class}")), 3));
                    row.push(fmt(get(c, &format!("fnr_{class}")), 3));
                }
                row
            })
            .collect();
        r.table(&header, &rows);
        if let Some(b) = &audit.bias_class {
            let views: Vec<&super::ConditionSummary> = outcome.conditions.iter().filter(|c| c.name == "clean" || (c.name.starts_with(&format!("{name} ")) && (c.name.ends_with("100%") || c.name.contains(" only") || c.name.contains(" all but ")))).collect();
            r.heading(&format!("{name}: the shortcut view for class {b}"));
            r.paragraph(&format!("A model trained with {name} on images of {b} that uses it as a shortcut calls more images {b} when the artefact is present (FPR of {b} up, FNR of the others up) and fewer when it is absent (recall of {b} on clean images down)."));
            let header: Vec<String> = ["condition", "PR-AUC", "mean recall", &format!("recall {b}"), &format!("FPR {b}"), "FNR others (mean)", "P(class change)"].map(String::from).to_vec();
            let rows = views
                .iter()
                .map(|c| {
                    vec![c.name.clone(), fmt(get(c, "pr_auc"), 3), fmt(get(c, "macro_recall"), 3), fmt(get(c, "bias_recall"), 3), fmt(get(c, "bias_fpr"), 3), fmt(get(c, "others_fnr"), 3), fmt(get(c, "p_class_change"), 3)]
                })
                .collect::<Vec<_>>();
            r.table(&header, &rows);
        }
    }
    if let Some(first) = outcome.results.first() {
        if !first.gallery.is_empty() {
            r.heading("Gallery: inserted artefacts");
            r.paragraph("Original and with the artefact (rebuilt from the recorded operation), each with the first model's predicted class and probability.");
            let set = images.set;
            let cap = |p: &[f32]| format!("{} {:.2}", set.classes[argmax(p)], p[argmax(p)]);
            for h in &first.gallery {
                let img = set.image(h.image);
                let with = h.op.apply(&img)?;
                r.image_row(&[
                    (encode_png(&enlarged(&img, 128))?, format!("{} (true {}): {}", set.ids[h.image], set.classes[set.labels[h.image]], cap(&h.original))),
                    (encode_png(&enlarged(&with, 128))?, format!("{}: {}", h.condition, cap(&h.perturbed))),
                ]);
            }
        }
    }
    Ok(())
}
