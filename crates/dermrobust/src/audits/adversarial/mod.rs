//! The adversarial audit (Du-Harpur et al. 2021): "which small, plausible changes to this image
//! make my model call a melanoma a nevus, and how often?"
//!
//! Gradient attacks (FGSM, PGD) and black-box attacks on one differential-evolution optimiser
//! (few pixels, colour balance, rotation + translation) against the audited classifier (each
//! model, or the ensemble; TTA through the expectation over its views), on the correctly
//! classified positive images by default; and systematic colour and rotation sweeps over all
//! images. Every adversarial image is an `ImageOp` record that `dermrobust replay` rebuilds.

pub mod attack;
pub mod eot;
pub mod evolution;
pub mod gradient;
pub mod options;
mod report;
pub mod sweep;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use dermrobust_core::data::LabelScheme;
use dermrobust_core::imaging::Image;
use dermrobust_core::metrics::{wilson_interval, ConfidenceInterval};
use serde::{Deserialize, Serialize};

pub use attack::{Attack, AttackContext, AttackOutcome, Goal, LossGradient, PerturbationSize, Victim};
pub use evolution::{EvolutionAttack, Search};
pub use gradient::{Fgsm, Norm, Pgd};
pub use options::AttackOptions;
pub use sweep::{SweepResult, SweepSetting};

use super::input::AuditImages;
use super::runner::{Audit, AuditOutcome, Condition, Highlight, KeyMetric, ModelRun};
use crate::evaluation::{argmax, ImageClassifier};

/// Which images are attacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TargetImages {
    /// Images of the positive class (melanoma) that the model classifies correctly (Du-Harpur).
    #[default]
    CorrectPositive,
    /// Every image the model classifies correctly.
    Correct,
    /// Every image (an untargeted attack moves the decision away from the original one).
    All,
}

/// The adversarial audit: attacks, their targets, and the sweeps.
pub struct Adversarial {
    pub attacks: Vec<Box<dyn Attack>>,
    pub images: TargetImages,
    /// Targeted attacks towards this class (index); `None`: untargeted.
    pub target_class: Option<usize>,
    /// The sweeps' settings (empty: no sweeps).
    pub sweeps: Vec<SweepSetting>,
    /// Gradients of each audited classifier, in the order of the classifiers (`None` where a
    /// classifier has none: gradient attacks then say so). Set per set of models
    /// ([`Adversarial::bind_models`]) when one audit runs on several (the experiment grid).
    pub gradients: std::sync::Mutex<Vec<Option<Box<dyn LossGradient>>>>,
    /// Where dense perturbations are written (`<out>/perturbations`).
    pub delta_dir: std::sync::Mutex<PathBuf>,
    pub seed: u64,
    /// For the resume key and the JSON: the attacks' settings.
    pub attack_settings: serde_json::Value,
}

/// One attack's results for one model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttackResult {
    pub attack: String,
    pub kind: String,
    pub epsilon: Option<f32>,
    pub attempted: usize,
    pub successes: usize,
    /// Success rate with its 95% Wilson interval.
    pub success_rate: Option<ConfidenceInterval>,
    /// Median queries (black-box) or gradient steps (gradient attacks) per success.
    pub median_queries_per_success: Option<f64>,
    pub median_queries: Option<f64>,
    /// Medians over successful attacks.
    pub median_linf: Option<f64>,
    pub median_l2: Option<f64>,
    pub median_delta_e: Option<f64>,
    pub median_degrees: Option<f64>,
    pub median_shift_px: Option<f64>,
    pub queries: usize,
    pub seconds: f64,
    pub queries_per_second: f64,
    /// Success rate by the model's initial confidence in the attacked class (bins of 0.1 from
    /// 0.5; Du-Harpur Fig. 1n, 2j, 2t): (bin start, attempted, successes).
    pub by_initial_confidence: Vec<(f32, usize, usize)>,
}

/// Everything the audit finds for one model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelAdversarial {
    pub model: String,
    pub images: usize,
    pub targets: usize,
    pub attacks: Vec<AttackResult>,
    pub sweeps: Vec<SweepResult>,
}

/// One per-image record (a row of `adversarial_per_image.csv`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttackRow {
    pub model: usize,
    pub attack: String,
    pub image_id: String,
    pub true_class: String,
    pub goal: String,
    pub predicted_original: String,
    /// The original probability of the class the attack moves away from (untargeted) or of the
    /// original decision (targeted).
    pub initial_confidence: f32,
    pub predicted_perturbed: String,
    pub p_true_perturbed: f32,
    pub success: bool,
    pub queries: usize,
    pub linf: f32,
    pub l2: f32,
    pub delta_e: f32,
    pub degrees: Option<f32>,
    pub shift_px: Option<f32>,
    pub pixels: Option<usize>,
    /// The image operation that rebuilds the adversarial image from the original (JSON).
    pub op: String,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

impl Adversarial {
    /// The images to attack among `indices` and their goals, from the original probabilities.
    fn targets(&self, labels: &[usize], probs: &[Vec<f32>], classes: &[String]) -> Vec<(usize, Goal)> {
        let pos = LabelScheme::positive_class(classes);
        (0..labels.len())
            .filter(|&k| {
                let correct = argmax(&probs[k]) == labels[k];
                match self.images {
                    TargetImages::CorrectPositive => correct && labels[k] == pos,
                    TargetImages::Correct => correct,
                    TargetImages::All => true,
                }
            })
            .filter_map(|k| match self.target_class {
                // An image already decided as the target class has nothing to attack.
                Some(t) if argmax(&probs[k]) == t => None,
                Some(t) => Some((k, Goal::Targeted(t))),
                None => Some((k, Goal::Untargeted(argmax(&probs[k])))),
            })
            .collect()
    }
}

impl Audit for Adversarial {
    type ModelResult = ModelAdversarial;
    type Row = AttackRow;
    type Summary = Vec<(String, Option<f64>)>;

    fn name(&self) -> &'static str {
        "adversarial"
    }

    fn title(&self) -> String {
        "Adversarial audit".into()
    }

    fn settings(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut m = serde_json::Map::new();
        m.insert("attacks".into(), self.attack_settings.clone());
        m.insert("target_images".into(), serde_json::to_value(self.images)?);
        m.insert("target_class".into(), serde_json::to_value(self.target_class)?);
        m.insert("sweeps".into(), serde_json::to_value(&self.sweeps)?);
        m.insert("seed".into(), self.seed.into());
        Ok(m)
    }

    fn run_model(&self, classifier: &dyn ImageClassifier, model: usize, images: &AuditImages, quiet: bool) -> Result<ModelRun<ModelAdversarial, AttackRow>> {
        let set = images.set;
        if classifier.classes() != set.classes.as_slice() {
            bail!("the model's classes {:?} differ from the data's {:?}", classifier.classes(), set.classes);
        }
        let classes = &set.classes;
        let originals: Vec<Image> = images.indices.iter().map(|&i| set.image(i)).collect();
        let labels: Vec<usize> = images.indices.iter().map(|&i| set.labels[i]).collect();
        let mut probs = Vec::with_capacity(originals.len());
        for chunk in originals.chunks(256) {
            probs.extend(classifier.predict(chunk)?);
        }
        let targets = self.targets(&labels, &probs, classes);
        let target_images: Vec<Image> = targets.iter().map(|&(k, _)| originals[k].clone()).collect();
        let goals: Vec<Goal> = targets.iter().map(|&(_, g)| g).collect();
        let ids: Vec<String> = targets.iter().map(|&(k, _)| format!("m{model}_{}", set.ids[images.indices[k]])).collect();
        let gradients = self.gradients.lock().map_err(|_| anyhow::anyhow!("gradient sources poisoned"))?;
        let victim = Victim { classifier, gradients: gradients.get(model).and_then(|g| g.as_deref()) };
        let delta_dir = self.delta_dir.lock().map_err(|_| anyhow::anyhow!("perturbation folder poisoned"))?.clone();
        let ctx = AttackContext { delta_dir, ids, seed: self.seed.wrapping_add(model as u64 * 7919) };
        if !quiet {
            eprintln!("{}: attacking {} of {} images", classifier.describe(), targets.len(), originals.len());
        }
        let bar = dermrobust_core::progress::bar(self.attacks.len() as u64, "attacks", quiet);
        let mut results = Vec::new();
        let mut rows = Vec::new();
        let mut highlights = Vec::new();
        for attack in &self.attacks {
            bar.set_prefix(attack.name());
            if attack.kind() == "gradient" && victim.gradients.is_none() {
                bail!(
                    "the attack '{}' needs gradients, which {} cannot give (an ONNX model runs without them): use the black-box attacks (pixels, colour, geometry), or a dermrobust model",
                    attack.name(),
                    classifier.describe()
                );
            }
            let started = Instant::now();
            let outcomes = if target_images.is_empty() { vec![] } else { attack.run(&victim, &target_images, &goals, &ctx)? };
            let seconds = started.elapsed().as_secs_f64();
            results.push(self.summarise_attack(attack.as_ref(), &targets, &probs, &outcomes, seconds)?);
            for (&(k, goal), o) in targets.iter().zip(&outcomes) {
                let p0 = &probs[k];
                let goal_text = match goal {
                    Goal::Untargeted(c) => format!("away from {}", classes[c]),
                    Goal::Targeted(c) => format!("to {}", classes[c]),
                };
                rows.push(AttackRow {
                    model,
                    attack: attack.name(),
                    image_id: set.ids[images.indices[k]].clone(),
                    true_class: classes[labels[k]].clone(),
                    goal: goal_text,
                    predicted_original: classes[argmax(p0)].clone(),
                    initial_confidence: p0[argmax(p0)],
                    predicted_perturbed: classes[argmax(&o.probabilities)].clone(),
                    p_true_perturbed: o.probabilities[labels[k]],
                    success: o.success,
                    queries: o.queries,
                    linf: o.size.linf,
                    l2: o.size.l2,
                    delta_e: o.size.delta_e,
                    degrees: o.size.degrees,
                    shift_px: o.size.shift_px,
                    pixels: o.size.pixels,
                    op: serde_json::to_string(&o.op)?,
                });
            }
            // The most confident successes of each attack, for the gallery (first model only).
            if model == 0 {
                let mut wins: Vec<(usize, &AttackOutcome)> = targets.iter().zip(&outcomes).filter(|(_, o)| o.success).map(|(&(k, _), o)| (k, o)).collect();
                wins.sort_by(|a, b| probs[b.0][argmax(&probs[b.0])].total_cmp(&probs[a.0][argmax(&probs[a.0])]));
                highlights.extend(wins.into_iter().take(2).map(|(k, o)| Highlight {
                    model,
                    image: images.indices[k],
                    condition: attack.name(),
                    op: o.op.clone(),
                    original: probs[k].clone(),
                    perturbed: o.probabilities.clone(),
                }));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let sweeps = if self.sweeps.is_empty() { vec![] } else { sweep::run(classifier, &originals, &labels, classes, &self.sweeps)? };
        Ok(ModelRun { result: ModelAdversarial { model: classifier.describe(), images: originals.len(), targets: targets.len(), attacks: results, sweeps }, rows, highlights })
    }

    fn conditions(&self, r: &ModelAdversarial) -> Vec<Condition> {
        let mut out: Vec<Condition> = r
            .attacks
            .iter()
            .map(|a| Condition {
                name: a.attack.clone(),
                family: a.kind.clone(),
                metrics: [
                    ("success_rate", a.success_rate.map(|c| c.estimate)),
                    ("success_low", a.success_rate.map(|c| c.low)),
                    ("success_high", a.success_rate.map(|c| c.high)),
                    ("median_queries", a.median_queries),
                    ("median_linf", a.median_linf),
                    ("median_l2", a.median_l2),
                    ("median_delta_e", a.median_delta_e),
                    ("queries_per_second", Some(a.queries_per_second)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            })
            .collect();
        out.extend(r.sweeps.iter().map(|s| Condition {
            name: format!("sweep {}", s.setting),
            family: format!("sweep {}", s.family),
            metrics: [
                ("false_negatives", Some(s.false_negatives as f64)),
                ("sensitivity", s.sensitivity),
                ("specificity", s.specificity),
                ("auroc", s.auroc),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }));
        out
    }

    fn summarise(&self, results: &[ModelAdversarial]) -> Vec<(String, Option<f64>)> {
        let Some(first) = results.first() else { return vec![] };
        first
            .attacks
            .iter()
            .enumerate()
            .map(|(a, attack)| {
                let rates: Vec<f64> = results.iter().filter_map(|m| m.attacks[a].success_rate.map(|c| c.estimate)).collect();
                (attack.attack.clone(), (rates.len() == results.len()).then(|| rates.iter().sum::<f64>() / rates.len() as f64))
            })
            .collect()
    }

    fn report(&self, r: &mut dermrobust_core::report::html::HtmlReport, outcome: &AuditOutcome<Self>, _images: &AuditImages) -> Result<()> {
        report::sections(r, outcome)
    }

    fn magnify_highlights(&self) -> bool {
        true
    }

    fn key_metrics(&self) -> Vec<KeyMetric> {
        vec![
            KeyMetric { key: "success_rate", label: "attack success %".into(), scale: 100.0, digits: 1 },
            KeyMetric { key: "median_queries", label: "median queries".into(), scale: 1.0, digits: 0 },
            KeyMetric { key: "false_negatives", label: "false negatives".into(), scale: 1.0, digits: 1 },
            KeyMetric { key: "auroc", label: "AUROC".into(), scale: 1.0, digits: 3 },
        ]
    }

    /// Load the gradients of `models` (each, through `tta`'s views) for the gradient attacks, and
    /// write perturbations under `out`.
    fn bind(&self, models: &[PathBuf], tta: Option<&crate::evaluation::Tta>, out: &std::path::Path) -> Result<()> {
        *self.delta_dir.lock().map_err(|_| anyhow::anyhow!("perturbation folder poisoned"))? = std::path::absolute(out)?.join("perturbations");
        if self.attacks.iter().any(|a| a.kind() == "gradient") {
            *self.gradients.lock().map_err(|_| anyhow::anyhow!("gradient sources poisoned"))? = gradient_sources(models, false, tta)?;
        }
        Ok(())
    }

    fn describe_result(&self, r: &ModelAdversarial) -> Option<String> {
        let parts: Vec<String> = r.attacks.iter().map(|a| format!("{} {}/{}", a.attack, a.successes, a.attempted)).collect();
        Some(parts.join(", "))
    }
}

impl Adversarial {
    fn summarise_attack(&self, attack: &dyn Attack, targets: &[(usize, Goal)], probs: &[Vec<f32>], outcomes: &[AttackOutcome], seconds: f64) -> Result<AttackResult> {
        let attempted = outcomes.len();
        let wins: Vec<&AttackOutcome> = outcomes.iter().filter(|o| o.success).collect();
        let med = |f: &dyn Fn(&AttackOutcome) -> Option<f64>| median(wins.iter().filter_map(|o| f(o)).collect());
        let queries: usize = outcomes.iter().map(|o| o.queries).sum();
        let mut bins = Vec::new();
        for b in 0..5 {
            let lo = 0.5 + 0.1 * b as f32;
            let in_bin: Vec<bool> = targets
                .iter()
                .zip(outcomes)
                .filter(|((k, _), _)| {
                    let c = probs[*k][argmax(&probs[*k])];
                    c >= lo && (c < lo + 0.1 || b == 4)
                })
                .map(|(_, o)| o.success)
                .collect();
            bins.push((lo, in_bin.len(), in_bin.iter().filter(|&&s| s).count()));
        }
        Ok(AttackResult {
            attack: attack.name(),
            kind: attack.kind().to_string(),
            epsilon: attack.epsilon(),
            attempted,
            successes: wins.len(),
            success_rate: if attempted > 0 { Some(wilson_interval(wins.len(), attempted, 0.95)?) } else { None },
            median_queries_per_success: med(&|o| Some(o.queries as f64)),
            median_queries: median(outcomes.iter().map(|o| o.queries as f64).collect()),
            median_linf: med(&|o| Some(o.size.linf as f64)),
            median_l2: med(&|o| Some(o.size.l2 as f64)),
            median_delta_e: med(&|o| Some(o.size.delta_e as f64)),
            median_degrees: med(&|o| o.size.degrees.map(f64::from)),
            median_shift_px: med(&|o| o.size.shift_px.map(f64::from)),
            queries,
            seconds,
            queries_per_second: if seconds > 0.0 { queries as f64 / seconds } else { 0.0 },
            by_initial_confidence: bins,
        })
    }
}

/// The gradients of each audited classifier, in the order the classifiers are loaded: one
/// differentiable model per model (or one for the `ensemble`), through the expectation over
/// `tta`'s views when TTA is on; `None` for a model without gradients (ONNX).
pub fn gradient_sources(models: &[PathBuf], ensemble: bool, tta: Option<&crate::evaluation::Tta>) -> Result<Vec<Option<Box<dyn LossGradient>>>> {
    use crate::evaluation::gradients::DifferentiableModel;
    use crate::evaluation::is_onnx;
    let wrap = |m: DifferentiableModel| -> Result<Box<dyn LossGradient>> {
        Ok(match tta {
            Some(tta) => Box::new(eot::ExpectationOverViews::new(m, tta)?),
            None => Box::new(m),
        })
    };
    if ensemble {
        if models.iter().any(|p| is_onnx(p)) {
            return Ok(vec![None]);
        }
        return Ok(vec![Some(wrap(DifferentiableModel::load_ensemble(models)?)?)]);
    }
    models.iter().map(|p| if is_onnx(p) { Ok(None) } else { wrap(DifferentiableModel::load(p)?).map(Some) }).collect()
}
