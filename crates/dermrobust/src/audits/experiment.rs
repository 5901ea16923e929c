//! `dermrobust experiment`: Maron et al.'s comparison grid. For each architecture and training
//! variant (baseline, +ADA, +AAM, +ADA+AAM) train `--repeats` models on one lesion-aware split,
//! audit each with and without test-time augmentation, and write one table (like the paper's
//! Fig. 2-4) as JSON and CSV, with every audit's per-image results kept beside it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use dermrobust_core::report::html::HtmlReport;
use dermrobust_core::report::plots::{bar_plot, Bar};
use dermrobust_core::report::{read_json, write_csv, write_json};
use serde::{Deserialize, Serialize};

use super::audit::{classifiers, run_audit, AuditImages};
use super::Tta;
use crate::audits::brittleness::{PairOptions, SetSummary};
use crate::audits::report::summary_table;
use crate::audits::suite::Suite;
use crate::evaluation::{class_shares, DecisionRule};
use crate::models::Arch;
use crate::training::config::AugmentPreset;
use crate::training::trainer::training_finished;
use crate::training::{prepare_data, train_one, TrainConfig};

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
    pub tta: super::TtaViewArgs,
    /// Transformation suite (TOML); default: the built-in suite.
    #[arg(long)]
    pub suite: Option<PathBuf>,
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

/// One row of the comparison table: a method on one family of test sets.
#[derive(Clone, Debug, Serialize)]
pub struct TableRow {
    pub arch: String,
    pub method: String,
    pub family: String,
    pub sets: usize,
    pub models: usize,
    pub p_class_change_mean: f64,
    pub p_class_change_std: f64,
    pub mean_abs_change_mean: f64,
    pub mean_abs_change_std: f64,
    pub auroc_mean: Option<f64>,
    pub auroc_std: Option<f64>,
}

#[derive(Serialize)]
struct ExperimentFile<'a> {
    data: String,
    test_images: usize,
    repeats: usize,
    decision: DecisionRule,
    /// The TTA of the "+TTA" methods.
    tta: &'a Tta,
    table: &'a [TableRow],
    /// Per method: the full per-set summary (see each audit folder for per-image results).
    methods: Vec<(String, String, Vec<SetSummary>)>,
}

/// What an audit of the grid depends on. Saved beside the audit once it is complete; on
/// `--resume` an audit whose key matches is read back instead of re-run.
#[derive(Serialize, Deserialize, PartialEq)]
struct AuditKey {
    data: String,
    /// Each model folder with the size and modification time of its weights, so a retrained
    /// model invalidates the audit.
    models: Vec<(PathBuf, u64, u64)>,
    tta: Option<serde_json::Value>,
    decision: DecisionRule,
    suite: serde_json::Value,
    images: Vec<usize>,
    pair_pool: usize,
}

const AUDIT_KEY_FILE: &str = "audit_key.json";

impl AuditKey {
    fn new(data: &str, models: &[PathBuf], tta: Option<&Tta>, decision: DecisionRule, suite: &Suite, images: &AuditImages) -> Result<Self> {
        let models = models
            .iter()
            .map(|dir| {
                let meta = std::fs::metadata(dir.join("model").join("model.bpk"))?;
                let mtime = meta.modified()?.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                Ok((dir.clone(), meta.len(), mtime))
            })
            .collect::<Result<_>>()?;
        Ok(AuditKey { data: data.to_string(), models, tta: tta.map(serde_json::to_value).transpose()?, decision, suite: serde_json::to_value(suite)?, images: images.indices.to_vec(), pair_pool: images.pair_pool.len() })
    }

    /// The summary of a finished audit in `dir` made with this key, if there is one.
    fn saved_summary(&self, dir: &Path) -> Option<Vec<SetSummary>> {
        #[derive(Deserialize)]
        struct Saved {
            summary: Vec<SetSummary>,
        }
        let key: AuditKey = read_json(&dir.join(AUDIT_KEY_FILE)).ok()?;
        if key != *self {
            return None;
        }
        read_json::<Saved>(&dir.join("brittleness.json")).ok().map(|s| s.summary)
    }
}

fn method_name(variant: &str, tta: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if variant.contains("ada") {
        parts.push("ADA");
    }
    if variant.contains("aam") {
        parts.push("AAM");
    }
    if tta {
        parts.push("TTA");
    }
    if parts.is_empty() { "baseline".into() } else { parts.join("+") }
}

/// Average the per-set summaries of one family (sets of one family weigh equally).
fn family_rows(arch: &str, method: &str, summary: &[SetSummary]) -> Vec<TableRow> {
    let mut families: Vec<String> = summary.iter().map(|s| s.family.clone()).collect();
    families.dedup();
    families
        .into_iter()
        .map(|f| {
            let sets: Vec<&SetSummary> = summary.iter().filter(|s| s.family == f).collect();
            let n = sets.len() as f64;
            let mean = |g: &dyn Fn(&SetSummary) -> f64| sets.iter().map(|s| g(s)).sum::<f64>() / n;
            let aurocs: Vec<(f64, f64)> = sets.iter().filter_map(|s| s.auroc).collect();
            TableRow {
                arch: arch.to_string(),
                method: method.to_string(),
                family: f,
                sets: sets.len(),
                models: sets[0].models,
                p_class_change_mean: mean(&|s| s.p_class_change.0),
                p_class_change_std: mean(&|s| s.p_class_change.1),
                mean_abs_change_mean: mean(&|s| s.mean_abs_change.0),
                mean_abs_change_std: mean(&|s| s.mean_abs_change.1),
                auroc_mean: (aurocs.len() == sets.len()).then(|| aurocs.iter().map(|a| a.0).sum::<f64>() / n),
                auroc_std: (aurocs.len() == sets.len()).then(|| aurocs.iter().map(|a| a.1).sum::<f64>() / n),
            }
        })
        .collect()
}

pub fn run(a: &ExperimentArgs, quiet: bool) -> Result<()> {
    for v in &a.variants {
        if !["baseline", "ada", "aam", "ada+aam", "aam+ada"].contains(&v.as_str()) {
            bail!("unknown variant '{v}' (choose baseline, ada, aam, ada+aam)");
        }
    }
    let suite = match &a.suite {
        Some(p) => Suite::load(p)?,
        None => Suite::default_suite(),
    };
    std::fs::create_dir_all(&a.out)?;
    let data = prepare_data(&a.config, &a.out, quiet)?;
    let test = crate::audits::subsample(&data.test, a.max_images, 0);
    if test.is_empty() {
        bail!("the split has no test images");
    }
    let priors = match a.decision {
        DecisionRule::Argmax => None,
        DecisionRule::Balanced => Some(class_shares(&data.set.labels, &data.train, data.set.num_classes())?),
    };
    let tta_choice = a.tta.tta()?;
    let mut table = Vec::new();
    let mut methods = Vec::new();
    for arch in &a.archs {
        for variant in &a.variants {
            let mut cfg = a.config.clone();
            cfg.arch = *arch;
            cfg.anti_alias = variant.contains("aam");
            if variant.contains("ada") {
                cfg.augment = AugmentPreset::Strong;
            }
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
                    train_one(&run_cfg, &data, &dir, a.resume, quiet)?;
                }
                models.push(dir);
            }
            for tta in if a.no_tta { vec![false] } else { vec![false, true] } {
                let method = method_name(variant, tta);
                let audit_dir = a.out.join("audits").join(arch.name()).join(method.replace('+', "_"));
                let images = AuditImages { set: &data.set, indices: &test, pair_pool: &data.test };
                let key = AuditKey::new(&a.config.data.to_string(), &models, tta.then_some(&tta_choice), a.decision, &suite, &images)?;
                let summary = match a.resume.then(|| key.saved_summary(&audit_dir)).flatten() {
                    Some(summary) => {
                        if !quiet {
                            eprintln!("reusing the finished audit in {}", audit_dir.display());
                        }
                        summary
                    }
                    None => {
                        // A stale key must not vouch for an audit that is about to be replaced.
                        let _ = std::fs::remove_file(audit_dir.join(AUDIT_KEY_FILE));
                        let classifiers = classifiers(&models, false, tta.then_some(&tta_choice), priors.as_deref())?;
                        let (_, summary) = run_audit(&classifiers, &images, &suite, &PairOptions::default(), &a.config.data.to_string(), &audit_dir, quiet)?;
                        write_json(&audit_dir.join(AUDIT_KEY_FILE), &key)?;
                        summary
                    }
                };
                table.extend(family_rows(arch.name(), &method, &summary));
                methods.push((arch.name().to_string(), method, summary));
            }
        }
    }
    write_csv(&a.out.join("experiment.csv"), &table)?;
    write_json(
        &a.out.join("experiment.json"),
        &ExperimentFile { data: a.config.data.to_string(), test_images: test.len(), repeats: a.config.repeats.max(1), decision: a.decision, tta: &tta_choice, table: &table, methods: methods.clone() },
    )?;
    write_report(a, &tta_choice, &table, &methods, test.len())?;
    println!("{:<12} {:<16} {:<9} {:>18} {:>18} {:>16}", "arch", "method", "family", "P(change) %", "abs change %", "AUROC");
    for r in &table {
        println!(
            "{:<12} {:<16} {:<9} {:>10.2} ± {:<5.2} {:>10.2} ± {:<5.2} {:>8}",
            r.arch,
            r.method,
            r.family,
            100.0 * r.p_class_change_mean,
            100.0 * r.p_class_change_std,
            100.0 * r.mean_abs_change_mean,
            100.0 * r.mean_abs_change_std,
            r.auroc_mean.map_or("–".into(), |v| format!("{v:.3}"))
        );
    }
    println!("wrote {}/experiment.csv, experiment.json and report.html", a.out.display());
    Ok(())
}

fn write_report(a: &ExperimentArgs, tta: &Tta, table: &[TableRow], methods: &[(String, String, Vec<SetSummary>)], images: usize) -> Result<()> {
    let mut r = HtmlReport::new("Brittleness experiment (Maron et al. 2021 grid)");
    r.paragraph(&format!(
        "Data: {}; {} test images; {} model(s) per cell. ADA = additional (strong) data augmentation in training, AAM = anti-aliased model, TTA = {}. Values are means over the sets of a family of the per-set mean ± standard deviation over models. Decisions: {}.",
        a.config.data,
        images,
        a.config.repeats.max(1),
        tta.description(),
        match a.decision {
            DecisionRule::Argmax => "the most probable class",
            DecisionRule::Balanced => "the most probable class after correcting the probabilities to equal class priors (training class shares)",
        }
    ));
    let header = ["arch", "method", "family", "P(class change) %", "abs change %", "AUROC"].map(String::from).to_vec();
    let rows: Vec<Vec<String>> = table
        .iter()
        .map(|t| {
            vec![
                t.arch.clone(),
                t.method.clone(),
                t.family.clone(),
                format!("{:.2} ± {:.2}", 100.0 * t.p_class_change_mean, 100.0 * t.p_class_change_std),
                format!("{:.2} ± {:.2}", 100.0 * t.mean_abs_change_mean, 100.0 * t.mean_abs_change_std),
                t.auroc_mean.map_or("–".into(), |v| format!("{v:.3} ± {:.3}", t.auroc_std.unwrap_or(0.0))),
            ]
        })
        .collect();
    r.heading("Method comparison");
    r.table(&header, &rows);
    for family in ["single", "combined", "natural"] {
        let bars: Vec<Bar> = table.iter().filter(|t| t.family == family).map(|t| Bar::new(format!("{} {}", t.arch, t.method), 100.0 * t.p_class_change_mean, 100.0 * t.p_class_change_std)).collect();
        if !bars.is_empty() {
            let title = if family == "natural" { "P(class change), natural pairs".to_string() } else { format!("P(class change), {family} transformations") };
            r.svg(&bar_plot(&title, "% of images", &bars, None)?, "Lower is more robust. Bars: mean over the sets of the family; whiskers: ± standard deviation over repeated models (averaged over the sets).");
        }
    }
    for (arch, method, summary) in methods {
        r.heading(&format!("{arch} {method}"));
        let (h, rows) = summary_table(summary);
        r.table(&h, &rows);
    }
    r.write(&a.out.join("report.html"))
}
