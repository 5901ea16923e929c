//! `dermrobust audit artefacts`: parse the options and run the artefact audit.

use std::path::PathBuf;

use anyhow::Result;
use dermrobust_core::imaging::artefacts::{Artefact, Inserter, Placement, TemplateLibrary};

use super::AuditModelArgs;
use crate::audits::artefacts::ArtefactAudit;

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
