//! `dermrobust demo`: synthetic data -> train a small model -> evaluate -> a small brittleness
//! audit -> one `report.html`. Needs no download; about three minutes on two cores.

use std::path::PathBuf;

use anyhow::Result;
use dermrobust_core::report::html::HtmlReport;

use crate::audits::brittleness::{Brittleness, PairOptions};
use crate::audits::suite::Suite;
use crate::audits::{report_sections, run_audit, AuditRun, AuditSubject};
use crate::evaluation::DecisionRule;
use crate::models::run_dir::RunDir;
use crate::training::config::{AugmentPreset, ScheduleKind};
use crate::training::TrainConfig;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "demo-output")]
    pub out: PathBuf,
    /// Number of synthetic lesions.
    #[arg(long, default_value_t = 1500)]
    pub lesions: usize,
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// Test images in the brittleness audit.
    #[arg(long, default_value_t = 150)]
    pub audit_images: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub fn config(a: &DemoArgs) -> Result<TrainConfig> {
    Ok(TrainConfig {
        data: format!("synthetic:n={},seed={}", a.lesions, a.seed).parse()?,
        arch: "resnet18".parse().map_err(anyhow::Error::msg)?,
        width: 0.25,
        image_size: 64,
        epochs: a.epochs,
        batch_size: 32,
        lr: 0.02,
        schedule: ScheduleKind::OneCycle,
        augment: AugmentPreset::Standard,
        seed: a.seed,
        cache_dir: Some(a.out.join("cache")),
        ..TrainConfig::default()
    })
}

pub fn run(a: &DemoArgs, quiet: bool) -> Result<()> {
    let cfg = config(a)?;
    cfg.validate()?;
    if a.audit_images == 0 {
        anyhow::bail!("--audit-images must be at least 1");
    }
    if !quiet {
        eprintln!("dermrobust demo: {} synthetic lesions, {} at 64px (width 0.25), {} epochs, then a brittleness audit", a.lesions, cfg.arch, cfg.epochs);
    }
    let results = super::train::run(&cfg, &a.out, false, quiet)?;
    let r = &results[0];
    let run = RunDir::new(&a.out);

    // The brittleness audit of the trained model on its test part.
    let subject = AuditSubject {
        models: vec![a.out.clone()],
        ensemble: false,
        tta: None,
        data: cfg.data.clone(),
        split: None,
        part: "test".into(),
        decision: DecisionRule::Argmax,
        max_images: Some(a.audit_images),
        skip_bad: false,
        capture: Default::default(),
    };
    let audit = Brittleness { suite: Suite::default_suite(), pairs: PairOptions::default() };
    let prepared = subject.prepare(quiet)?;
    let audit_dir = a.out.join("audit");
    let outcome = run_audit(&audit, &prepared.classifiers, &prepared.images(), &AuditRun { data: cfg.data.to_string(), model_paths: &subject.models, subject: subject.key(), out: &audit_dir, resume: false, quiet })?;

    // One report: training, test metrics, brittleness.
    let mut report = HtmlReport::new("dermrobust demo: train, evaluate, audit");
    report.paragraph(&format!(
        "A ResNet-18 (width 0.25) trained for {} epochs on {} synthetic dermoscopy lesions ({}), 64 px, lesion-aware split. Everything below reproduces with `dermrobust demo --seed {}`.",
        cfg.epochs, a.lesions, cfg.data, a.seed
    ));
    report.heading("Training");
    if let Ok(svg) = std::fs::read_to_string(run.curves()) {
        report.svg(&svg, &format!("Training loss, validation loss, AUROC and balanced accuracy per epoch; the best epoch ({}) was kept.", r.best_epoch));
    }
    if let Some(m) = &r.test {
        report.heading("Test set");
        for line in m.summary().lines() {
            report.paragraph(line);
        }
    }
    report.heading("Brittleness audit");
    report_sections(&mut report, &audit, &outcome, &prepared.images(), &cfg.data.to_string())?;
    let report_path = a.out.join("report.html");
    report.write(&report_path)?;

    println!("\nDemo finished.");
    if let Some(m) = &r.test {
        println!("Test set: {}", m.summary().replace('\n', "\n          "));
    }
    if let Some(worst) = outcome.summary.iter().filter(|s| s.family != "original").max_by(|x, y| x.p_class_change.0.total_cmp(&y.p_class_change.0)) {
        println!("Brittleness: the largest share of changed diagnoses is {:.1}% under '{}'.", 100.0 * worst.p_class_change.0, worst.name);
    }
    println!("Report:       {}   <- open this in a browser", report_path.display());
    println!("Model:        {}", run.best_model().display());
    println!("Metrics:      {}", run.metrics().display());
    println!("Predictions:  {}", run.predictions().display());
    println!("Audit:        {}", audit_dir.display());
    Ok(())
}
