//! `dermrobust experiment`: Maron et al.'s comparison grid. For each architecture and training
//! variant (baseline, +ADA, +AAM, +ADA+AAM) train `--repeats` models on one lesion-aware split,
//! audit each with and without test-time augmentation, and write one table (like the paper's
//! Fig. 2-4) as JSON and CSV, with every audit's per-image results kept beside it. The grid runs
//! any [`Audit`]: its table is built from the audit's per-condition summaries.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use dermrobust_core::report::html::HtmlReport;
use dermrobust_core::report::plots::{bar_plot, Bar};
use dermrobust_core::report::{write_json, write_table};
use serde::Serialize;

use crate::audits::brittleness::{Brittleness, PairOptions};
use crate::audits::runner::MeanSd;
use crate::audits::suite::Suite;
use crate::audits::{run_audit, Audit, AuditImages, AuditRun, ConditionSummary};
use crate::evaluation::{learned_prior, load_classifiers, with_priors, CaptureChoice, DecisionRule, Tta};
use crate::models::Arch;
use crate::training::config::AugmentPreset;
use crate::training::trainer::training_finished;
use crate::training::{prepare_data_with_masks, train_one, TrainConfig};

#[derive(clap::Args)]
pub struct ExperimentArgs {
    /// Base training options (data, labels, epochs, learning rate, ... and --repeats per cell).
    #[command(flatten)]
    pub config: TrainConfig,
    /// Architectures to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "resnet18")]
    pub archs: Vec<Arch>,
    /// Training variants, comma-separated: baseline, ada (strong augmentation), aam (anti-aliased
    /// model), ada+aam.
    #[arg(long, value_delimiter = ',', default_value = "baseline,ada,aam,ada+aam")]
    pub variants: Vec<String>,
    /// Do not also audit every model with test-time augmentation.
    #[arg(long)]
    pub no_tta: bool,
    /// The TTA of the "+TTA" methods (default: Maron's).
    #[command(flatten)]
    pub tta: crate::evaluation::tta::TtaViewArgs,
    /// The audit run in every cell.
    #[arg(long, value_enum, default_value_t = GridAudit::Brittleness)]
    pub audit: GridAudit,
    /// Transformation suite (TOML) of the brittleness audit; default: the built-in suite.
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// The artefact audit's artefacts, placement, shares and seeds (with --audit artefacts; its
    /// templates are --artefact-templates, its bias class --bias-class).
    #[command(flatten)]
    pub artefact_audit: crate::audits::artefacts::ArtefactOptions,
    /// The adversarial audit's attacks and sweeps (with --audit adversarial).
    #[command(flatten)]
    pub attack_audit: crate::audits::adversarial::AttackOptions,
    /// How probabilities become decisions in the audits (see `audit brittleness --help`).
    #[arg(long, value_enum, default_value_t = DecisionRule::Argmax)]
    pub decision: DecisionRule,
    /// Audit at most this many test images with the transformed sets (a seeded random subset;
    /// natural pairs always use the whole test part).
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Reuse models already trained in OUT, and audits already made of exactly those models with
    /// the same data, images, suite, TTA and decision rule (an interrupted experiment continues).
    #[arg(long)]
    pub resume: bool,
    #[arg(long)]
    pub out: PathBuf,
}

/// One row of the comparison table: a method on one family of conditions (e.g. Maron's single
/// and combined transformations, natural pairs), with each metric's mean over the family's
/// conditions of the per-condition mean and standard deviation over models.
#[derive(Clone, Debug, Serialize)]
pub struct TableRow {
    pub arch: String,
    pub method: String,
    pub family: String,
    pub sets: usize,
    pub models: usize,
    pub metrics: BTreeMap<String, Option<MeanSd>>,
}

/// One cell of the grid: an architecture and method, and its audit's conditions.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub arch: String,
    pub method: String,
    pub conditions: Vec<ConditionSummary>,
}

#[derive(Serialize)]
struct ExperimentFile<'a> {
    audit: &'static str,
    data: String,
    test_images: usize,
    repeats: usize,
    decision: DecisionRule,
    /// The TTA of the "+TTA" methods.
    tta: &'a Tta,
    table: &'a [TableRow],
    cells: &'a [Cell],
}

/// The audit run in every cell of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GridAudit {
    /// Maron et al.'s brittleness (the transformation suite and natural pairs).
    Brittleness,
    /// Katsch et al.'s artefact share sweep (with variants biased, artaug, biased+artaug).
    Artefacts,
    /// Du-Harpur et al.'s attacks and sweeps (with variants jitter: colour-jitter augmentation,
    /// and adv: PGD adversarial training at --adversarial-eps).
    Adversarial,
}

fn method_name(variant: &str, tta: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if variant.contains("ada") {
        parts.push("ADA");
    }
    if variant.contains("aam") {
        parts.push("AAM");
    }
    if variant.contains("biased") {
        parts.push("biased");
    }
    if variant.contains("artaug") {
        parts.push("ArtAug");
    }
    if variant.contains("jitter") {
        parts.push("jitter");
    }
    if variant.split('+').any(|v| v == "adv") {
        parts.push("AdvTrain");
    }
    if tta {
        parts.push("TTA");
    }
    if parts.is_empty() { "baseline".into() } else { parts.join("+") }
}

/// Average the per-set summaries of one family (sets of one family weigh equally).
/// The table rows of one cell: one per family of conditions, in order of appearance.
pub fn family_rows(arch: &str, method: &str, conditions: &[ConditionSummary]) -> Vec<TableRow> {
    let mut families: Vec<String> = conditions.iter().map(|c| c.family.clone()).collect();
    families.dedup();
    families
        .into_iter()
        .map(|f| {
            let members: Vec<&ConditionSummary> = conditions.iter().filter(|c| c.family == f).collect();
            let n = members.len() as f64;
            let metrics = members[0]
                .metrics
                .keys()
                .map(|name| {
                    let values: Vec<MeanSd> = members.iter().filter_map(|c| c.metrics.get(name).copied().flatten()).collect();
                    let value = (values.len() == members.len()).then(|| MeanSd { mean: values.iter().map(|v| v.mean).sum::<f64>() / n, sd: values.iter().map(|v| v.sd).sum::<f64>() / n });
                    (name.clone(), value)
                })
                .collect();
            TableRow { arch: arch.to_string(), method: method.to_string(), family: f, sets: members.len(), models: members[0].models, metrics }
        })
        .collect()
}

/// `value` of a row's metric formatted as mean ± sd at `scale`.
fn cell_text(row_metrics: &BTreeMap<String, Option<MeanSd>>, key: &str, scale: f64, digits: usize) -> String {
    match row_metrics.get(key).copied().flatten() {
        Some(v) => format!("{:.*} ± {:.*}", digits, v.mean * scale, digits, v.sd * scale),
        None => "–".into(),
    }
}

pub fn run(a: &ExperimentArgs, quiet: bool) -> Result<()> {
    match a.audit {
        GridAudit::Brittleness => {
            let audit = Brittleness {
                suite: match &a.suite {
                    Some(p) => Suite::load(p)?,
                    None => Suite::default_suite(),
                },
                pairs: PairOptions::default(),
            };
            run_grid(a, &audit, quiet)
        }
        GridAudit::Adversarial => {
            // Gradients are bound per cell (`Audit::bind`), so none are loaded here.
            let (attacks, attack_settings) = a.attack_audit.attacks()?;
            let audit = crate::audits::adversarial::Adversarial {
                attacks,
                images: a.attack_audit.images,
                target_class: None,
                sweeps: if a.attack_audit.no_sweeps {
                    vec![]
                } else {
                    crate::audits::adversarial::sweep::settings(a.attack_audit.sweep_offset, a.attack_audit.sweep_offset_step, a.attack_audit.sweep_angle_step)
                },
                gradients: std::sync::Mutex::new(vec![]),
                delta_dir: std::sync::Mutex::new(a.out.join("perturbations")),
                seed: a.attack_audit.attack_seed,
                attack_settings,
            };
            if a.attack_audit.target_class.is_some() {
                bail!("experiment --audit adversarial runs untargeted attacks; --target-class is for `audit adversarial`");
            }
            run_grid(a, &audit, quiet)
        }
        GridAudit::Artefacts => {
            let audit = a.artefact_audit.audit(a.config.artefact_templates.as_deref(), a.config.bias_class.clone())?;
            run_grid(a, &audit, quiet)
        }
    }
}

/// Train the grid's models and run `audit` on every cell.
pub fn run_grid<A: Audit>(a: &ExperimentArgs, audit: &A, quiet: bool) -> Result<()> {
    for v in &a.variants {
        if !["baseline", "ada", "aam", "ada+aam", "aam+ada", "biased", "artaug", "biased+artaug", "jitter", "adv", "jitter+adv"].contains(&v.as_str()) {
            bail!("unknown variant '{v}' (choose baseline, ada, aam, ada+aam, biased, artaug, biased+artaug, jitter, adv, jitter+adv)");
        }
        if v.split('+').any(|p| p == "adv") && a.config.adversarial_eps <= 0.0 {
            bail!("the variant '{v}' needs --adversarial-eps (the PGD budget of adversarial training)");
        }
        if v.contains("biased") && a.config.bias_artefact.is_none() {
            bail!("the variant '{v}' needs --bias-artefact and --bias-class");
        }
    }
    std::fs::create_dir_all(&a.out)?;
    // The clean data; biased variants insert their artefacts into a copy.
    let mut clean_cfg = a.config.clone();
    clean_cfg.bias_artefact = None;
    clean_cfg.bias_class = None;
    // `--attention-masks` (AttnMel-CNN-Lesion) regularises every cell's attention model.
    if a.config.attention_masks {
        if let Some(x) = a.archs.iter().find(|x| **x != Arch::Attnmel) {
            bail!("--attention-masks regularises AttnMel-CNN's attention maps: every --archs must be attnmel, not {x}");
        }
    }
    clean_cfg.arch = a.archs.first().copied().unwrap_or(clean_cfg.arch);
    let data = prepare_data_with_masks(&clean_cfg, &a.out, quiet, audit.needs_masks() || a.config.bias_artefact.is_some() || a.config.attention_masks)?;
    let test = crate::audits::subsample(&data.test, a.max_images, 0);
    if test.is_empty() {
        bail!("the split has no test images");
    }
    let priors = match a.decision {
        DecisionRule::Argmax => None,
        DecisionRule::Balanced => Some(learned_prior(a.config.balances_classes(), &data.set.labels, &data.train, data.set.num_classes())?),
    };
    let tta_choice = a.tta.tta()?;
    let mut table = Vec::new();
    let mut cells: Vec<Cell> = Vec::new();
    for arch in &a.archs {
        for variant in &a.variants {
            let mut cfg = a.config.clone();
            cfg.arch = *arch;
            cfg.anti_alias = variant.contains("aam");
            if variant.contains("ada") {
                cfg.augment = AugmentPreset::Strong;
            }
            if variant.contains("artaug") {
                cfg.augment = AugmentPreset::Artefacts;
            }
            if variant.contains("jitter") {
                cfg.augment = AugmentPreset::Jitter;
            }
            // Adversarial training only where the variant asks for it.
            if !variant.split('+').any(|v| v == "adv") {
                cfg.adversarial_eps = 0.0;
            }
            if !variant.contains("biased") {
                cfg.bias_artefact = None;
                cfg.bias_class = None;
            }
            let biased;
            let cell_data = if variant.contains("biased") {
                biased = crate::training::bias::biased_data(&cfg, &data, Some(&a.out.join("models").join(arch.name()).join(variant)), quiet)?;
                &biased
            } else {
                &data
            };
            let mut models = Vec::new();
            for r in 0..a.config.repeats.max(1) {
                let dir = a.out.join("models").join(arch.name()).join(variant).join(format!("run{r}"));
                let mut run_cfg = cfg.clone();
                run_cfg.seed = cfg.seed + r as u64;
                run_cfg.repeats = 1;
                if !(a.resume && training_finished(&dir)) {
                    if !quiet {
                        eprintln!("training {arch} {variant} run {} of {}", r + 1, a.config.repeats.max(1));
                    }
                    train_one(&run_cfg, cell_data, &dir, a.resume, quiet)?;
                }
                models.push(dir);
            }
            for tta in if a.no_tta { vec![false] } else { vec![false, true] } {
                let method = method_name(variant, tta);
                let audit_dir = a.out.join("audits").join(arch.name()).join(method.replace('+', "_"));
                let images = AuditImages { set: &data.set, indices: &test, pool: &data.test };
                let tta = tta.then_some(&tta_choice);
                let (classifiers, _) = load_classifiers(&models, false, tta, &CaptureChoice::Recorded)?;
                let classifiers = with_priors(classifiers, priors.as_deref())?;
                let subject = serde_json::json!({ "tta": tta, "decision": a.decision });
                let run = AuditRun { data: a.config.data.to_string(), model_paths: &models, subject, out: &audit_dir, resume: a.resume, quiet };
                audit.bind(&models, tta, &audit_dir)?;
                let conditions = run_audit(audit, &classifiers, &images, &run)?.conditions;
                table.extend(family_rows(arch.name(), &method, &conditions));
                cells.push(Cell { arch: arch.name().to_string(), method, conditions });
            }
        }
    }
    let keys = audit.key_metrics();
    let mut metric_names: Vec<String> = table.first().map(|r| r.metrics.keys().cloned().collect()).unwrap_or_default();
    metric_names.sort_by_key(|m| keys.iter().position(|k| k.key == m).unwrap_or(usize::MAX));
    let mut header: Vec<String> = ["arch", "method", "family", "sets", "models"].map(String::from).to_vec();
    header.extend(metric_names.iter().flat_map(|m| [format!("{m}_mean"), format!("{m}_std")]));
    let rows: Vec<Vec<String>> = table
        .iter()
        .map(|r| {
            let mut row = vec![r.arch.clone(), r.method.clone(), r.family.clone(), r.sets.to_string(), r.models.to_string()];
            for m in &metric_names {
                match r.metrics.get(m).copied().flatten() {
                    Some(v) => row.extend([v.mean.to_string(), v.sd.to_string()]),
                    None => row.extend([String::new(), String::new()]),
                }
            }
            row
        })
        .collect();
    write_table(&a.out.join("experiment.csv"), &header, &rows)?;
    write_json(
        &a.out.join("experiment.json"),
        &ExperimentFile { audit: audit.name(), data: a.config.data.to_string(), test_images: test.len(), repeats: a.config.repeats.max(1), decision: a.decision, tta: &tta_choice, table: &table, cells: &cells },
    )?;
    write_report(a, audit, &tta_choice, &table, &cells, test.len())?;
    print!("{:<12} {:<16} {:<9}", "arch", "method", "family");
    for k in &keys {
        print!(" {:>20}", k.label);
    }
    println!();
    for r in &table {
        print!("{:<12} {:<16} {:<9}", r.arch, r.method, r.family);
        for k in &keys {
            print!(" {:>20}", cell_text(&r.metrics, k.key, k.scale, k.digits));
        }
        println!();
    }
    println!("wrote {}/experiment.csv, experiment.json and report.html", a.out.display());
    Ok(())
}

fn write_report<A: Audit>(a: &ExperimentArgs, audit: &A, tta: &Tta, table: &[TableRow], cells: &[Cell], images: usize) -> Result<()> {
    let mut r = HtmlReport::new(&format!("Experiment: {} over architectures and training variants", audit.title()));
    r.paragraph(&format!(
        "Data: {}; {} test images; {} model(s) per cell. ADA = additional (strong) data augmentation in training, AAM = anti-aliased model, TTA = {}. Values are means over the conditions of a family of the per-condition mean ± standard deviation over models. Decisions: {}.",
        a.config.data,
        images,
        a.config.repeats.max(1),
        tta.description(),
        match a.decision {
            DecisionRule::Argmax => "the most probable class",
            DecisionRule::Balanced => "the most probable class after correcting the probabilities to equal class priors (dividing by the training class shares, or by equal shares where training balanced the classes)",
        }
    ));
    let keys = audit.key_metrics();
    let mut header = ["arch", "method", "family"].map(String::from).to_vec();
    header.extend(keys.iter().map(|k| k.label.to_string()));
    let rows: Vec<Vec<String>> = table
        .iter()
        .map(|t| {
            let mut row = vec![t.arch.clone(), t.method.clone(), t.family.clone()];
            row.extend(keys.iter().map(|k| cell_text(&t.metrics, k.key, k.scale, k.digits)));
            row
        })
        .collect();
    r.heading("Method comparison");
    r.table(&header, &rows);
    if let Some(k) = keys.first() {
        let mut families: Vec<&str> = table.iter().map(|t| t.family.as_str()).filter(|f| *f != "original").collect();
        families.dedup();
        families.sort();
        families.dedup();
        for family in families {
            let bars: Vec<Bar> = table
                .iter()
                .filter(|t| t.family == family)
                .filter_map(|t| t.metrics.get(k.key).copied().flatten().map(|v| Bar::new(format!("{} {}", t.arch, t.method), k.scale * v.mean, k.scale * v.sd)))
                .collect();
            if !bars.is_empty() {
                r.svg(&bar_plot(&format!("{}, {family}", k.label), &k.label, &bars, None)?, "Bars: mean over the conditions of the family; whiskers: ± standard deviation over repeated models (averaged over the conditions).");
            }
        }
    }
    for cell in cells {
        r.heading(&format!("{} {}", cell.arch, cell.method));
        let mut h = ["condition", "family"].map(String::from).to_vec();
        h.extend(keys.iter().map(|k| k.label.to_string()));
        let rows: Vec<Vec<String>> = cell
            .conditions
            .iter()
            .map(|c| {
                let mut row = vec![c.name.clone(), c.family.clone()];
                row.extend(keys.iter().map(|k| cell_text(&c.metrics, k.key, k.scale, k.digits)));
                row
            })
            .collect();
        r.table(&h, &rows);
    }
    r.write(&a.out.join("report.html"))
}
