//! `dermrobust audit artefacts`: parse the options and run the artefact audit.

use std::path::PathBuf;

use anyhow::Result;

use super::AuditModelArgs;
use crate::audits::artefacts::ArtefactOptions;

#[derive(clap::Args, Clone)]
pub struct ArtefactsArgs {
    #[command(flatten)]
    pub common: AuditModelArgs,
    #[command(flatten)]
    pub options: ArtefactOptions,
    /// Folder of artefact templates with a meta.json in the layout of
    /// github.com/thisismexp/artefact_insertion (e.g. ../shared/data/artefact-templates).
    #[arg(long)]
    pub artefact_templates: Option<PathBuf>,
    /// The class the model was trained with artefacts on: adds the artefact on that class only
    /// and on all other classes only, and that class's recall and FPR and the others' FNR.
    #[arg(long)]
    pub bias_class: Option<String>,
}

pub fn run(a: &ArtefactsArgs, quiet: bool) -> Result<()> {
    let audit = a.options.audit(a.artefact_templates.as_deref(), a.bias_class.clone())?;
    let outcome = a.common.subject()?.run(&audit, &a.common.out, a.common.resume, quiet)?;
    println!("{:<28} {:>8} {:>9} {:>9} {:>11} {:>10}", "condition", "PR-AUC", "ΔPR-AUC", "recall", "P(change)", "McNemar p");
    for c in &outcome.conditions {
        let m = |k: &str| c.metrics.get(k).copied().flatten().map(|v| v.mean);
        let f = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or("–".into());
        println!("{:<28} {:>8} {:>9} {:>9} {:>11} {:>10}", c.name, f(m("pr_auc"), 3), f(m("delta_pr_auc"), 3), f(m("macro_recall"), 3), f(m("p_class_change"), 3), m("mcnemar_p").map(|p| format!("{p:.2e}")).unwrap_or("–".into()));
    }
    println!("wrote {}/artefacts.json, artefacts_per_image.csv and report.html", a.common.out.display());
    Ok(())
}
