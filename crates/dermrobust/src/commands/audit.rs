//! `dermrobust audit ...`: the audit commands parse their options and call the audit.

use std::path::PathBuf;

use anyhow::Result;

use super::AuditModelArgs;
use crate::audits::brittleness::{read_similarity_groups, Brittleness, PairOptions};
use crate::audits::report::summary_table;
use crate::audits::suite::Suite;

#[derive(clap::Args, Clone)]
pub struct BrittlenessArgs {
    #[command(flatten)]
    pub common: AuditModelArgs,
    /// Transformation suite (TOML, `[[set]]` tables). Default: the documented built-in suite.
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// CSV `image_id,group` of similar-looking photographs: natural pairs only inside a group.
    #[arg(long)]
    pub similarity_groups: Option<PathBuf>,
    /// Keep only natural pairs whose perceptual hashes differ in at most this many of 64 bits.
    #[arg(long)]
    pub max_hash_distance: Option<u32>,
}

impl BrittlenessArgs {
    pub fn audit(&self) -> Result<Brittleness> {
        let suite = match &self.suite {
            Some(p) => Suite::load(p)?,
            None => Suite::default_suite(),
        };
        let pairs = PairOptions { similarity_groups: self.similarity_groups.as_deref().map(read_similarity_groups).transpose()?, max_hash_distance: self.max_hash_distance };
        Ok(Brittleness { suite, pairs })
    }
}

pub fn brittleness(a: &BrittlenessArgs, quiet: bool) -> Result<()> {
    let audit = a.audit()?;
    let outcome = a.common.subject()?.run(&audit, &a.common.out, a.common.resume, quiet)?;
    let (header, rows) = summary_table(&outcome.summary);
    println!("{}", header.join(" | "));
    for r in rows {
        println!("{}", r.join(" | "));
    }
    println!("wrote {}/brittleness.json, brittleness_per_image.csv and report.html", a.common.out.display());
    Ok(())
}
